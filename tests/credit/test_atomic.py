"""`atomic_write(..., overwrite=False)` never replaces an existing file, even one that appears meanwhile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fedcredit.credit.atomic import atomic_write


def test_atomic_write_without_overwrite_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "only-copy.bin"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        atomic_write(path, lambda f: f.write(b"new"), overwrite=False)
    assert path.read_bytes() == b"precious" and os.listdir(tmp_path) == ["only-copy.bin"]
    dangling = tmp_path / "link"
    dangling.symlink_to(tmp_path / "nowhere")         # a dangling symlink is something too
    with pytest.raises(FileExistsError):
        atomic_write(dangling, lambda f: f.write(b"new"), overwrite=False)
    assert not (tmp_path / "nowhere").exists()

    def appears_meanwhile(f) -> None:               # another writer wins the race: still refused
        f.write(b"mine")
        (tmp_path / "raced").write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        atomic_write(tmp_path / "raced", appears_meanwhile, overwrite=False)
    assert (tmp_path / "raced").read_bytes() == b"theirs"
    assert sorted(os.listdir(tmp_path)) == ["link", "only-copy.bin", "raced"]
    atomic_write(tmp_path / "new.bin", lambda f: f.write(b"fresh"), overwrite=False)
    assert (tmp_path / "new.bin").read_bytes() == b"fresh"
