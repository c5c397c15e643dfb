"""`fedcredit certs | node-key | app | server | partner | run`: stand up and operate a real Flower deployment.

The coordinator runs the SuperLink (`server start`) and the training (`run`); each partner runs
one SuperNode (`partner start`). TLS and node authentication are on unless --insecure, and a
partner runs only app bundles signed by a key it trusts (`app keygen`, `app sign`). Here: certs,
app, server and run, and the helpers the other verb groups share; `partner` is in
`fedcredit.cli.partner`, `node-key` and `server register | unregister` in `fedcredit.cli.node_keys`,
`certs renew` and `server reload-cert` in `fedcredit.cli.gateway`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from fedcredit.cli.gateway import register_reload, register_renew
from fedcredit.credit.errors import InputError

WAIT_HELP = "seconds to wait for the process to be ready before giving up (default %(default)s)"
FOREGROUND = "running in the foreground; Ctrl-C (or SIGTERM) stops it"
INSECURE_HELP = "no TLS and no node authentication — for a local test only (the config must agree)"


def _say(text: str) -> None:
    """print; a reader that went away (`server start --detach | head -1`) never stops what was started."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _warn_insecure(insecure: bool) -> None:
    if insecure:
        print("fedcredit: warning: INSECURE deployment: no TLS, no node authentication; anyone who can reach "
              "the port can join or read traffic. Use it for local tests only.", file=sys.stderr)


def _certs(args: argparse.Namespace) -> int:
    from fedcredit.protection.tls import DEFAULT_SANS, make_certificates

    if args.out is None:
        raise InputError("give --out DIR (a new folder for ca.crt, ca.key, server.crt, server.key), or use "
                         "`fedcredit certs renew` for a new server certificate from the existing CA", source="certs")
    sans = args.san or list(DEFAULT_SANS)
    files = make_certificates(args.out, sans, days=args.days, ca_days=args.ca_days)
    print(f"wrote {files.ca_cert} (CA, valid to {files.ca_not_after:%Y-%m-%d})\n"
          f"      {files.ca_key} (CA private key, mode 600: keep it offline)\n"
          f"      {files.server_cert} (SuperLink, valid to {files.not_after:%Y-%m-%d}; names: "
          f"{', '.join(files.sans)})\n"
          f"      {files.server_key} (SuperLink private key, mode 600)\n"
          f"give every partner {files.ca_cert.name} (their [node] root_certificates); nothing else leaves this folder")
    if "IP:127.0.0.1" not in files.sans:
        print("note: the certificate does not name IP:127.0.0.1; with address \"127.0.0.1\" or \"0.0.0.0\" in "
              "[coordinator], Flower's own SuperExec and the flwr CLI dial 127.0.0.1 and `server start` will "
              "refuse it", file=sys.stderr)
    return 0


def _app_keygen(args: argparse.Namespace) -> int:
    from fedcredit.protection.app_signing import new_signing_key

    pub = new_signing_key(args.path)
    print(f"wrote {args.path} (app-signing private key, mode 600: keep it with the consortium's release "
          f"manager, off the coordinator)\n      {pub} (public key: every partner lists it in [node] "
          "trusted_app_keys)")
    return 0


def _app_sign(args: argparse.Namespace) -> int:
    from fedcredit.credit.atomic import atomic_write_text
    from fedcredit.deployment import PROJECT_DIR
    from fedcredit.deployment.app_bundle import sign_app

    out = args.out.expanduser()
    if out.exists() and not args.force:
        raise InputError("exists: pass --force to replace it (a signature is cheap to make again)", source=str(out))
    sig = sign_app(args.key, PROJECT_DIR)
    atomic_write_text(out, sig.to_text() + "\n")
    print(f"wrote {out}: app bundle sha256 {sig.fab_sha256} signed by key {sig.key_id} at {sig.signed_at}\n"
          "set it as [coordinator] app_signature; sign again after any change to the app's code")
    return 0


def _app_digest(args: argparse.Namespace) -> int:
    from fedcredit.deployment import PROJECT_DIR
    from fedcredit.deployment.app_bundle import app_digest

    print(f"{app_digest(PROJECT_DIR)}  {PROJECT_DIR}")
    return 0


