"""An append-only JSON-lines file in which every record carries the hash of the one before.

Editing, deleting, inserting or reordering a record breaks the chain at a line that
`read()` names. Appends go through O_APPEND, are flushed and fsynced before returning,
and the file is never rewritten.

A write cut off by a crash leaves a torn last line. `read()` refuses it; `read_tolerant()`
returns the intact records and the torn bytes, and `seal()` closes them off without
rewriting anything: it ends the torn line and appends a `{"type": "torn"}` record that
names the line and the SHA-256 of its bytes, chained to the last intact record. A sealed
torn line is skipped by both readers; any other damage is still an error.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedcredit.credit import strict_json

GENESIS = "0" * 64


class ChainError(ValueError):
    """The file is not an intact chain; `line` is the first bad line (1-based)."""

    def __init__(self, path: Path, line: int, reason: str):
        super().__init__(f"{path}: line {line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


def record_hash(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class ChainRead:
    """The intact records of a chain, and its torn last line if a write was cut off."""

    records: list[dict[str, Any]]
    torn: bytes | None = None      # the torn last line's bytes (no newline), if any
    torn_line: int | None = None   # its 1-based line number
    unterminated: bool = False     # the last record is whole but its newline was lost

    @property
    def head(self) -> str:
        return self.records[-1]["hash"] if self.records else GENESIS


def torn_digest(fragment: bytes) -> str:
    return hashlib.sha256(fragment).hexdigest()


class HashChainLog:
    """Read/verify and append records of one chained JSON-lines file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict[str, Any]]:
        """Every record, verified; raises ChainError at the first bad line (a torn last line too)."""
        read = self._scan(tolerate_torn_tail=False)
        return read.records

    def read_tolerant(self) -> ChainRead:
        """Like `read()`, but a torn last line is returned in `ChainRead.torn` instead of raising."""
        return self._scan(tolerate_torn_tail=True)

    def seal(self, read: ChainRead) -> None:
        """Close off the torn (or unterminated) last line found by `read_tolerant()`, appending only."""
        if read.unterminated:
            self._write(b"\n")
        elif read.torn is not None:
            self._write(b"\n")
            self.append({"type": "torn", "line": read.torn_line, "bytes": len(read.torn),
                         "sha256": torn_digest(read.torn)}, prev=read.head)

    def _scan(self, *, tolerate_torn_tail: bool) -> ChainRead:
        if not self.path.exists():
            return ChainRead([])
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()             # b"" when the file ends with a newline
        records: list[dict[str, Any]] = []
        prev, pending = GENESIS, None  # pending: (line number, bytes) of a line that may be a sealed tear
        for number, raw in enumerate(lines, start=1):
            record, problem = _parse(raw, prev)
            if pending is not None:
                if not (problem is None and record.get("type") == "torn" and record.get("line") == pending[0]
                        and record.get("sha256") == torn_digest(pending[1])):
                    raise ChainError(self.path, pending[0], pending[2])
                pending = None
            elif problem:
                if number < len(lines):  # maybe a torn line sealed by the next record
                    pending = (number, raw, problem)
                    continue
                raise ChainError(self.path, number, problem)
            prev = record["hash"]
            records.append(record)
        if pending is not None:
            raise ChainError(self.path, pending[0], pending[2])
        if not tail:
            return ChainRead(records)
        line = len(lines) + 1
        record, problem = _parse(tail, prev)
        if not tolerate_torn_tail:
            raise ChainError(self.path, line, "ends with an incomplete record (a write was cut off)")
        if problem is None:
            return ChainRead([*records, record], unterminated=True)
        return ChainRead(records, torn=tail, torn_line=line)

    def _write(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, record: dict[str, Any], *, prev: str | None = None) -> dict[str, Any]:
        """Chain `record` after the last one and write it durably; returns it with its hash."""
        if prev is None:
            existing = self.read()
            prev = existing[-1]["hash"] if existing else GENESIS
        chained = {**record, "prev": prev}
        chained["hash"] = record_hash(chained)
        self._write((strict_json.dumps(chained, sort_keys=True, separators=(",", ":")) + "\n").encode())
        return chained


def _parse(raw: bytes, prev: str) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a line that is a record chained after `prev`, else (record or None, why not)."""
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"not a JSON record ({exc.__class__.__name__})"
    if not isinstance(record, dict) or "hash" not in record or "prev" not in record:
        return None, "record lacks its chain fields"
    if record["prev"] != prev:
        return record, "does not follow the previous record (a record was deleted, inserted or reordered)"
    if record_hash(record) != record["hash"]:
        return record, "content does not match its hash (edited)"
    return record, None
