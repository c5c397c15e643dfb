"""`flwr run .` — Flower's own launcher — runs the same ServerApp/ClientApp as our CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import free_port, kill_tree, pids_with_argument

PROJECT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_flwr_run_trains_a_scenario(three_partners: Path, tmp_path: Path) -> None:
    home = tmp_path / "flwr-home"
    home.mkdir()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
           "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(free_port()),
           "FLWR_LOCAL_CONTROL_API_PORT": str(free_port())}
    out = tmp_path / "run"
    flwr = bin_dir / "flwr"
    cmd = [str(flwr), "run", str(PROJECT), "local", "--stream",
           "--federation-config", "num-supernodes=3",
           "--run-config", f"scenario='{three_partners}' out-dir='{out}' rounds=2"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=300)
    finally:
        # `flwr run` leaves a detached local SuperLink running: stop it (and its children) by PID.
        kill_tree([proc.pid, *pids_with_argument(str(home))])
    assert proc.returncode == 0, output[-3000:]
    assert "round  2/2" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 2 and len(summary["partners"]) == 3
    assert summary["federated"]["auc"] > 0.6
    assert not pids_with_argument(str(home))
