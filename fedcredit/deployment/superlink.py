"""The coordinator's Flower side: the `flower-superlink` command line, starting the SuperLink
and probing its /health, the federation entry in $FLWR_HOME/config.toml, `flwr run` (and the
run-start log), `flwr supernode list`. The SuperLink listens on loopback only; the Fleet gateway
in front of it is `gateway_service`, the keys it admits `node_registry`.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from fedcredit.credit.atomic import atomic_write_text
from fedcredit.credit.errors import InputError
from fedcredit.deployment import PROJECT_DIR
from fedcredit.deployment.config import LOOPBACK, CoordinatorConfig, CoordinatorSettings
from fedcredit.deployment.flower import DEFAULT_WAIT, executable, flower_env, toml_string
from fedcredit.deployment.processes import (
    DeploymentError,
    Print,
    Service,
    check_port_free,
    hold_stop_signals,
    log_tail,
    refuse_if_running,
    release_stop_signals,
    shell_join,
)


def superlink_command(cfg: CoordinatorConfig) -> list[str]:
    s = cfg.settings
    cmd = [executable("flower-superlink")]
    if cfg.insecure:
        cmd += ["--insecure"]
    else:
        cmd += ["--ssl-ca-certfile", str(s.ca_cert), "--ssl-certfile", str(s.server_cert),
                "--ssl-keyfile", str(s.server_key), "--enable-supernode-auth"]
    return cmd + ["--disable-runtime-dependency-installation", "--host", LOOPBACK, "--port", str(s.control_port)]


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
                                      f"{log_tail(service.log_text(), 3)} (log {s.log_file})", source=source)
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
