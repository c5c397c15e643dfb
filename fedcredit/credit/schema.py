"""Dataset spec: which column is the label, which are features, which codes mean missing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import field_validator, model_validator

from fedcredit.credit.validation import Rule, Schema, Text, rule, validated


@dataclass(frozen=True)
class DatasetSpec:
    """The columns every partner's table must have, and how to read them.

    `log` lists numeric columns that get a signed log1p; `None` lets the feature
    fitter decide from the federated statistics (heavy right tail → log).
    `levels` declares the public code list of categorical columns (e.g. a codebook):
    partners then count exactly those levels, so no level name ever depends on the data.
    `protected` columns (sex, age, ...) are read from every partner's file for the fair-lending
    checks only (`fedcredit.credit.fairness`) and are never model inputs: they are in no feature list.
    `protected_numeric` are those read as numbers (banded by the [fairness] cut points); the others
    are read as categorical codes. It is set from the scenario's [fairness] groups, not written by hand.
    """

    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    bad: int | float | str = 1
    drop: tuple[str, ...] = ()
    missing: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    log: tuple[str, ...] | None = None
    levels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    protected: tuple[str, ...] = ()
    protected_numeric: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def expected_columns(self) -> set[str]:
        return {self.label, *self.features, *self.drop, *self.protected} - {""}   # "": a passive party's

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "bad": self.bad,
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "drop": list(self.drop),
            "missing": {k: list(v) for k, v in self.missing.items()},
        }
        if self.log is not None:
            out["log"] = list(self.log)
        if self.levels:
            out["levels"] = {k: list(v) for k, v in self.levels.items()}
        if self.protected:   # only when declared: a spec without them keeps its old form (and model ids)
            out["protected"] = list(self.protected)
        if self.protected_numeric:
            out["protected_numeric"] = list(self.protected_numeric)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "[dataset]") -> DatasetSpec:
        """Validate a `[dataset]` table once, at the edge (`DatasetTable`); `protected_numeric` is the
        spec's own (a message's or an artefact's), derived from [fairness] when a scenario is read."""
        raw = dict(raw) if isinstance(raw, Mapping) else raw
        numeric = raw.pop("protected_numeric", ()) if isinstance(raw, dict) else ()
        spec = validated(DatasetTable, raw, locate=source).spec()
        if numeric:
            spec = replace(spec, protected_numeric=tuple(str(c) for c in numeric if c in spec.protected))
        return spec


_NAMES = "must be a list of column names"
_CODES = "must be a table of column = [codes]"


class DatasetTable(Schema):
    """The `[dataset]` table of a scenario (and the spec a model artefact or a message carries)."""

    label: Text = rule("must name the label column as a string")
    bad: Any = rule('must be a number or a non-empty string (e.g. 1 or "Y")', 1)
    numeric: tuple[Text, ...] = rule(_NAMES)
    categorical: tuple[Text, ...] = rule(_NAMES, ())
    drop: tuple[Text, ...] = rule(_NAMES, ())
    missing: dict[str, Any] = rule(_CODES, default_factory=dict)
    log: tuple[Text, ...] | None = rule(_NAMES, None)
    levels: dict[str, Any] = rule(_CODES, default_factory=dict)
    protected: tuple[Text, ...] = rule(_NAMES + " (read for the fair-lending checks, never a model input)", ())

    @field_validator("bad")
    @classmethod
    def _bad_is_a_code(cls, value: Any) -> Any:
        if not is_code(value):
            raise ValueError("not a code")
        return value

    @model_validator(mode="after")
    def _columns_agree(self) -> DatasetTable:
        for key in ("numeric", "categorical", "drop", "log", "protected"):
            cols = getattr(self, key) or ()
            if len(set(cols)) != len(cols):
                raise Rule("lists a column twice", key)
        if not self.numeric and not self.categorical:
            raise Rule("no feature columns: list some in numeric or categorical")
        seen: dict[str, str] = {self.label: "label"}
        for key in ("numeric", "categorical", "drop"):
            for col in getattr(self, key):
                if col in seen:
                    raise Rule(f"column '{col}' is both in {seen[col]} and {key}", key)
                seen[col] = key
        for col in self.protected:
            if col in seen:
                where = "the label" if seen[col] == "label" else f"listed in {seen[col]}"
                raise Rule(f"column '{col}' is protected and also {where}: a protected column is never a model "
                           f"input (nor the label, nor a dropped column); remove it from {seen[col]} — it is still "
                           "read, for the fair-lending checks only", "protected")
        for col, codes in self.missing.items():
            if col not in self.numeric and col not in self.categorical and col not in self.protected:
                raise Rule(f"names column '{col}' that is not a numeric, categorical or protected column", "missing")
            if not all(is_code(c) for c in (codes if isinstance(codes, list) else [codes])):
                raise Rule(f"codes for '{col}' must be numbers or strings (got {codes!r})", "missing")
        stray = [c for c in self.log or () if c not in self.numeric]
        if stray:
            raise Rule(f"{stray} are not numeric columns", "log")
        for col, codes in self.levels.items():
            if col not in self.categorical and col not in self.protected or not isinstance(codes, list) or not codes \
                    or not all(map(is_code, codes)):
                raise Rule(f"'{col}' must be a categorical (or protected) column with a list of codes", "levels")
        return self

    def spec(self) -> DatasetSpec:
        return DatasetSpec(
            label=self.label, numeric=self.numeric, categorical=self.categorical, bad=self.bad, drop=self.drop,
            missing={col: tuple(codes if isinstance(codes, list) else [codes]) for col, codes in self.missing.items()},
            log=self.log,
            levels={col: tuple(category_text(c) for c in codes) for col, codes in self.levels.items()},
            protected=self.protected)


def is_code(value: Any) -> bool:
    """A value a code may take in the spec: a finite number or a non-empty string."""
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def category_text(value: Any) -> str:
    """How a categorical code is spelled everywhere: '1' for 1 and 1.0, stripped text otherwise."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
