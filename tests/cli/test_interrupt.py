"""Ctrl-C stops `fedcredit simulate` at once: the ServerApp thread of Flower's simulation used to keep the
process alive, polling its dead partners until the round timeout."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedcredit.cli.main import main
from tests.processes import kill_tree

pytestmark = pytest.mark.e2e


def test_an_interrupted_simulation_exits_at_once_and_leaves_an_incomplete_run(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", "--out", str(tmp_path / "data")]) == 0
    capsys.readouterr()
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "fedcredit.cli.main", "simulate", "--scenario",
                            str(tmp_path / "data" / "scenario.toml"), "--out", str(out), "--no-yardsticks"],
                           cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        staging = out.with_name(out.name + ".incomplete")
        deadline = time.monotonic() + 120            # the partners are up once the run directory has its config
        while not (staging / "config.json").exists():
            assert time.monotonic() < deadline and run.poll() is None, "the simulation never started"
            time.sleep(0.2)
        time.sleep(2)
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=60)      # the round timeout is 600 s: this is the fix, not luck
    finally:
        kill_tree([run.pid])
    assert run.returncode == 130 and "fedcredit: interrupted" in output
    assert not out.exists()


SWALLOWS_INTERRUPTS = """
import sys, time
from fedcredit.cli.main import install_interrupt_handler
install_interrupt_handler(grace=float(sys.argv[1]))


def swallow(ready):            # a library loop that catches everything, as a fork handler or a broad except does
    while True:
        try:
            if ready:             # said from inside the try: an interrupt can only land in it
                print("ready", flush=True)
                ready = False
            time.sleep(0.05)
        except BaseException:
            pass


ready = True
while True:                     # an interrupt between two statements of that loop is caught here
    try:
        first, ready = ready, False
        swallow(first)
    except BaseException:
        pass
"""


@pytest.mark.parametrize("second_interrupt", [False, True])
def test_an_interrupt_that_is_swallowed_still_ends_the_process(second_interrupt: bool) -> None:
    grace = "3600" if second_interrupt else "1"
    run = subprocess.Popen([sys.executable, "-c", SWALLOWS_INTERRUPTS, grace],
                           cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        assert run.stdout is not None and run.stdout.readline().strip() == "ready"
        run.send_signal(signal.SIGINT)
        if second_interrupt:                          # the watchdog waits an hour: only the second Ctrl-C ends it
            time.sleep(0.5)
            assert run.poll() is None
            run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=60)
    finally:
        kill_tree([run.pid])
    assert run.returncode == 130 and output.count("fedcredit: interrupted") == 1
