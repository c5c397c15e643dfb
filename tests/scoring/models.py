"""Small real models for the scoring tests: trained in a second on `make_partner_frame` rows, with
the reference distributions a federated run would keep (here from exact statistics)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.loading import prepare_table
from fedcredit.credit.metrics import ScoreHistogram
from fedcredit.credit.model import CreditClassifier
from fedcredit.credit.reference import reference
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.statistics import RangeStats
from tests.conftest import SPEC, make_partner_frame

SCORING_SPEC = {**SPEC, "categorical": ["housing"], "levels": {"housing": ["rent", "own", "mortgage"]}}


def train_model(path: Path, *, model: str = "logistic", rows: int = 3000, seed: int = 0,
                spec: dict | None = None) -> ScoringModel:
    """Fit, save to `path` and return a ScoringModel (metadata like a run's: scenario, run, reference)."""
    dataset = DatasetSpec.from_dict(spec or SCORING_SPEC)
    frame = make_partner_frame(rows, seed)
    table = prepare_table(frame, dataset, source="train")
    ranges = RangeStats.from_frame(table.features, table.label, dataset)
    plan = ColumnPlan.fit(ranges, dataset)
    bins = plan.bin_stats(table.features)
    transform = FeatureTransform.fit(plan, bins, dataset)
    x = transform.transform(table.features)
    clf = CreditClassifier(model, epochs=3, seed=seed, hidden=(8,)).fit(x, table.label.astype(np.float32))
    hist = ScoreHistogram.from_scores(table.label, clf.predict_proba(x)[:, 1])
    meta = {"scenario": "scoring-test", "run": "test-run", "rounds": 3, "model": model, "strategy": "fedavg",
            "partners": [{"name": "bank-a", "kind": "bank", "rows_train": rows, "dataset": "ab" * 32,
                          "privacy": {"mode": "off", "epsilon": None}}],
            "privacy": "no differential privacy (test model)",
            "reference": reference(plan, ranges, bins, transform, [hist], noised=False)}
    saved = ScoringModel(dataset, transform, model, (8,), clf.module_.state_dict(), meta)
    saved.save(path)
    return ScoringModel.load(path)


def applicants(n: int, seed: int = 1, *, shift: float = 0.0) -> pd.DataFrame:
    """Applicant rows as a partner would send them: the id, the features, no label."""
    return make_partner_frame(n, seed, shift=shift).drop(columns="bad_flag")
