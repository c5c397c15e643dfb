"""Each coordinator progress line states exactly what it measured (issue 10, part 5).

One exchange in round r trains round r and evaluates the model of round r-1; the old line printed
"round 0/3 … (7.7 s)" for round 1's training time and "fitted from 3 partners' statistics" when one
had declined. First the line text from a fake sequence of rounds, then the real round loop driven
through an in-process Grid (the ClientApp's handlers called directly: no Ray, a few seconds)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.common.logger import FLOWER_LOGGER
from flwr.supercore.task_identity import TaskIdentity

from fedcredit.clients import app as client_app
from fedcredit.credit.protocol import REPORT_KEY, PartnerReport
from fedcredit.credit.rundir import RunDirectory
from fedcredit.credit.scenario import load_scenario
from fedcredit.server.progress import PROGRESS_KEY, Exchange, exchange_line, statistics_line
from fedcredit.server.strategy import build_strategy
from fedcredit.server.training import FederatedTraining
from tests.conftest import make_partner_frame, write_scenario

POOLED = {"auc": 0.7, "ks": 0.3, "brier": 0.2}


def test_a_sequence_of_rounds_reads_round_by_round() -> None:
    """Round 1 trains on all three, round 2 insurer-b declines, round 3 platform-c does not reply."""
    lines = [
        statistics_line(3, asked=3, contributed=3, declined=[], features=9, seconds=4.0, waited=2.5),
        exchange_line(Exchange(3, 1, 0, asked=3, trained=3, train_loss=0.61, pooled=POOLED, evaluated_by=3,
                               seconds=7.7)),
        exchange_line(Exchange(3, 2, 1, asked=3, trained=2, declined=("insurer-b",), train_loss=0.55,
                               pooled=POOLED, evaluated_by=3, seconds=6.0)),
        exchange_line(Exchange(3, 3, 2, asked=2, trained=1, failed=1, train_loss=0.5, pooled=None,
                               scheduled=False, seconds=5.0)),
        exchange_line(Exchange(3, None, 3, asked=1, pooled=POOLED, evaluated_by=1, seconds=0.4)),
    ]
    assert lines[0] == ("round  0/3  statistics from 3 of 3 partners: shared transform fitted, 9 features  "
                        "(4.0 s, of which 2.5 s waiting for the partner nodes)")
    assert lines[1] == ("round  1/3  trained by 3 of 3 partners  train loss 0.6100  |  model of round 0 evaluated "
                        "by 3 partners: pooled AUC 0.7000  KS 0.3000  Brier 0.2000  |  7.7 s for both")
    assert lines[2].startswith("round  2/3  trained by 2 of 3 partners (insurer-b declined)  train loss 0.5500")
    assert "model of round 1 evaluated by 3 partners" in lines[2]
    assert lines[3].startswith("round  3/3  trained by 1 of 2 partners (1 failed or did not reply)")
    assert lines[4] == ("final       model of round 3 evaluated by 1 of 1 partner: pooled AUC 0.7000  KS 0.3000  "
                        "Brier 0.2000  |  0.4 s")
    assert lines[3].endswith("model of round 2 not evaluated (not on the evaluation schedule: [federation] "
                             "evaluate_every)  |  5.0 s")
    assert "declined" in statistics_line(3, asked=3, contributed=2, declined=["insurer-b"], features=9,
                                         seconds=1.0, waited=0.0)


class InProcessGrid:
    """A Grid whose nodes are the ClientApp's handlers called in this process, node i being
    partition i of the roster. `tamper(round, partner, message, reply)` may replace a reply (None: lost)."""

    def __init__(self, partners: int, tamper=None):
        self.nodes = list(range(1, partners + 1))
        self.contexts = {n: Context(run_id=1, node_id=n, node_config={"partition-id": n - 1}, state=RecordDict(),
                                    run_config={}) for n in self.nodes}
        self.tamper = tamper or (lambda rnd, partner, msg, reply: reply)
        self.run_id = 1

    def get_node_ids(self) -> list[int]:
        return list(self.nodes)

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return Message(content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id)

    def send_and_receive(self, messages, *, timeout=None):
        replies = []
        for i, msg in enumerate(messages):
            msg.metadata.__dict__["_message_id"] = f"m{i}"   # as if pushed to the SuperLink
            handler = {"query.stats": client_app.stats, "train": client_app.train,
                       "evaluate": client_app.evaluate}[msg.metadata.message_type]
            reply = handler(msg, self.contexts[msg.metadata.dst_node_id])
            report = PartnerReport.from_json(str(reply.content["report"][REPORT_KEY]))
            rnd = int(msg.content["config"].get("server-round", 0))
            reply = self.tamper(rnd, report.partner, msg, reply)
            if reply is not None:
                replies.append(reply)
        return replies


def declined(msg: Message, reply: Message, why: str) -> Message:
    report = PartnerReport.from_json(str(reply.content["report"][REPORT_KEY]))
    report = PartnerReport(partner=report.partner, kind=report.kind, rows_train=report.rows_train,
                           evaluation=report.evaluation, privacy=report.privacy, declined=why)
    content = RecordDict({"metrics": reply.content["metrics"], "report": ConfigRecord({REPORT_KEY: report.to_json()})})
    return Message(content=content, reply_to=msg)


@pytest.fixture
def progress_records():
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if hasattr(record, PROGRESS_KEY):
                seen.append(record)

    handler = Keep(logging.INFO)
    FLOWER_LOGGER.addHandler(handler)
    yield seen
    FLOWER_LOGGER.removeHandler(handler)


def test_the_round_loop_names_each_round_and_who_contributed(tmp_path: Path, progress_records,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):   # as in a ServerApp process
        monkeypatch.setattr(TaskIdentity, name, value)
    frames = {n: make_partner_frame(300, i) for i, n in enumerate(("bank-a", "insurer-b", "platform-c"))}
    scenario = load_scenario(write_scenario(tmp_path / "data", frames, federation={"rounds": 3, "local_epochs": 1}))

    def tamper(rnd: int, partner: str, msg: Message, reply: Message) -> Message | None:
        if partner == "insurer-b" and rnd == 2 and msg.metadata.message_type == "train":
            return declined(msg, reply, "its privacy budget is spent")
        if partner == "platform-c" and rnd == 3:
            return Message(Error(code=0, reason="killed"), reply_to=msg)
        return reply

    grid = InProcessGrid(3, tamper)
    run_dir = RunDirectory(tmp_path / "run").create()
    summary = FederatedTraining(grid, scenario, run_dir, build_strategy(scenario.federation, 1),
                                simulation=True).run()
    lines = [r.getMessage() for r in progress_records]
    steps = [getattr(r, PROGRESS_KEY) for r in progress_records]
    assert [line.split()[0] for line in lines] == ["fedcredit:", "round", "round", "round", "round", "final"]
    assert lines[1].startswith("round  0/3  statistics from 3 of 3 partners: shared transform fitted")
    assert lines[2].startswith("round  1/3  trained by 3 of 3 partners  train loss ")
    assert "|  model of round 0 evaluated by 3 partners: pooled AUC" in lines[2]
    assert lines[3].startswith("round  2/3  trained by 2 of 3 partners (insurer-b declined)  train loss ")
    assert "model of round 1 evaluated by 3 partners" in lines[3]
    # insurer-b stopped after declining; platform-c's round-3 reply is an error: bank-a alone trained round 3
    assert lines[4].startswith("round  3/3  trained by 1 of 2 partners (1 failed or did not reply)")
    assert "model of round 2 evaluated by 1 partner: pooled AUC" in lines[4]
    # the final model is evaluated by everyone not gone: insurer-b (it only stopped training) and bank-a
    assert lines[5].startswith("final       model of round 3 evaluated by 2 of 2 partners: pooled AUC")
    # (rounds trained, rounds planned): never decreasing, ending at the total
    assert steps == [(0, 3), (0, 3), (1, 3), (2, 3), (3, 3), (3, 3)]
    assert summary["rounds"] == 3
    # the record of round r holds the exchange of round r+1, as before (rounds.jsonl is unchanged)
    records = [line for line in (run_dir.path / "rounds.jsonl").read_text().splitlines() if line]
    assert len(records) == 4


def test_the_final_line_completes_the_bar_when_the_run_stops_early(tmp_path: Path, progress_records,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 1)):
        monkeypatch.setattr(TaskIdentity, name, value)
    frames = {n: make_partner_frame(300, i) for i, n in enumerate(("bank-a", "insurer-b"))}
    scenario = load_scenario(write_scenario(tmp_path / "data", frames, federation={"rounds": 5, "local_epochs": 1}))

    def tamper(rnd: int, partner: str, msg: Message, reply: Message) -> Message | None:   # no one trains round 3
        if rnd == 3 and msg.metadata.message_type == "train":
            return declined(msg, reply, "its privacy budget is spent")
        return reply

    run_dir = RunDirectory(tmp_path / "run").create()
    summary = FederatedTraining(InProcessGrid(2, tamper), scenario, run_dir, build_strategy(scenario.federation, 1),
                                simulation=True).run()
    steps = [getattr(r, PROGRESS_KEY) for r in progress_records]
    assert summary["rounds"] == 2 and steps[-2] == (2, 5)
    assert progress_records[-1].getMessage().startswith("final") and steps[-1] == (2, 2)
