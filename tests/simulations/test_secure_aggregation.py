"""SecAgg+ through the same train handler: the secure aggregate equals the plain weighted mean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.conftest import make_partner_frame, write_scenario

pytestmark = pytest.mark.e2e


def test_secure_aggregate_equals_the_plain_weighted_mean(tmp_path: Path) -> None:
    frames = {n: make_partner_frame(rows, s) for n, rows, s in (("bank-a", 1500, 1), ("insurer-b", 900, 2),
                                                                   ("platform-c", 500, 3))}
    models, losses = {}, {}
    for secure in (True, False):
        scenario = write_scenario(tmp_path / f"data-{secure}", frames,
                                  federation={"rounds": 2, "secure_aggregation": secure, "round_timeout": 120})
        result = simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp_path / f"run-{secure}")),
                          yardsticks=False)
        assert result.summary["secure_aggregation"] is secure and result.summary["rounds"] == 2
        models[secure] = torch.load(result.run_dir / "model.pt", weights_only=True)["state_dict"]
        rounds = [json.loads(line) for line in (result.run_dir / "rounds.jsonl").read_text().splitlines()]
        losses[secure] = [r["train_loss"] for r in rounds]
    for name, plain in models[False].items():
        assert torch.allclose(models[True][name], plain, atol=1e-5, rtol=0), name
    assert any(plain.abs().max() > 0.05 for plain in models[False].values())  # the model did train
    # the coordinator averages the partners' reported losses the same way in both modes
    assert losses[False][0] is None and all(isinstance(x, float) for x in losses[False][1:])
    assert losses[True] == pytest.approx(losses[False], abs=1e-6)
