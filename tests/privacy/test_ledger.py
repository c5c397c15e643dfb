from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcredit.privacy.accountant import Release, compose
from fedcredit.privacy.anchor import DatasetAnchor
from fedcredit.privacy.ledger import LedgerError, PrivacyLedger, ledger_path
from fedcredit.protection.audit import AuditLog

FP = "ab" * 32
DP_SGD = Release(1.0, 0.01, 100)


def _ledger(folder: Path, partner: str = "bank-a", *, anchored: bool = True, audit: Path | None = None) -> PrivacyLedger:
    return PrivacyLedger.open(ledger_path(folder, partner), FP, partner,
                              anchor=DatasetAnchor(FP) if anchored else None, audit=audit)


def _charge(ledger: PrivacyLedger, run: str, rnd: int, release: Release = DP_SGD, audit: Path | None = None) -> None:
    entry = ledger.record(release, mechanism="dp-sgd", delta=1e-6, run=run, round=rnd)
    if audit is not None:   # what fedcredit.clients.partner.charge writes after the ledger
        AuditLog(audit).append({"event": "privacy-release", "partner": ledger.partner, "purpose": "dp-sgd",
                                "dataset": FP, "run": run, "round": rnd, "id": entry.id,
                                "noise_multiplier": release.noise_multiplier, "sample_rate": release.sample_rate,
                                "steps": release.steps, "delta": 1e-6})


def _eps(ledger: PrivacyLedger) -> float:
    return ledger.spent(1e-6).epsilon


