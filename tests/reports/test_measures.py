"""The validation measures against known cases and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from fedcredit.credit.metrics import PRIVATE_SCORE_EDGES, ScoreHistogram
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.statistics import RangeStats
from fedcredit.reports.measures import (
    PSI_FLOOR,
    calibration,
    discrimination,
    feature_psi,
    hanley_mcneil_se,
    hosmer_lemeshow,
    psi,
    psi_reading,
    score_distribution,
)


@pytest.mark.parametrize("n_bad, n_good", [(10, 10), (30, 200), (1, 5)])
def test_auc_standard_error_at_one_half_is_the_exact_mann_whitney_null_variance(n_bad: int, n_good: int) -> None:
    # Under H0 (AUC 0.5, no ties) Var(AUC) = (n_b + n_g + 1) / (12 n_b n_g) exactly; Hanley-McNeil's
    # Q1 = Q2 = 1/3 give the same expression.
    assert hanley_mcneil_se(0.5, n_bad, n_good) == pytest.approx(math.sqrt((n_bad + n_good + 1) / (12 * n_bad * n_good)))


def test_auc_standard_error_by_hand_and_interval_from_a_histogram() -> None:
    a, nb, ng = 0.8, 50, 200
    q1, q2 = 0.8 / 1.2, 2 * 0.64 / 1.8                      # 0.6667, 0.7111
    by_hand = math.sqrt((0.8 * 0.2 + 49 * (q1 - 0.64) + 199 * (q2 - 0.64)) / (50 * 200))
    assert hanley_mcneil_se(a, nb, ng) == pytest.approx(by_hand) and by_hand == pytest.approx(0.039519, abs=1e-6)
    with pytest.raises(ValueError):
        hanley_mcneil_se(0.8, 0, 10)

    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.2).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(-1.5, 1, 4000) + 1.2 * y)))
    d = discrimination(ScoreHistogram.from_scores(y, p))
    assert d["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-3)
    assert d["auc_se"] == pytest.approx(hanley_mcneil_se(d["auc"], y.sum(), len(y) - y.sum()))
    assert d["auc_low"] == pytest.approx(d["auc"] - 1.959964 * d["auc_se"], abs=1e-6)
    assert d["auc_high"] == pytest.approx(d["auc"] + 1.959964 * d["auc_se"], abs=1e-6)
    assert d["gini"] == pytest.approx(2 * d["auc"] - 1) and d["rows"] == 4000 and not d["noised"]
    one_class = discrimination(ScoreHistogram.from_scores(np.zeros(5, int), np.full(5, 0.1)))
    assert one_class["auc"] is None and one_class["auc_low"] is None and "0 bad rows" in one_class["undefined"]


def test_a_noised_histogram_widens_the_interval_by_its_noise() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(-1, 1, 3000) + y)))
    exact = ScoreHistogram.from_scores(y, p).coarsen(PRIVATE_SCORE_EDGES)
    noised = ScoreHistogram(exact.bad, exact.good, None, None, 0.0, exact.edges, noise_sd=20.0)
    d = discrimination(noised)
    sd = noised.metrics()["auc_noise_sd"]
    assert d["noised"] and sd > 0
    assert d["auc_se"] == pytest.approx(math.hypot(hanley_mcneil_se(d["auc"], d["bads"], d["goods"]), sd))


def test_psi_by_hand() -> None:
    expected, actual = [0.25, 0.25, 0.5], [0.2, 0.3, 0.5]
    by_hand = (0.2 - 0.25) * math.log(0.2 / 0.25) + (0.3 - 0.25) * math.log(0.3 / 0.25)   # 0.020273
    assert psi(expected, actual) == pytest.approx(by_hand) and by_hand == pytest.approx(0.0202733, abs=1e-7)
    assert psi([25, 25, 50], [40, 60, 100]) == pytest.approx(by_hand)          # counts, any totals
    # an empty bin on one side counts as PSI_FLOOR
    assert psi([1, 1], [1, 0]) == pytest.approx(0.5 * math.log(1 / 0.5) + (PSI_FLOOR - 0.5) * math.log(PSI_FLOOR / 0.5))
    assert psi([0, 0], [1, 2]) is None and psi([1, -3], [1, 0]) == pytest.approx(0.0)   # negative noised = 0
    assert [psi_reading(v) for v in (0.05, 0.2, 0.3, None)] == [
        "stable", "some shift: investigate", "shifted: the population differs", None]


def test_calibration_deciles_from_a_histogram_match_the_sorted_rows() -> None:
    # 1000 rows whose logits are 0.007 apart (the fine grid's bins are 0.005 wide): every row has its own
    # bin, so the deciles of the histogram are the deciles of the sorted rows
    logits = np.linspace(-5, 2, 1000)
    p = 1 / (1 + np.exp(-logits))
    y = (np.random.default_rng(2).random(1000) < p).astype(int)
    cal = calibration(ScoreHistogram.from_scores(y, p))
    assert [d["decile"] for d in cal["deciles"]] == list(range(1, 11))
    for k, d in enumerate(cal["deciles"]):
        rows = slice(100 * k, 100 * (k + 1))
        assert d["rows"] == 100 and d["bads"] == y[rows].sum()
        assert d["observed_bad_rate"] == pytest.approx(y[rows].mean())
        assert d["predicted_bad_rate"] == pytest.approx(p[rows].mean(), abs=1e-3)
        assert d["pd_low"] <= p[rows].min() and p[rows].max() <= d["pd_high"]
    hl = cal["hosmer_lemeshow"]
    assert hl["df"] == 8 and 0 <= hl["p_value"] <= 1 and hl["p_value"] > 0.001     # well calibrated by construction
    # a coarse (private) histogram never splits a bin: fewer, unequal bands, still every row
    coarse = calibration(ScoreHistogram.from_scores(y, p).coarsen(PRIVATE_SCORE_EDGES))
    assert 3 <= len(coarse["deciles"]) <= 10 and sum(d["rows"] for d in coarse["deciles"]) == 1000


def test_hosmer_lemeshow_by_hand() -> None:
    bands = [{"rows": 100, "bads": 5, "predicted_bad_rate": 0.04}, {"rows": 100, "bads": 12, "predicted_bad_rate": 0.1},
             {"rows": 50, "bads": 20, "predicted_bad_rate": 0.5}]
    stat = 1 ** 2 / (4 * 0.96) + 2 ** 2 / (10 * 0.9) + 5 ** 2 / (25 * 0.5)
    hl = hosmer_lemeshow(bands)
    assert hl["statistic"] == pytest.approx(stat) and hl["df"] == 1
    assert hl["p_value"] == pytest.approx(math.erfc(math.sqrt(stat / 2)))      # chi-square, 1 df
    assert hosmer_lemeshow(bands[:2]) is None


def test_score_distribution_is_on_the_coarse_grid() -> None:
    hist = ScoreHistogram.from_scores(np.array([0, 1, 0]), np.array([0.01, 0.5, 0.9]))
    rows = score_distribution(hist)
    assert len(rows) == len(PRIVATE_SCORE_EDGES) - 1 and sum(rows) == 3


def test_feature_psi_against_the_pool_by_hand() -> None:
    spec = DatasetSpec.from_dict({"label": "bad", "numeric": ["x"], "categorical": ["c"]})

    def stats(x: list[float], c: list[str | None]) -> RangeStats:
        frame = pd.DataFrame({"x": x, "c": pd.Series(c, dtype=object)})
        return RangeStats.from_frame(frame, np.zeros(len(x), dtype=int), spec)
    a = stats([1.0] * 6 + [100.0] * 2, ["u"] * 6 + ["v", None])
    b = stats([1.0] * 2 + [100.0] * 2, ["u", "v", "v", "v"])
    out = feature_psi({"a": a, "b": b}, ["x"], ["c"])
    # categorical: levels u, v and missing; pool = (7, 4, 1) of 12
    pool = np.array([7, 4, 1]) / 12
    for name, own in (("a", np.array([6, 1, 1]) / 8), ("b", np.array([1, 3, 0]) / 4)):
        own = np.maximum(own, PSI_FLOOR)
        assert out["c"]["partners"][name] == pytest.approx(float(np.sum((own - pool) * np.log(own / pool))))
    assert out["c"]["bands"] == 3 and out["c"]["kind"] == "categorical"
    # numeric: two magnitudes far apart (two bands) plus missing; pool = (8, 4, 0) of 12
    pool = np.maximum(np.array([8, 4, 0]) / 12, PSI_FLOOR)
    own = np.maximum(np.array([2, 2, 0]) / 4, PSI_FLOOR)
    assert out["x"]["partners"]["b"] == pytest.approx(float(np.sum((own - pool) * np.log(own / pool))))
    assert out["x"]["readings"]["b"] == psi_reading(out["x"]["partners"]["b"])
