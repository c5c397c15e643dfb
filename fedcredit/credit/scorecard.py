"""The scorecard model: logistic regression on WOE-encoded characteristics, turned into points per
bin with PDO scaling (the [scorecard] table).

Scaling (Siddiqi 2006, ch. 6; the formula optbinning's `Scorecard` uses):

    factor = pdo / ln 2,   offset = base_score − factor · ln(base_odds)
    score  = offset + factor · ln(odds),  odds = good:bad = (1 − PD) / PD

`base_score` points at odds `base_odds`:1, and every `pdo` points double the odds. With WOE =
ln(good share / bad share) (`fedcredit.credit.woe`) and the model's logit of P(bad) = α + Σ_j β_j·WOE_j
(β_j < 0 for a characteristic that separates as its WOE says), ln(odds) = −logit, so the score
splits into points per characteristic j and bin i:

    points_ij = round( −(β_j · WOE_ij + α / n) · factor + offset / n )      n characteristics

and the applicant's score is the sum of its points. The scorecard's PD is the score's:
PD = 1 / (1 + exp((score − offset) / factor)) — the scoring artefact is a linear model on the
points (weight −1/factor each, bias offset/factor), so `ScoringModel.predict_proba`, `fedcredit
score` and the service all give exactly the PD of the rounded points.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field
from pydantic.dataclasses import dataclass as schema_dataclass

from fedcredit.credit.atomic import atomic_write_json, atomic_write_text
from fedcredit.credit.binning import fit_binning, labelled_bin_stats
from fedcredit.credit.features import ColumnPlan, FeatureTransform
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.statistics import RangeStats
from fedcredit.credit.validation import STRICT, Number, Text, Whole, rule, validated
from fedcredit.credit.woe import BinnedEncoding, ColumnBins

TRENDS = ("auto", "ascending", "descending")
CSV_NAME, JSON_NAME = "scorecard.csv", "scorecard.json"
TABLE_COLUMNS = ("feature", "bin", "count_share", "bad_rate", "woe", "points")


@schema_dataclass(frozen=True, config=STRICT)
class ScorecardSettings:
    """The [scorecard] table. `monotonic`: per numeric column, the trend of the bad rate as the value
    rises ("auto": whichever of the two gives the larger IV); `min_iv`: characteristics whose IV is
    below it are dropped (and reported); `reasons`: reason texts per column (`fedcredit.scoring.reasons`)."""

    base_score: Number = rule("must be a number of points", 600.0)
    base_odds: Annotated[Number, Field(gt=0)] = rule("must be good:bad odds > 0 (e.g. 50 for 50:1)", 50.0)
    pdo: Annotated[Number, Field(gt=0)] = rule("points to double the odds must be > 0", 20.0)
    max_bins: Annotated[Whole, Field(ge=2, le=20)] = rule("must be a whole number from 2 to 20", 6)
    min_bin_share: Annotated[Number, Field(gt=0, le=0.5)] = rule("must be a share of rows > 0 and ≤ 0.5", 0.05)
    monotonic: dict[str, Literal[TRENDS]] = rule(f"must map columns to one of {list(TRENDS)}", default_factory=dict)
    min_iv: Annotated[Number, Field(ge=0)] = rule("must be an information value ≥ 0", 0.0)
    reasons: dict[str, Text] = rule("must map columns to reason texts", default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str) -> ScorecardSettings:
        return validated(cls, raw, locate=source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def score(self, pd_: np.ndarray) -> np.ndarray:
        """Score of a probability of default (no rounding)."""
        p = np.clip(np.asarray(pd_, dtype=np.float64), 1e-15, 1 - 1e-15)
        return self.offset + self.factor * np.log((1 - p) / p)

    def pd(self, score: np.ndarray) -> np.ndarray:
        """Probability of default of a score."""
        return 1.0 / (1.0 + np.exp((np.asarray(score, dtype=np.float64) - self.offset) / self.factor))


def woe_transform(transform: FeatureTransform, bins: Mapping[str, ColumnBins], min_iv: float
                  ) -> tuple[FeatureTransform, dict[str, float]]:
    """(the training transform: one WOE column per characteristic with IV ≥ `min_iv`, each column's IV).
    Dropped characteristics are listed in `dropped` with their IV; they are no longer required."""
    iv = {c: b.iv for c, b in bins.items()}
    kept = {c: b for c, b in bins.items() if iv[c] >= min_iv}
    dropped = {**transform.dropped, **{c: f"information value {iv[c]:.4f} is below [scorecard] min_iv {min_iv:g}"
                                       for c in bins if c not in kept}}
    if not kept:
        raise ValueError("no characteristic reaches [scorecard] min_iv")
    return replace(transform, numeric={c: r for c, r in transform.numeric.items() if c in kept},
                   categorical={c: v for c, v in transform.categorical.items() if c in kept},
                   dropped=dropped, binned=BinnedEncoding.woe(kept)), iv


@dataclass(frozen=True)
class Scorecard:
    """Points per bin from a trained WOE logistic regression (see the module docstring)."""

    settings: ScorecardSettings
    bins: dict[str, ColumnBins]
    coefficients: dict[str, float]
    intercept: float
    points: dict[str, tuple[int, ...]]
    iv: dict[str, float]                     # every binned characteristic, kept or dropped
    dropped: dict[str, str]

    @classmethod
    def from_model(cls, transform: FeatureTransform, state: Mapping[str, torch.Tensor], settings: ScorecardSettings,
                   iv: Mapping[str, float]) -> Scorecard:
        """From the WOE training transform and the trained LogisticModel's state."""
        binned = transform.binned
        if binned is None or binned.kind != "woe":
            raise ValueError("a scorecard is built from a WOE transform")
        beta = state["linear.weight"].detach().double().numpy().ravel()
        alpha = float(state["linear.bias"].detach().double().numpy().ravel()[0])
        n = len(binned.bins)
        f, off = settings.factor, settings.offset
        points = {c: tuple(int(round(-(beta[j] * w + alpha / n) * f + off / n)) for w in binned.values[c])
                  for j, c in enumerate(binned.bins)}
        return cls(settings, dict(binned.bins), {c: float(beta[j]) for j, c in enumerate(binned.bins)}, alpha,
                   points, dict(iv), {c: w for c, w in transform.dropped.items() if c in iv})

    def scoring_transform(self, transform: FeatureTransform) -> FeatureTransform:
        """The artefact's transform: one column of points per characteristic."""
        return replace(transform, binned=BinnedEncoding(dict(self.bins), {c: tuple(float(p) for p in v)
                                                                         for c, v in self.points.items()}, "points"))

    def scoring_state(self) -> dict[str, torch.Tensor]:
        """LogisticModel state on the points: logit(PD) = (offset − Σ points) / factor."""
        n = len(self.points)
        return {"linear.weight": torch.full((1, n), -1.0 / self.settings.factor, dtype=torch.float32),
                "linear.bias": torch.tensor([self.settings.offset / self.settings.factor], dtype=torch.float32)}

    def table(self) -> list[dict[str, Any]]:
        """Rows of the points table (`TABLE_COLUMNS`), characteristics in model order."""
        rows = []
        for col, b in self.bins.items():
            total = sum(b.good) + sum(b.bad)
            for label, g, bad, w, p in zip(b.labels(), b.good, b.bad, b.woe, self.points[col]):
                rows.append({"feature": col, "bin": label, "count_share": round((g + bad) / total, 6) if total else 0.0,
                             "bad_rate": round(bad / (g + bad), 6) if g + bad > 0 else None,
                             "woe": round(float(w), 6), "points": p})
        return rows

    def to_dict(self) -> dict[str, Any]:
        s = self.settings
        return {"scaling": {"base_score": s.base_score, "base_odds": s.base_odds, "pdo": s.pdo,
                            "factor": s.factor, "offset": s.offset},
                "woe": "ln(good share / bad share)", "intercept": self.intercept,
                "score": "the sum of the applicant's points; PD = 1 / (1 + exp((score − offset) / factor))",
                "features": [{"feature": c, "iv": self.iv[c], "coefficient": self.coefficients[c],
                              "bins": [r for r in self.table() if r["feature"] == c]} for c in self.bins],
                "iv": dict(self.iv), "dropped": dict(self.dropped)}

    def summary(self) -> dict[str, Any]:
        """summary.json's `scorecard`: IV per characteristic, what min_iv dropped, the scaling, files."""
        s = self.settings
        return {"iv": {c: round(v, 6) for c, v in sorted(self.iv.items(), key=lambda kv: -kv[1])},
                "min_iv": s.min_iv, "dropped_low_iv": sorted(self.dropped), "features": list(self.bins),
                "base_score": s.base_score, "base_odds": s.base_odds, "pdo": s.pdo,
                "points_range": [int(sum(min(p) for p in self.points.values())),
                                 int(sum(max(p) for p in self.points.values()))],
                "files": [CSV_NAME, JSON_NAME]}

    def write(self, folder: str | Path) -> tuple[Path, Path]:
        """Write the points table as CSV and JSON (each a temp file, then renamed)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.table())
        folder = Path(folder)
        return atomic_write_text(folder / CSV_NAME, buf.getvalue()), atomic_write_json(folder / JSON_NAME, self.to_dict())


def fit_rows(features: pd.DataFrame, label: np.ndarray, spec: DatasetSpec, settings: ScorecardSettings
             ) -> tuple[FeatureTransform, dict[str, float]]:
    """The same binning on rows held in one place (yardsticks): exact pooled counts → WOE transform, IV."""
    label = np.asarray(label)
    plan = ColumnPlan.fit(RangeStats.from_frame(features, label, spec), spec)
    stats = labelled_bin_stats(plan, features, label)
    transform = FeatureTransform.fit(plan, stats, spec)
    bins = fit_binning(plan, stats, transform, max_bins=settings.max_bins, min_bin_share=settings.min_bin_share,
                       monotonic=settings.monotonic)
    return woe_transform(transform, bins, settings.min_iv)


def settings_from(raw: Mapping[str, Any] | None, *, source: str) -> ScorecardSettings:
    """The [scorecard] table (None: the defaults)."""
    return ScorecardSettings() if raw is None else ScorecardSettings.from_dict(raw, source=source)

