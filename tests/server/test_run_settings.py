"""The ServerApp's run config, validated once: the deployment keys `fedcredit run` adds."""

from __future__ import annotations

import pytest

from fedcredit.credit.errors import InputError
from fedcredit.server.app import RunSettings


def test_registered_nodes_map_node_ids_to_partner_names() -> None:
    s = RunSettings.from_run_config({"deployment": True, "registered-nodes": '{"bank-a": "123", "bank-b": 45}',
                                     "app-signature": '{"fab_sha256": "x"}'})
    assert s.registered_nodes == {123: "bank-a", 45: "bank-b"} and s.deployment
    assert RunSettings.from_run_config({"registered-nodes": ""}).registered_nodes == {}


def test_a_partner_rotating_its_key_has_two_node_ids() -> None:
    s = RunSettings.from_run_config({"registered-nodes": '{"bank-a": ["123", "124"], "bank-b": ["45"]}'})
    assert s.registered_nodes == {123: "bank-a", 124: "bank-a", 45: "bank-b"}


@pytest.mark.parametrize("bad", ["[1, 2]", "{not json", '{"bank-a": "node-1"}', '{"bank-a": [true]}',
                                 '{"bank-a": ["1"], "bank-b": [1]}', '{"bank-a": {"1": 2}}'])
def test_malformed_registered_nodes_are_refused(bad: str) -> None:
    with pytest.raises(InputError, match="registered-nodes"):
        RunSettings.from_run_config({"registered-nodes": bad})


def test_unknown_keys_are_still_refused() -> None:
    with pytest.raises(InputError, match="unknown run-config key"):
        RunSettings.from_run_config({"app-signatur": "x"})
