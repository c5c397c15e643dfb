"""Write files so a reader never sees half of one: temp file in the same folder, then rename."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from fedcredit.credit import strict_json


def stage(path: str | Path, write: Callable[[IO[bytes]], None], *, mode: int | None = None) -> Path:
    """A finished temp file beside `path`, written by `write(f)` and fsynced, not yet in place: the
    caller renames or links it (several files can be staged, then swapped together). `mode` sets
    its permission bits before anything is written (default 0600, mkstemp's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None], *, overwrite: bool = True,
                 mode: int | None = None) -> Path:
    """Call `write(f)` on a temp file beside `path`, fsync it, then rename it over `path`.

    With `overwrite=False` an existing `path` (file, folder or symlink) is never replaced:
    FileExistsError before anything is written, and again if one appears meanwhile (the
    finished temp file is hard-linked into place, which fails when `path` exists).
    """
    path = Path(path)
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "already exists", str(path))
    tmp = stage(path, write, mode=mode)
    try:
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(str(tmp), path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _link_new(tmp: str, path: Path) -> None:
    """Put `tmp` at `path` only if nothing is there (atomic where hard links exist)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "already exists", str(path)) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(path):   # a file system without hard links: check, then rename
            raise FileExistsError(errno.EEXIST, "already exists", str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Standard JSON only: NaN or ±Infinity anywhere in `data` raises NonFiniteError (nothing written)."""
    return atomic_write_text(path, strict_json.dumps(data, indent=2, sort_keys=False, default=jsonable) + "\n")


def jsonable(value: Any) -> Any:
    """`default=` for json: numpy arrays and scalars as Python values, paths as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
