"""A small consortium scored by a real (quickly trained) model: what partners would release."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.loading import prepare_table
from fedcredit.credit.metrics import ScoreHistogram
from fedcredit.credit.statistics import RangeStats
from tests.conftest import make_partner_frame
from tests.scoring.models import train_model


@dataclass
class Released:
    model_path: Path
    evaluations: dict[str, ScoreHistogram]
    stats: dict[str, RangeStats]
    summary: dict


@pytest.fixture(scope="session")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    folder = tmp_path_factory.mktemp("released")
    model = train_model(folder / "model.pt")
    evaluations, stats, partners = {}, {}, []
    for name, rows, seed, shift in (("bank-a", 1200, 11, 0.0), ("insurer-b", 800, 12, 0.5),
                                    ("platform-c", 500, 13, 1.0)):
        table = prepare_table(make_partner_frame(rows, seed, shift=shift), model.spec, source=name)
        evaluations[name] = ScoreHistogram.from_scores(table.label, model.predict_proba(table.features))
        stats[name] = RangeStats.from_frame(table.features, table.label, model.spec)
        partners.append({"name": name, "kind": "bank", "rows_train": rows, "rows_test": rows,
                         "federated": evaluations[name].metrics(), "local": {"auc": 0.7},
                         "privacy": {"mode": "off"}})
    summary = {"run": "r1", "scenario": "demo", "model": "logistic", "strategy": "fedavg", "rounds": 3,
               "model_id": ScoringModel.load(folder / "model.pt").id, "partners": partners,
               "federated": ScoreHistogram.combine(evaluations.values()).metrics(), "centralized": {"auc": 0.8},
               "features": model.transform.feature_names, "features_dropped": {}, "notices": [],
               "secure_aggregation": False}
    return Released(folder / "model.pt", evaluations, stats, summary)
