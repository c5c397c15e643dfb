"""TLS certificates for the SuperLink and SuperNode authentication keys, made with `cryptography`.

* `make_certificates(dir, sans, days)` writes a private CA (`ca.crt`, `ca.key`) and the
  SuperLink's server certificate (`server.crt`, `server.key`) signed by it: EC P-384 keys,
  the server certificate with the given subject alternative names and EKU serverAuth.
  Partners trust only `ca.crt`; `ca.key` should then go offline.
* `new_node_key(path)` writes a SuperNode authentication key pair in the format Flower 1.42
  reads: EC SECP384R1, private key as OpenSSH PEM (`path`, mode 0600), public key as one
  OpenSSH line (`path.pub`). The coordinator registers the `.pub`; the key never leaves the partner.
* `check_server_files(...)`, `check_ca_file(...)`, `check_node_private_key(...)` and
  `check_node_public_key(...)` validate these files before any process starts, so a wrong,
  expired or mismatched certificate is reported by us with the file's name, not by a TLS
  stack trace in a log.

Files are written as a temp file beside the target and then hard-linked into place, so a
reader never sees half a file and an existing file is never overwritten (the link fails);
private keys are created 0600 from the start.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from fedcredit.credit.atomic import atomic_write
from fedcredit.credit.errors import InputError

CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"
CERT_FILES = (CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY)
DEFAULT_SANS = ("DNS:localhost", "IP:127.0.0.1")
DEFAULT_DAYS = 365
DEFAULT_CA_DAYS = 3650
CURVE = ec.SECP384R1
_BACKDATE = timedelta(minutes=5)   # tolerate small clock differences between machines


class TlsFileError(InputError):
    """A certificate or key file is missing, unreadable, expired or does not fit."""


@dataclass(frozen=True)
class CertificateFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    sans: tuple[str, ...]
    not_after: datetime
    ca_not_after: datetime


# ---- writing -------------------------------------------------------------------------------------


def _write_new(path: Path, data: bytes, *, private: bool) -> None:
    """Write `data` to a new file `path` atomically; never overwrite (FileExistsError)."""
    atomic_write(path, lambda f: f.write(data), overwrite=False, mode=0o600 if private else 0o644)


def _write_all(files: Sequence[tuple[Path, bytes, bool]], *, what: str) -> None:
    """Write every file or none: refuse if any exists, undo partial writes on failure."""
    existing = [str(p) for p, _, _ in files if p.exists() or p.is_symlink()]
    if existing:
        raise TlsFileError(f"already exists; {what} are never overwritten: choose another place "
                           "(or delete the old files only if nothing still uses them)", source=", ".join(existing))
    written: list[Path] = []
    try:
        for path, data, private in files:
            try:
                _write_new(path, data, private=private)
            except FileExistsError:
                raise TlsFileError(f"appeared while writing; {what} are never overwritten", source=str(path)) from None
            except OSError as exc:
                raise TlsFileError(f"cannot be written: {exc.strerror}", source=str(path)) from exc
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def parse_san(spec: str) -> x509.GeneralName:
    """`DNS:name` or `IP:address` → an x509 GeneralName."""
    kind, sep, value = spec.partition(":")
    kind, value = kind.strip().upper(), value.strip()
    if not sep or not value or kind not in ("DNS", "IP"):
        raise InputError("write a subject alternative name as DNS:host.example.org or IP:192.0.2.10",
                         source=f"--san {spec}")
    if kind == "IP":
        try:
            return x509.IPAddress(ipaddress.ip_address(value))
        except ValueError:
            raise InputError(f"{value!r} is not an IP address", source=f"--san {spec}") from None
    label = value.rstrip(".")
    if not label or any(c.isspace() for c in label) or "/" in label or ":" in label:
        raise InputError(f"{value!r} is not a host name", source=f"--san {spec}")
    return x509.DNSName(label)


def _san_text(name: x509.GeneralName) -> str:
    return f"IP:{name.value}" if isinstance(name, x509.IPAddress) else f"DNS:{name.value}"


def issue_server_certificate(ca_key: ec.EllipticCurvePrivateKey, ca_name: x509.Name,
                              ca_ski: x509.SubjectKeyIdentifier, names: Sequence[x509.GeneralName], start: datetime,
                              days: int, common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh server key and its certificate signed by the CA: `names` as SANs, EKU serverAuth."""
    server_key = ec.generate_private_key(CURVE())
    server_cert = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedcredit"),
                                            x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(ca_name)
                   .public_key(server_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(start + _BACKDATE + timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                                key_encipherment=False, data_encipherment=False,
                                                key_agreement=True, key_cert_sign=False, crl_sign=False,
                                                encipher_only=False, decipher_only=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                                  critical=False)
                   .sign(ca_key, hashes.SHA384()))
    return server_key, server_cert


