"""An append-only JSON-lines file in which every record carries the hash of the one before.

Editing, deleting, inserting or reordering a record breaks the chain at a line that
`read()` names. Appends go through O_APPEND, are flushed and fsynced before returning,
and the file is never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from credit import strict_json

GENESIS = "0" * 64


class ChainError(ValueError):
    """The file is not an intact chain; `line` is the first bad line (1-based)."""

    def __init__(self, path: Path, line: int, reason: str):
        super().__init__(f"{path}: line {line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


def record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class HashChainLog:
    """Read/verify and append records of one chained JSON-lines file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """Every record, verified; raises ChainError at the first bad line."""
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            line = data.count(b"\n") + 1
            raise ChainError(self.path, line, "ends with an incomplete record (a write was cut off)")
        records: list[dict[str, Any]] = []
        prev = GENESIS
        for number, raw in enumerate(data.splitlines(), start=1):
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ChainError(self.path, number, f"not a JSON record ({exc.__class__.__name__})") from exc
            if not isinstance(record, dict) or "hash" not in record or "prev" not in record:
                raise ChainError(self.path, number, "record lacks its chain fields")
            if record["prev"] != prev:
                raise ChainError(self.path, number, "does not follow the previous record "
                                 "(a record was deleted, inserted or reordered)")
            if record_hash(record) != record["hash"]:
                raise ChainError(self.path, number, "content does not match its hash (edited)")
            prev = record["hash"]
            records.append(record)
        return records

    def append(self, record: dict[str, Any], *, prev: str | None = None) -> dict[str, Any]:
        """Chain `record` after the last one and write it durably; returns it with its hash."""
        if prev is None:
            existing = self.read()
            prev = existing[-1]["hash"] if existing else GENESIS
        chained = {**record, "prev": prev}
        chained["hash"] = record_hash(chained)
        line = (strict_json.dumps(chained, sort_keys=True, separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return chained
