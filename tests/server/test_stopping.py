"""The stopping rule: patience, min_delta, the round cap, the best round, what it reads, its saved state."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomli_w

from fedcredit.credit.errors import InputError
from fedcredit.credit.protocol import PartnerReport
from fedcredit.credit.scenario import FederationSettings, load_scenario
from fedcredit.server.stopping import StoppingRule, pooled_validation_loss
from tests.conftest import SPEC


def _rule(**kw) -> StoppingRule:
    settings = {"stop": "converged", "cap": 50, "patience": 3, "min_delta": 0.01, "private": False, **kw}
    return StoppingRule.from_settings(settings.pop("stop"), settings.pop("cap"), settings.pop("patience"),
                                      settings.pop("min_delta"), private=settings.pop("private"))


def _feed(rule: StoppingRule, losses: list[float]) -> int:
    """Observe the models of rounds 0, 1, ... (the model of round r is seen after round r + 1 trained);
    return how many rounds were trained when the rule stopped."""
    for rnd, loss in enumerate(losses):
        rule.observe(rnd, loss)
        if rule.stop(rnd + 1):
            return rnd + 1
    raise AssertionError("the rule never stopped")


def test_patience_counts_models_without_a_large_enough_improvement() -> None:
    rule = _rule()
    # round 3 improves by less than min_delta: it is the best model, but patience keeps counting
    trained = _feed(rule, [0.70, 0.60, 0.55, 0.545, 0.56, 0.58, 0.40])
    assert trained == 6 and rule.since == 3
    assert (rule.best_round, rule.best_loss) == (3, 0.545)
    assert "converged" in rule.reason and "best model of round 3" in rule.reason
    assert rule.summary(saved_round=3)["best_round"] == 3


def test_an_improvement_restarts_patience() -> None:
    rule = _rule(patience=2)
    trained = _feed(rule, [0.7, 0.69, 0.60, 0.61, 0.50, 0.51, 0.52, 0.1])
    assert trained == 7 and rule.best_round == 4


def test_the_cap_ends_a_run_that_still_improves() -> None:
    rule = _rule(cap=4)
    assert _feed(rule, [0.9, 0.8, 0.7, 0.6, 0.5]) == 4
    assert rule.reason.startswith("round cap: 4 round(s)") and rule.best_round == 3


def test_ties_keep_the_later_model_and_missing_losses_are_ignored() -> None:
    rule = _rule()
    assert rule.observe(0, 0.5) and rule.observe(1, 0.5)
    assert not rule.observe(2, None) and not rule.observe(3, float("nan"))
    assert rule.best_round == 1 and [r for r, _ in rule.history] == [0, 1]


@pytest.mark.parametrize("stop, private, says", [("rounds", False, "trains to the round cap"),
                                                 ("converged", True, "under record-level DP")])
def test_a_rule_that_reads_nothing_trains_to_the_cap(stop: str, private: bool, says: str) -> None:
    rule = _rule(stop=stop, private=private, cap=5)
    assert not rule.monitors
    for rnd in range(5):
        assert not rule.observe(rnd, 1.0 + rnd)       # rising loss: would stop a monitoring rule
        assert rule.stop(rnd + 1) == (rnd + 1 == 5)
    summary = rule.summary(saved_round=5)
    assert summary["best_round"] is None and summary["saved"] == "the last round's model"
    assert says in summary["monitored"]


def test_the_state_round_trips() -> None:
    rule = _rule()
    for rnd, loss in enumerate([0.7, 0.6, 0.65]):
        rule.observe(rnd, loss)
    again = StoppingRule.from_dict(rule.to_dict())
    assert again == rule
    assert again.observe(3, 0.66) is False and again.since == 2


def test_pooled_validation_loss_weights_by_rows() -> None:
    reports = [PartnerReport("a", "bank", validation_loss=0.5, rows_validation=300),
               PartnerReport("b", "bank", validation_loss=0.2, rows_validation=100),
               PartnerReport("c", "bank")]                       # a DP partner: nothing released
    loss, rows = pooled_validation_loss(reports)
    assert rows == 400 and loss == pytest.approx((0.5 * 300 + 0.2 * 100) / 400)
    assert pooled_validation_loss([reports[2]]) == (None, 0)


def test_local_epochs_grow_on_a_small_partner() -> None:
    fed = FederationSettings(batch_size=100, min_local_steps=10)
    assert fed.local_epochs_for(150) == 5          # 2 batches an epoch
    assert fed.local_epochs_for(5000) == 1         # 50 batches: local_epochs
    assert FederationSettings(min_local_steps=0, local_epochs=2).local_epochs_for(10) == 2


def _scenario(tmp_path: Path, federation: dict) -> Path:
    raw = {"dataset": SPEC, "partners": [{"name": "a", "kind": "bank", "data": "a.csv"}],
           "federation": {"rounds": 5, **federation}}
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def test_scenario_keys_have_defaults_and_clear_errors(tmp_path: Path) -> None:
    fed = load_scenario(_scenario(tmp_path, {})).federation
    assert (fed.stop, fed.patience, fed.min_delta, fed.rounds) == ("converged", 5, 1e-4, 5)
    fed = load_scenario(_scenario(tmp_path, {"stop": "rounds", "patience": 2, "min_delta": 0.0})).federation
    assert (fed.stop, fed.patience, fed.min_delta) == ("rounds", 2, 0.0)
    for bad, field in [({"stop": "loss"}, "stop"), ({"patience": 0}, "patience"), ({"min_delta": -1}, "min_delta"),
                       ({"validation_fraction": 0.9}, "validation_fraction"), ({"min_local_steps": -1}, "min_local_steps")]:
        with pytest.raises(InputError, match=re.escape(f"field '{field}'")):
            load_scenario(_scenario(tmp_path, bad))
