"""A real Flower deployment: the coordinator's and the partners' config files, and the
Flower processes they start (`flower-superlink`, `flower-supernode`, `flwr`).

Coordinator: the scenario file plus a `[coordinator]` table and a `public_key` per partner
(`load_coordinator`). Partner: its partner.toml, whose `[partner]`/`[privacy]` tables are read
by `fedcredit.credit.scenario.load_partner_file` and whose `[node]` table is read here (`load_node`).
Everything is validated once, before any process starts: a config error, a missing file, an
expired or mismatched certificate or a port in use is reported by us with the file and field.

Processes are the executables of the venv that runs this code (beside `sys.executable`), each
in its own session, with output in a log file under `<flwr_home>/fedcredit/`. A start either
ends with a ready process or stops what it started; a detached process is found again through a
PID file that records its start time, so a recycled PID is never signalled.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import psutil

from fedcredit.credit.atomic import atomic_write_json, atomic_write_text
from fedcredit.credit.errors import FederationError, InputError
from fedcredit.credit.scenario import Partner, Scenario, load_partner_file, load_scenario, read_toml
from fedcredit.protection import tls

BIN_DIR = Path(sys.executable).parent
PROJECT_DIR = Path(__file__).resolve().parents[2]      # the Flower app: pyproject.toml + fedcredit/
DEFAULT_ADDRESS = "127.0.0.1"
LOOPBACK = "127.0.0.1"       # the SuperLink listens here only; the Fleet gateway faces the network
DEFAULT_PORT = 9092
DEFAULT_NODE_PORT = 9094
DEFAULT_FEDERATION = "fedcredit"
DEFAULT_WAIT = 30.0
STOP_TIMEOUT = 20.0
STATE_DIR = "fedcredit"       # inside FLWR_HOME: PID files, logs, registered node ids
_FEDERATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_COORDINATOR_KEYS = {"address", "port", "control_port", "ca_cert", "server_cert", "server_key", "flwr_home",
                     "insecure", "federation", "app_signature"}
_NODE_KEYS = {"superlink", "port", "root_certificates", "auth_key", "insecure", "flwr_home", "trusted_app_keys"}
Print = Callable[[str], None]


class DeploymentError(InputError):
    """A process could not be started or stopped; the message says why and what to do."""


# ---- configuration ----------------------------------------------------------------------------


def _table(raw: Mapping[str, Any], name: str, source: str, allowed: set[str]) -> dict[str, Any]:
    table = raw.get(name, {})
    if not isinstance(table, Mapping):
        raise InputError("must be a table", source=source, field=name)
    unknown = set(table) - allowed
    if unknown:
        raise InputError(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}", source=source)
    return dict(table)


def _str(table: Mapping[str, Any], key: str, source: str, default: str | None = None) -> str | None:
    value = table.get(key, default)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise InputError(f"must be a non-empty string (got {value!r})", source=source, field=key)
    return value.strip() if isinstance(value, str) else None


def _port(table: Mapping[str, Any], key: str, source: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise InputError(f"must be a port number between 1 and 65535 (got {value!r})", source=source, field=key)
    return value


def _bool(table: Mapping[str, Any], key: str, source: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise InputError(f"must be true or false (got {value!r})", source=source, field=key)
    return value


def _path(base: Path, value: str | None) -> Path | None:
    return (base / Path(value).expanduser()).resolve() if value else None


def _host(value: str, source: str, field: str) -> str:
    """A bare host name or IP address (IPv6 may be bracketed); no scheme, no port."""
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if "://" in host or "/" in host or ":" in host or not re.match(r"^[A-Za-z0-9.-]+$", host):
        raise InputError(f"must be a host name or IP address without scheme or port (got {value!r})",
                         source=source, field=field)
    return host


def _host_port(value: str, source: str, field: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' → (host, port)."""
    text = value.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InputError(f"must be host:port, e.g. \"127.0.0.1:{DEFAULT_PORT}\" (got {value!r})",
                         source=source, field=field)
    return _host(host, source, field), int(port_text)


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
        return _join(LOOPBACK, self.control_port)

    @property
    def public_address(self) -> str:
        """Where the Fleet gateway listens: the one port partners dial."""
        return _join(self.address, self.port)

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
    source = f"{path} [coordinator]"
    table = _table(raw, "coordinator", source, _COORDINATOR_KEYS)
    base = path.parent
    federation = _str(table, "federation", source, DEFAULT_FEDERATION)
    if not _FEDERATION.match(federation or ""):
        raise InputError(f"must be letters, digits, '-' or '_' (got {federation!r})", source=source,
                         field="federation")
    port = _port(table, "port", source, DEFAULT_PORT)
    if "control_port" not in table and port == 65535:
        raise InputError("is 65535, so the default control_port (port + 1) does not exist: set control_port",
                         source=source, field="port")
    control_port = _port(table, "control_port", source, port + 1)
    if control_port == port:
        raise InputError(f"must differ from port ({port}): the SuperLink listens on 127.0.0.1:control_port, the "
                         "Fleet gateway on address:port", source=source, field="control_port")
    return CoordinatorSettings(
        source=path,
        address=_host(_str(table, "address", source, DEFAULT_ADDRESS) or DEFAULT_ADDRESS, source, "address"),
        port=port,
        control_port=control_port,
        ca_cert=_path(base, _str(table, "ca_cert", source)),
        server_cert=_path(base, _str(table, "server_cert", source)),
        server_key=_path(base, _str(table, "server_key", source)),
        flwr_home=_path(base, _str(table, "flwr_home", source, "flwr-home")) or base / "flwr-home",
        insecure=_bool(table, "insecure", source),
        federation=federation or DEFAULT_FEDERATION,
        app_signature=_path(base, _str(table, "app_signature", source)),
    )


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
    settings = read_coordinator_settings(path)
    path = settings.source
    source = f"{path} [coordinator]"
    scenario = load_scenario(path)
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

        keys = configured_keys(settings, read_toml(path, "coordinator config"))
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
    source = f"{path} [node]"
    if "node" not in raw:
        raise InputError("missing the [node] table (superlink, port, root_certificates, auth_key)",
                         source=str(path))
    table = _table(raw, "node", source, _NODE_KEYS)
    partner = raw.get("partner")
    name = partner.get("name") if isinstance(partner, Mapping) else None
    if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", name):
        raise InputError("needs a name of letters, digits, '-', '_' or '.'", source=f"{path} [partner]",
                         field="name")
    superlink = _str(table, "superlink", source)
    if superlink is None:
        raise InputError(f"missing: the SuperLink's address as host:port, e.g. \"127.0.0.1:{DEFAULT_PORT}\"",
                         source=source, field="superlink")
    host, port = _host_port(superlink, source, "superlink")
    base = path.parent
    trusted = table.get("trusted_app_keys", [])
    if isinstance(trusted, str):
        trusted = [trusted]
    if not isinstance(trusted, list) or not all(isinstance(t, str) and t.strip() for t in trusted):
        raise InputError("must be a file path or a list of file paths (the consortium's app-signing .pub)",
                         source=source, field="trusted_app_keys")
    return NodeSettings(
        source=path, name=name, superlink=_join(host, port),
        port=_port(table, "port", source, DEFAULT_NODE_PORT),
        root_certificates=_path(base, _str(table, "root_certificates", source)),
        auth_key=_path(base, _str(table, "auth_key", source)),
        insecure=_bool(table, "insecure", source),
        flwr_home=_path(base, _str(table, "flwr_home", source, f"flwr-home-{name}")) or base / f"flwr-home-{name}",
        trusted_app_keys=tuple(_path(base, t) for t in trusted),
    )