def test_releases_persist_and_compose_across_reopen(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record(Release(20.0, 1.0, 1), mechanism="gaussian-statistics", delta=1e-6, run="r1", round=0)
    for rnd in (1, 2):
        _charge(ledger, "r1", rnd)
    _charge(_ledger(tmp_path), "r2", 1)   # a new process, a new run: same file, same history
    entries = _ledger(tmp_path).entries()
    assert [(e.run, e.round, e.mechanism) for e in entries] == [
        ("r1", 0, "gaussian-statistics"), ("r1", 1, "dp-sgd"), ("r1", 2, "dp-sgd"), ("r2", 1, "dp-sgd")]
    expected = compose([Release(20.0, 1.0, 1), Release(1.0, 0.01, 300)], 1e-6).epsilon
    assert _eps(_ledger(tmp_path)) == pytest.approx(expected)


def test_appends_never_rewrite_what_was_written(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _charge(ledger, "r", 1)
    before = ledger.path.read_bytes()
    _charge(ledger, "r", 2)
    assert ledger.path.read_bytes().startswith(before)


def test_foreign_ledger_is_refused(tmp_path: Path) -> None:
    _ledger(tmp_path)
    with pytest.raises(LedgerError, match="belongs to another dataset"):
        PrivacyLedger.open(ledger_path(tmp_path, "bank-a"), "cd" * 32, "bank-a")


@pytest.mark.parametrize("cut", [1, 40, 120])
def test_a_torn_last_record_is_counted_not_refused(tmp_path: Path, cut: int) -> None:
    ledger = _ledger(tmp_path)
    for rnd in (1, 2, 3):
        _charge(ledger, "r", rnd)
    whole = _eps(ledger)
    data = ledger.path.read_bytes()
    ledger.path.write_bytes(data[:-cut])                      # power cut in the last write
    reopened = _ledger(tmp_path)                              # no refusal, no advice to restore
    assert _eps(reopened) >= whole - 1e-9
    assert any("interrupted write" in n for n in reopened.notes)
    assert reopened.path.read_bytes().startswith(data[:-cut])   # sealed by appending, never rewritten
    _charge(reopened, "r2", 1)                                  # and it goes on
    assert _eps(_ledger(tmp_path)) > whole


def test_a_torn_record_without_its_anchor_is_still_counted(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path, anchored=False)
    for rnd in (1, 2):
        _charge(ledger, "r", rnd, Release(0.8, 0.02, 50))
    whole = _eps(ledger)
    ledger.path.write_bytes(ledger.path.read_bytes()[:-60])
    assert _eps(_ledger(tmp_path, anchored=False)) >= whole - 1e-9


def test_a_restored_older_copy_cannot_lower_epsilon(tmp_path: Path) -> None:
    """c09: a backup taken after run A is restored after run B."""
    audit = tmp_path / "bank-a.audit.jsonl"
    ledger = _ledger(tmp_path, audit=audit)
    for rnd in (1, 2):
        _charge(ledger, "A", rnd, audit=audit)
    backup = tmp_path / "backup.jsonl"
    shutil.copy(ledger.path, backup)
    for rnd in (1, 2):
        _charge(ledger, "B", rnd, audit=audit)
    after_b = _eps(ledger)
    shutil.copy(backup, ledger.path)                               # "restore it from a backup"
    restored = _ledger(tmp_path, audit=audit)
    assert _eps(restored) == pytest.approx(after_b)
    assert any("missing from this ledger" in n for n in restored.notes)
    assert len(restored.entries()) == 4


def test_the_audit_trail_alone_proves_spend_the_ledger_lost(tmp_path: Path) -> None:
    audit = tmp_path / "bank-a.audit.jsonl"
    ledger = _ledger(tmp_path, anchored=False, audit=audit)
    for rnd in (1, 2, 3):
        _charge(ledger, "A", rnd, audit=audit)
    full = _eps(ledger)
    ledger.path.unlink()                                          # lost; the audit trail is intact
    assert _eps(PrivacyLedger.open(ledger.path, FP, "bank-a", audit=audit)) == pytest.approx(full)


@pytest.mark.parametrize("move", ["rename", "folder"])
def test_the_budget_belongs_to_the_dataset_not_the_name_or_folder(tmp_path: Path, move: str) -> None:
    first = _ledger(tmp_path / "a")
    for rnd in (1, 2):
        _charge(first, "A", rnd)
    again = _ledger(tmp_path / "a", "bank-renamed") if move == "rename" else _ledger(tmp_path / "elsewhere")
    assert _eps(again) == pytest.approx(_eps(first))


def test_a_damaged_middle_is_refused_with_a_way_forward(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    for rnd in (1, 2):
        _charge(ledger, "r", rnd)
    spent = _eps(ledger)
    damaged = ledger.path.read_bytes().replace(b'"steps":100', b'"steps":1', 1)
    ledger.path.write_bytes(damaged)
    with pytest.raises(LedgerError, match="move this file aside"):
        _ledger(tmp_path)
    assert ledger.path.read_bytes() == damaged                   # never repaired or truncated
    ledger.path.rename(tmp_path / "evidence.jsonl")
    assert _eps(_ledger(tmp_path)) == pytest.approx(spent)        # rebuilt from the anchor


def test_ledger_that_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the ledger folder should be")
    with pytest.raises(LedgerError, match="cannot be"):
        PrivacyLedger.open(ledger_path(blocker, "bank-a"), FP, "bank-a")


def test_disjoint_rows_compose_in_parallel(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    ledger.record(Release(1.0, 0.01, 100), mechanism="dp-sgd", delta=1e-6, run="r", round=1, rows=(0.25, 1.0))
    ledger.record(Release(3.0, 1.0, 1), mechanism="gaussian-evaluation", delta=1e-6, run="r", round=1,
                  rows=(0.0, 0.25))
    train = compose([Release(1.0, 0.01, 100)], 1e-6).epsilon
    test = compose([Release(3.0, 1.0, 1)], 1e-6).epsilon
    assert _eps(ledger) == pytest.approx(max(train, test))
    assert [e.rows for e in _ledger(tmp_path).entries()] == [(0.25, 1.0), (0.0, 0.25)]


# ---- property: epsilon never decreases, whatever happens to the files -------------------------

ACTIONS = st.lists(st.sampled_from(["charge", "tear", "backup", "restore", "rename", "move", "lose-ledger",
                                    "lose-anchor"]), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_epsilon_never_decreases(tmp_path_factory: pytest.TempPathFactory, actions: list[str]) -> None:
    root = tmp_path_factory.mktemp("prop")
    anchors = root / "anchors"
    folder, name, backup = root / "data", "bank-a", None
    audit = lambda: folder / f"{name}.audit.jsonl"    # noqa: E731 - the trail moves with the ledger

    def open_() -> PrivacyLedger:
        return PrivacyLedger.open(ledger_path(folder, name), FP, name, anchor=DatasetAnchor(FP, anchors),
                                  audit=audit())

    seen, rnd = 0.0, 0
    for action in actions:
        ledger = open_()
        eps = _eps(ledger)
        assert eps >= seen - 1e-9, (action, actions)
        seen = eps
        path = ledger.path
        if action == "charge":
            rnd += 1
            _charge(ledger, "run", rnd, Release(1.5, 0.05, 10 + rnd), audit=audit())
        elif action == "tear" and path.stat().st_size > 50:
            path.write_bytes(path.read_bytes()[:-23])
        elif action == "backup":
            backup = path.read_bytes()
        elif action == "restore" and backup is not None:
            path.write_bytes(backup)
        elif action == "rename":
            name = name + "x"
        elif action == "move":
            folder = folder.with_name(folder.name + "m")
        elif action == "lose-ledger":
            path.unlink()
        elif action == "lose-anchor" and (anchors / f"{FP}.jsonl").exists():
            (anchors / f"{FP}.jsonl").unlink()
    assert _eps(open_()) >= seen - 1e-9


def test_a_readonly_open_writes_nothing_and_still_counts_everything(tmp_path: Path) -> None:
    first = _ledger(tmp_path / "a")
    for rnd in (1, 2):
        _charge(first, "A", rnd)
    elsewhere = ledger_path(tmp_path / "b", "bank-a")
    view = PrivacyLedger.open(elsewhere, FP, "bank-a", anchor=DatasetAnchor(FP), readonly=True)
    assert _eps(view) == pytest.approx(_eps(first)) and not elsewhere.exists()
    with pytest.raises(LedgerError, match="read-only"):
        view.record(DP_SGD, mechanism="dp-sgd", delta=1e-6, run="B", round=1)
