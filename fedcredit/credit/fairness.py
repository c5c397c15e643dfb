"""Fair-lending checks, the partner's side: the [fairness] table, protected groups, score histograms by group.

A scenario declares protected columns in `[dataset] protected = [...]` (read from every partner's file,
never a model input) and how their rows fall into groups in `[fairness] groups`:

- a list of numbers is a numeric column's cut points: `age = [25, 40, 62]` gives the bands "<25",
  "[25, 40)", "[40, 62)" and ">=62" (each band holds its lower cut point; 62 is Regulation B's
  "elderly", 12 CFR 1002.2(o)). The cut points make the column numeric — its type is never guessed
  from its values — so a numeric protected column needs them: there is no default banding;
- a table of code lists groups a categorical column's codes: `personal_status = {male = ["A91",
  "A93", "A94"], female = ["A92", "A95"]}`; a code in no list falls in "other";
- no entry: each code is its own group (the `[dataset] levels` of the column when declared, a code
  outside them in "other"; otherwise the codes the rows hold — refused under record-level DP, where
  a group's name must not depend on the rows).

Rows whose protected value is missing form the group "missing". `[fairness] cutoff_score` (required
with protected columns) is the score in points on the `[scorecard]` scale (base_score at base_odds,
pdo; the same scaling `fedcredit score --points` applies to any model) at or above which an applicant
is approved; `reference = {col = value}` names each column's reference group (a group name, a code,
or for a numeric column any value of the band); without it, the group with the most rows.

Each partner scores its held-out rows with the final model and releases, per protected column and
group, the counts of its bad and good rows on the logit grid `fairness_grid` (the coarse score grid
of a private evaluation plus the cutoff as an edge, so approval counts are exact), and without DP the
exact sums of each group's logits, squared logits and PDs (`GroupScores`). Under record-level DP the
counts are noised and the sums withheld (`fedcredit.privacy.evaluation.noisy_group_scores`). The
coordinator's maths is `fedcredit.reports.fairness`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from pydantic import model_validator
from pydantic.dataclasses import dataclass as schema_dataclass

from fedcredit.credit.metrics import LOGIT_LIMIT, PRIVATE_SCORE_EDGES
from fedcredit.credit.schema import DatasetSpec, category_text, is_code
from fedcredit.credit.validation import STRICT, Number, Rule, rule, validated

MISSING_GROUP, OTHER_GROUP = "missing", "other"
# Approved: score ≥ cutoff_score, i.e. logit(PD) ≤ the cutoff's. The grid edge sits this far above the
# cutoff's logit so that a scorecard's whole-point score equal to the cutoff is approved whatever the
# last bits of its float64 logit (the points' own rounding error is ~1e-14).
TIE = 1e-9
_EPS = 1e-7   # PDs clipped as `ScoreHistogram.from_scores` clips them (logit within ±LOGIT_LIMIT)


def _num(value: float) -> str:
    """A cut point as a band label writes it: 25 for 25.0, 2.5 as is."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:g}"


def band_labels(cuts: Sequence[float]) -> tuple[str, ...]:
    """Band names for cut points c1 < … < ck: "<c1", "[c1, c2)", …, ">=ck"."""
    c = [_num(v) for v in cuts]
    return (f"<{c[0]}", *(f"[{a}, {b})" for a, b in pairwise(c)), f">={c[-1]}")


