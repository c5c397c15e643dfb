"""The membership audit's members are the rows the federated model was fitted on."""

from __future__ import annotations

from pathlib import Path

from fedcredit.clients.partner import open_partner_data
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import load_scenario
from fedcredit.server.stopping import MONITORED, StoppingRule
from fedcredit.simulations.membership_audit import _trained_rows
from tests.conftest import make_partner_frame, write_scenario


def test_validation_rows_a_stopping_rule_held_out_are_not_members(tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(tmp_path, {"bank-a": make_partner_frame(800, 1)}))
    data = open_partner_data(scenario.partners[0], TaskConfig(scenario.dataset, scenario.federation), purpose="check")
    rule = StoppingRule.from_settings("converged", 20, 5, 1e-4, private=False)
    monitored = {"stopping": rule.summary(saved_round=3)}
    assert monitored["stopping"]["monitored"] == MONITORED
    fitted, held = data.validation_split(scenario.federation.validation_fraction)
    assert len(_trained_rows(data, monitored, scenario)) == len(fitted) < len(data.train)
    private = {"stopping": StoppingRule.from_settings("converged", 20, 5, 1e-4, private=True).summary(saved_round=20)}
    assert len(_trained_rows(data, private, scenario)) == len(data.train) == len(fitted) + len(held)
