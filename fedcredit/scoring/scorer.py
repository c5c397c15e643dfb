"""Rows in, decisions out: validation, the stored transform and model, points, decision, reasons.

`Scorer` is built once per model (the torch module is built once, not per call) and used by both
the batch scorer and the HTTP service, so the two score alike. The probability of default is
exactly `ScoringModel.predict_proba` (the same float32 design matrix and module).

Points (`Scaling`), when asked for: the usual scorecard scaling, score = offset + factor · ln(odds)
with odds = good:bad = (1 − PD) / PD, factor = PDO / ln 2 and offset = base − factor · ln(base odds):
`base` points at odds `odds`:1, and every `pdo` points double the odds (e.g. 600 points at 50:1,
20 points to double the odds; Siddiqi 2006). The decision at a cutoff on PD: "decline" when
PD ≥ cutoff, else "approve".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.errors import InputError
from fedcredit.credit.model import predict_proba
from fedcredit.scoring.attribution import MAX_REASONS, Attribution
from fedcredit.scoring.reasons import ReasonTexts
from fedcredit.scoring.validate import Checked, Validator


@dataclass(frozen=True)
class Scaling:
    """Score points: `base` points at good:bad odds of `odds`:1; `pdo` points double the odds."""

    base: float = 600.0
    odds: float = 50.0
    pdo: float = 20.0

    def __post_init__(self) -> None:
        if not (self.odds > 0 and self.pdo > 0 and math.isfinite(self.base)):
            raise InputError("points scaling needs odds > 0 and pdo > 0 (e.g. 600:50:20)", field="points")

    @classmethod
    def parse(cls, text: str) -> Scaling:
        """"BASE:ODDS:PDO", e.g. "600:50:20"."""
        try:
            base, odds, pdo = (float(v) for v in text.split(":"))
        except ValueError:
            raise InputError(f"{text!r} is not BASE:ODDS:PDO (e.g. 600:50:20: 600 points at odds 50:1, 20 points "
                             "to double the odds)", field="points") from None
        return cls(base, odds, pdo)

    def points(self, pd_: np.ndarray) -> np.ndarray:
        factor = self.pdo / math.log(2)
        offset = self.base - factor * math.log(self.odds)
        p = np.clip(pd_, 1e-15, 1 - 1e-15)
        return offset + factor * np.log((1 - p) / p)

    def to_dict(self) -> dict[str, float]:
        return {"base": self.base, "odds": self.odds, "pdo": self.pdo}


@dataclass(frozen=True)
class ScoreOptions:
    """What to write besides PD: points (a `Scaling`), a decision at `cutoff` (on PD), reason codes."""

    cutoff: float | None = None
    scaling: Scaling | None = None
    reasons: int = MAX_REASONS

    def __post_init__(self) -> None:
        if self.cutoff is not None and not 0 < self.cutoff < 1:
            raise InputError(f"the cutoff is a probability of default strictly between 0 and 1, got {self.cutoff}",
                             field="cutoff")
        if not 0 <= self.reasons <= MAX_REASONS:
            raise InputError(f"reason codes: 0 to {MAX_REASONS}", field="reasons")


@dataclass
class Scored:
    """A scored chunk: the valid rows' results (positions `checked.rows`), the logits, the checks."""

    checked: Checked
    pd: np.ndarray
    logit: np.ndarray
    points: np.ndarray | None
    decision: np.ndarray | None
    reason_codes: np.ndarray     # (n, k) positions in `columns` (-1 = none)
    columns: list[str]           # the columns reason codes name
    texts: ReasonTexts | None = None

    @property
    def reason_texts(self) -> np.ndarray:
        """(n, k) reason texts ("" = none)."""
        texts = self.texts or ReasonTexts(self.columns, scorecard=False)
        return texts.lookup(self.reason_codes)

    @property
    def reasons(self) -> np.ndarray:
        """(n, k) column names ("" = none)."""
        return np.asarray([*self.columns, ""], dtype=object)[self.reason_codes]


class Scorer:
    """One model, ready to score: validation, transform, module, attribution."""

    def __init__(self, model: ScoringModel, options: ScoreOptions = ScoreOptions()):
        self.model, self.options = model, options
        self.validator = Validator(model)
        self.module = model.module()
        self.module.eval()
        self.attribution = Attribution(model, self.module)
        self.texts = ReasonTexts.for_model(model, self.attribution.columns)

    def score(self, frame: pd.DataFrame, *, source: str, decimal: str = ".") -> Scored:
        """Score a chunk of raw rows (as read from a file)."""
        return self._score(self.validator.check(frame, source=source, decimal=decimal))

    def score_records(self, records: Sequence[Mapping[str, Any]]) -> Scored:
        """Score applicants given as JSON objects holding every required column (the service)."""
        checked = self.validator.check_records(records)
        if checked is None:     # a numeric cell written as text: the file rules read it
            required = self.validator.required
            frame = pd.DataFrame.from_records([{c: r[c] for c in required} for r in records], columns=list(required))
            checked = self.validator.check(frame, source="request")
        return self._score(checked)

    def _score(self, checked: Checked) -> Scored:
        x = self.model.transform.transform(checked.features)
        p = predict_proba(self.module, x)
        with np.errstate(divide="ignore"):
            logit = np.log(p) - np.log1p(-p)
        opts = self.options
        points = opts.scaling.points(p) if opts.scaling else None
        decision = (np.where(p >= opts.cutoff, "decline", "approve").astype(object)
                    if opts.cutoff is not None else None)
        codes = (self.attribution.reason_codes(x, opts.reasons) if opts.reasons and len(x)
                 else np.empty((len(x), opts.reasons), dtype=np.int64))
        return Scored(checked, p, logit, points, decision, codes, self.attribution.columns, self.texts)

    def describe(self) -> dict[str, Any]:
        """What a result holds, for `GET /model` and the batch report."""
        o = self.options
        return {"cutoff": o.cutoff, "points": o.scaling.to_dict() if o.scaling else None, "reasons": o.reasons,
                "decision": "decline when PD ≥ cutoff, else approve" if o.cutoff is not None else None}
