"""What federation is measured against: a centralised model on the pooled training rows
(possible only in simulation, where the modeller holds every table), a local-only model per
partner, and — for a partner with a DP policy — a local-only model under that same policy
(DP-SGD calibrated to its per-run cap): what it could do alone without breaking its own rule.
All use the same preprocessing method, model and training loop as the clients; for boosted trees
(model "gbdt") the centralised and local-only models are scikit-learn's HistGradientBoostingClassifier
with the [gbdt] settings, and the local model under DP is our own grower with the same noise
(`fedcredit.simulations.tree_yardsticks`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from fedcredit.clients.partner import PartnerData
from fedcredit.credit.features import FeatureTransform
from fedcredit.credit.metrics import exact_metrics
from fedcredit.credit.model import CreditClassifier
from fedcredit.credit.scenario import FederationSettings, PrivacyPolicy
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.scorecard import ScorecardSettings
from fedcredit.credit.scorecard import fit_rows as fit_scorecard_rows
from fedcredit.credit.trees import TreeSettings

MIN_STEPS = 1000  # a yardstick is trained to convergence, not starved on a small partner


def yardstick_epochs(rows: int, fed: FederationSettings) -> int:
    """At least the federation's epochs, and at least MIN_STEPS optimizer steps."""
    steps_per_epoch = math.ceil(rows / fed.batch_size)
    return max(fed.rounds * fed.local_epochs, math.ceil(MIN_STEPS / steps_per_epoch))


def _fit(features: pd.DataFrame, label: np.ndarray, spec: DatasetSpec, fed: FederationSettings,
         card: ScorecardSettings | None = None, trees: TreeSettings | None = None) -> tuple[FeatureTransform, Any]:
    """A scorecard (`card` given and model "scorecard") is LR on the WOE of bins from exact pooled counts,
    scored on WOE (unrounded points: the same ranking up to rounding); `trees` given: boosted trees."""
    if trees is not None:
        from fedcredit.simulations.tree_yardsticks import fit_reference

        transform = FeatureTransform.fit_rows(features, spec)
        return transform, fit_reference(transform.transform(features), label, trees, fed.model, seed=fed.seed)
    if fed.model == "scorecard" and card is not None:
        transform = fit_scorecard_rows(features, label, spec, card)[0]
    else:
        transform = FeatureTransform.fit_rows(features, spec)
    clf = CreditClassifier(fed.model, hidden=fed.hidden, epochs=yardstick_epochs(len(label), fed),
                           batch_size=fed.batch_size, optimizer=fed.optimizer,
                           learning_rate=fed.learning_rate, weight_decay=fed.weight_decay, seed=fed.seed)
    return transform, clf.fit(transform.transform(features), label.astype(np.float32))


def centralised(data: Mapping[str, PartnerData], spec: DatasetSpec, fed: FederationSettings,
                card: ScorecardSettings | None = None, trees: TreeSettings | None = None) -> dict[str, Any]:
    """Pool every partner's training rows, fit once, score the pooled and per-partner test rows."""
    train_x = pd.concat([d.train.features for d in data.values()], ignore_index=True)
    train_y = np.concatenate([d.train.label for d in data.values()])
    transform, clf = _fit(train_x, train_y, spec, fed, card, trees)
    per_partner, scores, labels = {}, [], []
    for name, d in data.items():
        p = clf.predict_proba(transform.transform(d.test.features))[:, 1]
        per_partner[name] = exact_metrics(d.test.label, p)
        scores.append(p)
        labels.append(d.test.label)
    pooled = exact_metrics(np.concatenate(labels), np.concatenate(scores))
    return {"pooled": pooled, "partners": per_partner, "steps": getattr(clf, "steps_", None)}


def local_private(d: PartnerData, spec: DatasetSpec, fed: FederationSettings, policy: PrivacyPolicy,
                  trees: TreeSettings | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """The partner alone under its own DP policy: the federation's rounds × epochs of DP-SGD on its
    rows, the noise calibrated to its per-run cap (preprocessing fitted exactly — generous to it);
    (metrics, P(bad)) on its test rows. `trees`: the same trees grown from its own noised histograms."""
    if trees is not None:
        from fedcredit.simulations.tree_yardsticks import local_private_trees

        return local_private_trees(d, spec, trees, policy, seed=fed.seed, forest=fed.model == "random_forest")

    from fedcredit.credit.model import Rows, build_model, make_optimizer, predict_proba, train_epochs
    from fedcredit.privacy.accountant import calibrate_noise
    from fedcredit.privacy.dpsgd import batches_per_epoch, make_private

    transform = FeatureTransform.fit_rows(d.train.features, spec)
    x, y = transform.transform(d.train.features), d.train.label.astype(np.float32)
    epochs = fed.rounds * fed.local_epochs
    q = 1.0 / batches_per_epoch(len(y), fed.batch_size)
    sigma = policy.noise_multiplier or calibrate_noise([], budget=policy.run_cap, delta=policy.delta, sample_rate=q,
                                                       steps=batches_per_epoch(len(y), fed.batch_size) * epochs)
    model = build_model(fed.model, x.shape[1], hidden=fed.hidden, seed=fed.seed)
    optimizer = make_optimizer(model, fed.optimizer, lr=fed.learning_rate, weight_decay=fed.weight_decay)
    private = make_private(model, optimizer, Rows(x, y),
                           noise_multiplier=sigma, max_grad_norm=policy.max_grad_norm, public_rows=len(y),
                           batch_size=fed.batch_size, seed=fed.seed)
    train_epochs(private.model, private.loader, private.optimizer, epochs=epochs)
    p = predict_proba(model, transform.transform(d.test.features))
    return exact_metrics(d.test.label, p), p


def local_only(d: PartnerData, spec: DatasetSpec, fed: FederationSettings, card: ScorecardSettings | None = None,
               trees: TreeSettings | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """The partner alone: its own preprocessing, model and training rows; (metrics, P(bad)) on its test rows."""
    transform, clf = _fit(d.train.features, d.train.label, spec, fed, card, trees)
    p = clf.predict_proba(transform.transform(d.test.features))[:, 1]
    return exact_metrics(d.test.label, p), p


GAIN_LEVEL, GAIN_RESAMPLES = 0.9, 400


def federation_gain(label: np.ndarray, p_local: np.ndarray, p_federated: np.ndarray, *,
                    seed: int = 0) -> dict[str, Any] | None:
    """AUC of the federated model minus the local-only model on the same test rows, with a
    paired bootstrap interval (GAIN_LEVEL, GAIN_RESAMPLES resamples of the rows; Efron &
    Tibshirani 1993, ch. 13): a small partner's test rows are few, and a gain inside the
    interval's noise is not a gain. None when the rows cannot define an AUC."""
    y = np.asarray(label)
    if y.min() == y.max():
        return None
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(GAIN_RESAMPLES):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            diffs.append(roc_auc_score(y[idx], p_federated[idx]) - roc_auc_score(y[idx], p_local[idx]))
    point = float(roc_auc_score(y, p_federated) - roc_auc_score(y, p_local))
    tail = (1 - GAIN_LEVEL) / 2
    return {"auc": point, "low": float(np.quantile(diffs, tail)), "high": float(np.quantile(diffs, 1 - tail)),
            "level": GAIN_LEVEL, "federated_auc_exact": float(roc_auc_score(y, p_federated))}
