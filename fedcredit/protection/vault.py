"""A partner dataset encrypted at rest: streaming, segmented AES-256-GCM with envelope keys.

Each vault has its own random 256-bit data key (DEK), wrapped (AES-256-GCM) by the
partner's key-encryption key (KEK, `fedcredit.protection.keys`). The plaintext is cut into fixed-size
segments, each sealed on its own, so a file of any size is encrypted and decrypted in
bounded memory and damage is located to a segment. Layout, all integers big-endian:

    header
      0   8  magic b"FCVAULT\\0"
      8   2  format version (1)
     10   2  header length H (172 with a raw key, 191 with a passphrase)
     -- data block: fixed at encryption, never changed (rekey keeps it) --
     12   4  segment size S (plaintext bytes per segment, 16 … 16 MiB)
     16   8  plaintext size P
     24  32  fingerprint: SHA-256 of the plaintext
     56   8  created (Unix seconds, UTC)
     64   7  nonce prefix (random)
     -- key block: replaced by rekey --
     71   8  key id of the KEK
     79   1  KDF: 0 = raw key, 1 = scrypt; if 1: log2(n), r, p (1 byte each), 16-byte salt
      …  12  wrap nonce (random)
      …  48  wrapped DEK: AES-GCM(KEK, wrap nonce, DEK, aad = wrap label ‖ D ‖ key block so far)
      …  32  header checksum: SHA-256 of the header bytes before it
    body: max(1, ceil(P / S)) segments; segment i = AES-GCM(DEK, nonce, chunk_i, aad = D)
          with nonce = prefix(7) ‖ i (4 bytes) ‖ last (1 byte: 1 for the final segment),
          each chunk S bytes except the final one (0 … S bytes; 0 only when P = 0).

D = SHA-256(stream label ‖ magic ‖ version ‖ data block). Every segment authenticates the
data block, its own index and whether it is the last, so edits, truncation, extension,
reordering and splicing between vaults fail; the wrap tag authenticates the key block and
binds the DEK to this file's data block. The checksum is unkeyed and only tells accidental
header damage apart from a wrong key; authenticity comes from the tags. The fingerprint is
the same SHA-256 the privacy ledger uses for plain files; note that, being in the clear,
it lets anyone holding a candidate plaintext confirm it is the vault's content.

About 470 lines of code and this format note: the byte layout, the header parser and the four
operations that read or write it (encrypt, decrypt, rekey, inspect) stay in one file so that the
format has one reader and one writer; `protection.keys` holds everything about keys.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fedcredit.credit.atomic import atomic_write
from fedcredit.credit.errors import InputError
from fedcredit.credit.progress import Every, Progress
from fedcredit.protection.keys import (
    KdfParams,
    KeyEncryptionKey,
    KeySource,
    KeySourceError,
    PassphraseKey,
)

MAGIC = b"FCVAULT\x00"
VERSION = 1
DEFAULT_SEGMENT = 64 * 1024
MIN_SEGMENT, MAX_SEGMENT = 16, 16 * 1024 * 1024
MAX_SEGMENTS = 2**32
TAG = 16
DEK_BYTES = 32

_STREAM_LABEL = b"fedcredit-vault/1 stream\x00"
_WRAP_LABEL = b"fedcredit-vault/1 wrap\x00"
_PREAMBLE = struct.Struct(">8sHH")
_DATA = struct.Struct(">IQ32sQ7s")
_KEYHEAD = struct.Struct(">8sB")
_SCRYPT = struct.Struct(">BBB16s")
_WRAP = struct.Struct(">12s48s")
_CHECKSUM = 32
_KDF_NONE, _KDF_SCRYPT = 0, 1
_HEADER_SIZES = {
    _KDF_NONE: _PREAMBLE.size + _DATA.size + _KEYHEAD.size + _WRAP.size + _CHECKSUM,
    _KDF_SCRYPT: _PREAMBLE.size + _DATA.size + _KEYHEAD.size + _SCRYPT.size + _WRAP.size + _CHECKSUM,
}
_MAX_CREATED = 253402300799  # 9999-12-31T23:59:59Z
PROGRESS_BYTES = 1 << 20      # `on_progress` hears of a stream at most once per MiB (and at its end)


class VaultError(InputError):
    """A vault cannot be made, read or opened; nothing was written and the source is untouched."""


@dataclass(frozen=True)
class VaultInfo:
    """What a vault's header says (readable without the key)."""

    version: int
    key_id: str
    segment_size: int
    plaintext_size: int
    fingerprint: str      # SHA-256 of the plaintext, hex
    created: str          # ISO 8601, UTC
    kdf: str              # "none" (key file / env key) or the scrypt parameters
    segments: int
    vault_size: int       # bytes the complete vault file has


