"""Tree ensembles on the shared design matrix: the [gbdt] settings, the model, its JSON format.

A `TreeEnsemble` is a gradient-boosted sum of binary trees over the design matrix of the shared
`FeatureTransform` (numeric columns standardised, missing indicators, one-hot levels):

    logit P(bad | x) = base_score + Σ_t tree_t(x)      (a random forest: the mean over t)

Each tree splits on one design feature `j` at a float32 `threshold`: a row goes left when
x_j ≤ threshold, else right. Every node keeps `value` (its leaf weight, −η·G/(H + λ) of the summed
gradients G and hessians H that reached it: the leaves' values are the prediction, the inner nodes'
are what Saabas attributions compare along the path) and `cover` (H).

JSON format (`TreeEnsemble.to_dict` writes it, `TreeEnsemble.from_dict` reads it; nothing else does),
"fedcredit-trees/1":

    {"format": "fedcredit-trees/1", "objective": "binary:logistic", "base_score": float (logit),
     "aggregation": "sum" (boosted: base + Σ trees) | "mean" (a random forest: base + mean of trees),
     "features": [design feature names], "trees": [
        {"feature": [int, ...],      # per node: design feature index, -1 for a leaf
         "threshold": [float, ...],  # float32 value (x_j ≤ threshold goes left); 0 for a leaf
         "left": [int, ...], "right": [int, ...],   # child node positions, -1 for a leaf
         "value": [float, ...],      # the node's weight (a leaf's is its output)
         "cover": [float, ...]}]}    # the node's hessian sum (noised under DP)

Node 0 is the root. Per-applicant attributions: Saabas (2014, "Interpreting random forests"; the
path method of `xgboost`'s approximate contributions): each split on the path from the root to the
row's leaf credits value(child) − value(node) to the split's feature, so for every row
Σ_j contribution_j = raw score − (base_score + Σ_t value_t(root)).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field
from pydantic.dataclasses import dataclass as schema_dataclass

from fedcredit.credit.validation import STRICT, Number, Whole, rule

FORMAT = "fedcredit-trees/1"
GBDT, RANDOM_FOREST = "gbdt", "random_forest"
TREE_MODELS = (GBDT, RANDOM_FOREST)
FOREST_SUBSAMPLE, FOREST_COLSAMPLE = 0.632, 0.5   # a random forest's default row and column shares per tree
MAX_BINS_LIMIT = 255        # as scikit-learn's HistGradientBoostingClassifier


@schema_dataclass(frozen=True, config=STRICT)
class TreeSettings:
    """The [gbdt] table (read with `[federation] model = "gbdt"`).

    `trees` boosting rounds of trees at most `max_depth` deep, each leaf's weight shrunk by
    `learning_rate`; a split needs `min_child_weight` hessian on each side and a gain above
    `min_split_gain`; `l2` is λ in −G/(H + λ); each partner grows a tree from a `subsample` share of
    its training rows (seeded per tree; under DP the accounting takes no credit for it), and from a
    `colsample` share of the columns (drawn per tree by the coordinator, public; under DP the noise
    scales with the square root of the columns released, so fewer columns a tree is less noise). `max_bins`
    value bins per numeric column, cut at quantiles of the shared transform's statistics (None: 32,
    or as many as the private statistics provide when fewer).

    A random forest (`model = "random_forest"`) grows the same trees, each from the gradients at the
    base score (not boosted: its trees are independent), with full Newton leaf weights (learning_rate
    is not used) on a `subsample` (default FOREST_SUBSAMPLE) of the rows and a `colsample` (default
    FOREST_COLSAMPLE) of the columns, and averages them (`resolved`). Unset shares are 1 for gbdt."""

    trees: Annotated[Whole, Field(ge=1, le=2000)] = rule("must be a whole number of trees from 1 to 2000", 50)
    max_depth: Annotated[Whole, Field(ge=1, le=12)] = rule("must be a whole number from 1 to 12", 3)
    learning_rate: Annotated[Number, Field(gt=0, le=1)] = rule("must be in (0, 1]", 0.3)
    min_child_weight: Annotated[Number, Field(ge=0)] = rule("must be ≥ 0 (a hessian sum)", 1.0)
    l2: Annotated[Number, Field(ge=0)] = rule("must be ≥ 0 (λ, the L2 penalty on leaf weights)", 1.0)
    subsample: Annotated[Number, Field(gt=0, le=1)] | None = rule("must be a share in (0, 1]", None)
    min_split_gain: Annotated[Number, Field(ge=0)] = rule("must be ≥ 0", 0.0)
    colsample: Annotated[Number, Field(gt=0, le=1)] | None = rule(
        "must be a share in (0, 1] (of the columns, per tree)", None)
    max_bins: Annotated[Whole, Field(ge=2, le=MAX_BINS_LIMIT)] | None = rule(
        f"must be a whole number from 2 to {MAX_BINS_LIMIT} (value bins per numeric column)", None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TreeSettings:
        return cls(**raw)

    def leaf_value(self, gradient: float, hessian: float) -> float:
        """−η·G/(H + λ) (Chen & Guestrin 2016, eq. 5), H taken ≥ 0 (a noised sum may not be)."""
        return float(-self.learning_rate * gradient / (max(hessian, 0.0) + self.l2 + 1e-12))

    @property
    def row_share(self) -> float:
        """The share of a partner's rows a tree uses (unset: all)."""
        return self.subsample or 1.0

    def columns_per_tree(self, columns: int) -> int:
        """How many of `columns` transform columns a tree's histograms cover (at least 1)."""
        return max(1, min(columns, int(round((self.colsample or 1.0) * columns))))

    def resolved(self, model: str) -> TreeSettings:
        """The settings a run of `model` uses: unset shares filled in, a forest's learning rate 1."""
        forest = model == RANDOM_FOREST
        return replace(self, subsample=self.subsample or (FOREST_SUBSAMPLE if forest else 1.0),
                       colsample=self.colsample or (FOREST_COLSAMPLE if forest else 1.0),
                       learning_rate=1.0 if forest else self.learning_rate)


