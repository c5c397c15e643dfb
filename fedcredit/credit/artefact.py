"""The final model as ONE loadable file: fitted preprocessing + model weights + metadata.

Identity: `save` writes `id`, "sha256:" + the SHA-256 of the artefact's content (the canonical
JSON of its format, spec, transform, model and metadata, then every tensor's name, dtype, shape
and bytes, in name order). `load` recomputes it and refuses a file whose content does not match
(edited or damaged after it was saved). A file saved before ids existed has none: it loads, its
`id` is computed from what it holds, and `sealed` is False (`fedcredit model inspect` says so; save
it again to seal it).

A tree ensemble (model "gbdt") has no tensors: its trees are `model.trees`, in the JSON format of
`fedcredit.credit.trees` (written and read there), inside the same content (and so its id).
"""

from __future__ import annotations

import hashlib
import json
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
from fedcredit.credit.model import MODEL_NAMES, build_model, predict_proba
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.trees import TREE_MODELS, TreeEnsemble, TreeModule

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
    sealed: bool = True   # False: loaded from a file saved before content ids (nothing to check it against)
    trees: TreeEnsemble | None = None   # model "gbdt": the ensemble (state_dict is then empty)

    @property
    def id(self) -> str:
        """The content id: "sha256:" + hex digest of the content (see the module docstring)."""
        return content_id(self._content(), self.state_dict)

    def _content(self) -> dict[str, Any]:
        return {"format": FORMAT, "spec": self.spec.to_dict(), "transform": self.transform.to_dict(),
                "model": {"name": self.model_name, "hidden": list(self.hidden),
                          **({"trees": self.trees.to_dict()} if self.trees is not None else {})},
                "metadata": self.metadata}

    def module(self) -> torch.nn.Module:
        """The network with the stored weights, in float64: a row's score does not depend on how many
        rows are scored with it (float32 matrix kernels round differently by batch shape). A tree
        ensemble's module compares the float32 design values with its float32 thresholds."""
        if self.trees is not None:
            return TreeModule(self.trees).double()
        net = build_model(self.model_name, self.transform.n_features, hidden=self.hidden)
        net.load_state_dict(dict(self.state_dict))
        return net.double()

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """P(bad) for rows holding the spec's feature columns (as `fedcredit.credit.loading` prepares them),
        computed in float64 from the float32 design matrix."""
        return predict_proba(self.module(), self.transform.transform(features))

    def save(self, path: str | Path) -> Path:
        state = {k: v.detach().cpu() for k, v in self.state_dict.items()}
        content = self._content()
        payload = {**content, "state_dict": state, "id": content_id(content, state)}
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
        try:
            model = cls(DatasetSpec.from_dict(payload["spec"]), FeatureTransform.from_dict(payload["transform"]),
                        str(payload["model"]["name"]), tuple(payload["model"]["hidden"]),
                        dict(payload["state_dict"]), dict(payload.get("metadata", {})), sealed="id" in payload,
                        trees=TreeEnsemble.from_dict(payload["model"]["trees"]) if "trees" in payload["model"] else None)
        except (KeyError, TypeError, ValueError) as exc:   # a damaged payload: say so, not a KeyError
            raise InputError(f"a damaged {FORMAT} file ({type(exc).__name__}: {exc}): use the run "
                             "directory's original model.pt", source=str(path)) from exc
        if model.model_name not in MODEL_NAMES + TREE_MODELS:
            raise InputError(f"model kind {model.model_name!r} cannot be scored here yet (known: "
                             f"{list(MODEL_NAMES + TREE_MODELS)}); vertical models are not supported yet",
                             source=str(path))
        if (model.model_name in TREE_MODELS) != (model.trees is not None):
            raise InputError(f"a damaged {FORMAT} file: model {model.model_name!r} "
                             f"{'without' if model.trees is None else 'with'} trees", source=str(path))
        if "id" in payload and payload["id"] != model.id:
            raise InputError(f"the file's content does not match its id {payload['id']} (it was changed or "
                             "damaged after it was saved): refusing it; use the original model.pt from the run "
                             "directory", source=str(path))
        return model


def content_id(content: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> str:
    """"sha256:" + the SHA-256 of the canonical JSON of `content`, then each tensor (name order):
    name, dtype, shape and its bytes."""
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode())
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"\n{name}|{tensor.dtype}|{list(tensor.shape)}\n".encode())
        digest.update(tensor.numpy().tobytes() if tensor.numel() else b"")
    return "sha256:" + digest.hexdigest()
