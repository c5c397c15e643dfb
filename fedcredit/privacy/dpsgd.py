"""Record-level DP-SGD with Opacus: Poisson sampling, per-sample clipping, Gaussian noise.

The sample rate is 1 / `batches`, where `batches` per epoch comes from the partner's
PUBLIC (noised) row count, never from the exact one: the sampling rate, the number of
steps and the averaging denominator are then functions of a released value, so nothing
about the exact row count leaves with the update. Accounting is done by the ledger from
the steps actually taken, not by the engine (which is new each round).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from opacus import PrivacyEngine
from opacus.data_loader import DPDataLoader
from torch.utils.data import Dataset

from fedcredit.credit.model import Rows, as_batch


@dataclass(frozen=True)
class PrivateTraining:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loader: DPDataLoader
    sample_rate: float


def batches_per_epoch(rows: int, batch_size: int) -> int:
    return max(1, math.ceil(rows / batch_size))


def sample_rate(rows: int, batch_size: int) -> float:
    """Poisson sample rate for an epoch of `rows` rows in batches of `batch_size` (expected)."""
    return 1.0 / batches_per_epoch(rows, batch_size)


def make_private(model: torch.nn.Module, optimizer: torch.optim.Optimizer, dataset: Dataset, *,
                 noise_multiplier: float, max_grad_norm: float, public_rows: int, batch_size: int,
                 seed: int) -> PrivateTraining:
    """Wrap model/optimizer for DP-SGD over `dataset` with Poisson sampling at rate
    1 / batches_per_epoch(public_rows, batch_size); the model's own parameters are trained in place."""
    batches = batches_per_epoch(public_rows, batch_size)
    loader = DPDataLoader(dataset, sample_rate=1.0 / batches, generator=torch.Generator().manual_seed(seed),
                          collate_fn=as_batch if isinstance(dataset, Rows) else None)
    loader.batch_sampler.steps = batches   # int(1 / (1 / k)) is k - 1 for some k
    engine = PrivacyEngine(accountant="prv")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]ecure.*RNG.*")
        warnings.filterwarnings("ignore", message=".*non-full backward hook.*")
        private_model, private_optimizer, private_loader = engine.make_private(
            module=model, optimizer=optimizer, data_loader=loader, noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm, poisson_sampling=False)
    private_optimizer.expected_batch_size = public_rows / batches   # average over the public expectation
    return PrivateTraining(private_model, private_optimizer, private_loader, 1.0 / batches)
