"""The group measures from released histograms against the same measures computed on the pooled rows
directly and with fairlearn; under DP, the stated noise SDs against the spread of the noised measures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_ratio,
    equal_opportunity_difference,
    selection_rate,
    true_positive_rate,
)

from fedcredit.credit.fairness import FairnessSettings, FairnessTask, GroupCells, GroupScores, clipped_logit
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.scorecard import ScorecardSettings
from fedcredit.privacy.evaluation import noisy_group_scores
from fedcredit.reports.fairness import AIR_THRESHOLD, cutoff_logit, fairness_summary, fairness_table

SPEC = DatasetSpec("bad", ("x",), protected=("age", "sex"), protected_numeric=("age",))
SETTINGS = FairnessSettings(cutoff_score=530, groups={"age": [25, 40, 62], "sex": {"female": ["F"], "male": ["M"]}},
                            reference={"sex": "male"})
SCALE = ScorecardSettings(base_score=600, base_odds=50, pdo=20)
LOGIT = cutoff_logit(530, SCALE)


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Scored rows whose PD rises for the young and for women (so the measures differ by group)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(19, 80, n).astype(float)
    sex = rng.choice(["F", "M"], n)
    logit = -1.3 + 0.6 * (age < 25) + 0.3 * (sex == "F") + rng.normal(0, 0.9, n)
    p_bad = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < p_bad).astype(int)
    return y, p_bad, pd.DataFrame({"age": age, "sex": pd.Series(sex, dtype=object)})


def _release(y, p_bad, protected) -> GroupScores:
    return FairnessTask(SETTINGS, LOGIT).release(SPEC, y, p_bad, protected)


def _direct(y, p_bad, group, ref):
    """Each group's measures from the rows themselves (numpy only)."""
    score = SCALE.offset - SCALE.factor * clipped_logit(p_bad)
    approved = score >= 530
    sd = score.std()
    out = {}
    for g in np.unique(group):
        m = group == g
        good = m & (y == 0)
        out[g] = {"rate": approved[m].mean(), "mean": score[m].mean(), "tpr": approved[good].mean(),
                  "observed": y[m].mean(), "predicted": p_bad[m].mean()}
    for g, v in out.items():
        v["air"] = v["rate"] / out[ref]["rate"]
        v["smd"] = (v["mean"] - out[ref]["mean"]) / sd
        v["tpr_gap"] = v["tpr"] - out[ref]["tpr"]
    return out


def test_exact_measures_equal_the_pooled_rows_and_fairlearn() -> None:
    y, p_bad, protected = _rows(5000, 1)
    parts = [_release(y[s], p_bad[s], protected.iloc[s].reset_index(drop=True))
             for s in (slice(0, 800), slice(800, 2900), slice(2900, None))]    # three partners
    rows, references = fairness_table(GroupScores.combine(parts), SPEC, SETTINGS, SCALE)
    assert references == {"age": "[40, 62)", "sex": "male"}        # age: the largest band; sex: as declared
    age = protected["age"].to_numpy()
    bands = np.array(["<25", "[25, 40)", "[40, 62)", ">=62"], dtype=object)[np.digitize(age, [25, 40, 62])]
    groups = {"age": bands, "sex": np.where(protected["sex"] == "F", "female", "male")}
    score = SCALE.offset - SCALE.factor * clipped_logit(p_bad)
    for col, group in groups.items():
        direct = _direct(y, p_bad, group, references[col])
        mine = {r["group"]: r for r in rows if r["column"] == col}
        assert set(mine) == set(direct)                          # the empty "missing" / "other" are left out
        # fairlearn on the rows: approved = favourable prediction, good (no default) = positive label
        frame = MetricFrame(metrics={"rate": selection_rate, "tpr": true_positive_rate}, y_true=1 - y,
                            y_pred=(score >= 530).astype(int), sensitive_features=group)
        for g, r in mine.items():
            d = direct[g]
            assert r["rows"] == (group == g).sum() and r["bads"] == y[group == g].sum()
            assert r["approval_rate"] == pytest.approx(d["rate"], abs=1e-12)
            assert r["approval_rate"] == pytest.approx(frame.by_group["rate"][g], abs=1e-12)
            assert r["air"] == pytest.approx(d["air"], rel=1e-12)
            assert r["smd"] == pytest.approx(d["smd"], rel=1e-9, abs=1e-12)
            assert r["mean_score"] == pytest.approx(d["mean"], rel=1e-12)
            assert r["tpr"] == pytest.approx(frame.by_group["tpr"][g], abs=1e-12)
            assert r["tpr_gap"] == pytest.approx(d["tpr_gap"], abs=1e-12)
            assert r["observed_bad_rate"] == pytest.approx(d["observed"], abs=1e-12)
            assert r["predicted_bad_rate"] == pytest.approx(d["predicted"], rel=1e-12)
            assert r["calibration_gap"] == pytest.approx(d["observed"] - d["predicted"], abs=1e-12)
            assert r["air_noise_sd"] == 0.0 and not r["noised"]
            assert ("AIR below" in " ".join(r["flags"])) == (r["air"] < AIR_THRESHOLD)
        # fairlearn's own summaries: min/max of the approval rates, max-min of the true-positive rates
        rates = [r["approval_rate"] for r in mine.values()]
        assert min(rates) / max(rates) == pytest.approx(demographic_parity_ratio(
            1 - y, (score >= 530).astype(int), sensitive_features=group), rel=1e-12)
        tprs = [r["tpr"] for r in mine.values()]
        assert max(tprs) - min(tprs) == pytest.approx(equal_opportunity_difference(
            1 - y, (score >= 530).astype(int), sensitive_features=group), abs=1e-12)
    young = next(r for r in rows if r["group"] == "<25")
    assert young["smd"] < 0 and young["air"] < 1      # riskier by construction: lower scores, fewer approvals


