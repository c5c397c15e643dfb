"""The deployment's files and the run config: each field, given a value of the wrong kind, gets one
InputError naming the file, the table, the field and the field's rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomli_w

from fedcredit.credit.errors import InputError
from fedcredit.credit.validation import rule_of, schema_fields
from fedcredit.deployment.config import read_coordinator_settings, read_node_settings
from fedcredit.deployment.schemas import CoordinatorTable, NodeTable
from fedcredit.server.app import RunSettings


@pytest.mark.parametrize("name", list(schema_fields(CoordinatorTable)))
def test_coordinator_table(tmp_path: Path, name: str) -> None:
    path = tmp_path / "coordinator.toml"
    path.write_text(tomli_w.dumps({"coordinator": {name: {"x": 1}}}))
    with pytest.raises(InputError) as err:
        read_coordinator_settings(path)
    assert str(err.value).startswith(f"{path} [coordinator]: field '{name}': {rule_of(CoordinatorTable, name)}")


@pytest.mark.parametrize("name", list(schema_fields(NodeTable)))
def test_node_table(tmp_path: Path, name: str) -> None:
    path = tmp_path / "partner.toml"
    node: dict[str, Any] = {"superlink": "127.0.0.1:9092", name: {"x": 1}}
    path.write_text(tomli_w.dumps({"partner": {"name": "bank-a", "kind": "bank", "data": "a.csv"}, "node": node}))
    with pytest.raises(InputError) as err:
        read_node_settings(path)
    assert str(err.value).startswith(f"{path} [node]: field '{name}': {rule_of(NodeTable, name)}")


@pytest.mark.parametrize("name", list(schema_fields(RunSettings)))
def test_run_config(name: str) -> None:
    with pytest.raises(InputError) as err:
        RunSettings.from_run_config({name: {"x": 1}} if name != "registered-nodes" else {name: "{not json"})
    assert str(err.value).startswith(f"run config: field '{name}': {rule_of(RunSettings, name)}")


def test_ports_may_be_written_as_digits_and_hosts_are_normalised(tmp_path: Path) -> None:
    path = tmp_path / "coordinator.toml"
    path.write_text(tomli_w.dumps({"coordinator": {"port": "8000", "address": " [::1] "}}))
    s = read_coordinator_settings(path)
    assert (s.port, s.control_port, s.address, s.public_address) == (8000, 8001, "::1", "[::1]:8000")
