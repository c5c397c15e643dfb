"""The data-access audit trail: a hash-chained JSON-lines log of who opened which dataset, why.

Each line is one event (any JSON fields: partner, purpose, dataset, run, round, epsilon
spent …) plus `seq` (1-based line number), `time` (UTC), `prev` (the previous event's hash)
and `hash` = SHA-256 over the canonical JSON of everything else (see `fedcredit.protection.chain`).
The file is opened in append mode, each event flushed and fsynced, never rewritten;
appends from several processes are serialised with an advisory lock.

What `verify` detects: any edited, inserted, deleted or reordered event, and a last line
cut off mid-write, naming the first bad line. What it cannot detect from the log alone:
the removal of the last event(s), or replacing the whole log with a fresh consistent one —
for that keep an anchor outside the log's reach. `AuditLog(path, head_file=...)` updates a
head file (event count and last hash) after every append, and `verify(path, head_file=...)`
checks the log against it; `AuditCheck.head` is the hash to copy elsewhere by hand.
A head file kept beside the log protects against accidents, not against whoever can edit both.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fedcredit.credit.atomic import atomic_write_json
from fedcredit.credit.errors import InputError
from fedcredit.protection.chain import GENESIS, ChainError, HashChainLog

RESERVED = ("seq", "time", "prev", "hash")
HEAD_FORMAT = "fedcredit-audit-head/1"


class AuditError(InputError):
    """The audit log cannot be read or written, or an event cannot be recorded."""


@dataclass(frozen=True)
class AuditCheck:
    """Result of `verify`: ok, the number of lines, the first bad line (1-based) and why."""

    ok: bool
    lines: int
    first_bad_line: int | None
    reason: str
    head: str = ""  # hash of the last event of an intact log ("" if empty or broken)


class AuditLog:
    """Append events to one audit log (and optionally keep its head file current)."""

    def __init__(self, path: str | Path, *, head_file: str | Path | None = None):
        self.path = Path(path)
        self.head_file = Path(head_file) if head_file is not None else None

    def append(self, event: dict[str, Any]) -> dict[str, Any]:
        """Record `event` durably and return it as written (with seq, time, prev, hash)."""
        clash = sorted(set(event) & set(RESERVED))
        if clash:
            raise AuditError(f"event fields {clash} are reserved for the log itself", source=str(self.path))
        try:
            json.dumps(event, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise AuditError(f"event cannot be recorded as JSON: {exc}", source=str(self.path)) from exc
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AuditError(f"cannot be opened for writing: {exc.strerror}", source=str(self.path)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
            check = verify(self.path, head_file=self.head_file if self._head_exists() else None)
            if not check.ok:
                raise AuditError(f"line {check.first_bad_line}: {check.reason}; nothing was appended — keep "
                                 "this log as evidence and start a new one", source=str(self.path))
            record = {**event, "seq": check.lines + 1,
                      "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
            written = HashChainLog(self.path).append(record, prev=check.head or GENESIS)
            if self.head_file is not None:
                atomic_write_json(self.head_file, {"format": HEAD_FORMAT, "lines": written["seq"],
                                                   "hash": written["hash"]})
            return written
        except OSError as exc:
            raise AuditError(f"cannot be written: {exc.strerror}", source=str(self.path)) from exc
        finally:
            os.close(fd)

    def _head_exists(self) -> bool:
        return self.head_file is not None and self.head_file.exists()


def _canonical(record: dict[str, Any]) -> bytes:
    """The one serialisation `HashChainLog` writes: any other bytes mean an edit."""
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def _read_head(head_file: Path) -> tuple[int, str]:
    try:
        head = json.loads(head_file.read_text())
        if head.get("format") != HEAD_FORMAT:
            raise ValueError(f"format is not {HEAD_FORMAT}")
        lines, value = head["lines"], head["hash"]
        if not isinstance(lines, int) or not isinstance(value, str):
            raise ValueError("bad 'lines' or 'hash'")
        return lines, value
    except FileNotFoundError:
        raise AuditError("head file not found", source=str(head_file)) from None
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise AuditError(f"is not an audit head file: {exc}", source=str(head_file)) from exc


def verify(path: str | Path, *, head_file: str | Path | None = None) -> AuditCheck:
    """Check the chain (and the head file, if given); never raises for a broken log."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise AuditError("audit log not found", source=str(path)) from None
    except OSError as exc:
        raise AuditError(f"cannot be read: {exc.strerror}", source=str(path)) from exc
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    try:
        records = HashChainLog(path).read()
    except ChainError as exc:
        return AuditCheck(False, lines, exc.line, exc.reason)
    for number, (record, raw) in enumerate(zip(records, data.splitlines()), start=1):
        if _canonical(record) != raw:
            return AuditCheck(False, lines, number, "is not in canonical form (the bytes were edited)")
        if record.get("seq") != number:
            return AuditCheck(False, lines, number, f"has sequence number {record.get('seq')!r}, expected {number}")
    head = records[-1]["hash"] if records else ""
    if head_file is not None:
        anchored, anchor = _read_head(Path(head_file))
        if len(records) < anchored:
            return AuditCheck(False, lines, len(records) + 1, f"missing: the head file records {anchored} "
                              f"event(s), the log has {len(records)} (events were removed from the end)")
        if anchored and records[anchored - 1]["hash"] != anchor:
            return AuditCheck(False, lines, anchored, "does not match the head file's hash (the log was "
                              "replaced or rewritten)")
        if len(records) > anchored:
            return AuditCheck(False, lines, anchored + 1, "is not covered by the head file (appended without "
                              "updating it, or interrupted before the head file was written)")
    return AuditCheck(True, lines, None, "intact", head)


def show(path: str | Path) -> str:
    """The log as a readable table, followed by the result of `verify`."""
    path = Path(path)
    check = verify(path)
    rows = []
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            event = json.loads(raw)
            if not isinstance(event, dict):
                raise ValueError
        except ValueError:
            rows.append((str(number), "<not a JSON event>", "", "", "", "", "", ""))
            continue
        other = {k: v for k, v in event.items() if k not in {*RESERVED, "partner", "purpose", "outcome",
                                                                "dataset", "run", "round"}}
        rows.append((str(event.get("seq", "?")), str(event.get("time", "")), str(event.get("partner", "")),
                     str(event.get("purpose", "")), str(event.get("outcome", "")),
                     str(event.get("dataset", ""))[:12], f"{event.get('run', '')}"
                     + (f"/r{event['round']}" if event.get("round") is not None else ""),
                     " ".join(f"{k}={v}" for k, v in sorted(other.items()))))
    header = ("seq", "time", "partner", "purpose", "outcome", "dataset", "run/round", "details")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    out = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in [header, *rows]]
    if check.ok:
        out.append(f"chain intact: {check.lines} event(s), head {check.head or '-'}")
    else:
        out.append(f"CHAIN BROKEN at line {check.first_bad_line}: {check.reason}")
    return "\n".join(line.rstrip() for line in out)
