"""Deployment configs (coordinator scenario + [coordinator], partner.toml + [node]): validated
once, with errors naming the file and field; the Flower command lines built from them; the
refusals that happen before any process starts (ports in use, bad certificates)."""

from __future__ import annotations

import socket
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w

from fedcredit.cli.main import main
from fedcredit.credit.errors import InputError
from fedcredit.deployment import PROJECT_DIR
from fedcredit.deployment import config as conf
from fedcredit.deployment import flower as fl
from fedcredit.deployment import processes as procs
from fedcredit.deployment import superlink as sl
from fedcredit.deployment import supernode as sn
from fedcredit.protection import tls
from tests.conftest import make_partner_frame, write_scenario
from tests.processes import free_port

NAMES = ("bank-a", "insurer-b")


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedcredit: error: "), err
    return lines[0]


def edit(path: Path, change) -> Path:
    data = tomllib.loads(path.read_text())
    change(data)
    path.write_text(tomli_w.dumps(data))
    return path


@pytest.fixture
def coordinator(tmp_path: Path, app_signing) -> Path:
    """coordinator/scenario.toml with [coordinator], certs/ and keys/<partner>.pub; partners' private keys in tmp."""
    folder = tmp_path / "coordinator"
    frames = {n: make_partner_frame(60, i) for i, n in enumerate(NAMES)}
    (folder / "keys").mkdir(parents=True)
    for name in NAMES:
        tls.new_node_key(tmp_path / f"{name}.key")
        (folder / "keys" / f"{name}.pub").write_bytes((tmp_path / f"{name}.key.pub").read_bytes())
    path = write_scenario(folder, frames, partner_fields={n: {"public_key": f"keys/{n}.pub"} for n in NAMES})
    tls.make_certificates(folder / "certs")
    return edit(path, lambda s: s.update(coordinator={
        "address": "127.0.0.1", "port": 9092, "ca_cert": "certs/ca.crt", "server_cert": "certs/server.crt",
        "server_key": "certs/server.key", "federation": "consortium",
        "app_signature": str(app_signing[1])}))


@pytest.fixture
def partner(tmp_path: Path, coordinator: Path, app_signing) -> Path:
    folder = tmp_path / "bank-a"
    folder.mkdir()
    make_partner_frame(60, 1).to_csv(folder / "bank-a.csv", index=False)
    (folder / "ca.crt").write_bytes((coordinator.parent / "certs" / "ca.crt").read_bytes())
    path = folder / "partner.toml"
    path.write_text(tomli_w.dumps({
        "partner": {"name": "bank-a", "kind": "bank", "data": "bank-a.csv"},
        "node": {"superlink": "127.0.0.1:9092", "port": 9094, "root_certificates": "ca.crt",
                 "auth_key": "../bank-a.key", "trusted_app_keys": [str(app_signing[0])]}}))
    return path


# ---- coordinator ------------------------------------------------------------------------------


def test_coordinator_config_is_resolved(coordinator: Path) -> None:
    cfg = conf.load_coordinator(coordinator)
    s = cfg.settings
    folder = coordinator.parent
    assert (s.address, s.port, s.federation, s.insecure) == ("127.0.0.1", 9092, "consortium", False)
    assert (s.ca_cert, s.server_cert, s.server_key) == (folder / "certs/ca.crt", folder / "certs/server.crt",
                                                        folder / "certs/server.key")
    assert s.flwr_home == folder / "flwr-home" and s.public_address == "127.0.0.1:9092"
    assert s.control_port == 9093 and s.control_address == "127.0.0.1:9093"     # the SuperLink: loopback only
    assert cfg.public_keys == {n: (folder / "keys" / f"{n}.pub",) for n in NAMES}
    assert [p.name for p in cfg.scenario.partners] == list(NAMES)
    assert not cfg.insecure


def test_defaults_and_bind_all(coordinator: Path) -> None:
    edit(coordinator, lambda s: s["coordinator"].update(address="0.0.0.0") or
         [s["coordinator"].pop(k) for k in ("port", "federation")])
    s = conf.load_coordinator(coordinator).settings
    assert (s.port, s.federation) == (conf.DEFAULT_PORT, conf.DEFAULT_FEDERATION)
    assert s.public_address == "0.0.0.0:9092"           # the Fleet gateway, for the partners
    assert s.control_address == "127.0.0.1:9093"      # the SuperLink: the CLI, Flower's SuperExec, the gateway
    edit(coordinator, lambda s: s["coordinator"].update(port=8000, control_port=7000))
    assert conf.load_coordinator(coordinator).settings.control_address == "127.0.0.1:7000"


