"""The Fleet gateway as one of the coordinator's processes: start it, reload its certificate,
report on it, stop it (the gateway itself is `fedcredit.deployment.fleet_gateway`).

`fedcredit server start` starts the gateway (`python -m fedcredit.deployment.fleet_gateway ...`, like the
log pump: the CLI's config loader would cost the long-running gateway pandas, 0.9 s and ~60 MB)
beside the SuperLink on 127.0.0.1:control_port; the gateway boots while the SuperLink starts and
listens on the public address:port once the SuperLink answers. It has its own log and PID file
beside the SuperLink's (`gateway.log`, `gateway.pid`) and runs under the same `Service` machinery.

`server reload-cert` starts a second gateway on the same port (SO_REUSEPORT) with the certificate
now on disk, waits until it serves it, records it in `gateway.pid`, and then
hands the old one over (SIGUSR1: it finishes what is in flight and exits). A foreground
`server start` follows the new gateway from then on (`GatewayService.successor`).
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import psutil

from fedcredit.deployment import PROJECT_DIR
from fedcredit.deployment import fleet_gateway as fg
from fedcredit.deployment.config import LOOPBACK, CoordinatorConfig, CoordinatorSettings, dial_host
from fedcredit.deployment.flower import DEFAULT_WAIT, flower_env
from fedcredit.deployment.processes import (
    STOP_TIMEOUT,
    DeploymentError,
    PidRecord,
    Print,
    Service,
    check_port_free,
    log_tail,
    read_pid_file,
    read_since,
    refuse_if_running,
    stop_from_pid_file,
    stop_log_pumps,
    stop_tree,
)
from fedcredit.protection import tls

HANDOVER_TIMEOUT = fg.HANDOVER_GRACE + fg.KEEP_ALIVE + 10.0


def gateway_command(settings: CoordinatorSettings, insecure: bool, wait: float = DEFAULT_WAIT) -> list[str]:
    upstream = f"{'http' if insecure else 'https'}://{settings.control_address}"
    tls_files = [] if insecure else ["--certfile", str(settings.server_cert), "--keyfile", str(settings.server_key),
                                     "--cafile", str(settings.ca_cert)]
    return [sys.executable, "-m", "fedcredit.deployment.fleet_gateway", settings.address, str(settings.port), upstream,
            *tls_files, "--wait", f"{wait:g}"]


def probe(settings: CoordinatorSettings, insecure: bool, *, public: bool = True):
    """(HTTP status of GET /health, certificate served or None) on the public port (the gateway)
    or the loopback port (the SuperLink); raises OSError when nothing answers."""
    host, port = (dial_host(settings.address), settings.port) if public else (LOOPBACK, settings.control_port)
    return fg.probe(host, port, cafile=None if insecure else str(settings.ca_cert))


class Adopted:
    """A gateway that another command started in our gateway's place (a certificate reload):
    followed and stopped through its PID record, like the Service it replaced."""

    def __init__(self, record: PidRecord, pid_file: Path, read_at: int):
        self.name, self.record, self.pid_file = "Fleet gateway", record, pid_file
        self.log_file, self._read_at = Path(record.log), read_at

    @property
    def pid(self) -> int:
        return self.record.pid

    def alive(self) -> bool:
        return self.record.process() is not None

    def returncode(self) -> int | None:
        return None          # not our child: its exit code is its parent's to collect

    def remember_children(self) -> None:
        pass

    def new_output(self) -> str:
        text, self._read_at = read_since(self.log_file, self._read_at)
        return text

    def successor(self) -> Adopted | None:
        return _successor(self.pid_file, self.pid, self._read_at)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        proc = self.record.process()
        if proc is not None:      # not our child: once it exits it may stay a zombie until its parent reaps it
            proc.terminate()
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.alive():
                proc.kill()
        stop_tree(self.pid, root_done=True)
        stop_log_pumps(self.log_file)
        record = read_record(self.pid_file)
        if record is not None and record.pid == self.pid:
            self.pid_file.unlink(missing_ok=True)
        return None


def read_record(pid_file: Path) -> PidRecord | None:
    try:
        return read_pid_file(pid_file)
    except DeploymentError:
        return None


def _successor(pid_file: Path, pid: int, read_at: int) -> Adopted | None:
    record = read_record(pid_file)
    if record is None or record.pid == pid or record.process() is None:
        return None
    return Adopted(record, pid_file, read_at)


class GatewayService(Service):
    def successor(self) -> Adopted | None:
        return _successor(self.pid_file, self.pid, self._read_at)


def _await_ready(service: Service, settings: CoordinatorSettings, insecure: bool, wait: float,
                 echo: TextIO | None, serial: int | None = None) -> None:
    """Until the gateway's log says it is ready and GET /health through the public port answers
    200 (with the certificate of `serial`, if given); a DeploymentError if it exits or `wait` passes."""
    source = f"{settings.source} [coordinator]"
    deadline = time.monotonic() + wait
    why = "not ready"
    while True:
        if echo is not None:
            echo.write(service.new_output())
            echo.flush()
        if not service.alive():
            raise DeploymentError(f"the Fleet gateway exited (code {service.proc.returncode}): "
                                  f"{log_tail(service.log_text(), 2)} (log {settings.gateway_log})", source=source)
        if fg.READY in service.log_text():
            try:
                status, cert = probe(settings, insecure)
                served = cert.serial_number if cert is not None else None
                if status == 200 and (serial is None or served == serial):
                    return
                why = f"HTTP {status}, certificate serial {served:x}" if served else f"HTTP {status}"
            except OSError as exc:
                why = str(exc)
        if time.monotonic() > deadline:
            raise DeploymentError(f"the Fleet gateway did not answer on {settings.public_address} within {wait:g} s "
                                  f"({why}); see {settings.gateway_log}", source=source)
        time.sleep(0.1)


def spawn_gateway(cfg: CoordinatorConfig, *, wait: float = DEFAULT_WAIT) -> GatewayService:
    """Start the gateway process (it listens once the SuperLink answers, within `wait` s); refuse
    first if one already runs or the public port is taken. `await_gateway` then waits for it."""
    s = cfg.settings
    refuse_if_running(s.gateway_pid_file, "the Fleet gateway", f"fedcredit server stop --config {cfg.source}")
    check_port_free(s.address, s.port, source=f"{cfg.source} [coordinator]", field="port")
    s.state_dir.mkdir(parents=True, exist_ok=True)
    return GatewayService("Fleet gateway", gateway_command(s, cfg.insecure, wait), flower_env(s.flwr_home),
                          s.gateway_log, s.gateway_pid_file, cwd=PROJECT_DIR)


def await_gateway(service: GatewayService, cfg: CoordinatorConfig, *, wait: float = DEFAULT_WAIT,
                  out: Print = print, echo: TextIO | None = None) -> GatewayService:
    """Wait until the gateway answers on the public port and record its PID; on failure it is
    stopped before the error."""
    s = cfg.settings
    try:
        _await_ready(service, s, cfg.insecure, wait, echo)
        service.write_pid_file()
    except BaseException:
        service.stop()
        raise
    out(f"Fleet gateway PID {service.pid} listening on {s.public_address} -> SuperLink {s.control_address}: "
        f"POST /v1/fleet/* and GET /health only, everything else refused and logged "
        f"({'INSECURE, plain HTTP' if cfg.insecure else 'TLS'})")
    return service


def stop_gateway(settings: CoordinatorSettings) -> int | None:
    return stop_from_pid_file(settings.gateway_pid_file, "Fleet gateway")


def reload_certificate(settings: CoordinatorSettings, *, wait: float = DEFAULT_WAIT,
                       out: Print = print) -> int:
    """Serve the certificate now on disk without refusing a connection: a new gateway beside the
    old one, then the old one handed over. Returns the new gateway's PID."""
    source = f"{settings.source} [coordinator]"
    if settings.insecure:
        raise DeploymentError("says insecure = true: there is no certificate to reload", source=source,
                              field="insecure")
    for name in ("ca_cert", "server_cert", "server_key"):
        if getattr(settings, name) is None:
            raise DeploymentError("missing: reload-cert serves the certificate named here", source=source,
                                  field=name)
    cert = tls.check_server_files(settings.ca_cert, settings.server_cert, settings.server_key, source=source,
                                  host=LOOPBACK)
    old = read_record(settings.gateway_pid_file)
    old_proc = old.process() if old is not None else None
    if old is None or old_proc is None:
        raise DeploymentError(f"no Fleet gateway runs (no live PID in {settings.gateway_pid_file}): start the "
                              f"coordinator with `fedcredit server start --config {settings.source}`", source=source)
    argv = list(old.argv)
    where = argv[argv.index(fg.__name__) + 1:][:2] if fg.__name__ in argv else []
    if where != [settings.address, str(settings.port)]:
        raise DeploymentError(f"the running Fleet gateway (PID {old.pid}) listens on {':'.join(where) or '?'}, not "
                              f"on {settings.public_address} as configured now: a changed address or port needs "
                              "`fedcredit server stop` and `start`", source=source, field="port")
    try:
        served = probe(settings, False)[1]
    except OSError:
        served = None
    if served is not None and served.serial_number == cert.serial_number:
        out(f"the Fleet gateway (PID {old.pid}) already serves certificate serial {cert.serial_number:x}")
        return old.pid
    started = time.monotonic()
    new = GatewayService("Fleet gateway", gateway_command(settings, False, wait), flower_env(settings.flwr_home),
                         settings.gateway_log, settings.gateway_pid_file, cwd=PROJECT_DIR)
    try:
        _await_ready(new, settings, False, wait, None, serial=cert.serial_number)
        new.write_pid_file()
    except BaseException:
        stop_tree(new.pid)       # not Service.stop: the old gateway's log pump writes the same log
        new.proc.wait()
        raise
    out(f"new Fleet gateway PID {new.pid} serves certificate serial {cert.serial_number:x} "
        f"(valid to {cert.not_valid_after_utc:%Y-%m-%d}) on {settings.public_address}")
    old_proc.send_signal(signal.SIGUSR1)           # psutil: checks the PID still names that process
    try:
        old_proc.wait(HANDOVER_TIMEOUT)
        how = "finished its connections and exited"
    except psutil.TimeoutExpired:
        stop_tree(old.pid)
        how = f"still had connections after {HANDOVER_TIMEOUT:g} s and was stopped"
    out(f"old Fleet gateway PID {old.pid} handed over and {how} ({time.monotonic() - started:.1f} s in all); "
        "partners have nothing to do (the CA is unchanged)")
    try:
        loopback = probe(settings, False, public=False)[1]
    except OSError:
        loopback = None
    if loopback is not None and loopback.serial_number != cert.serial_number:
        out(f"note: the SuperLink (loopback) still serves its certificate valid to "
            f"{loopback.not_valid_after_utc:%Y-%m-%d}; it takes the new one at its next restart "
            f"(`fedcredit server stop` + `start`; partners rejoin by themselves) — before that date")
    return new.pid


