from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from credit.errors import InputError
from credit.scenario import load_scenario
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
