"""Rotating a SuperNode authentication key on the partner's machine; key fingerprints.

A rotation never leaves the partner without a key the coordinator admits:

1. `start_rotation(PATH)` writes a new pair `PATH.next` (0600) and `PATH.next.pub` beside the
   current key, which stays untouched. The partner sends `PATH.next.pub` to the coordinator, who
   registers it beside the current one (`fedcredit server register`).
2. `commit_rotation(PATH)`, once the coordinator has registered it: the current pair becomes
   `PATH.old` / `PATH.old.pub` (hard links: PATH never disappears) and `PATH.next` replaces `PATH`
   by a rename, so at every moment PATH is one of the two registered keys. The partner restarts its
   SuperNode, the coordinator unregisters the old key, and the partner deletes `PATH.old`.

Fingerprints are OpenSSH's (`SHA256:` + unpadded base64 of the key blob, as `ssh-keygen -lf`
prints them), so both sides can compare a key over the phone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from fedcredit.credit.errors import InputError
from fedcredit.protection import tls

NEXT, OLD = ".next", ".old"


def fingerprint(public_line: str) -> str:
    """OpenSSH SHA256 fingerprint of a public key line (`type base64 [comment]`)."""
    parts = public_line.split()
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (IndexError, binascii.Error):
        raise InputError(f"not an OpenSSH public key line: {public_line[:40]!r}") from None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def file_fingerprint(path: str | Path, *, source: str | None = None, field: str = "public_key") -> str:
    """Fingerprint of a node public key file, checked as Flower reads it (EC on a NIST curve)."""
    return fingerprint(tls.check_node_public_key(path, source=source, field=field))


def _public_line(private_key: Path) -> str:
    """The OpenSSH public line (no comment) of a checked node private key."""
    public = tls.check_node_private_key(private_key, field="", source=str(private_key))
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode("ascii")


def with_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _comment(pub: Path) -> str:
    try:
        parts = pub.read_text(encoding="ascii").split(maxsplit=2)
    except (OSError, UnicodeDecodeError):
        return ""
    return parts[2].strip() if len(parts) == 3 else ""


@dataclass(frozen=True)
class Rotation:
    """The files of a rotation and the fingerprints of the keys involved."""

    key: Path                  # PATH: the key the SuperNode uses
    next_key: Path             # PATH.next (start) / PATH (after commit)
    public_key: Path           # PATH.next.pub (start) / PATH.pub (after commit)
    fingerprint: str           # of the new key
    old_key: Path | None = None
    old_fingerprint: str = ""


def start_rotation(path: str | Path, *, comment: str | None = None) -> Rotation:
    """Write the next key pair `PATH.next` / `PATH.next.pub` (never overwrites; PATH untouched).
    The comment defaults to the current public key's (e.g. the partner's name)."""
    path = Path(path).expanduser()
    nxt, old = with_suffix(path, NEXT), with_suffix(path, OLD)
    if not path.is_file():
        raise InputError("no current key here: make the first one with `fedcredit node-key new PATH`",
                         source=str(path))
    _public_line(path)
    if os.path.lexists(nxt):
        raise InputError(f"a rotation is already pending ({nxt} exists): send {tls.public_key_path(nxt)} to the "
                         f"coordinator and, once registered, run `fedcredit node-key rotate {path} --commit`; or "
                         f"delete {nxt} and {tls.public_key_path(nxt)} to start over", source=str(path))
    if os.path.lexists(old):
        raise InputError(f"{old} (the key retired by the previous rotation) still exists: delete it and "
                         f"{tls.public_key_path(old)} once the coordinator has unregistered it, then rotate again",
                         source=str(path))
    if comment is None:
        comment = _comment(tls.public_key_path(path))
    files = tls.new_node_key(nxt, comment=comment)
    return Rotation(path, files.private_key, files.public_key, fingerprint(files.public_line))


def _link_new(src: Path, dst: Path) -> None:
    """Hard-link `src` as `dst` (fails if `dst` exists, unless it already is `src`)."""
    if os.path.lexists(dst):
        if dst.exists() and os.path.samefile(src, dst):
            return
        raise InputError(f"{dst} exists (the key retired by an earlier rotation): delete it and "
                         f"{tls.public_key_path(dst)} once the coordinator has unregistered that key, then "
                         "commit again", source=str(src))
    os.link(src, dst)


def commit_rotation(path: str | Path) -> Rotation:
    """Make `PATH.next` the key: keep the current pair as `PATH.old` / `PATH.old.pub`, then rename
    `PATH.next.pub` → `PATH.pub` and `PATH.next` → `PATH` (each atomic; never overwrites `PATH.old`)."""
    path = Path(path).expanduser()
    nxt, old = with_suffix(path, NEXT), with_suffix(path, OLD)
    pub, nxt_pub, old_pub = (tls.public_key_path(p) for p in (path, nxt, old))
    if not nxt.is_file():
        if nxt_pub.is_file() and old.is_file() and path.is_file() and fingerprint(_public_line(path)) == \
                file_fingerprint(nxt_pub, source=str(nxt_pub)):
            os.replace(nxt_pub, pub)            # an interrupted commit: only the .pub was left to move
            return Rotation(path, path, pub, fingerprint(_public_line(path)), old, fingerprint(_public_line(old)))
        raise InputError(f"no rotation pending ({nxt} does not exist): start one with `fedcredit node-key rotate "
                         f"{path}`", source=str(path))
    if not path.is_file():
        raise InputError(f"the current key {path} is missing: restore it, or start over with `fedcredit node-key "
                         "new`", source=str(path))
    new_line, current_line = _public_line(nxt), _public_line(path)
    if not nxt_pub.is_file() or file_fingerprint(nxt_pub, source=str(nxt_pub)) != fingerprint(new_line):
        raise InputError(f"{nxt_pub} is missing or is not the public key of {nxt}: delete both and start over with "
                         f"`fedcredit node-key rotate {path}`", source=str(path))
    _link_new(path, old)
    if pub.is_file():
        _link_new(pub, old_pub)
    os.replace(nxt, path)          # the private key first: what the SuperNode reads
    os.replace(nxt_pub, pub)
    return Rotation(path, path, pub, fingerprint(new_line), old, fingerprint(current_line))
