"""Vault format: round trips, tamper detection located to header or segment, rekey, fuzzed headers."""

from __future__ import annotations

import hashlib
import os
import re
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fedcredit.credit.errors import InputError
from fedcredit.protection import vault
from fedcredit.protection.keys import KeyEncryptionKey, PassphraseKey
from fedcredit.protection.vault import (
    MAGIC,
    TAG,
    VaultError,
    decrypt_bytes,
    decrypt_file,
    encrypt_file,
    inspect,
    is_vault,
    rekey,
)

KEY = KeyEncryptionKey(bytes(range(32)), description="test key")
OTHER = KeyEncryptionKey(bytes(range(1, 33)), description="other key")
SEGMENTS = st.sampled_from([16, 17, 32, 64])
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
HEADER_OR_SEGMENT = re.compile(r"header|segment \d+ of \d+")


def plaintexts(**kwargs) -> st.SearchStrategy[bytes]:
    """Binary data that does not start with the vault magic (encrypt_file refuses vaults)."""
    return st.binary(**kwargs).filter(lambda b: not b.startswith(MAGIC))


def make(folder: Path, data: bytes, segment_size: int = 32, key=KEY, name: str = "v") -> Path:
    src, dst = folder / f"{name}.plain", folder / f"{name}.fcv"
    src.write_bytes(data)
    encrypt_file(src, dst, key, segment_size=segment_size, overwrite=True)   # hypothesis reuses tmp_path
    return dst


def header_size(path: Path) -> int:
    info = inspect(path)
    return info.vault_size - info.segments * TAG - info.plaintext_size


def with_checksum(header: bytes) -> bytes:
    """Recompute the (unkeyed) header checksum, as a deliberate attacker would."""
    return header[:-32] + hashlib.sha256(header[:-32]).digest()


def error_of(path: Path, key=KEY) -> str:
    with pytest.raises(VaultError) as info:
        decrypt_bytes(path, key)
    return str(info.value)


# ---- round trips --------------------------------------------------------------------------

