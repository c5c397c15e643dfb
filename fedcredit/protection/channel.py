"""End-to-end sealed messages between two parties through an untrusted relay (the coordinator).

Each party holds a `ChannelKey` (an X25519 key pair, RFC 7748) and publishes `public_bytes()`
through the relay. A message from A to B is sealed with

    shared = X25519(a, B)                                   (static–static Diffie–Hellman)
    key    = HKDF-SHA256(shared, salt=None, length=32,
                         info = b"fedcredit-channel-v1" || A || B || context)    (sender, recipient)
    sealed = nonce (12 random bytes) || AES-256-GCM(key, nonce, payload, associated data = context)

(HKDF: RFC 5869; AES-GCM: NIST SP 800-38D; random 96-bit nonces are safe far beyond the few
messages a federation sends under one key pair.) Both public keys enter the key derivation in the
order sender, recipient, so A→B and B→A use different keys: a relay that sends A's message back to
A cannot pass it off as B's. `context` (e.g. b"psi-positions/run-id/party") binds a message to its
purpose: opening it under another context fails. The relay sees only the
length of the payload. A wrong key, a wrong context, a truncated or altered message all raise
`ChannelError` — one error, no partial plaintext.

`pack_array` / `unpack_array` turn NumPy arrays into payload bytes (the .npy format, no pickles).
"""

from __future__ import annotations

import io
import os

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INFO = b"fedcredit-channel-v1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


class ChannelError(ValueError):
    """A sealed message could not be opened (wrong key or context, altered or truncated) or made."""


class ChannelKey:
    """One party's X25519 key pair for sealed messages."""

    def __init__(self, private: X25519PrivateKey):
        self._private = private

    @classmethod
    def generate(cls) -> ChannelKey:
        """A fresh key pair from the OS's random source."""
        return cls(X25519PrivateKey.generate())

    def public_bytes(self) -> bytes:
        """The 32-byte public key to publish through the relay."""
        return self._private.public_key().public_bytes_raw()

    def to_bytes(self) -> bytes:
        """The 32-byte private key, to resume in another process (secret: store it like a key file)."""
        return self._private.private_bytes_raw()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ChannelKey:
        """The key saved by `to_bytes`."""
        if len(raw) != KEY_BYTES:
            raise ChannelError(f"a channel key is {KEY_BYTES} bytes, not {len(raw)}")
        return cls(X25519PrivateKey.from_private_bytes(raw))

    def _aead(self, their_public: bytes, context: bytes, *, sending: bool) -> AESGCM:
        if len(their_public) != KEY_BYTES:
            raise ChannelError(f"the other party's public key is {KEY_BYTES} bytes, not {len(their_public)}")
        try:
            shared = self._private.exchange(X25519PublicKey.from_public_bytes(their_public))
        except ValueError as exc:   # a low-order public key (all-zero shared secret)
            raise ChannelError(f"the other party's public key is not usable ({exc})") from exc
        mine, theirs = self.public_bytes(), bytes(their_public)
        direction = mine + theirs if sending else theirs + mine   # sender's key first
        key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                   info=INFO + direction + context).derive(shared)
        return AESGCM(key)


def seal(mine: ChannelKey, their_public: bytes, payload: bytes, *, context: bytes) -> bytes:
    """Encrypt and authenticate `payload` for the holder of `their_public`: 12 + len(payload) + 16 bytes."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + mine._aead(their_public, context, sending=True).encrypt(nonce, payload, context)


def open_sealed(mine: ChannelKey, their_public: bytes, sealed: bytes, *, context: bytes) -> bytes:
    """The payload of a message sealed by the holder of `their_public` for me, under `context`.

    Raises ChannelError for a wrong key or context, or an altered or truncated message.
    """
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise ChannelError(f"a sealed message has at least {NONCE_BYTES + TAG_BYTES} bytes, not {len(sealed)}")
    aead = mine._aead(their_public, context, sending=False)
    try:
        return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
    except InvalidTag as exc:
        raise ChannelError("the sealed message does not open: wrong key or context, or it was altered") from exc


def pack_array(array: np.ndarray) -> bytes:
    """An array as .npy bytes (no pickled objects: object arrays are refused)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def unpack_array(raw: bytes) -> np.ndarray:
    """The array written by `pack_array`; ChannelError if the bytes are not a plain .npy array."""
    try:
        array = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ChannelError(f"not an array payload ({exc})") from exc
    if not isinstance(array, np.ndarray):   # an .npz archive
        raise ChannelError("not an array payload (an .npz archive)")
    return array
