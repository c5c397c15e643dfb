"""Which SuperNode keys the coordinator's SuperLink admits, and for which partner.

The coordinator config is the source of truth: each `[[partners]]` entry's `public_key` (one file,
or a list of files while a key rotation is under way) is what `fedcredit server start` registers,
every time (the SuperLink keeps registrations in memory only). `fedcredit server register` /
`unregister` change the running SuperLink at once, and say how the config must follow.

The registry `<flwr_home>/fedcredit/registered-nodes.json` records what is registered on the running
SuperLink and what was retired:

    {"format": 2,
     "partners": {"bank-1": [{"node_id": "123…", "key": "SHA256:…", "public_key": "/abs/keys/bank-1.pub",
                              "registered_at": "2025-01-31T10:00:00+00:00"}]},
     "retired": [{"partner": "bank-1", "node_id": "…", "key": "SHA256:…", "public_key": "…",
                  "registered_at": "…", "unregistered_at": "…"}]}

`fedcredit run` hands partner → node ids to the ServerApp (`registered-nodes`), which admits a node
only under the partner name one of its ids is registered for. A retired key is never registered
again: a config that still lists one is refused. The format of earlier versions, `{"bank-1": "123…"}`,
is still read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fedcredit.credit.atomic import atomic_write_json
from fedcredit.credit.errors import InputError
from fedcredit.credit.scenario import read_toml
from fedcredit.deployment.config import CoordinatorConfig, CoordinatorSettings
from fedcredit.deployment.flower import executable, flower_env
from fedcredit.deployment.processes import DeploymentError
from fedcredit.deployment.superlink import probe_superlink
from fedcredit.protection import tls
from fedcredit.protection.node_keys import file_fingerprint, fingerprint

FORMAT = 2
Print = Callable[[str], None]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Registration:
    """One key registered (or once registered) on the SuperLink for a partner."""

    partner: str
    node_id: str
    key: str = ""                 # SHA256 fingerprint; "" for entries of the old format
    public_key: str = ""          # the file it was registered from
    registered_at: str = ""
    unregistered_at: str = ""

    def describe(self) -> str:
        return f"node {self.node_id} key {self.key or '(fingerprint not recorded)'}"


@dataclass
class NodeRegistry:
    """The registry file: partner → registrations on the running SuperLink, and retired keys."""

    path: Path
    partners: dict[str, list[Registration]] = field(default_factory=dict)
    retired: list[Registration] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> NodeRegistry:
        """The registry at `path` (empty if there is none); InputError naming the file if unreadable."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise _corrupt(path, str(exc)) from None
        try:
            if isinstance(raw, dict) and raw.get("format") == FORMAT:
                partners = {str(name): [Registration(partner=str(name), **entry) for entry in entries]
                            for name, entries in raw.get("partners", {}).items()}
                return cls(path, partners, [Registration(**entry) for entry in raw.get("retired", [])])
            old = isinstance(raw, dict) and "format" not in raw
            if old and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in raw.values()):
                # the format before key rotation: name → node id
                return cls(path, {str(n): [Registration(str(n), str(i))] for n, i in raw.items()})
        except (TypeError, AttributeError) as exc:
            raise _corrupt(path, str(exc)) from None
        raise _corrupt(path, f"neither format {FORMAT} nor the older {{partner: node id}}")

    def write(self) -> None:
        atomic_write_json(self.path, {
            "format": FORMAT,
            "partners": {n: [{k: v for k, v in asdict(r).items() if k not in ("partner", "unregistered_at")}
                             for r in regs] for n, regs in sorted(self.partners.items()) if regs},
            "retired": [asdict(r) for r in self.retired]})

    def node_ids(self) -> dict[str, list[str]]:
        """partner → its registered node ids (partners without one left out)."""
        return {n: [r.node_id for r in regs] for n, regs in sorted(self.partners.items()) if regs}

    def by_node(self) -> dict[str, Registration]:
        """node id → registration, the retired ones included (the current ones win)."""
        found = {r.node_id: r for r in self.retired}
        found.update((r.node_id, r) for regs in self.partners.values() for r in regs)
        return found

    def holder(self, key: str) -> Registration | None:
        return next((r for regs in self.partners.values() for r in regs if key and r.key == key), None)

    def retired_key(self, key: str) -> Registration | None:
        return next((r for r in reversed(self.retired) if key and r.key == key), None)

    def find(self, name: str, *, key: str = "", node_id: str = "", what: str = "") -> Registration:
        """The registration of partner `name` with this key fingerprint or node id; InputError if none."""
        regs = self.partners.get(name, [])
        if not regs:
            known = ", ".join(sorted(n for n, r in self.partners.items() if r)) or "none"
            raise InputError(f"no key is registered for partner '{name}' (registered partners: {known}): check the "
                             "name with `fedcredit server status`", source=str(self.path))
        found = next((r for r in regs if (key and r.key == key) or (node_id and r.node_id == node_id)), None)
        if found is None:
            raise InputError(f"{what or key or 'node ' + node_id} is not registered for partner '{name}'; its "
                             f"registered keys: {'; '.join(r.describe() for r in regs)} (`--node-id` picks one "
                             "by node)", source=str(self.path))
        return found