@FAST
@given(data=plaintexts(max_size=300), segment_size=SEGMENTS)
def test_round_trip_any_size(tmp_path, data, segment_size):
    path = make(tmp_path, data, segment_size)
    assert decrypt_bytes(path, KEY) == data
    info = inspect(path)
    assert info.plaintext_size == len(data) and info.segment_size == segment_size
    assert info.fingerprint == hashlib.sha256(data).hexdigest()
    assert info.segments == max(1, -(-len(data) // segment_size))
    assert path.stat().st_size == info.vault_size


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segments=st.integers(0, 6), segment_size=SEGMENTS, seed=st.integers(0, 2**32))
def test_round_trip_exact_segment_multiples(tmp_path, segments, segment_size, seed):
    data = os.urandom(segments * segment_size)
    path = make(tmp_path, data, segment_size)
    assert decrypt_bytes(path, KEY) == data
    assert inspect(path).segments == max(1, segments)  # no extra empty segment after a full one


def test_default_segment_size_and_file_decrypt(tmp_path):
    data = os.urandom(3 * 65536 + 1234)
    src, dst, out = tmp_path / "d.csv", tmp_path / "d.fcv", tmp_path / "back.csv"
    src.write_bytes(data)
    info = encrypt_file(src, dst, KEY)
    assert (info.segment_size, info.segments, info.key_id, info.kdf) == (65536, 4, KEY.key_id, "none")
    assert src.read_bytes() == data
    assert decrypt_file(dst, out, KEY) == inspect(dst)
    assert out.read_bytes() == data


def test_passphrase_vault_round_trip(tmp_path):
    pw = PassphraseKey(b"a long partner passphrase")
    path = make(tmp_path, b"rows\n1,2\n", key=pw)
    assert inspect(path).kdf == "scrypt n=2**15 r=8 p=1"
    assert decrypt_bytes(path, pw) == b"rows\n1,2\n"
    assert "wrong passphrase" in error_of(path, PassphraseKey(b"a wrong partner passphrase"))


def test_plaintext_does_not_appear_in_the_vault(tmp_path):
    data = b"applicant-4711,income=52000,default=0\n" * 50
    blob = make(tmp_path, data, 64).read_bytes()
    assert b"applicant" not in blob and b"income" not in blob


def test_two_encryptions_of_the_same_data_differ(tmp_path):
    a, b = make(tmp_path, b"same" * 20, name="a"), make(tmp_path, b"same" * 20, name="b")
    assert a.read_bytes()[header_size(a):] != b.read_bytes()[header_size(b):]


# ---- tampering ----------------------------------------------------------------------------

@FAST
@given(data=plaintexts(max_size=200), segment_size=SEGMENTS, where=st.floats(0, 1, exclude_max=True),
       bit=st.integers(0, 7))
def test_any_single_bit_flip_is_located(tmp_path, data, segment_size, where, bit):
    path = make(tmp_path, data, segment_size)
    hsize, blob = header_size(path), bytearray(path.read_bytes())
    pos = int(where * len(blob))
    blob[pos] ^= 1 << bit
    path.write_bytes(blob)
    message = error_of(path)
    if pos < hsize:
        assert "header" in message and "segment" not in message
    else:
        segment = (pos - hsize) // (segment_size + TAG) + 1
        assert f"segment {segment} of " in message


@FAST
@given(data=plaintexts(min_size=1, max_size=200), cut=st.floats(0, 1, exclude_max=True))
def test_truncation_is_detected(tmp_path, data, cut):
    path = make(tmp_path, data, 16)
    blob = path.read_bytes()
    path.write_bytes(blob[: int(cut * len(blob))])
    message = error_of(path)
    assert "truncated" in message or "empty" in message


@FAST
@given(data=plaintexts(max_size=100), extra=st.binary(min_size=1, max_size=40))
def test_extension_is_detected(tmp_path, data, extra):
    path = make(tmp_path, data, 16)
    path.write_bytes(path.read_bytes() + extra)
    assert f"{len(extra)} extra byte(s)" in error_of(path)


def test_reordered_segments_are_detected(tmp_path):
    path = make(tmp_path, os.urandom(16 * 5), 16)
    blob, h, n = path.read_bytes(), header_size(path), 16 + TAG
    segs = [blob[h + i * n: h + (i + 1) * n] for i in range(5)]
    path.write_bytes(blob[:h] + segs[0] + segs[2] + segs[1] + segs[3] + segs[4])
    assert "segment 2 of 5" in error_of(path)


def test_dropping_a_full_segment_and_patching_the_header_is_detected(tmp_path):
    path = make(tmp_path, os.urandom(16 * 4), 16)
    blob, h = path.read_bytes(), header_size(path)
    header = bytearray(blob[:h])
    struct.pack_into(">Q", header, 16, 16 * 3)  # claim 3 segments' worth of plaintext
    path.write_bytes(with_checksum(bytes(header)) + blob[h: h + 3 * (16 + TAG)])
    assert "header failed authentication" in error_of(path)


def test_segments_spliced_between_vaults_with_the_same_key_are_detected(tmp_path):
    a = make(tmp_path, os.urandom(64), 16, name="a")
    b = make(tmp_path, os.urandom(64), 16, name="b")
    blob_a, blob_b, h, n = a.read_bytes(), b.read_bytes(), header_size(a), 16 + TAG
    a.write_bytes(blob_a[: h + 2 * n] + blob_b[h + 2 * n: h + 3 * n] + blob_a[h + 3 * n:])
    assert "segment 3 of 4" in error_of(a)
    b.write_bytes(blob_b[:h] + blob_a[h:])  # b's header (and data key) with a's segments
    assert "segment 1 of 4" in error_of(b)


def test_swapped_key_blocks_between_vaults_are_detected(tmp_path):
    a = make(tmp_path, os.urandom(40), 16, name="a")
    b = make(tmp_path, os.urandom(40), 16, name="b")
    blob_a, blob_b, h = a.read_bytes(), b.read_bytes(), header_size(a)
    spliced = blob_a[:71] + blob_b[71: h - 32]  # a's data block, b's wrapped data key
    a.write_bytes(with_checksum(spliced + bytes(32)) + blob_a[h:])
    assert "header failed authentication" in error_of(a)


# ---- header errors and fuzzing ------------------------------------------------------------

def test_wrong_and_missing_keys_name_the_needed_key(tmp_path):
    path = make(tmp_path, b"secret")
    message = error_of(path, OTHER)
    assert f"needs key id {KEY.key_id}" in message and OTHER.key_id in message and "other key" in message
    assert f"needs key id {KEY.key_id}" in error_of(path, None)


def test_empty_not_a_vault_and_unknown_version(tmp_path):
    empty, text = tmp_path / "empty.fcv", tmp_path / "data.csv"
    empty.write_bytes(b"")
    text.write_text("a,b\n1,2\n")
    assert "empty" in error_of(empty)
    assert "not a fedcredit vault" in error_of(text)
    path = make(tmp_path, b"x" * 10)
    h, blob = header_size(path), bytearray(path.read_bytes())
    struct.pack_into(">H", blob, 8, 2)
    path.write_bytes(with_checksum(bytes(blob[:h])) + bytes(blob[h:]))
    assert "version 2" in error_of(path) and "upgrade fedcredit" in error_of(path)
    assert not is_vault(text) and not is_vault(empty) and not is_vault(tmp_path / "missing")
    assert "not found" in error_of(tmp_path / "missing.fcv")


@settings(max_examples=300, deadline=None)
@given(blob=st.binary(max_size=400), with_magic=st.booleans())
def test_random_bytes_only_ever_raise_vault_error(tmp_path_factory, blob, with_magic):
    path = tmp_path_factory.mktemp("fuzz") / "f.fcv"
    path.write_bytes((MAGIC + blob) if with_magic else blob)
    for call in (lambda: inspect(path), lambda: decrypt_bytes(path, KEY)):
        with pytest.raises(VaultError):
            call()


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[bytes, bytes]:
    folder = tmp_path_factory.mktemp("sample")
    raw = make(folder, os.urandom(50), 16).read_bytes()
    pw = make(folder, os.urandom(50), 16, key=PassphraseKey(b"fuzzing passphrase"), name="pw").read_bytes()
    return raw, pw


@settings(max_examples=150, deadline=None)
@given(which=st.integers(0, 1), edits=st.lists(st.tuples(st.integers(0, 190), st.integers(0, 255)),
                                                  min_size=1, max_size=4),
       fix_checksum=st.booleans())
def test_mutated_headers_only_ever_raise_vault_error(tmp_path_factory, sample, which, edits, fix_checksum):
    blob = bytearray(sample[which])
    h = 172 if which == 0 else 191
    for pos, value in edits:
        blob[pos % h] = value
    header = with_checksum(bytes(blob[:h])) if fix_checksum else bytes(blob[:h])
    assume(header != sample[which][:h])
    path = tmp_path_factory.mktemp("mut") / "m.fcv"
    path.write_bytes(header + bytes(blob[h:]))
    key = KEY if which == 0 else PassphraseKey(b"fuzzing passphrase")
    try:
        inspect(path)
    except VaultError:
        pass
    with pytest.raises(VaultError) as info:
        decrypt_bytes(path, key)
    assert HEADER_OR_SEGMENT.search(str(info.value)) or "wrong" in str(info.value) or \
        "truncated" in str(info.value) or "extra byte" in str(info.value) or "passphrase" in str(info.value)


# ---- nothing written on error, source untouched ---------------------------------------------

def test_decrypt_file_writes_nothing_on_error(tmp_path):
    path = make(tmp_path, os.urandom(100), 16)
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(blob)
    out = tmp_path / "out.csv"
    out.write_text("previous content")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(VaultError, match="segment 7 of 7"):
        decrypt_file(path, out, KEY, overwrite=True)
    assert out.read_text() == "previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp file left
    assert path.read_bytes() == blob


def test_decrypt_bytes_creates_no_file(tmp_path, monkeypatch):
    path = make(tmp_path, os.urandom(100), 16)
    before = sorted(p.name for p in tmp_path.iterdir())

    def no_temp(*args, **kwargs):
        raise AssertionError("decrypt_bytes must not create temporary files")
    monkeypatch.setattr("tempfile.mkstemp", no_temp)
    monkeypatch.setattr("tempfile.NamedTemporaryFile", no_temp)
    assert len(decrypt_bytes(path, KEY)) == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_encrypt_refusals_write_nothing(tmp_path, monkeypatch):
    src = tmp_path / "d.csv"
    src.write_text("a,b\n1,2\n")
    with pytest.raises(VaultError, match="replace the file it encrypts"):
        encrypt_file(src, src, KEY)
    with pytest.raises(VaultError, match="not found"):
        encrypt_file(tmp_path / "missing.csv", tmp_path / "m.fcv", KEY)
    with pytest.raises(VaultError, match="segment size 8"):
        encrypt_file(src, tmp_path / "s.fcv", KEY, segment_size=8)
    vault_path = make(tmp_path, b"x")
    with pytest.raises(VaultError, match="already a vault"):
        encrypt_file(vault_path, tmp_path / "twice.fcv", KEY)
    monkeypatch.setattr(vault, "_hash_file", lambda p: (8, b"\0" * 32))  # the source "changes"
    with pytest.raises(VaultError, match="changed while being encrypted"):
        encrypt_file(src, tmp_path / "c.fcv", KEY)
    assert src.read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "v.fcv", "v.plain"]


