"""A partner's fairness release on Taiwan (SEX, AGE protected): the protected columns stay out of the model's
inputs, the exact releases of the three partners add up to the pooled rows' counts, and under DP the release
is noised and charged to the held-out rows before it leaves (or declined when a group's name is not public)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedcredit.clients.partner import column_statistics, fairness_report, fairness_scores, open_partner_data
from fedcredit.credit.fairness import FairnessTask, GroupScores
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.model import build_model
from fedcredit.credit.protocol import BINS, RANGE, TaskConfig
from fedcredit.credit.scenario import load_scenario
from fedcredit.privacy.accountant import compose_rows
from fedcredit.reports.fairness import cutoff_logit
from fedcredit.simulations.datasets import TAIWAN, TAIWAN_FAIRNESS, TAIWAN_PROTECTED, write_taiwan_partners


def _scenario(folder: Path, privacy: dict | None = None):
    if not TAIWAN.exists():
        pytest.fail(f"shared dataset missing: {TAIWAN}")
    return load_scenario(write_taiwan_partners(folder, rounds=3, privacy=privacy, protected=TAIWAN_PROTECTED,
                                               fairness=TAIWAN_FAIRNESS))


def _ready(data, scenario, run: str) -> TaskConfig:
    """Round 0 as the coordinator does it, then the fairness task of the final message."""
    task = TaskConfig(scenario.dataset, scenario.federation, run=run, evaluations=scenario.planned_evaluations)
    first = column_statistics(data, task, RANGE)
    plan = ColumnPlan.fit(first.stats, scenario.dataset, noise_sd=first.stats_noise_sd)
    task = replace(task, plan=plan, weights={data.partner.name: first.rows_train})
    second = column_statistics(data, task, BINS)
    transform = FeatureTransform.fit(plan, second.stats, scenario.dataset, noise_sd=second.stats_noise_sd)
    fairness = FairnessTask(scenario.fairness, cutoff_logit(scenario.fairness.cutoff_score, scenario.scorecard))
    return replace(task, transform=transform, plan=None, fairness=fairness)


def test_exact_releases_of_the_taiwan_partners_add_up_to_the_pooled_held_out_rows(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path / "data")
    assert scenario.dataset.protected == ("SEX", "AGE") and scenario.dataset.protected_numeric == ("AGE",)
    assert not {"SEX", "AGE"} & set(scenario.dataset.features)
    task = TaskConfig(scenario.dataset, scenario.federation, run="t")
    data = {p.name: open_partner_data(p, task, purpose="check") for p in scenario.partners}
    task = _ready(data["uni-bank"], scenario, "t")
    assert not {"SEX", "AGE"} & {c.split("=")[0] for c in task.transform.feature_names}
    state = build_model("logistic", task.transform.n_features, seed=3).state_dict()
    releases = {name: fairness_scores(d, task, state)[0] for name, d in data.items()}
    pooled = GroupScores.combine(list(releases.values()))
    test = pd.concat([d.test.protected.assign(bad=d.test.label) for d in data.values()], ignore_index=True)
    assert pooled.columns["SEX"]["1"].bad.sum() == ((test["SEX"] == "1") & (test["bad"] == 1)).sum()
    assert pooled.columns["SEX"]["2"].good.sum() == ((test["SEX"] == "2") & (test["bad"] == 0)).sum()
    bands = pd.cut(test["AGE"], [-np.inf, 25, 40, 62, np.inf], right=False, labels=["<25", "[25, 40)", "[40, 62)",
                                                                                      ">=62"])
    for band, n in bands.value_counts().items():
        cells = pooled.columns["AGE"][band]
        assert cells.bad.sum() + cells.good.sum() == n
    # the model never reads the protected columns: shuffling them changes no score, only the groups
    shuffled = replace(data["uni-bank"], test=replace(data["uni-bank"].test,
                                                      protected=data["uni-bank"].test.protected.sample(frac=1,
                                                                                                       random_state=1)
                                                      .reset_index(drop=True)))
    again = fairness_scores(shuffled, task, state)[0]
    total = sum(c.sums["score"] for c in again.columns["SEX"].values())
    assert total == pytest.approx(sum(c.sums["score"] for c in releases["uni-bank"].columns["SEX"].values()),
                                  rel=1e-12)


def test_a_dp_partners_release_is_noised_and_charged_to_its_held_out_rows(tmp_path: Path) -> None:
    scenario = _scenario(tmp_path / "data", {"mode": "sample", "epsilon": 6.0, "run_epsilon": 3.0, "delta": 1e-6,
                                             "ledger_dir": "ledgers"})
    partner = scenario.partner("grad-insurer")
    data = open_partner_data(partner, TaskConfig(scenario.dataset, scenario.federation), purpose="check")
    task = _ready(data, scenario, "run-1")
    planned = {"evaluation": 3.0}
    state = build_model("logistic", task.transform.n_features).state_dict()
    reply = fairness_report(data, task, state, round=3, planned=planned)
    assert reply.fairness is not None and reply.fairness.private and not reply.declined
    assert reply.fairness.noise_sd == pytest.approx(3.0 * np.sqrt(2))        # two protected columns
    assert list(reply.fairness.columns["SEX"]) == ["1", "2", "other", "missing"]
    assert reply.rows_test is None                                           # no exact count leaves
    entries = [e for e in reply.privacy["releases"]]
    assert [e["mechanism"] for e in entries] == ["gaussian-statistics"] * 2 + ["gaussian-fairness"]
    assert tuple(entries[-1]["rows"]) == data.test_rows and entries[-1]["noise_multiplier"] == 3.0
    from fedcredit.privacy.accountant import Charge, Release

    charges = [Charge(Release(e["noise_multiplier"], e["sample_rate"], e["steps"]), tuple(e["rows"])) for e in entries]
    assert reply.privacy["epsilon"] == pytest.approx(compose_rows(charges, 1e-6).epsilon)
    # a column whose groups would be named by the rows (no declared levels): declined, nothing charged
    bare = replace(task, spec=replace(task.spec, levels={k: v for k, v in task.spec.levels.items() if k != "SEX"}))
    declined = fairness_report(data, bare, state, round=3, planned=planned)
    assert declined.fairness is None and "'SEX'" in declined.declined and "no public groups" in declined.declined
    assert len(declined.privacy["releases"]) == 3
