"""`fedcredit partner start | status | stop`: a partner's SuperNode, started in the foreground or
as a detached supervisor that starts it again whenever it exits by itself (the Flower side is
`fedcredit.deployment.supernode`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from fedcredit.cli.deploy import FOREGROUND, INSECURE_HELP, WAIT_HELP, _say, _warn_insecure
from fedcredit.credit.errors import InputError


def _partner_start(args: argparse.Namespace) -> int:
    """Foreground: start the SuperNode and keep it running (restarted whenever it exits by itself)
    until Ctrl-C/SIGTERM. --detach: the same, as a background supervisor this command starts and
    waits for until the node has joined."""
    from fedcredit.deployment.config import load_node
    from fedcredit.deployment.processes import (
        install_stop_signals,
        refuse_if_running,
        release_stop_signals,
        write_pid_record,
    )
    from fedcredit.deployment.supernode import start_supernode, supervise

    node = load_node(args.config, insecure=args.insecure)
    s = node.settings
    stop_command = f"fedcredit partner stop --config {s.source}"
    refuse_if_running(s.supervisor_pid_file, f"the supervisor of '{s.name}'s SuperNode", stop_command)
    if args.detach:
        return _detach_supervisor(args, node, stop_command)
    _warn_insecure(node.insecure)
    restore = install_stop_signals()
    try:
        echo = None if args.supervisor else sys.stdout
        service = start_supernode(node, wait=args.wait, echo=echo, out=_say)[0]
        if args.supervisor:
            write_pid_record(s.supervisor_pid_file, os.getpid(), sys.argv, s.supervisor_log)
        lines = [f"  data {node.partner.data} (stays here; purposes {', '.join(node.partner.purposes)})",
                 f"  log {s.log_file}", f"  PID file {s.pid_file}",
                 "  the SuperNode is started again whenever it exits by itself (e.g. a coordinator restart)"]
        return supervise(node, service, wait=args.wait, echo=echo, out=_say,
                         banner=[*lines, FOREGROUND] if not args.supervisor else [])
    finally:
        restore()
        release_stop_signals()
        if args.supervisor:
            s.supervisor_pid_file.unlink(missing_ok=True)


def _detach_supervisor(args: argparse.Namespace, node, stop_command: str) -> int:
    """Start `partner start --supervisor` in its own session, wait until its SuperNode has joined
    (print what it printed) or it has given up (raise its error)."""
    from fedcredit.deployment import PROJECT_DIR
    from fedcredit.deployment.processes import stop_tree

    s = node.settings
    _warn_insecure(node.insecure)
    s.state_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "fedcredit.cli.main", "partner", "start", "--config", str(s.source), "--wait",
            str(args.wait), "--supervisor", *(["--insecure"] if args.insecure else [])]
    start_at = s.supervisor_log.stat().st_size if s.supervisor_log.exists() else 0
    with s.supervisor_log.open("ab") as log:
        child = subprocess.Popen(argv, cwd=PROJECT_DIR, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)

    def said() -> str:
        with s.supervisor_log.open("rb") as f:
            f.seek(start_at)
            return f.read().decode("utf-8", errors="replace")

    deadline = time.monotonic() + args.wait + 60       # the child's own wait, plus its start-up
    while True:
        text = said()
        if child.poll() is not None:
            errors = [ln for ln in text.splitlines() if ln.startswith("fedcredit: error: ")]
            raise InputError(errors[-1].removeprefix("fedcredit: error: ") if errors else
                             f"the SuperNode supervisor exited (code {child.returncode}); see {s.supervisor_log}")
        if "joined " in text and s.supervisor_pid_file.exists():
            break
        if time.monotonic() > deadline:
            stop_tree(child.pid)
            raise InputError(f"the SuperNode did not join within {args.wait:g} s; see {s.supervisor_log}")
        time.sleep(0.25)
    _say(text.rstrip("\n"))
    _say("\n".join([f"  data {node.partner.data} (stays here; purposes {', '.join(node.partner.purposes)})",
                     f"  log {s.log_file}", f"  supervisor PID {child.pid} (restarts the SuperNode whenever it "
                     f"exits by itself; log {s.supervisor_log})", f"detached; stop it with `{stop_command}`"]))
    return 0


def _partner_status(args: argparse.Namespace) -> int:
    from fedcredit.deployment.config import read_node_settings
    from fedcredit.deployment.processes import read_pid_file
    from fedcredit.deployment.supernode import node_status

    s = read_node_settings(args.config)
    status = node_status(s)
    if status.pid is None:
        _say(f"SuperNode of '{s.name}': not running (no live PID in {s.pid_file})")
    else:
        _say(f"SuperNode of '{s.name}': PID {status.pid}, up since {status.since}, SuperLink {s.superlink}, "
             f"node {status.node_id or '? (not joined yet)'}\n  log {s.log_file}")
    record = read_pid_file(s.supervisor_pid_file)
    if record is not None and record.process() is not None:
        _say(f"  supervisor PID {record.pid}: starts the SuperNode again whenever it exits (log {s.supervisor_log})")
    _say(f"  apps: {status.accepted} accepted, {status.refused} refused (log {s.app_log})"
         + (f"; last refused {status.last_refused}" if status.last_refused else ""))
    if not s.trusted_app_keys:
        _say("  warning: no trusted_app_keys: any app the SuperLink sends would run here")
    return 0 if status.pid is not None else 1


def _partner_stop(args: argparse.Namespace) -> int:
    from fedcredit.deployment.config import read_node_settings
    from fedcredit.deployment.processes import stop_from_pid_file

    settings = read_node_settings(args.config)
    supervisor = stop_from_pid_file(settings.supervisor_pid_file, "SuperNode supervisor")   # stops its node too
    pid = stop_from_pid_file(settings.pid_file, "SuperNode")
    if supervisor:
        print(f"stopped the SuperNode of '{settings.name}' and its supervisor (PID {supervisor})")
    else:
        print(f"stopped the SuperNode of '{settings.name}' (PID {pid})" if pid
              else f"no SuperNode running for '{settings.name}' (no live PID in {settings.pid_file})")
    return 0


def register_partner(sub: argparse._SubParsersAction) -> None:
    partner = sub.add_parser("partner", help="a partner's SuperNode")
    partner_sub = partner.add_subparsers(dest="partner_command", required=True)
    p_start = partner_sub.add_parser("start", help="start this partner's SuperNode and join the SuperLink")
    p_start.add_argument("--config", required=True, type=Path, help="partner.toml with [partner] and [node]")
    p_start.add_argument("--detach", action="store_true", help="return once joined; a PID file remembers it")
    p_start.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    p_start.add_argument("--wait", type=float, default=30.0, help=WAIT_HELP)
    p_start.add_argument("--supervisor", action="store_true", help=argparse.SUPPRESS)   # what --detach starts
    p_start.set_defaults(func=_partner_start)
    p_status = partner_sub.add_parser("status", help="is this partner's SuperNode up, joined, which apps it ran")
    p_status.add_argument("--config", required=True, type=Path)
    p_status.set_defaults(func=_partner_status)
    p_stop = partner_sub.add_parser("stop", help="stop a detached SuperNode")
    p_stop.add_argument("--config", required=True, type=Path)
    p_stop.set_defaults(func=_partner_stop)
