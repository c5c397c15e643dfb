"""`fedcredit keys|vault|audit`: exit codes, one-line errors, nothing written on error, sources untouched."""

from __future__ import annotations

import base64
import stat

import pytest

from fedcredit.protection.audit import AuditLog
from fedcredit.protection.keys import load_key
from tests.commands import one_line_error, run

CSV = "age,income,bad_flag\n41,52000,0\n29,31000,1\n" * 50


@pytest.fixture
def files(tmp_path, capsys):
    key, src, vault = tmp_path / "bank.key", tmp_path / "bank.csv", tmp_path / "bank.fcv"
    assert run(capsys, "keys", "new", key)[0] == 0
    src.write_text(CSV)
    assert run(capsys, "vault", "encrypt", src, vault, "--key", key)[0] == 0
    return key, src, vault


def test_keys_new_and_refusal_to_overwrite(tmp_path, capsys):
    key = tmp_path / "k.key"
    code, out, _ = run(capsys, "keys", "new", key)
    assert code == 0 and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert load_key(str(key)).key_id in out
    before = key.read_bytes()
    code, _, err = run(capsys, "keys", "new", key)
    assert code == 2 and "already exists" in one_line_error(err) and key.read_bytes() == before


def test_encrypt_decrypt_inspect_round_trip(files, tmp_path, capsys):
    key, src, vault = files
    assert src.read_text() == CSV
    code, out, _ = run(capsys, "vault", "inspect", vault)
    assert code == 0 and load_key(str(key)).key_id in out and f"plaintext {len(CSV)} bytes" in out
    out_path = tmp_path / "back.csv"
    assert run(capsys, "vault", "decrypt", vault, out_path, "--key", key)[0] == 0
    assert out_path.read_text() == CSV


def test_vault_encrypt_refuses_an_existing_output_unless_force(files, tmp_path, capsys):
    """Case c16: a mistyped OUT naming another partner's only vault must not destroy it."""
    key, _, vault = files
    other_key, other_src = tmp_path / "platform.key", tmp_path / "platform.csv"
    assert run(capsys, "keys", "new", other_key)[0] == 0
    other_src.write_text("age,income,bad_flag\n33,41000,0\n" * 20)
    before, names = vault.read_bytes(), sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, "vault", "encrypt", other_src, vault, "--key", other_key)
    line = one_line_error(err)
    assert code == 2 and out == "" and str(vault) in line and "already exists" in line
    assert "choose another name" in line and "--force" in line
    assert vault.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == names
    assert run(capsys, "vault", "decrypt", vault, tmp_path / "still.csv", "--key", key)[0] == 0
    assert (tmp_path / "still.csv").read_text() == CSV                      # the bank's data is intact

    code, out, _ = run(capsys, "vault", "encrypt", other_src, vault, "--key", other_key, "--force")
    assert code == 0 and load_key(str(other_key)).key_id in out
    assert run(capsys, "vault", "decrypt", vault, tmp_path / "new.csv", "--key", other_key)[0] == 0
    assert (tmp_path / "new.csv").read_text() == other_src.read_text()


def test_vault_decrypt_refuses_an_existing_output_unless_force(files, tmp_path, capsys):
    key, _, vault = files
    notes = tmp_path / "notes.csv"
    notes.write_bytes(b"precious\n")
    names = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, "vault", "decrypt", vault, notes, "--key", key)
    line = one_line_error(err)
    assert code == 2 and out == "" and str(notes) in line and "already exists" in line and "--force" in line
    assert notes.read_bytes() == b"precious\n" and sorted(p.name for p in tmp_path.iterdir()) == names
    code, out, _ = run(capsys, "vault", "decrypt", vault, notes, "--key", key, "--force")
    assert code == 0 and f"wrote {notes}" in out and notes.read_text() == CSV


def test_wrong_key_fails_cleanly(files, tmp_path, capsys):
    key, _, vault = files
    other = tmp_path / "other.key"
    run(capsys, "keys", "new", other)
    before = vault.read_bytes()
    out_path = tmp_path / "out.csv"
    code, _, err = run(capsys, "vault", "decrypt", vault, out_path, "--key", other)
    line = one_line_error(err)
    assert code == 2 and f"needs key id {load_key(str(key)).key_id}" in line
    assert not out_path.exists() and vault.read_bytes() == before


