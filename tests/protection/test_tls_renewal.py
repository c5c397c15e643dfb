"""Renewing the server certificate from the existing CA: a new key and certificate under the old
names (the config is unchanged), the old pair kept as backups, nothing touched on a refusal."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fedcredit.cli.main import main
from fedcredit.credit.errors import InputError
from fedcredit.protection import tls
from fedcredit.protection.tls_renewal import renew_server_certificate

SANS = ["DNS:coord.example.org", "IP:203.0.113.10", "IP:127.0.0.1"]


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    tls.make_certificates(tmp_path / "certs", SANS)
    return tmp_path / "certs"


def test_renewal_replaces_the_pair_in_place_and_keeps_the_old_one(certs: Path) -> None:
    old = files(certs)
    old_cert = tls.load_certificate(certs / "server.crt")
    new = renew_server_certificate(certs / "ca.crt", certs / "ca.key", certs / "server.crt", certs / "server.key",
                                   days=30)
    cert = tls.check_server_files(certs / "ca.crt", certs / "server.crt", certs / "server.key", source="test",
                                  host="127.0.0.1")
    assert cert.serial_number == new.serial != old_cert.serial_number
    assert tls.certificate_names(cert) == tls.certificate_names(old_cert) == list(new.sans)
    assert 29 <= (new.not_after - datetime.now(UTC)).days <= 30
    assert (certs / "ca.crt").read_bytes() == old["ca.crt"]                     # partners' trust is unchanged
    assert new.backup_cert.read_bytes() == old["server.crt"] and new.backup_key.read_bytes() == old["server.key"]
    assert (certs / "server.key").read_bytes() != old["server.key"]              # a new key, not just a new date
    assert stat.S_IMODE((certs / "server.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(new.backup_key.stat().st_mode) == 0o600
    assert stat.S_IMODE((certs / "server.crt").stat().st_mode) == 0o644
    assert not [p for p in certs.iterdir() if p.name.startswith(".")]            # no temp file left
    again = renew_server_certificate(certs / "ca.crt", certs / "ca.key", certs / "server.crt", certs / "server.key",
                                     sans=["DNS:localhost", "IP:127.0.0.1"],
                                     now=datetime.now(UTC) + timedelta(seconds=2))
    assert again.sans == ("DNS:localhost", "IP:127.0.0.1") and again.backup_cert != new.backup_cert


def test_a_wrong_ca_key_or_a_too_long_life_changes_nothing(certs: Path, tmp_path: Path) -> None:
    tls.make_certificates(tmp_path / "other")
    before = files(certs)
    with pytest.raises(InputError, match="not the private key of the CA certificate") as err:
        renew_server_certificate(certs / "ca.crt", tmp_path / "other" / "ca.key", certs / "server.crt",
                                 certs / "server.key")
    assert err.value.source == "--ca-key"
    with pytest.raises(InputError, match=r"expires on .*give --days \d+ or less"):
        renew_server_certificate(certs / "ca.crt", certs / "ca.key", certs / "server.crt", certs / "server.key",
                                 days=4000)
    with pytest.raises(InputError, match="CA private key not found"):
        renew_server_certificate(certs / "ca.crt", tmp_path / "nope.key", certs / "server.crt", certs / "server.key")
    assert files(certs) == before


def test_cli_renew_and_its_one_line_errors(certs: Path, capsys) -> None:
    config = certs.parent / "coordinator.toml"
    config.write_text('[coordinator]\nca_cert = "certs/ca.crt"\nserver_cert = "certs/server.crt"\n'
                      'server_key = "certs/server.key"\n')
    assert main(["certs", "renew", "--config", str(config), "--ca-key", str(certs / "nope.key")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["certs"]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert main(["certs", "renew", "--config", str(config), "--ca-key", str(certs / "ca.key")]) == 0
    out = capsys.readouterr().out
    assert "renewed" in out and "kept the old pair" in out and "fedcredit server reload-cert --config" in out
    assert main(["server", "reload-cert", "--config", str(config)]) == 2          # nothing runs to reload
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no Fleet gateway runs" in err