def _server_start(args: argparse.Namespace) -> int:
    from fedcredit.deployment import PROJECT_DIR
    from fedcredit.deployment import gateway_service as gs
    from fedcredit.deployment.config import LOOPBACK, load_coordinator
    from fedcredit.deployment.processes import check_port_free, refuse_if_running, release_stop_signals
    from fedcredit.deployment.superlink import start_superlink

    cfg = load_coordinator(args.config, insecure=args.insecure)
    s = cfg.settings
    insecure = " --insecure" if cfg.insecure else ""
    hint = (f"next: each partner runs `fedcredit partner start --config partner.toml`; then "
            f"`fedcredit run --config {cfg.source}{insecure}` (or `FLWR_HOME={s.flwr_home} flwr run "
            f"{PROJECT_DIR} {s.federation} --stream --run-config \"scenario='{cfg.source}' deployment=true "
            "out-dir='/abs/run/dir'\"`)")

    def start(echo):
        refuse_if_running(s.pid_file, "the SuperLink", f"fedcredit server stop --config {cfg.source}")
        check_port_free(LOOPBACK, s.control_port, source=f"{cfg.source} [coordinator]", field="control_port")
        gateway = gs.spawn_gateway(cfg, wait=args.wait)       # boots while the SuperLink starts
        try:
            superlink = start_superlink(cfg, wait=args.wait, echo=echo, out=_say)
        except BaseException:
            gateway.stop()
            raise
        try:
            return [superlink, gs.await_gateway(gateway, cfg, wait=args.wait, echo=echo, out=_say)]
        except BaseException:
            superlink.stop()
            release_stop_signals()
            raise

    return _launch(args, cfg.insecure, start,
                   [f"  logs {s.log_file}, {s.gateway_log}", f"  PID files {s.pid_file}, {s.gateway_pid_file}",
                    f"  open only TCP {s.port} to the partners; the Control API stays on {s.control_address}", hint],
                   f"fedcredit server stop --config {cfg.source}")


def _launch(args: argparse.Namespace, insecure: bool, start, lines: list[str], stop_command: str) -> int:
    """Start Flower services (SuperLink, Fleet gateway); detached: print where they are and return;
    else serve them in the foreground."""
    from fedcredit.deployment.processes import install_stop_signals, release_stop_signals, serve

    _warn_insecure(insecure)
    restore = install_stop_signals()
    try:
        superlink, *companions = start(None if args.detach else sys.stdout)
        if args.detach:
            _say("\n".join([*lines, f"detached; stop it with `{stop_command}`"]))
            return 0
        return serve(superlink, echo=sys.stdout, banner=[*lines, FOREGROUND], companions=companions)
    finally:
        restore()
        release_stop_signals()


def _server_stop(args: argparse.Namespace) -> int:
    from fedcredit.deployment import gateway_service as gs
    from fedcredit.deployment.config import read_coordinator_settings
    from fedcredit.deployment.processes import stop_from_pid_file

    settings = read_coordinator_settings(args.config)
    gateway = gs.stop_gateway(settings)
    if gateway:
        print(f"stopped the Fleet gateway (PID {gateway})")
    pid = stop_from_pid_file(settings.pid_file, "SuperLink")
    print(f"stopped the SuperLink (PID {pid})" if pid else f"no SuperLink running (no live PID in {settings.pid_file})")
    return 0


def _server_status(args: argparse.Namespace) -> int:
    from fedcredit.deployment import gateway_service as gs
    from fedcredit.deployment.config import read_coordinator_settings
    from fedcredit.deployment.node_registry import NodeRegistry
    from fedcredit.deployment.processes import read_pid_file
    from fedcredit.deployment.superlink import list_nodes

    settings = read_coordinator_settings(args.config)
    record = read_pid_file(settings.pid_file)
    gateway, lines = gs.status_lines(settings)
    if record is None or record.process() is None:
        print("\n".join([f"SuperLink: not running (no live PID in {settings.pid_file})", *lines[:1]]))
        return 1
    print(f"SuperLink: PID {record.pid} on {settings.control_address} (loopback: Control and Runtime APIs), "
          f"log {record.log}")
    print("\n".join(lines))
    registry = NodeRegistry.read(settings.nodes_file)
    known = registry.by_node()
    nodes = list_nodes(settings)
    for node in nodes:
        reg = known.get(str(node.get("node-id")))
        status = node.get("status")
        since = {"online": f"online since {node.get('online-at')}",
                 "offline": f"offline since {node.get('offline-at')}",
                 "unregistered": f"unregistered {node.get('deleted-at')}"}.get(str(status), "never online yet")
        print(f"  {reg.partner if reg else '?':<16} node {node.get('node-id'):<22} {status:<12} {since}"
              f"  key {reg.key if reg and reg.key else '?'}")
    if not nodes:
        print("  no SuperNodes registered")
    for name, regs in sorted(registry.partners.items()):
        if len(regs) > 1:
            print(f"  partner '{name}' has {len(regs)} registered keys (a key rotation): once it is online with the "
                  f"new one, `fedcredit server unregister --config {settings.source} {name} --key OLD.pub`")
    return 0 if gateway else 1