def load_node(path: str | Path, *, insecure: bool = False, now: datetime | None = None) -> NodeConfig:
    """A partner.toml fully checked: [partner]/[privacy] by `load_partner_file` (plus: the table
    exists, its vault key can be loaded — a key file or the environment variable the SuperNode's
    ClientApps will inherit), [node] here, the CA certificate (a CA, valid now) and the node's
    private key (OpenSSH EC, mode 0600)."""
    partner = load_partner_file(path)
    settings = read_node_settings(path)
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


# ---- commands ---------------------------------------------------------------------------------


def executable(name: str) -> str:
    path = BIN_DIR / name
    if not path.is_file() or not os.access(path, os.X_OK):
        raise DeploymentError(f"{name} not found beside {sys.executable}: install fedcredit with its Flower "
                              "dependency in this environment")
    return str(path)


def flower_env(flwr_home: Path, **extra: str) -> dict[str, str]:
    """The environment of every Flower process: this venv's bin first on PATH (Flower starts
    `flower-superexec` by name), a private FLWR_HOME, no telemetry, no update check (it calls out
    to the internet), no runtime dependency installation."""
    env = dict(os.environ)
    env.update({"PATH": f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}", "FLWR_HOME": str(flwr_home),
                "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", **extra})
    # Each message starts a fresh ClientApp process; poll for it every 0.2 s instead of 1 s.
    env.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.2")
    return env


