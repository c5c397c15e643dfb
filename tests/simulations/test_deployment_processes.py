"""Real Flower processes on 127.0.0.1: a SuperLink with TLS and node authentication admits a
registered SuperNode and refuses an unregistered one; `partner start` says so and leaves no
process; a partner rotates its key while both run, and the retired key is refused from then on; a
partner refuses an app bundle nobody it trusts signed; a foreground SuperLink stops cleanly on
SIGTERM; a wrong SuperLink address gives up after a bounded wait. Every process is stopped by PID
in `finally`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w

from privacy import tls
from privacy.node_keys import file_fingerprint
from simulations import deployment as d
from simulations.cli import main
from simulations.node_registry import NodeRegistry
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
        f'\n[coordinator]\naddress = "127.0.0.1"\nport = {port}\nca_cert = "certs/ca.crt"\n'
        f'server_cert = "certs/server.crt"\nserver_key = "certs/server.key"\napp_signature = "{app_signing[1]}"\nfederation = "test-fed"\n')
    scenario.write_text(text)
    try:
        yield scenario, partners["bank-a"], partners["rogue-z"]
    finally:
        settings = d.read_coordinator_settings(scenario)
        leftovers = pids_in_files(settings.pid_file, *(d.read_node_settings(p).pid_file for p in partners.values()))
        kill_tree([*leftovers, *pids_with_argument(str(tmp_path))])


def test_registered_node_joins_and_unregistered_node_is_refused(deployment, capsys) -> None:
    scenario, bank, rogue = deployment
    started = time.monotonic()
    assert main(["server", "start", "--config", str(scenario), "--detach", "--wait", "20"]) == 0
    out = capsys.readouterr().out
    assert "TLS, node authentication on" in out and "registered partner bank-a" in out
    settings = d.read_coordinator_settings(scenario)
    (registered,) = d.registered_nodes(settings)["bank-a"]
    assert d.list_nodes(settings)[0]["status"] == "registered"

    # (a) the registered SuperNode joins: its log names its node id, and the SuperLink lists it online.
    assert main(["partner", "start", "--config", str(bank), "--detach", "--wait", "20"]) == 0
    out = capsys.readouterr().out
    assert f"joined 127.0.0.1:{settings.port} as node {registered}" in out
    nodes = {n["node-id"]: n["status"] for n in d.list_nodes(settings)}
    assert nodes == {registered: "online"}

    # (b) an unregistered SuperNode is refused (Flower code 2004); we say so and leave nothing behind.
    assert main(["partner", "start", "--config", str(rogue), "--detach", "--wait", "20"]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert "refused this node" in error and "not registered" in error and "node.key.pub" in error
    assert not pids_with_argument(str(rogue)) and not pids_with_argument(str(rogue.parent / "node.key"))
    assert not d.read_node_settings(rogue).pid_file.exists()
    assert {n["node-id"]: n["status"] for n in d.list_nodes(settings)} == {registered: "online"}

    # (c) a second SuperNode with bank-a's key (another folder) is refused, and told why exactly.
    config = tomllib.loads(bank.read_text())
    config["node"].update(port=free_port(), flwr_home="flwr-home-twin")
    twin = bank.parent / "twin.toml"
    twin.write_text(tomli_w.dumps(config))
    assert main(["partner", "start", "--config", str(twin), "--detach", "--wait", "20"]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert "a SuperNode with the same key is already online: PID" in error, error
    assert {n["node-id"]: n["status"] for n in d.list_nodes(settings)} == {registered: "online"}

    # (d) bank-a rotates its key, with the SuperLink and its SuperNode running: the next key is registered
    # beside the current one, the partner switches to it and rejoins under its name, the old key is retired.
    key, keys = bank.parent / "node.key", scenario.parent / "keys"
    assert main(["node-key", "rotate", str(key)]) == 0
    shutil.copy(f"{key}.next.pub", keys / "bank-a.next.pub")          # what the partner sends
    assert main(["server", "register", "--config", str(scenario), "bank-a", str(keys / "bank-a.next.pub")]) == 0
    assert "partner 'bank-a' now has 2 registered key(s)" in capsys.readouterr().out
    old_id, new_id = d.registered_nodes(settings)["bank-a"]
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
    assert d.registered_nodes(settings) == {"bank-a": [new_id]}
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
    assert "stopped the SuperLink" in capsys.readouterr().out
    assert not pids_with_argument(str(scenario.parent.parent))
    assert time.monotonic() - started < 180


def test_an_app_nobody_signed_is_refused_at_the_partner(deployment, tmp_path: Path, capsys) -> None:
    """Finding 1 of issue 9: anyone who can reach the port with the public ca.crt could run code on
    every partner. Now the partner refuses the bundle before Flower installs it, and logs why."""
    scenario, bank, _ = deployment
    assert main(["server", "start", "--config", str(scenario), "--detach", "--wait", "30"]) == 0
    assert main(["partner", "start", "--config", str(bank), "--detach", "--wait", "30"]) == 0
    capsys.readouterr()
    settings = d.read_coordinator_settings(scenario)
    home = tmp_path / "outsider-home"          # what the outsider holds: the CA certificate, its own app
    home.mkdir()
    (home / "config.toml").write_text(f'[superlink.consortium]\naddress = "127.0.0.1:{settings.port}"\n'
                                      f'root-certificates = "{settings.ca_cert}"\n')
    app = shutil.copytree(Path(__file__).parent / "outsider_app", tmp_path / "outsider_app")
    marker = tmp_path / "ran-on-partner.txt"
    done = subprocess.run([d.executable("flwr"), "run", str(app), "consortium", "--stream", "--run-config",
                           f'marker="{marker}"'], env=d.flower_env(home), cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=False)
    answers = Path(f"{marker}.server")
    assert answers.is_file(), done.stdout + done.stderr     # the outsider's ServerApp did ask the partner
    assert not marker.exists()                              # ... and none of its code ran there
    assert answers.read_text().startswith("error"), answers.read_text()
    node = d.read_node_settings(bank)
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
    (registered,) = d.registered_nodes(d.read_coordinator_settings(scenario))["bank-a"]
    assert (f"refused node {registered} calls itself 'bank-two' but its key is registered for partner "
            "'bank-a'") in text
    # the run cannot go on without bank-a: it ends with one line saying why, its folder marked unfinished
    assert "the run did not finish: the statistics round failed: too few replies" in text
    assert "Traceback" not in text and not out.exists()
    assert "too few replies" in json.loads((tmp_path / "run.incomplete" / "failed.json").read_text())["reason"]


def test_a_detached_start_survives_its_reader_going_away(deployment) -> None:
    """`fedcredit server start --detach | head -1`: the SuperLink keeps running after the pipe closes."""
    scenario, _, _ = deployment
    proc = subprocess.Popen([sys.executable, "-m", "simulations.cli", "server", "start", "--config", str(scenario),
                             "--detach", "--wait", "30"], cwd=PROJECT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    try:
        proc.stdout.readline()
        proc.stdout.close()                                # the reader goes away after one line
        assert proc.wait(timeout=120) == 0
        settings = d.read_coordinator_settings(scenario)
        record = d.read_pid_file(settings.pid_file)
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
    assert not pids_with_argument(str(bank)) and not d.read_node_settings(bank).pid_file.exists()


def test_foreground_superlink_stops_cleanly_on_sigterm(deployment) -> None:
    scenario, _, _ = deployment
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "simulations.cli", "server", "start", "--config", str(scenario),
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
        settings = d.read_coordinator_settings(scenario)
        assert pids_in_files(settings.pid_file)
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, rest
        assert "SuperLink stopped" in rest
        assert not pids_with_argument(str(scenario.parent)) and not settings.pid_file.exists()
    finally:
        kill_tree([proc.pid])
