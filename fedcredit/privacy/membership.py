"""Empirical privacy check: membership inference against a trained model.

Two attacks, both reported beside the theoretical epsilon:
- loss threshold: a row with lower loss is guessed to have been trained on. The attack's
  AUC over members (training rows) vs held-out rows, and its best advantage TPR − FPR.
- canaries: unusual rows (extreme features, the rarer label) of which half are inserted
  into training; exposure is the AUC with which their losses separate inserted from not.
An AUC near 0.5 means the attack cannot tell; DP bounds the advantage by a function of epsilon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from fedcredit.credit.model import (
    build_model,
    make_loader,
    make_optimizer,
    predict_proba,
    train_epochs,
)
from fedcredit.privacy.dpsgd import make_private


def row_losses(p_bad: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = np.clip(p_bad, 1e-7, 1 - 1e-7)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


@dataclass(frozen=True)
class AttackResult:
    attack_auc: float
    advantage: float


def loss_threshold_attack(member_losses: np.ndarray, outsider_losses: np.ndarray) -> AttackResult:
    is_member = np.r_[np.ones(len(member_losses)), np.zeros(len(outsider_losses))]
    score = -np.r_[member_losses, outsider_losses]
    fpr, tpr, _ = roc_curve(is_member, score)
    return AttackResult(float(roc_auc_score(is_member, score)), float(np.max(tpr - fpr)))


def make_canaries(x: np.ndarray, y: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows far outside the data (±4 sd on random features) carrying the rarer label."""
    base = x[rng.integers(0, len(x), count)].copy()
    for row in base:
        cols = rng.choice(x.shape[1], size=max(1, x.shape[1] // 4), replace=False)
        row[cols] = rng.choice([-4.0, 4.0], size=len(cols))
    rare = 1.0 if y.mean() < 0.5 else 0.0
    return base.astype(np.float32), np.full(count, rare, dtype=np.float32)


def canary_audit(x_train: np.ndarray, y_train: np.ndarray, *, model: str, hidden: tuple[int, ...],
                 epochs: int, batch_size: int, lr: float, noise_multiplier: float | None,
                 max_grad_norm: float = 1.0, count: int = 40, seed: int = 0) -> dict[str, float]:
    """Train with half the canaries inserted (DP-SGD when `noise_multiplier` is set) and
    measure how well their losses reveal which were inserted; also the loss-threshold
    attack on ordinary training rows vs fresh rows of the same distribution."""
    rng = np.random.default_rng(seed)
    cx, cy = make_canaries(x_train, y_train, count, rng)
    inserted = np.arange(count) < count // 2
    holdout = rng.random(len(x_train)) < 0.3
    xt = np.vstack([x_train[~holdout], cx[inserted]])
    yt = np.r_[y_train[~holdout], cy[inserted]].astype(np.float32)
    net = build_model(model, x_train.shape[1], hidden=hidden, seed=seed)
    optimizer = make_optimizer(net, "adam", lr=lr)
    loader = make_loader(xt, yt, batch_size=batch_size, seed=seed)
    steps_model, sample_rate = net, 1.0 / len(loader)
    if noise_multiplier is not None:
        private = make_private(net, optimizer, loader.dataset, noise_multiplier=noise_multiplier,
                               max_grad_norm=max_grad_norm, public_rows=len(yt), batch_size=batch_size, seed=seed)
        steps_model, optimizer, loader, sample_rate = private.model, private.optimizer, private.loader, private.sample_rate
    torch.manual_seed(seed)
    result = train_epochs(steps_model, loader, optimizer, epochs=epochs)
    canary_losses = row_losses(predict_proba(net, cx), cy)
    exposure = float(roc_auc_score(inserted, -canary_losses))
    members = row_losses(predict_proba(net, x_train[~holdout]), y_train[~holdout])
    outsiders = row_losses(predict_proba(net, x_train[holdout]), y_train[holdout])
    attack = loss_threshold_attack(members, outsiders)
    return {"canary_auc": exposure, "attack_auc": attack.attack_auc, "advantage": attack.advantage,
            "steps": result.steps, "sample_rate": sample_rate}