def app_check_env(s: NodeSettings) -> dict[str, str]:
    """The SuperNode's environment with the signature-checking `flwr-clientapp` first on PATH
    (Flower's SuperExec starts the ClientApp by that name) and the keys it trusts."""
    from fedcredit.clients import verified_clientapp as v

    s.launcher_dir.mkdir(parents=True, exist_ok=True)
    launcher = s.launcher_dir / "flwr-clientapp"
    atomic_write_text(launcher, v.launcher_script())     # ours, regenerated at every start
    launcher.chmod(0o755)
    env = flower_env(s.flwr_home)
    env["PATH"] = f"{s.launcher_dir}{os.pathsep}{env['PATH']}"
    env.update({v.ENV_TRUSTED: os.pathsep.join(str(p) for p in s.trusted_app_keys), v.ENV_LOG: str(s.app_log),
                v.ENV_PARTNER: s.name})
    return env


def toml_string(value: str, *, what: str) -> str:
    """A TOML string literal that Flower's `k=v` parser (values quoted with ' or ") keeps whole."""
    if '"' not in value and "\\" not in value and "\n" not in value:
        return f'"{value}"'
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    raise InputError(f"contains both quote characters or a newline, which Flower's config parser cannot "
                     f"carry: {value!r}", source=what)


def superlink_command(cfg: CoordinatorConfig) -> list[str]:
    s = cfg.settings
    cmd = [executable("flower-superlink")]
    if cfg.insecure:
        cmd += ["--insecure"]
    else:
        cmd += ["--ssl-ca-certfile", str(s.ca_cert), "--ssl-certfile", str(s.server_cert),
                "--ssl-keyfile", str(s.server_key), "--enable-supernode-auth"]
    return cmd + ["--disable-runtime-dependency-installation", "--host", LOOPBACK, "--port", str(s.control_port)]


def supernode_command(node: NodeConfig) -> list[str]:
    s = node.settings
    cmd = [executable("flower-supernode"), "--superlink", s.superlink, "--port", str(s.port)]
    if node.insecure:
        cmd += ["--insecure"]
    else:
        cmd += ["--root-certificates", str(s.root_certificates), "--auth-supernode-private-key", str(s.auth_key)]
    return cmd + ["--node-config", f"partner-config={toml_string(str(s.source), what='partner config path')}"]


def run_command(cfg: CoordinatorConfig, out_dir: Path, rounds: int | None = None) -> list[str]:
    """`flwr run <project> <federation> --stream --run-config "scenario=... deployment=true out-dir=...
    app-signature=..."`."""
    run_config = (f"scenario={toml_string(str(cfg.source), what='scenario path')} deployment=true "
                  f"out-dir={toml_string(str(out_dir), what='--out')}")
    if rounds:
        run_config += f" rounds={int(rounds)}"
    if cfg.app_signature:
        run_config += f" app-signature={toml_string(cfg.app_signature, what='app signature')}"
    registered = registered_nodes(cfg.settings)
    if registered:
        run_config += f" registered-nodes={toml_string(json.dumps(registered, sort_keys=True), what='node ids')}"
    return [executable("flwr"), "run", str(PROJECT_DIR), cfg.settings.federation, "--stream",
            "--run-config", run_config]


def log_run_start(cfg: CoordinatorConfig, out_dir: Path, cmd: Sequence[str]) -> None:
    """Append who starts which run, from where, with which signed app, to the coordinator's
    run-start log (before the run starts: a run that fails to start is logged too)."""
    import getpass

    from fedcredit.protection.app_signing import read_signature

    sig = read_signature(cfg.app_signature) if cfg.app_signature else None
    record = {"time": datetime.now(UTC).isoformat(timespec="seconds"), "user": getpass.getuser(),
              "host": socket.gethostname(), "pid": os.getpid(), "config": str(cfg.source), "out": str(out_dir),
              "app_sha256": sig.fab_sha256 if sig else None, "signed_by": sig.key_id if sig else None,
              "command": shell_join(cmd)}
    cfg.settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.settings.runs_log, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def shell_join(cmd: Sequence[str]) -> str:
    """The command as one would type it (single-quoted, or double-quoted when it holds ' only)."""
    import shlex

    def quote(arg: str) -> str:
        if "'" in arg and not any(c in arg for c in '"$`\\!'):
            return f'"{arg}"'
        return shlex.quote(arg)

    return " ".join(quote(c) for c in cmd)