def test_missing_key_names_the_needed_key(files, tmp_path, capsys):
    key, _, vault = files
    code, _, err = run(capsys, "vault", "decrypt", vault, tmp_path / "o.csv")
    assert code == 2 and load_key(str(key)).key_id in one_line_error(err) and not (tmp_path / "o.csv").exists()
    code, _, err = run(capsys, "vault", "encrypt", tmp_path / "bank.csv", tmp_path / "x.fcv")
    assert code == 2 and "no key given" in one_line_error(err) and not (tmp_path / "x.fcv").exists()


def test_tampered_vault_writes_nothing(files, tmp_path, capsys):
    key, _, vault = files
    blob = bytearray(vault.read_bytes())
    blob[len(blob) // 2] ^= 4
    vault.write_bytes(blob)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run(capsys, "vault", "decrypt", vault, tmp_path / "o.csv", "--key", key)
    assert code == 2 and "segment 1 of 1" in one_line_error(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and vault.read_bytes() == blob


def test_rekey_then_old_key_fails(files, tmp_path, capsys):
    key, _, vault = files
    new = tmp_path / "new.key"
    run(capsys, "keys", "new", new)
    code, out, _ = run(capsys, "vault", "rekey", vault, "--key", key, "--new-key", new)
    assert code == 0 and load_key(str(new)).key_id in out
    code, _, err = run(capsys, "vault", "decrypt", vault, tmp_path / "o.csv", "--key", key)
    assert code == 2 and "wrong key" in one_line_error(err)
    assert run(capsys, "vault", "decrypt", vault, tmp_path / "o.csv", "--key", new)[0] == 0
    assert (tmp_path / "o.csv").read_text() == CSV


def test_group_readable_key_file_is_refused(files, tmp_path, capsys):
    key, src, _ = files
    key.chmod(0o644)
    code, _, err = run(capsys, "vault", "encrypt", src, tmp_path / "n.fcv", "--key", key)
    assert code == 2 and f"chmod 600 {key}" in one_line_error(err) and not (tmp_path / "n.fcv").exists()


def test_env_and_passphrase_keys(tmp_path, capsys, monkeypatch):
    src, vault, back = tmp_path / "d.csv", tmp_path / "d.fcv", tmp_path / "back.csv"
    src.write_text(CSV)
    monkeypatch.setenv("FC_PASS", "partner passphrase for tests")
    assert run(capsys, "vault", "encrypt", src, vault, "--key", "passphrase-env:FC_PASS")[0] == 0
    assert "scrypt" in run(capsys, "vault", "inspect", vault)[1]
    monkeypatch.setenv("FC_KEY", base64.b64encode(bytes(32)).decode())
    assert run(capsys, "vault", "rekey", vault, "--key", "passphrase-env:FC_PASS", "--new-key", "env:FC_KEY")[0] == 0
    assert run(capsys, "vault", "decrypt", vault, back, "--key", "env:FC_KEY")[0] == 0
    assert back.read_text() == CSV
    code, _, err = run(capsys, "vault", "decrypt", vault, tmp_path / "x.csv", "--key", "env:FC_UNSET_VAR")
    assert code == 2 and "FC_UNSET_VAR" in one_line_error(err)


def test_inspect_of_a_plain_file_fails(files, capsys):
    _, src, _ = files
    code, _, err = run(capsys, "vault", "inspect", src)
    assert code == 2 and "not a fedcredit vault" in one_line_error(err)


def test_audit_verify_and_show(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    for i in range(3):
        log.append({"partner": "bank-a", "purpose": "train", "round": i})
    code, out, _ = run(capsys, "audit", "verify", path)
    assert code == 0 and "intact, 3 event(s)" in out
    code, out, _ = run(capsys, "audit", "show", path)
    assert code == 0 and out.count("bank-a") == 3
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + lines[2])
    code, _, err = run(capsys, "audit", "verify", path)
    assert code == 1 and "line 2" in one_line_error(err)
    code, _, err = run(capsys, "audit", "verify", tmp_path / "missing.jsonl")
    assert code == 2 and "not found" in one_line_error(err)
