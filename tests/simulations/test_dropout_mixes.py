"""Dropouts of every mix end a run cleanly: summary.json names who declined, who dropped and in
which round, and a partner that kept answering is never reported dropped. Plain and SecAgg+.

A partner "killed" at (round r, stage s) fails every message from there on (an error reply, as
a node whose ClientApp process dies); "declined" is a partner whose per-run cap cannot even fit
round 0's statistics."""

from __future__ import annotations

import pytest
from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS, Key, Stage

from fedcredit.server.app import RunSettings
from fedcredit.simulations.runner import simulate
from tests.conftest import make_partner_frame, write_scenario

pytestmark = pytest.mark.e2e
NAMES = ("bank-a", "insurer-b", "platform-c")
PLAIN = "train"                     # the one stage of a plain round


class Killed(ClientApp):
    """The real ClientApp, except that partner index i is dead from (round, stage) on."""

    def __init__(self, inner: ClientApp, deaths: dict[int, tuple[int, str]]):
        super().__init__()
        self.inner, self.deaths = inner, deaths

    def __call__(self, message: Message, context: Context) -> Message:
        death = self.deaths.get(int(context.node_config["partition-id"]))
        if death is not None and _at_or_after(message, *death):
            raise RuntimeError("killed (injected by the test)")
        return self.inner(message, context)


def _at_or_after(message: Message, rnd: int, stage: str) -> bool:
    if message.metadata.message_type.startswith("evaluate"):
        return True                                     # the final evaluation comes after every round
    if message.metadata.message_type.startswith("query"):
        return False                                    # round 0
    now = int(message.metadata.group_id) if message.metadata.group_id.isdigit() else \
        int(message.content["config"]["server-round"])
    configs = message.content.config_records.get(RECORD_KEY_CONFIGS)
    order = (*Stage.all(), PLAIN)
    here = str(configs[Key.STAGE]) if configs is not None else PLAIN
    return now > rnd or (now == rnd and order.index(here) >= order.index(stage))


def _run(tmp_path, monkeypatch, *, secure: bool, deaths: dict[int, tuple[int, str]], declines: tuple[int, ...] = ()):
    import fedcredit.clients.app

    monkeypatch.setattr(fedcredit.clients.app, "app", Killed(getattr(fedcredit.clients.app.app, "inner", fedcredit.clients.app.app), deaths))
    frames = {n: make_partner_frame(rows, i + 1) for i, (n, rows) in enumerate(zip(NAMES, (900, 700, 600),
                                                                                 strict=True))}
    spent = {"privacy": {"mode": "sample", "epsilon": 1.0, "run_epsilon": 0.001, "delta": 1e-5,
                         "ledger_dir": "run"}}
    scenario = write_scenario(tmp_path / "data", frames, federation={
        "rounds": 2, "secure_aggregation": secure, "round_timeout": 120, "local_epochs": 1},
        partner_fields={NAMES[i]: spent for i in declines})
    return simulate(RunSettings(scenario=str(scenario), out_dir=str(tmp_path / "run")), yardsticks=False).summary


def _check(summary: dict, *, dropped: dict[str, int], declined: dict[str, int], ended: bool) -> None:
    assert {d["partner"]: d["round"] for d in summary["dropped"]} == dropped
    assert {d["partner"]: d["round"] for d in summary["declined"]} == declined
    assert bool(summary["ended_early"]) is ended, summary["ended_early"]
    alive = set(NAMES) - set(dropped) - set(declined)
    reported = {p["name"]: p for p in summary["partners"]}
    for name in alive:                       # a live partner is never reported dropped
        assert name in reported and reported[name].get("dropped_round") is None
        assert reported[name]["federated"] is not None


@pytest.mark.parametrize("stage", [*Stage.all()])
def test_secure_round_survives_a_partner_killed_in_any_stage(tmp_path, monkeypatch, stage: str) -> None:
    summary = _run(tmp_path, monkeypatch, secure=True, deaths={2: (2, stage)})
    # the other two finish round 2 (SecAgg+ recovers the dead node's masks, or never used them)
    _check(summary, dropped={"platform-c": 2}, declined={}, ended=False)
    assert summary["rounds"] == 2


@pytest.mark.parametrize("secure", [True, False])
def test_declined_and_killed_in_the_same_round(tmp_path, monkeypatch, secure: bool) -> None:
    """Finding 2 of issue 9: one partner's budget cannot fit the run, another dies in round 1."""
    summary = _run(tmp_path, monkeypatch, secure=secure, deaths={1: (1, Stage.SETUP if secure else PLAIN)},
                   declines=(2,))
    if secure:   # one partner left: a secure sum of one update would be that update
        _check(summary, dropped={"insurer-b": 1}, declined={"platform-c": 0}, ended=True)
        assert "still answering" in summary["ended_early"] and summary["rounds"] == 0
    else:        # plain: the last partner trains on alone
        _check(summary, dropped={"insurer-b": 1}, declined={"platform-c": 0}, ended=False)
        assert summary["rounds"] == 2


def test_all_but_one_gone_ends_the_secure_run(tmp_path, monkeypatch) -> None:
    summary = _run(tmp_path, monkeypatch, secure=True, deaths={1: (2, Stage.COLLECT_MASKED_VECTORS),
                                                               2: (2, Stage.COLLECT_MASKED_VECTORS)})
    _check(summary, dropped={"insurer-b": 2, "platform-c": 2}, declined={}, ended=True)
    assert summary["rounds"] == 1


def test_the_survivors_secure_sum_is_their_plain_weighted_mean(tmp_path, monkeypatch) -> None:
    """A partner gone mid-protocol: SecAgg+ recovers its masks and the sum is exactly the survivors'."""
    import torch

    models = {}
    for secure, stage in ((True, Stage.COLLECT_MASKED_VECTORS), (False, PLAIN)):
        folder = tmp_path / str(secure)
        summary = _run(folder, monkeypatch, secure=secure, deaths={2: (2, stage)})
        _check(summary, dropped={"platform-c": 2}, declined={}, ended=False)
        models[secure] = torch.load(folder / "run" / "model.pt", weights_only=True)["state_dict"]
    for name, plain in models[False].items():
        assert torch.allclose(models[True][name], plain, atol=1e-5, rtol=0), name
