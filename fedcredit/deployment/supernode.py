"""A partner's Flower side: the `flower-supernode` command line and environment (the
signature-checking `flwr-clientapp` first on PATH), starting the SuperNode until the SuperLink
has activated it, why the SuperLink refused it (read from its log), its status from the partner's
own files, and the supervisor that starts it again whenever it exits by itself.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import psutil

from fedcredit.clients import supernode_launcher
from fedcredit.credit.atomic import atomic_write_text
from fedcredit.credit.errors import FederationError
from fedcredit.deployment.config import NodeConfig, NodeSettings
from fedcredit.deployment.flower import DEFAULT_WAIT, executable, flower_env, toml_string
from fedcredit.deployment.processes import (
    DeploymentError,
    Print,
    Service,
    check_port_free,
    hold_stop_signals,
    log_tail,
    read_pid_file,
    refuse_if_running,
    release_stop_signals,
    serve,
)
from fedcredit.protection import tls

LAUNCHER = supernode_launcher.__name__   # `flower-supernode` with a shorter idle wait


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


def supernode_command(node: NodeConfig) -> list[str]:
    s = node.settings
    # Flower's own flower-supernode, started through our launcher: it shortens the 3 s idle wait.
    cmd = [executable("python"), "-m", LAUNCHER, "--superlink", s.superlink, "--port", str(s.port)]
    if node.insecure:
        cmd += ["--insecure"]
    else:
        cmd += ["--root-certificates", str(s.root_certificates), "--auth-supernode-private-key", str(s.auth_key)]
    return cmd + ["--node-config", f"partner-config={toml_string(str(s.source), what='partner config path')}"]


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
        if (proc.pid == own_pid or not any(a.endswith("flower-supernode") or a == LAUNCHER for a in cmd[:3])
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
    env[supernode_launcher.ENV_IDLE_WAIT] = str(s.idle_wait)
    env[supernode_launcher.ENV_WARM_START] = "1" if s.warm_start else "0"
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
                                      f"{log_tail(text, 3)} (log {s.log_file})", source=source)
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
