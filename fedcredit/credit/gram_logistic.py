"""A logistic scoring model solved in one shot from a (noisy) Gram matrix S = Z^T Z of the rows.

Z = [1, X, y] in some column order (`GramLayout` says where the constant, the label and each
party's features are). Everything the model needs is in S:

    n = S[1,1],  n1 = (S[1,y] + S[y,y]) / 2   (y² = y: two estimates of the bad count, averaged)
    μ1 = S[y,X] / n1,  μ0 = (S[1,X] − S[y,X]) / n0,  n0 = n − n1
    W = S[X,X] − n1 μ1 μ1^T − n0 μ0 μ0^T,  Σ = W / (n − 2)      (pooled within-class covariance)
    coef = Σ⁻¹ (μ1 − μ0),  intercept = log(n1/n0) − ½ (μ1 + μ0)^T coef

the linear discriminant (LDA) log-odds (Hastie, Tibshirani & Friedman, ESL 2nd ed., §4.3, eq. 4.9),
which is the logistic model's form (§4.4.5). Its direction is also that of least squares of y on
[1, X] (ESL Exercise 4.2) and of PASS-GLM with a degree-2 polynomial approximation of the logistic
log-likelihood (Huggins, Adams & Broderick 2017, "PASS-GLM: polynomial approximate sufficient
statistics for scalable Bayesian GLM inference", NeurIPS): the degree-2 objective is a quadratic in
the coefficients whose maximiser is ∝ (Z^T Z)⁻¹ Z^T y' with y' = 2y − 1. AUC depends only on the
direction; logit scale and intercept come from the LDA formulas.

Robustness to DP noise: S need not be positive definite. Σ is symmetrised, its eigenvalues λ are
floored at 0 and shifted by the ridge: Σ_reg = V (max(λ, 0) + ridge) V^T, then coef = Σ_reg⁻¹ (μ1 − μ0).
`ridge` is in the units of the (standardised) features' variance; `noise_sd` (the largest sd of the
noise on an entry of S, the parties' noise combined: sqrt(Σ sd_p²) on a cross block) adds the expected spectral norm of that
noise on Σ, 2·sqrt(k)·noise_sd / (n − 2) for k features (a Wigner matrix; Bai & Yin 1988), so the
regularisation follows the noise by one public rule. A noisy n is floored at 2 and n1 is clamped to
[1, n − 1] (so both classes have a positive count).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

DEFAULT_RIDGE = 1e-3

__all__ = ["DEFAULT_RIDGE", "GramLayout", "GramLogistic", "assemble_gram"]


@dataclass(frozen=True)
class GramLayout:
    """Where things are in S: the constant's index, the label's index, each party's feature indices."""

    constant: int
    label: int
    parties: Mapping[str, slice]

    def feature_index(self, size: int) -> np.ndarray:
        """All feature indices, parties in their order; ValueError if the layout does not fit `size`."""
        if not self.parties:
            raise ValueError("the layout lists no party")
        index = [np.arange(size)[s] for s in self.parties.values()]
        if any(len(i) == 0 for i in index):
            raise ValueError("a party's feature slice is empty (or outside the matrix)")
        features = np.concatenate(index)
        for name, at in (("constant", self.constant), ("label", self.label)):
            if not 0 <= at < size:
                raise ValueError(f"the {name} index {at} is outside a {size} × {size} matrix")
        used = np.concatenate([features, [self.constant, self.label]])
        if len(np.unique(used)) != len(used):
            raise ValueError("the layout uses an index twice (parties, constant and label must be disjoint)")
        return features


def assemble_gram(own: Mapping[str, np.ndarray], cross: Mapping[tuple[str, str], np.ndarray],
                  label_holder: str) -> tuple[np.ndarray, GramLayout]:
    """The label holder's S and its layout from the released blocks.

    `own`: party → its (noisy) Z_p^T Z_p, the label holder's over [1, X, y] (constant first, label
    last), in the order the parties come (the label holder's block is put first); `cross`: (p, q) →
    the reconstructed Z_p^T Z_q, one per pair, either order. ValueError on a missing or misshapen block."""
    if label_holder not in own:
        raise ValueError(f"no block of the label holder {label_holder!r}")
    names = [label_holder, *(p for p in own if p != label_holder)]
    sizes = {p: np.asarray(own[p]).shape[0] for p in names}
    starts = dict(zip(names, np.cumsum([0] + [sizes[p] for p in names[:-1]])))
    S = np.zeros((sum(sizes.values()),) * 2)
    for p in names:
        block = np.asarray(own[p], dtype=np.float64)
        if block.shape != (sizes[p], sizes[p]):
            raise ValueError(f"the own block of {p!r} is not square: {block.shape}")
        S[starts[p]:starts[p] + sizes[p], starts[p]:starts[p] + sizes[p]] = block
    for i, p in enumerate(names):
        for q in names[i + 1:]:
            block = cross[(p, q)] if (p, q) in cross else (cross[(q, p)].T if (q, p) in cross else None)
            if block is None:
                raise ValueError(f"no cross block for the pair ({p!r}, {q!r})")
            block = np.asarray(block, dtype=np.float64)
            if block.shape != (sizes[p], sizes[q]):
                raise ValueError(f"the cross block ({p!r}, {q!r}) is {block.shape}, expected {(sizes[p], sizes[q])}")
            S[starts[p]:starts[p] + sizes[p], starts[q]:starts[q] + sizes[q]] = block
            S[starts[q]:starts[q] + sizes[q], starts[p]:starts[p] + sizes[p]] = block.T
    k = sizes[label_holder] - 2
    if k < 1:
        raise ValueError("the label holder's block must be [1, X, y] with at least one feature")
    parties = {label_holder: slice(1, k + 1), **{p: slice(int(starts[p]), int(starts[p] + sizes[p]))
                                                  for p in names[1:]}}
    return S, GramLayout(constant=0, label=k + 1, parties=parties)


