"""Every field a DP partner sends is in the release inventory: noised and charged, or public.

Walks the real ClientApp (its mods included) through every message type a partner answers —
both statistics releases, a train round that evaluates and one that does not, the final
evaluation, and a reply that declines — and checks each leaf of each reply."""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fedcredit.clients.app import app
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.model import build_model
from fedcredit.credit.protocol import (
    BINS,
    EVALUATE_KEY,
    PHASE_KEY,
    RANGE,
    REPORT_KEY,
    TASK_KEY,
    PartnerReport,
    TaskConfig,
)
from fedcredit.credit.scenario import load_scenario
from fedcredit.privacy.inventory import NOISED, WITHHELD, classify, reply_paths
from tests.conftest import make_partner_frame, write_scenario


@pytest.fixture(autouse=True)
def task_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a Flower process sets before it builds messages (a SuperLink's or SuperNode's task)."""
    from flwr.supercore.task_identity import TaskIdentity

    for name, value in (("_task_id", 1), ("_run_id", 1), ("_node_id", 0)):
        monkeypatch.setattr(TaskIdentity, name, value)


@pytest.fixture
def dp_partner(tmp_path: Path):
    frames = {"bank-a": make_partner_frame(4000, 1)}
    path = write_scenario(tmp_path / "c", frames, privacy={"mode": "sample", "epsilon": 8.0, "run_epsilon": 2.0,
                                                           "delta": 1e-6})
    scenario = load_scenario(path)
    task = TaskConfig(scenario.dataset, scenario.federation, roster=scenario.partners, run="inv",
                      evaluations=2)
    return scenario, task


def _send(task: TaskConfig, context: Context, kind: str, arrays: ArrayRecord | None = None, **config: Any):
    content = RecordDict({"config": ConfigRecord({TASK_KEY: task.to_json(), "server-round": 1, **config})})
    if arrays is not None:
        content["arrays"] = arrays
    reply = app(Message(content, dst_node_id=1, message_type=kind), context)
    assert not reply.has_error(), reply.error.reason
    return reply


def _leaves(reply: Message) -> list[tuple[str, Any]]:
    content = {"metrics": dict(reply.content["metrics"]), "report": str(reply.content["report"][REPORT_KEY])}
    if "arrays" in reply.content:
        content["arrays"] = {k: "tensor" for k in reply.content["arrays"].keys()}
    return reply_paths(content)


def _check(reply: Message, message: str) -> PartnerReport:
    for path, value in _leaves(reply):
        assert not any(path == w or path.startswith(w.rstrip("*")) or fnmatch.fnmatchcase(path, w)
                       for w in WITHHELD), f"{path} must be withheld"
        item = classify(path, message)
        assert item is not None, f"{message}: {path} = {value!r} is not in the release inventory"
    return PartnerReport.from_json(str(reply.content["report"][REPORT_KEY]))


def test_every_reply_field_is_inventoried(dp_partner) -> None:
    scenario, task = dp_partner
    context = Context(run_id=1, node_id=1, node_config={"partition-id": 0}, state=RecordDict(), run_config={})

    first = _check(_send(task, context, "query.stats", **{PHASE_KEY: RANGE}), "query.stats")
    # noised, not exact: the row count is rounded (it may land on the true 3000), the bad count is not
    assert first.stats.rows == first.rows_train and first.stats_noise_sd > 0 and first.stats.bad != round(first.stats.bad)
    plan = ColumnPlan.fit(first.stats, scenario.dataset, noise_sd=first.stats_noise_sd)
    task = replace(task, plan=plan, weights={"bank-a": first.rows_train})
    second = _check(_send(task, context, "query.stats", **{PHASE_KEY: BINS}), "query.stats")
    counts = np.concatenate(list(second.stats.histograms.values()))
    assert not np.allclose(counts, np.round(counts))                                   # noised counts
    transform = FeatureTransform.fit(plan, second.stats, scenario.dataset, noise_sd=second.stats_noise_sd)
    task = replace(task, transform=transform, plan=None)

    arrays = ArrayRecord(build_model("logistic", transform.n_features).state_dict())
    trained = _check(_send(task, context, "train", arrays, **{EVALUATE_KEY: True}), "train")
    assert trained.evaluation is not None and trained.evaluation.private and trained.train_loss is None
    quiet = _check(_send(task, context, "train", arrays, **{EVALUATE_KEY: False}), "train")
    assert quiet.evaluation is None and quiet.rows_test is None
    final = _check(_send(task, context, "evaluate", arrays), "evaluate")
    assert final.evaluation is not None

    noised = {path for reply in (first, second, trained, final) for path, _ in
              reply_paths({"report": reply.to_json()}) if (item := classify(path, "query.stats") or
                                                           classify(path, "train")) and item.protection == NOISED}
    assert {"report.stats.rows", "report.evaluation.bad"} <= noised


def test_a_declining_partner_sends_no_counts(dp_partner) -> None:
    scenario, task = dp_partner
    tight = replace(scenario.partners[0], privacy=replace(scenario.partners[0].privacy, epsilon=0.01,
                                                          run_epsilon=0.01))
    task = replace(task, roster=(tight,))
    context = Context(run_id=1, node_id=1, node_config={"partition-id": 0}, state=RecordDict(), run_config={})
    reply = _send(task, context, "query.stats", **{PHASE_KEY: RANGE})
    report = _check(reply, "query.stats")
    assert report.declined and report.rows_train is None and report.rows_test is None and report.stats is None
    assert int(reply.content["metrics"]["num-examples"]) == 1                          # not the row count


def test_a_scorecard_partners_label_split_release_is_inventoried_and_noised(dp_partner) -> None:
    scenario, task = dp_partner
    task = replace(task, federation=replace(task.federation, model="scorecard"))
    context = Context(run_id=1, node_id=1, node_config={"partition-id": 0}, state=RecordDict(), run_config={})
    first = _check(_send(task, context, "query.stats", **{PHASE_KEY: RANGE}), "query.stats")
    plan = ColumnPlan.fit(first.stats, scenario.dataset, noise_sd=first.stats_noise_sd)
    task = replace(task, plan=plan, weights={"bank-a": first.rows_train})
    second = _check(_send(task, context, "query.stats", **{PHASE_KEY: BINS}), "query.stats")
    cells = second.stats.by_label
    assert set(cells) == set(plan.grids) | set(plan.categorical) and all(v.shape[0] == 2 for v in cells.values())
    assert not np.allclose(cells["age"], np.round(cells["age"]))                        # noised good/bad counts
    assert classify("report.stats.by_label.age.0", "query.stats").protection == NOISED
    columns = len(plan.grids) + len(plan.categorical)                                   # one count per column a row
    assert second.stats_noise_sd == pytest.approx(scenario.partners[0].privacy.stats_noise_multiplier * columns ** 0.5)


def test_a_fairness_release_is_inventoried_noised_and_withholds_its_sums(tmp_path: Path) -> None:
    import tomllib

    import tomli_w

    from fedcredit.credit.fairness import FairnessTask
    from fedcredit.credit.protocol import FAIRNESS_KEY
    from fedcredit.reports.fairness import cutoff_logit

    frame = make_partner_frame(4000, 1)
    frame["sex"] = np.random.default_rng(1).choice(["F", "M"], len(frame))
    dataset = {"label": "bad_flag", "numeric": ["income", "late"], "categorical": ["housing"], "drop": ["id"],
               "missing": {"late": [96, 98]}, "protected": ["age", "sex"], "levels": {"sex": ["F", "M"]}}
    path = write_scenario(tmp_path / "c", {"bank-a": frame}, dataset=dataset,
                          privacy={"mode": "sample", "epsilon": 8.0, "run_epsilon": 2.0, "delta": 1e-6})
    raw = tomllib.loads(path.read_text())
    raw["fairness"] = {"cutoff_score": 520, "groups": {"age": [25, 40, 62]}}
    path.write_text(tomli_w.dumps(raw))
    scenario = load_scenario(path)
    task = TaskConfig(scenario.dataset, scenario.federation, roster=scenario.partners, run="inv",
                      evaluations=scenario.planned_evaluations)
    assert task.evaluations == 2                       # the final evaluation and the fairness release
    context = Context(run_id=1, node_id=1, node_config={"partition-id": 0}, state=RecordDict(), run_config={})
    first = _check(_send(task, context, "query.stats", **{PHASE_KEY: RANGE}), "query.stats")
    assert not {"age", "sex"} & {*first.stats.magnitudes, *first.stats.levels}   # never in the statistics
    plan = ColumnPlan.fit(first.stats, scenario.dataset, noise_sd=first.stats_noise_sd)
    task = replace(task, plan=plan, weights={"bank-a": first.rows_train})
    second = _check(_send(task, context, "query.stats", **{PHASE_KEY: BINS}), "query.stats")
    transform = FeatureTransform.fit(plan, second.stats, scenario.dataset, noise_sd=second.stats_noise_sd)
    assert not any(n.split("=")[0] in ("age", "sex") for n in transform.feature_names)
    fairness = FairnessTask(scenario.fairness, cutoff_logit(520, scenario.scorecard))
    task = replace(task, transform=transform, plan=None, fairness=fairness)

    arrays = ArrayRecord(build_model("logistic", transform.n_features).state_dict())
    reply = _check(_send(task, context, "evaluate", arrays, **{FAIRNESS_KEY: True}), "evaluate")
    release = reply.fairness
    assert reply.evaluation is None and release is not None and release.private and not reply.declined
    assert list(release.columns) == ["age", "sex"] and list(release.columns["sex"]) == ["F", "M", "other", "missing"]
    planned = float(first.privacy["planned"]["evaluation"])
    assert release.noise_sd == pytest.approx(planned * np.sqrt(2))          # sensitivity √(protected columns)
    counts = np.concatenate([c.bad for c in release.columns["age"].values()])
    assert not np.allclose(counts, np.round(counts))
    leaves = [path for path, _ in _leaves(_send(task, context, "evaluate", arrays, **{FAIRNESS_KEY: True}))]
    assert "report.fairness.columns.age.<25.bad" in leaves and not any(".sums" in p for p in leaves)
    assert classify("report.fairness.columns.sex.F.good", "evaluate").protection == NOISED
    assert classify("report.fairness.columns.sex.F.good", "train") is None   # only an evaluate message carries it


def test_a_gbdt_partners_histogram_and_tree_evaluation_replies_are_inventoried_and_noised(dp_partner) -> None:
    import json

    from fedcredit.credit.histograms import BinPlan
    from fedcredit.credit.protocol import GROWING_KEY, TREES_KEY
    from fedcredit.credit.trees import Tree, TreeEnsemble, TreeSettings

    scenario, task = dp_partner
    task = replace(task, federation=replace(task.federation, model="gbdt"), trees=TreeSettings(trees=3, max_depth=2))
    context = Context(run_id=1, node_id=1, node_config={"partition-id": 0}, state=RecordDict(), run_config={})
    first = _check(_send(task, context, "query.stats", **{PHASE_KEY: RANGE}), "query.stats")
    plan = ColumnPlan.fit(first.stats, scenario.dataset, noise_sd=first.stats_noise_sd)
    task = replace(task, plan=plan, weights={"bank-a": first.rows_train})
    second = _check(_send(task, context, "query.stats", **{PHASE_KEY: BINS}), "query.stats")
    transform = FeatureTransform.fit(plan, second.stats, scenario.dataset, noise_sd=second.stats_noise_sd)
    bins = BinPlan.fit(transform, plan, second.stats, None)
    task = replace(task, transform=transform, plan=None, bins=bins)
    ensemble = TreeEnsemble(-1.0, transform.feature_names)
    growing = json.dumps({"tree": 1, "level": 0, "nodes": [0], "partial": Tree().to_dict()})
    reply = _send(task, context, "query.histograms", **{TREES_KEY: ensemble.to_json(), GROWING_KEY: growing})
    content = {"metrics": dict(reply.content["metrics"]), "report": str(reply.content["report"][REPORT_KEY]),
               "histograms": {k: "tensor" for k in reply.content["histograms"].keys()}}
    for path, value in reply_paths(content):
        assert not any(path == w or path.startswith(w.rstrip("*")) for w in WITHHELD), f"{path} must be withheld"
        assert classify(path, "query.histograms") is not None, f"{path} = {value!r} is not in the release inventory"
    assert classify("histograms.grad", "query.histograms").protection == NOISED
    level = PartnerReport.from_json(str(reply.content["report"][REPORT_KEY]))
    hess = reply.content["histograms"].to_torch_state_dict()["hess"].numpy()
    assert level.stats_noise_sd > 0 and (hess < 0).any()                     # noised: some hessian sums below 0
    assert level.privacy["noise_multiplier"] == pytest.approx(first.privacy["planned"]["dp-sgd"])
    final = _check(_send(task, context, "evaluate", **{TREES_KEY: ensemble.to_json()}), "evaluate")
    assert final.evaluation is not None and final.evaluation.private
