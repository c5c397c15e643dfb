"""Raw cells → typed columns, by the declared type only (never by what pandas guessed).

Categorical cells are the exact text written (stripped), so `01` stays `01` whatever else
the file holds. Declared missing codes are masked before any number is parsed: a code
given as a number or as a string matches the same cells (96, "96", "096", "96.0").
Labels compare canonically: numbers by value ("1" = "1.0" = 1), text exactly.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from fedcredit.credit.errors import InputError
from fedcredit.credit.features import OTHER
from fedcredit.credit.reading import NA_MARKERS
from fedcredit.credit.schema import category_text

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_EURO_GROUPED = re.compile(r"[+-]?\d{1,3}(\.\d{3})+,\d+")           # 1.234,56 with decimal ','
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+\.\d+")                # 6,829.67
_COMMA_INSIDE = re.compile(r"[+-]?\d+(,\d+)+")                       # 0,14 or 6,829
_PERCENT = re.compile(r"[+-]?[\d.,]+\s*%")
_CURRENCY = re.compile(r"[+-]?\s*[$€£¥]\s*[\d.,]+|[+-]?[\d.,]+\s*[$€£¥]")
_DATE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?"   # 2015-03-01
    r"|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}( \d{1,2}:\d{2}(:\d{2})?)?"                                 # 01/03/2015
    r"|\d{1,2}[- ][A-Za-z]{3,9}[- ,]+\d{2,4}|[A-Za-z]{3,9} \d{1,2},? \d{4}"                       # 1-Mar-2015
)
DERIVE_DATE = "derive a number such as days since 1970-01-01 (or months on book) and list that under numeric"


# ---- spellings --------------------------------------------------------------------

def number_of(text: str) -> float | None:
    """The value of a cell written as a plain decimal number ('01', '1.0', '+96', '9.6e1'), else None."""
    text = text.strip()
    return float(text) if _NUMBER.fullmatch(text) else None


def canonical(value: Any) -> str:
    """One spelling per code: numbers by value ('1' for 1, '1.0', '01'), text stripped."""
    text = category_text(value)
    number = number_of(text)
    if number is None or not math.isfinite(number):
        return text
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def same_code(a: str, b: str) -> bool:
    """Two spellings of one code: equal numbers, or text equal up to case."""
    na, nb = number_of(a), number_of(b)
    if na is not None and nb is not None:
        return na == nb
    return a.casefold() == b.casefold()


def _cell_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    try:
        if pd.isna(value):
            return np.nan
    except (TypeError, ValueError):  # list-like cells are not missing
        pass
    return category_text(value)


def as_text(series: pd.Series) -> pd.Series:
    """Any column as object text: strings stripped, numbers as `category_text`, NA markers → NaN."""
    present = series.dropna()
    if ptypes.is_string_dtype(present):  # str dtype, or objects that are all strings
        present = present.astype(str).str.strip()
    else:
        present = present.astype(object)
        try:
            present = present.map({u: _cell_text(u) for u in pd.unique(present)})
        except TypeError:  # unhashable cells
            present = present.map(_cell_text)
    text = present.reindex(series.index).astype(object)
    return text.where(text.notna() & ~text.isin(NA_MARKERS))


# ---- numeric columns --------------------------------------------------------------

@dataclass(frozen=True)
class ColumnProblem:
    """Why a declared numeric column cannot be read as numbers."""

    column: str
    rows: int
    example: str
    dates: bool

    def describe(self, decimal: str) -> str:
        if self.dates:
            return f"holds dates ({self.rows} row(s) such as {self.example!r}), not numbers: {DERIVE_DATE}"
        rows = f" ({self.rows} row(s))" if self.rows != 1 else ""
        return f"non-numeric value {self.example!r} in a numeric column{rows}: {_fix_hint(self.example, decimal)}"


def _fix_hint(example: str, decimal: str) -> str:
    if _PERCENT.fullmatch(example):
        return "write percentages as plain numbers (11.44% as 0.1144 or 11.44)"
    if _CURRENCY.fullmatch(example):
        return "export amounts as plain numbers, without currency symbols or thousands separators"
    if decimal == "." and _THOUSANDS.fullmatch(example):
        return "export numbers without thousands separators (6,829.67 as 6829.67)"
    if decimal == "." and _COMMA_INSIDE.fullmatch(example):
        return ('export numbers without thousands separators, or set decimal = "," in the partner\'s '
                "[[partners]] entry if ',' is the decimal mark")
    if decimal == "," and "." in example:
        return ("the file is read with decimal ',': export numbers without '.' thousands separators, or set "
                'decimal = "." in the partner\'s [[partners]] entry')
    return "fix it or declare the column categorical"


def numbers_in(text: pd.Series, decimal: str = ".") -> pd.Series:
    """The numeric value of each text cell (NaN where missing or not a number)."""
    present = text.dropna().astype(str)
    if decimal == ",":
        present = present.where(~present.str.fullmatch(_EURO_GROUPED.pattern),
                                present.str.replace(".", "", regex=False))
        ambiguous = present.str.contains(".", regex=False)
        present = present.str.replace(",", ".", regex=False).where(~ambiguous, "")
    parsed = pd.to_numeric(present, errors="coerce").astype("float64")
    return parsed.reindex(text.index).astype("float64")


def code_numbers(codes: Iterable[Any]) -> set[float]:
    """Declared codes that are numbers, by value (96, 96.0 and "96" alike)."""
    out = set()
    for code in codes:
        number = float(code) if isinstance(code, (int, float)) else number_of(str(code))
        if number is not None:
            out.add(number)
    return out


def _holds_dates(series: pd.Series) -> bool:
    if ptypes.is_datetime64_any_dtype(series):
        return True
    if ptypes.is_object_dtype(series):
        sample = series.dropna().head(50)
        return len(sample) > 0 and all(isinstance(v, (dt.date, np.datetime64)) for v in sample)
    return False


def _date_text(value: Any) -> str:
    if isinstance(value, pd.Timestamp) and value == value.normalize():
        return str(value.date())
    return str(value)


def numeric_column(raw: pd.Series, codes: tuple[Any, ...], *, column: str,
                   decimal: str = ".") -> tuple[pd.Series, ColumnProblem | None]:
    """A declared numeric column as float64 with missing codes masked, or the reason it is not numeric."""
    if _holds_dates(raw):
        present = raw.dropna()
        example = _date_text(present.iloc[0]) if len(present) else ""
        return raw, ColumnProblem(column, len(present), example, True)
    values, unparsed = numeric_cells(raw, codes, decimal=decimal)
    unparsed = unparsed.dropna()
    if len(unparsed):
        dates = bool(unparsed.str.fullmatch(_DATE.pattern).all())
        return values, ColumnProblem(column, len(unparsed), str(unparsed.iloc[0]), dates)
    return values, None


def numeric_cells(raw: pd.Series, codes: tuple[Any, ...], *, decimal: str = ".") -> tuple[pd.Series, pd.Series]:
    """Cell by cell: (float64 values with missing codes masked, NaN where missing or not a number;
    the text of each cell that is not a number, NaN elsewhere). Dates are not checked here."""
    nums = code_numbers(codes)
    if ptypes.is_numeric_dtype(raw) or ptypes.is_bool_dtype(raw):
        values = pd.Series(raw.to_numpy(dtype="float64", na_value=np.nan), index=raw.index)
        return values.mask(values.isin(nums)), pd.Series(np.nan, index=raw.index, dtype=object)

    def rule(cells: pd.Series) -> tuple[pd.Series, pd.Series]:
        text = as_text(cells)
        values = numbers_in(text, decimal)
        is_code = text.isin({category_text(c) for c in codes}) | values.isin(nums)
        return values.mask(is_code), text.where(text.notna() & values.isna() & ~is_code).astype(object)
    values, unparsed = per_distinct(raw, rule)
    return values.astype("float64"), unparsed


def per_distinct(raw: pd.Series, rule: Callable[[pd.Series], tuple[pd.Series, ...]]) -> tuple[pd.Series, ...]:
    """`rule(raw)` for an elementwise rule, computed once per distinct cell (a credit column repeats
    few values: '0', 'rent', '-1' …) when the column is text or numbers; the same result."""
    if not (ptypes.is_string_dtype(raw) or (ptypes.is_numeric_dtype(raw) and not ptypes.is_bool_dtype(raw))):
        return rule(raw)
    codes, uniques = pd.factorize(raw, use_na_sentinel=False)
    if len(uniques) * 4 > len(raw):       # mostly distinct: nothing to gain
        return rule(raw)
    results = rule(pd.Series(uniques))
    return tuple(pd.Series(r.to_numpy(dtype=r.dtype if r.dtype == np.float64 else object)[codes], index=raw.index,
                           dtype=r.dtype if r.dtype == np.float64 else object) for r in results)


def is_date(text: str) -> bool:
    """A cell written as a date (2015-03-01, 01/03/2015, 1-Mar-2015 …)."""
    return bool(_DATE.fullmatch(text.strip()))


def refuse_numeric(problems: list[ColumnProblem], *, source: str, decimal: str) -> None:
    """One InputError naming every declared numeric column that does not hold numbers."""
    if not problems:
        return
    if len(problems) == 1:
        raise InputError(problems[0].describe(decimal), source=source, field=problems[0].column)
    names = ", ".join(f"'{p.column}'" for p in problems)
    items = "; ".join(f"'{p.column}': {p.describe(decimal)}" for p in problems)
    raise InputError(f"{len(problems)} numeric columns ({names}) do not hold plain numbers — {items}",
                     source=source)


# ---- categorical columns and labels ---------------------------------------------------

def categorical_column(raw: pd.Series, codes: tuple[Any, ...]) -> pd.Series:
    """A declared categorical column as its exact (stripped) text, declared missing codes masked."""
    def rule(cells: pd.Series) -> tuple[pd.Series]:
        text = as_text(cells)
        return (text.mask(text.isin({category_text(c) for c in codes})).astype(object),)
    return per_distinct(raw, rule)[0]


def check_spellings(text: pd.Series, declared: tuple[str, ...], *, column: str, source: str) -> None:
    """Refuse a value that is a respelling of a declared code ('1' for '01', 'a' for 'A')."""
    present = sorted(set(text.dropna().unique()))
    respelled = respellings(present, declared)
    if not respelled:
        return
    pairs = ", ".join(f"{v!r} for {d!r}" for v, d in respelled.items())
    shown = present[:12] + (["…"] if len(present) > 12 else [])
    raise InputError(f"spells declared codes differently: {pairs} (the file has {shown}; [dataset].levels "
                     f"declares {list(declared)}): write the codes exactly as declared, or declare the file's "
                     f"spelling; otherwise these rows would count as {OTHER}", source=source, field=column)


def respellings(values: Iterable[str], declared: tuple[str, ...]) -> dict[str, str]:
    """Each value that respells a declared code (not declared itself) → the code it respells."""
    return {v: d for v in values if v not in declared for d in declared if same_code(v, d)}


def label_codes(raw: pd.Series) -> pd.Series:
    """The label's canonical codes ('1' for 1, '1.0', '01'; text as written), NaN where missing."""
    text = as_text(raw)
    mapping = {v: canonical(v) for v in text.dropna().unique()}
    return text.map(mapping).astype(object)
