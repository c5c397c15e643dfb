"""Key files, env keys and passphrase keys: permissions, ids, derivation, clear errors."""

from __future__ import annotations

import base64
import os
import re
import stat

import pytest

from fedcredit.credit.errors import InputError
from fedcredit.protection.keys import (
    KEY_BYTES,
    KdfParams,
    KeyEncryptionKey,
    KeySourceError,
    PassphraseKey,
    load_key,
    new_key_file,
)


def test_new_key_file_is_owner_only_and_loads_back(tmp_path):
    path = tmp_path / "partner.key"
    key = new_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_key(str(path))
    assert isinstance(loaded, KeyEncryptionKey)
    assert loaded == key and loaded.key_id == key.key_id
    assert key.key_id in path.read_text()  # the public id is noted in a comment line


def test_new_key_file_never_overwrites(tmp_path):
    path = tmp_path / "partner.key"
    new_key_file(path)
    before = path.read_bytes()
    with pytest.raises(KeySourceError, match="already exists"):
        new_key_file(path)
    assert path.read_bytes() == before


def test_new_key_file_ignores_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        path = tmp_path / "k.key"
        new_key_file(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_key_file_readable_by_others_is_refused(tmp_path, mode):
    path = tmp_path / "k.key"
    new_key_file(path)
    path.chmod(mode)
    with pytest.raises(KeySourceError, match=re.escape(f"chmod 600 {path}")):
        load_key(str(path))


def test_key_ids_identify_without_revealing(tmp_path):
    a, b = KeyEncryptionKey.generate(), KeyEncryptionKey.generate()
    assert a.key_id != b.key_id and len(a.key_id) == 16
    assert KeyEncryptionKey(a.material).key_id == a.key_id  # derived from the key, stable
    assert a.material.hex()[:16] != a.key_id
    assert a.material.hex() not in repr(a) and a.key_id in repr(a)


@pytest.mark.parametrize("content, message", [
    ("", "one base64 line"),
    ("AAAA\nBBBB\n", "one base64 line"),
    ("not base64!!\n", "not base64"),
    (base64.b64encode(b"short").decode() + "\n", "holds 5 bytes"),
])
def test_malformed_key_files_are_explained(tmp_path, content, message):
    path = tmp_path / "bad.key"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(KeySourceError, match=message):
        load_key(str(path))


def test_missing_key_file_says_how_to_make_one(tmp_path):
    with pytest.raises(KeySourceError, match="keys new"):
        load_key(str(tmp_path / "nope.key"))


def test_env_key(monkeypatch):
    key = KeyEncryptionKey.generate()
    monkeypatch.setenv("FC_TEST_KEY", base64.b64encode(key.material).decode())
    assert load_key("env:FC_TEST_KEY") == key
    monkeypatch.setenv("FC_TEST_KEY", base64.b64encode(b"x" * 31).decode())
    with pytest.raises(KeySourceError, match=f"holds 31 bytes; a key is {KEY_BYTES}"):
        load_key("env:FC_TEST_KEY")
    monkeypatch.delenv("FC_TEST_KEY")
    with pytest.raises(KeySourceError, match="'FC_TEST_KEY' is not set"):
        load_key("env:FC_TEST_KEY")


def test_passphrase_key_is_derived_per_salt(monkeypatch):
    monkeypatch.setenv("FC_TEST_PASS", "correct horse battery staple")
    source = load_key("passphrase-env:FC_TEST_PASS")
    assert isinstance(source, PassphraseKey)
    kek, kdf = source.for_new_file()
    assert kdf is not None and (kdf.log2_n, kdf.r, kdf.p) == (15, 8, 1) and len(kdf.salt) == 16
    assert source.for_file(kdf, source="v").key_id == kek.key_id          # same salt, same key
    other_kek, other_kdf = source.for_new_file()
    assert other_kdf.salt != kdf.salt and other_kek.key_id != kek.key_id  # fresh salt per file
    assert PassphraseKey(b"another passphrase").for_file(kdf, source="v").key_id != kek.key_id
    assert "correct horse" not in repr(source)


def test_passphrase_and_raw_keys_refuse_the_other_kind_of_vault():
    kdf = KdfParams(b"s" * 16)
    with pytest.raises(KeySourceError, match="passphrase-env:NAME"):
        KeyEncryptionKey.generate().for_file(kdf, source="v")
    with pytest.raises(KeySourceError, match="not a passphrase"):
        PassphraseKey(b"pw").for_file(None, source="v")


def test_empty_passphrase_and_empty_spec_are_refused(monkeypatch):
    monkeypatch.setenv("FC_TEST_PASS", "")
    with pytest.raises(KeySourceError, match="not set or empty"):
        load_key("passphrase-env:FC_TEST_PASS")
    with pytest.raises(KeySourceError, match="no key given"):
        load_key("")
    with pytest.raises(KeySourceError, match="empty"):
        PassphraseKey(b"")


@pytest.mark.parametrize("params", [dict(log2_n=21), dict(log2_n=9), dict(r=0), dict(p=17),
                                    dict(log2_n=20, r=16)])
def test_scrypt_limits_bound_what_a_header_can_demand(params):
    with pytest.raises(ValueError, match="out of range"):
        KdfParams(b"s" * 16, **params).check()


def test_errors_are_input_errors():
    assert issubclass(KeySourceError, InputError)
