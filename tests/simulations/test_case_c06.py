"""Case c06 (../shared/cases/c06-tiny-imbalanced-partner), end to end: a partner whose test split
holds no bad row. Its AUC, KS and Gini are null with the reason, every output is standard JSON
(a strict parser reads it), the console says why, and the case folder is read in place, untouched.

The split is by each row's own content (`fedcredit.credit.loading.row_fractions`), so the case's two bad
platform rows may land on either side; the test keeps the case's tables and, for the platform,
only the bad rows that fall on the training side: the kind of input the case stands for."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from fedcredit.cli.main import main

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


def _no_bad_test_row(folder: Path) -> Path:
    """The case's scenario and tables in `folder`, the platform's held-out bad rows removed."""
    from fedcredit.credit.loading import read_table, row_fractions
    from fedcredit.credit.scenario import load_scenario

    scenario = load_scenario(CASE / "scenario.toml")
    folder.mkdir()
    text = (CASE / "scenario.toml").read_text().replace("../_base/", "")   # every table beside the scenario
    for partner in scenario.partners:
        frame = read_table(partner.data)
        if partner.name == "platform-3":
            bad = frame[scenario.dataset.label] == "1"
            held_out = row_fractions(frame) < scenario.federation.test_fraction
            kept = frame[bad & ~held_out]        # a copy of a row falls on the same side as the row
            frame = pd.concat([frame[~bad], *[kept] * (2 // max(len(kept), 1) + 1)], ignore_index=True)
            assert len(kept) and (frame[scenario.dataset.label] == "1").sum() >= 2   # tiny, imbalanced
        frame.to_csv(folder / partner.data.name, index=False)
    (folder / "scenario.toml").write_text(text)
    return folder / "scenario.toml"


def test_case_c06_partner_without_bad_test_rows_gives_null_with_reason(tmp_path, capsys) -> None:
    if not (CASE / "scenario.toml").is_file():
        pytest.fail(f"case missing: {CASE / 'scenario.toml'} (../shared/cases must sit beside the project)")
    # No [privacy] table: no ledger or audit trail would be written beside the data; check that.
    assert "[privacy]" not in (CASE / "scenario.toml").read_text()
    before = _snapshot(CASE.parent)
    scenario = _no_bad_test_row(tmp_path / "case")
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
