"""Progress a person can see (issue 10, part 5): a bar on a terminal, plain lines without ANSI escape
codes in a pipe or file, stdout left to the command's own output."""

from __future__ import annotations

import io
import logging
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from fedcredit.cli import progress as cli_progress
from fedcredit.cli.progress import ProgressView, is_terminal
from fedcredit.server.progress import progress_extra
from tests.commands import run

ESC = "\x1b"
PROJECT = Path(__file__).resolve().parents[2]


def test_steps_become_plain_lines_without_escape_codes(capsys) -> None:
    assert not is_terminal()                                  # pytest captures: not a terminal
    with ProgressView() as view:
        on_round = view.steps("federated rounds", "rounds")
        for done, line in [(0, "round  0/2  statistics …"), (1, "round  1/2  trained …"), (2, "round  2/2 …")]:
            on_round(done, 2, line)
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == ["round  0/2  statistics …", "round  1/2  trained …", "round  2/2 …"]
    assert ESC not in err


def test_a_quick_stream_prints_nothing_and_a_slow_one_prints_a_few_lines(capsys) -> None:
    with ProgressView() as view:                              # a quick job: nothing, so an error stays one line
        on_bytes = view.stream("vault encrypt", "bytes")
        for done in range(0, 101, 10):
            on_bytes(done, 100, "pass 2 of 2: encrypting x.csv")
    assert capsys.readouterr() == ("", "")
    with ProgressView(interval=0) as view:
        on_rows = view.stream("synth", "rows")
        on_rows(0, 2000, "generating and writing a.csv (1,000 rows)")
        on_rows(1000, 2000, "generating and writing b.csv (1,000 rows)")
        on_rows(2000, 2000, "all partners written")
        on_rows(2000, 2000, "all partners written")            # the end is told once
    err = capsys.readouterr().err.splitlines()
    assert [line.split(")")[0] + ")" for line in err] == [
        "synth:   0% (0 of 2,000 rows)", "synth:  50% (1,000 of 2,000 rows)", "synth: 100% (2,000 of 2,000 rows)"]
    assert all(ESC not in line for line in err)


def test_vault_encrypt_keeps_stdout_and_puts_plain_progress_on_stderr(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setattr(cli_progress, "PLAIN_INTERVAL", 0.0)
    key, src = tmp_path / "k.key", tmp_path / "big.csv"
    assert run(capsys, "keys", "new", key)[0] == 0
    src.write_bytes(os.urandom(3 << 20))
    code, out, err = run(capsys, "vault", "encrypt", src, tmp_path / "big.fcv", "--key", key)
    assert code == 0 and out.startswith(f"vault {tmp_path / 'big.fcv'}\n  version 1") and ESC not in out + err
    lines = err.splitlines()
    assert lines[0].startswith("vault encrypt:   0% (") and "pass 1 of 2: fingerprint (SHA-256) of big.csv" in lines[0]
    assert lines[-1].startswith("vault encrypt: 100% (") and "pass 2 of 2: encrypting big.csv" in lines[-1]
    code, out, err = run(capsys, "vault", "decrypt", tmp_path / "big.fcv", tmp_path / "back.csv", "--key", key)
    assert code == 0 and out.startswith("wrote ") and err.splitlines()[-1].startswith("vault decrypt: 100% (")
    assert (tmp_path / "back.csv").read_bytes() == src.read_bytes()


def _cli(*argv: object) -> list[str]:
    return [sys.executable, "-m", "fedcredit.cli.main", *map(str, argv)]


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[Path, Path]:
    key, src = tmp_path / "k.key", tmp_path / "big.csv"
    subprocess.run(_cli("keys", "new", key), check=True, capture_output=True, cwd=PROJECT)
    src.write_bytes(os.urandom(8 << 20))
    return key, src


def test_a_pipe_gets_no_escape_codes(big_file, tmp_path) -> None:
    key, src = big_file
    done = subprocess.run(_cli("vault", "encrypt", src, tmp_path / "p.fcv", "--key", key), capture_output=True,
                          text=True, cwd=PROJECT, env={**os.environ, "TERM": "xterm-256color"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ESC not in done.stdout + done.stderr and done.stdout.startswith("vault ")


def test_a_terminal_gets_a_bar(big_file, tmp_path) -> None:
    key, src = big_file
    leader, follower = pty.openpty()
    proc = subprocess.Popen(_cli("vault", "encrypt", src, tmp_path / "t.fcv", "--key", key), stdin=follower,
                            stdout=follower, stderr=follower, cwd=PROJECT,
                            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"})
    os.close(follower)
    shown = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        try:
            chunk = os.read(leader, 65536) if ready else b""
        except OSError:                                      # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    text = shown.decode(errors="replace")
    assert "pass 2 of 2: encrypting big.csv" in text and "100%" in text and "━" in text   # rich's bar
    assert "vault " in text and "fingerprint " in text                                  # then the header


def test_simulation_round_lines_reach_the_callback_not_flowers_console() -> None:
    """The runner hands the ServerApp's progress lines to `on_round` and keeps them off Flower's
    console, which colours nothing when it writes to a file."""
    from flwr.common.logger import FLOWER_LOGGER, console_handler

    from fedcredit.simulations.runner import flower_console

    console, heard = io.StringIO(), []
    before = (console_handler.stream, console_handler.colored)
    with flower_console(on_round=lambda *step: heard.append(step), log_stream=console):
        FLOWER_LOGGER.log(logging.INFO, "%s", "round  1/3  trained by 2 of 3 partners", extra=progress_extra(1, 3))
        FLOWER_LOGGER.log(logging.INFO, "Flower's own chatter")
        FLOWER_LOGGER.log(logging.INFO, "run directory: x.incomplete", extra={"fedcredit": True})
        FLOWER_LOGGER.log(logging.WARNING, "partner 'insurer-b' stopped at round 1: budget", extra={"fedcredit": True})
    assert heard == [(1, 3, "round  1/3  trained by 2 of 3 partners")]
    assert console.getvalue() == "WARNING :   partner 'insurer-b' stopped at round 1: budget\n"
    assert (console_handler.stream, console_handler.colored) == before
