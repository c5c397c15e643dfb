from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomli_w

from fedcredit.credit.errors import InputError
from fedcredit.credit.scenario import Partner, load_partner_file, load_scenario
from tests.conftest import SPEC


def _scenario(tmp_path: Path, **tables) -> Path:
    raw = {"dataset": SPEC, "partners": [{"name": "a", "kind": "bank", "data": "a.csv"}],
           "federation": {"rounds": 5, "model": "logistic"}}
    raw.update(tables)
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def test_contract_keys_and_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario(tmp_path))
    assert scenario.dataset.label == "bad_flag" and scenario.dataset.bad == 1
    assert scenario.dataset.missing == {"late": (96, 98)}
    assert scenario.partners[0].data == (tmp_path / "a.csv").resolve()
    assert scenario.federation.rounds == 5 and scenario.federation.strategy == "fedavg"
    assert scenario.min_available_nodes == 1
    assert scenario.with_federation(rounds=2).federation.rounds == 2


@pytest.mark.parametrize("tables, expected", [
    ({"federation": {"model": "forest"}}, r"field 'model': unknown model"),
    ({"federation": {"rounds": 0}}, r"field 'rounds'"),
    ({"federation": {"strategy": "fedsgd"}}, r"field 'strategy'"),
    ({"federation": {"learning_rat": 0.1}}, r"unknown key\(s\) \['learning_rat'\]"),
    ({"partners": [{"name": "a", "kind": "bank", "data": "a.csv"}, {"name": "a", "kind": "bank", "data": "b.csv"}]},
     r"partner 'a': field 'name': appears twice"),
    ({"partners": [{"name": "a", "kind": "broker", "data": "a.csv"}]}, r"field 'kind'"),
    ({"partners": []}, r"at least one \[\[partners\]\]"),
    ({"dataset": {**SPEC, "numeric": ["age", "bad_flag"]}}, r"both in label and numeric"),
    ({"dataset": {**SPEC, "missing": {"nope": [1]}}}, r"field 'missing'"),
    ({"extra": {}}, r"unknown table\(s\) \['extra'\]"),
])
def test_bad_scenarios_name_the_field(tmp_path: Path, tables: dict, expected: str) -> None:
    path = _scenario(tmp_path, **tables)
    with pytest.raises(InputError, match=expected) as err:
        load_scenario(path)
    assert str(path) in str(err.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="scenario file not found"):
        load_scenario(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[dataset\nlabel=")
    with pytest.raises(InputError, match="not valid TOML"):
        load_scenario(bad)


def test_partner_csv_keys_are_parsed_and_round_trip(tmp_path: Path) -> None:
    partners = [{"name": "a", "kind": "bank", "data": "a.csv", "sep": ";", "decimal": ","},
                {"name": "b", "kind": "bank", "data": "b.csv", "sep": "\t"},
                {"name": "c", "kind": "bank", "data": "c.csv"}]
    scenario = load_scenario(_scenario(tmp_path, partners=partners))
    a, b, c = scenario.partners
    assert (a.sep, a.decimal, b.sep, b.decimal, c.sep, c.decimal) == (";", ",", "\t", None, None, None)
    assert [Partner.from_dict(p.to_dict()) for p in scenario.partners] == list(scenario.partners)
    assert scenario.to_dict()["partners"][0]["sep"] == ";"
    old = {k: v for k, v in a.to_dict().items() if k not in ("sep", "decimal")}  # a dict from before the keys
    assert (Partner.from_dict(old).sep, Partner.from_dict(old).decimal) == (None, None)


@pytest.mark.parametrize("entry, expected", [
    ({"sep": "x"}, re.escape("""partner 'a': field 'sep': must be one of ",", ";", "\\t", "|" (got 'x')""")),
    ({"sep": ",,"}, r"field 'sep'"),
    ({"decimal": ";"}, r"field 'decimal': must be one of \".\", \",\""),
    ({"decimal": 1}, r"field 'decimal'"),
])
def test_bad_partner_csv_keys_are_refused(tmp_path: Path, entry: dict, expected: str) -> None:
    path = _scenario(tmp_path, partners=[{"name": "a", "kind": "bank", "data": "a.csv", **entry}])
    with pytest.raises(InputError, match=expected):
        load_scenario(path)


def test_a_deployed_partner_file_takes_the_csv_keys(tmp_path: Path) -> None:
    path = tmp_path / "partner.toml"
    path.write_text(tomli_w.dumps({"partner": {"name": "a", "kind": "bank", "data": "a.csv", "sep": "|",
                                               "decimal": ","}}))
    partner = load_partner_file(path)
    assert (partner.sep, partner.decimal) == ("|", ",")


@pytest.mark.parametrize("dataset, expected", [
    ({"bad": "Y"}, None),
    ({"bad": ""}, r"field 'bad': must be a number or a non-empty string"),
    ({"bad": True}, r"field 'bad'"),
    ({"missing": {"late": ["96", 98.0, "n.a."]}}, None),
    ({"missing": {"late": [True]}}, r"field 'missing': codes for 'late' must be numbers or strings"),
    ({"missing": {"late": [[96]]}}, r"field 'missing'"),
    ({"levels": {"housing": ["own", {"x": 1}]}}, r"field 'levels'"),
])
def test_dataset_codes_are_numbers_or_strings(tmp_path: Path, dataset: dict, expected: str | None) -> None:
    path = _scenario(tmp_path, dataset={**SPEC, **dataset})
    if expected is None:
        assert load_scenario(path).dataset.to_dict()[next(iter(dataset))] == next(iter(dataset.values()))
    else:
        with pytest.raises(InputError, match=expected):
            load_scenario(path)