@pytest.mark.parametrize("change, field, words", [
    (lambda c: c.pop("ca_cert"), "ca_cert", "missing"),
    (lambda c: c.update(server_key="certs/nope.key"), "server_key", "not found"),
    (lambda c: c.update(port="ninety"), "port", "port number"),
    (lambda c: c.update(port=70000), "port", "port number"),
    (lambda c: c.update(control_port=0), "control_port", "port number"),
    (lambda c: c.update(control_port=9092), "control_port", "must differ from port"),
    (lambda c: c.update(port=65535), "port", "set control_port"),
    (lambda c: c.update(address="https://coord:9092"), "address", "without scheme or port"),
    (lambda c: c.update(federation="my federation"), "federation", "letters, digits"),
    (lambda c: c.update(insecure="yes"), "insecure", "true or false"),
    (lambda c: c.update(insecure=True), "insecure", "pass --insecure"),
])
def test_coordinator_field_errors(coordinator: Path, change, field: str, words: str) -> None:
    edit(coordinator, lambda s: change(s["coordinator"]))
    with pytest.raises(InputError, match=words) as err:
        conf.load_coordinator(coordinator)
    assert err.value.field == field and str(coordinator) in str(err.value)


def test_coordinator_unknown_key(coordinator: Path) -> None:
    edit(coordinator, lambda s: s["coordinator"].update(ssl_cert="x"))
    with pytest.raises(InputError, match=r"unknown key\(s\) \['ssl_cert'\]"):
        conf.load_coordinator(coordinator)


def test_partner_public_keys(coordinator: Path) -> None:
    edit(coordinator, lambda s: s["partners"][1].pop("public_key"))
    with pytest.raises(InputError, match="insurer-b.*'public_key': missing"):
        conf.load_coordinator(coordinator)
    edit(coordinator, lambda s: s["partners"][1].update(public_key="keys/bank-a.pub"))
    with pytest.raises(InputError, match="same key as partner 'bank-a'"):
        conf.load_coordinator(coordinator)
    edit(coordinator, lambda s: s["partners"][1].update(public_key="certs/ca.crt"))
    with pytest.raises(InputError, match="not an OpenSSH public key"):
        conf.load_coordinator(coordinator)


def test_insecure_needs_no_certificates(coordinator: Path) -> None:
    edit(coordinator, lambda s: [s["coordinator"].pop(k) for k in ("ca_cert", "server_cert", "server_key")])
    with pytest.raises(InputError, match="ca_cert.*missing"):
        conf.load_coordinator(coordinator)
    cfg = conf.load_coordinator(coordinator, insecure=True)
    assert cfg.insecure and cfg.public_keys == {}
    cmd = sl.superlink_command(cfg)
    assert "--insecure" in cmd and "--enable-supernode-auth" not in cmd


def test_scenario_errors_still_come_from_the_scenario_loader(coordinator: Path) -> None:
    edit(coordinator, lambda s: s["partners"][0].update(kind="bakery"))
    with pytest.raises(InputError, match="partner 'bank-a'.*'kind'"):
        conf.load_coordinator(coordinator)


def test_expired_or_mismatched_server_certificate(coordinator: Path) -> None:
    folder = coordinator.parent
    tls.make_certificates(folder / "old", days=1, now=datetime.now(UTC) - timedelta(days=5))
    tls.make_certificates(folder / "other")
    edit(coordinator, lambda s: s["coordinator"].update(server_cert="old/server.crt", server_key="old/server.key",
                                                        ca_cert="old/ca.crt"))
    with pytest.raises(InputError, match="expired") as err:
        conf.load_coordinator(coordinator)
    assert err.value.field == "server_cert"
    edit(coordinator, lambda s: s["coordinator"].update(server_cert="other/server.crt",
                                                        server_key="other/server.key", ca_cert="certs/ca.crt"))
    with pytest.raises(InputError, match="not issued by the CA"):
        conf.load_coordinator(coordinator)
    # A certificate that does not name the address Flower's SuperExec dials would fail at run time.
    tls.make_certificates(folder / "named", ["DNS:coord.example.org"])
    edit(coordinator, lambda s: s["coordinator"].update(server_cert="named/server.crt",
                                                        server_key="named/server.key", ca_cert="named/ca.crt"))
    with pytest.raises(InputError, match="not '127.0.0.1'"):
        conf.load_coordinator(coordinator)


