"""Real deployment on 127.0.0.1: a SuperLink and three SuperNodes as separate processes, with TLS,
node authentication, a signed app, SecAgg+ and record-level DP; a partner killed mid-run costs one
timeout and is reported, and every partner rejoins by itself after a coordinator restart; a partner
that declines and one killed in the same SecAgg+ round end the run with a summary. Every process is
stopped by PID, even on failure."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import tomli_w

from fedcredit.cli.main import main
from fedcredit.deployment import config as conf
from fedcredit.deployment import superlink as sl
from fedcredit.protection import tls
from tests.conftest import make_partner_frame, write_scenario
from tests.processes import free_port, kill_tree, pids_in_files, pids_with_argument

pytestmark = pytest.mark.e2e
PARTNERS = (("bank-a", "bank", 1500, 1, 0.0), ("insurer-b", "insurer", 900, 2, 0.5),
            ("platform-c", "platform", 600, 3, 1.0))


@pytest.fixture
def consortium(tmp_path: Path, app_signing):
    """Coordinator folder (certs, scenario with the partners' public keys) + one folder per partner
    (data, node key, partner.toml with its own DP policy) + a rogue partner nobody registered."""
    coord = tmp_path / "coordinator"
    (coord / "keys").mkdir(parents=True)
    tls.make_certificates(coord / "certs")
    port = free_port()
    configs: dict[str, Path] = {}
    for name, kind, rows, seed, shift in (*PARTNERS, ("rogue-z", "bank", 300, 9, 0.0)):
        folder = tmp_path / name
        folder.mkdir()
        make_partner_frame(rows, seed, shift=shift).to_csv(folder / "data.csv", index=False)
        tls.new_node_key(folder / "node.key")
        configs[name] = folder / "partner.toml"
        configs[name].write_text(tomli_w.dumps({
            "partner": {"name": name, "kind": kind, "data": "data.csv"},
            "privacy": {"mode": "sample", "epsilon": 8.0, "run_epsilon": 8.0, "delta": 1e-4, "noise_multiplier": 2.0,
                        "stats_noise_multiplier": 2.0},
            "node": {"superlink": f"127.0.0.1:{port}", "port": free_port(),
                     "root_certificates": str(coord / "certs" / "ca.crt"), "auth_key": "node.key",
                     "trusted_app_keys": [str(app_signing[0])]}}))
        if name != "rogue-z":
            (coord / "keys" / f"{name}.pub").write_bytes((folder / "node.key.pub").read_bytes())
    scenario = write_scenario(coord, {n: make_partner_frame(50, 1) for n, *_ in PARTNERS},
                              federation={"rounds": 2, "round_timeout": 60},
                              partner_fields={n: {"public_key": f"keys/{n}.pub"} for n, *_ in PARTNERS})
    for name, *_ in PARTNERS:
        (coord / f"{name}.csv").unlink()   # the coordinator holds no partner data
    text = scenario.read_text()
    for name, *_ in PARTNERS:
        text = text.replace(f'data = "{name}.csv"\n', "")
    scenario.write_text(text + (
        f'\n[coordinator]\naddress = "127.0.0.1"\nport = {port}\ncontrol_port = {free_port()}\n'
        f'ca_cert = "certs/ca.crt"\n'
        f'server_cert = "certs/server.crt"\nserver_key = "certs/server.key"\napp_signature = "{app_signing[1]}"\nfederation = "fedcredit-test"\n'))
    try:
        yield scenario, configs
    finally:
        stop_deployment(scenario, configs, tmp_path)


def stop_deployment(scenario: Path, configs: dict[str, Path], tmp_path: Path) -> None:
    """Stop, by PID, every process a deployment test started: the coordinator's and each partner's (their PID
    files), and anything still running with the test's folder in its command line."""
    settings = conf.read_coordinator_settings(scenario)
    pid_files = [settings.pid_file, settings.gateway_pid_file,
                 *(conf.read_node_settings(c).pid_file for c in configs.values())]
    kill_tree([*pids_in_files(*pid_files), *pids_with_argument(str(tmp_path))])


def _start(scenario: Path, configs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "start", "--config", str(scenario), "--detach", "--wait", "30"]) == 0
    for name, *_ in PARTNERS:
        assert main(["partner", "start", "--config", str(configs[name]), "--detach", "--wait", "30"]) == 0
    capsys.readouterr()


