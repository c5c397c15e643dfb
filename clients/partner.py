"""The work a partner does on its own rows: statistics, one training round, evaluation.

No Flower here: `clients.app` translates messages into these calls, so the same code
serves simulation and deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import json
from pathlib import Path

import numpy as np
import torch

from credit.features import ColumnStats, FeatureTransform
from credit.loading import PartnerTable, load_table, partner_seed, split_train_test
from credit.metrics import ScoreHistogram
from credit.model import build_model, make_loader, make_optimizer, predict_proba, train_epochs
from credit.protocol import PartnerReport, TaskConfig
from credit.scenario import FederationSettings, Partner
from credit.schema import DatasetSpec


@dataclass(frozen=True)
class PartnerData:
    """A partner's checked rows, split locally into train and test."""

    partner: Partner
    train: PartnerTable
    test: PartnerTable


_CACHE: dict[tuple, PartnerData] = {}  # a simulation actor serves many messages; deployment one


def open_partner_data(partner: Partner, spec: DatasetSpec, federation: FederationSettings) -> PartnerData:
    """Load, check and split a partner's table (cached while the file is unchanged)."""
    path = Path(partner.data)
    stat = path.stat() if path.exists() else None
    key = (partner, json.dumps(spec.to_dict(), sort_keys=True), federation.test_fraction, federation.seed,
           federation.min_rows, federation.min_bad, stat and (stat.st_mtime_ns, stat.st_size))
    if key not in _CACHE:
        table = load_table(path, spec, source=f"partner '{partner.name}'",
                           min_rows=federation.min_rows, min_bad=federation.min_bad)
        train, test = split_train_test(table, test_fraction=federation.test_fraction,
                                       seed=partner_seed(federation.seed, partner.name))
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = PartnerData(partner, train, test)
    return _CACHE[key]


def report(data: PartnerData, **fields) -> PartnerReport:
    return PartnerReport(data.partner.name, data.partner.kind, len(data.train), len(data.test), **fields)


def column_statistics(data: PartnerData, spec: DatasetSpec) -> PartnerReport:
    """Round 0: additive statistics of the training rows for the shared transform."""
    return report(data, stats=ColumnStats.from_frame(data.train.features, spec))


def _design(data: PartnerData, transform: FeatureTransform) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (transform.transform(data.train.features), data.train.label.astype(np.float32),
            transform.transform(data.test.features), data.test.label)


def evaluate_model(data: PartnerData, task: TaskConfig, state: Mapping[str, torch.Tensor]) -> ScoreHistogram:
    """Score the partner's test rows with a model; only the histogram leaves."""
    assert task.transform is not None, "evaluation needs the fitted transform"
    model = _model(task, state)
    x_test = task.transform.transform(data.test.features)
    return ScoreHistogram.from_scores(data.test.label, predict_proba(model, x_test))


def train_round(data: PartnerData, task: TaskConfig, state: Mapping[str, torch.Tensor], *,
                server_round: int, proximal_mu: float = 0.0) -> tuple[dict[str, torch.Tensor], PartnerReport]:
    """Evaluate the received global model, then train it locally for `local_epochs`."""
    assert task.transform is not None, "training needs the fitted transform"
    fed = task.federation
    x_train, y_train, x_test, y_test = _design(data, task.transform)
    model = _model(task, state)
    evaluation = ScoreHistogram.from_scores(y_test, predict_proba(model, x_test))
    loader = make_loader(x_train, y_train, batch_size=fed.batch_size,
                         seed=partner_seed(fed.seed + server_round, data.partner.name))
    optimizer = make_optimizer(model, fed.optimizer, lr=fed.learning_rate, weight_decay=fed.weight_decay)
    result = train_epochs(model, loader, optimizer, epochs=fed.local_epochs,
                          proximal_mu=proximal_mu, anchor=state)
    new_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return new_state, report(data, evaluation=evaluation, train_loss=result.loss, steps=result.steps)


def _model(task: TaskConfig, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    fed = task.federation
    model = build_model(fed.model, task.transform.n_features, hidden=fed.hidden, seed=fed.seed)
    model.load_state_dict(dict(state))
    return model