def _run(args: argparse.Namespace) -> int:
    from fedcredit.deployment import PROJECT_DIR
    from fedcredit.deployment.config import load_coordinator
    from fedcredit.deployment.flower import flower_env
    from fedcredit.deployment.processes import read_pid_file, shell_join
    from fedcredit.deployment.superlink import (
        default_out_dir,
        federation_written,
        log_run_start,
        probe_superlink,
        run_command,
    )

    if args.rounds is not None and args.rounds < 1:
        raise InputError(f"must be a whole number ≥ 1 (got {args.rounds})", source="--rounds")
    cfg = load_coordinator(args.config, insecure=args.insecure)
    s = cfg.settings
    if not federation_written(s):
        raise InputError(f"no federation '{s.federation}' in {s.flwr_home / 'config.toml'}: start the SuperLink "
                         f"first with `fedcredit server start --config {cfg.source}`", source=str(cfg.source))
    why = probe_superlink(s, cfg.insecure)
    if why is not None:
        raise InputError(f"the SuperLink does not answer on {s.control_address} ({why}): start it with "
                         f"`fedcredit server start --config {cfg.source}`", source=str(cfg.source))
    gateway = read_pid_file(s.gateway_pid_file)
    if gateway is None or gateway.process() is None:
        raise InputError(f"no Fleet gateway runs on {s.public_address}, so partners cannot reach the SuperLink: "
                         f"restart with `fedcredit server stop` and `start --config {cfg.source}`",
                         source=str(cfg.source))
    out = (args.out or default_out_dir(cfg)).expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise InputError("exists and is not empty: choose a new --out folder", source=str(out))
    cmd = run_command(cfg, out, args.rounds)
    log_run_start(cfg, out, cmd)
    print(f"running: FLWR_HOME={s.flwr_home} {shell_join(cmd)}", flush=True)
    superlink_before = read_pid_file(s.pid_file)
    start = time.monotonic()
    try:
        returncode, last_lines = _stream(cmd, env=flower_env(s.flwr_home), cwd=PROJECT_DIR)
    except KeyboardInterrupt:
        print(f"fedcredit: interrupted; the run may go on in the SuperLink: list it with `FLWR_HOME={s.flwr_home} "
              f"flwr ls {s.federation}` and stop it with `FLWR_HOME={s.flwr_home} flwr stop RUN_ID {s.federation}`",
              file=sys.stderr)
        return 130
    elapsed = time.monotonic() - start
    finished = (out / "summary.json").is_file()
    if returncode != 0 or not finished:
        from fedcredit.credit.rundir import STAGING_SUFFIX, RunDirectory

        run_dir = RunDirectory(out)
        reason = run_dir.failure() if out.is_dir() else None
        if reason is None:
            reason = _why_flwr_stopped(cfg, superlink_before, returncode, last_lines)
            if out.is_dir():
                run_dir.write_failure(reason)
        where = out
        marked = out.with_name(out.name + STAGING_SUFFIX)
        if out.is_dir() and not finished and not marked.exists():
            out.rename(marked)          # like a failed simulation: an unfinished run is never mistaken for one
            where = marked
        print(f"fedcredit: error: the run did not finish: {reason} (what it wrote is in {where})", file=sys.stderr)
        return 1
    print(f"\nrun directory: {out}  ({elapsed:.0f} s)")
    return 0


def _stream(cmd: list[str], *, env: dict[str, str], cwd: Path, keep: int = 20) -> tuple[int, list[str]]:
    """Run `cmd`, echoing its output line by line; (exit code, its last `keep` non-empty lines)."""
    from collections import deque

    last: deque[str] = deque(maxlen=keep)
    with subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace", bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            _say(line.rstrip("\n"))
            if line.strip():
                last.append(line.strip())
        return proc.wait(), list(last)