@schema_dataclass(frozen=True, config=STRICT)
class FairnessSettings:
    """The [fairness] table (see the module docstring): `cutoff_score` in points, `reference` per
    protected column, `groups`: cut points (numeric) or code lists (categorical) per protected column."""

    cutoff_score: Number | None = rule("must be a score in points on the [scorecard] scale (approved at or above "
                                       "it)", None)
    reference: dict[str, Any] = rule("must map protected columns to their reference group (a group name, a code "
                                     "or a value)", default_factory=dict)
    groups: dict[str, Any] = rule("must map protected columns to cut points ([25, 40, 62]) or to a table of code "
                                  "lists ({male = [\"A91\"], female = [\"A92\"]})", default_factory=dict)

    @model_validator(mode="after")
    def _groups_are_cut_points_or_code_lists(self) -> FairnessSettings:
        for col, spec in self.groups.items():
            if isinstance(spec, list):
                if not spec or not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                                       for v in spec):
                    raise Rule(f"'{col}': cut points must be a non-empty list of numbers (got {spec!r})", "groups")
                if any(b <= a for a, b in pairwise(spec)):
                    raise Rule(f"'{col}': cut points must rise strictly (got {spec!r})", "groups")
            elif isinstance(spec, dict):
                if not spec:
                    raise Rule(f"'{col}': a table of groups needs at least one group", "groups")
                seen: dict[str, str] = {}
                for name, codes in spec.items():
                    if name in (MISSING_GROUP, OTHER_GROUP):
                        raise Rule(f"'{col}': the group name '{name}' is reserved (rows with a missing value, and "
                                   "codes in no list); choose another", "groups")
                    if not isinstance(codes, list) or not codes or not all(map(is_code, codes)):
                        raise Rule(f"'{col}': group '{name}' must list its codes (got {codes!r})", "groups")
                    for code in map(category_text, codes):
                        if code in seen:
                            raise Rule(f"'{col}': code '{code}' is in groups '{seen[code]}' and '{name}'", "groups")
                        seen[code] = name
            else:
                raise Rule(f"'{col}': give cut points (a list of numbers) or a table of code lists (got {spec!r})",
                           "groups")
        for col, value in self.reference.items():
            if not is_code(value):
                raise Rule(f"'{col}': the reference must be a group name, a code or a number (got {value!r})",
                           "reference")
        return self

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], *, source: str) -> FairnessSettings:
        return validated(cls, raw, locate=source)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def numeric(self) -> tuple[str, ...]:
        """The protected columns read as numbers: those with cut points."""
        return tuple(col for col, spec in self.groups.items() if isinstance(spec, list))

    def column_groups(self, spec: DatasetSpec) -> tuple[ColumnGroups, ...]:
        """How each of `spec.protected`'s rows fall into groups, in the spec's order."""
        out = []
        for col in spec.protected:
            rules = self.groups.get(col)
            if isinstance(rules, list):
                cuts = tuple(float(v) for v in rules)
                out.append(ColumnGroups(col, cuts=cuts, names=(*band_labels(cuts), MISSING_GROUP)))
            elif isinstance(rules, dict):
                mapping = {category_text(code): str(name) for name, codes in rules.items() for code in codes}
                out.append(ColumnGroups(col, mapping=mapping, names=(*map(str, rules), OTHER_GROUP, MISSING_GROUP)))
            elif col in spec.levels:
                out.append(ColumnGroups(col, levels=tuple(spec.levels[col]),
                                        names=(*spec.levels[col], OTHER_GROUP, MISSING_GROUP)))
            else:
                out.append(ColumnGroups(col))
        return tuple(out)


