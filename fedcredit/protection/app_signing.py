"""Only the consortium's app runs on a partner: Ed25519 signatures over the Flower app bundle (FAB).

Flower 1.42's SuperNode `--trusted-entities` check only verifies bundles fetched from Flower
Hub (a bundle built by `flwr run <dir>` carries no verification record, so every such run would
be refused). fedcredit signs the bundle itself:

* `new_signing_key(path)`: an Ed25519 key pair, private key OpenSSH PEM (0600) and `path.pub`
  (one `ssh-ed25519 …` line, the format of Flower's trusted entities). The consortium's release
  manager keeps the private key; partners list the `.pub` in `[node] trusted_app_keys`.
* `sign_digest(key, sha256)` → `AppSignature`, written as one JSON line (`fedcredit app sign`) and
  carried to the partners in the run config key `app-signature`. The bundle and its digest come
  from `fedcredit.deployment.app_bundle` (Flower's own builder: no Flower import here).
* `verify_bundle(content, signature_text, trusted)`: on the partner, before the bundle is
  installed or any of its code runs; raises `AppRejected` saying why.

The signed message is `MESSAGE_PREFIX + sha256(bundle) + "\n" + signed_at`, so a signature is
bound to this exact bundle and cannot be replayed for another one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from fedcredit.credit.errors import InputError
from fedcredit.protection.tls import write_key_pair

MESSAGE_PREFIX = b"fedcredit-app-signature-v1\n"
RUN_CONFIG_KEY = "app-signature"

__all__ = ["AppRejected", "AppSignature", "RUN_CONFIG_KEY", "load_trusted_keys",
           "new_signing_key", "read_signature", "sign_digest", "verify_bundle"]


class AppRejected(Exception):
    """A bundle that no trusted key signed; the message says why, for the partner's log."""


@dataclass(frozen=True)
class AppSignature:
    """What travels with a run: the bundle's SHA-256 (hex), when, by which key (its id), the
    Ed25519 signature (base64)."""

    fab_sha256: str
    signed_at: str
    key_id: str
    signature: str

    def to_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def _message(fab_sha256: str, signed_at: str) -> bytes:
    return MESSAGE_PREFIX + fab_sha256.encode("ascii") + b"\n" + signed_at.encode("ascii")


def key_id(public: ed25519.Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def new_signing_key(path: str | Path, *, comment: str = "fedcredit app signing") -> Path:
    """Write an Ed25519 app-signing key: `path` (OpenSSH private key, 0600) and `path.pub`.
    Never overwrites either file; returns the public key's path."""
    _, pub, _ = write_key_pair(path, ed25519.Ed25519PrivateKey.generate(), comment=comment,
                               what="app-signing keys")
    return pub


def _load_private(path: Path) -> ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise InputError("no such file: make one with `fedcredit app keygen FILE`", source=str(path)) from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"not an unencrypted OpenSSH private key ({exc})", source=str(path)) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise InputError("not an Ed25519 key: make one with `fedcredit app keygen FILE`", source=str(path))
    return key


def load_trusted_keys(paths: list[Path], *, source: str = "trusted_app_keys") -> dict[str, ed25519.Ed25519PublicKey]:
    """key id → public key for each `ssh-ed25519` line in the files (InputError naming a bad file)."""
    keys: dict[str, ed25519.Ed25519PublicKey] = {}
    for path in paths:
        try:
            lines = [ln for ln in Path(path).read_text(encoding="ascii").splitlines() if ln.strip()]
        except FileNotFoundError:
            raise InputError(f"no such file ({path}): ask the consortium for its app-signing public key",
                             source=source) from None
        except (UnicodeDecodeError, OSError) as exc:
            raise InputError(f"cannot read {path}: {exc}", source=source) from None
        for line in lines:
            try:
                public = serialization.load_ssh_public_key(line.encode("ascii"))
            except (ValueError, TypeError, IndexError):
                raise InputError(f"{path} holds a line that is not an OpenSSH public key", source=source) from None
            if not isinstance(public, ed25519.Ed25519PublicKey):
                raise InputError(f"{path} holds a key that is not Ed25519 (app-signing keys are made with "
                                 "`fedcredit app keygen`)", source=source)
            keys[key_id(public)] = public
    if not keys:
        raise InputError("no app-signing public key given: nothing could ever run on this partner", source=source)
    return keys


def sign_digest(key_path: str | Path, fab_sha256: str, *, now: datetime | None = None) -> AppSignature:
    """Sign a bundle's SHA-256 (hex) with the Ed25519 key at `key_path` (the bundle itself is built
    by `fedcredit.deployment.app_bundle`)."""
    key = _load_private(Path(key_path).expanduser())
    signed_at = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = key.sign(_message(fab_sha256, signed_at))
    return AppSignature(fab_sha256, signed_at, key_id(key.public_key()), base64.b64encode(sig).decode("ascii"))


def read_signature(text: str, *, source: str = RUN_CONFIG_KEY) -> AppSignature:
    """Parse a signature line; AppRejected if it is not one (it arrives from the network)."""
    try:
        raw = json.loads(text)
        sig = AppSignature(**{k: str(raw[k]) for k in ("fab_sha256", "signed_at", "key_id", "signature")})
    except (ValueError, TypeError, KeyError):
        raise AppRejected(f"{source} is missing or is not a fedcredit app signature") from None
    return sig


def verify_bundle(content: bytes, signature_text: str | None,
                  trusted: dict[str, ed25519.Ed25519PublicKey]) -> AppSignature:
    """The signature if one of `trusted` signed exactly this bundle; else AppRejected saying why."""
    digest = hashlib.sha256(content).hexdigest()
    if not signature_text:
        raise AppRejected(f"the app bundle sha256 {digest[:16]}… is unsigned (no {RUN_CONFIG_KEY} in its run "
                          "config): only apps signed by a trusted consortium key run here")
    sig = read_signature(signature_text)
    if sig.fab_sha256 != digest:
        raise AppRejected(f"the signature is for bundle {sig.fab_sha256[:16]}…, not for the bundle received "
                          f"({digest[:16]}…): the app was changed after it was signed")
    public = trusted.get(sig.key_id)
    if public is None:
        raise AppRejected(f"the bundle {digest[:16]}… is signed by key {sig.key_id}, which this partner does "
                          f"not trust (trusted: {', '.join(sorted(trusted))})")
    try:
        public.verify(base64.b64decode(sig.signature, validate=True), _message(sig.fab_sha256, sig.signed_at))
    except (InvalidSignature, ValueError):
        raise AppRejected(f"the signature on bundle {digest[:16]}… does not verify under key {sig.key_id}: "
                          "forged or corrupted") from None
    return sig
