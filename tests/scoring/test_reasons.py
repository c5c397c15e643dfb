"""Reason codes of a scorecard (points below max) and reason texts (defaults, scenario overrides)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.loading import prepare_table
from fedcredit.credit.model import CreditClassifier
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.scorecard import Scorecard, ScorecardSettings, fit_rows
from fedcredit.scoring.reasons import MODEL_TEXT, SCORECARD_TEXT
from fedcredit.scoring.scorer import ScoreOptions, Scorer
from tests.scoring.models import SCORING_SPEC, applicants, train_model


def scorecard_model(path: Path, *, texts: dict[str, str] | None = None) -> ScoringModel:
    dataset = DatasetSpec.from_dict(SCORING_SPEC)
    table = prepare_table(applicants(3000, seed=0).assign(bad_flag=_labels(3000)), dataset, source="train")
    settings = ScorecardSettings()
    woe, iv = fit_rows(table.features, table.label, dataset, settings)
    clf = CreditClassifier("scorecard", epochs=5, seed=0).fit(woe.transform(table.features),
                                                              table.label.astype(np.float32))
    card = Scorecard.from_model(woe, clf.module_.state_dict(), settings, iv)
    model = ScoringModel(dataset, card.scoring_transform(woe), "scorecard", (), card.scoring_state(),
                         {"reason_texts": texts or {}, "scorecard": card.summary()})
    model.save(path)
    return ScoringModel.load(path)


def _labels(n: int) -> np.ndarray:
    from tests.conftest import make_partner_frame

    return make_partner_frame(n, 0)["bad_flag"].to_numpy()


def test_top_reason_is_the_largest_points_below_max_on_1000_applicants(tmp_path: Path) -> None:
    model = scorecard_model(tmp_path / "card.pt")
    scorer = Scorer(model, ScoreOptions(reasons=4))
    frame = applicants(1000, seed=7)
    scored = scorer.score(frame, source="applicants")
    assert len(scored.pd) == 1000
    points = model.transform.transform(scored.checked.features).astype(np.float64)
    below = model.transform.binned.best() - points                 # points below max, per characteristic
    assert (below >= 0).all()
    columns = model.transform.binned.columns
    top = scored.reason_codes[:, 0]
    has_reason = below.max(axis=1) > 0
    assert has_reason.sum() > 900
    assert (top[~has_reason] == -1).all()                           # at the best bin everywhere: no reason
    rows = np.flatnonzero(has_reason)
    assert np.allclose(below[rows, top[rows]], below[rows].max(axis=1))   # ties: any of the largest
    assert (np.asarray(scored.reasons[rows, 0]) == np.asarray(columns, dtype=object)[top[rows]]).all()
    # the second reason loses no more points than the first, and a characteristic is never a reason twice
    second = scored.reason_codes[:, 1]
    ok = rows[second[rows] >= 0]
    assert (below[ok, second[ok]] <= below[ok, top[ok]] + 1e-9).all() and (second[ok] != top[ok]).all()
    # the score is the points' sum and its PD the model's
    assert model.predict_proba(scored.checked.features) == pytest.approx(scored.pd, rel=1e-12)
    assert scorer.attribution.points_below_max(points) == pytest.approx(below)


def test_reason_texts_default_and_scenario_override(tmp_path: Path) -> None:
    frame = applicants(50, seed=3)
    plain = Scorer(scorecard_model(tmp_path / "a.pt")).score(frame, source="x")
    code = plain.reason_codes[0, 0]
    assert plain.reason_texts[0, 0] == SCORECARD_TEXT.format(col=plain.columns[code])
    override = {"late": "Number of late payments", "income": "Income too low for the amount"}
    custom = Scorer(scorecard_model(tmp_path / "b.pt", texts=override)).score(frame, source="x")
    names, texts = custom.reasons, custom.reason_texts
    for col, text in override.items():
        assert (texts[names == col] == text).all()
    assert (texts[names == ""] == "").all()
    lr = Scorer(train_model(tmp_path / "lr.pt")).score(frame, source="x")
    first = lr.reasons[0, 0]
    assert first and lr.reason_texts[0, 0] == MODEL_TEXT.format(col=first)