def make_certificates(out_dir: str | Path, sans: Iterable[str] = DEFAULT_SANS, *, days: int = DEFAULT_DAYS,
                      ca_days: int = DEFAULT_CA_DAYS, common_name: str = "fedcredit SuperLink",
                      now: datetime | None = None) -> CertificateFiles:
    """Write ca.crt, ca.key, server.crt, server.key into `out_dir` (created if needed).

    Refuses if any of the four files exists (nothing is written then). `now` is for tests
    (e.g. making an already-expired certificate)."""
    if not isinstance(days, int) or days < 1:
        raise InputError(f"must be a whole number of days ≥ 1 (got {days!r})", source="--days")
    if not isinstance(ca_days, int) or ca_days < days:
        raise InputError(f"the CA must outlive the server certificate: ≥ --days ({days}) (got {ca_days!r})",
                         source="--ca-days")
    names = [parse_san(s) for s in sans]
    if not names:
        raise InputError("give at least one --san (e.g. DNS:localhost)", source="--san")
    unique = list(dict.fromkeys(names))
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise TlsFileError("is not a folder", source=str(out))
    targets = [out / n for n in CERT_FILES]
    existing = [str(p) for p in targets if p.exists() or p.is_symlink()]
    if existing:
        raise TlsFileError("already exists; certificates and keys are never overwritten: choose another "
                           "--out folder", source=", ".join(existing))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TlsFileError(f"cannot be created: {exc.strerror}", source=str(out)) from exc

    start = (now or datetime.now(UTC)) - _BACKDATE
    ca_key = ec.generate_private_key(CURVE())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedcredit"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "fedcredit consortium CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (x509.CertificateBuilder()
               .subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + _BACKDATE + timedelta(days=ca_days))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=True, crl_sign=True, encipher_only=False,
                                            decipher_only=False), critical=True)
               .add_extension(ca_ski, critical=False)
               .sign(ca_key, hashes.SHA384()))

    server_key, server_cert = issue_server_certificate(ca_key, ca_name, ca_ski, unique, start, days, common_name)

    pem = serialization.Encoding.PEM
    _write_all([(targets[0], ca_cert.public_bytes(pem), False), (targets[1], _key_pem(ca_key), True),
                (targets[2], server_cert.public_bytes(pem), False), (targets[3], _key_pem(server_key), True)],
               what="certificates and keys")
    return CertificateFiles(*targets, tuple(_san_text(n) for n in unique), server_cert.not_valid_after_utc,
                            ca_cert.not_valid_after_utc)


@dataclass(frozen=True)
class NodeKeyFiles:
    private_key: Path
    public_key: Path
    public_line: str


def public_key_path(private_key: str | Path) -> Path:
    p = Path(private_key)
    return p.with_name(p.name + ".pub")


def write_key_pair(path: str | Path, key, *, comment: str, what: str) -> tuple[Path, Path, str]:
    """Write `key` as `path` (OpenSSH private key, 0600) and `path.pub` (one OpenSSH line, with
    `comment`); never overwrites either file. Returns (private path, public path, public line)."""
    path = Path(path).expanduser()
    if path.name.endswith(".pub"):
        raise InputError("name the private key file (the public key is written beside it as <PATH>.pub)",
                         source=str(path))
    if not path.parent.is_dir():
        raise InputError("the folder does not exist", source=str(path.parent))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode("ascii")
    if comment:
        line = f"{line} {comment}"
    pub = public_key_path(path)
    _write_all([(path, private, True), (pub, (line + "\n").encode("ascii"), False)], what=what)
    return path, pub, line


def new_node_key(path: str | Path, *, comment: str = "") -> NodeKeyFiles:
    """Write a SuperNode authentication key pair: `path` (OpenSSH private key, 0600) and
    `path.pub` (one OpenSSH public-key line). Never overwrites either file."""
    return NodeKeyFiles(*write_key_pair(path, ec.generate_private_key(CURVE()), comment=comment, what="node keys"))


# ---- checking ------------------------------------------------------------------------------------


def _read(path: Path, what: str, field: str | None, source: str | None) -> bytes:
    where = source or str(path)
    if not path.is_file():
        raise TlsFileError(f"{what} not found: {path}", source=where, field=field)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsFileError(f"{what} {path} cannot be read: {exc.strerror}", source=where, field=field) from exc


def _private_mode_ok(path: Path, what: str, field: str | None, source: str | None) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.name == "posix" and mode & 0o077:
        raise TlsFileError(f"other users can access the {what} {path} (mode {mode:o}): run `chmod 600 {path}`",
                           source=source or str(path), field=field)


def load_certificate(path: str | Path, *, what: str = "certificate", field: str | None = None,
                     source: str | None = None) -> x509.Certificate:
    path = Path(path)
    data = _read(path, what, field, source)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsFileError(f"{path} is not a PEM certificate", source=source or str(path), field=field) from None
    return certs[0]


def _check_dates(cert: x509.Certificate, path: Path, what: str, now: datetime, field: str | None,
                 source: str | None) -> None:
    if now < cert.not_valid_before_utc:
        raise TlsFileError(f"the {what} {path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
                           "(check the clock)", source=source or str(path), field=field)
    if now > cert.not_valid_after_utc:
        raise TlsFileError(f"the {what} {path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: make new "
                           "ones with `fedcredit certs`", source=source or str(path), field=field)


