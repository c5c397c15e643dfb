"""Sealed messages through an untrusted relay: round trip, resumed keys, wrong key/context and tampering fail."""

from __future__ import annotations

import numpy as np
import pytest

from fedcredit.protection.channel import ChannelError, ChannelKey, open_sealed, pack_array, seal, unpack_array

CONTEXT = b"psi-positions/run-1/bureau"


def test_round_trip_both_directions():
    lender, bureau = ChannelKey.generate(), ChannelKey.generate()
    payload = b"positions of the shared rows"
    sealed = seal(lender, bureau.public_bytes(), payload, context=CONTEXT)
    assert open_sealed(bureau, lender.public_bytes(), sealed, context=CONTEXT) == payload
    back = seal(bureau, lender.public_bytes(), b"reply", context=CONTEXT)
    assert open_sealed(lender, bureau.public_bytes(), back, context=CONTEXT) == b"reply"
    assert payload not in sealed
    assert len(sealed) == 12 + len(payload) + 16
    # a fresh nonce each time: the same message never looks the same to the relay
    assert seal(lender, bureau.public_bytes(), payload, context=CONTEXT) != sealed


def test_keys_resume_in_another_process():
    lender, bureau = ChannelKey.generate(), ChannelKey.generate()
    assert len(lender.public_bytes()) == 32
    resumed = ChannelKey.from_bytes(bureau.to_bytes())
    assert resumed.public_bytes() == bureau.public_bytes()
    sealed = seal(lender, bureau.public_bytes(), b"x" * 1000, context=CONTEXT)
    assert open_sealed(resumed, lender.public_bytes(), sealed, context=CONTEXT) == b"x" * 1000
    with pytest.raises(ChannelError, match="32 bytes"):
        ChannelKey.from_bytes(b"short")


def test_wrong_key_context_or_tampering_fail_with_one_error():
    lender, bureau, relay = ChannelKey.generate(), ChannelKey.generate(), ChannelKey.generate()
    sealed = seal(lender, bureau.public_bytes(), b"payload", context=CONTEXT)
    with pytest.raises(ChannelError, match="does not open"):
        open_sealed(relay, lender.public_bytes(), sealed, context=CONTEXT)          # a third party
    with pytest.raises(ChannelError, match="does not open"):
        open_sealed(bureau, relay.public_bytes(), sealed, context=CONTEXT)          # wrong sender
    with pytest.raises(ChannelError, match="does not open"):
        open_sealed(bureau, lender.public_bytes(), sealed, context=b"psi-positions/run-1/insurer")
    with pytest.raises(ChannelError, match="does not open"):   # reflected back to its sender
        open_sealed(lender, bureau.public_bytes(), sealed, context=CONTEXT)
    for i in (0, 12, len(sealed) - 1):
        tampered = bytearray(sealed)
        tampered[i] ^= 1
        with pytest.raises(ChannelError, match="does not open"):
            open_sealed(bureau, lender.public_bytes(), bytes(tampered), context=CONTEXT)
    with pytest.raises(ChannelError, match="does not open"):
        open_sealed(bureau, lender.public_bytes(), sealed[:-1], context=CONTEXT)
    with pytest.raises(ChannelError, match="at least 28 bytes"):
        open_sealed(bureau, lender.public_bytes(), sealed[:20], context=CONTEXT)
    with pytest.raises(ChannelError, match="32 bytes"):
        seal(lender, b"\x01" * 31, b"p", context=CONTEXT)
    with pytest.raises(ChannelError, match="not usable"):
        seal(lender, bytes(32), b"p", context=CONTEXT)   # a low-order public key


def test_arrays_pack_and_unpack_without_pickles():
    positions = np.array([5, 0, 17, 3], dtype=np.int64)
    raw = pack_array(positions)
    back = unpack_array(raw)
    assert back.dtype == np.int64 and np.array_equal(back, positions)
    matrix = np.arange(12, dtype=np.uint64).reshape(3, 4)
    assert np.array_equal(unpack_array(pack_array(matrix)), matrix)
    assert unpack_array(pack_array(np.empty(0, np.int64))).size == 0
    with pytest.raises(ValueError):
        pack_array(np.array([{"a": 1}], dtype=object))
    with pytest.raises(ChannelError, match="not an array payload"):
        unpack_array(b"not numpy")
    lender, bureau = ChannelKey.generate(), ChannelKey.generate()
    sealed = seal(lender, bureau.public_bytes(), raw, context=CONTEXT)
    assert np.array_equal(unpack_array(open_sealed(bureau, lender.public_bytes(), sealed, context=CONTEXT)),
                          positions)
