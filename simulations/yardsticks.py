"""What federation is measured against: a centralised model on the pooled training rows
(possible only in simulation, where the modeller holds every table) and a local-only model
per partner. Both use the same preprocessing method, model and training loop as the clients.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from clients.partner import PartnerData
from credit.features import ColumnStats, FeatureTransform
from credit.metrics import exact_metrics
from credit.model import CreditClassifier
from credit.scenario import FederationSettings
from credit.schema import DatasetSpec

MIN_STEPS = 1000  # a yardstick is trained to convergence, not starved on a small partner


def yardstick_epochs(rows: int, fed: FederationSettings) -> int:
    """At least the federation's epochs, and at least MIN_STEPS optimizer steps."""
    steps_per_epoch = math.ceil(rows / fed.batch_size)
    return max(fed.rounds * fed.local_epochs, math.ceil(MIN_STEPS / steps_per_epoch))


def _fit(features: pd.DataFrame, label: np.ndarray, spec: DatasetSpec,
         fed: FederationSettings) -> tuple[FeatureTransform, CreditClassifier]:
    transform = FeatureTransform.fit(ColumnStats.from_frame(features, spec), spec)
    clf = CreditClassifier(fed.model, hidden=fed.hidden, epochs=yardstick_epochs(len(label), fed),
                           batch_size=fed.batch_size, optimizer=fed.optimizer,
                           learning_rate=fed.learning_rate, weight_decay=fed.weight_decay, seed=fed.seed)
    return transform, clf.fit(transform.transform(features), label.astype(np.float32))


def centralised(data: Mapping[str, PartnerData], spec: DatasetSpec, fed: FederationSettings) -> dict[str, Any]:
    """Pool every partner's training rows, fit once, score the pooled and per-partner test rows."""
    train_x = pd.concat([d.train.features for d in data.values()], ignore_index=True)
    train_y = np.concatenate([d.train.label for d in data.values()])
    transform, clf = _fit(train_x, train_y, spec, fed)
    per_partner, scores, labels = {}, [], []
    for name, d in data.items():
        p = clf.predict_proba(transform.transform(d.test.features))[:, 1]
        per_partner[name] = exact_metrics(d.test.label, p)
        scores.append(p)
        labels.append(d.test.label)
    pooled = exact_metrics(np.concatenate(labels), np.concatenate(scores))
    return {"pooled": pooled, "partners": per_partner, "steps": clf.steps_}


def local_only(d: PartnerData, spec: DatasetSpec, fed: FederationSettings) -> dict[str, float]:
    """The partner alone: its own preprocessing, model and training rows, its own test rows."""
    transform, clf = _fit(d.train.features, d.train.label, spec, fed)
    return exact_metrics(d.test.label, clf.predict_proba(transform.transform(d.test.features))[:, 1])
