"""Key-encryption keys (KEKs) for partner vaults: key files, environment keys, passphrases.

A KEK never encrypts data; it wraps each vault's random data key (see `fedcredit.protection.vault`).
A key's id is public (it is written into every vault it wraps) and reveals nothing
about the key: the first 8 bytes, in hex, of SHA-256 over a label and the key.

Three sources, all through `load_key(spec)` — the only place that reads the environment:

* a key file written by `new_key_file` (mode 0600; group/other-readable files are refused);
* `env:NAME` — an environment variable holding the base64 of 32 key bytes;
* `passphrase-env:NAME` — a passphrase in an environment variable, stretched with scrypt
  (n=2**15, r=8, p=1, 32-byte output, 16-byte random salt). The salt is stored in each
  vault's header, so a passphrase yields a different KEK per file: `PassphraseKey`
  derives the KEK for a given salt (`for_file`) or picks a fresh salt (`for_new_file`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import stat
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from fedcredit.credit.errors import InputError

KEY_BYTES = 32
KEY_ID_LABEL = b"fedcredit-kek-id/1\x00"
KEY_FILE_HEADER = "# fedcredit key-encryption key: keep it secret (mode 600)"

# scrypt cost for new passphrase vaults (RFC 7914 names): n = 2**SCRYPT_LOG2_N, r, p.
SCRYPT_LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
# Limits for parameters read from a vault header (a hostile header must not demand
# unbounded memory/time): 2**10 ≤ n ≤ 2**20, r ≤ 32, p ≤ 16, 128·n·r ≤ 256 MiB.
SCRYPT_LIMITS = {"log2_n": (10, 20), "r": (1, 32), "p": (1, 16), "memory": 256 << 20}


class KeySourceError(InputError):
    """A key could not be made, found or read; the message says what to do."""


def key_id(material: bytes) -> str:
    """Public id of a key: 16 hex chars of SHA-256(label || key)."""
    return hashlib.sha256(KEY_ID_LABEL + material).digest()[:8].hex()


@dataclass(frozen=True)
class KdfParams:
    """How a passphrase became a vault's KEK: scrypt with this salt and cost."""

    salt: bytes
    log2_n: int = SCRYPT_LOG2_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    def check(self) -> None:
        """Raise ValueError if the parameters are outside SCRYPT_LIMITS."""
        lo, hi = SCRYPT_LIMITS["log2_n"]
        if not (lo <= self.log2_n <= hi and SCRYPT_LIMITS["r"][0] <= self.r <= SCRYPT_LIMITS["r"][1]
                and SCRYPT_LIMITS["p"][0] <= self.p <= SCRYPT_LIMITS["p"][1]
                and 128 * (1 << self.log2_n) * self.r <= SCRYPT_LIMITS["memory"]
                and len(self.salt) == SALT_BYTES):
            raise ValueError(f"scrypt parameters out of range: {self.describe()}")

    def describe(self) -> str:
        return f"scrypt n=2**{self.log2_n} r={self.r} p={self.p}"


class KeySource(ABC):
    """Something that yields the KEK for a vault: a fixed key, or a passphrase plus salt."""

    description: str

    @abstractmethod
    def for_new_file(self) -> tuple[KeyEncryptionKey, KdfParams | None]:
        """The KEK for a new vault and the KDF parameters to store in its header (or None)."""

    @abstractmethod
    def for_file(self, kdf: KdfParams | None, *, source: str) -> KeyEncryptionKey:
        """The KEK for an existing vault whose header holds `kdf`; KeySourceError if unfit."""


@dataclass(frozen=True, repr=False)
class KeyEncryptionKey(KeySource):
    """32 secret bytes and their public id; `repr` never shows the bytes."""

    material: bytes = field(repr=False)
    description: str = field(default="key", compare=False)
    key_id: str = field(init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.material, bytes) or len(self.material) != KEY_BYTES:
            raise KeySourceError(f"a key must be exactly {KEY_BYTES} bytes")
        object.__setattr__(self, "key_id", key_id(self.material))

    @classmethod
    def generate(cls, description: str = "new key") -> KeyEncryptionKey:
        return cls(secrets.token_bytes(KEY_BYTES), description=description)

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(key_id={self.key_id!r})"

    def for_new_file(self) -> tuple[KeyEncryptionKey, None]:
        return self, None

    def for_file(self, kdf: KdfParams | None, *, source: str) -> KeyEncryptionKey:
        if kdf is not None:
            raise KeySourceError(f"this vault was encrypted with a passphrase ({kdf.describe()}), but "
                                 f"{self.description} is a raw key: give passphrase-env:NAME", source=source)
        return self


