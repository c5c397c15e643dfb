"""Acceptance runs on real and synthetic data: full 20-round simulations (about 30 s each)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcredit.server.app import RunSettings
from fedcredit.simulations.datasets import TAIWAN, write_taiwan_partners
from fedcredit.simulations.runner import simulate

pytestmark = pytest.mark.e2e


def test_taiwan_three_partners_matches_centralised(tmp_path: Path) -> None:
    if not TAIWAN.exists():
        pytest.fail(f"shared dataset missing: {TAIWAN} (../shared/data must sit beside the project)")
    scenario = write_taiwan_partners(tmp_path / "taiwan")
    summary = simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp_path / "run"))).summary
    fed, cen = summary["federated"]["auc"], summary["centralized"]["auc"]
    sizes = [p["rows_train"] + p["rows_test"] for p in summary["partners"]]
    assert sum(sizes) == 30_000 and len(set(sizes)) == 3
    assert fed >= 0.76
    assert abs(fed - cen) <= 0.005, (fed, cen)
