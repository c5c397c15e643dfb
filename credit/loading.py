"""Read a partner's table (CSV, gzipped CSV, Parquet), check it against the spec, split it."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from credit.errors import InputError
from credit.schema import DatasetSpec, category_text

# pandas' default NA markers plus a few seen in credit extracts.
NA_MARKERS = ["", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "none", "?", "#N/A", "<NA>", "."]
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


@dataclass(frozen=True)
class PartnerTable:
    """A partner's rows, checked: features as a DataFrame, label as 0/1 (1 = bad)."""

    features: pd.DataFrame
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    def take(self, idx: np.ndarray) -> PartnerTable:
        return PartnerTable(self.features.iloc[idx].reset_index(drop=True), self.label[idx])


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV / CSV.gz / Parquet; empty cells and the usual NA markers become missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError("data file not found: check the partner's `data` path", source=str(path))
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif name.endswith((".csv", ".csv.gz", ".txt", ".txt.gz")):
            frame = pd.read_csv(path, na_values=NA_MARKERS, keep_default_na=True, low_memory=False)
        else:
            raise InputError(f"unsupported file type; use one of {list(SUFFIXES)}", source=str(path))
    except InputError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise InputError("the file is empty", source=str(path)) from exc
    except Exception as exc:  # parser errors from pandas/pyarrow carry the useful detail
        raise InputError(f"cannot be read as a table: {exc}", source=str(path)) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_table_bytes(data: bytes, *, source: str) -> pd.DataFrame:
    """Parse a table held in memory (e.g. decrypted from a vault): Parquet, gzipped or plain CSV."""
    import io

    if not data:
        raise InputError("the table is empty", source=source)
    try:
        if data[:4] == b"PAR1":
            frame = pd.read_parquet(io.BytesIO(data))
        else:
            frame = pd.read_csv(io.BytesIO(data), na_values=NA_MARKERS, keep_default_na=True, low_memory=False,
                                compression="gzip" if data[:2] == b"\x1f\x8b" else None)
    except Exception as exc:
        raise InputError(f"cannot be read as a table: {exc}", source=source) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _as_category(series: pd.Series) -> pd.Series:
    """Categorical codes as strings ('1', not '1.0'); missing stays missing."""
    return series.map(lambda v: np.nan if pd.isna(v) else category_text(v)).astype(object)


def prepare_table(frame: pd.DataFrame, spec: DatasetSpec, *, source: str,
                  min_rows: int = 1, min_bad: int = 1) -> PartnerTable:
    """Check a raw table against the spec and return typed features and a 0/1 label."""
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

    raw_label = frame[spec.label]
    if raw_label.isna().any():
        raise InputError(f"{int(raw_label.isna().sum())} row(s) have no label", source=source,
                         field=spec.label)
    values = set(raw_label.unique().tolist())
    if len(values) > 2:
        shown = sorted(map(str, values))[:6]
        raise InputError(f"label is not binary: found values {shown}", source=source, field=spec.label)
    bad = spec.bad
    is_bad = (raw_label.astype(str) == str(bad)) if isinstance(bad, str) else (raw_label == bad)
    if not is_bad.any():
        raise InputError(f"no row has the 'bad' value {bad!r} (values: {sorted(map(str, values))}): "
                         "check [dataset].bad", source=source, field=spec.label)
    n_bad = int(is_bad.sum())
    if n_bad < min_bad or n_bad == len(frame):
        raise InputError(f"has {n_bad} bad row(s) out of {len(frame)}; need at least {min_bad} "
                         "bad and some good rows", source=source, field=spec.label)

    features = pd.DataFrame(index=frame.index)
    for col in spec.numeric:
        series = pd.to_numeric(frame[col], errors="coerce")
        bad_text = frame[col][series.isna() & frame[col].notna()]
        if len(bad_text):
            raise InputError(f"non-numeric value {bad_text.iloc[0]!r} in a numeric column "
                             f"({len(bad_text)} row(s)); fix it or declare the column categorical",
                             source=source, field=col)
        codes = spec.missing.get(col, ())
        if codes:
            series = series.mask(series.isin([c for c in codes if not isinstance(c, str)]))
        features[col] = series.astype("float64")
    for col in spec.categorical:
        series = _as_category(frame[col])
        codes = {category_text(c) for c in spec.missing.get(col, ())}
        if codes:
            series = series.mask(series.isin(codes))
        features[col] = series
    empty = [c for c in spec.features if features[c].isna().all()]
    if empty:
        raise InputError(f"column(s) {empty} have no values at all; drop them in [dataset].drop "
                         "or fix the file", source=source)
    return PartnerTable(features.reset_index(drop=True), is_bad.to_numpy(dtype=np.int64))


def load_table(path: str | Path, spec: DatasetSpec, *, source: str | None = None,
               min_rows: int = 1, min_bad: int = 1) -> PartnerTable:
    """Read a file and check it against the spec (`source` prefixes error messages)."""
    where = f"{source} ({path})" if source else str(path)
    frame = read_table(path)
    return prepare_table(frame, spec, source=where, min_rows=min_rows, min_bad=min_bad)


def partner_seed(seed: int, partner: str) -> int:
    """A stable per-partner seed (independent of Python's hash randomisation)."""
    return (zlib.crc32(partner.encode()) ^ (seed * 0x9E3779B1)) % (2**31 - 1)


def split_train_test(table: PartnerTable, *, test_fraction: float, seed: int) -> tuple[PartnerTable, PartnerTable]:
    """Stratified, seeded train/test split done by each partner on its own rows."""
    idx = np.arange(len(table))
    train_idx, test_idx = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                           stratify=table.label)
    return table.take(np.sort(train_idx)), table.take(np.sort(test_idx))
