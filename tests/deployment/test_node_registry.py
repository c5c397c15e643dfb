"""fedcredit.deployment.node_registry without processes: the registry format (and the old one), which keys a
config may list (several during a rotation, never a retired one), the node ids a run admits per
partner, and the refusals of `server register` / `unregister` that need no SuperLink."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fedcredit.cli.main import main
from fedcredit.credit.errors import InputError
from fedcredit.deployment import config as conf
from fedcredit.deployment import superlink as sl
from fedcredit.deployment.node_registry import NodeRegistry, Registration
from fedcredit.protection import tls
from fedcredit.protection.node_keys import file_fingerprint
from fedcredit.server.app import RunSettings
from tests.deployment.test_deployment_config import coordinator, edit, one_line_error  # noqa: F401 (fixture)
from tests.processes import free_port


@pytest.fixture
def settings(coordinator: Path) -> conf.CoordinatorSettings:  # noqa: F811
    """The coordinator on a free port where nothing answers, with a registry: bank-a rotating (two keys),
    insurer-b with one, and a key of bank-a retired earlier."""
    edit(coordinator, lambda s: s["coordinator"].update(port=free_port()))
    s = conf.read_coordinator_settings(coordinator)
    keys = coordinator.parent / "keys"
    for name in ("bank-a.next", "bank-a.retired"):
        tls.new_node_key(keys / name)
    fp = {n: file_fingerprint(keys / f"{n}.pub") for n in ("bank-a", "bank-a.next", "bank-a.retired", "insurer-b")}
    s.state_dir.mkdir(parents=True)
    NodeRegistry(s.nodes_file, {
        "bank-a": [Registration("bank-a", "101", fp["bank-a"], str(keys / "bank-a.pub"), "2025-01-01T00:00:00+00:00"),
                   Registration("bank-a", "102", fp["bank-a.next"], str(keys / "bank-a.next.pub"), "2025-02-01")],
        "insurer-b": [Registration("insurer-b", "200", fp["insurer-b"], str(keys / "insurer-b.pub"), "2025-01-01")]},
        [Registration("bank-a", "99", fp["bank-a.retired"], str(keys / "bank-a.retired.pub"), "2024-01-01",
                      "2025-01-15T00:00:00+00:00")]).write()
    return s


def test_the_old_format_is_read_and_rewritten_in_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "registered-nodes.json"
    path.write_text('{"bank-a": "123", "bank-b": 45}')
    registry = NodeRegistry.read(path)
    assert registry.node_ids() == {"bank-a": ["123"], "bank-b": ["45"]} and registry.retired == []
    registry.write()
    raw = json.loads(path.read_text())
    assert raw["format"] == 2 and raw["partners"]["bank-b"] == [
        {"node_id": "45", "key": "", "public_key": "", "registered_at": ""}]
    assert NodeRegistry.read(path) == registry
    assert NodeRegistry.read(tmp_path / "none.json").node_ids() == {}


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"format": 7}', '{"bank-a": ["1"]}',
                                  '{"format": 2, "partners": {"a": [{"x": 1}]}}'])
def test_an_unreadable_registry_is_named_not_ignored(tmp_path: Path, text: str) -> None:
    path = tmp_path / "registered-nodes.json"
    path.write_text(text)
    with pytest.raises(InputError, match="is not a fedcredit node registry .*restore it from a backup") as err:
        NodeRegistry.read(path)
    assert str(path) in str(err.value)


def test_a_run_admits_every_registered_id_of_a_partner(settings: conf.CoordinatorSettings) -> None:
    from flwr.common.config import parse_config_args

    cfg = conf.load_coordinator(settings.source)
    assert sl.registered_nodes(settings) == {"bank-a": ["101", "102"], "insurer-b": ["200"]}
    run_config = parse_config_args([sl.run_command(cfg, Path("/tmp/out"))[6]])
    assert RunSettings.from_run_config(run_config).registered_nodes == {101: "bank-a", 102: "bank-a",
                                                                        200: "insurer-b"}


def test_a_config_lists_one_key_or_several_never_a_retired_one(settings: conf.CoordinatorSettings, capsys) -> None:
    config = settings.source
    edit(config, lambda s: s["partners"][0].update(public_key=["keys/bank-a.pub", "keys/bank-a.next.pub"]))
    keys = config.parent / "keys"
    assert conf.load_coordinator(config).public_keys == {"bank-a": (keys / "bank-a.pub", keys / "bank-a.next.pub"),
                                                      "insurer-b": (keys / "insurer-b.pub",)}
    edit(config, lambda s: s["partners"][0].update(public_key=["keys/bank-a.pub", "keys/bank-a.pub"]))
    with pytest.raises(InputError, match="same key as another entry"):
        conf.load_coordinator(config)
    for bad in ([], 7, ["keys/bank-a.pub", ""]):
        edit(config, lambda s: s["partners"][0].update(public_key=bad))
        with pytest.raises(InputError, match="or a list of paths while its key is rotated") as err:
            conf.load_coordinator(config)
        assert err.value.field == "public_key"
    # a key unregistered once is refused wherever the config is read: server start, run, register
    edit(config, lambda s: s["partners"][0].update(public_key=["keys/bank-a.pub", "keys/bank-a.retired.pub"]))
    with pytest.raises(InputError, match="was unregistered on 2025-01-15.*remove it from public_key") as err:
        conf.load_coordinator(config)
    assert err.value.field == "public_key" and "partner 'bank-a'" in str(err.value)
    for argv in (["server", "start"], ["run"]):
        assert main([*argv, "--config", str(config)]) == 2
        assert "bank-a.retired.pub" in one_line_error(capsys.readouterr().err)


@pytest.mark.parametrize("argv, words", [
    (["register", "bank-z", "keys/bank-a.next.pub"], "no partner 'bank-z' (partners: bank-a, insurer-b): add a "
                                                     "[[partners]] entry"),
    (["register", "bank-a", "certs/ca.crt"], "is not an OpenSSH public key line"),
    (["register", "bank-a", "keys/bank-a.retired.pub"], "was unregistered on 2025-01-15T00:00:00+00:00: a retired key "
                                                        "is never registered again"),
    (["register", "bank-a", "keys/insurer-b.pub"], "is registered for partner 'insurer-b' (node 200)"),
    (["register", "bank-a", "new.pub"], "the SuperLink does not answer on 127.0.0.1:"),
    (["unregister", "bank-z", "--node-id", "101"], "no key is registered for partner 'bank-z' (registered partners: "
                                                   "bank-a, insurer-b)"),
    (["unregister", "bank-a", "--key", "keys/insurer-b.pub"], "is not registered for partner 'bank-a'; its registered "
                                                              "keys: node 101 key SHA256:"),
    (["unregister", "bank-a", "--node-id", "200"], "node 200 is not registered for partner 'bank-a'"),
    (["unregister", "bank-a", "--node-id", "101"], "the SuperLink does not answer on 127.0.0.1:"),
])
def test_register_and_unregister_refusals_are_one_line(settings: conf.CoordinatorSettings, argv: list[str], words: str,
                                                       capsys, monkeypatch) -> None:
    folder = settings.source.parent
    monkeypatch.chdir(folder)
    tls.new_node_key(folder / "new")
    before = settings.nodes_file.read_bytes()
    assert main(["server", argv[0], "--config", str(settings.source), *argv[1:]]) == 2
    assert words in one_line_error(capsys.readouterr().err)
    assert settings.nodes_file.read_bytes() == before


def test_an_already_registered_key_is_not_registered_twice(settings: conf.CoordinatorSettings, capsys) -> None:
    keys = settings.source.parent / "keys"
    assert main(["server", "register", "--config", str(settings.source), "bank-a", str(keys / "bank-a.next.pub")]) == 0
    assert "already registered: partner 'bank-a' node 102 key SHA256:" in capsys.readouterr().out


def test_an_insecure_superlink_has_no_keys_to_register(settings: conf.CoordinatorSettings, capsys) -> None:
    edit(settings.source, lambda s: s["coordinator"].update(insecure=True))
    assert main(["server", "unregister", "--config", str(settings.source), "bank-a", "--node-id", "101"]) == 2
    assert "insecure = true: that SuperLink has no node authentication" in one_line_error(capsys.readouterr().err)


def test_a_server_start_keeps_the_retired_keys(settings: conf.CoordinatorSettings) -> None:
    """`server start` rewrites the registry from what it registered (here nothing: insecure), keeping every
    retired key, so that a later config listing one is still refused."""
    from fedcredit.deployment.node_registry import register_configured

    retired = NodeRegistry.read(settings.nodes_file).retired
    register_configured(conf.load_coordinator(settings.source, insecure=True), print)
    registry = NodeRegistry.read(settings.nodes_file)
    assert registry.node_ids() == {} and registry.retired == retired