def check_ca_file(path: str | Path, *, field: str | None = None, source: str | None = None,
                  now: datetime | None = None) -> x509.Certificate:
    """A CA certificate that loads, is a CA and is valid now."""
    path = Path(path)
    now = now or datetime.now(UTC)
    ca = load_certificate(path, what="CA certificate", field=field, source=source)
    try:
        bc = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise TlsFileError(f"{path} is not a CA certificate (give the ca.crt made by `fedcredit certs`)",
                           source=source or str(path), field=field)
    _check_dates(ca, path, "CA certificate", now, field, source)
    return ca


def certificate_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [_san_text(n) for n in san if isinstance(n, (x509.DNSName, x509.IPAddress))]


def covers_host(cert: x509.Certificate, host: str) -> bool:
    """Whether the certificate's SANs name `host` (IP literal or DNS name, `*.` wildcards)."""
    names = certificate_names(cert)
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
        return f"IP:{ip}" in names
    except ValueError:
        pass
    host = host.lower().rstrip(".")
    for n in names:
        if not n.startswith("DNS:"):
            continue
        pattern = n[4:].lower()
        if pattern == host or (pattern.startswith("*.") and host.count(".") >= 2
                               and host.split(".", 1)[1] == pattern[2:]):
            return True
    return False


def check_server_files(ca_cert: str | Path, server_cert: str | Path, server_key: str | Path, *,
                       source: str, host: str | None = None, now: datetime | None = None) -> x509.Certificate:
    """Before starting the SuperLink: every file loads, both certificates are valid now, the
    server certificate was issued by the CA (signature verified), is meant for a server (EKU
    serverAuth), matches the key, and (if `host` is given) names the host clients dial."""
    now = now or datetime.now(UTC)
    ca_cert, server_cert, server_key = Path(ca_cert), Path(server_cert), Path(server_key)
    ca = check_ca_file(ca_cert, field="ca_cert", source=source, now=now)
    cert = load_certificate(server_cert, what="server certificate", field="server_cert", source=source)
    _check_dates(cert, server_cert, "server certificate", now, "server_cert", source)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise TlsFileError(f"the server certificate {server_cert} was not issued by the CA {ca_cert}: use the pair "
                           "written together by `fedcredit certs`", source=source, field="server_cert") from None
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        server_auth = ExtendedKeyUsageOID.SERVER_AUTH in eku
    except x509.ExtensionNotFound:
        server_auth = True      # no EKU extension = any use
    if not server_auth:
        raise TlsFileError(f"the certificate {server_cert} is not for a TLS server (no EKU serverAuth)",
                           source=source, field="server_cert")
    data = _read(server_key, "server key", "server_key", source)
    _private_mode_ok(server_key, "server key", "server_key", source)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TlsFileError(f"{server_key} is not an unencrypted PEM private key", source=source,
                           field="server_key") from None
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        raise TlsFileError(f"the key {server_key} does not belong to the certificate {server_cert}",
                           source=source, field="server_key")
    if host is not None and not covers_host(cert, host):
        raise TlsFileError(f"the server certificate {server_cert} is for {certificate_names(cert)}, not {host!r}: "
                           f"make one with `fedcredit certs --san ...` naming every address partners and the "
                           "flwr CLI dial", source=source, field="server_cert")
    return cert


def check_node_private_key(path: str | Path, *, field: str = "auth_key", source: str | None = None) -> ec.EllipticCurvePublicKey:
    """A SuperNode's private key as Flower reads it: OpenSSH, EC, unencrypted, mode 0600."""
    path = Path(path)
    data = _read(path, "node private key", field, source)
    _private_mode_ok(path, "node private key", field, source)
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TlsFileError(f"{path} is not an unencrypted OpenSSH private key: make one with "
                           "`fedcredit node-key new PATH`", source=source or str(path), field=field) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsFileError(f"{path} is not an EC key (Flower needs EC P-384/P-256): make one with "
                           "`fedcredit node-key new PATH`", source=source or str(path), field=field)
    return key.public_key()


def check_node_public_key(path: str | Path, *, field: str = "public_key", source: str | None = None) -> str:
    """A SuperNode's public key line (OpenSSH, EC on a NIST curve); returns the key without comment."""
    path = Path(path)
    data = _read(path, "node public key", field, source)
    try:
        key = serialization.load_ssh_public_key(data.strip())
    except (ValueError, UnsupportedAlgorithm):
        raise TlsFileError(f"{path} is not an OpenSSH public key line (the .pub written by "
                           "`fedcredit node-key new`)", source=source or str(path), field=field) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
        raise TlsFileError(f"{path} is not an EC key on a NIST curve (Flower needs EC P-384/P-256)",
                           source=source or str(path), field=field)
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode("ascii")