def check_port_free(host: str, port: int, *, source: str, field: str) -> None:
    """Bind the port (as the server will) and release it; refuse if something holds it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DeploymentError(f"port {port} on {host} is not available ({exc.strerror}): another program "
                                  f"(or a running SuperLink/SuperNode) uses it; stop it or choose another port",
                                  source=source, field=field) from None


def write_federation(settings: CoordinatorSettings, insecure: bool) -> Path:
    """Add/replace `[superlink.<federation>]` in $FLWR_HOME/config.toml (other entries kept)."""
    import tomli_w

    path = settings.flwr_home / "config.toml"
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"is not valid TOML: {exc}", source=str(path)) from exc
    superlink = data.setdefault("superlink", {})
    entry: dict[str, Any] = {"address": settings.control_address}
    if insecure:
        entry["insecure"] = True
    else:
        entry["root-certificates"] = str(settings.ca_cert)
    superlink[settings.federation] = entry
    superlink.setdefault("default", settings.federation)
    atomic_write_text(path, tomli_w.dumps(data))
    return path


# ---- processes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PidRecord:
    pid: int
    create_time: float
    argv: tuple[str, ...]
    log: str

    def process(self):
        """The live process this record names, or None (exited, or the PID now belongs to another)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.5 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None


def write_pid_record(path: Path, pid: int, argv: Sequence[str], log: Path) -> None:
    """A PID file that also records the process's start time (a recycled PID is never mistaken for it)."""
    atomic_write_json(path, {"pid": pid, "create_time": psutil.Process(pid).create_time(), "argv": list(argv),
                             "log": str(log)})


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return PidRecord(int(raw["pid"]), float(raw["create_time"]), tuple(raw.get("argv", ())), str(raw.get("log", "")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise DeploymentError("is not a fedcredit PID file: remove it if no process runs", source=str(path)) from None


def _descendants(pid: int) -> list:
    """psutil.Process objects of `pid`'s descendants (they remember their start time, so a
    later signal never reaches a process that merely reuses a PID)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _orphans_of(pid: int) -> list:
    """Flower helpers left by `pid`: members of the process group it leads (we start every
    process in its own session) and `flower-superexec ... --parent-pid PID`, which Flower starts
    in a session of its own."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
            adopted = any(a == "--parent-pid" and i + 1 < len(cmd) and cmd[i + 1] == str(pid)
                          for i, a in enumerate(cmd))
            if proc.pid != pid and (adopted or os.getpgid(proc.pid) == pid):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError):
            continue
    return found


def stop_log_pumps(log: Path, *, timeout: float = 5.0) -> None:
    """Wait for the log pumps writing `log` to drain and exit (their writers are gone), then
    terminate any that have not."""
    pumps = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "fedcredit.deployment.logpump" in cmd and str(log) in cmd:
            pumps.append(proc)
    _, alive = psutil.wait_procs(pumps, timeout=timeout)
    for proc in alive:
        try:
            proc.terminate()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(alive, timeout=timeout)


def stop_tree(pid: int, *, timeout: float = STOP_TIMEOUT, known: Sequence = (), root_done: bool = False) -> None:
    """SIGTERM `pid` and wait (Flower shuts down cleanly on it), then terminate whatever it left
    (its descendants, its process group, helpers that watch it), SIGKILL after a grace period.
    `root_done`: the caller already stopped and reaped `pid` itself (its number may be reused)."""
    family = {p.pid: p for p in known}
    if not root_done:
        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            root = None
        family.update((p.pid, p) for p in _descendants(pid))
        if root is not None:
            try:
                root.terminate()
                root.wait(timeout)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                family.update((p.pid, p) for p in _descendants(pid))
                root.kill()
                try:
                    root.wait(5)
                except psutil.TimeoutExpired:
                    pass
    family.update((p.pid, p) for p in _orphans_of(pid))
    procs = [p for q, p in family.items() if q != pid]
    _, procs = psutil.wait_procs(procs, timeout=2)     # the log pump drains its last lines and exits itself
    for p in procs:
        try:
            p.terminate()           # psutil checks the start time: a reused PID is not signalled
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    _, alive = psutil.wait_procs(procs, timeout=5)
    for p in alive:
        try:
            p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(alive, timeout=5)


class Service:
    """One Flower process we started: its Popen, log file, PID file; stops its whole tree."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_file: Path, pid_file: Path,
                 cwd: Path):
        from fedcredit.deployment import logpump

        self.name, self.argv, self.log_file, self.pid_file = name, argv, log_file, pid_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        logpump.rotate_if_full(log_file)
        with log_file.open("ab") as log:
            log.write(f"\n=== {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} fedcredit started: "
                      f"{shell_join(argv)}\n".encode())
            self.offset = log.tell()
        # The process writes into a pipe; the pump strips colour codes, rotates the log by size and
        # exits when the last writer (the process and its helpers) is gone. Neither holds our stdout.
        read, write = os.pipe()
        try:
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=write,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            self.pump = subprocess.Popen([sys.executable, "-m", "fedcredit.deployment.logpump", str(log_file)],
                                         cwd=PROJECT_DIR, stdin=read, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(read)
            os.close(write)
        self._seen: dict[int, Any] = {}     # pid → psutil.Process of every helper seen alive
        self._read_at = self.offset

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def remember_children(self) -> None:
        self._seen = {pid: p for pid, p in self._seen.items() if p.is_running()}
        self._seen.update((p.pid, p) for p in _descendants(self.pid))

    def new_output(self) -> str:
        """Log text written since the last call."""
        try:
            with self.log_file.open("rb") as f:
                f.seek(self._read_at)
                data = f.read()
        except OSError:
            return ""
        self._read_at += len(data)
        return data.decode("utf-8", errors="replace")

    def log_text(self) -> str:
        try:
            with self.log_file.open("rb") as f:
                f.seek(self.offset)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def write_pid_file(self) -> None:
        write_pid_record(self.pid_file, self.pid, self.argv, self.log_file)

    def returncode(self) -> int | None:
        return self.proc.returncode

    def successor(self) -> Service | None:
        """A process that took this one's place (see the Fleet gateway's certificate reload)."""
        return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to `timeout` (then SIGKILL), then clean up the helpers; the exit code."""
        if self.alive():
            self.remember_children()
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.remember_children()
                self.proc.kill()
                self.proc.wait(10)
        stop_tree(self.pid, known=list(self._seen.values()), root_done=True)
        stop_log_pumps(self.log_file)
        self.remove_pid_file()
        return self.proc.returncode

    def remove_pid_file(self) -> None:
        record = None
        try:
            record = read_pid_file(self.pid_file)
        except DeploymentError:
            pass
        if record is not None and record.pid == self.pid:
            self.pid_file.unlink(missing_ok=True)