@dataclass(frozen=True)
class _Header:
    segment_size: int
    plaintext_size: int
    fingerprint: bytes
    created: int
    nonce_prefix: bytes
    key_id: bytes
    kdf: KdfParams | None
    wrap_nonce: bytes
    wrapped_key: bytes

    @property
    def data_block(self) -> bytes:
        return _DATA.pack(self.segment_size, self.plaintext_size, self.fingerprint, self.created,
                          self.nonce_prefix)

    @property
    def stream_aad(self) -> bytes:
        return hashlib.sha256(_STREAM_LABEL + MAGIC + struct.pack(">H", VERSION) + self.data_block).digest()

    @property
    def key_prefix(self) -> bytes:
        kind = _KDF_NONE if self.kdf is None else _KDF_SCRYPT
        out = _KEYHEAD.pack(self.key_id, kind)
        if self.kdf is not None:
            out += _SCRYPT.pack(self.kdf.log2_n, self.kdf.r, self.kdf.p, self.kdf.salt)
        return out

    @property
    def wrap_aad(self) -> bytes:
        return _WRAP_LABEL + self.stream_aad + self.key_prefix

    @property
    def size(self) -> int:
        return _HEADER_SIZES[_KDF_NONE if self.kdf is None else _KDF_SCRYPT]

    @property
    def segments(self) -> int:
        return max(1, -(-self.plaintext_size // self.segment_size))

    @property
    def vault_size(self) -> int:
        return self.size + self.segments * TAG + self.plaintext_size

    def to_bytes(self) -> bytes:
        body = (_PREAMBLE.pack(MAGIC, VERSION, self.size) + self.data_block + self.key_prefix
                + _WRAP.pack(self.wrap_nonce, self.wrapped_key))
        return body + hashlib.sha256(body).digest()

    def chunks(self) -> Iterator[tuple[int, int, int, bool]]:
        """(index, plaintext offset, plaintext length, last) of every segment."""
        n, size = self.segments, self.segment_size
        for i in range(n):
            offset = i * size
            yield i, offset, min(size, self.plaintext_size - offset), i == n - 1

    def nonce(self, index: int, last: bool) -> bytes:
        return self.nonce_prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")

    def info(self) -> VaultInfo:
        created = datetime.fromtimestamp(self.created, timezone.utc).isoformat(timespec="seconds")
        return VaultInfo(VERSION, self.key_id.hex(), self.segment_size, self.plaintext_size,
                         self.fingerprint.hex(), created.replace("+00:00", "Z"),
                         "none" if self.kdf is None else self.kdf.describe(), self.segments, self.vault_size)


# ---- header ---------------------------------------------------------------------------

def _parse_header(f: IO[bytes], source: str) -> _Header:
    """Read and check the header at the start of `f` (positioned after it on return)."""
    head = f.read(_PREAMBLE.size)
    if not head:
        raise VaultError("the file is empty: it is not a vault (was the encryption interrupted?)", source=source)
    if len(head) < _PREAMBLE.size and MAGIC.startswith(head[: len(MAGIC)]):
        raise VaultError("truncated inside its header: restore the vault from a backup", source=source)
    if head[: len(MAGIC)] != MAGIC:
        raise VaultError("not a fedcredit vault: the file does not start with the vault header magic "
                         "(encrypt it with `fedcredit vault encrypt`)", source=source)
    _, version, header_size = _PREAMBLE.unpack(head)
    if version != VERSION:
        raise VaultError(f"header has vault format version {version}; this fedcredit reads version "
                         f"{VERSION}: upgrade fedcredit (or the header is damaged)", source=source)
    if header_size not in _HEADER_SIZES.values():
        raise VaultError(f"header is damaged (impossible header length {header_size}): restore the "
                         "vault from a backup", source=source)
    rest = f.read(header_size - _PREAMBLE.size)
    if len(rest) < header_size - _PREAMBLE.size:
        raise VaultError("truncated inside its header: restore the vault from a backup", source=source)
    raw = head + rest
    if hashlib.sha256(raw[:-_CHECKSUM]).digest() != raw[-_CHECKSUM:]:
        raise VaultError("header is damaged (checksum mismatch): restore the vault from a backup",
                         source=source)
    pos = _PREAMBLE.size
    seg, size, fingerprint, created, prefix = _DATA.unpack_from(raw, pos)
    pos += _DATA.size
    key_id, kind = _KEYHEAD.unpack_from(raw, pos)
    pos += _KEYHEAD.size
    kdf = None
    if kind not in _HEADER_SIZES or _HEADER_SIZES[kind] != header_size:
        raise VaultError(f"header is damaged (KDF kind {kind} does not fit a {header_size}-byte header)",
                         source=source)
    if kind == _KDF_SCRYPT:
        log2_n, r, p, salt = _SCRYPT.unpack_from(raw, pos)
        pos += _SCRYPT.size
        kdf = KdfParams(salt, log2_n, r, p)
        try:
            kdf.check()
        except ValueError as exc:
            raise VaultError(f"header is invalid: {exc}", source=source) from None
    wrap_nonce, wrapped = _WRAP.unpack_from(raw, pos)
    if not MIN_SEGMENT <= seg <= MAX_SEGMENT:
        raise VaultError(f"header is invalid: segment size {seg} is outside {MIN_SEGMENT}…{MAX_SEGMENT}",
                         source=source)
    if -(-size // seg) > MAX_SEGMENTS:
        raise VaultError(f"header is invalid: plaintext size {size} needs more than {MAX_SEGMENTS} segments",
                         source=source)
    if created > _MAX_CREATED:
        raise VaultError(f"header is invalid: creation time {created} is out of range", source=source)
    return _Header(seg, size, fingerprint, created, prefix, key_id, kdf, wrap_nonce, wrapped)


def _open(path: Path) -> IO[bytes]:
    try:
        if not path.is_file():
            raise VaultError("vault file not found" if not path.exists() else "is not a regular file",
                             source=str(path))
        return open(path, "rb")
    except OSError as exc:
        raise VaultError(f"cannot be read: {exc.strerror}", source=str(path)) from exc


def _check_size(f: IO[bytes], header: _Header, source: str) -> None:
    actual = os.fstat(f.fileno()).st_size
    if actual < header.vault_size:
        raise VaultError(f"is truncated: {actual} bytes, but its header describes {header.vault_size}; "
                         "restore the vault from a backup", source=source)
    if actual > header.vault_size:
        raise VaultError(f"has {actual - header.vault_size} extra byte(s) after its last segment "
                         "(extended or damaged): restore the vault from a backup", source=source)


def _data_key(header: _Header, key: KeySource | None, source: str) -> bytes:
    """Unwrap the vault's DEK with `key`, naming the key the vault needs when it is wrong."""
    needed = header.key_id.hex()
    if key is None:
        raise VaultError(f"no key given: this vault needs key id {needed} (pass --key)", source=source)
    try:
        kek = key.for_file(header.kdf, source=source)
    except KeySourceError as exc:
        raise VaultError(str(exc)) from None
    if kek.key_id != needed:
        if isinstance(key, PassphraseKey):
            raise VaultError(f"wrong passphrase: this vault needs key id {needed}, but {key.description} "
                             f"gives id {kek.key_id} with this vault's salt", source=source)
        raise VaultError(f"wrong key: this vault needs key id {needed}, but {key.description} has id "
                         f"{kek.key_id}", source=source)
    try:
        return AESGCM(kek.material).decrypt(header.wrap_nonce, header.wrapped_key, header.wrap_aad)
    except InvalidTag:
        raise VaultError("header failed authentication (the key id matches, so the header was modified "
                         "or damaged): restore the vault from a backup", source=source) from None


def _wrap(header: _Header, kek: KeyEncryptionKey, kdf: KdfParams | None, dek: bytes) -> _Header:
    """`header` with a new key block: `dek` wrapped by `kek` under a fresh nonce."""
    unsealed = replace(header, key_id=bytes.fromhex(kek.key_id), kdf=kdf, wrap_nonce=secrets.token_bytes(12),
                       wrapped_key=b"")
    return replace(unsealed, wrapped_key=AESGCM(kek.material).encrypt(unsealed.wrap_nonce, dek,
                                                                        unsealed.wrap_aad))


# ---- segments -------------------------------------------------------------------------

def _segments(f: IO[bytes], header: _Header, dek: bytes, source: str,
              into: memoryview | None = None, progress: Every | None = None,
              what: str = "") -> Iterator[tuple[memoryview, memoryview]]:
    """Yield (ciphertext, plaintext) views of each segment, authenticated, in order.

    With `into` (plaintext_size bytes) each segment is decrypted into its place there;
    otherwise into one buffer reused between segments: consume the views before the next.
    `progress` hears the plaintext bytes done once each segment has been consumed.
    """
    aes, aad = AESGCM(dek), header.stream_aad
    cview = memoryview(bytearray(header.segment_size + TAG))
    scratch = memoryview(bytearray(header.segment_size)) if into is None else None
    for index, offset, length, last in header.chunks():
        ct = cview[: length + TAG]
        if f.readinto(ct) != length + TAG:
            raise VaultError(f"is truncated in segment {index + 1} of {header.segments} (it changed while "
                             "being read?): restore the vault from a backup", source=source)
        plain = into[offset: offset + length] if into is not None else scratch[:length]
        try:
            aes.decrypt_into(header.nonce(index, last), ct, aad, plain)
        except InvalidTag:
            start = header.size + offset + index * TAG
            raise VaultError(f"segment {index + 1} of {header.segments} (file bytes {start}–"
                             f"{start + length + TAG - 1}) failed authentication: the vault was modified "
                             "or damaged; restore it from a backup", source=source) from None
        yield ct, plain
        if progress is not None:
            progress(offset + length, what)
    if f.read(1):
        raise VaultError("grew while being read: try again", source=source)


def _open_vault(path: Path, key: KeySource | None) -> tuple[IO[bytes], _Header, bytes]:
    f = _open(path)
    try:
        header = _parse_header(f, str(path))
        dek = _data_key(header, key, str(path))
        _check_size(f, header, str(path))
    except BaseException:
        f.close()
        raise
    return f, header, dek


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


# ---- API ------------------------------------------------------------------------------

def is_vault(path: str | Path) -> bool:
    """True if `path` is a file that starts with the vault magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def inspect(path: str | Path) -> VaultInfo:
    """The header of a vault, checked for damage; no key needed, the body is not read."""
    path = Path(path)
    with _open(path) as f:
        return _parse_header(f, str(path)).info()


def _exists_error(dst: Path, what: str) -> VaultError:
    return VaultError(f"already exists; {what} never replaces a file: choose another name, or pass --force "
                      "if this file may be destroyed", source=str(dst))


def _write_new(dst: Path, write: Callable[[IO[bytes]], None], *, overwrite: bool, what: str) -> None:
    """Atomically write `dst` (temp file, then rename); without `overwrite` never replace one,
    not even one that appears while we write."""
    try:
        atomic_write(dst, write, overwrite=overwrite)
    except FileExistsError:
        raise _exists_error(dst, what) from None
    except OSError as exc:
        raise VaultError(f"cannot be written: {exc.strerror}", source=str(dst)) from exc


def encrypt_file(src: str | Path, dst: str | Path, key: KeySource, *,
                 segment_size: int = DEFAULT_SEGMENT, overwrite: bool = False,
                 on_progress: Progress | None = None) -> VaultInfo:
    """Encrypt `src` into the vault `dst` (written atomically); `src` is only read.

    An existing `dst` (perhaps a partner's only copy of its data) is refused unless `overwrite`.
    `src` is read twice — its fingerprint goes into the header before the first segment — so
    `on_progress(done, total, what)` counts bytes read of 2 × its size, `what` naming the pass.
    """
    src, dst = Path(src), Path(dst)
    if not MIN_SEGMENT <= segment_size <= MAX_SEGMENT:
        raise VaultError(f"segment size {segment_size} is outside {MIN_SEGMENT}…{MAX_SEGMENT}")
    if not src.is_file():
        raise VaultError("file to encrypt not found" if not src.exists() else "is not a regular file",
                         source=str(src))
    if _same_file(src, dst):
        raise VaultError("the vault would replace the file it encrypts: choose another output path",
                         source=str(dst))
    if not overwrite and os.path.lexists(dst):
        raise _exists_error(dst, "encrypting")
    if is_vault(src):
        raise VaultError("is already a vault: encrypting it again protects nothing", source=str(src))
    seen = src.stat().st_size        # for progress only: what is encrypted is what the fingerprint covers
    progress = Every(on_progress, 2 * seen, PROGRESS_BYTES)
    first, second = f"pass 1 of 2: fingerprint (SHA-256) of {src.name}", f"pass 2 of 2: encrypting {src.name}"
    try:
        size, fingerprint = (_hash_file(src) if on_progress is None else
                             _hash_file(src, progress=lambda done: progress(min(done, seen), first)))
    except OSError as exc:
        raise VaultError(f"cannot be read: {exc.strerror}", source=str(src)) from exc
    try:
        kek, kdf = key.for_new_file()
    except KeySourceError as exc:
        raise VaultError(str(exc)) from None
    draft = _Header(segment_size, size, fingerprint, int(time.time()), secrets.token_bytes(7),
                    b"", None, b"", b"")
    if draft.segments > MAX_SEGMENTS:
        raise VaultError(f"is too large for segment size {segment_size}: use a larger segment size",
                         source=str(src))
    dek = secrets.token_bytes(DEK_BYTES)
    header = _wrap(draft, kek, kdf, dek)

    def write(out: IO[bytes]) -> None:
        aes, aad, digest = AESGCM(dek), header.stream_aad, hashlib.sha256()
        out.write(header.to_bytes())
        with open(src, "rb") as f:
            progress(seen, second)
            for index, offset, length, last in header.chunks():
                chunk = f.read(length)
                if len(chunk) != length:
                    break
                digest.update(chunk)
                out.write(aes.encrypt(header.nonce(index, last), chunk, aad))
                progress(seen + min(offset + length, seen), second)
            if f.read(1) or digest.digest() != fingerprint:
                raise VaultError("changed while being encrypted: try again when nothing writes to it",
                                 source=str(src))

    _write_new(dst, write, overwrite=overwrite, what="encrypting")
    return header.info()


def _hash_file(path: Path, *, progress: Callable[[int], None] | None = None) -> tuple[int, bytes]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        if progress is not None:
            progress(0)
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
            if progress is not None:
                progress(size)
    return size, digest.digest()


def decrypt_bytes(path: str | Path, key: KeySource | None) -> bytes:
    """The plaintext of a vault, in memory only (no temporary file); every segment authenticated."""
    path = Path(path)
    f, header, dek = _open_vault(path, key)
    # One buffer of the final size, decrypted into in place; BytesIO.getvalue() then returns
    # it as bytes without a copy (a bytearray -> bytes copy would cost ~40 % of the time).
    buffer = io.BytesIO()
    if header.plaintext_size:
        buffer.seek(header.plaintext_size - 1)
        buffer.write(b"\0")
    with f, buffer.getbuffer() as view:
        deque(_segments(f, header, dek, str(path), into=view), maxlen=0)  # keeps no view alive
    return buffer.getvalue()


def decrypt_file(src: str | Path, dst: str | Path, key: KeySource | None, *,
                 overwrite: bool = False, on_progress: Progress | None = None) -> VaultInfo:
    """Decrypt a vault to `dst` (the owner's own use), atomically: nothing is left on error.

    An existing `dst` is refused unless `overwrite`. `on_progress(done, total, what)` counts
    plaintext bytes authenticated and written.
    """
    src, dst = Path(src), Path(dst)
    if _same_file(src, dst):
        raise VaultError("the plaintext would replace the vault: choose another output path", source=str(dst))
    if not overwrite and os.path.lexists(dst):
        raise _exists_error(dst, "decrypting")
    f, header, dek = _open_vault(src, key)
    progress, what = Every(on_progress, header.plaintext_size, PROGRESS_BYTES), f"decrypting {src.name}"
    with f:
        def write(out: IO[bytes]) -> None:
            progress(0, what)
            for _, plain in _segments(f, header, dek, str(src), progress=progress, what=what):
                out.write(plain)
        _write_new(dst, write, overwrite=overwrite, what="decrypting")
    return header.info()


def rekey(path: str | Path, old: KeySource | None, new: KeySource, *,
          on_progress: Progress | None = None) -> VaultInfo:
    """Re-wrap the vault's data key under `new`; segments are checked and copied verbatim.

    The file is replaced atomically; `old` no longer opens it afterwards (unless old == new).
    `on_progress(done, total, what)` counts plaintext bytes whose segments are checked and copied.
    """
    path = Path(path)
    f, header, dek = _open_vault(path, old)
    with f:
        try:
            kek, kdf = new.for_new_file()
        except KeySourceError as exc:
            raise VaultError(str(exc)) from None
        rewrapped = _wrap(header, kek, kdf, dek)
        progress = Every(on_progress, header.plaintext_size, PROGRESS_BYTES)
        what = f"checking and copying the segments of {path.name}"

        def write(out: IO[bytes]) -> None:
            out.write(rewrapped.to_bytes())
            progress(0, what)
            for ciphertext, _ in _segments(f, header, dek, str(path), progress=progress, what=what):
                out.write(ciphertext)
        try:
            atomic_write(path, write)
        except OSError as exc:
            raise VaultError(f"cannot be written: {exc.strerror}", source=str(path)) from exc
    return rewrapped.info()
