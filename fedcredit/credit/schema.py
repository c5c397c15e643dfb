"""Dataset spec: which column is the label, which are features, which codes mean missing."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedcredit.credit.errors import InputError

_SPEC_KEYS = {"label", "bad", "numeric", "categorical", "drop", "missing", "log", "levels"}


@dataclass(frozen=True)
class DatasetSpec:
    """The columns every partner's table must have, and how to read them.

    `log` lists numeric columns that get a signed log1p; `None` lets the feature
    fitter decide from the federated statistics (heavy right tail → log).
    `levels` declares the public code list of categorical columns (e.g. a codebook):
    partners then count exactly those levels, so no level name ever depends on the data.
    """

    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    bad: int | float | str = 1
    drop: tuple[str, ...] = ()
    missing: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    log: tuple[str, ...] | None = None
    levels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def expected_columns(self) -> set[str]:
        return {self.label, *self.features, *self.drop}

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
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str = "[dataset]") -> DatasetSpec:
        """Validate a `[dataset]` table once, at the edge."""
        unknown = set(raw) - _SPEC_KEYS
        if unknown:
            raise InputError(
                f"unknown key(s) {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}", source=source
            )
        label = raw.get("label")
        if not isinstance(label, str) or not label:
            raise InputError("must name the label column as a string", source=source, field="label")
        bad = raw.get("bad", 1)
        if not is_code(bad):
            raise InputError("must be a number or a non-empty string (e.g. 1 or \"Y\")", source=source,
                             field="bad")

        def names(key: str, required: bool = False) -> tuple[str, ...]:
            value = raw.get(key, [] if not required else None)
            if value is None or not isinstance(value, list) or not all(
                isinstance(v, str) and v for v in value
            ):
                raise InputError("must be a list of column names", source=source, field=key)
            if len(set(value)) != len(value):
                raise InputError("lists a column twice", source=source, field=key)
            return tuple(value)

        numeric, categorical, drop = names("numeric", True), names("categorical"), names("drop")
        if not numeric and not categorical:
            raise InputError("no feature columns: list some in numeric or categorical", source=source)
        seen: dict[str, str] = {label: "label"}
        for key, cols in (("numeric", numeric), ("categorical", categorical), ("drop", drop)):
            for col in cols:
                if col in seen:
                    raise InputError(
                        f"column '{col}' is both in {seen[col]} and {key}", source=source, field=key
                    )
                seen[col] = key
        missing_raw = raw.get("missing", {})
        if not isinstance(missing_raw, Mapping):
            raise InputError("must be a table of column = [codes]", source=source, field="missing")
        missing: dict[str, tuple[Any, ...]] = {}
        for col, codes in missing_raw.items():
            if col not in numeric and col not in categorical:
                raise InputError(
                    f"names column '{col}' that is not a numeric or categorical feature",
                    source=source, field="missing",
                )
            if not isinstance(codes, list):
                codes = [codes]
            if not all(is_code(c) for c in codes):
                raise InputError(f"codes for '{col}' must be numbers or strings (got {codes!r})",
                                 source=source, field="missing")
            missing[col] = tuple(codes)
        log = None
        if "log" in raw:
            log = names("log")
            stray = [c for c in log if c not in numeric]
            if stray:
                raise InputError(f"{stray} are not numeric columns", source=source, field="log")
        levels_raw = raw.get("levels", {})
        if not isinstance(levels_raw, Mapping):
            raise InputError("must be a table of column = [codes]", source=source, field="levels")
        levels: dict[str, tuple[str, ...]] = {}
        for col, codes in levels_raw.items():
            if col not in categorical or not isinstance(codes, list) or not codes or not all(map(is_code, codes)):
                raise InputError(f"'{col}' must be a categorical column with a list of codes",
                                 source=source, field="levels")
            levels[col] = tuple(category_text(c) for c in codes)
        return cls(label=label, numeric=numeric, categorical=categorical, bad=bad,
                   drop=drop, missing=missing, log=log, levels=levels)


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