def test_flower_command_lines(coordinator: Path, tmp_path: Path) -> None:
    cfg = conf.load_coordinator(coordinator)
    s = cfg.settings
    assert sl.superlink_command(cfg) == [
        str(fl.BIN_DIR / "flower-superlink"), "--ssl-ca-certfile", str(s.ca_cert), "--ssl-certfile",
        str(s.server_cert), "--ssl-keyfile", str(s.server_key), "--enable-supernode-auth",
        "--disable-runtime-dependency-installation", "--host", "127.0.0.1", "--port", "9093"]
    out = tmp_path / "my run"
    cmd = sl.run_command(cfg, out, rounds=2)
    assert cmd[:5] == [str(fl.BIN_DIR / "flwr"), "run", str(PROJECT_DIR), "consortium", "--stream"]
    assert (PROJECT_DIR / "pyproject.toml").is_file() and (PROJECT_DIR / "fedcredit" / "server").is_dir()
    signature = cfg.app_signature
    assert cmd[5:] == ["--run-config", f'scenario="{coordinator}" deployment=true out-dir="{out}" rounds=2 '
                                       f"app-signature='{signature}'"]
    # Flower's own parser reads it back whole (spaces in paths, the signature's JSON included).
    from flwr.common.config import parse_config_args

    assert parse_config_args([cmd[6]]) == {"scenario": str(coordinator), "deployment": True,
                                           "out-dir": str(out), "rounds": 2, "app-signature": signature}
    env = fl.flower_env(s.flwr_home)
    assert env["FLWR_HOME"] == str(s.flwr_home) and env["PATH"].startswith(str(fl.BIN_DIR))
    assert env["FLWR_TELEMETRY_ENABLED"] == "0" and env["FLWR_DISABLE_UPDATE_CHECK"] == "1"
    assert env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] == "1"


def test_federation_entry_keeps_other_entries(coordinator: Path) -> None:
    cfg = conf.load_coordinator(coordinator)
    home = cfg.settings.flwr_home
    home.mkdir()
    (home / "config.toml").write_text('[superlink]\ndefault = "local"\n[superlink.local]\naddress = ":local:"\n')
    sl.write_federation(cfg.settings, insecure=False)
    data = tomllib.loads((home / "config.toml").read_text())
    assert data["superlink"]["local"] == {"address": ":local:"} and data["superlink"]["default"] == "local"
    assert data["superlink"]["consortium"] == {"address": "127.0.0.1:9093",
                                               "root-certificates": str(cfg.settings.ca_cert)}
    assert sl.federation_written(cfg.settings)
    sl.write_federation(cfg.settings, insecure=True)
    assert tomllib.loads((home / "config.toml").read_text())["superlink"]["consortium"] == \
        {"address": "127.0.0.1:9093", "insecure": True}


# ---- partner ----------------------------------------------------------------------------------


def test_partner_config_is_resolved(partner: Path, tmp_path: Path) -> None:
    node = conf.load_node(partner)
    s = node.settings
    assert node.partner.name == "bank-a" and node.partner.data == partner.parent / "bank-a.csv"
    assert (s.superlink, s.port, s.insecure) == ("127.0.0.1:9092", 9094, False)
    assert s.root_certificates == partner.parent / "ca.crt" and s.auth_key == tmp_path / "bank-a.key"
    assert s.flwr_home == partner.parent / "flwr-home-bank-a"
    cmd = sn.supernode_command(node)
    assert cmd == [str(fl.BIN_DIR / "python"), "-m", "fedcredit.clients.supernode_launcher", "--superlink", "127.0.0.1:9092", "--port", "9094",
                   "--root-certificates", str(s.root_certificates), "--auth-supernode-private-key", str(s.auth_key),
                   "--node-config", f'partner-config="{partner}"']
    from flwr.common.config import parse_config_args

    assert parse_config_args([cmd[-1]]) == {"partner-config": str(partner)}