@dataclass(frozen=True)
class ColumnGroups:
    """One protected column's groups: numeric bands (`cuts`), a code → group `mapping`, declared `levels`,
    or (none of them) each code its own group. `names`: the public list of groups (None: the codes the
    rows hold)."""

    column: str
    cuts: tuple[float, ...] = ()
    mapping: Mapping[str, str] | None = None
    levels: tuple[str, ...] | None = None
    names: tuple[str, ...] | None = None

    @property
    def numeric(self) -> bool:
        return bool(self.cuts)

    def assign(self, values: pd.Series) -> np.ndarray:
        """The group of each row (object array of names); `values` typed as `prepare_table` reads them
        (float64 with NaN for a numeric column, text with NaN for a categorical one)."""
        if self.numeric:
            x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
            labels = np.array([*band_labels(self.cuts), MISSING_GROUP], dtype=object)
            idx = np.where(np.isnan(x), len(self.cuts) + 1, np.searchsorted(self.cuts, np.nan_to_num(x), side="right"))
            return labels[idx]
        out = np.empty(len(values), dtype=object)
        for i, v in enumerate(values.tolist()):
            out[i] = MISSING_GROUP if v is None or (isinstance(v, float) and math.isnan(v)) else self.group_of(v)
        return out

    def group_of(self, value: Any) -> str:
        """The group a (non-missing) value falls in."""
        if self.numeric:
            number = float(value)
            return band_labels(self.cuts)[int(np.searchsorted(self.cuts, number, side="right"))]
        code = category_text(value)
        if self.mapping is not None:
            return self.mapping.get(code, OTHER_GROUP)
        if self.levels is not None:
            return code if code in self.levels else OTHER_GROUP
        return code

    def reference_group(self, value: Any) -> str | None:
        """The group a `[fairness] reference` value names: a group name, else the group of the value
        (None: no group of the public list, or not a value of a numeric column)."""
        text = category_text(value)
        if self.names is not None and text in self.names and text not in (OTHER_GROUP, MISSING_GROUP):
            return text
        if self.numeric:
            return self.group_of(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        group = self.group_of(value)
        if self.names is not None and (group == OTHER_GROUP or group not in self.names):
            return None
        return group


def fairness_grid(cutoff_logit: float, base: np.ndarray = PRIVATE_SCORE_EDGES) -> tuple[np.ndarray, float]:
    """(the logit grid of a fairness release, its cutoff edge): `base` (the coarse score grid of a private
    evaluation) with the cutoff's logit (+ `TIE`, inside the grid's ends) as one more edge."""
    cut = float(np.clip(cutoff_logit + TIE, base[0] + 1e-6, base[-1] - 1e-6))
    return np.unique(np.concatenate([np.asarray(base, dtype=np.float64), [cut]])), cut


def clipped_logit(p_bad: np.ndarray) -> np.ndarray:
    """logit(PD) with PD clipped to [1e-7, 1 − 1e-7] and the logit to ±LOGIT_LIMIT (as `ScoreHistogram`)."""
    p = np.clip(np.asarray(p_bad, dtype=np.float64), _EPS, 1 - _EPS)
    return np.clip(np.log(p) - np.log1p(-p), -LOGIT_LIMIT, LOGIT_LIMIT)


@dataclass
class GroupCells:
    """One group's held-out rows: bad and good counts per bin of the grid; `sums` (exact releases only):
    Σ logit ("score"), Σ logit² ("score_sq") and Σ PD ("pd") over the group's rows."""

    bad: np.ndarray
    good: np.ndarray
    sums: dict[str, float] | None = None

    def __add__(self, other: GroupCells) -> GroupCells:
        sums = None if self.sums is None or other.sums is None else {
            k: self.sums[k] + other.sums[k] for k in self.sums}
        return GroupCells(self.bad + other.bad, self.good + other.good, sums)


@dataclass
class GroupScores:
    """A fairness release: per protected column and group, the held-out rows' counts by label on the
    logit grid `edges` (whose edge `cutoff` separates approved rows, below it, from declined ones).
    `noise_sd`: the standard deviation of the noise on each count (0: exact)."""

    edges: np.ndarray
    cutoff: float
    columns: dict[str, dict[str, GroupCells]] = field(default_factory=dict)
    noise_sd: float = 0.0

    @property
    def private(self) -> bool:
        return any(c.sums is None for groups in self.columns.values() for c in groups.values())

    @property
    def approved_bins(self) -> int:
        """How many bins, from the lowest logit, lie below the cutoff (approved)."""
        return int(np.searchsorted(self.edges, self.cutoff))

    @classmethod
    def from_scores(cls, y_true: np.ndarray, p_bad: np.ndarray, groups: Mapping[str, np.ndarray],
                    names: Mapping[str, Sequence[str] | None], *, edges: np.ndarray, cutoff: float) -> GroupScores:
        """Exact counts and sums of rows with labels `y_true` (1 = bad) and scores `p_bad`; `groups[col]`
        gives each row's group; every name of `names[col]` is released (zero rows included), and, without a
        public list (None), the groups the rows hold. Rows with a non-finite score are left out."""
        y = np.asarray(y_true, dtype=np.int64)
        raw = np.asarray(p_bad, dtype=np.float64)
        finite = np.isfinite(raw)
        p = np.clip(raw, _EPS, 1 - _EPS)
        logit = clipped_logit(raw)
        out = cls(np.asarray(edges, dtype=np.float64), float(cutoff))
        for col, group in groups.items():
            group = np.asarray(group, dtype=object)
            listed = names.get(col)
            order = list(listed) if listed is not None else sorted({str(g) for g in group[finite]})
            cells = {}
            for name in order:
                rows = finite & (group == name)
                x = logit[rows]
                cells[name] = GroupCells(
                    bad=np.histogram(x[y[rows] == 1], bins=out.edges)[0].astype(np.float64),
                    good=np.histogram(x[y[rows] == 0], bins=out.edges)[0].astype(np.float64),
                    sums={"score": float(x.sum()), "score_sq": float((x * x).sum()), "pd": float(p[rows].sum())})
            out.columns[col] = cells
        return out

    def __add__(self, other: GroupScores) -> GroupScores:
        if len(self.edges) != len(other.edges) or not np.allclose(self.edges, other.edges) \
                or self.cutoff != other.cutoff:
            raise ValueError("fairness releases on different grids cannot be added")
        out = GroupScores(self.edges, self.cutoff, noise_sd=float(np.hypot(self.noise_sd, other.noise_sd)))
        for col in dict.fromkeys([*self.columns, *other.columns]):
            mine, theirs = self.columns.get(col, {}), other.columns.get(col, {})
            merged = {}
            for name in dict.fromkeys([*mine, *theirs]):
                a, b = mine.get(name), theirs.get(name)
                merged[name] = a + b if a is not None and b is not None else (a or b)
            out.columns[col] = merged
        return out

    @staticmethod
    def combine(parts: Sequence[GroupScores]) -> GroupScores | None:
        parts = list(parts)
        return sum(parts[1:], parts[0]) if parts else None

    def to_dict(self) -> dict[str, Any]:
        return {"edges": self.edges.tolist(), "cutoff": self.cutoff, "noise_sd": self.noise_sd,
                "columns": {col: {name: {"bad": c.bad.tolist(), "good": c.good.tolist(),
                                         **({"sums": dict(c.sums)} if c.sums is not None else {})}
                                  for name, c in groups.items()} for col, groups in self.columns.items()}}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> GroupScores:
        return cls(np.asarray(raw["edges"], dtype=np.float64), float(raw["cutoff"]),
                   {col: {name: GroupCells(np.asarray(c["bad"], dtype=np.float64),
                                           np.asarray(c["good"], dtype=np.float64),
                                           {k: float(v) for k, v in c["sums"].items()} if c.get("sums") else None)
                          for name, c in groups.items()} for col, groups in raw["columns"].items()},
                   float(raw.get("noise_sd", 0.0)))


@dataclass(frozen=True)
class FairnessTask:
    """What a partner needs for its fairness release: the groups and the cutoff's logit (the coordinator
    turns `cutoff_score` into it with the run's points scale)."""

    settings: FairnessSettings
    cutoff_logit: float

    def to_dict(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "cutoff_logit": self.cutoff_logit}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> FairnessTask:
        return cls(FairnessSettings.from_dict(raw["settings"], source="task config [fairness]"),
                   float(raw["cutoff_logit"]))

    def release(self, spec: DatasetSpec, y_true: np.ndarray, p_bad: np.ndarray,
                protected: pd.DataFrame) -> GroupScores:
        """The exact release of held-out rows (labels, scores, their protected columns as read)."""
        columns = self.settings.column_groups(spec)
        groups = {c.column: c.assign(protected[c.column]) for c in columns}
        edges, cut = fairness_grid(self.cutoff_logit)
        return GroupScores.from_scores(y_true, p_bad, groups, {c.column: c.names for c in columns},
                                       edges=edges, cutoff=cut)
