"""Fair-lending measures by protected group, from the partners' released score histograms (never rows).

The partners' fairness releases (`fedcredit.credit.fairness.GroupScores`: per protected column and
group, held-out rows by label on a logit grid whose edge is the cutoff; without DP also the exact sums
of logits, squared logits and PDs) are summed, and for each group g of a column, against the column's
reference group r:

- approval rate: approved rows / rows, approved meaning score ≥ `cutoff_score` (fairlearn's
  `selection_rate`, on the counts as weighted rows);
- adverse impact ratio AIR = approval rate of g / approval rate of r (fairlearn's `MetricFrame.ratio`
  is the smallest over the largest group, so the ratio to the reference is taken here); below 0.80 the
  four-fifths rule of 29 CFR 1607.4(D) (employment; no lending regulator codifies it) flags it;
- standardised mean difference of the score (points on the `[scorecard]` scale): SMD = (mean score of
  g − mean score of r) / SD of the score over every held-out row of the column (all its groups), so a
  negative SMD is a group scored lower; at or below −0.30 it is flagged (a common practical-significance
  threshold);
- equal opportunity: the true-positive rate, approved good (non-defaulting) rows / good rows (fairlearn's
  `true_positive_rate` with "positive" = good and approved), and its gap TPR g − TPR r;
- calibration by group: predicted bad rate (mean PD) against observed bad rate (bads / rows), and the gap.

Without DP every number is exactly what the pooled held-out rows give (approvals are counted at the
cutoff edge itself; means and SDs come from the exact sums). Under DP the counts carry Gaussian noise
of a known SD per count: rates use the noised counts as released (the noise averages out of the sums),
means use each bin's centre, and each AIR, SMD and TPR gap carries its first-order noise SD
(`*_noise_sd`); the SMD and the predicted bad rate also carry the binning of scores into half-logit
bins. A group whose noised row count is below `MIN_SD` noise SDs has no measures (`undefined` says why).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fedcredit.credit.fairness import (
    MISSING_GROUP,
    OTHER_GROUP,
    ColumnGroups,
    FairnessSettings,
    GroupCells,
    GroupScores,
)
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.scorecard import ScorecardSettings
from fedcredit.reports.measures import bin_centres

AIR_THRESHOLD = 0.8      # the four-fifths rule (29 CFR 1607.4(D))
SMD_THRESHOLD = -0.3     # a group scored this many SDs below the reference
MIN_SD = 3.0             # under DP: a group needs this many noise SDs of rows (good rows for its TPR)

METHOD = ("approved: score >= cutoff_score (points on the [scorecard] scale); approval rate and true-positive rate "
          "(approved good rows / good rows) by fairlearn's selection_rate and true_positive_rate on the released "
          "counts; AIR = approval rate / the reference group's (flagged below 0.80, the four-fifths rule of 29 CFR "
          "1607.4(D), from employment: no lending regulator codifies it); SMD = (mean score - the reference's mean "
          "score) / SD of the score over all the column's held-out rows (flagged at or below -0.30); TPR gap = TPR - "
          "the reference's TPR; calibration: predicted (mean PD) and observed (bads / rows) bad rate. Without DP "
          "exact (the pooled held-out rows); under DP from noised counts, with each measure's first-order noise SD, "
          "and means from the centres of half-logit score bins")


def cutoff_logit(cutoff_score: float, scale: ScorecardSettings) -> float:
    """The logit of P(bad) at a score: score = offset − factor · logit (`fedcredit.credit.scorecard`)."""
    return (scale.offset - cutoff_score) / scale.factor


def _points(logit: float | None, scale: ScorecardSettings) -> float | None:
    return None if logit is None else scale.offset - scale.factor * logit


def _pd(logit: np.ndarray | float) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(logit, dtype=np.float64)))


def _rate_sd(approved: float, declined: float, k_approved: int, k_declined: int, sd: float) -> float:
    """SD of A / (A + D) when A and D are sums of k_A and k_D counts each carrying noise `sd` (first order)."""
    n = approved + declined
    return float(sd * math.sqrt(k_approved * declined ** 2 + k_declined * approved ** 2) / n ** 2) if n else math.inf


def _fairlearn_rates(cells: Mapping[str, GroupCells], approved_bins: int, metric: str) -> dict[str, float]:
    """fairlearn's selection rate ("approval_rate") or true-positive rate ("tpr", positive = good and approved)
    per group, with each released count as the weight of one (label, approved) row."""
    from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate

    if not cells:
        return {}
    k = len(next(iter(cells.values())).bad)
    approved = (np.arange(k) < approved_bins).astype(np.int64)
    y_true, y_pred, group, weight = [], [], [], []
    for name, c in cells.items():
        for good, counts in ((0, c.bad), (1, c.good)):
            y_true.append(np.full(k, good))
            y_pred.append(approved)
            group.append(np.full(k, name, dtype=object))
            weight.append(np.asarray(counts, dtype=np.float64))
    w = np.concatenate(weight)
    fn = selection_rate if metric == "approval_rate" else functools.partial(true_positive_rate, pos_label=1)
    frame = MetricFrame(metrics={metric: fn}, y_true=np.concatenate(y_true), y_pred=np.concatenate(y_pred),
                        sensitive_features=np.concatenate(group), sample_params={metric: {"sample_weight": w}})
    return {str(g): float(v) for g, v in frame.by_group[metric].items()}


class _Column:
    """One protected column's summed cells and the statistics every group's row needs."""

    def __init__(self, cells: Mapping[str, GroupCells], scores: GroupScores):
        self.cells, self.scores = dict(cells), scores
        self.sd = scores.noise_sd
        self.private = scores.private or self.sd > 0
        self.k = len(scores.edges) - 1
        self.a = scores.approved_bins
        self.x = bin_centres(scores.edges)
        total = GroupCells(np.zeros(self.k), np.zeros(self.k), {"score": 0.0, "score_sq": 0.0, "pd": 0.0})
        for c in self.cells.values():
            total = total + c
        # the column's SD from every group's counts as released (noised sums are unbiased); should the noise
        # of near-empty bins drive it to nothing, from the counts with negative bins taken as 0
        self.mean_all, self.var_all = self.moments(total)
        if self.private and not self.var_all:
            self.mean_all, self.var_all = self.moments(GroupCells(np.clip(total.bad, 0, None),
                                                                  np.clip(total.good, 0, None)))

    def rows(self, c: GroupCells) -> float:
        return float(c.bad.sum() + c.good.sum())

    def moments(self, c: GroupCells) -> tuple[float | None, float | None]:
        """(mean, variance) of the logit over a group's rows (exact sums, else the bins' centres)."""
        n = self.rows(c)
        if n <= 0:
            return None, None
        if c.sums is not None and not self.private:
            mean = c.sums["score"] / n
            return mean, max(c.sums["score_sq"] / n - mean * mean, 0.0)
        counts = c.bad + c.good
        mean = float(counts @ self.x / n)
        return mean, max(float(counts @ (self.x - mean) ** 2 / n), 0.0)

    def mean_sd(self, c: GroupCells, mean: float) -> float:
        """The noise SD of a group's mean logit (first order; 0 without noise)."""
        if not self.sd:
            return 0.0
        return float(self.sd * math.sqrt(2 * float(((self.x - mean) ** 2).sum())) / self.rows(c))

    def predicted(self, c: GroupCells) -> float:
        n = self.rows(c)
        if c.sums is not None and not self.private:
            return c.sums["pd"] / n
        return float((c.bad + c.good) @ _pd(self.x) / n)

    def defined(self, c: GroupCells) -> str | None:
        """Why a group has no measures (None: it has)."""
        n = self.rows(c)
        if not self.private or n <= 0:
            return None if n > 0 else "no held-out rows"
        need = MIN_SD * self.sd * math.sqrt(2 * self.k)
        return None if n >= need else (f"{n:.1f} noised held-out rows, fewer than {MIN_SD:g} noise SDs of a group's "
                                       f"row count ({need:.1f}): too few to stand above the noise")

    def goods_defined(self, c: GroupCells) -> bool:
        goods = float(c.good.sum())
        return goods > 0 and (not self.private or goods >= MIN_SD * self.sd * math.sqrt(self.k))