def refuse_if_running(pid_file: Path, what: str, stop_hint: str) -> None:
    record = read_pid_file(pid_file)
    if record is None:
        return
    if record.process() is not None:
        raise DeploymentError(f"{what} already runs (PID {record.pid}, log {record.log}): stop it first with "
                              f"`{stop_hint}`", source=str(pid_file))
    pid_file.unlink(missing_ok=True)    # stale: the process is gone


def stop_from_pid_file(pid_file: Path, what: str, *, timeout: float = STOP_TIMEOUT) -> int | None:
    """Stop the process a PID file names; returns its PID, or None if nothing was running."""
    record = read_pid_file(pid_file)
    if record is None:
        return None
    proc = record.process()
    if proc is None:
        pid_file.unlink(missing_ok=True)
        return None
    stop_tree(record.pid, timeout=timeout)
    if record.log:
        stop_log_pumps(Path(record.log))
    pid_file.unlink(missing_ok=True)
    return record.pid


# ---- SuperLink --------------------------------------------------------------------------------


def _tail(text: str, lines: int = 1) -> str:
    kept = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("===")]
    return " | ".join(kept[-lines:])


def probe_superlink(settings: CoordinatorSettings, insecure: bool) -> str | None:
    """GET /health on the SuperLink; None when it answered 200, else why not."""
    scheme = "http" if insecure else "https"
    url = f"{scheme}://{settings.control_address}/health"
    context = None
    if not insecure:
        context = ssl.create_default_context(cafile=str(settings.ca_cert))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),   # never via a proxy
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=2) as resp:
            return None if resp.status == 200 else f"HTTP {resp.status}"
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise DeploymentError(f"the SuperLink's certificate does not verify against {settings.ca_cert}: "
                                  f"{reason.verify_message}", source=f"{settings.source} [coordinator]",
                                  field="server_cert") from None
        return str(reason)
    except (OSError, ValueError) as exc:
        return str(exc)