def _corrupt(path: Path, why: str) -> InputError:
    return InputError(f"is not a fedcredit node registry ({why}): restore it from a backup; deleting it forgets "
                      "which keys were retired", source=str(path))


@contextlib.contextmanager
def locked(settings: CoordinatorSettings) -> Iterator[NodeRegistry]:
    """The registry, read under an exclusive lock held until the caller is done (written or not)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / "registered-nodes.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield NodeRegistry.read(settings.nodes_file)


# ---- the config: which keys each partner may use ------------------------------------------------


def configured_keys(settings: CoordinatorSettings, raw: Mapping[str, Any]) -> dict[str, tuple[Path, ...]]:
    """partner → its node public key files from the config's `public_key` (a path, or a list of
    paths during a rotation), each checked (OpenSSH EC, not another partner's, not retired)."""
    registry = NodeRegistry.read(settings.nodes_file)
    keys: dict[str, tuple[Path, ...]] = {}
    seen: dict[str, str] = {}
    for entry in raw.get("partners", []):
        name = entry.get("name")
        at = f"{settings.source} partner '{name}'"
        value = entry.get("public_key")
        values = [value] if isinstance(value, str) else value
        if value is None:
            raise InputError("missing: every partner needs the path of its node public key (the .pub made by "
                             "`fedcredit node-key new`) so the SuperLink admits its SuperNode", source=at,
                             field="public_key")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
            raise InputError(f"must be the path of the partner's node public key, or a list of paths while its key "
                             f"is rotated (got {value!r})", source=at, field="public_key")
        paths = []
        for text in values:
            path = (settings.source.parent / Path(text.strip()).expanduser()).resolve()
            key = fingerprint(tls.check_node_public_key(path, source=at))
            if key in seen:
                other = "another entry" if seen[key] == name else f"partner '{seen[key]}'"
                raise InputError(f"{path} is the same key as {other}: each partner needs its own key", source=at,
                                 field="public_key")
            retired = registry.retired_key(key)
            if retired is not None:
                raise InputError(f"{path} ({key}) was unregistered on {retired.unregistered_at} (recorded in "
                                 f"{registry.path}): remove it from public_key; a retired key is never registered "
                                 "again (the partner makes a new one with `fedcredit node-key rotate`)",
                                 source=at, field="public_key")
            seen[key] = name
            paths.append(path)
        keys[name] = tuple(paths)
    return keys


# ---- the running SuperLink -------------------------------------------------------------------------


def _flwr(settings: CoordinatorSettings, args: list[str], options: list[str], what: str, source: str) -> dict:
    """`flwr supernode <args> <federation> <options> --format json` → its JSON answer (DeploymentError if refused)."""
    cmd = [executable("flwr"), "supernode", *args, settings.federation, *options, "--format", "json"]
    try:
        done = subprocess.run(cmd, env=flower_env(settings.flwr_home), cwd=settings.flwr_home, capture_output=True,
                              text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise DeploymentError(f"{what} timed out (60 s)", source=source) from None
    try:
        answer = json.loads(done.stdout[done.stdout.index("{"):])
    except ValueError:
        answer = {"success": False, "error-message": (done.stderr or done.stdout).strip()}
    if not answer.get("success"):
        message = " ".join(ln for ln in str(answer.get("error-message", "")).splitlines()
                           if ln.strip() and not ln.startswith("Using SuperLink"))
        raise DeploymentError(f"{what}: the SuperLink refused: {message or 'no reason given'}", source=source)
    return answer


def _register(settings: CoordinatorSettings, name: str, pub: Path, key: str, source: str) -> Registration:
    answer = _flwr(settings, ["register", str(pub)], ["--name", name], f"registering the key {pub}", source)
    return Registration(name, str(answer.get("node-id")), key, str(pub), _now())


def register_configured(cfg: CoordinatorConfig, out: Print) -> NodeRegistry:
    """At `server start`: register every key the config lists on the fresh SuperLink and rewrite the
    registry (retired keys kept; a key registered live but missing from the config is not carried
    over, with a warning)."""
    with locked(cfg.settings) as registry:
        listed = {fingerprint(tls.check_node_public_key(p)) for keys in cfg.public_keys.values() for p in keys}
        for reg in (r for regs in registry.partners.values() for r in regs):
            if reg.key and reg.key not in listed and not cfg.insecure:
                out(f"  warning: the key {reg.key} ({reg.public_key}) of partner '{reg.partner}' was registered "
                    f"with `fedcredit server register` but is not in {cfg.source}: it is not registered now; add it "
                    "to that partner's public_key if the partner still uses it")
        registry.partners = {}
        for name, keys in cfg.public_keys.items():
            for pub in keys:
                reg = _register(cfg.settings, name, pub, file_fingerprint(pub), f"{cfg.source} partner '{name}'")
                registry.partners.setdefault(name, []).append(reg)
                out(f"  registered partner {name:<16} node {reg.node_id}  key {pub}")
            if len(keys) > 1:
                out(f"  note: partner '{name}' has {len(keys)} keys (a rotation under way): once it runs with the new "
                    f"one, `fedcredit server unregister --config {cfg.source} {name} --key OLD.pub`")
        registry.write()
        return registry


def _authenticating(settings: CoordinatorSettings) -> None:
    if settings.insecure:
        raise InputError("insecure = true: that SuperLink has no node authentication, so there are no keys to "
                         "register or unregister", source=f"{settings.source} [coordinator]", field="insecure")


def _running(settings: CoordinatorSettings) -> None:
    source = f"{settings.source} [coordinator]"
    why = probe_superlink(settings, False)
    if why is not None:
        raise DeploymentError(f"the SuperLink does not answer on {settings.control_address} ({why}): start it "
                              f"with `fedcredit server start --config {settings.source}` (it registers every key "
                              "the config lists)", source=source)


def _config_keys(settings: CoordinatorSettings) -> dict[str, tuple[Path, ...]]:
    _authenticating(settings)
    return configured_keys(settings, read_toml(settings.source, "coordinator config"))


def register_key(settings: CoordinatorSettings, name: str, pub: Path, out: Print) -> Registration:
    """`server register`: register `pub` for partner `name` on the running SuperLink, beside its
    other keys (the config must name the partner; it should list the key too)."""
    keys = _config_keys(settings)
    if name not in keys:
        raise InputError(f"no partner '{name}' (partners: {', '.join(keys) or 'none'}): add a [[partners]] entry "
                         "for it first", source=str(settings.source))
    pub = pub.expanduser().resolve()
    key = file_fingerprint(pub, source=str(pub), field="")
    with locked(settings) as registry:
        retired = registry.retired_key(key)
        if retired is not None:
            raise InputError(f"this key ({key}) of partner '{retired.partner}' was unregistered on "
                             f"{retired.unregistered_at}: a retired key is never registered again; ask the partner "
                             "for a new one (`fedcredit node-key rotate`)", source=str(pub))
        holder = registry.holder(key)
        if holder is not None:
            if holder.partner != name:
                raise InputError(f"this key ({key}) is registered for partner '{holder.partner}' (node "
                                 f"{holder.node_id}): each partner needs its own key", source=str(pub))
            out(f"already registered: partner '{name}' {holder.describe()}")
            return holder
        _running(settings)
        reg = _register(settings, name, pub, key, f"{settings.source} partner '{name}'")
        registry.partners.setdefault(name, []).append(reg)
        registry.write()
    out(f"registered partner '{name}' node {reg.node_id} key {key} ({pub}); partner '{name}' now has "
        f"{len(registry.partners[name])} registered key(s)")
    listed = {file_fingerprint(p) for p in keys[name]}
    if key not in listed:
        out(f"now add it to the config, or the next `fedcredit server start` will not register it: in "
            f"{settings.source} partner '{name}': public_key = {json.dumps([str(p) for p in keys[name]] + [str(pub)])}")
    return reg


def unregister_key(settings: CoordinatorSettings, name: str, *, pub: Path | None = None, node_id: str = "",
                   online: Callable[[], dict[str, str]], out: Print) -> Registration:
    """`server unregister`: unregister one of partner `name`'s keys (by public key file or node id)
    on the running SuperLink and retire it for good. `online()` gives node id → status."""
    keys = _config_keys(settings)
    key = file_fingerprint(pub.expanduser(), source=str(pub), field="") if pub is not None else ""
    with locked(settings) as registry:
        reg = registry.find(name, key=key, node_id=node_id, what=f"the key {key} ({pub})" if pub else "")
        _running(settings)
        status = online().get(reg.node_id, "")
        _flwr(settings, ["unregister", reg.node_id], [], f"unregistering node {reg.node_id}",
              f"{settings.source} partner '{name}'")
        reg = replace(reg, unregistered_at=_now())
        registry.partners[name] = [r for r in registry.partners[name] if r.node_id != reg.node_id]
        registry.retired.append(reg)
        registry.write()
    left = registry.partners.get(name, [])
    out(f"unregistered partner '{name}' {reg.describe()}: the SuperLink refuses it from now on, and it is never "
        f"registered again; partner '{name}' has {len(left)} registered key(s) left")
    if status == "online":
        out(f"warning: node {reg.node_id} was online: it is disconnected at its next request")
    if not left:
        out(f"warning: partner '{name}' has no registered key now and can no longer join; if it leaves the "
            f"consortium, remove its [[partners]] entry from {settings.source}")
    configured = [p for p in keys.get(name, ()) if reg.key and file_fingerprint(p) == reg.key]
    if configured:
        rest = [str(p) for p in keys[name] if p not in configured]
        then = (f"public_key = {json.dumps(rest[0] if len(rest) == 1 else rest)}" if rest else
                "delete its [[partners]] entry, or list the partner's new key")
        out(f"now remove it from the config ({settings.source} partner '{name}': {then}): `fedcredit server start` "
            "and `fedcredit run` refuse a config that lists a retired key")
    return reg
