"""Credit-default models in torch: logistic regression (scorecard family) and a small MLP.

Models output logits of P(bad). `train_epochs` is the one training loop every path uses
(federated client, centralised and local yardsticks); privacy wraps its inputs, not it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

MODEL_NAMES = ("logistic", "mlp", "scorecard")   # scorecard: logistic regression on WOE (or points)


class LogisticModel(nn.Module):
    """Logistic regression: one linear layer → logit."""

    def __init__(self, n_features: int):
        super().__init__()
        self.linear = nn.Linear(n_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class MLPModel(nn.Module):
    """A small fully-connected network with ReLU hidden layers → logit."""

    def __init__(self, n_features: int, hidden: Sequence[int] = (32, 16)):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def build_model(name: str, n_features: int, *, hidden: Sequence[int] = (32, 16), seed: int = 0) -> nn.Module:
    """A freshly initialised model; the same seed gives the same weights everywhere."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODEL_NAMES)}")
    if n_features < 1:
        raise ValueError("a model needs at least one feature")
    torch.manual_seed(seed)
    return MLPModel(n_features, hidden) if name == "mlp" else LogisticModel(n_features)


def make_loader(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int) -> DataLoader:
    """Shuffled mini-batches, reproducible for a given seed."""
    data = Rows(np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.float32))
    return DataLoader(data, batch_size=batch_size, shuffle=True, collate_fn=as_batch,
                      generator=torch.Generator().manual_seed(seed))


class Rows(Dataset):
    """A design matrix and its labels as two tensors (shapes (n, d) and (n,)). A loader fetches a
    batch with one tensor index (`__getitems__`, PyTorch ≥ 2.1) instead of n per-row lookups and a
    stack, ≈ 10× less Python per step; pair it with `collate_fn=as_batch`. Same batches, same order."""

    def __init__(self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor):
        self.x, self.y = torch.as_tensor(x), torch.as_tensor(y)
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} rows but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]

    def __getitems__(self, indices: Sequence[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return [self.x[index], self.y[index]]


def as_batch(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """The collate function for `Rows`: its `__getitems__` already returns the batch."""
    return batch


def make_optimizer(model: nn.Module, name: str, *, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose 'adam' or 'sgd'")


@dataclass(frozen=True)
class TrainResult:
    loss: float | None   # mean training loss over the last epoch; None if it saw no row
    steps: int           # optimizer steps taken


def train_epochs(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, *,
                 epochs: int, proximal_mu: float = 0.0,
                 anchor: Mapping[str, torch.Tensor] | None = None) -> TrainResult:
    """Minimise binary cross-entropy; with `proximal_mu` > 0 add FedProx's μ/2·‖w − anchor‖².

    Runs on one intra-op thread: a credit model's steps (a batch of hundreds of rows, tens of
    features) are too small to share, and on a busy machine waiting threads made a step up to 10×
    slower (benchmarks/bench_privacy.py); the caller's thread count is restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train_epochs(model, loader, optimizer, epochs=epochs, proximal_mu=proximal_mu, anchor=anchor)
    finally:
        torch.set_num_threads(threads)


def _train_epochs(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, *,
                  epochs: int, proximal_mu: float, anchor: Mapping[str, torch.Tensor] | None) -> TrainResult:
    loss_fn = nn.BCEWithLogitsLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    anchors = [anchor[n].detach().clone() for n, _ in _named_trainable(model)] if proximal_mu and anchor else None
    model.train()
    steps, last_loss = 0, None
    for _ in range(epochs):
        total, count = 0.0, 0
        for xb, yb in loader:
            optimizer.zero_grad()
            # Poisson sampling may draw an empty batch: it is still a (noisy) step
            loss = loss_fn(model(xb), yb) if len(yb) else model(xb).sum() * 0.0
            if anchors is not None:
                loss = loss + proximal_mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(params, anchors))
            loss.backward()
            optimizer.step()
            steps += 1
            total += float(loss.detach()) * len(yb) if len(yb) else 0.0
            count += len(yb)
        # no mean loss for an epoch of empty batches, nor a finite one once the model diverged
        last_loss = total / count if count and math.isfinite(total) else None
    return TrainResult(last_loss, steps)


def _named_trainable(model: nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n.removeprefix("_module."), p) for n, p in model.named_parameters() if p.requires_grad]


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray, *, batch_size: int = 65536) -> np.ndarray:
    """P(bad) for every row of a design matrix, in the model's own precision (float32, or float64)."""
    model.eval()
    dtype = next(model.parameters()).dtype
    out = [torch.sigmoid(model(torch.as_tensor(x[i:i + batch_size], dtype=dtype))).numpy()
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


class CreditClassifier:
    """scikit-learn-style estimator over a design matrix: `fit`, `predict_proba`.

    Used for the centralised and local-only yardsticks, with the same loop as the clients.
    """

    def __init__(self, model: str = "logistic", *, hidden: Sequence[int] = (32, 16), epochs: int = 20,
                 batch_size: int = 256, optimizer: str = "adam", learning_rate: float = 0.01,
                 weight_decay: float = 0.0, seed: int = 0):
        if model not in MODEL_NAMES:
            raise ValueError(f"unknown model {model!r}; choose one of {list(MODEL_NAMES)}")
        if epochs < 1 or batch_size < 1 or learning_rate <= 0:
            raise ValueError("epochs and batch_size must be ≥ 1 and learning_rate > 0")
        self.model, self.hidden, self.epochs, self.batch_size = model, tuple(hidden), epochs, batch_size
        self.optimizer, self.learning_rate, self.weight_decay, self.seed = optimizer, learning_rate, weight_decay, seed
        self.module_: nn.Module | None = None
        self.steps_ = 0

    def fit(self, x: np.ndarray, y: np.ndarray) -> CreditClassifier:
        self.module_ = build_model(self.model, x.shape[1], hidden=self.hidden, seed=self.seed)
        opt = make_optimizer(self.module_, self.optimizer, lr=self.learning_rate, weight_decay=self.weight_decay)
        loader = make_loader(x, y, batch_size=self.batch_size, seed=self.seed)
        self.steps_ = train_epochs(self.module_, loader, opt, epochs=self.epochs).steps
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if self.module_ is None:
            raise RuntimeError("call fit() first")
        p = predict_proba(self.module_, x)
        return np.column_stack([1 - p, p])
