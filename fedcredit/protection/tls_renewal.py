"""Renewing the SuperLink's server certificate from the existing consortium CA.

`renew_server_certificate(ca_cert, ca_key, server_cert, server_key)` checks that `ca_key` is the
private key of `ca_cert` (the CA every partner trusts; it does not change, so partners have
nothing to do), issues a new key and certificate naming the same hosts as the old certificate
(or `sans`), keeps the old pair as `<file>.<UTC time>.bak` (hard links, never overwriting
anything), then puts the new pair in place under the old names, so the coordinator's config is
unchanged: each file is written to a temp file beside its target and renamed over it (atomic per
file, the key first). Should the machine stop between the two renames, `server start` and
`server reload-cert` refuse the mismatched pair with a clear message and the backups hold the old one.

The CA key is only read (it may live on removable media, so its mode is not checked).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedcredit.credit.atomic import stage
from fedcredit.credit.errors import InputError
from fedcredit.protection.tls import (
    DEFAULT_DAYS,
    TlsFileError,
    certificate_names,
    check_ca_file,
    issue_server_certificate,
    load_certificate,
    parse_san,
)

_BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class RenewedCertificate:
    server_cert: Path
    server_key: Path
    backup_cert: Path
    backup_key: Path
    serial: int
    sans: tuple[str, ...]
    not_after: datetime
    old_not_after: datetime


def _load_ca_key(path: Path, ca: x509.Certificate) -> ec.EllipticCurvePrivateKey:
    if not path.is_file():
        raise TlsFileError(f"CA private key not found: {path} (the ca.key made by `fedcredit certs`, kept offline)",
                           source="--ca-key")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise TlsFileError(f"{path} cannot be read: {exc.strerror}", source="--ca-key") from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise TlsFileError(f"{path} is not an unencrypted PEM private key", source="--ca-key") from None
    der = serialization.PublicFormat.SubjectPublicKeyInfo
    if not isinstance(key, ec.EllipticCurvePrivateKey) or \
            key.public_key().public_bytes(serialization.Encoding.DER, der) != \
            ca.public_key().public_bytes(serialization.Encoding.DER, der):
        raise TlsFileError(f"{path} is not the private key of the CA certificate (ca_cert): give the ca.key "
                           "written together with it", source="--ca-key")
    return key


def _stage(target: Path, data: bytes, *, private: bool) -> Path:
    """Write `data` to a new temp file beside `target` (mode 0600 or 0644, flushed to disk)."""
    return stage(target, lambda f: f.write(data), mode=0o600 if private else 0o644)


def renew_server_certificate(ca_cert: str | Path, ca_key: str | Path, server_cert: str | Path,
                             server_key: str | Path, *, days: int = DEFAULT_DAYS, sans: Iterable[str] | None = None,
                             source: str = "", now: datetime | None = None) -> RenewedCertificate:
    """Replace server_cert/server_key by a fresh pair from the CA, keeping the old pair as backups."""
    ca_cert, ca_key, server_cert, server_key = (Path(p).expanduser() for p in (ca_cert, ca_key, server_cert,
                                                                                 server_key))
    now = now or datetime.now(UTC)
    if not isinstance(days, int) or days < 1:
        raise InputError(f"must be a whole number of days ≥ 1 (got {days!r})", source="--days")
    ca = check_ca_file(ca_cert, field="ca_cert", source=source, now=now)
    key = _load_ca_key(ca_key, ca)
    old = load_certificate(server_cert, what="server certificate", field="server_cert", source=source)
    if not server_key.is_file():
        raise TlsFileError(f"server key not found: {server_key}", source=source, field="server_key")
    names = [parse_san(s) for s in sans] if sans else [parse_san(s) for s in certificate_names(old)]
    if not names:
        raise InputError(f"{server_cert} names no host: give the names with --san", source="--san")
    start = now - _BACKDATE
    if start + _BACKDATE + timedelta(days=days) > ca.not_valid_after_utc:
        left = (ca.not_valid_after_utc - now).days
        raise InputError(f"the CA {ca_cert} expires on {ca.not_valid_after_utc:%Y-%m-%d}: a certificate can not "
                         f"outlive it; give --days {left} or less (or make a new CA, whose ca.crt every partner "
                         "then needs)", source="--days")
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    common = old.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    new_key, new_cert = issue_server_certificate(key, ca.subject, ski, list(dict.fromkeys(names)), start, days,
                                                 str(common[0].value) if common else "fedcredit SuperLink")
    stamp = f"{now:%Y%m%dT%H%M%SZ}"
    backups = [p.with_name(f"{p.name}.{stamp}.bak") for p in (server_cert, server_key)]
    kept: list[Path] = []
    staged: list[Path] = []
    try:
        for original, backup in zip((server_cert, server_key), backups):
            try:
                os.link(original, backup)           # the old file itself, under a new name; fails if it exists
            except FileExistsError:
                raise TlsFileError("already exists: run the renewal again in a second", source=str(backup)) from None
            except OSError as exc:
                raise TlsFileError(f"cannot keep the old file as {backup}: {exc.strerror}", source=str(original)) \
                    from None
            kept.append(backup)
        pem = serialization.Encoding.PEM
        staged.append(_stage(server_key, new_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()), private=True))
        staged.append(_stage(server_cert, new_cert.public_bytes(pem), private=False))
        os.replace(staged[0], server_key)
        os.replace(staged[1], server_cert)
    except BaseException:
        replaced = bool(staged) and not staged[0].exists()
        for tmp in staged:
            tmp.unlink(missing_ok=True)
        if not replaced:                            # nothing replaced: the backups are mere extra links
            for backup in kept:
                backup.unlink(missing_ok=True)
        raise
    return RenewedCertificate(server_cert, server_key, *backups, new_cert.serial_number,
                              tuple(certificate_names(new_cert)), new_cert.not_valid_after_utc,
                              old.not_valid_after_utc)