def _order(groups: ColumnGroups, cells: Mapping[str, GroupCells]) -> list[str]:
    listed = list(groups.names or ())
    return listed + sorted(n for n in cells if n not in listed)


def fairness_table(scores: GroupScores, spec: DatasetSpec, settings: FairnessSettings, scale: ScorecardSettings
                   ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """(the rows of `summary.json`'s `fairness`, one per protected column and group; each column's reference
    group). `scores`: the partners' releases summed. Exact releases leave out groups without rows."""
    rows: list[dict[str, Any]] = []
    references: dict[str, str] = {}
    for groups in settings.column_groups(spec):
        cells = scores.columns.get(groups.column)
        if not cells:
            continue
        col = _Column(cells, scores)
        names = [n for n in _order(groups, cells) if n in cells and (col.private or col.rows(cells[n]) > 0)]
        undefined = {n: col.defined(cells[n]) for n in names}
        usable = [n for n in names if undefined[n] is None]
        approval = _fairlearn_rates({n: cells[n] for n in usable}, col.a, "approval_rate")
        tpr = _fairlearn_rates({n: cells[n] for n in usable if col.goods_defined(cells[n])}, col.a, "tpr")
        declared = settings.reference.get(groups.column)
        if declared is not None:
            ref = groups.reference_group(declared) or str(declared)
        else:
            candidates = [n for n in usable if n not in (OTHER_GROUP, MISSING_GROUP)] or usable
            ref = max(candidates, key=lambda n: col.rows(cells[n])) if candidates else ""
        references[groups.column] = ref
        stats = {n: _group_stats(col, cells[n], approval.get(n), tpr.get(n)) for n in usable}
        base = stats.get(ref)
        for name in names:
            rows.append(_row(groups.column, name, ref, cells[name], col, stats.get(name), base, undefined[name],
                             declared is not None, scale))
    return rows, references


def _group_stats(col: _Column, c: GroupCells, approval: float | None, tpr: float | None) -> dict[str, Any]:
    a = col.a
    approved = float(c.bad[:a].sum() + c.good[:a].sum())
    declined = col.rows(c) - approved
    mean, _ = col.moments(c)
    good_approved, good_declined = float(c.good[:a].sum()), float(c.good[a:].sum())
    return {"approved": approved, "approval_rate": None if approval is None else float(np.clip(approval, 0, 1)),
            "approval_sd": _rate_sd(approved, declined, 2 * a, 2 * (col.k - a), col.sd) if col.sd else 0.0,
            "tpr": None if tpr is None else float(np.clip(tpr, 0, 1)),
            "tpr_sd": _rate_sd(good_approved, good_declined, a, col.k - a, col.sd) if col.sd else 0.0,
            "mean": mean, "mean_sd": col.mean_sd(c, mean) if mean is not None else None}


def _row(column: str, name: str, ref: str, c: GroupCells, col: _Column, mine: dict[str, Any] | None,
         base: dict[str, Any] | None, undefined: str | None, declared: bool, scale: ScorecardSettings
         ) -> dict[str, Any]:
    n, bads = col.rows(c), float(c.bad.sum())
    row: dict[str, Any] = {
        "column": column, "group": name, "reference_group": ref, "is_reference": name == ref,
        "reference_from": "[fairness] reference" if declared else "the group with the most held-out rows",
        "rows": n, "bads": bads, "goods": float(c.good.sum()), "approved": None, "approval_rate": None,
        "air": None, "air_noise_sd": None, "mean_score": None, "smd": None, "smd_noise_sd": None, "tpr": None,
        "tpr_gap": None, "tpr_gap_noise_sd": None, "predicted_bad_rate": None, "observed_bad_rate": None,
        "calibration_gap": None, "flags": [], "noised": col.private}
    if mine is None:
        row["undefined"] = undefined or "no measures for this group"
        return row
    predicted = col.predicted(c)
    row.update(approved=mine["approved"], approval_rate=mine["approval_rate"], tpr=mine["tpr"],
               mean_score=_points(mine["mean"], scale), predicted_bad_rate=predicted, observed_bad_rate=bads / n,
               calibration_gap=bads / n - predicted)
    why = []
    if base is None:
        why.append(f"the reference group '{ref}' of '{column}' has no measures (absent, or too few rows)")
    else:
        r_g, r_r = mine["approval_rate"], base["approval_rate"]
        if r_g is not None and r_r:
            row["air"] = 1.0 if name == ref else r_g / r_r
            row["air_noise_sd"] = 0.0 if name == ref else math.hypot(mine["approval_sd"] / r_r,
                                                                     r_g * base["approval_sd"] / r_r ** 2)
        elif r_r == 0:
            why.append(f"the reference group '{ref}' has no approved row at this cutoff: no AIR")
        if col.var_all and mine["mean"] is not None and base["mean"] is not None:
            s = math.sqrt(col.var_all)
            row["smd"] = 0.0 if name == ref else (base["mean"] - mine["mean"]) / s   # points: higher is better
            row["smd_noise_sd"] = 0.0 if name == ref else math.hypot(mine["mean_sd"], base["mean_sd"]) / s
        if mine["tpr"] is not None and base["tpr"] is not None:
            row["tpr_gap"] = 0.0 if name == ref else mine["tpr"] - base["tpr"]
            row["tpr_gap_noise_sd"] = 0.0 if name == ref else math.hypot(mine["tpr_sd"], base["tpr_sd"])
        elif mine["tpr"] is None:
            why.append("too few good rows for a true-positive rate")
        else:
            why.append(f"the reference group '{ref}' has too few good rows for a true-positive rate")
    if row["air"] is not None and row["air"] < AIR_THRESHOLD:
        row["flags"].append(f"AIR below {AIR_THRESHOLD:.2f} (four-fifths rule)")
    if row["smd"] is not None and row["smd"] <= SMD_THRESHOLD:
        row["flags"].append(f"SMD at or below {SMD_THRESHOLD:.2f}")
    if why:
        row["undefined"] = "; ".join(why)
    return row


def fairness_summary(scores: GroupScores | None, spec: DatasetSpec, settings: FairnessSettings,
                     scale: ScorecardSettings, *, partners: Sequence[str], round: int, note: str | None = None
                     ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(`summary.json`'s `fairness` rows, its `fairness_settings`: the cutoff, the score scale, each column's
    reference group and groups, whether the counts were noised and by how much, the method)."""
    rows, references = fairness_table(scores, spec, settings, scale) if scores is not None else ([], {})
    logit = cutoff_logit(float(settings.cutoff_score), scale)
    out = {"cutoff_score": settings.cutoff_score, "cutoff_pd": float(_pd(logit)), "cutoff_logit": logit,
           "approved": "score >= cutoff_score", "scale": {"base_score": scale.base_score, "base_odds": scale.base_odds,
                                                           "pdo": scale.pdo},
           "columns": list(spec.protected), "reference": references,
           "groups": {g.column: list(g.names) if g.names is not None else None for g in settings.column_groups(spec)},
           "noised": bool(scores is not None and (scores.private or scores.noise_sd > 0)),
           "count_noise_sd": scores.noise_sd if scores is not None else None,
           "air_threshold": AIR_THRESHOLD, "smd_threshold": SMD_THRESHOLD, "partners": list(partners),
           "round": round, "method": METHOD, "note": note}
    return rows, out
