"""Partner-level DP through Flower's own wrapper (fixed clipping + server noise + RDP accountant)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.conftest import make_partner_frame, write_scenario

pytestmark = pytest.mark.e2e


def test_client_level_dp_is_accounted_by_flower_and_reported_separately(tmp_path: Path) -> None:
    frames = {n: make_partner_frame(800, s) for n, s in (("bank-a", 1), ("insurer-b", 2), ("platform-c", 3))}
    scenario = write_scenario(tmp_path / "data", frames, federation={"rounds": 2},
                              privacy={"mode": "client", "delta": 1e-5, "client_noise_multiplier": 0.8,
                                       "client_clipping_norm": 5.0})
    summary = simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp_path / "run")), yardsticks=False).summary
    client = summary["client_dp"]
    assert client["noise_multiplier"] == 0.8 and client["clipping_norm"] == 5.0
    assert client["epsilon"] is not None and client["epsilon"] > 1.0   # 3 partners: little protection
    assert "very large" in client["warning"]
    assert all(p["privacy"]["mode"] == "client" and p["privacy"]["epsilon"] is None for p in summary["partners"])
    assert summary["rounds"] == 2 and 0 <= summary["federated"]["auc"] <= 1
