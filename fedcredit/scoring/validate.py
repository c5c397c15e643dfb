"""Applicant rows checked against the model's own schema, by the rules training reads data with.

The same reading rules as `fedcredit.credit.loading` (declared types only, declared missing codes
masked before numbers are parsed, exact categorical text, respelled declared codes refused), but
applied cell by cell: a bad cell rejects its row (with the field and the reason) instead of the
file. Whole-file problems stay errors: a column the model uses is missing, a numeric column holds
dates. Columns the model does not use (the label, `drop` columns, features the training run dropped,
anything else) are ignored and named once. A categorical level the model does not know is scored
as the model's OTHER level and counted.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.columns import (
    DERIVE_DATE,
    ColumnProblem,
    categorical_column,
    code_numbers,
    is_date,
    numeric_cells,
    respellings,
)
from fedcredit.credit.errors import InputError
from fedcredit.credit.features import MISSING, OTHER, level_codes
from fedcredit.credit.reading import NA_MARKERS, check_headers
from fedcredit.credit.schema import category_text


@dataclass
class Checked:
    """One chunk after the checks: the valid rows' typed features (positions `rows` of the chunk),
    each rejected row's (position, field, reason), and per row the columns scored as OTHER."""

    features: dict[str, np.ndarray]         # column → values (numeric float64, categorical text / NaN)
    rows: np.ndarray
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    unseen: np.ndarray | None = None          # (len(rows),) text: ";"-joined columns scored as OTHER
    other: Counter = field(default_factory=Counter)   # column → rows scored as OTHER


