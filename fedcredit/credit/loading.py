"""Check a partner's table against the spec (typed by declared type only) and split it."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fedcredit.credit.columns import (
    ColumnProblem,
    canonical,
    categorical_column,
    check_spellings,
    label_codes,
    numeric_column,
    refuse_numeric,
)
from fedcredit.credit.errors import InputError
from fedcredit.credit.reading import NA_MARKERS, SUFFIXES, check_headers, read_table, read_table_bytes
from fedcredit.credit.schema import DatasetSpec

__all__ = ["NA_MARKERS", "SUFFIXES", "PartnerTable", "load_table", "partner_seed", "prepare_table",
           "read_table", "read_table_bytes", "row_fractions", "split_train_test"]


@dataclass(frozen=True)
class PartnerTable:
    """A partner's rows, checked: features as a DataFrame, label as 0/1 (1 = bad).

    `label_values` are the sorted canonical label codes the partner's file holds (e.g.
    ("0", "1") or ("1", "2")), so partners' label codings can be compared. `protected` holds the
    spec's protected columns (for the fair-lending checks only), apart from `features` — the only
    columns a model, a statistic or a transform ever reads — so they can never become model inputs.
    """

    features: pd.DataFrame
    label: np.ndarray
    label_values: tuple[str, ...] = ()
    fractions: np.ndarray | None = None   # each row's place in [0, 1), from its own content (see row_fractions)
    protected: pd.DataFrame | None = None   # the protected columns (None: the spec declares none)

    def __len__(self) -> int:
        return len(self.label)

    def take(self, idx: np.ndarray) -> PartnerTable:
        return PartnerTable(self.features.iloc[idx].reset_index(drop=True), self.label[idx], self.label_values,
                            None if self.fractions is None else self.fractions[idx],
                            None if self.protected is None else self.protected.iloc[idx].reset_index(drop=True))


def prepare_table(frame: pd.DataFrame, spec: DatasetSpec, *, source: str,
                  min_rows: int = 1, min_bad: int = 1, decimal: str | None = None) -> PartnerTable:
    """Check a raw table against the spec and return typed features and a 0/1 label.

    Every column is read by its declared type; `decimal` defaults to the mark the reader
    found (`frame.attrs["decimal"]`), else ".".
    """
    decimal = decimal or frame.attrs.get("decimal", ".")
    frame = frame.set_axis(check_headers(list(frame.columns), source=source), axis=1).reset_index(drop=True)
    _check_columns(frame, spec, source=source, min_rows=min_rows)
    label, label_values = _read_label(frame[spec.label], spec, source=source, min_bad=min_bad)
    features = _read_features(frame, spec, source=source, decimal=decimal)
    empty = [c for c in spec.features if features[c].isna().all()]
    if empty:
        raise InputError(f"column(s) {empty} have no values at all; drop them in [dataset].drop "
                         "or fix the file", source=source)
    protected = _read_protected(frame, spec, source=source, decimal=decimal) if spec.protected else None
    return PartnerTable(features, label, label_values, row_fractions(frame), protected)


def _check_columns(frame: pd.DataFrame, spec: DatasetSpec, *, source: str, min_rows: int) -> None:
    columns = set(frame.columns)
    missing_cols = sorted(spec.expected_columns - columns)
    if missing_cols:
        raise InputError(f"missing column(s) {missing_cols} that the [dataset] spec lists; "
                         "every partner must provide the same columns", source=source)
    extra = sorted(columns - spec.expected_columns)
    if extra:
        raise InputError(f"extra column(s) {extra} not in the [dataset] spec: add them to "
                         "numeric, categorical or drop", source=source)
    if len(frame) < min_rows:
        raise InputError(f"has {len(frame)} rows; at least {min_rows} are needed to train "
                         "and test locally", source=source)


def _read_label(raw: pd.Series, spec: DatasetSpec, *, source: str,
                min_bad: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """The label as 0/1 (1 = the `bad` code, compared canonically) and its distinct codes."""
    codes = label_codes(raw)
    if codes.isna().any():
        raise InputError(f"{int(codes.isna().sum())} row(s) have no label", source=source, field=spec.label)
    values = tuple(sorted(set(codes)))
    if len(values) > 2:
        raise InputError(f"label is not binary: found values {list(values[:6])}", source=source,
                         field=spec.label)
    bad = spec.bad
    is_bad = (codes == canonical(bad)).to_numpy()
    if not is_bad.any():
        raise InputError(f"no row has the 'bad' value {bad!r} (values: {list(values)}): "
                         "check [dataset].bad", source=source, field=spec.label)
    n_bad = int(is_bad.sum())
    if n_bad < min_bad or n_bad == len(codes):
        raise InputError(f"has {n_bad} bad row(s) out of {len(codes)}; need at least {min_bad} "
                         "bad and some good rows", source=source, field=spec.label)
    return is_bad.astype(np.int64), values


def _read_features(frame: pd.DataFrame, spec: DatasetSpec, *, source: str, decimal: str) -> pd.DataFrame:
    """Numeric columns as float64, categorical as text; one error names every non-numeric column."""
    columns: dict[str, pd.Series] = {}
    problems: list[ColumnProblem] = []
    for col in spec.numeric:
        values, problem = numeric_column(frame[col], spec.missing.get(col, ()), column=col, decimal=decimal)
        columns[col] = values
        if problem:
            problems.append(problem)
    refuse_numeric(problems, source=source, decimal=decimal)
    for col in spec.categorical:
        columns[col] = categorical_column(frame[col], spec.missing.get(col, ()))
        if col in spec.levels:
            check_spellings(columns[col], spec.levels[col], column=col, source=source)
    return pd.DataFrame({c: columns[c] for c in spec.features}).reset_index(drop=True)


def _read_protected(frame: pd.DataFrame, spec: DatasetSpec, *, source: str, decimal: str) -> pd.DataFrame:
    """The protected columns by their type: numbers for those the [fairness] cut points band, codes for
    the others (declared levels checked for respellings). Bad cells stop the run here, before any release."""
    columns: dict[str, pd.Series] = {}
    problems: list[ColumnProblem] = []
    for col in spec.protected:
        if col in spec.protected_numeric:
            columns[col], problem = numeric_column(frame[col], spec.missing.get(col, ()), column=col, decimal=decimal)
            if problem:
                problems.append(problem)
        else:
            columns[col] = categorical_column(frame[col], spec.missing.get(col, ()))
            if col in spec.levels:
                check_spellings(columns[col], spec.levels[col], column=col, source=source)
    refuse_numeric(problems, source=source, decimal=decimal)
    return pd.DataFrame(columns).reset_index(drop=True)


def load_table(path: str | Path, spec: DatasetSpec, *, source: str | None = None,
               min_rows: int = 1, min_bad: int = 1, sep: str | None = None,
               decimal: str | None = None) -> PartnerTable:
    """Read a file and check it against the spec (`source` prefixes error messages).

    `sep` / `decimal` are the partner's CSV keys; unset, they are sniffed from the file.
    """
    where = f"{source} ({path})" if source else str(path)
    frame = read_table(path, source=where, sep=sep, decimal=decimal)
    return prepare_table(frame, spec, source=where, min_rows=min_rows, min_bad=min_bad, decimal=decimal)


def partner_seed(seed: int, partner: str) -> int:
    """A stable per-partner seed (independent of Python's hash randomisation)."""
    return (zlib.crc32(partner.encode()) ^ (seed * 0x9E3779B1)) % (2**31 - 1)


_SPLIT_KEY = "fedcredit-split1"   # 16 characters: the SipHash key of `row_fractions`; never changes


def row_fractions(frame: pd.DataFrame) -> np.ndarray:
    """Each row's place in [0, 1): a keyed hash of the row's own cells (every column as read, in
    column-name order), so a row's side of the split never depends on the other rows, the file's
    column order, the partner's name or the run's seed."""
    if frame.empty:
        return np.zeros(len(frame))
    ordered = frame[sorted(frame.columns)]
    hashed = pd.util.hash_pandas_object(ordered, index=False, hash_key=_SPLIT_KEY).to_numpy(dtype=np.uint64)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def split_train_test(table: PartnerTable, *, test_fraction: float) -> tuple[PartnerTable, PartnerTable]:
    """Held-out rows: those whose fraction (see `row_fractions`) is below `test_fraction`.

    Adding or removing one row moves no other row across the split, so releases computed on
    the training rows and on the held-out rows touch disjoint rows (parallel composition,
    `fedcredit.privacy.accountant`), and the split is the same in every run on the same data."""
    fractions = table.fractions if table.fractions is not None else np.linspace(0, 1, len(table), endpoint=False)
    test = fractions < test_fraction
    return table.take(np.flatnonzero(~test)), table.take(np.flatnonzero(test))
