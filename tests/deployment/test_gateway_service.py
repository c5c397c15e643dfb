"""A foreground `server start` follows the SuperLink and the Fleet gateway together (with `sleep`
processes standing in for both, under the real `Service` machinery): a gateway replaced by a
certificate reload is followed on; when one process exits by itself, the other is stopped and the
error names the one that exited."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from fedcredit.credit.errors import FederationError
from fedcredit.deployment import config as conf
from fedcredit.deployment import gateway_service as gs
from fedcredit.deployment import processes as procs

SLEEP = shutil.which("sleep")


def service(cls, name: str, tmp_path: Path, log: str, pid: str) -> procs.Service:
    proc = cls(name, [SLEEP, "60"], dict(os.environ), tmp_path / log, tmp_path / pid, cwd=tmp_path)
    proc.write_pid_file()
    return proc


def later(seconds: float, action) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


@pytest.mark.skipif(SLEEP is None, reason="needs the sleep command")
def test_a_reloaded_gateway_is_followed_and_one_exit_stops_the_rest(tmp_path: Path) -> None:
    superlink = service(procs.Service, "SuperLink", tmp_path, "superlink.log", "superlink.pid")
    gateway = service(gs.GatewayService, "Fleet gateway", tmp_path, "gateway.log", "gateway.pid")
    replacement: list[procs.Service] = []

    def reload() -> None:               # what `server reload-cert` does: a new process takes the PID file,
        replacement.append(service(gs.GatewayService, "Fleet gateway", tmp_path, "gateway.log", "gateway.pid"))
        os.kill(gateway.pid, signal.SIGTERM)                     # ... then the old one exits

    timers = [later(0.5, reload), later(2.0, lambda: os.kill(replacement[0].pid, signal.SIGKILL))]
    started = time.monotonic()
    try:
        with pytest.raises(FederationError, match="the Fleet gateway exited unexpectedly"):
            procs.serve(superlink, echo=None, out=lambda _: None, companions=[gateway])
        assert 1.9 < time.monotonic() - started < 10            # it followed the replacement, then saw it die
        assert not superlink.alive() and not superlink.pid_file.exists()
    finally:
        for t in timers:
            t.cancel()
        for proc in (superlink, gateway, *replacement):
            if proc.alive():
                proc.stop(timeout=2)


def test_the_gateway_command_line(tmp_path: Path) -> None:
    config = tmp_path / "coordinator.toml"
    config.write_text('[coordinator]\naddress = "0.0.0.0"\nport = 8443\ncontrol_port = 7000\nca_cert = "c/ca.crt"\n'
                      'server_cert = "c/server.crt"\nserver_key = "c/server.key"\n')
    s = conf.read_coordinator_settings(config)
    cmd = gs.gateway_command(s, insecure=False, wait=12)
    assert cmd[1:] == ["-m", "fedcredit.deployment.fleet_gateway", "0.0.0.0", "8443", "https://127.0.0.1:7000",
                       "--certfile", str(tmp_path / "c/server.crt"), "--keyfile", str(tmp_path / "c/server.key"),
                       "--cafile", str(tmp_path / "c/ca.crt"), "--wait", "12"]
    assert gs.gateway_command(s, insecure=True)[3:6] == ["0.0.0.0", "8443", "http://127.0.0.1:7000"]   # same topology