class Validator:
    """The model's input contract: which columns it needs and how each is read."""

    def __init__(self, model: ScoringModel):
        self.model = model
        self.spec = model.spec
        self.numeric = tuple(model.transform.numeric)
        self.categorical = tuple(model.transform.categorical)
        self.required = self.numeric + self.categorical
        self._codes = {c: code_numbers(self.spec.missing.get(c, ())) for c in self.numeric}
        self._missing_text = {c: {category_text(v) for v in self.spec.missing.get(c, ())} for c in self.categorical}
        self._known = {c: tuple(lvl for lvl in levels if lvl not in (OTHER, MISSING))
                       for c, levels in model.transform.categorical.items()}

    def columns(self, names: Sequence[str], *, source: str, key: str | None = None) -> list[str]:
        """Check a table's header; returns notices (ignored columns). A missing column is an error."""
        names = check_headers(list(names), source=source)
        missing = [c for c in self.required if c not in names]
        if missing:
            raise InputError(f"missing column(s) {missing} that the model uses: add them (an unknown value may be "
                             "left empty)", source=source, field=missing[0])
        if key is not None and key not in names:
            raise InputError(f"the key column {key!r} is not in the file (its columns: {list(names)[:12]})",
                             source=source, field=key)
        ignored = [c for c in names if c not in self.required and c != key]
        notices = []
        if ignored:
            notices.append(f"ignored column(s) the model does not use: {ignored}")
        return notices

    def check(self, frame: pd.DataFrame, *, source: str, decimal: str = ".") -> Checked:
        """Check one chunk (columns already checked with `columns`)."""
        n = len(frame)
        bad = np.zeros(n, dtype=bool)
        rejects: list[tuple[int, str, str]] = []
        typed: dict[str, Any] = {}
        for col in self.numeric:
            raw = frame[col]
            if ptypes.is_datetime64_any_dtype(raw):
                raise InputError(f"holds dates, not numbers: {ColumnProblem(col, n, '', True).describe(decimal)}",
                                 source=source, field=col)
            values, unparsed = numeric_cells(raw, self.spec.missing.get(col, ()), decimal=decimal)
            arr = values.to_numpy(dtype=np.float64)
            wrong = unparsed.notna().to_numpy()
            infinite = np.isinf(arr)
            for i in np.flatnonzero(wrong | infinite):
                if wrong[i]:
                    text = str(unparsed.iloc[i])
                    reason = (f"holds a date ({text!r}), not a number: {DERIVE_DATE}" if is_date(text)
                              else ColumnProblem(col, 1, text, False).describe(decimal))
                else:
                    reason = f"{arr[i]} is not a finite number"
                rejects.append((int(i), col, reason))
            bad |= wrong | infinite
            typed[col] = arr
        texts = {col: self._categorical(frame[col], col) for col in self.categorical}
        return self._finish(typed, texts, bad, rejects)

    def _categorical(self, raw: pd.Series, col: str) -> pd.Categorical:
        """`categorical_column` (the reading rule), applied once per distinct cell, as a Categorical
        of the resulting texts (a chunk of a credit file repeats few codes)."""
        codes = self.spec.missing.get(col, ())
        if not (ptypes.is_string_dtype(raw) or (ptypes.is_numeric_dtype(raw) and not ptypes.is_bool_dtype(raw))):
            return pd.Categorical(categorical_column(raw, codes).to_numpy(dtype=object))
        cells, uniques = pd.factorize(raw, use_na_sentinel=False)
        texts = categorical_column(pd.Series(uniques), codes).to_numpy(dtype=object)
        tcodes, categories = pd.factorize(texts, use_na_sentinel=True)
        return pd.Categorical.from_codes(tcodes[cells] if len(tcodes) else cells,
                                         categories=pd.Index(categories, dtype=object))

    def check_records(self, records: Sequence[Mapping[str, Any]]) -> Checked | None:
        """The same checks for applicants given as JSON values, without pandas (a request of a few
        applicants is scored in well under a millisecond). Numeric cells must be JSON numbers or
        null here; if any is text or a boolean this returns None and the caller uses `check`, so text
        cells are always read by the file rules."""
        n = len(records)
        typed: dict[str, Any] = {}
        for col in self.numeric:
            codes = self._codes[col]
            arr = np.empty(n)
            for i, r in enumerate(records):
                v = r[col]
                if v is None:
                    arr[i] = np.nan
                elif type(v) in (int, float) and math.isfinite(v):
                    arr[i] = np.nan if float(v) in codes else v
                else:
                    return None
            typed[col] = arr
        texts: dict[str, np.ndarray] = {}
        for col in self.categorical:
            masked = self._missing_text[col]
            out = np.empty(n, dtype=object)
            for i, r in enumerate(records):
                v = r[col]
                if isinstance(v, str):
                    t = v.strip()
                elif type(v) in (int, float) and math.isfinite(v):
                    t = category_text(v)
                elif v is None:
                    out[i] = np.nan
                    continue
                else:
                    return None
                out[i] = np.nan if t in NA_MARKERS or t in masked else t
            texts[col] = out
        return self._finish(typed, texts, np.zeros(n, dtype=bool), [])

    def _finish(self, typed: dict[str, Any], texts: dict[str, np.ndarray], bad: np.ndarray,
                rejects: list[tuple[int, str, str]]) -> Checked:
        """Categorical checks (respelled declared codes reject the row; unknown levels are OTHER)."""
        n = len(bad)
        other: Counter = Counter()
        masks: dict[str, np.ndarray] = {}
        unseen = np.full(n, "", dtype=object)
        for col, text in texts.items():
            if isinstance(text, pd.Categorical):     # a file's chunk: the distinct texts and a code per row
                distinct = np.asarray(text.categories, dtype=object)
                row_codes = np.asarray(text.codes)
            else:                                    # a request's few applicants
                present = pd.notna(text)
                distinct = np.asarray(sorted(set(text[present])), dtype=object)
                where = {v: i for i, v in enumerate(distinct)}
                row_codes = np.array([where[v] if ok else -1 for v, ok in zip(text, present)], dtype=np.int64)
            declared = self.spec.levels.get(col)
            if declared:
                respelled = respellings(distinct, declared)
                if respelled:
                    hit = np.isin(row_codes, [i for i, v in enumerate(distinct) if v in respelled])
                    for i in np.flatnonzero(hit):
                        v = distinct[row_codes[i]]
                        rejects.append((int(i), col, f"{v!r} respells the declared code {respelled[v]!r}: write "
                                        "it exactly as declared"))
                    bad = bad | hit
            mapped = level_codes(text, self._known[col], -1, 0) < 0      # present, and not a level the model knows
            if mapped.any():
                unseen[mapped] = np.where(unseen[mapped] == "", col, unseen[mapped] + ";" + col)
                masks[col] = mapped
            typed[col] = text
        keep = np.flatnonzero(~bad)
        if bad.any():
            typed = {c: v[keep] for c, v in typed.items()}
        for col, mapped in masks.items():
            if mapped[keep].any():
                other[col] += int(mapped[keep].sum())
        rejects.sort()
        return Checked(typed, keep, rejects, unseen[keep], other)
