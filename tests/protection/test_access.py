"""Purpose-bound vault access: policy refusal, in-memory plaintext, an audit event for every attempt."""

from __future__ import annotations

import hashlib
import io
import json

import pandas as pd
import pytest

from fedcredit.credit.errors import InputError
from fedcredit.protection.access import DEFAULT_PURPOSES, AccessDenied, AccessPolicy, open_vault
from fedcredit.protection.audit import AuditError, AuditLog, verify
from fedcredit.protection.keys import KeyEncryptionKey
from fedcredit.protection.vault import VaultError, encrypt_file

KEY = KeyEncryptionKey.generate()
CSV = b"age,income,bad_flag\n41,52000,0\n29,31000,1\n"


@pytest.fixture
def setup(tmp_path):
    src, vault = tmp_path / "bank.csv", tmp_path / "bank.fcv"
    src.write_bytes(CSV)
    encrypt_file(src, vault, KEY, segment_size=16)
    src.unlink()
    return vault, AuditLog(tmp_path / "audit" / "access.jsonl")


def events(log: AuditLog) -> list[dict]:
    return [json.loads(line) for line in log.path.read_text().splitlines()]


def test_granted_access_returns_plaintext_and_is_audited(setup):
    vault, log = setup
    data = open_vault(vault, KEY, purpose="train", policy=AccessPolicy(), audit=log, partner="bank-a",
                      run="run-7", round=3, details={"epsilon": 0.8})
    assert data == CSV
    assert pd.read_csv(io.BytesIO(data)).shape == (2, 3)
    [event] = events(log)
    assert event["outcome"] == "granted" and event["partner"] == "bank-a" and event["purpose"] == "train"
    assert (event["run"], event["round"], event["epsilon"]) == ("run-7", 3, 0.8)
    assert event["dataset"] == hashlib.sha256(CSV).hexdigest()
    assert verify(log.path).ok


def test_refused_purpose_is_audited_and_returns_nothing(setup):
    vault, log = setup
    with pytest.raises(AccessDenied, match="'marketing' is not allowed.*evaluate, stats, train"):
        open_vault(vault, KEY, purpose="marketing", policy=AccessPolicy(), audit=log, partner="bank-a")
    [event] = events(log)
    assert event["outcome"] == "refused" and event["purpose"] == "marketing"
    assert event["dataset"] == hashlib.sha256(CSV).hexdigest()


def test_custom_policy_narrows_purposes(setup):
    vault, log = setup
    policy = AccessPolicy(frozenset({"stats"}))
    assert open_vault(vault, KEY, purpose="stats", policy=policy, audit=log, partner="b") == CSV
    with pytest.raises(AccessDenied):
        open_vault(vault, KEY, purpose="train", policy=policy, audit=log, partner="b")
    assert [e["outcome"] for e in events(log)] == ["granted", "refused"]


def test_failed_decryption_is_audited(setup):
    vault, log = setup
    with pytest.raises(VaultError, match="wrong key"):
        open_vault(vault, KeyEncryptionKey.generate(), purpose="train", policy=AccessPolicy(), audit=log,
                   partner="bank-a")
    [event] = events(log)
    assert event["outcome"] == "failed" and KEY.key_id in event["reason"]


def test_no_data_without_an_audit_record(setup, tmp_path):
    vault, _ = setup
    blocked = tmp_path / "blocked"
    blocked.mkdir()  # a directory where the log file should be: the append fails
    with pytest.raises(AuditError):
        open_vault(vault, KEY, purpose="train", policy=AccessPolicy(), audit=AuditLog(blocked), partner="b")


def test_plaintext_never_touches_disk(setup, monkeypatch):
    vault, log = setup
    folder = vault.parent

    def no_temp(*args, **kwargs):
        raise AssertionError("no temporary files while opening a vault")
    monkeypatch.setattr("tempfile.mkstemp", no_temp)
    monkeypatch.setattr("tempfile.NamedTemporaryFile", no_temp)
    open_vault(vault, KEY, purpose="evaluate", policy=AccessPolicy(), audit=log, partner="b")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == ["audit/access.jsonl", "bank.fcv"]
    assert b"52000" not in b"".join((folder / f).read_bytes() for f in files)


def test_policy_validation():
    assert AccessPolicy().purposes == DEFAULT_PURPOSES == frozenset({"train", "evaluate", "stats"})
    with pytest.raises(InputError):
        AccessPolicy(frozenset())
    with pytest.raises(InputError):
        AccessPolicy("train")  # type: ignore[arg-type]
    assert AccessPolicy({"train"}).purposes == frozenset({"train"})  # type: ignore[arg-type]


def test_partner_is_required(setup):
    vault, log = setup
    with pytest.raises(InputError, match="partner"):
        open_vault(vault, KEY, purpose="train", policy=AccessPolicy(), audit=log, partner="")
    assert not log.path.exists()
