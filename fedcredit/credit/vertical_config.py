"""Vertical scenarios (`[federation] partitioning = "vertical"`): each party's own column contract
(the keys of its [[partners]] entry) and the checks across parties, run once when the scenario is read.

A party's columns are read by the same rules as a horizontal [dataset] table (`DatasetTable`): the
label holder's `DatasetSpec` has its label and `bad`; a passive party's has `label == ""`. Every
problem is ONE InputError naming the file, the partner, the field and what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from fedcredit.credit.errors import InputError
from fedcredit.credit.schema import DatasetSpec, DatasetTable
from fedcredit.credit.validation import validated

# A party's column keys in its [[partners]] entry: the meaning of the [dataset] keys of the same name.
COLUMN_KEYS = ("label", "bad", "numeric", "categorical", "drop", "log", "levels", "missing")
PARTY_KEYS = ("id", *COLUMN_KEYS)
VERTICAL_MODELS = ("logistic",)
_PASSIVE = "\x00passive"   # stands in for the label while a passive party's columns pass the [dataset] rules
_NOT_VERTICAL = "is not available for vertical runs"


def party_spec(columns: Mapping[str, Any], *, at: str) -> DatasetSpec:
    """A party's column keys (those given) → its DatasetSpec, checked by the [dataset] rules;
    `label` "" for a party without the label. InputError names `at` and the field."""
    raw = {k: v for k, v in columns.items() if v is not None}
    label = raw.pop("label", None)
    if label is None and "bad" in raw:
        raise InputError("is set but this party holds no label: give `label` beside it (label holder only), "
                         "or remove `bad`", source=at, field="bad")
    raw.setdefault("numeric", ())
    spec = validated(DatasetTable, {**raw, "label": label if label is not None else _PASSIVE}, locate=at).spec()
    return spec if label is not None else replace(spec, label="")


def spec_from_dict(raw: Mapping[str, Any], *, source: str = "partner spec") -> DatasetSpec:
    """`DatasetSpec.from_dict`, also for a passive party's spec (label "")."""
    if raw.get("label") != "":
        return DatasetSpec.from_dict(raw, source=source)
    return replace(DatasetSpec.from_dict({**raw, "label": _PASSIVE}, source=source), label="")


def refuse_party_keys(entries: Sequence[Any], where: str) -> None:
    """A horizontal scenario's partners share [dataset]: a party's own column keys make no sense there."""
    for entry in entries:
        for key in PARTY_KEYS:
            if getattr(entry, key, None) is not None:
                raise InputError(f"'{key}' declares a party's own columns, which only a vertical scenario has; "
                                 "here every partner's columns are [dataset]'s: remove it, or set [federation] "
                                 "partitioning = \"vertical\"", source=f"{where} partner '{entry.name}'", field=key)