@dataclass
class Tree:
    """One binary tree as parallel node arrays (see the module docstring)."""

    feature: list[int] = field(default_factory=lambda: [-1])
    threshold: list[float] = field(default_factory=lambda: [0.0])
    left: list[int] = field(default_factory=lambda: [-1])
    right: list[int] = field(default_factory=lambda: [-1])
    value: list[float] = field(default_factory=lambda: [0.0])
    cover: list[float] = field(default_factory=lambda: [0.0])

    def split(self, node: int, feature: int, threshold: float, left: tuple[float, float],
              right: tuple[float, float]) -> tuple[int, int]:
        """Make leaf `node` an inner node; its children get (value, cover); → their positions."""
        ids = []
        for value, cover in (left, right):
            ids.append(len(self.feature))
            self.feature.append(-1)
            self.threshold.append(0.0)
            self.left.append(-1)
            self.right.append(-1)
            self.value.append(float(value))
            self.cover.append(float(cover))
        self.feature[node], self.threshold[node] = int(feature), float(np.float32(threshold))
        self.left[node], self.right[node] = ids
        return ids[0], ids[1]

    def _arrays(self) -> tuple[np.ndarray, ...]:
        return (np.asarray(self.feature, np.int64), np.asarray(self.threshold, np.float32),
                np.asarray(self.left, np.int64), np.asarray(self.right, np.int64))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(n,) the leaf each row of the design matrix x (n, features) reaches."""
        feature, threshold, left, right = self._arrays()
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        while True:
            inner = feature[node] >= 0
            if not inner.any():
                return node
            r, n = rows[inner], node[inner]
            go_left = x[r, feature[n]] <= threshold[n]
            node[r] = np.where(go_left, left[n], right[n])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.value, np.float64)[self.apply(x)]

    def contributions(self, x: np.ndarray, out: np.ndarray) -> None:
        """Add each row's Saabas credits per feature into `out` (n, features)."""
        feature, threshold, left, right = self._arrays()
        value = np.asarray(self.value, np.float64)
        node = np.zeros(len(x), dtype=np.int64)
        rows = np.arange(len(x))
        while True:
            inner = feature[node] >= 0
            if not inner.any():
                return
            r, n = rows[inner], node[inner]
            child = np.where(x[r, feature[n]] <= threshold[n], left[n], right[n])
            np.add.at(out, (r, feature[n]), value[child] - value[n])
            node[r] = child

    def to_dict(self) -> dict[str, list]:
        return {"feature": list(self.feature), "threshold": list(self.threshold), "left": list(self.left),
                "right": list(self.right), "value": list(self.value), "cover": list(self.cover)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Sequence]) -> Tree:
        tree = cls([int(v) for v in raw["feature"]], [float(v) for v in raw["threshold"]],
                   [int(v) for v in raw["left"]], [int(v) for v in raw["right"]],
                   [float(v) for v in raw["value"]], [float(v) for v in raw["cover"]])
        n = len(tree.feature)
        if not n or any(len(a) != n for a in (tree.threshold, tree.left, tree.right, tree.value, tree.cover)):
            raise ValueError("a tree's node arrays must be non-empty and of one length")
        for i, f in enumerate(tree.feature):
            if f >= 0 and not (i < tree.left[i] < n and i < tree.right[i] < n):
                raise ValueError(f"node {i}: children must come after it and exist")
        return tree