@pytest.mark.parametrize("change, field, words", [
    (lambda n: n.pop("superlink"), "superlink", "missing"),
    (lambda n: n.update(superlink="127.0.0.1"), "superlink", "host:port"),
    (lambda n: n.update(superlink="https://coord:9092"), "superlink", "without scheme"),
    (lambda n: n.update(port="9094x"), "port", "port number"),
    (lambda n: n.pop("auth_key"), "auth_key", "missing"),
    (lambda n: n.update(auth_key="nope.key"), "auth_key", "not found"),
    (lambda n: n.update(root_certificates="nope.crt"), "root_certificates", "not found"),
    (lambda n: n.update(root_certificates="bank-a.csv"), "root_certificates", "not a PEM certificate"),
    (lambda n: n.update(insecure=True), "insecure", "pass --insecure"),
])
def test_partner_field_errors(partner: Path, change, field: str, words: str) -> None:
    edit(partner, lambda p: change(p["node"]))
    with pytest.raises(InputError, match=words) as err:
        conf.load_node(partner)
    assert err.value.field == field and str(partner) in str(err.value)


def test_partner_table_errors_come_from_load_partner_file(partner: Path) -> None:
    edit(partner, lambda p: p["partner"].pop("kind"))
    with pytest.raises(InputError, match=r"\[partner\].*'kind'|partner 'bank-a'.*'kind'"):
        conf.load_node(partner)
    edit(partner, lambda p: p["partner"].update(kind="bank") or p.pop("node"))
    with pytest.raises(InputError, match=r"missing the \[node\] table"):
        conf.load_node(partner)


def test_partner_key_must_be_private(partner: Path, tmp_path: Path) -> None:
    (tmp_path / "bank-a.key").chmod(0o644)
    with pytest.raises(InputError, match="chmod 600") as err:
        conf.load_node(partner)
    assert err.value.field == "auth_key"


def test_a_refused_key_is_explained_also_after_a_rotation(partner: Path, tmp_path: Path) -> None:
    from fedcredit.protection.node_keys import commit_rotation, start_rotation

    refused = "[code: 2004] Failed to activate SuperNode."
    key = tmp_path / "bank-a.key"
    message = sn._supernode_failure(refused, conf.load_node(partner))
    assert "its key is not registered" in message and f"send {key}.pub" in message
    assert "fedcredit server register" in message
    start_rotation(key)
    commit_rotation(key)
    message = sn._supernode_failure(refused, conf.load_node(partner))
    assert f"{key} is the new key of a rotation (the previous one is now {key}.old)" in message
    edit(partner, lambda p: p["node"].update(auth_key="../bank-a.key.old"))
    message = sn._supernode_failure(refused, conf.load_node(partner))
    assert f"auth_key {key}.old is the key retired by `fedcredit node-key rotate --commit`" in message
    assert f"set auth_key to {key}" in message


def test_partner_insecure(partner: Path) -> None:
    edit(partner, lambda p: [p["node"].pop(k) for k in ("auth_key", "root_certificates")])
    with pytest.raises(InputError, match="root_certificates.*missing"):
        conf.load_node(partner)
    node = conf.load_node(partner, insecure=True)
    cmd = sn.supernode_command(node)
    assert "--insecure" in cmd and "--auth-supernode-private-key" not in cmd


# ---- refusals before a start ------------------------------------------------------------------


def test_port_in_use_is_refused() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(procs.DeploymentError, match=f"port {port} on 127.0.0.1 is not available") as err:
            procs.check_port_free("127.0.0.1", port, source="x.toml [node]", field="port")
        assert err.value.field == "port"
    procs.check_port_free("127.0.0.1", free_port(), source="x", field="port")