class GramLogistic:
    """Logistic scoring model from S = Z^T Z (scikit-learn style: fit, then read the fitted attributes).

    Fitted: `intercept_` (float), `coef_` (all features, parties in layout order),
    `coef_by_party` (party → its coefficients), `n_`, `n1_` (the counts used, after clamping)."""

    def __init__(self, ridge: float = DEFAULT_RIDGE) -> None:
        if not (ridge >= 0 and math.isfinite(ridge)):
            raise ValueError(f"ridge must be ≥ 0 (got {ridge})")
        self.ridge = ridge

    def fit(self, S: np.ndarray, layout: GramLayout, *, noise_sd: float = 0.0) -> GramLogistic:
        """Solve from S (d × d, symmetric up to rounding); `noise_sd` as in the module docstring.

        ValueError: S not square, not finite, not symmetric (relative to its scale), or a layout
        that does not fit it."""
        S = np.asarray(S, dtype=np.float64)
        if S.ndim != 2 or S.shape[0] != S.shape[1]:
            raise ValueError(f"S must be a square matrix (got shape {S.shape})")
        if not np.all(np.isfinite(S)):
            raise ValueError("S holds a non-finite value")
        scale = max(float(np.max(np.abs(S))), 1.0)
        if np.max(np.abs(S - S.T)) > 1e-9 * scale:
            raise ValueError("S is not symmetric: assemble every block and its mirror image")
        if not (noise_sd >= 0 and math.isfinite(noise_sd)):
            raise ValueError(f"noise_sd must be ≥ 0 (got {noise_sd})")
        features = layout.feature_index(S.shape[0])
        c, y = layout.constant, layout.label
        n = max(S[c, c], 2.0)
        n1 = float(np.clip((S[c, y] + S[y, y]) / 2, 1.0, n - 1.0))
        n0 = n - n1
        sum_all, sum_bad = S[c, features], S[y, features]
        mu1, mu0 = sum_bad / n1, (sum_all - sum_bad) / n0
        within = S[np.ix_(features, features)] - n1 * np.outer(mu1, mu1) - n0 * np.outer(mu0, mu0)
        cov = (within + within.T) / (2 * (n - 2)) if n > 2 else (within + within.T) / 2
        shift = self.ridge + 2 * math.sqrt(len(features)) * noise_sd / max(n - 2, 1.0)
        eigval, eigvec = np.linalg.eigh(cov)
        floored = np.maximum(eigval, 0.0) + shift
        if shift <= 0:   # no ridge and no noise: only guard against an exactly singular Σ
            floored = np.maximum(floored, 1e-12 * max(float(eigval.max()), 1e-12))
        coef = eigvec @ ((eigvec.T @ (mu1 - mu0)) / floored)
        self.coef_ = coef
        self.intercept_ = float(math.log(n1 / n0) - 0.5 * (mu1 + mu0) @ coef)
        self.n_, self.n1_ = float(n), n1
        self.coef_by_party = {}
        start = 0
        for name, s in layout.parties.items():
            k = len(np.arange(S.shape[0])[s])
            self.coef_by_party[name] = coef[start:start + k].copy()
            start += k
        return self

    def partial_score(self, party: str, x: np.ndarray) -> np.ndarray:
        """A party's partial score x @ coef (rows of its transformed features: n × k), clipped to the
        same row bound as in training (measured better than unclipped: benchmarks/bench_vertical_lr.py)."""
        coef = self._fitted().coef_by_party[party]
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(coef):
            raise ValueError(f"party {party!r} has {len(coef)} features; got rows of shape {x.shape}")
        return x @ coef

    def predict_proba_from_scores(self, partial_scores_sum: np.ndarray) -> np.ndarray:
        """P(bad) = sigmoid(intercept + Σ_party partial score), per row."""
        logit = self._fitted().intercept_ + np.asarray(partial_scores_sum, dtype=np.float64)
        return expit(logit)

    def _fitted(self) -> GramLogistic:
        if not hasattr(self, "coef_"):
            raise ValueError("the model is not fitted: call fit(S, layout) first")
        return self