def status_lines(settings: CoordinatorSettings) -> tuple[bool, list[str]]:
    """(gateway running, what `server status` prints about it and about the certificates served)."""
    record = read_record(settings.gateway_pid_file)
    if record is None or record.process() is None:
        return False, [f"Fleet gateway: not running (no live PID in {settings.gateway_pid_file}): partners cannot "
                       f"reach the SuperLink; restart with `fedcredit server stop` and `start`"]
    lines = [f"Fleet gateway: PID {record.pid} on {settings.public_address} (public: Fleet API only), log {record.log}"]
    now = datetime.now(UTC)
    for public, who in ((True, "gateway"), (False, "SuperLink")):
        try:
            cert = probe(settings, settings.insecure, public=public)[1]
        except OSError as exc:
            lines.append(f"  {who} does not answer: {exc}")
            continue
        if cert is not None:
            days = (cert.not_valid_after_utc - now).days
            hint = ("`fedcredit certs renew`, then `server reload-cert`" if public else
                    "once the certificate on disk is renewed, restart it (`server stop`, `start`)")
            lines.append(f"  {who} certificate serial {cert.serial_number:x}, valid to "
                         f"{cert.not_valid_after_utc:%Y-%m-%d} ({days} days)"
                         + (f"  <- soon: {hint}" if days < 30 else ""))
    return True, lines