def start_superlink(cfg: CoordinatorConfig, *, wait: float = DEFAULT_WAIT, out: Print = print,
                    echo: TextIO | None = None) -> Service:
    """Check, start the SuperLink, wait until it answers /health, write the federation entry,
    register every partner's key. On any failure the SuperLink is stopped before the error."""
    s = cfg.settings
    source = f"{cfg.source} [coordinator]"
    argv = superlink_command(cfg)
    executable("flwr")
    refuse_if_running(s.pid_file, "the SuperLink", f"fedcredit server stop --config {cfg.source}")
    check_port_free(LOOPBACK, s.control_port, source=source, field="control_port")
    s.flwr_home.mkdir(parents=True, exist_ok=True)
    env = flower_env(s.flwr_home)
    service = Service("SuperLink", argv, env, s.log_file, s.pid_file, cwd=s.flwr_home)
    try:
        deadline = time.monotonic() + wait
        why: str | None = "not started"
        while True:
            if echo is not None:
                echo.write(service.new_output())
                echo.flush()
            if not service.alive():
                raise DeploymentError(f"the SuperLink exited (code {service.proc.returncode}): "
                                      f"{_tail(service.log_text(), 3)} (log {s.log_file})", source=source)
            why = probe_superlink(s, cfg.insecure)
            if why is None:
                break
            if time.monotonic() > deadline:
                raise DeploymentError(f"the SuperLink did not answer on {s.control_address} within {wait:g} s "
                                      f"({why}); see {s.log_file}", source=source)
            time.sleep(0.25)
        service.remember_children()
        config_path = write_federation(s, cfg.insecure)
        out(f"SuperLink PID {service.pid} listening on {s.control_address} (loopback only) "
            f"({'INSECURE, no TLS, no node authentication' if cfg.insecure else 'TLS, node authentication on'})")
        out(f"  federation '{s.federation}' -> {s.control_address} written to {config_path}")
        from fedcredit.deployment.node_registry import register_configured

        register_configured(cfg, out)       # none when insecure
        service.write_pid_file()
        hold_stop_signals()      # until the caller has taken charge of the service (see `serve`)
    except BaseException:
        service.stop()
        release_stop_signals()
        raise
    return service


# ---- SuperNode --------------------------------------------------------------------------------

_NODE_ID = re.compile(r"SuperNode ID: (\d+)")


def _supernode_failure(text: str, node: NodeConfig, own_pid: int | None = None) -> str | None:
    """Why a SuperNode's log says it cannot join (None when it does not say)."""
    s = node.settings
    if "[code: 2004]" in text or "Failed to activate SuperNode" in text:
        twin = _same_key_supernode(s, own_pid)
        if twin:
            return (f"the SuperLink at {s.superlink} refused this node (Flower code 2004) because a SuperNode with "
                    f"the same key is already online: {twin}; stop it first (one node per key)")
        return f"the SuperLink at {s.superlink} refused this node (Flower code 2004): {_unregistered_key_hint(s)}"
    if "[code: 2001]" in text:
        return (f"the SuperLink at {s.superlink} requires node authentication (Flower code 2001): set auth_key "
                "in [node]")
    m = re.search(r"CERTIFICATE_VERIFY_FAILED\][^\n(]*", text)
    if m:
        return (f"the SuperLink at {s.superlink} presented a certificate that root_certificates "
                f"{s.root_certificates} does not accept ({m.group(0).split(']', 1)[1].strip()}): use the "
                "coordinator's ca.crt and an address named in the server certificate")
    if "SSL" in text and "handshake" in text:
        return f"the TLS handshake with {s.superlink} failed: is the SuperLink running with TLS?"
    if "Unable to parse the private key" in text:
        return f"Flower cannot read auth_key {s.auth_key}"
    return None


def _unregistered_key_hint(s: NodeSettings) -> str:
    """What to do when the SuperLink does not know this node's key (after a key rotation, too)."""
    from fedcredit.protection.node_keys import OLD, with_suffix

    key = s.auth_key
    if key is not None and key.name.endswith(OLD):
        return (f"auth_key {key} is the key retired by `fedcredit node-key rotate --commit`; the coordinator "
                f"unregisters it: set auth_key to {key.with_name(key.name[:-len(OLD)])}")
    pub = tls.public_key_path(key) if key else None
    send = (f"send {pub}" if pub is not None and pub.is_file() else
            f"send the public key of {key} (`ssh-keygen -y -f {key}` prints it)")
    if key is not None and with_suffix(key, OLD).is_file():
        return (f"its key is not registered: {key} is the new key of a rotation (the previous one is now "
                f"{with_suffix(key, OLD)}) and the coordinator has not registered it (yet) — {send} to the "
                f"coordinator, who runs `fedcredit server register` for partner '{s.name}'")
    return (f"either its key is not registered — {send} to the coordinator, who adds it to public_key of partner "
            f"'{s.name}' and runs `fedcredit server register` — or a SuperNode with this key is already online "
            "elsewhere (stop it first: one node per key)")


def _same_key_supernode(s: NodeSettings, own_pid: int | None = None) -> str | None:
    """Another running flower-supernode on this machine (not `own_pid`) with the same private key."""
    if s.auth_key is None or not s.auth_key.is_file():
        return None
    mine = s.auth_key.read_bytes()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if (proc.pid == own_pid or not any(a.endswith("flower-supernode") for a in cmd[:2])
                or "--auth-supernode-private-key" not in cmd):
            continue
        key = Path(cmd[cmd.index("--auth-supernode-private-key") + 1])
        try:
            if key.resolve() == s.auth_key.resolve() or key.read_bytes() == mine:
                config = next((a for a in cmd if a.startswith("partner-config=")), "")
                return f"PID {proc.pid} ({config or 'key ' + str(key)})"
        except OSError:
            continue
    return None