def check_vertical(file: Any, partners: Sequence[Any], where: str) -> DatasetSpec:
    """Check a vertical scenario (its `ScenarioFile` and built partners) as a whole; returns the joint
    spec of the joined rows (the label holder's label and `bad`, every party's features in roster order,
    `log` None unless every party lists its own) for the centralised yardstick."""
    _refuse_horizontal_only(file, partners, where)
    if len(partners) < 2:
        raise InputError("a vertical federation needs at least two parties (a label holder and one more): add "
                         "a [[partners]] entry, or use partitioning = \"horizontal\"", source=where,
                         field="partitioning")
    for p in partners:
        at = f"{where} partner '{p.name}'"
        if p.id is None:
            raise InputError("missing: the column this party's customers are aligned on (e.g. id = "
                             "\"customer_id\"; it never leaves in the clear)", source=at, field="id")
        if p.spec is None:
            raise InputError("declares no columns: list this party's features in numeric and/or categorical",
                             source=at, field="numeric")
        used = {"label": (p.spec.label,), "numeric": p.spec.numeric, "categorical": p.spec.categorical,
                "drop": p.spec.drop}
        for key, cols in used.items():
            if p.id in cols:
                listed, fix = (("the label", "choose another column as the label") if key == "label" else
                               (f"listed in {key}", f"remove it from {key}"))
                raise InputError(f"the id column '{p.id}' is also {listed}: the key is only for aligning customers "
                                 f"and never a model input; {fix}", source=at, field=key)
    holders = [p for p in partners if p.spec.label]
    if not holders:
        raise InputError("no party holds the label: give exactly one party (the lender) `label = \"...\"` "
                         "(and `bad`, the bad code, default 1) in its [[partners]] entry", source=where,
                         field="label")
    if len(holders) > 1:
        names = " and ".join(f"'{p.name}'" for p in holders)
        raise InputError(f"parties {names} both give a label: exactly one party (the label holder) may; remove "
                         "`label` (and `bad`) from the others", source=f"{where} partner '{holders[1].name}'",
                         field="label")
    holder = holders[0]
    owner: dict[str, str] = {}
    for p in partners:
        for col in p.spec.features:
            if col == holder.spec.label and p is not holder:
                raise InputError(f"'{col}' is the label column, held by '{holder.name}': only the label holder "
                                 "may hold it; remove it from this party's features", source=f"{where} partner "
                                 f"'{p.name}'", field="numeric" if col in p.spec.numeric else "categorical")
            if col in owner:
                raise InputError(f"column '{col}' is a feature of both '{owner[col]}' and '{p.name}': each "
                                 "feature belongs to one party; remove it from one of them (or rename it)",
                                 source=f"{where} partner '{p.name}'",
                                 field="numeric" if col in p.spec.numeric else "categorical")
            owner[col] = p.name
    return _joint_spec(holder.spec, [p.spec for p in partners])


def _refuse_horizontal_only(file: Any, partners: Sequence[Any], where: str) -> None:
    given = file.model_fields_set
    if file.dataset is not None:
        raise InputError("is for horizontal scenarios: in a vertical one each party declares its own "
                         "columns (id, label, numeric, categorical, ...) in its [[partners]] entry; move them "
                         "there and remove [dataset]", source=f"{where} [dataset]")
    fed = file.federation
    if fed.model not in VERTICAL_MODELS:
        raise InputError(f"model '{fed.model}' {_NOT_VERTICAL} yet: use {list(VERTICAL_MODELS)}",
                         source=f"{where} [federation]", field="model")
    if fed.secure_aggregation:
        raise InputError(f"secure aggregation (SecAgg+) {_NOT_VERTICAL}: the parties' cross products are computed "
                         "by their own secure protocol; remove secure_aggregation", source=f"{where} [federation]",
                         field="secure_aggregation")
    if fed.fraction_train < 1:
        raise InputError(f"fraction_train < 1 {_NOT_VERTICAL}: every party holds columns the model needs; use "
                         "fraction_train = 1 (or leave it out)", source=f"{where} [federation]",
                         field="fraction_train")
    for p in partners:
        if p.privacy.mode == "client":
            raise InputError(f"partner-level DP (mode 'client') {_NOT_VERTICAL}: use mode 'sample' (record-level "
                             "DP, charged to each party's ledger) or 'off'", source=f"{where} partner '{p.name}'",
                             field="mode")
    for table, what in (("fairness", "fair-lending checks are"), ("scorecard", "scorecard settings are"),
                        ("gbdt", "tree settings are")):
        if table in given:
            raise InputError(f"{what} not available for vertical runs yet: remove the [{table}] table",
                             source=f"{where} [{table}]")


def _joint_spec(holder: DatasetSpec, specs: Sequence[DatasetSpec]) -> DatasetSpec:
    logs = [s.log for s in specs]
    return DatasetSpec(
        label=holder.label, bad=holder.bad,
        numeric=tuple(c for s in specs for c in s.numeric),
        categorical=tuple(c for s in specs for c in s.categorical),
        missing={k: v for s in specs for k, v in s.missing.items()},
        log=None if any(log is None for log in logs) else tuple(c for log in logs for c in log or ()),
        levels={k: v for s in specs for k, v in s.levels.items()})
