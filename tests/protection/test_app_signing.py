"""App-bundle signatures: a bundle runs on a partner only if a key it trusts signed exactly it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from fedcredit.credit.errors import InputError
from fedcredit.deployment import PROJECT_DIR
from fedcredit.deployment.app_bundle import app_digest, build_bundle, sign_app
from fedcredit.protection import tls
from fedcredit.protection.app_signing import AppRejected, load_trusted_keys, new_signing_key, verify_bundle


@pytest.fixture(scope="module")
def bundle() -> bytes:
    return build_bundle(PROJECT_DIR)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "app.key", new_signing_key(tmp_path / "app.key")


def test_the_bundle_is_reproducible_and_holds_only_the_packages(bundle: bytes) -> None:
    import io
    import zipfile

    from flwr.cli.build import build_fab_from_disk

    assert build_bundle(PROJECT_DIR) == bundle            # reproducible
    assert build_fab_from_disk(PROJECT_DIR) == bundle     # and byte for byte what `flwr run` builds and sends
    tops = {n.split("/")[0] for n in zipfile.ZipFile(io.BytesIO(bundle)).namelist()}
    assert tops == {"fedcredit", "pyproject.toml", ".info"}


def test_signed_bundle_verifies(keys, bundle: bytes) -> None:
    key, pub = keys
    sig = sign_app(key, PROJECT_DIR)
    assert sig.fab_sha256 == app_digest(PROJECT_DIR)
    trusted = load_trusted_keys([pub])
    assert verify_bundle(bundle, sig.to_text(), trusted) == sig
    assert (key.stat().st_mode & 0o777) == 0o600 and pub.read_text().startswith("ssh-ed25519 ")


def test_keygen_never_overwrites(keys) -> None:
    key, pub = keys
    before = key.read_bytes()
    with pytest.raises(InputError, match="never overwritten"):
        new_signing_key(key)
    assert key.read_bytes() == before


@pytest.mark.parametrize("case, words", [
    ("unsigned", "unsigned"),
    ("other bundle", "changed after it was signed"),
    ("untrusted key", "does not trust"),
    ("forged", "does not verify"),
    ("garbage", "not a fedcredit app signature"),
])
def test_every_bad_signature_is_refused_with_its_reason(keys, tmp_path: Path, bundle: bytes, case: str,
                                                        words: str) -> None:
    key, pub = keys
    text = sign_app(key, PROJECT_DIR).to_text()
    content = bundle
    if case == "unsigned":
        text = ""
    elif case == "other bundle":
        content = bundle + b"\0"                           # one byte appended: another bundle
    elif case == "untrusted key":
        new_signing_key(tmp_path / "other.key")
        text = sign_app(tmp_path / "other.key", PROJECT_DIR).to_text()
    elif case == "forged":
        raw = json.loads(text)
        raw["signed_at"] = "2030-01-01T00:00:00Z"         # the signature no longer covers the message
        text = json.dumps(raw)
    elif case == "garbage":
        text = "{not json"
    with pytest.raises(AppRejected, match=words):
        verify_bundle(content, text, load_trusted_keys([pub]))


def test_a_signature_made_for_one_bundle_cannot_be_moved_to_another(keys, bundle: bytes) -> None:
    key, pub = keys
    raw = json.loads(sign_app(key, PROJECT_DIR).to_text())
    import hashlib

    other = bundle + b"x"
    raw["fab_sha256"] = hashlib.sha256(other).hexdigest()    # claim the other bundle, keep the signature
    with pytest.raises(AppRejected, match="does not verify"):
        verify_bundle(other, json.dumps(raw), load_trusted_keys([pub]))
    raw["signature"] = base64.b64encode(b"\0" * 64).decode()
    with pytest.raises(AppRejected, match="does not verify"):
        verify_bundle(other, json.dumps(raw), load_trusted_keys([pub]))


def test_trusted_key_files_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_trusted_keys([tmp_path / "missing.pub"])
    node = tls.new_node_key(tmp_path / "node.key")            # an EC node key is not an app-signing key
    with pytest.raises(InputError, match="not Ed25519"):
        load_trusted_keys([node.public_key])
    (tmp_path / "junk.pub").write_text("hello\n")
    with pytest.raises(InputError, match="not an OpenSSH public key"):
        load_trusted_keys([tmp_path / "junk.pub"])
    (tmp_path / "empty.pub").write_text("\n")
    with pytest.raises(InputError, match="nothing could ever run"):
        load_trusted_keys([tmp_path / "empty.pub"])


def test_signing_with_a_wrong_key_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="fedcredit app keygen"):
        sign_app(tmp_path / "none.key", PROJECT_DIR)
    node = tls.new_node_key(tmp_path / "node.key")
    with pytest.raises(InputError, match="not an Ed25519 key"):
        sign_app(node.private_key, PROJECT_DIR)
