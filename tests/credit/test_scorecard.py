"""The scorecard: PDO scaling, points per bin from a WOE logistic regression, the scoring artefact
agreeing with the points, and the [scorecard] table's bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import torch

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.errors import InputError
from fedcredit.credit.loading import prepare_table
from fedcredit.credit.model import CreditClassifier
from fedcredit.credit.scenario import load_scenario
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.scorecard import Scorecard, ScorecardSettings, fit_rows
from tests.conftest import SPEC, make_partner_frame, write_scenario

DATASET = DatasetSpec.from_dict(SPEC)


def test_pdo_scaling_base_score_at_base_odds_and_pdo_per_doubling() -> None:
    s = ScorecardSettings()
    assert (s.base_score, s.base_odds, s.pdo) == (600.0, 50.0, 20.0)
    pd_at = lambda odds: 1.0 / (1.0 + odds)   # noqa: E731 — good:bad odds → P(bad)
    assert s.score(pd_at(50.0)) == pytest.approx(600.0)
    assert s.score(pd_at(100.0)) == pytest.approx(620.0)
    assert s.score(pd_at(25.0)) == pytest.approx(580.0)
    assert s.factor == pytest.approx(20 / math.log(2)) and s.offset == pytest.approx(600 - s.factor * math.log(50))
    other = ScorecardSettings(base_score=500.0, base_odds=19.0, pdo=50.0)
    assert other.score(pd_at(19.0 * 8)) == pytest.approx(650.0)
    scores = np.array([400.0, 550.0, 700.0])
    assert s.score(s.pd(scores)) == pytest.approx(scores)


def _card(tmp_path: Path, settings: ScorecardSettings = ScorecardSettings()):
    table = prepare_table(make_partner_frame(3000, 0), DATASET, source="train")
    woe, iv = fit_rows(table.features, table.label, DATASET, settings)
    clf = CreditClassifier("scorecard", epochs=5, seed=0).fit(woe.transform(table.features),
                                                              table.label.astype(np.float32))
    card = Scorecard.from_model(woe, clf.module_.state_dict(), settings, iv)
    return table, woe, clf, card


def test_points_per_bin_follow_the_formula_and_the_artefact_scores_with_them(tmp_path: Path) -> None:
    table, woe, clf, card = _card(tmp_path)
    s = card.settings
    n = len(card.points)
    for col, b in card.bins.items():
        beta = card.coefficients[col]
        expected = [round(-(beta * w + card.intercept / n) * s.factor + s.offset / n) for w in b.woe]
        assert list(card.points[col]) == expected
    # the sum of points is the scaled logit up to the rounding (≤ ½ point per characteristic)
    x = woe.transform(table.features)
    logit = x.astype(np.float64) @ np.array([card.coefficients[c] for c in card.bins]) + card.intercept
    points_t = card.scoring_transform(woe)
    total = points_t.transform(table.features).astype(np.float64).sum(axis=1)
    assert np.max(np.abs(total - (s.offset - s.factor * logit))) <= n / 2 + 1e-6
    # the artefact: PD is exactly the PD of the rounded points' total
    model = ScoringModel(DATASET, points_t, "scorecard", (), card.scoring_state(), {})
    model.save(tmp_path / "model.pt")
    loaded = ScoringModel.load(tmp_path / "model.pt")
    assert loaded.transform.binned.kind == "points"
    assert loaded.predict_proba(table.features) == pytest.approx(s.pd(total), rel=1e-5)
    # the points table and its files
    rows = card.table()
    assert {r["feature"] for r in rows} == set(card.bins)
    assert all(set(r) == {"feature", "bin", "count_share", "bad_rate", "woe", "points"} for r in rows)
    csv_path, json_path = card.write(tmp_path)
    assert csv_path.read_text().splitlines()[0] == "feature,bin,count_share,bad_rate,woe,points"
    assert len(csv_path.read_text().splitlines()) == len(rows) + 1 and json_path.exists()
    assert set(card.summary()["iv"]) == set(card.bins)


def test_min_iv_drops_and_reports_weak_characteristics(tmp_path: Path) -> None:
    _, woe, _, card = _card(tmp_path, ScorecardSettings(min_iv=0.05))
    assert all(v >= 0.05 for c, v in card.iv.items() if c in card.bins)
    weak = [c for c, v in card.iv.items() if v < 0.05]
    assert weak and set(weak) == set(card.dropped) and not set(weak) & set(woe.numeric) | set(woe.categorical)
    assert "min_iv" in woe.dropped[weak[0]]


def _scenario(tmp_path: Path, scorecard: dict) -> Path:
    path = write_scenario(tmp_path, {"bank-a": make_partner_frame(300, 1)},
                          federation={"model": "scorecard"})
    raw = __import__("tomllib").loads(path.read_text())
    raw["scorecard"] = scorecard
    path.write_text(tomli_w.dumps(raw))
    return path


def test_scenario_scorecard_table_and_its_bad_input(tmp_path: Path) -> None:
    ok = load_scenario(_scenario(tmp_path / "ok", {"pdo": 40, "monotonic": {"late": "ascending"},
                                                   "reasons": {"late": "Late payments on file"}}))
    assert ok.federation.model == "scorecard" and ok.scorecard.pdo == 40
    assert ok.scorecard.monotonic == {"late": "ascending"} and ok.to_dict()["scorecard"]["pdo"] == 40
    with pytest.raises(InputError, match=r"\[scorecard\]: field 'monotonic': 'housing' is categorical"):
        load_scenario(_scenario(tmp_path / "cat", {"monotonic": {"housing": "ascending"}}))
    with pytest.raises(InputError, match=r"\[scorecard\]: field 'pdo': points to double the odds must be > 0"):
        load_scenario(_scenario(tmp_path / "pdo", {"pdo": 0}))
    with pytest.raises(InputError, match=r"field 'pdo'.*got -20"):
        load_scenario(_scenario(tmp_path / "neg", {"pdo": -20}))
    with pytest.raises(InputError, match=r"field 'monotonic': must map columns to one of"):
        load_scenario(_scenario(tmp_path / "trend", {"monotonic": {"late": "up"}}))
    with pytest.raises(InputError, match=r"field 'reasons': 'salary' is not a feature"):
        load_scenario(_scenario(tmp_path / "reason", {"reasons": {"salary": "x"}}))


def test_state_of_the_scoring_model_is_the_points_line() -> None:
    s = ScorecardSettings()
    card = Scorecard(s, {}, {}, 0.0, {"a": (1, 2), "b": (3, 4)}, {}, {})
    state = card.scoring_state()
    assert torch.allclose(state["linear.weight"], torch.full((1, 2), -1 / s.factor))
    assert float(state["linear.bias"]) == pytest.approx(s.offset / s.factor, rel=1e-6)