def _why_flwr_stopped(cfg, superlink_before, returncode: int, last_lines: list[str]) -> str:
    """The reason a run ended without summary.json when the ServerApp could not say it itself."""
    from fedcredit.deployment.processes import read_pid_file
    from fedcredit.deployment.superlink import probe_superlink

    s = cfg.settings
    now = read_pid_file(s.pid_file)
    before = (superlink_before.pid, superlink_before.create_time) if superlink_before else None
    after = (now.pid, now.create_time) if now and now.process() is not None else None
    if before != after or (after is None and probe_superlink(s, cfg.insecure) is not None):
        what = "stopped" if after is None else "restarted"
        return (f"the coordinator's SuperLink {what} during the run, which ended it (flwr exit code {returncode}); "
                f"what partners released before stays charged to their ledgers; start a new run once the "
                f"SuperLink is up (`fedcredit server status --config {cfg.source}`)")
    last = last_lines[-1] if last_lines else "no output"
    return f"flwr exited with code {returncode}: {last}"


def register(sub: argparse._SubParsersAction) -> None:
    from fedcredit.cli.node_keys import register_node_key, register_server_keys
    from fedcredit.cli.partner import register_partner

    certs = sub.add_parser("certs", help="make the consortium CA and the SuperLink's TLS certificate; "
                           "`certs renew`: a new server certificate from the same CA")
    certs.add_argument("--out", type=Path, help="folder for ca.crt, ca.key, server.crt, server.key "
                       "(never overwritten)")
    certs.add_argument("--san", action="append", metavar="DNS:host|IP:addr",
                       help="a name partners dial, repeatable (default: DNS:localhost and IP:127.0.0.1)")
    certs.add_argument("--days", type=int, default=365, help="server certificate lifetime (default %(default)s)")
    certs.add_argument("--ca-days", type=int, default=3650, help="CA lifetime (default %(default)s)")
    certs.set_defaults(func=_certs)
    register_renew(certs)

    register_node_key(sub)

    app = sub.add_parser("app", help="sign the app bundle partners will run")
    app_sub = app.add_subparsers(dest="app_command", required=True)
    a_key = app_sub.add_parser("keygen", help="write an Ed25519 app-signing key PATH (mode 600) and PATH.pub "
                               "(never overwrites)")
    a_key.add_argument("path", metavar="PATH")
    a_key.set_defaults(func=_app_keygen)
    a_sign = app_sub.add_parser("sign", help="sign the app bundle `fedcredit run` sends to the partners")
    a_sign.add_argument("--key", required=True, type=Path, help="the app-signing private key")
    a_sign.add_argument("--out", required=True, type=Path, help="signature file ([coordinator] app_signature)")
    a_sign.add_argument("--force", action="store_true", help="replace OUT if it exists")
    a_sign.set_defaults(func=_app_sign)
    a_dig = app_sub.add_parser("digest", help="print the SHA-256 of the app bundle as it is now")
    a_dig.set_defaults(func=_app_digest)

    server = sub.add_parser("server", help="the coordinator's SuperLink and its Fleet gateway")
    server_sub = server.add_subparsers(dest="server_command", required=True)
    s_start = server_sub.add_parser("start", help="start the SuperLink (loopback), register the partners' keys, "
                                    "start the Fleet gateway (public port)")
    s_start.add_argument("--config", required=True, type=Path, help="coordinator scenario TOML with [coordinator]")
    s_start.add_argument("--detach", action="store_true", help="return once ready; a PID file remembers it")
    s_start.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    s_start.add_argument("--wait", type=float, default=30.0, help=WAIT_HELP)
    s_start.set_defaults(func=_server_start)
    register_reload(server_sub)
    s_stop = server_sub.add_parser("stop", help="stop a detached SuperLink and its Fleet gateway")
    s_stop.add_argument("--config", required=True, type=Path)
    s_stop.set_defaults(func=_server_stop)
    s_status = server_sub.add_parser("status", help="are the SuperLink and the Fleet gateway up, which partners "
                                     "are online, the certificates served")
    s_status.add_argument("--config", required=True, type=Path)
    s_status.set_defaults(func=_server_status)
    register_server_keys(server_sub)

    register_partner(sub)

    run = sub.add_parser("run", help="train the scenario on the running deployment (wraps `flwr run`)")
    run.add_argument("--config", required=True, type=Path, help="coordinator scenario TOML with [coordinator]")
    run.add_argument("--out", type=Path, help="run directory to create (default: runs/<scenario>-<time> beside "
                     "the config)")
    run.add_argument("--rounds", type=int, help="override [federation].rounds")
    run.add_argument("--insecure", action="store_true", help=INSECURE_HELP)
    run.set_defaults(func=_run)
