"""The log pump: colour codes removed, lines kept whole, the file rotated by size."""

from __future__ import annotations

import io
from pathlib import Path

from fedcredit.deployment.logpump import pump, rotate_if_full


def test_colour_codes_are_removed_and_lines_kept(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    source = io.BytesIO(b"\x1b[92mINFO \x1b[0m:      SuperNode ID: 42\n100% done\r\n\xff broken utf-8\n")
    assert pump(source, log) == 3
    assert log.read_text(encoding="utf-8").splitlines() == ["INFO :      SuperNode ID: 42", "100% done",
                                                            "\ufffd broken utf-8"]


def test_the_log_rotates_by_size_and_keeps_k_backups(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    pump(io.BytesIO(b"".join(b"line %05d of the log\n" % i for i in range(2000))), log, max_bytes=4096, backups=2)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["node.log", "node.log.1", "node.log.2"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    assert log.read_text().splitlines()[-1] == "line 01999 of the log"


def test_a_nearly_full_log_is_rotated_before_a_start(tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text("x" * 950)
    rotate_if_full(log, max_bytes=1000, backups=1)
    assert not log.exists() or log.stat().st_size == 0
    assert (tmp_path / "node.log.1").read_text() == "x" * 950
    rotate_if_full(log, max_bytes=1000, backups=1)                # small now: left alone
    assert (tmp_path / "node.log.1").read_text() == "x" * 950
