"""Record-level DP-SGD with Opacus: Poisson sampling, per-sample clipping, Gaussian noise.

The sample rate is what Opacus derives from the loader (1 / batches per epoch), so the
accounting matches the sampling exactly. Accounting itself is done by the ledger from the
steps actually taken, not by the engine (which is new each round).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from opacus import PrivacyEngine
from torch.utils.data import DataLoader


@dataclass(frozen=True)
class PrivateTraining:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loader: DataLoader
    sample_rate: float


def batches_per_epoch(rows: int, batch_size: int) -> int:
    return max(1, math.ceil(rows / batch_size))


def sample_rate(rows: int, batch_size: int) -> float:
    """Poisson sample rate Opacus uses for a loader of this size."""
    return 1.0 / batches_per_epoch(rows, batch_size)


def make_private(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader, *,
                 noise_multiplier: float, max_grad_norm: float) -> PrivateTraining:
    """Wrap model/optimizer/loader for DP-SGD (the model's own parameters are trained in place)."""
    engine = PrivacyEngine(accountant="prv")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]ecure.*RNG.*")
        warnings.filterwarnings("ignore", message=".*non-full backward hook.*")
        private_model, private_optimizer, private_loader = engine.make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm, poisson_sampling=True)
    return PrivateTraining(private_model, private_optimizer, private_loader, 1.0 / len(loader))
