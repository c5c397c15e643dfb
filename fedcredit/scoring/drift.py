"""Population stability of a scored batch against the model's training populations.

PSI = Σ_b (a_b − e_b) · ln(a_b / e_b) over bins b, with e the reference shares and a the batch's
(shares floored at `FLOOR` so an empty bin does not make it infinite). The usual reading: below
0.10 stable, 0.10–0.25 a moderate shift worth watching, above 0.25 a major shift (the rule of thumb
of scorecard monitoring, e.g. Siddiqi, *Credit Risk Scorecards*, Wiley 2006; Yurdakul &
Naranjo 2020, "Statistical properties of the population stability index", J. Risk Model Validation).

The reference is what the artefact holds (`fedcredit.credit.reference`): the final model's score
distribution on the partners' held-out rows (half-logit bins), each numeric column's histogram on
the training rows merged into ≤ 10 bins of about equal mass plus a missing bin, each categorical
column's level counts — counts the run had already released (noised under DP; a noised reference
makes small PSIs noisy too: the JSON says `noised`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fedcredit.credit.features import MISSING, OTHER, FeatureTransform, level_codes

FLOOR = 1e-4
STABLE, SHIFT = 0.10, 0.25


def psi(expected: np.ndarray, actual: np.ndarray) -> float | None:
    """PSI of two count vectors on the same bins (None if either holds nothing)."""
    e, a = np.clip(np.asarray(expected, float), 0, None), np.clip(np.asarray(actual, float), 0, None)
    if e.sum() <= 0 or a.sum() <= 0:
        return None
    e, a = np.maximum(e / e.sum(), FLOOR), np.maximum(a / a.sum(), FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def reading(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "stable" if value < STABLE else "moderate shift" if value < SHIFT else "major shift"


class DriftCounter:
    """Counts a batch on the reference bins, chunk by chunk; `report()` gives the PSIs."""

    def __init__(self, ref: Mapping[str, Any] | None, transform: FeatureTransform):
        self.ref = ref or {}
        self.score_ref = self.ref.get("score")
        self.features = dict(self.ref.get("features", {}))
        self.score_counts = np.zeros(len(self.score_ref["counts"])) if self.score_ref else None
        self.counts: dict[str, np.ndarray] = {}
        self.levels: dict[str, tuple[str, ...]] = {}
        for col, item in self.features.items():
            if "levels" in item:
                self.levels[col] = tuple(item["levels"])
                self.counts[col] = np.zeros(len(self.levels[col]))
            else:
                self.counts[col] = np.zeros(len(item["counts"]) + 1)   # + the missing bin
        self.rows = 0

    @property
    def available(self) -> bool:
        return bool(self.score_ref or self.features)

    def add(self, features: Mapping[str, Any], logits: np.ndarray) -> None:
        """Count one scored chunk: its typed columns (`Checked.features`) and its logits."""
        self.rows += len(logits)
        if self.score_ref is not None and len(logits):
            edges = np.asarray(self.score_ref["edges"])
            idx = np.clip(np.searchsorted(edges, np.clip(logits, edges[0], edges[-1]), side="right") - 1,
                          0, len(edges) - 2)
            self.score_counts += np.bincount(idx, minlength=len(edges) - 1)
        for col, counts in self.counts.items():
            if col not in features:
                continue
            if col in self.levels:
                levels = self.levels[col]
                other = levels.index(OTHER) if OTHER in levels else len(levels) - 1
                codes = level_codes(features[col], levels, other,
                                    levels.index(MISSING) if MISSING in levels else other)
                counts += np.bincount(codes, minlength=len(levels))
            else:
                x = np.asarray(features[col], dtype=np.float64)
                inner = np.asarray(self.features[col]["edges"])[1:-1]
                present = ~np.isnan(x)
                idx = np.searchsorted(inner, x[present], side="right")
                counts[:-1] += np.bincount(idx, minlength=len(counts) - 1)
                counts[-1] += np.count_nonzero(~present)

    def report(self) -> dict[str, Any]:
        """{"score": {...}, "features": {col: {"psi", "reading"}}, "rows", "noised", "source"} (JSON-able)."""
        out: dict[str, Any] = {"rows": self.rows, "noised": bool(self.ref.get("noised", False)),
                               "thresholds": {"stable_below": STABLE, "major_above": SHIFT}}
        if self.score_ref is not None:
            value = psi(np.asarray(self.score_ref["counts"]), self.score_counts)
            out["score"] = {"psi": value, "reading": reading(value), "reference": self.score_ref.get("rows", "")}
        else:
            out["score"] = {"psi": None, "reading": "n/a",
                            "why": self.ref.get("withheld") or
                            "the model holds no released score distribution (no final evaluation)"}
        feats: dict[str, Any] = {}
        for col, counts in self.counts.items():
            item = self.features[col]
            expected = (np.asarray([item["levels"][lvl] for lvl in self.levels[col]]) if col in self.levels
                        else np.append(np.asarray(item["counts"]), item["missing"]))
            value = psi(expected, counts)
            feats[col] = {"psi": value, "reading": reading(value)}
        out["features"] = feats
        if not self.available:
            out["why"] = (f"this model's reference distributions were {self.ref['withheld']}" if self.ref.get("withheld")
                          else "this model artefact holds no reference distributions (saved before they were kept): "
                               "no PSI can be computed")
        return out