def test_a_partner_killed_mid_run_is_reported_and_everyone_rejoins_after_a_coordinator_restart(
        consortium, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A partner killed mid-run costs one timeout and is reported; its supervisor starts it again.
    Finding 4 of issue 9: after a SuperLink restart every SuperNode used to exit (401); now each
    partner's supervisor starts it again, all rejoin by themselves, and the next run trains."""
    scenario, configs = consortium
    _start(scenario, configs, capsys)
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "fedcredit.cli.main", "run", "--config", str(scenario),
                            "--out", str(out)], cwd=Path(__file__).resolve().parents[2],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not ((out / "rounds.jsonl").exists() and (out / "rounds.jsonl").read_text().strip()):
            assert time.monotonic() < deadline and run.poll() is None, "round 1 never completed"
            time.sleep(0.2)
        victim = int(json.loads(conf.read_node_settings(configs["platform-c"]).pid_file.read_text())["pid"])
        for proc in [psutil.Process(victim), *psutil.Process(victim).children(recursive=True)]:
            proc.send_signal(signal.SIGKILL)
        output, _ = run.communicate(timeout=240)
    finally:
        kill_tree([run.pid])
    assert run.returncode == 0, output[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["dropped"] == [{"partner": "platform-c", "round": 2}]
    assert summary["rounds"] == 2
    gone = next(p for p in summary["partners"] if p["name"] == "platform-c")
    assert gone["dropped_round"] == 2 and gone["federated"] is None
    report = json.loads((out / "privacy_report.json").read_text())
    assert next(p for p in report["partners"] if p["name"] == "platform-c")["status"] == "dropped"

    # the coordinator restarts during a run: that run ends cleanly, marked incomplete with the reason,
    # and nobody restarts a partner by hand
    settings = conf.read_coordinator_settings(scenario)
    cut = tmp_path / "cut-short"
    run = subprocess.Popen([sys.executable, "-m", "fedcredit.cli.main", "run", "--config", str(scenario),
                            "--out", str(cut)], cwd=Path(__file__).resolve().parents[2],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (cut / "config.json").exists():
            assert time.monotonic() < deadline and run.poll() is None, "the second run never started"
            time.sleep(0.2)
        assert main(["server", "stop", "--config", str(scenario)]) == 0
        assert main(["server", "start", "--config", str(scenario), "--detach", "--wait", "30"]) == 0
        output, _ = run.communicate(timeout=120)
    finally:
        kill_tree([run.pid])
    capsys.readouterr()
    assert run.returncode == 1, output[-3000:]
    assert "Traceback" not in output.split("fedcredit: error:")[-1]
    marked = cut.with_name(cut.name + ".incomplete")
    assert not cut.exists() and not (marked / "summary.json").exists()
    reason = json.loads((marked / "failed.json").read_text())["reason"]
    assert "SuperLink stopped" in reason or "SuperLink restarted" in reason, reason
    assert reason in output
    registered = {i for ids in sl.registered_nodes(settings).values() for i in ids}
    deadline = time.monotonic() + 240          # each supervisor retries within 2-10 s; a rejoin takes seconds
    while {str(n["node-id"]) for n in sl.list_nodes(settings) if n["status"] == "online"} != registered:
        assert time.monotonic() < deadline, sl.list_nodes(settings)
        time.sleep(1)
    again = tmp_path / "after-restart"
    assert main(["run", "--config", str(scenario), "--out", str(again), "--rounds", "1"]) == 0
    summary = json.loads((again / "summary.json").read_text())
    assert summary["rounds"] == 1 and summary["dropped"] == [] and len(summary["partners"]) == 3
    for name, *_ in PARTNERS:
        assert "rejoined as node" in conf.read_node_settings(configs[name]).supervisor_log.read_text()
        assert main(["partner", "stop", "--config", str(configs[name])]) == 0
    assert main(["server", "stop", "--config", str(scenario)]) == 0
    assert not pids_with_argument(str(tmp_path))


def test_declined_and_killed_in_one_secure_round_end_with_a_summary(consortium, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Finding 2 of issue 9: insurer-b's per-run cap cannot fit round 0, platform-c is killed in
    round 1 (SecAgg+). bank-a alone cannot be aggregated securely: the run ends cleanly, with a
    summary naming who declined and who dropped, and bank-a is never reported dropped."""
    import threading
    import tomllib

    scenario, configs = consortium
    policy = tomllib.loads(configs["insurer-b"].read_text())
    policy["privacy"].pop("noise_multiplier")                  # its budget, not its config, stops it
    policy["privacy"].update(epsilon=0.01, run_epsilon=0.01)
    configs["insurer-b"].write_text(tomli_w.dumps(policy))
    _start(scenario, configs, capsys)
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "fedcredit.cli.main", "run", "--config", str(scenario),
                            "--out", str(out)], cwd=Path(__file__).resolve().parents[2],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(run.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        while not any("shared transform fitted" in line for line in list(lines)):
            assert time.monotonic() < deadline and run.poll() is None, "round 0 never completed:\n" + "".join(lines)
            time.sleep(0.1)
        victim = int(json.loads(conf.read_node_settings(configs["platform-c"]).pid_file.read_text())["pid"])
        for proc in [psutil.Process(victim), *psutil.Process(victim).children(recursive=True)]:
            proc.send_signal(signal.SIGKILL)
        run.wait(timeout=300)
        reader.join(timeout=10)
    finally:
        kill_tree([run.pid])
    output = "".join(lines)
    assert run.returncode == 0, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["declined"] == [{"partner": "insurer-b", "round": 0, "reason": summary["declined"][0]["reason"]}]
    assert "budget" in summary["declined"][0]["reason"] or "cap" in summary["declined"][0]["reason"]
    assert summary["dropped"] == [{"partner": "platform-c", "round": 1}]
    assert "secure aggregation halted in round 1" in summary["ended_early"] and summary["rounds"] == 0
    bank = next(p for p in summary["partners"] if p["name"] == "bank-a")
    assert bank.get("dropped_round") is None and bank["federated"] is not None
    for name in ("insurer-b", "bank-a"):
        assert main(["partner", "stop", "--config", str(configs[name])]) == 0
    assert main(["server", "stop", "--config", str(scenario)]) == 0
