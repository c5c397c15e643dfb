"""fedcredit.protection.node_keys: a partner's node key rotation never touches the key in use before the commit,
never overwrites a file, always leaves PATH a valid key; fingerprints are OpenSSH's."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from fedcredit.cli.main import main
from fedcredit.credit.errors import InputError
from fedcredit.protection import tls
from fedcredit.protection.node_keys import commit_rotation, file_fingerprint, start_rotation


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def key(tmp_path: Path) -> Path:
    tls.new_node_key(tmp_path / "node.key", comment="bank-a")
    return tmp_path / "node.key"


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="OpenSSH's ssh-keygen is not installed")
def test_fingerprint_is_what_ssh_keygen_prints(key: Path) -> None:
    done = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True, check=True)
    assert done.stdout.split()[1] == file_fingerprint(f"{key}.pub")


def test_rotation_writes_the_next_pair_beside_the_untouched_key(key: Path) -> None:
    before = files(key.parent)
    r = start_rotation(key)
    assert (r.next_key, r.public_key) == (Path(f"{key}.next"), Path(f"{key}.next.pub"))
    assert mode(r.next_key) == 0o600 and mode(r.public_key) == 0o644
    assert r.public_key.read_text().rstrip().endswith(" bank-a")           # the current key's comment
    assert r.fingerprint == file_fingerprint(r.public_key) != file_fingerprint(f"{key}.pub")
    assert {n: b for n, b in files(key.parent).items() if n in before} == before
    tls.check_node_private_key(r.next_key)


def test_commit_swaps_in_the_next_key_and_keeps_the_old_one(key: Path) -> None:
    old_key, old_pub = key.read_bytes(), Path(f"{key}.pub").read_bytes()
    started = start_rotation(key)
    new_key, new_pub = started.next_key.read_bytes(), started.public_key.read_bytes()
    r = commit_rotation(key)
    assert sorted(files(key.parent)) == ["node.key", "node.key.old", "node.key.old.pub", "node.key.pub"]
    assert key.read_bytes() == new_key and Path(f"{key}.pub").read_bytes() == new_pub
    assert Path(f"{key}.old").read_bytes() == old_key and Path(f"{key}.old.pub").read_bytes() == old_pub
    assert mode(key) == mode(Path(f"{key}.old")) == 0o600
    assert (r.fingerprint, r.old_key) == (started.fingerprint, Path(f"{key}.old"))
    assert r.old_fingerprint == file_fingerprint(f"{key}.old.pub")


def test_an_interrupted_commit_can_be_run_again(key: Path) -> None:
    start_rotation(key)
    os.link(key, f"{key}.old")                     # the commit stopped after keeping the old key ...
    os.link(f"{key}.pub", f"{key}.old.pub")
    os.replace(f"{key}.next", key)                 # ... and swapping the private key
    r = commit_rotation(key)
    assert sorted(files(key.parent)) == ["node.key", "node.key.old", "node.key.old.pub", "node.key.pub"]
    assert file_fingerprint(f"{key}.pub") == r.fingerprint


@pytest.mark.parametrize("setup, words", [
    (lambda k: start_rotation(k), "a rotation is already pending"),
    (lambda k: Path(f"{k}.old").write_text("x"), "the key retired by the previous rotation"),
    (lambda k: k.unlink(), "no current key here: make the first one with `fedcredit node-key new PATH`"),
    (lambda k: k.write_text("not a key"), "not an unencrypted OpenSSH private key"),
])
def test_rotation_refusals_write_nothing(key: Path, setup, words: str) -> None:
    setup(key)
    before = files(key.parent)
    with pytest.raises(InputError, match=words):
        start_rotation(key)
    assert files(key.parent) == before


def test_commit_refusals_change_nothing(key: Path) -> None:
    with pytest.raises(InputError, match="no rotation pending"):
        commit_rotation(key)
    r = start_rotation(key)
    r.public_key.write_bytes(Path(f"{key}.pub").read_bytes())       # the wrong .pub beside the next key
    before = files(key.parent)
    with pytest.raises(InputError, match="is not the public key of"):
        commit_rotation(key)
    assert files(key.parent) == before


def test_cli_prints_the_next_steps_and_errors_in_one_line(key: Path, capsys) -> None:
    assert main(["node-key", "rotate", str(key)]) == 0
    out = capsys.readouterr().out
    assert f"send {key}.next.pub to the coordinator" in out and "fedcredit server register" in out
    assert f"fedcredit node-key rotate {key} --commit" in out
    assert main(["node-key", "rotate", str(key), "--commit"]) == 0
    out = capsys.readouterr().out
    assert f"the previous one is {key}.old" in out and "fedcredit partner start" in out
    assert main(["node-key", "rotate", str(key), "--commit"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fedcredit: error: ") and "no rotation pending" in err[0]