@pytest.mark.parametrize("how", ["encrypt", "decrypt"])
def test_existing_output_is_refused_unless_overwrite(tmp_path, how):
    vault_path = make(tmp_path, b"the insurer's rows\n")
    src = tmp_path / "platform.csv"
    src.write_bytes(b"the platform's rows\n")
    existing = tmp_path / ("other.fcv" if how == "encrypt" else "notes.csv")
    existing.write_bytes(make(tmp_path, b"another vault", name="o").read_bytes() if how == "encrypt" else b"precious")
    before, names = existing.read_bytes(), sorted(p.name for p in tmp_path.iterdir())

    def run(**kw):
        return (encrypt_file(src, existing, OTHER, **kw) if how == "encrypt"
                else decrypt_file(vault_path, existing, KEY, **kw))
    with pytest.raises(VaultError, match=r"already exists; .* choose another name, or pass --force") as info:
        run()
    assert str(existing) in str(info.value)
    assert existing.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == names
    run(overwrite=True)
    assert (decrypt_bytes(existing, OTHER) == b"the platform's rows\n" if how == "encrypt"
            else existing.read_bytes() == b"the insurer's rows\n")


def test_output_appearing_during_the_write_is_not_replaced(tmp_path, monkeypatch):
    src = tmp_path / "d.csv"
    src.write_bytes(b"a,b\n1,2\n")
    dst = tmp_path / "d.fcv"
    real = vault._hash_file

    def someone_writes_dst(path):          # runs after the up-front check, before the rename
        dst.write_bytes(b"theirs")
        return real(path)
    monkeypatch.setattr(vault, "_hash_file", someone_writes_dst)
    with pytest.raises(VaultError, match="already exists"):
        encrypt_file(src, dst, KEY)
    assert dst.read_bytes() == b"theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "d.fcv"]


