"""One party's table in a vertical federation: its normalised customer keys, its own features, and the
label at the label holder — read by the horizontal loader's rules (`fedcredit.credit.loading`) for the
party's own `DatasetSpec` (`Partner.spec`), keys by `fedcredit.credit.customer_keys`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fedcredit.credit.customer_keys import read_keys
from fedcredit.credit.errors import InputError
from fedcredit.credit.loading import _read_features, _read_label
from fedcredit.credit.reading import check_headers, read_table
from fedcredit.credit.scenario import Partner


@dataclass(frozen=True)
class PartyTable:
    """A party's rows, checked, in file order: `keys` (normalised, unique; never to be logged),
    `features` (the party's declared features, numeric as float64 and categorical as text), `label`
    0/1 (1 = the `bad` code) at the label holder, None at a passive party; `label_values` the label's
    sorted canonical codes."""

    keys: list[str]
    features: pd.DataFrame
    label: np.ndarray | None
    label_values: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.keys)

    def take(self, idx: np.ndarray) -> PartyTable:
        """The rows at positions `idx` (e.g. the aligned order), in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        return PartyTable([self.keys[i] for i in idx], self.features.iloc[idx].reset_index(drop=True),
                          None if self.label is None else self.label[idx], self.label_values)


_SPLIT_KEY = "fedcredit-vsplit"   # 16 characters: the SipHash key of `key_fractions`; never changes


def key_fractions(keys: list[str]) -> np.ndarray:
    """Each customer's place in [0, 1) from its normalised key alone (a keyed hash), so every party puts
    the same shared customer on the same side of a train/test split without a message (cf.
    `loading.row_fractions`); shape (len(keys),)."""
    if not keys:
        return np.zeros(0)
    hashed = pd.util.hash_array(np.asarray(keys, dtype=object), hash_key=_SPLIT_KEY, categorize=False)
    return (hashed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def prepare_party_table(frame: pd.DataFrame, partner: Partner, *, source: str, min_rows: int,
                        min_bad: int = 1, label_column: str | None = None) -> PartyTable:
    """Check a party's raw table (as `read_table` returns it) against its [[partners]] entry.

    `source` names the file (or vault); `label_column` is the federation's label column (the label
    holder's), so a passive party's file holding it is refused by name. One InputError naming file,
    partner and field for: the key column missing, empty or duplicate keys (counted, never shown), the
    label column at a passive party, a declared column missing, an undeclared column, too few rows, and
    every problem the horizontal loader finds in a label or feature column."""
    at = f"{source} partner '{partner.name}'"
    if partner.id is None or partner.spec is None:
        raise InputError("is not a party of a vertical federation: give it `id` and its columns (numeric, "
                         "categorical; `label` at the label holder) in its [[partners]] entry", source=at)
    spec = partner.spec
    decimal = partner.decimal or frame.attrs.get("decimal", ".")
    frame = frame.set_axis(check_headers(list(frame.columns), source=at), axis=1).reset_index(drop=True)
    columns = set(frame.columns)
    if partner.id not in columns:
        raise InputError(f"the file has no key column '{partner.id}' (the entry's `id`): add the customer key "
                         "column, or set `id` to the column that holds it", source=at, field="id")
    label = label_column if label_column and not partner.holds_label else None
    if label and label in columns:
        raise InputError(f"party '{partner.name}' has the label column '{label}': only the label holder may "
                         f"hold it; drop the column from this party's file (rename it if it is another column of "
                         "the same name)", source=at, field=label)
    missing = sorted(spec.expected_columns - columns)
    if missing:
        raise InputError(f"missing column(s) {missing} that this party's [[partners]] entry lists: add them to "
                         "the file, or remove them from the entry", source=at)
    extra = sorted(columns - spec.expected_columns - {partner.id})
    if extra:
        raise InputError(f"extra column(s) {extra} not in this party's [[partners]] entry: add them to its "
                         "numeric, categorical or drop", source=at)
    if len(frame) < min_rows:
        raise InputError(f"has {len(frame)} rows; at least {min_rows} (min_rows) are needed", source=at)
    keys = read_keys(frame[partner.id].tolist(), source=source, partner=partner.name, field=partner.id)
    y, values = (_read_label(frame[spec.label], spec, source=at, min_bad=min_bad) if partner.holds_label
                 else (None, ()))
    features = _read_features(frame, spec, source=at, decimal=decimal)
    empty = [c for c in spec.features if features[c].isna().all()]
    if empty:
        raise InputError(f"column(s) {empty} have no values at all: remove them from this party's entry "
                         "(or list them in its drop), or fix the file", source=at)
    return PartyTable(keys, features, y, values)


def load_party_table(partner: Partner, *, min_rows: int, min_bad: int = 1,
                     label_column: str | None = None) -> PartyTable:
    """Read the party's own file (`partner.data`, with its `sep`/`decimal`) and check it."""
    if partner.data is None:
        raise InputError("has no data file: set `data` in its [[partners]] entry", source=f"partner "
                         f"'{partner.name}'", field="data")
    where = str(Path(partner.data))
    frame = read_table(partner.data, source=f"{where} partner '{partner.name}'", sep=partner.sep,
                       decimal=partner.decimal)
    return prepare_party_table(frame, partner, source=where, min_rows=min_rows, min_bad=min_bad,
                               label_column=label_column)
