"""Every field of every config schema, given a value of the wrong kind, gets ONE InputError that
names the file, the table, the field and the field's rule (issue 10: error quality kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

from fedcredit.credit.errors import InputError
from fedcredit.credit.scenario import FederationSettings, PartnerEntry, PrivacyPolicy, load_partner_file, load_scenario
from fedcredit.credit.schema import DatasetTable
from fedcredit.credit.validation import rule_of, schema_fields
from tests.conftest import SPEC

PARTNER = {"name": "a", "kind": "bank", "data": "a.csv"}


def wrong(schema: type, name: str) -> Any:
    """A value no field would take: a table where a value is due, a list where a table is."""
    return [1] if "dict" in str(schema_fields(schema)[name].annotation) else {"x": 1}


def _fields(schema: type, *, skip: tuple[str, ...] = ()) -> list[tuple[type, str]]:
    return [(schema, name) for name in schema_fields(schema) if name not in skip]


def _refused(path: Path, load, table: str, field: str, rule: str) -> None:
    with pytest.raises(InputError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(f"{path} {table}: field '{field}': "), message
    assert rule in message and err.value.field == field, message


# `public_key` is read by the deployment (tests/deployment/test_schemas.py); `bad` takes any code.
@pytest.mark.parametrize("schema, name", [*_fields(FederationSettings), *_fields(PrivacyPolicy),
                                          *_fields(DatasetTable, skip=("bad",)),
                                          *_fields(PartnerEntry, skip=("public_key",))])
def test_a_wrong_value_names_file_table_field_and_rule(tmp_path: Path, schema: type, name: str) -> None:
    raw: dict[str, Any] = {"dataset": dict(SPEC), "partners": [dict(PARTNER)]}
    value = wrong(schema, name)
    if schema is FederationSettings:
        raw["federation"], table = {name: value}, "[federation]"
    elif schema is PrivacyPolicy:
        raw["privacy"], table = {name: value}, "[privacy]"
    elif schema is DatasetTable:
        raw["dataset"][name], table = value, "[dataset]"
    else:
        raw["partners"][0][name] = value
        table = "partner 'a'" if name != "name" else "[[partners]] #1"
    path = tmp_path / "scenario.toml"
    path.write_text(tomli_w.dumps(raw))
    _refused(path, load_scenario, table, name, rule_of(schema, name))


@pytest.mark.parametrize("schema, name", [*_fields(PrivacyPolicy), *_fields(PartnerEntry, skip=("public_key",))])
def test_a_partner_file_names_file_table_field_and_rule(tmp_path: Path, schema: type, name: str) -> None:
    raw: dict[str, Any] = {"partner": dict(PARTNER)}
    if schema is PrivacyPolicy:
        raw["privacy"], table = {name: wrong(schema, name)}, "[privacy]"
    else:
        raw["partner"][name] = wrong(schema, name)
        table = "partner 'a'" if name != "name" else "[partner]"
    path = tmp_path / "partner.toml"
    path.write_text(tomli_w.dumps(raw))
    _refused(path, load_partner_file, table, name, rule_of(schema, name))


def test_unknown_keys_are_named_together_with_the_allowed_ones(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps({"dataset": SPEC, "partners": [PARTNER], "federation": {"roundz": 3, "lr": 1}}))
    with pytest.raises(InputError, match=r"\[federation\]: unknown key\(s\) \['lr', 'roundz'\]; allowed: \["):
        load_scenario(path)


def test_a_check_across_fields_blames_one_field(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps({"dataset": SPEC, "partners": [PARTNER],
                                   "privacy": {"epsilon": 1.0, "run_epsilon": 2.0}}))
    with pytest.raises(InputError, match=r"\[privacy\]: field 'run_epsilon': the per-run cap .* \(got 2.0\)"):
        load_scenario(path)


def test_a_list_entry_that_is_not_a_table(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('partners = [3]\n[dataset]\nlabel = "y"\nnumeric = ["x"]\n')
    with pytest.raises(InputError, match=r"s.toml \[\[partners\]\] #1: must be a table \(got 3\)"):
        load_scenario(path)
