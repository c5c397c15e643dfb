from __future__ import annotations

from pathlib import Path

import pytest

from privacy.accountant import Release, compose
from privacy.ledger import LedgerError, PrivacyLedger, ledger_path

FP = "ab" * 32


def _ledger(tmp_path: Path) -> PrivacyLedger:
    return PrivacyLedger.open(ledger_path(tmp_path, "bank-a"), FP, "bank-a")


def test_releases_persist_and_compose_across_reopen(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record(Release(20.0, 1.0, 1), mechanism="gaussian-statistics", delta=1e-6, run="r1", round=0)
    for rnd in (1, 2):
        ledger.record(Release(1.0, 0.01, 100), mechanism="dp-sgd", delta=1e-6, run="r1", round=rnd)
    again = _ledger(tmp_path)  # a new process, a new run: same file, same history
    again.record(Release(1.0, 0.01, 100), mechanism="dp-sgd", delta=1e-6, run="r2", round=1)
    entries = _ledger(tmp_path).entries()
    assert [(e.run, e.round, e.mechanism) for e in entries] == [
        ("r1", 0, "gaussian-statistics"), ("r1", 1, "dp-sgd"), ("r1", 2, "dp-sgd"), ("r2", 1, "dp-sgd")]
    expected = compose([Release(20.0, 1.0, 1), Release(1.0, 0.01, 300)], 1e-6).epsilon
    assert _ledger(tmp_path).spent(1e-6).epsilon == pytest.approx(expected)


def test_appends_never_rewrite_what_was_written(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record(Release(1.0, 0.01, 10), mechanism="dp-sgd", delta=1e-6, run="r", round=1)
    before = ledger.path.read_bytes()
    ledger.record(Release(1.0, 0.01, 10), mechanism="dp-sgd", delta=1e-6, run="r", round=2)
    assert ledger.path.read_bytes().startswith(before)


def test_foreign_ledger_is_refused(tmp_path: Path) -> None:
    _ledger(tmp_path)
    with pytest.raises(LedgerError, match="belongs to another dataset"):
        PrivacyLedger.open(ledger_path(tmp_path, "bank-a"), "cd" * 32, "bank-a")


@pytest.mark.parametrize("damage, expected", [
    (lambda b: b.replace(b'"steps":10', b'"steps":1'), r"line 2: content does not match its hash"),
    (lambda b: b"\n".join(b.split(b"\n")[:1] + b.split(b"\n")[2:]), r"line 2: does not follow"),
    (lambda b: b[:-5], r"incomplete record"),
    (lambda b: b"not json\n" + b, r"line 1: not a JSON record"),
])
def test_corrupted_ledger_is_refused_and_left_alone(tmp_path: Path, damage, expected: str) -> None:
    ledger = _ledger(tmp_path)
    for rnd in (1, 2):
        ledger.record(Release(1.0, 0.01, 10), mechanism="dp-sgd", delta=1e-6, run="r", round=rnd)
    ledger.path.write_bytes(damaged := damage(ledger.path.read_bytes()))
    with pytest.raises(LedgerError, match=expected):
        _ledger(tmp_path)
    assert ledger.path.read_bytes() == damaged  # never repaired or truncated


def test_ledger_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the ledger folder should be")
    with pytest.raises(LedgerError, match="cannot be"):
        PrivacyLedger.open(ledger_path(blocker, "bank-a"), FP, "bank-a")
