"""A run killed mid-way (SIGKILL, no clean-up) never under-reports privacy spend."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from fedcredit.privacy.ledger import PrivacyLedger
from tests.conftest import make_partner_frame, write_scenario
from tests.processes import kill_tree

pytestmark = pytest.mark.e2e


def test_killed_run_never_under_reports(tmp_path: Path) -> None:
    frames = {"bank-a": make_partner_frame(1500, 1), "insurer-b": make_partner_frame(900, 2, shift=0.5)}
    scenario = write_scenario(tmp_path / "data", frames, federation={"rounds": 30},
                              privacy={"mode": "sample", "epsilon": 1000.0, "delta": 1e-4, "noise_multiplier": 3.0,
                                       "stats_noise_multiplier": 2.0, "ledger_dir": "ledgers"})
    out = tmp_path / "run"
    rounds_file = out.with_name("run.incomplete") / "rounds.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "fedcredit.cli.main", "simulate", "--scenario", str(scenario),
                             "--out", str(out)], cwd=Path(__file__).resolve().parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if rounds_file.exists() and len(rounds_file.read_text().splitlines()) >= 4:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the run did not reach round 3 within 180 s")
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for p in family:  # no clean-up, no flush: as if the machine lost power
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        proc.wait(timeout=30)
    finally:
        kill_tree([proc.pid, *[p.pid for p in family]])

    recorded = [json.loads(line)["round"] for line in rounds_file.read_text().splitlines() if line.strip()]
    # the record of round r is written once round r+1's updates arrived: those updates left the partners
    received = max(recorded) + 1
    for partner in frames:
        ledger = PrivacyLedger.inspect(tmp_path / "data" / "ledgers" / f"{partner}.privacy-ledger.jsonl")
        dp_rounds = [e.round for e in ledger.entries() if e.mechanism == "dp-sgd"]
        assert len(dp_rounds) >= received and dp_rounds[:received] == list(range(1, received + 1))
    assert not out.exists(), "a killed run must not look finished"
    assert not (rounds_file.parent / "summary.json").exists()
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
