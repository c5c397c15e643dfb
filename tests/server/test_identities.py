"""The coordinator admits a node only under the partner name one of its registered ids belongs to:
during a key rotation a partner has two ids and either may speak for it, never for another partner."""

from __future__ import annotations

from pathlib import Path

from flwr.app import Message, Metadata, RecordDict

from fedcredit.credit.protocol import PartnerReport
from fedcredit.credit.rundir import RunDirectory
from fedcredit.credit.scenario import load_scenario
from fedcredit.server.app import RunSettings
from fedcredit.server.strategy import build_strategy
from fedcredit.server.training import FederatedTraining
from tests.conftest import make_partner_frame, write_scenario


def reply(node: int, partner: str) -> tuple[Message, PartnerReport]:
    meta = Metadata(run_id=1, message_id=f"m{node}", src_node_id=node, dst_node_id=0, reply_to_message_id="q",
                    group_id="", created_at=0.0, ttl=60.0, message_type="query.stats")
    return Message(content=RecordDict(), metadata=meta), PartnerReport(partner=partner, kind="bank")


def test_either_key_of_a_rotating_partner_speaks_for_it_and_for_no_one_else(tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(tmp_path, {n: make_partner_frame(20, i) for i, n in
                                                       enumerate(("bank-a", "insurer-b"))}))
    registered = RunSettings.from_run_config(
        {"registered-nodes": '{"bank-a": ["101", "102"], "insurer-b": ["200"]}'}).registered_nodes
    training = FederatedTraining(None, scenario, RunDirectory(tmp_path / "run"), build_strategy(scenario.federation, 1),
                                 simulation=False, registered=registered)
    admitted = training._admit_identities([reply(101, "bank-a"), reply(102, "bank-a"), reply(200, "bank-a"),
                                           reply(300, "insurer-b")])
    assert [(m.metadata.src_node_id, r.partner) for m, r in admitted] == [(101, "bank-a"), (102, "bank-a")]
    assert training.refused == [
        "node 200 calls itself 'bank-a' but its key is registered for partner 'insurer-b': a node may take part "
        "only under the name its key was registered for",
        "node 300 calls itself 'insurer-b' but its key is registered for no partner"]