def start_supernode(node: NodeConfig, *, wait: float = DEFAULT_WAIT, out: Print = print,
                    echo: TextIO | None = None) -> tuple[Service, str]:
    """Check, start the SuperNode, wait until the SuperLink has activated it ("SuperNode ID: N"
    in its log). A refusal (unregistered key, wrong CA), an exit or no contact within `wait`
    seconds stops the SuperNode and raises a DeploymentError saying why."""
    s = node.settings
    source = f"{s.source} [node]"
    argv = supernode_command(node)
    refuse_if_running(s.pid_file, f"the SuperNode of '{s.name}'", f"fedcredit partner stop --config {s.source}")
    check_port_free("127.0.0.1", s.port, source=source, field="port")
    s.flwr_home.mkdir(parents=True, exist_ok=True)
    if s.trusted_app_keys:
        env = app_check_env(s)
    else:
        env = flower_env(s.flwr_home)
        out(f"warning: partner '{s.name}' has no trusted_app_keys: ANY app the SuperLink sends runs here "
            "(insecure local test only)")
    service = Service(f"SuperNode {s.name}", argv, env, s.log_file, s.pid_file, cwd=s.flwr_home)
    try:
        deadline = time.monotonic() + wait
        while True:
            if echo is not None:
                echo.write(service.new_output())
                echo.flush()
            service.remember_children()
            text = service.log_text()
            found = _NODE_ID.search(text)
            if found:
                break
            failure = _supernode_failure(text, node, service.pid)
            if failure:
                raise DeploymentError(f"{failure} (log {s.log_file})", source=source)
            if not service.alive():
                raise DeploymentError(f"the SuperNode exited (code {service.proc.returncode}): "
                                      f"{_tail(text, 3)} (log {s.log_file})", source=source)
            if time.monotonic() > deadline:
                raise DeploymentError(f"no contact with the SuperLink at {s.superlink} within {wait:g} s: check "
                                      "the address and port, that the SuperLink runs, and firewalls "
                                      f"(log {s.log_file})", source=source, field="superlink")
            time.sleep(0.25)
        node_id = found.group(1)
        service.write_pid_file()
        out(f"SuperNode PID {service.pid} for partner '{s.name}' joined {s.superlink} as node {node_id} "
            f"({'INSECURE, no TLS' if node.insecure else 'TLS, authenticated'}); ClientApp port 127.0.0.1:{s.port}")
        hold_stop_signals()      # until the caller has taken charge of the service (see `serve`)
    except BaseException:
        service.stop()
        release_stop_signals()
        raise
    return service, node_id


@dataclass(frozen=True)
class NodeStatus:
    pid: int | None
    since: str
    node_id: str | None
    accepted: int
    refused: int
    last_refused: str


