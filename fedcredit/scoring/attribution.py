"""Reason codes: which of an applicant's columns push its score towards default, and how much.

Each column's contribution to the applicant's logit (log-odds of default), relative to a reference
applicant `b` (the training population's mean design row, `fedcredit.credit.reference.design_means`:
0 for every standardised numeric column, the released share of each level and of missing values):

- logistic regression: exactly w_j · (x_j − b_j) — the logit is linear, so the contributions sum to
  logit(x) − logit(b). This is the method Regulation B's official interpretation names for adverse-
  action reasons: the factors for which the applicant fell furthest below the average achieved by
  all applicants (12 CFR 1002.9(b)(2), comment 9(b)(2)-5);
- MLP: gradient × (input − reference), ∂logit/∂x_j(x) · (x_j − b_j) — the first-order Taylor
  attribution of Shrikumar et al. (2016, "Not just a black box", arXiv:1605.01713) with a reference
  point, as compared in Ancona et al. (2018, "Towards better understanding of gradient-based
  attribution methods", ICLR). It is exact for a linear model and an approximation otherwise.

Boosted trees (`[federation] model = "gbdt"`): Saabas's path attributions (`fedcredit.credit.trees`):
along the row's path in every tree, each split credits the change of the node value to its feature,
so the contributions sum exactly to logit(x) minus the ensemble's expected logit (the training
population's, from the root values) — the tree analogue of "relative to the average applicant".

A scorecard (`[federation] model = "scorecard"`): its design matrix holds each characteristic's points
and its logit is (offset − Σ points) / factor, so with the reference b_j = the characteristic's best
attainable points the contribution is exactly (max_j − points_j) / factor: the points below max
(Siddiqi 2006, ch. 6; the "max" reference of scorecard reason codes), in logit units. Multiply by
factor = PDO / ln 2 for points (`points_below_max`). A characteristic at its best bin is never a reason.

Design columns are summed back to the applicant's columns (a one-hot block and a missing indicator
belong to their column; for the logistic model the sums Σ w_j·x_j are one float32 matrix product, like
the design matrix: about 1e-6 of a logit). The reason codes are the (at most) four columns with the
largest positive contribution, largest first (comment 9(b)(2)-1: more than four is not likely to be helpful; FCRA
§ 615(a) asks for up to four key factors); a column whose contribution is ≤ 0 is never a reason.
"""

from __future__ import annotations

import numpy as np
import torch

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.reference import design_means

MAX_REASONS = 4


class Attribution:
    """Per-column contributions to the logit and reason codes for one model (built once)."""

    def __init__(self, model: ScoringModel, module: torch.nn.Module):
        self.module = module
        binned = model.transform.binned
        self.linear = model.model_name in ("logistic", "scorecard")
        self.trees = model.trees
        self.columns: list[str] = []
        owner: list[int] = []
        if binned is not None:     # one design column per characteristic; the reference is its best value
            self.columns = binned.columns
            owner = list(range(len(self.columns)))
            self.baseline = binned.best()
        else:
            self.baseline = design_means(model.metadata.get("reference"), model.transform)
        for col, rule in (model.transform.numeric.items() if binned is None else ()):
            self.columns.append(col)
            owner += [len(self.columns) - 1] * (2 if rule.indicator else 1)
        for col, levels in (model.transform.categorical.items() if binned is None else ()):
            self.columns.append(col)
            owner += [len(self.columns) - 1] * len(levels)
        self.groups = np.zeros((len(owner), len(self.columns)))
        self.groups[np.arange(len(owner)), owner] = 1.0
        if self.linear:
            self.weights = module.linear.weight.detach().double().numpy().ravel()
            self.weighted_groups = (self.weights[:, None] * self.groups).astype(np.float32)
            self.offset = (self.weights * self.baseline) @ self.groups

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(n, columns) contributions to the logit, in `self.columns` order."""
        if self.trees is not None:
            return self.trees.contributions(x) @ self.groups
        if self.linear:   # Σ_d w_d·x_d per column as one float32 product, minus Σ_d w_d·b_d (float64)
            return (x @ self.weighted_groups).astype(np.float64) - self.offset
        delta = x.astype(np.float64) - self.baseline
        xt = torch.as_tensor(x, dtype=torch.float64).requires_grad_(True)
        self.module.eval()
        with torch.enable_grad():
            self.module(xt).sum().backward()    # rows are independent: row i's gradient is its own
        return (xt.grad.double().numpy() * delta) @ self.groups

    def points_below_max(self, x: np.ndarray) -> np.ndarray:
        """(n, characteristics) points each applicant is below the best attainable (a scorecard's design
        matrix holds the points: exact, no rounding)."""
        return np.asarray(self.baseline, dtype=np.float64) - x.astype(np.float64)

    def reasons(self, x: np.ndarray, k: int = MAX_REASONS) -> np.ndarray:
        """(n, k) column names, the largest positive contribution first; "" where fewer apply."""
        codes = self.reason_codes(x, k)
        names = np.asarray([*self.columns, ""], dtype=object)
        return names[codes]                      # code -1: the last entry, ""

    def reason_codes(self, x: np.ndarray, k: int = MAX_REASONS) -> np.ndarray:
        """(n, k) positions in `self.columns`, the largest positive contribution first; -1 where fewer apply."""
        contrib = self.contributions(x)
        k = min(k, contrib.shape[1])
        rows = np.arange(len(contrib))
        order = np.empty((len(contrib), k), dtype=np.int64)
        top = np.empty((len(contrib), k))
        for i in range(k):           # k ≤ 4 passes of argmax: the largest first, ties to the first column
            order[:, i] = np.argmax(contrib, axis=1)
            top[:, i] = contrib[rows, order[:, i]]
            contrib[rows, order[:, i]] = -np.inf
        order[top <= 0] = -1
        return order
