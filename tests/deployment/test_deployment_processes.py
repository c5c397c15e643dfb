"""Real Flower processes on 127.0.0.1: a SuperLink with TLS and node authentication admits a
registered SuperNode (through the Fleet gateway on the public port, which refuses the Control API
to an outsider and serves a renewed certificate without refusing a connection) and refuses an
unregistered one; `partner start` says so and leaves no process; a partner rotates its key while
both run, and the retired key is refused from then on; a partner refuses an app bundle nobody it
trusts signed; a foreground SuperLink stops cleanly on SIGTERM; a wrong SuperLink address gives up
after a bounded wait. Every process is stopped by PID in `finally`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import tomli_w

from fedcredit.cli.main import main
from fedcredit.deployment import config as conf
from fedcredit.deployment import flower as fl
from fedcredit.deployment import gateway_service as gateway
from fedcredit.deployment import processes as procs
from fedcredit.deployment import superlink as sl
from fedcredit.deployment.node_registry import NodeRegistry
from fedcredit.protection import tls
from fedcredit.protection.node_keys import file_fingerprint
from tests.conftest import make_partner_frame, write_scenario
from tests.processes import free_port, kill_tree, pids_in_files, pids_with_argument

pytestmark = pytest.mark.e2e
PROJECT = Path(__file__).resolve().parents[2]


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedcredit: error: "), err
    return lines[0]


@pytest.fixture
def deployment(tmp_path: Path, app_signing):
    """A coordinator (scenario with bank-a's public key, certs) and two partners: bank-a registered,
    rogue-z with a key the coordinator never saw. Yields (coordinator.toml, bank-a.toml, rogue.toml);
    afterwards stops every process whose command line mentions tmp_path."""
    coord = tmp_path / "coordinator"
    (coord / "keys").mkdir(parents=True)
    tls.make_certificates(coord / "certs")
    port = free_port()
    partners = {}
    for name, kind in (("bank-a", "bank"), ("rogue-z", "insurer")):
        folder = tmp_path / name
        folder.mkdir()
        make_partner_frame(60, 1).to_csv(folder / "data.csv", index=False)
        tls.new_node_key(folder / "node.key")
        path = folder / "partner.toml"
        path.write_text(tomli_w.dumps({
            "partner": {"name": name, "kind": kind, "data": "data.csv"},
            "node": {"superlink": f"127.0.0.1:{port}", "port": free_port(),
                     "root_certificates": str(coord / "certs" / "ca.crt"), "auth_key": "node.key",
                     "trusted_app_keys": [str(app_signing[0])]}}))
        partners[name] = path
    (coord / "keys" / "bank-a.pub").write_bytes((tmp_path / "bank-a" / "node.key.pub").read_bytes())
    scenario = write_scenario(coord, {"bank-a": make_partner_frame(60, 1)},
                              partner_fields={"bank-a": {"public_key": "keys/bank-a.pub"}})
    text = scenario.read_text() + (
        f'\n[coordinator]\naddress = "127.0.0.1"\nport = {port}\ncontrol_port = {free_port()}\n'
        f'ca_cert = "certs/ca.crt"\n'
        f'server_cert = "certs/server.crt"\nserver_key = "certs/server.key"\napp_signature = "{app_signing[1]}"\nfederation = "test-fed"\n')
    scenario.write_text(text)
    try:
        yield scenario, partners["bank-a"], partners["rogue-z"]
    finally:
        settings = conf.read_coordinator_settings(scenario)
        leftovers = pids_in_files(settings.pid_file, settings.gateway_pid_file,
                                  *(conf.read_node_settings(p).pid_file for p in partners.values()))
        kill_tree([*leftovers, *pids_with_argument(str(tmp_path))])


def test_registered_node_joins_and_unregistered_node_is_refused(deployment, tmp_path: Path, capsys) -> None:
    scenario, bank, rogue = deployment
    started = time.monotonic()
    assert main(["server", "start", "--config", str(scenario), "--detach", "--wait", "20"]) == 0
    out = capsys.readouterr().out
    assert "TLS, node authentication on" in out and "registered partner bank-a" in out
    settings = conf.read_coordinator_settings(scenario)
    (registered,) = sl.registered_nodes(settings)["bank-a"]
    assert sl.list_nodes(settings)[0]["status"] == "registered"

    # (a) the registered SuperNode joins: its log names its node id, and the SuperLink lists it online.
    assert main(["partner", "start", "--config", str(bank), "--detach", "--wait", "20"]) == 0
    out = capsys.readouterr().out
    assert f"joined 127.0.0.1:{settings.port} as node {registered}" in out
    nodes = {n["node-id"]: n["status"] for n in sl.list_nodes(settings)}
    assert nodes == {registered: "online"}

    # (a2) Issue 9: the public port serves the Fleet API only. An outsider holding ca.crt and the public
    # address can neither list nor start runs; the gateway logs each attempt with the caller's address.
    public = f"https://127.0.0.1:{settings.port}"
    with httpx.Client(verify=ssl.create_default_context(cafile=settings.ca_cert), trust_env=False) as outsider:
        for path in ("/v1/control/start-run", "/v1/control/list-runs", "/v1/runtime/pull-app-inputs"):
            answer = outsider.post(public + path, content=b"\x00")
            assert answer.status_code == 403 and "Control API listens on the coordinator's loopback" in answer.text
    home = tmp_path / "outsider-home"
    home.mkdir()
    (home / "config.toml").write_text(f'[superlink.consortium]\naddress = "127.0.0.1:{settings.port}"\n'
                                      f'root-certificates = "{settings.ca_cert}"\n')
    done = subprocess.run([fl.executable("flwr"), "ls", "consortium", "--format", "json"], env=fl.flower_env(home),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert json.loads(done.stdout)["success"] is False and "only the Fleet API" in done.stdout
    refused = [ln for ln in settings.gateway_log.read_text().splitlines() if " refused " in ln]
    assert [ln.split(" ", 2)[2] for ln in refused] == [
        "127.0.0.1 POST /v1/control/start-run", "127.0.0.1 POST /v1/control/list-runs",
        "127.0.0.1 POST /v1/runtime/pull-app-inputs", "127.0.0.1 POST /v1/control/list-runs"]
    assert "POST /v1/control/list-runs" not in settings.log_file.read_text()    # never reached the SuperLink

    # (a3) A renewed server certificate is served without refusing a connection while partners go on.
    supernode = procs.read_pid_file(conf.read_node_settings(bank).pid_file).pid
    old_serial = tls.load_certificate(settings.server_cert).serial_number
    polls = Poller(settings)
    with polls:
        assert main(["certs", "renew", "--config", str(scenario), "--ca-key", str(settings.ca_cert.parent / "ca.key")
                     ]) == 0
        assert main(["server", "reload-cert", "--config", str(scenario)]) == 0
    out = capsys.readouterr().out
    new_serial = tls.load_certificate(settings.server_cert).serial_number
    assert "kept the old pair" in out and "finished its connections and exited" in out
    assert "SuperLink (loopback) still" in out
    assert polls.errors == [] and polls.count > 20, polls.errors
    assert polls.serials[0] == old_serial and polls.serials[-1] == new_serial and len(polls.serials) == 2
    assert gateway.probe(settings, False)[1].serial_number == new_serial
    assert {n["node-id"]: n["status"] for n in sl.list_nodes(settings)} == {registered: "online"}
    assert procs.read_pid_file(conf.read_node_settings(bank).pid_file).pid == supernode      # the partner went on

    # (b) an unregistered SuperNode is refused (Flower code 2004); we say so and leave nothing behind.
    assert main(["partner", "start", "--config", str(rogue), "--detach", "--wait", "20"]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert "refused this node" in error and "not registered" in error and "node.key.pub" in error
    assert not pids_with_argument(str(rogue)) and not pids_with_argument(str(rogue.parent / "node.key"))
    assert not conf.read_node_settings(rogue).pid_file.exists()
    assert {n["node-id"]: n["status"] for n in sl.list_nodes(settings)} == {registered: "online"}

    # (c) a second SuperNode with bank-a's key (another folder) is refused, and told why exactly.
    config = tomllib.loads(bank.read_text())
    config["node"].update(port=free_port(), flwr_home="flwr-home-twin")
    twin = bank.parent / "twin.toml"
    twin.write_text(tomli_w.dumps(config))
    assert main(["partner", "start", "--config", str(twin), "--detach", "--wait", "20"]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert "a SuperNode with the same key is already online: PID" in error, error
    assert {n["node-id"]: n["status"] for n in sl.list_nodes(settings)} == {registered: "online"}

    # (d) bank-a rotates its key, with the SuperLink and its SuperNode running: the next key is registered
    # beside the current one, the partner switches to it and rejoins under its name, the old key is retired.
    key, keys = bank.parent / "node.key", scenario.parent / "keys"
    assert main(["node-key", "rotate", str(key)]) == 0
    shutil.copy(f"{key}.next.pub", keys / "bank-a.next.pub")          # what the partner sends
    assert main(["server", "register", "--config", str(scenario), "bank-a", str(keys / "bank-a.next.pub")]) == 0
    assert "partner 'bank-a' now has 2 registered key(s)" in capsys.readouterr().out
    old_id, new_id = sl.registered_nodes(settings)["bank-a"]
    assert old_id == registered
    assert main(["server", "status", "--config", str(scenario)]) == 0
    status = capsys.readouterr().out
    assert f"bank-a           node {old_id:<22} online" in status, status
    assert f"bank-a           node {new_id:<22} registered" in status and "has 2 registered keys" in status
    config = tomllib.loads(scenario.read_text())       # the config follows: both keys while rotating
    config["partners"][0]["public_key"] = ["keys/bank-a.pub", "keys/bank-a.next.pub"]
    scenario.write_text(tomli_w.dumps(config))
    assert main(["node-key", "rotate", str(key), "--commit"]) == 0
    assert main(["partner", "stop", "--config", str(bank)]) == 0
    assert main(["partner", "start", "--config", str(bank), "--detach", "--wait", "20"]) == 0
    assert f"joined 127.0.0.1:{settings.port} as node {new_id}" in capsys.readouterr().out
    assert main(["server", "unregister", "--config", str(scenario), "bank-a", "--key", str(keys / "bank-a.pub")]) == 0
    out = capsys.readouterr().out
    assert f"unregistered partner 'bank-a' node {old_id}" in out and "1 registered key(s) left" in out
    assert "now remove it from the config" in out and "never registered again" in out
    assert sl.registered_nodes(settings) == {"bank-a": [new_id]}
    # a node started with the retired key is refused, and told why
    config = tomllib.loads(bank.read_text())
    config["node"].update(port=free_port(), flwr_home="flwr-home-old", auth_key="node.key.old")
    stale = bank.parent / "stale.toml"
    stale.write_text(tomli_w.dumps(config))
    assert main(["partner", "start", "--config", str(stale), "--detach", "--wait", "20"]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert "refused this node (Flower code 2004)" in error and "node.key.old is the key retired by" in error
    assert NodeRegistry.read(settings.nodes_file).retired[0].key == file_fingerprint(keys / "bank-a.pub")

    # Stopping by PID file: nothing of the deployment is left.
    assert main(["partner", "stop", "--config", str(bank)]) == 0
    assert main(["server", "stop", "--config", str(scenario)]) == 0
    out = capsys.readouterr().out
    assert "stopped the Fleet gateway" in out and "stopped the SuperLink" in out
    assert not pids_with_argument(str(scenario.parent.parent))
    assert time.monotonic() - started < 240   # rotation + renewal + outsider, on a busy machine


class Poller:
    """Polls the public port from two threads until the `with` block ends: a keep-alive client
    (GET /health) and new connections, noting the certificate serial each one was served."""

    def __init__(self, settings: conf.CoordinatorSettings):
        self.settings, self.errors, self.serials, self.count = settings, [], [], 0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._keep_alive), threading.Thread(target=self._fresh)]

    def _keep_alive(self) -> None:
        with httpx.Client(verify=ssl.create_default_context(cafile=self.settings.ca_cert), trust_env=False,
                          timeout=5) as client:
            while not self._stop.is_set():
                try:
                    assert client.get(f"https://127.0.0.1:{self.settings.port}/health").status_code == 200
                    self.count += 1
                except (httpx.HTTPError, AssertionError) as exc:
                    self.errors.append(f"keep-alive: {exc!r}")

    def _fresh(self) -> None:
        while not self._stop.is_set():
            try:
                status, cert = gateway.probe(self.settings, False)
                assert status == 200
                self.count += 1
                if not self.serials or self.serials[-1] != cert.serial_number:
                    self.serials.append(cert.serial_number)
            except (OSError, AssertionError) as exc:
                self.errors.append(f"new connection: {exc!r}")

    def __enter__(self) -> Poller:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.5)                          # a few polls after the swap too
        self._stop.set()
        for t in self._threads:
            t.join(10)


def test_an_app_nobody_signed_is_refused_at_the_partner(deployment, tmp_path: Path, capsys) -> None:
    """Finding 1 of issue 9: whoever can start a run could run code on every partner. The Control API
    now listens on the coordinator's loopback only; even a run started there (e.g. by another user of
    that machine) is refused by the partner before Flower installs the bundle, which it logs."""
    scenario, bank, _ = deployment
    assert main(["server", "start", "--config", str(scenario), "--detach", "--wait", "30"]) == 0
    assert main(["partner", "start", "--config", str(bank), "--detach", "--wait", "30"]) == 0
    capsys.readouterr()
    settings = conf.read_coordinator_settings(scenario)
    home = tmp_path / "outsider-home"          # what the outsider holds: the CA certificate, its own app
    home.mkdir()
    (home / "config.toml").write_text(f'[superlink.consortium]\naddress = "{settings.control_address}"\n'
                                      f'root-certificates = "{settings.ca_cert}"\n')
    app = shutil.copytree(Path(__file__).parent / "outsider_app", tmp_path / "outsider_app")
    marker = tmp_path / "ran-on-partner.txt"
    done = subprocess.run([fl.executable("flwr"), "run", str(app), "consortium", "--stream", "--run-config",
                           f'marker="{marker}"'], env=fl.flower_env(home), cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=False)
    answers = Path(f"{marker}.server")
    assert answers.is_file(), done.stdout + done.stderr     # the outsider's ServerApp did ask the partner
    assert not marker.exists()                              # ... and none of its code ran there
    assert answers.read_text().startswith("error"), answers.read_text()
    node = conf.read_node_settings(bank)
    (entry,) = [json.loads(line) for line in node.app_log.read_text().splitlines()]
    assert entry["decision"] == "refused" and "unsigned" in entry["reason"] and entry["partner"] == "bank-a"
    assert "REFUSED app 'outsider/outsider'" in node.log_file.read_text()
    assert "\x1b[" not in node.log_file.read_text()                  # no colour codes in the log
    assert "Traceback" not in node.log_file.read_text()               # a refusal is not a crash
    assert main(["partner", "status", "--config", str(bank)]) == 0
    status = capsys.readouterr().out
    assert "SuperNode of 'bank-a': PID" in status and "0 accepted, 1 refused" in status and "unsigned" in status


def test_a_node_speaking_under_another_name_is_refused(deployment, tmp_path: Path, capfd) -> None:
    """Finding 3 of issue 9: bank-a's registered key under the name 'bank-two' took part as 'bank-two'.
    Now the coordinator refuses the node, saying which partner its key is registered for."""
    scenario, bank, _ = deployment
    make_partner_frame(600, 1).to_csv(bank.parent / "data.csv", index=False)   # enough rows to answer round 0
    spoof = bank.parent / "spoof.toml"
    spoof.write_text(bank.read_text().replace('name = "bank-a"', 'name = "bank-two"'))
    assert main(["server", "start", "--config", str(scenario), "--detach", "--wait", "30"]) == 0
    assert main(["partner", "start", "--config", str(spoof), "--detach", "--wait", "30"]) == 0
    capfd.readouterr()
    out = tmp_path / "run"
    assert main(["run", "--config", str(scenario), "--out", str(out)]) == 1
    text = "".join(capfd.readouterr())
    (registered,) = sl.registered_nodes(conf.read_coordinator_settings(scenario))["bank-a"]
    assert (f"refused node {registered} calls itself 'bank-two' but its key is registered for partner "
            "'bank-a'") in text
    # the run cannot go on without bank-a: it ends with one line saying why, its folder marked unfinished
    assert "the run did not finish: the statistics round failed: too few replies" in text
    assert "Traceback" not in text and not out.exists()
    assert "too few replies" in json.loads((tmp_path / "run.incomplete" / "failed.json").read_text())["reason"]


def test_a_detached_start_survives_its_reader_going_away(deployment) -> None:
    """`fedcredit server start --detach | head -1`: the SuperLink keeps running after the pipe closes."""
    scenario, _, _ = deployment
    proc = subprocess.Popen([sys.executable, "-m", "fedcredit.cli.main", "server", "start", "--config", str(scenario),
                             "--detach", "--wait", "30"], cwd=PROJECT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        proc.stdout.readline()
        proc.stdout.close()                                # the reader goes away after one line
        assert proc.wait(timeout=120) == 0
        settings = conf.read_coordinator_settings(scenario)
        record = procs.read_pid_file(settings.pid_file)
        assert record is not None and record.process() is not None      # still serving
        assert main(["server", "status", "--config", str(scenario)]) == 0
    finally:
        kill_tree([proc.pid])
    assert main(["server", "stop", "--config", str(scenario)]) == 0


def test_wrong_superlink_address_gives_up_and_cleans_up(deployment, capsys) -> None:
    _, bank, _ = deployment        # no SuperLink runs at all
    start = time.monotonic()
    assert main(["partner", "start", "--config", str(bank), "--detach", "--wait", "3"]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert "no contact with the SuperLink" in error and "within 3 s" in error
    assert time.monotonic() - start < 20
    assert not pids_with_argument(str(bank)) and not conf.read_node_settings(bank).pid_file.exists()


def test_foreground_superlink_stops_cleanly_on_sigterm(deployment) -> None:
    scenario, _, _ = deployment
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "fedcredit.cli.main", "server", "start", "--config", str(scenario),
                             "--wait", "20"], cwd=PROJECT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        deadline = time.monotonic() + 30
        for line in proc.stdout:
            seen.append(line)
            if "running in the foreground" in line or time.monotonic() > deadline:
                break
        assert any("running in the foreground" in ln for ln in seen), "".join(seen)
        settings = conf.read_coordinator_settings(scenario)
        assert pids_in_files(settings.pid_file)
        # A certificate reload replaces the gateway under the foreground process, which follows the new one.
        first = procs.read_pid_file(settings.gateway_pid_file).pid
        assert main(["certs", "renew", "--config", str(scenario), "--ca-key", str(settings.ca_cert.parent / "ca.key"),
                     "--days", "30"]) == 0
        assert main(["server", "reload-cert", "--config", str(scenario)]) == 0
        second = procs.read_pid_file(settings.gateway_pid_file).pid
        assert second != first and proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest
        assert f"stopping the Fleet gateway (PID {second})" in rest and "SuperLink stopped" in rest
        assert not pids_with_argument(str(scenario.parent)) and not settings.pid_file.exists()
        assert not settings.gateway_pid_file.exists()
    finally:
        kill_tree([proc.pid])