def test_cli_refuses_busy_ports_without_starting_anything(coordinator: Path, partner: Path, capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        edit(coordinator, lambda s: s["coordinator"].update(port=port))
        edit(partner, lambda p: p["node"].update(port=port))
        assert main(["server", "start", "--config", str(coordinator), "--detach"]) == 2
        assert f"port {port} on 127.0.0.1 is not available" in one_line_error(capsys.readouterr().err)
        assert main(["partner", "start", "--config", str(partner), "--detach"]) == 2
        assert f"port {port} on 127.0.0.1 is not available" in one_line_error(capsys.readouterr().err)
        edit(coordinator, lambda s: s["coordinator"].update(port=free_port(), control_port=port))
        assert main(["server", "start", "--config", str(coordinator), "--detach"]) == 2
        error = one_line_error(capsys.readouterr().err)
        assert "field 'control_port'" in error and f"port {port} on 127.0.0.1 is not available" in error
    assert not conf.read_coordinator_settings(coordinator).pid_file.exists()
    assert not conf.read_node_settings(partner).pid_file.exists()
    assert not conf.read_coordinator_settings(coordinator).log_file.exists()     # nothing was started


def test_cli_config_errors_are_one_line(coordinator: Path, partner: Path, capsys) -> None:
    folder = coordinator.parent
    tls.make_certificates(folder / "old", days=1, now=datetime.now(UTC) - timedelta(days=5))
    edit(coordinator, lambda s: s["coordinator"].update(server_cert="old/server.crt", server_key="old/server.key",
                                                        ca_cert="old/ca.crt"))
    assert main(["server", "start", "--config", str(coordinator)]) == 2
    assert "expired" in one_line_error(capsys.readouterr().err)
    edit(partner, lambda p: p["node"].pop("superlink"))
    assert main(["partner", "start", "--config", str(partner)]) == 2
    assert "'superlink': missing" in one_line_error(capsys.readouterr().err)
    assert main(["partner", "start", "--config", str(partner.parent / "nope.toml")]) == 2
    assert "not found" in one_line_error(capsys.readouterr().err)
    edit(coordinator, lambda s: s["coordinator"].update(insecure=True))
    assert main(["server", "start", "--config", str(coordinator)]) == 2
    assert "pass --insecure" in one_line_error(capsys.readouterr().err)


def test_stop_and_status_without_a_running_process(coordinator: Path, partner: Path, capsys) -> None:
    assert main(["server", "stop", "--config", str(coordinator)]) == 0
    assert "no SuperLink running" in capsys.readouterr().out
    assert main(["partner", "stop", "--config", str(partner)]) == 0
    assert "no SuperNode running for 'bank-a'" in capsys.readouterr().out
    assert main(["server", "status", "--config", str(coordinator)]) == 1
    assert "not running" in capsys.readouterr().out
    # A stale PID file (its process is gone) is cleaned up, never used to signal a recycled PID.
    settings = conf.read_coordinator_settings(coordinator)
    settings.state_dir.mkdir(parents=True)
    settings.pid_file.write_text('{"pid": 1, "create_time": 0.0, "argv": [], "log": ""}')
    assert main(["server", "stop", "--config", str(coordinator)]) == 0
    assert "no SuperLink running" in capsys.readouterr().out and not settings.pid_file.exists()


def test_run_needs_a_started_superlink(coordinator: Path, capsys) -> None:
    assert main(["run", "--config", str(coordinator)]) == 2
    assert "start the SuperLink first" in one_line_error(capsys.readouterr().err)
    cfg = conf.load_coordinator(coordinator)
    edit(coordinator, lambda s: s["coordinator"].update(port=free_port()))
    cfg = conf.load_coordinator(coordinator)
    sl.write_federation(cfg.settings, insecure=False)
    assert main(["run", "--config", str(coordinator)]) == 2
    assert "does not answer" in one_line_error(capsys.readouterr().err)


def test_partner_data_and_vault_key_are_checked_before_a_start(partner: Path, monkeypatch) -> None:
    edit(partner, lambda p: p["partner"].update(data="missing.csv"))
    with pytest.raises(InputError, match="missing.csv does not exist") as err:
        conf.load_node(partner)
    assert err.value.field == "data"
    edit(partner, lambda p: p["partner"].update(data="bank-a.csv", key="env:FEDCREDIT_TEST_BANK_KEY"))
    monkeypatch.delenv("FEDCREDIT_TEST_BANK_KEY", raising=False)
    with pytest.raises(InputError, match="FEDCREDIT_TEST_BANK_KEY.*not set") as err:
        conf.load_node(partner)
    assert err.value.field == "key"
    monkeypatch.setenv("FEDCREDIT_TEST_BANK_KEY", "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=")
    assert conf.load_node(partner).partner.key == "env:FEDCREDIT_TEST_BANK_KEY"
