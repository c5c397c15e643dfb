"""The final model as ONE loadable file: fitted preprocessing + model weights + metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from fedcredit.credit.atomic import atomic_write
from fedcredit.credit.errors import InputError
from fedcredit.credit.features import FeatureTransform
from fedcredit.credit.model import build_model, predict_proba
from fedcredit.credit.schema import DatasetSpec

FORMAT = "fedcredit-model/1"


@dataclass
class ScoringModel:
    """Raw partner-format rows in, P(default) out."""

    spec: DatasetSpec
    transform: FeatureTransform
    model_name: str
    hidden: tuple[int, ...]
    state_dict: Mapping[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)

    def module(self) -> torch.nn.Module:
        net = build_model(self.model_name, self.transform.n_features, hidden=self.hidden)
        net.load_state_dict(dict(self.state_dict))
        return net

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """P(bad) for rows holding the spec's feature columns (as `fedcredit.credit.loading` prepares them)."""
        return predict_proba(self.module(), self.transform.transform(features))

    def save(self, path: str | Path) -> Path:
        payload = {
            "format": FORMAT,
            "spec": self.spec.to_dict(),
            "transform": self.transform.to_dict(),
            "model": {"name": self.model_name, "hidden": list(self.hidden)},
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "metadata": self.metadata,
        }
        return atomic_write(path, lambda f: torch.save(payload, f))

    @classmethod
    def load(cls, path: str | Path) -> ScoringModel:
        path = Path(path)
        if not path.is_file():
            raise InputError("model file not found", source=str(path))
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(f"not a fedcredit model file: {exc}", source=str(path)) from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise InputError(f"not a {FORMAT} file", source=str(path))
        return cls(DatasetSpec.from_dict(payload["spec"]), FeatureTransform.from_dict(payload["transform"]),
                   payload["model"]["name"], tuple(payload["model"]["hidden"]), payload["state_dict"],
                   payload.get("metadata", {}))
