"""Reason texts: what an adverse-action notice says for each reason code (a column name).

The run's scenario may give its own text per column (`[scorecard] reasons = {col = "text"}`, kept in
the artefact's metadata as `reason_texts`); any other column gets a default that says what the method
measured (Regulation B, 12 CFR 1002.9(b)(2), comment 9(b)(2)-4: reasons relate to factors actually
scored):

- a scorecard: the points lost against the best attainable points of the characteristic
  (points-below-max; `fedcredit.scoring.attribution`);
- logistic regression and the MLP: the column's contribution to the risk against the average
  applicant (`fedcredit.scoring.attribution`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedcredit.credit.artefact import ScoringModel

SCORECARD_TEXT = "{col}: the applicant's value earns fewer points than the best attainable for {col}"
MODEL_TEXT = "{col}: the applicant's value raises the estimated risk above that of the average applicant"


class ReasonTexts:
    """Column → reason text for one model: the scenario's overrides, else the method's default."""

    def __init__(self, columns: list[str], *, scorecard: bool, overrides: Mapping[str, str] | None = None):
        template = SCORECARD_TEXT if scorecard else MODEL_TEXT
        given = dict(overrides or {})
        self.columns = list(columns)
        self.texts = [given.get(c) or template.format(col=c) for c in self.columns]

    @classmethod
    def for_model(cls, model: ScoringModel, columns: list[str]) -> ReasonTexts:
        return cls(columns, scorecard=model.transform.binned is not None,
                   overrides=model.metadata.get("reason_texts") or {})

    def lookup(self, codes: np.ndarray) -> np.ndarray:
        """(n, k) texts of reason codes (positions in `columns`; -1 → "")."""
        return np.asarray([*self.texts, ""], dtype=object)[codes]