def node_status(s: NodeSettings) -> NodeStatus:
    """What a partner's own files say about its SuperNode: alive, joined as which node, the apps
    it accepted and refused (never contacts the SuperLink)."""
    record = read_pid_file(s.pid_file)
    proc = record.process() if record is not None else None
    since = datetime.fromtimestamp(proc.create_time(), UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if proc else ""
    found = _NODE_ID.findall(s.log_file.read_text(encoding="utf-8", errors="replace")) if s.log_file.is_file() else []
    decisions = []
    if s.app_log.is_file():
        for line in s.app_log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                decisions.append(json.loads(line))
            except ValueError:
                continue
    refused = [e for e in decisions if e.get("decision") == "refused"]
    last = f"{refused[-1].get('time', '')}: {refused[-1].get('reason', '')}" if refused else ""
    return NodeStatus(proc.pid if proc else None, since, found[-1] if found else None,
                      sum(1 for e in decisions if e.get("decision") == "accepted"), len(refused), last)


# ---- foreground -------------------------------------------------------------------------------


class _Stop(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C."""


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _main_thread() -> bool:
    import threading

    return os.name == "posix" and threading.current_thread() is threading.main_thread()


def install_stop_signals() -> Callable[[], None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread; returns the restore function."""
    if not _main_thread():
        return lambda: None

    def handler(signum, frame):
        raise _Stop()

    old = {sig: signal.signal(sig, handler) for sig in _STOP_SIGNALS}
    return lambda: [signal.signal(sig, h) for sig, h in old.items()]


def hold_stop_signals() -> None:
    """Defer SIGINT/SIGTERM: a start hands a running service to its caller with them held, so a
    signal in between cannot leave the service without an owner; `serve` releases them."""
    if _main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def release_stop_signals() -> None:
    if _main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def serve(service: Service, *, echo: TextIO | None, out: Print = print, banner: Sequence[str] = (),
          companions: Sequence[Service] = ()) -> int:
    """Print `banner`, then follow the service's log (to `echo`, if given) until SIGINT/SIGTERM
    (stops it cleanly, returns 0) or until it exits by itself (FederationError). `companions`
    (the Fleet gateway in front of the SuperLink) are followed alike and stopped first; when one
    process exits, the others are stopped — unless another took its place (`Service.successor`)."""
    services = [*companions, service]
    gone: Service | None = None
    try:
        release_stop_signals()
        for line in banner:
            out(line)
        while gone is None:
            for i, svc in enumerate(services):
                text = svc.new_output()
                if text and echo is not None:
                    echo.write(text)
                    echo.flush()
                svc.remember_children()
                if not svc.alive():
                    successor = svc.successor()
                    if successor is None:
                        gone = svc
                        break
                    services[i] = successor
            else:
                time.sleep(0.25)
    except KeyboardInterrupt:
        for svc in services:
            out(f"stopping the {svc.name} (PID {svc.pid}) ...")
            code = svc.stop()
            out(f"{svc.name} stopped (exit code {code})")
        return 0
    except BaseException:
        for svc in services:
            svc.stop()
        raise
    if echo is not None:
        echo.write(gone.new_output())
    code = gone.returncode()
    for svc in services:
        svc.stop()
    raise FederationError(f"the {gone.name} exited unexpectedly{f' (code {code})' if code is not None else ''}; "
                          f"see {gone.log_file}")


RESTART_DELAYS = (2.0, 5.0, 10.0, 30.0, 60.0)   # seconds before each attempt to rejoin; the last repeats


def supervise(node: NodeConfig, service: Service, *, wait: float, echo: TextIO | None, out: Print = print,
              banner: Sequence[str] = ()) -> int:
    """Serve a partner's SuperNode and start it again whenever it exits by itself — e.g. after the
    SuperLink restarted and no longer knows its session (Flower's SuperNode then exits with 401),
    or was unreachable for a while — retrying with growing delays until it has rejoined.
    SIGINT/SIGTERM stop it cleanly (returns 0)."""
    attempts = 0
    while True:
        try:
            return serve(service, echo=echo, out=out, banner=banner)
        except FederationError as exc:
            out(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} {exc}: starting it again")
        banner = ()
        while True:
            delay = RESTART_DELAYS[min(attempts, len(RESTART_DELAYS) - 1)]
            attempts += 1
            try:
                time.sleep(delay)
                service, node_id = start_supernode(node, wait=wait, echo=echo, out=out)
            except KeyboardInterrupt:
                out("stopped while waiting to rejoin")
                return 0
            except DeploymentError as exc:
                out(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} could not rejoin (attempt {attempts}): {exc}")
                continue
            out(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} rejoined as node {node_id} after {attempts} attempt(s)")
            attempts = 0
            break


# ---- status and run ---------------------------------------------------------------------------


def list_nodes(settings: CoordinatorSettings) -> list[dict[str, Any]]:
    """`flwr supernode list <federation> --format json` against the running SuperLink."""
    cmd = [executable("flwr"), "supernode", "list", settings.federation, "--format", "json"]
    done = subprocess.run(cmd, env=flower_env(settings.flwr_home), cwd=settings.flwr_home, capture_output=True,
                          text=True, timeout=60, check=False)
    try:
        answer = json.loads(done.stdout[done.stdout.index("{"):])
    except ValueError:
        answer = {"success": False, "error-message": (done.stderr or done.stdout).strip()}
    if not answer.get("success"):
        raise DeploymentError(f"cannot list the SuperNodes: {answer.get('error-message', '')!s}".strip(),
                              source=str(settings.source))
    return list(answer.get("nodes", []))


def registered_nodes(settings: CoordinatorSettings) -> dict[str, list[str]]:
    """partner name → its node ids registered on the running SuperLink (`fedcredit.deployment.node_registry`)."""
    from fedcredit.deployment.node_registry import NodeRegistry

    return NodeRegistry.read(settings.nodes_file).node_ids()


def federation_written(settings: CoordinatorSettings) -> bool:
    path = settings.flwr_home / "config.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    return isinstance(data.get("superlink", {}).get(settings.federation), Mapping)


def default_out_dir(cfg: CoordinatorConfig) -> Path:
    return cfg.source.parent / "runs" / f"{cfg.scenario.name}-{datetime.now():%Y%m%d-%H%M%S}"