@dataclass(frozen=True, repr=False)
class PassphraseKey(KeySource):
    """A passphrase; the KEK is scrypt(passphrase, salt) with the salt from the vault header."""

    passphrase: bytes = field(repr=False)
    description: str = field(default="passphrase", compare=False)

    def __post_init__(self) -> None:
        if not self.passphrase:
            raise KeySourceError(f"{self.description}: the passphrase is empty")

    def __repr__(self) -> str:
        return f"PassphraseKey({self.description!r})"

    def derive(self, kdf: KdfParams) -> KeyEncryptionKey:
        kdf.check()
        material = Scrypt(salt=kdf.salt, length=KEY_BYTES, n=1 << kdf.log2_n, r=kdf.r, p=kdf.p).derive(self.passphrase)
        return KeyEncryptionKey(material, description=f"{self.description} ({kdf.describe()})")

    def for_new_file(self) -> tuple[KeyEncryptionKey, KdfParams]:
        kdf = KdfParams(secrets.token_bytes(SALT_BYTES))
        return self.derive(kdf), kdf

    def for_file(self, kdf: KdfParams | None, *, source: str) -> KeyEncryptionKey:
        if kdf is None:
            raise KeySourceError(f"this vault was encrypted with a key file or raw key, not a passphrase; "
                                 f"give that key instead of {self.description}", source=source)
        return self.derive(kdf)


def new_key_file(path: str | Path) -> KeyEncryptionKey:
    """Write a new random key to `path` (mode 0600, never overwriting); return it."""
    path = Path(path)
    key = KeyEncryptionKey.generate(description=f"key file {path}")
    text = f"{KEY_FILE_HEADER}; id {key.key_id}\n{base64.b64encode(key.material).decode()}\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeySourceError("already exists; a key file is never overwritten: choose another name "
                             "(or delete the old key only if no vault still needs it)", source=str(path)) from None
    except OSError as exc:
        raise KeySourceError(f"cannot be created: {exc.strerror}", source=str(path)) from exc
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return key


def _decode_key(text: str, *, source: str) -> bytes:
    try:
        material = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeySourceError("is not base64: expected the base64 of 32 random bytes "
                             "(make one with `fedcredit keys new FILE`)", source=source) from None
    if len(material) != KEY_BYTES:
        raise KeySourceError(f"holds {len(material)} bytes; a key is {KEY_BYTES} bytes (base64 of 32 "
                             "random bytes)", source=source)
    return material


def read_key_file(path: str | Path) -> KeyEncryptionKey:
    """Read a key file, refusing one that group or others can access."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeySourceError("key file not found: check the path, or make one with "
                             "`fedcredit keys new FILE`", source=str(path)) from None
    except OSError as exc:
        raise KeySourceError(f"cannot be read: {exc.strerror}", source=str(path)) from exc
    if not stat.S_ISREG(st.st_mode):
        raise KeySourceError("is not a regular file", source=str(path))
    if os.name == "posix" and st.st_mode & 0o077:
        raise KeySourceError(f"other users can access this key file (mode {stat.S_IMODE(st.st_mode):o}): "
                             f"run `chmod 600 {path}`", source=str(path))
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeySourceError(f"cannot be read as a key file: {exc}", source=str(path)) from exc
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) != 1:
        raise KeySourceError("is not a fedcredit key file (expected one base64 line)", source=str(path))
    return KeyEncryptionKey(_decode_key(lines[0], source=str(path)), description=f"key file {path}")


def load_key(spec: str) -> KeySource:
    """A key from a spec: KEYFILE, `env:NAME` (base64 key) or `passphrase-env:NAME` (scrypt)."""
    if spec.startswith("env:"):
        name = spec[len("env:"):]
        value = os.environ.get(name) if name else None
        if not value:
            raise KeySourceError(f"environment variable {name!r} is not set or empty: export it with the "
                                 "base64 key, or give a key file", source=spec)
        return KeyEncryptionKey(_decode_key(value, source=spec), description=spec)
    if spec.startswith("passphrase-env:"):
        name = spec[len("passphrase-env:"):]
        value = os.environ.get(name) if name else None
        if not value:
            raise KeySourceError(f"environment variable {name!r} is not set or empty: export the "
                                 "passphrase in it", source=spec)
        return PassphraseKey(value.encode("utf-8"), description=spec)
    if not spec:
        raise KeySourceError("no key given: pass a key file, env:NAME or passphrase-env:NAME")
    return read_key_file(spec)
