"""fedcredit.protection.tls: the consortium CA, the SuperLink certificate, SuperNode keys, and the checks
that refuse expired, mismatched or unreadable files before anything starts."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from fedcredit.cli.main import main
from fedcredit.credit.errors import InputError
from fedcredit.protection import tls


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def verify(ca: Path, leaf: Path, name: x509.GeneralName, when: datetime | None = None) -> None:
    """Full path validation as a TLS client does it (chain, validity, EKU, SAN)."""
    verifier = (PolicyBuilder().store(Store([load(ca)])).time(when or datetime.now(UTC))
                .build_server_verifier(name))
    verifier.verify(load(leaf), [])


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedcredit: error: "), err
    return lines[0]


@pytest.fixture
def certs(tmp_path: Path) -> tls.CertificateFiles:
    return tls.make_certificates(tmp_path / "certs")


def test_certificates_chain_names_usage_and_permissions(certs: tls.CertificateFiles) -> None:
    assert {mode(certs.ca_key), mode(certs.server_key)} == {0o600}
    assert {mode(certs.ca_cert), mode(certs.server_cert)} == {0o644}
    verify(certs.ca_cert, certs.server_cert, x509.DNSName("localhost"))
    verify(certs.ca_cert, certs.server_cert, x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    with pytest.raises(VerificationError):
        verify(certs.ca_cert, certs.server_cert, x509.DNSName("coordinator.example.org"))

    server, ca = load(certs.server_cert), load(certs.ca_cert)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert list(server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(server.public_key(), ec.EllipticCurvePublicKey)
    lifetime = server.not_valid_after_utc - server.not_valid_before_utc
    assert timedelta(days=365) <= lifetime <= timedelta(days=365, minutes=10)
    assert ca.not_valid_after_utc > server.not_valid_after_utc
    # The key on disk is the certificate's key, and the checks used before a start agree.
    tls.check_server_files(certs.ca_cert, certs.server_cert, certs.server_key, source="t", host="127.0.0.1")


def test_custom_names_and_lifetime(tmp_path: Path) -> None:
    files = tls.make_certificates(tmp_path / "c", ["DNS:coordinator.example.org", "IP:10.0.0.5", "IP:127.0.0.1"],
                                  days=30)
    assert files.sans == ("DNS:coordinator.example.org", "IP:10.0.0.5", "IP:127.0.0.1")
    verify(files.ca_cert, files.server_cert, x509.DNSName("coordinator.example.org"))
    verify(files.ca_cert, files.server_cert, x509.IPAddress(ipaddress.ip_address("10.0.0.5")))
    with pytest.raises(VerificationError):
        verify(files.ca_cert, files.server_cert, x509.DNSName("localhost"))
    with pytest.raises(VerificationError):   # past its 30 days
        verify(files.ca_cert, files.server_cert, x509.DNSName("coordinator.example.org"),
               when=datetime.now(UTC) + timedelta(days=31))
    assert tls.covers_host(load(files.server_cert), "coordinator.example.org")
    assert not tls.covers_host(load(files.server_cert), "localhost")


@pytest.mark.parametrize("spec", ["localhost", "URI:x", "IP:999.1.1.1", "DNS:", "DNS:a b"])
def test_bad_subject_alternative_names_are_refused(tmp_path: Path, spec: str) -> None:
    with pytest.raises(InputError, match="--san"):
        tls.make_certificates(tmp_path / "c", [spec])
    assert not (tmp_path / "c").exists()


def test_never_overwrites(certs: tls.CertificateFiles, tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in (certs.ca_cert, certs.ca_key, certs.server_cert, certs.server_key)}
    with pytest.raises(tls.TlsFileError, match="never overwritten"):
        tls.make_certificates(certs.ca_cert.parent)
    assert {p: p.read_bytes() for p in before} == before
    # One of the four present is enough to refuse, and then nothing is written.
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / tls.SERVER_KEY).write_text("old")
    with pytest.raises(tls.TlsFileError, match="server.key"):
        tls.make_certificates(partial)
    assert sorted(p.name for p in partial.iterdir()) == [tls.SERVER_KEY]
    # A folder holding other files is fine.
    other = tmp_path / "other"
    other.mkdir()
    (other / "README").write_text("x")
    tls.make_certificates(other)
    assert {p.name for p in other.iterdir()} == {"README", *tls.CERT_FILES}


def test_node_key_pair_is_what_flower_reads(tmp_path: Path) -> None:
    from flwr.cli.supernode.register import try_load_public_key
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes

    files = tls.new_node_key(tmp_path / "node.key", comment="bank-a")
    assert files.public_key == tmp_path / "node.key.pub"
    assert mode(files.private_key) == 0o600 and mode(files.public_key) == 0o644
    assert files.private_key.read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    private = serialization.load_ssh_private_key(files.private_key.read_bytes(), None)
    assert isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp384r1"
    line = files.public_key.read_text().strip()
    assert line.startswith("ecdsa-sha2-nistp384 ") and line.endswith(" bank-a")
    # Flower's own loader (`flwr supernode register`) accepts the .pub, and it is the private key's pair.
    assert try_load_public_key(files.public_key) == public_key_to_bytes(private.public_key())
    assert tls.check_node_private_key(files.private_key).public_numbers() == private.public_key().public_numbers()
    assert tls.check_node_public_key(files.public_key) == line.rsplit(" ", 1)[0]


def test_node_key_never_overwrites(tmp_path: Path) -> None:
    tls.new_node_key(tmp_path / "a.key")
    before = (tmp_path / "a.key").read_bytes()
    with pytest.raises(tls.TlsFileError, match="never overwritten"):
        tls.new_node_key(tmp_path / "a.key")
    assert (tmp_path / "a.key").read_bytes() == before
    (tmp_path / "b.key.pub").write_text("old")     # a stray .pub blocks the pair, nothing written
    with pytest.raises(tls.TlsFileError):
        tls.new_node_key(tmp_path / "b.key")
    assert not (tmp_path / "b.key").exists()
    with pytest.raises(InputError, match="folder does not exist"):
        tls.new_node_key(tmp_path / "missing" / "c.key")


def test_expired_and_not_yet_valid_certificates_are_refused(tmp_path: Path) -> None:
    old = tls.make_certificates(tmp_path / "old", days=1, ca_days=3650,
                                now=datetime.now(UTC) - timedelta(days=10))
    with pytest.raises(tls.TlsFileError, match="server certificate .* expired on") as err:
        tls.check_server_files(old.ca_cert, old.server_cert, old.server_key, source="coord.toml")
    assert err.value.field == "server_cert"
    future = tls.make_certificates(tmp_path / "future", now=datetime.now(UTC) + timedelta(days=2))
    with pytest.raises(tls.TlsFileError, match="not valid before"):
        tls.check_server_files(future.ca_cert, future.server_cert, future.server_key, source="coord.toml")
    with pytest.raises(tls.TlsFileError, match="not valid before"):
        tls.check_ca_file(future.ca_cert)
    assert tls.check_ca_file(old.ca_cert)   # the CA itself is still valid


def test_mismatched_files_are_refused(tmp_path: Path) -> None:
    a = tls.make_certificates(tmp_path / "a")
    b = tls.make_certificates(tmp_path / "b")
    with pytest.raises(tls.TlsFileError, match="was not issued by the CA") as err:
        tls.check_server_files(a.ca_cert, b.server_cert, b.server_key, source="s")
    assert err.value.field == "server_cert"
    with pytest.raises(tls.TlsFileError, match="does not belong to the certificate") as err:
        tls.check_server_files(a.ca_cert, a.server_cert, b.server_key, source="s")
    assert err.value.field == "server_key"
    with pytest.raises(tls.TlsFileError, match="not a CA certificate"):
        tls.check_server_files(a.server_cert, a.server_cert, a.server_key, source="s")
    with pytest.raises(tls.TlsFileError, match="is for .*not 'coordinator.example.org'"):
        tls.check_server_files(a.ca_cert, a.server_cert, a.server_key, source="s", host="coordinator.example.org")
    with pytest.raises(tls.TlsFileError, match="not found"):
        tls.check_server_files(tmp_path / "nope.crt", a.server_cert, a.server_key, source="s")
    with pytest.raises(tls.TlsFileError, match="not a PEM certificate"):
        tls.check_server_files(a.ca_key, a.server_cert, a.server_key, source="s")
    a.server_key.chmod(0o640)
    with pytest.raises(tls.TlsFileError, match="chmod 600"):
        tls.check_server_files(a.ca_cert, a.server_cert, a.server_key, source="s")


def test_node_key_checks(tmp_path: Path, certs: tls.CertificateFiles) -> None:
    with pytest.raises(tls.TlsFileError, match="not an unencrypted OpenSSH private key"):
        tls.check_node_private_key(certs.server_key)          # PEM/PKCS8, not OpenSSH
    (tmp_path / "x.pub").write_text("ssh-rsa nonsense\n")
    with pytest.raises(tls.TlsFileError, match="not an OpenSSH public key line"):
        tls.check_node_public_key(tmp_path / "x.pub")
    files = tls.new_node_key(tmp_path / "n.key")
    files.private_key.chmod(0o644)
    with pytest.raises(tls.TlsFileError, match="chmod 600"):
        tls.check_node_private_key(files.private_key)
    with pytest.raises(tls.TlsFileError, match="not found"):
        tls.check_node_public_key(tmp_path / "missing.pub")


def test_cli_certs_and_node_key(tmp_path: Path, capsys) -> None:
    out = tmp_path / "certs"
    assert main(["certs", "--out", str(out), "--san", "DNS:coord.example.org", "--san", "IP:127.0.0.1",
                 "--days", "90"]) == 0
    text = capsys.readouterr().out
    assert "DNS:coord.example.org, IP:127.0.0.1" in text and "keep it offline" in text
    verify(out / "ca.crt", out / "server.crt", x509.DNSName("coord.example.org"))
    assert main(["certs", "--out", str(out)]) == 2
    assert "never overwritten" in one_line_error(capsys.readouterr().err)
    assert main(["certs", "--out", str(tmp_path / "x"), "--days", "0"]) == 2
    assert "--days" in one_line_error(capsys.readouterr().err)

    key = tmp_path / "bank.key"
    assert main(["node-key", "new", str(key), "--comment", "bank"]) == 0
    assert "bank.key.pub" in capsys.readouterr().out and mode(key) == 0o600
    assert main(["node-key", "new", str(key)]) == 2
    assert "never overwritten" in one_line_error(capsys.readouterr().err)
