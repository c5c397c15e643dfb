"""Case c06 (../shared/cases/c06-tiny-imbalanced-partner), end to end: a partner whose test split
holds no bad row. Its AUC, KS and Gini are null with the reason, every output is standard JSON
(a strict parser reads it), the console says why, and the case folder is read in place, untouched."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from simulations.cli import main

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT.parent / "shared" / "cases" / "c06-tiny-imbalanced-partner"
REASON = "the test rows hold 0 bad rows: AUC, KS and Gini need both bad and good rows"


def strict_loads(text: str):
    def reject(name: str):
        raise ValueError(f"non-standard JSON constant {name} (JSON.parse would reject it)")
    return json.loads(text, parse_constant=reject)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_case_c06_partner_without_bad_test_rows_gives_null_with_reason(tmp_path, capsys) -> None:
    scenario = CASE / "scenario.toml"
    if not scenario.is_file():
        pytest.fail(f"case missing: {scenario} (../shared/cases must sit beside the project)")
    # No [privacy] table: no ledger or audit trail would be written beside the data; check that.
    assert "[privacy]" not in scenario.read_text() and "key" not in scenario.read_text()
    before = _snapshot(CASE.parent)
    out = tmp_path / "run"

    records: list[logging.LogRecord] = []
    catch = logging.Handler(logging.WARNING)
    catch.emit = records.append            # Flower's console handler may hold another test's stderr
    flwr_logger = logging.getLogger("flwr")
    flwr_logger.addHandler(catch)
    try:
        assert main(["simulate", "--scenario", str(scenario), "--out", str(out), "--rounds", "2"]) == 0
    finally:
        flwr_logger.removeHandler(catch)
    stdout, _ = capsys.readouterr()

    summary = strict_loads((out / "summary.json").read_text())
    report = strict_loads((out / "privacy_report.json").read_text())
    rounds = [strict_loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    strict_loads((out / "config.json").read_text())
    assert [r["round"] for r in rounds] == [0, 1, 2]

    platform = next(p for p in summary["partners"] if p["name"] == "platform-3")
    assert platform["rows_test"] > 0
    for which in ("federated", "local", "centralized"):
        metrics = platform[which]
        assert metrics["auc"] is None and metrics["ks"] is None and metrics["gini"] is None, which
        assert metrics["undefined"] == REASON and metrics["bad_rate"] == 0.0
        assert metrics["brier"] is not None and metrics["logloss"] is not None
    for rec in rounds:
        m = rec["partners"]["platform-3"]
        assert m["auc"] is None and m["undefined"] == REASON
        assert rec["pooled"]["auc"] is not None and "undefined" not in rec["pooled"]
    others = [p for p in summary["partners"] if p["name"] != "platform-3"]
    assert all(p["federated"]["auc"] is not None and "undefined" not in p["federated"] for p in others)
    assert summary["federated"]["auc"] is not None and summary["centralized"]["auc"] is not None

    pr = next(p for p in report["partners"] if p["name"] == "platform-3")
    assert pr["federated_auc"] is None and pr["local_auc"] is None and pr["auc_undefined"] == REASON
    assert f"platform-3: AUC undefined: {REASON}" in (out / "privacy_report.html").read_text()

    assert "nan" not in stdout.lower()
    row = next(line for line in stdout.splitlines() if line.startswith("platform-3"))
    assert row.split()[-5:] == ["n/a"] * 5
    assert f"n/a: platform-3 (local), platform-3 (federated): {REASON}" in stdout
    assert f"AUC n/a: {REASON}" in stdout                            # the privacy summary's line
    warnings = [r.getMessage() for r in records]
    told = [m for m in warnings if "partner 'platform-3'" in m and REASON in m]
    assert len(told) == 1 and "AUC, KS and Gini are undefined" in told[0], warnings

    assert _snapshot(CASE.parent) == before, "the run wrote into ../shared/cases"
