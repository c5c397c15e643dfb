"""The coordinator's and the partners' deployment files, read and checked once, before any
process starts.

Coordinator: the scenario file plus a `[coordinator]` table and a `public_key` per partner
(`load_coordinator`; `read_coordinator_settings` reads the table alone, enough to stop, inspect or
address a running SuperLink). Partner: its partner.toml, whose `[partner]`/`[privacy]` tables are
read by `fedcredit.credit.scenario.load_partner_file` and whose `[node]` table is read here
(`load_node`; `read_node_settings` alone is enough to stop a running SuperNode). A config error, a
missing file, an expired or mismatched certificate is reported with the file, table and field.

Each file has one schema (`fedcredit.deployment.schemas`), validated once. Knows nothing
of processes or Flower's command lines (`.importlinter`); the one way out is the retired-key check
of `load_coordinator`, which reads the node registry's file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fedcredit.credit.errors import InputError
from fedcredit.credit.scenario import (
    NAME_PATTERN,
    Partner,
    Scenario,
    file_locator,
    partner_from_file,
    read_toml,
    scenario_name,
)
from fedcredit.credit.validation import validated
from fedcredit.deployment import PROJECT_DIR
from fedcredit.deployment.schemas import (
    DEFAULT_ADDRESS,
    DEFAULT_FEDERATION,
    DEFAULT_NODE_PORT,
    DEFAULT_PORT,
    CoordinatorFile,
    CoordinatorTable,
    DeployedPartnerFile,
    NodeTable,
    join_host_port,
)
from fedcredit.protection import tls

LOOPBACK = "127.0.0.1"       # the SuperLink listens here only; the Fleet gateway faces the network
STATE_DIR = "fedcredit"       # inside FLWR_HOME: PID files, logs, registered node ids


def _path(base: Path, value: str | None) -> Path | None:
    return (base / Path(value).expanduser()).resolve() if value else None


def dial_host(bind_host: str) -> str:
    """The host a client on the coordinator's machine dials for a SuperLink bound to `bind_host`
    (Flower's own SuperExec and the flwr CLI do the same: bind-all → loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind_host, bind_host)


@dataclass(frozen=True)
class CoordinatorSettings:
    """The [coordinator] table: where the Fleet gateway (public) and the SuperLink (loopback) listen,
    with which files."""

    source: Path
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT
    control_port: int = DEFAULT_PORT + 1      # the SuperLink's own port, on 127.0.0.1 only
    ca_cert: Path | None = None
    server_cert: Path | None = None
    server_key: Path | None = None
    flwr_home: Path = Path("flwr-home")
    insecure: bool = False
    federation: str = DEFAULT_FEDERATION
    app_signature: Path | None = None

    @property
    def control_address(self) -> str:
        """The SuperLink on loopback: what the flwr CLI on this machine dials (written to
        $FLWR_HOME/config.toml), Flower's SuperExec and the Fleet gateway too."""
        return join_host_port(LOOPBACK, self.control_port)

    @property
    def public_address(self) -> str:
        """Where the Fleet gateway listens: the one port partners dial."""
        return join_host_port(self.address, self.port)

    @property
    def gateway_pid_file(self) -> Path:
        return self.state_dir / "gateway.pid"

    @property
    def gateway_log(self) -> Path:
        return self.state_dir / "gateway.log"

    @property
    def state_dir(self) -> Path:
        return self.flwr_home / STATE_DIR

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "superlink.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "superlink.log"

    @property
    def nodes_file(self) -> Path:
        return self.state_dir / "registered-nodes.json"

    @property
    def runs_log(self) -> Path:
        """One JSON line per run started with `fedcredit run`: who, from where, which signed app."""
        return self.state_dir / "run-starts.jsonl"


@dataclass(frozen=True)
class CoordinatorConfig:
    """A validated coordinator config: the scenario, the SuperLink settings, each partner's public key."""

    settings: CoordinatorSettings
    scenario: Scenario
    public_keys: Mapping[str, tuple[Path, ...]]   # partner → its OpenSSH public key file(s) (empty when insecure)
    insecure: bool
    app_signature: str = ""                # the signature line of the app bundle (empty: unsigned)

    @property
    def source(self) -> Path:
        return self.settings.source


def read_coordinator_settings(path: str | Path) -> CoordinatorSettings:
    """Only the [coordinator] table (enough to stop, inspect or address a running SuperLink)."""
    path = Path(path).expanduser().resolve()
    raw = read_toml(path, "coordinator config")
    table = validated(CoordinatorTable, raw.get("coordinator", {}), locate=f"{path} [coordinator]")
    return _coordinator_settings(table, path)


def _coordinator_settings(table: CoordinatorTable, path: Path) -> CoordinatorSettings:
    base = path.parent
    return CoordinatorSettings(
        source=path, address=table.address, port=table.port,
        control_port=table.control_port if table.control_port is not None else table.port + 1,
        ca_cert=_path(base, table.ca_cert), server_cert=_path(base, table.server_cert),
        server_key=_path(base, table.server_key), flwr_home=_path(base, table.flwr_home) or base / "flwr-home",
        insecure=table.insecure, federation=table.federation, app_signature=_path(base, table.app_signature))


def _confirm_insecure(config_insecure: bool, flag: bool, source: str) -> bool:
    if config_insecure and not flag:
        raise InputError("says insecure = true: pass --insecure to confirm a deployment without TLS "
                         "(local tests only)", source=source, field="insecure")
    return config_insecure or flag


def load_coordinator(path: str | Path, *, insecure: bool = False, now: datetime | None = None) -> CoordinatorConfig:
    """The coordinator's scenario file with [coordinator] and per-partner public keys, fully checked:
    the scenario itself, every file named, the certificates (valid now, server certificate issued
    by the CA, matching its key, naming the address the flwr CLI and Flower's SuperExec dial) and
    every partner's public key (distinct, EC on a NIST curve). `insecure` is the --insecure flag."""
    path = Path(path).expanduser().resolve()
    raw = read_toml(path, "coordinator config")
    file = validated(CoordinatorFile, raw, locate=file_locator(str(path), raw))
    settings = _coordinator_settings(file.coordinator, path)
    source = f"{path} [coordinator]"
    scenario = Scenario.from_file(file, base_dir=path.parent, name=scenario_name(path), source=path)
    insecure = _confirm_insecure(settings.insecure, insecure, source)
    keys: dict[str, tuple[Path, ...]] = {}
    if not insecure:
        for name in ("ca_cert", "server_cert", "server_key"):
            if getattr(settings, name) is None:
                raise InputError("missing: TLS needs ca_cert, server_cert and server_key (make them with "
                                 "`fedcredit certs --out DIR`), or pass --insecure for a local test",
                                 source=source, field=name)
        tls.check_server_files(settings.ca_cert, settings.server_cert, settings.server_key, source=source,
                               host=LOOPBACK, now=now)          # the SuperLink, behind the gateway
        if dial_host(settings.address) != LOOPBACK:                    # the gateway, as partners dial it
            tls.check_server_files(settings.ca_cert, settings.server_cert, settings.server_key, source=source,
                                   host=dial_host(settings.address), now=now)
        from fedcredit.deployment.node_registry import configured_keys

        keys = configured_keys(settings, raw)
    return CoordinatorConfig(settings, scenario, keys, insecure, read_app_signature(settings, insecure))


def read_app_signature(settings: CoordinatorSettings, insecure: bool) -> str:
    """The [coordinator] app_signature file's line, checked against the app as it is now on disk
    (required with TLS: partners refuse unsigned apps)."""
    from fedcredit.deployment.app_bundle import app_digest
    from fedcredit.protection.app_signing import AppRejected, read_signature

    source = f"{settings.source} [coordinator]"
    path = settings.app_signature
    if path is None:
        if insecure:
            return ""
        raise InputError("missing: the app's signature file (`fedcredit app sign --key KEY --out FILE` by the "
                         "holder of the consortium's app-signing key); partners run only signed apps",
                         source=source, field="app_signature")
    try:
        text = path.read_text(encoding="utf-8").strip()
        sig = read_signature(text, source=str(path))
    except FileNotFoundError:
        raise InputError(f"no such file: {path} (make it with `fedcredit app sign`)", source=source,
                         field="app_signature") from None
    except (OSError, UnicodeDecodeError, AppRejected) as exc:
        raise InputError(f"cannot read {path}: {exc}", source=source, field="app_signature") from None
    digest = app_digest(PROJECT_DIR)
    if sig.fab_sha256 != digest:
        raise InputError(f"{path} signs app bundle {sig.fab_sha256[:16]}…, but the app in {PROJECT_DIR} is now "
                         f"{digest[:16]}… (its code changed since it was signed): sign it again; partners would "
                         "refuse it", source=source, field="app_signature")
    return text


@dataclass(frozen=True)
class NodeSettings:
    """The [node] table of a partner.toml: how this partner's SuperNode reaches the SuperLink."""

    source: Path
    name: str
    superlink: str
    port: int = DEFAULT_NODE_PORT
    root_certificates: Path | None = None
    auth_key: Path | None = None
    insecure: bool = False
    flwr_home: Path = Path("flwr-home")
    trusted_app_keys: tuple[Path, ...] = ()
    idle_wait: float = 0.5     # seconds before the SuperNode asks again after finding no message
    warm_start: bool = True    # ClientApp processes fork from a process with torch & co imported

    @property
    def app_log(self) -> Path:
        """One JSON line per app bundle this node was sent: accepted (by which key) or refused (why)."""
        return self.state_dir / f"apps-{self.name}.jsonl"

    @property
    def supervisor_pid_file(self) -> Path:
        """The `partner start` process that keeps the SuperNode running (restarts it), when detached."""
        return self.state_dir / f"supervisor-{self.name}.pid"

    @property
    def supervisor_log(self) -> Path:
        return self.state_dir / f"supervisor-{self.name}.log"

    @property
    def launcher_dir(self) -> Path:
        """Holds the `flwr-clientapp` that checks the app's signature (first on the SuperNode's PATH)."""
        return self.state_dir / "bin"

    @property
    def state_dir(self) -> Path:
        return self.flwr_home / STATE_DIR

    @property
    def pid_file(self) -> Path:
        return self.state_dir / f"supernode-{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / f"supernode-{self.name}.log"


@dataclass(frozen=True)
class NodeConfig:
    settings: NodeSettings
    partner: Partner
    insecure: bool

    @property
    def source(self) -> Path:
        return self.settings.source


def read_node_settings(path: str | Path) -> NodeSettings:
    """Only the [node] table and the partner's name (enough to stop a running SuperNode)."""
    path = Path(path).expanduser().resolve()
    raw = read_toml(path, "partner config")
    if "node" not in raw:
        raise InputError("missing the [node] table (superlink, port, root_certificates, auth_key)",
                         source=str(path))
    partner = raw.get("partner")
    name = partner.get("name") if isinstance(partner, Mapping) else None
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise InputError("needs a name of letters, digits, '-', '_' or '.'", source=f"{path} [partner]",
                         field="name")
    return _node_settings(validated(NodeTable, raw["node"], locate=f"{path} [node]"), path, name)


def _node_settings(table: NodeTable, path: Path, name: str) -> NodeSettings:
    base = path.parent
    trusted = [table.trusted_app_keys] if isinstance(table.trusted_app_keys, str) else table.trusted_app_keys
    return NodeSettings(
        source=path, name=name, superlink=table.superlink, port=table.port,
        root_certificates=_path(base, table.root_certificates), auth_key=_path(base, table.auth_key),
        insecure=table.insecure,
        flwr_home=_path(base, table.flwr_home or f"flwr-home-{name}") or base / f"flwr-home-{name}",
        trusted_app_keys=tuple(p for t in trusted if (p := _path(base, t)) is not None), idle_wait=table.idle_wait,
        warm_start=table.warm_start)


def load_node(path: str | Path, *, insecure: bool = False, now: datetime | None = None) -> NodeConfig:
    """A partner.toml fully checked: [partner]/[privacy] by `load_partner_file` (plus: the table
    exists, its vault key can be loaded — a key file or the environment variable the SuperNode's
    ClientApps will inherit), [node] here, the CA certificate (a CA, valid now) and the node's
    private key (OpenSSH EC, mode 0600)."""
    path = Path(path).expanduser().resolve()
    raw = read_toml(path, "partner config")
    file = validated(DeployedPartnerFile, raw, locate=file_locator(str(path), raw))
    partner = partner_from_file(file, path)
    settings = _node_settings(file.node, path, partner.name)
    at = f"{settings.source} [partner]"
    if partner.data is not None and not partner.data.is_file():
        raise InputError(f"the partner's table {partner.data} does not exist", source=at, field="data")
    if partner.key:
        from fedcredit.protection.keys import load_key

        try:
            load_key(partner.key)
        except InputError as exc:
            raise InputError(str(exc), source=at, field="key") from None
    source = f"{settings.source} [node]"
    insecure = _confirm_insecure(settings.insecure, insecure, source)
    if not insecure:
        if settings.root_certificates is None:
            raise InputError("missing: the consortium CA certificate (ca.crt from the coordinator), or pass "
                             "--insecure for a local test", source=source, field="root_certificates")
        if settings.auth_key is None:
            raise InputError("missing: this node's private key (make it with `fedcredit node-key new PATH` and "
                             "send PATH.pub to the coordinator)", source=source, field="auth_key")
        tls.check_ca_file(settings.root_certificates, field="root_certificates", source=source, now=now)
        tls.check_node_private_key(settings.auth_key, field="auth_key", source=source)
        if not settings.trusted_app_keys:
            raise InputError("missing: the consortium's app-signing public key (the .pub made by `fedcredit app "
                             "keygen`); this node runs only apps signed by it", source=source,
                             field="trusted_app_keys")
    if settings.trusted_app_keys:
        from fedcredit.protection.app_signing import load_trusted_keys

        load_trusted_keys(list(settings.trusted_app_keys), source=f"{source} trusted_app_keys")
    return NodeConfig(settings, partner, insecure)