def test_decrypt_file_refuses_to_replace_the_vault(tmp_path):
    path = make(tmp_path, b"data")
    with pytest.raises(VaultError, match="replace the vault"):
        decrypt_file(path, path, KEY)
    assert decrypt_bytes(path, KEY) == b"data"


# ---- rekey ----------------------------------------------------------------------------------

def test_rekey_keeps_data_and_segments_and_retires_the_old_key(tmp_path):
    data = os.urandom(150)
    path = make(tmp_path, data, 16)
    before, body = inspect(path), path.read_bytes()[header_size(path):]
    info = rekey(path, KEY, OTHER)
    assert info.key_id == OTHER.key_id and info.fingerprint == before.fingerprint
    assert info.created == before.created
    assert path.read_bytes()[header_size(path):] == body  # segments copied verbatim
    assert decrypt_bytes(path, OTHER) == data
    assert f"needs key id {OTHER.key_id}" in error_of(path, KEY)


def test_rekey_to_and_from_a_passphrase(tmp_path):
    pw = PassphraseKey(b"rotation passphrase")
    path = make(tmp_path, b"abc" * 30, 16)
    rekey(path, KEY, pw)
    assert decrypt_bytes(path, pw) == b"abc" * 30 and inspect(path).kdf.startswith("scrypt")
    rekey(path, pw, OTHER)
    assert decrypt_bytes(path, OTHER) == b"abc" * 30 and inspect(path).kdf == "none"