def test_summary_settings_state_the_cutoff_and_the_scale() -> None:
    y, p_bad, protected = _rows(800, 2)
    rows, settings = fairness_summary(_release(y, p_bad, protected), SPEC, SETTINGS, SCALE, partners=["a"], round=4)
    assert settings["cutoff_pd"] == pytest.approx(1 / (1 + np.exp((530 - SCALE.offset) / SCALE.factor)))
    assert settings["reference"] == {"age": "[40, 62)", "sex": "male"} and settings["noised"] is False
    assert settings["groups"]["sex"] == ["female", "male", "other", "missing"]
    assert {r["reference_from"] for r in rows if r["column"] == "sex"} == {"[fairness] reference"}
    empty, note = fairness_summary(None, SPEC, SETTINGS, SCALE, partners=[], round=4, note="none released")
    assert empty == [] and note["note"] == "none released"


def test_a_reference_group_without_rows_leaves_the_ratios_undefined_with_the_reason() -> None:
    y, p_bad, protected = _rows(600, 3)
    settings = FairnessSettings(cutoff_score=530, groups=SETTINGS.groups, reference={"age": 70})
    protected["age"] = protected["age"].clip(upper=61)                      # nobody is 62 or older
    rows, _ = fairness_table(_release(y, p_bad, protected), SPEC, settings, SCALE)
    age = [r for r in rows if r["column"] == "age"]
    assert {r["reference_group"] for r in age} == {">=62"} and all(r["air"] is None for r in age)
    assert "the reference group '>=62' of 'age' has no measures" in age[0]["undefined"]
    assert age[0]["approval_rate"] is not None                              # the group's own measures remain


def _binned(scores: GroupScores) -> GroupScores:
    """The release as a DP partner bins it, without its noise: the value the noised measures scatter around."""
    out = GroupScores(scores.edges, scores.cutoff)
    out.columns = {col: {n: GroupCells(c.bad, c.good) for n, c in groups.items()} for col, groups in scores.columns.items()}
    return out


def test_noised_measures_scatter_around_the_binned_ones_by_their_stated_noise() -> None:
    y, p_bad, protected = _rows(6000, 4)
    exact = _release(y, p_bad, protected)
    truth = {(r["column"], r["group"]): r for r in fairness_table(_binned(exact), SPEC, SETTINGS, SCALE)[0]}
    rng = np.random.default_rng(7)
    draws: dict[tuple[str, str], dict[str, list[float]]] = {}
    for _ in range(200):
        noised, release, sd = noisy_group_scores(exact, 2.0, rng=rng)
        assert sd == pytest.approx(2.0 * np.sqrt(2)) and release.noise_multiplier == 2.0 and release.steps == 1
        assert noised.private and all(c.sums is None for g in noised.columns.values() for c in g.values())
        for r in fairness_table(noised, SPEC, SETTINGS, SCALE)[0]:
            if r["is_reference"] or r["air"] is None:
                continue
            d = draws.setdefault((r["column"], r["group"]), {k: [] for k in ("air", "smd", "tpr_gap", "sd_air",
                                                                             "sd_smd", "sd_tpr")})
            for k, key in (("air", "air"), ("smd", "smd"), ("tpr_gap", "tpr_gap"), ("sd_air", "air_noise_sd"),
                           ("sd_smd", "smd_noise_sd"), ("sd_tpr", "tpr_gap_noise_sd")):
                d[k].append(r[key])
    assert set(draws) >= {("age", "<25"), ("age", "[25, 40)"), ("sex", "female")}
    for key, d in draws.items():
        if len(d["air"]) < 180:
            continue
        for measure, stated in (("air", "sd_air"), ("smd", "sd_smd"), ("tpr_gap", "sd_tpr")):
            values, sd = np.asarray(d[measure]), float(np.mean(d[stated]))
            assert 0.75 < values.std() / sd < 1.3, (key, measure, values.std(), sd)          # the stated noise
            assert abs(values.mean() - truth[key][measure]) < 4 * sd / np.sqrt(len(values)) + 0.02 * sd, key