@dataclass
class TreeEnsemble:
    """base_score + Σ trees, over the design features `features` (see the module docstring)."""

    base_score: float
    features: list[str]
    trees: list[Tree] = field(default_factory=list)
    average: bool = False          # a random forest: base_score + the MEAN of the trees (else their sum)

    @property
    def _weight(self) -> float:
        return 1.0 / len(self.trees) if self.average and self.trees else 1.0

    def raw_score(self, x: np.ndarray) -> np.ndarray:
        """(n,) logits of P(bad) for a design matrix x (n, features), float64."""
        out = np.zeros(len(x))
        for tree in self.trees:
            out += tree.predict(x)
        return float(self.base_score) + self._weight * out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw_score(x)))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(n, features) Saabas credits to the logit; row sums = raw score − `expected`."""
        out = np.zeros((len(x), len(self.features)))
        for tree in self.trees:
            tree.contributions(x, out)
        return self._weight * out

    @property
    def expected(self) -> float:
        """The logit every path starts from: base_score + Σ (or mean of) the root values."""
        return float(self.base_score + self._weight * sum(t.value[0] for t in self.trees))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "objective": "binary:logistic", "base_score": float(self.base_score),
                "aggregation": "mean" if self.average else "sum",
                "features": list(self.features), "trees": [t.to_dict() for t in self.trees]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TreeEnsemble:
        if raw.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} tree ensemble (format {raw.get('format')!r})")
        if raw.get("aggregation", "sum") not in ("sum", "mean"):
            raise ValueError(f"aggregation must be 'sum' or 'mean' (got {raw.get('aggregation')!r})")
        ensemble = cls(float(raw["base_score"]), [str(f) for f in raw["features"]],
                       [Tree.from_dict(t) for t in raw["trees"]], raw.get("aggregation", "sum") == "mean")
        for t in ensemble.trees:
            if max(t.feature) >= len(ensemble.features):
                raise ValueError("a tree splits on a feature the ensemble does not list")
        return ensemble

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TreeEnsemble:
        return cls.from_dict(json.loads(text))


class TreeModule(torch.nn.Module):
    """A tree ensemble behind the torch-module interface the scoring paths use: forward(x) → logits.

    Computed in numpy from the design matrix (float32 values compared with float32 thresholds, so a
    row's path is the same at any batch size and dtype); the one parameter only carries a dtype."""

    def __init__(self, ensemble: TreeEnsemble):
        super().__init__()
        self.ensemble = ensemble
        self.dtype_carrier = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        design = x.detach().cpu().numpy().astype(np.float32)
        return torch.as_tensor(self.ensemble.raw_score(design), dtype=self.dtype_carrier.dtype)