def test_rekey_with_wrong_key_or_damage_changes_nothing(tmp_path):
    path = make(tmp_path, os.urandom(80), 16)
    original = path.read_bytes()
    with pytest.raises(VaultError, match="wrong key"):
        rekey(path, OTHER, KEY)
    assert path.read_bytes() == original
    damaged = bytearray(original)
    damaged[-3] ^= 0x10
    path.write_bytes(damaged)
    with pytest.raises(VaultError, match="segment 5 of 5"):
        rekey(path, KEY, OTHER)
    assert path.read_bytes() == damaged
    assert len(list(tmp_path.iterdir())) == 2


def test_vault_errors_are_input_errors():
    assert issubclass(VaultError, InputError)


def _monotone_to_the_end(calls: list[tuple[int, int, str]], total: int) -> None:
    dones = [done for done, _, _ in calls]
    assert dones == sorted(dones) and dones[-1] == total and {t for _, t, _ in calls} == {total}


def test_progress_of_a_multi_segment_file_is_monotone_and_ends_at_the_total(tmp_path):
    """Issue 10, part 5: encrypt reads the file twice (fingerprint, then segments), decrypt and rekey once;
    the callback hears of it at most once per PROGRESS_BYTES, and of its end."""
    data = os.urandom(3 * (1 << 20) + 12345)                  # 49 segments of 64 KiB, 4 MiB reports
    src, dst, back = tmp_path / "big.csv", tmp_path / "big.fcv", tmp_path / "back.csv"
    src.write_bytes(data)
    calls: list[tuple[int, int, str]] = []
    encrypt_file(src, dst, KEY, on_progress=lambda *c: calls.append(c))
    _monotone_to_the_end(calls, 2 * len(data))
    passes = [what for _, _, what in calls]
    assert passes[0].startswith("pass 1 of 2: fingerprint") and passes[-1] == "pass 2 of 2: encrypting big.csv"
    assert calls.index(next(c for c in calls if c[2].startswith("pass 2"))) > 1    # the first pass was followed
    assert 6 <= len(calls) <= 12                                # about one call per MiB read, not per segment

    calls.clear()
    decrypt_file(dst, back, KEY, on_progress=lambda *c: calls.append(c))
    assert back.read_bytes() == data
    _monotone_to_the_end(calls, len(data))
    assert {what for _, _, what in calls} == {"decrypting big.fcv"} and calls[0][0] == 0

    calls.clear()
    rekey(dst, KEY, OTHER, on_progress=lambda *c: calls.append(c))
    _monotone_to_the_end(calls, len(data))


def test_progress_hears_every_segment_when_asked(tmp_path, monkeypatch):
    monkeypatch.setattr(vault, "PROGRESS_BYTES", 1)
    src, dst = tmp_path / "s.csv", tmp_path / "s.fcv"
    src.write_bytes(b"x" * 100)
    calls: list[tuple[int, int, str]] = []
    encrypt_file(src, dst, KEY, segment_size=16, on_progress=lambda *c: calls.append(c))
    # pass 1 hashes in 1 MiB blocks (0, then 100); pass 2 reports each of the 7 segments
    assert [d for d, _, _ in calls] == [0, 100, 100, 116, 132, 148, 164, 180, 196, 200]
    calls.clear()
    decrypt_file(dst, tmp_path / "o.csv", KEY, on_progress=lambda *c: calls.append(c))
    assert [d for d, _, _ in calls] == [0, 16, 32, 48, 64, 80, 96, 100]


def test_an_empty_file_reports_its_end(tmp_path):
    src, dst = tmp_path / "e.csv", tmp_path / "e.fcv"
    src.write_bytes(b"")
    calls: list[tuple[int, int, str]] = []
    encrypt_file(src, dst, KEY, on_progress=lambda *c: calls.append(c))
    assert calls and all(c[:2] == (0, 0) for c in calls)
