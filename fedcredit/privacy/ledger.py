"""A partner's lifetime privacy ledger: every private release of one dataset, ever.

One append-only, hash-chained JSON-lines file (see `fedcredit.protection.chain`) per partner dataset,
kept by the partner. The first record names the dataset by fingerprint; every later record
is a release (DP-SGD steps, a noisy statistic, a noisy evaluation) with its own id, the run
and round it belongs to, and the rows it read (an interval of row fractions, see
`fedcredit.privacy.accountant.Charge`). Epsilon is always recomputed from the whole ledger — never
kept as a running number.

Epsilon can never go down:
- Spend is written BEFORE the release leaves: first to the machine's anchor for the
  dataset (`fedcredit.privacy.anchor`, keyed by fingerprint), then to this ledger, then to the audit
  trail. A crash can only over-count.
- A torn last record (power cut mid-write) is sealed (appended over, never rewritten) and
  counted: from the anchor, else from the fragment's own fields, else as the costliest
  release the ledger knows.
- Opening reconciles the ledger with the anchor and with the partner's audit trail: any
  release one of them proves and the ledger lacks (a restored older copy, the same data
  under another partner name or folder) is appended back to the ledger, marked
  `recovered`, and the anchor learns what only the ledger knew. `notes` says what happened.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fedcredit.credit.errors import InputError
from fedcredit.privacy.accountant import ALL_ROWS, Charge, PrivacySpent, Release, compose, compose_rows
from fedcredit.privacy.anchor import DatasetAnchor
from fedcredit.protection.chain import ChainError, ChainRead, HashChainLog

FORMAT = "fedcredit-privacy-ledger/1"
MECHANISMS = ("dp-sgd", "gaussian-statistics", "gaussian-evaluation", "gaussian-fairness",
              "gaussian-histogram", "gaussian-gram")   # histogram: a gbdt level; gram: a vertical Gram release
HELD_OUT_MECHANISMS = ("gaussian-evaluation", "gaussian-fairness")   # releases on the held-out rows


class LedgerError(InputError):
    """The ledger is corrupted, belongs to another dataset, or cannot be written."""


def ledger_path(folder: str | Path, partner: str) -> Path:
    return Path(folder) / f"{partner}.privacy-ledger.jsonl"


@dataclass(frozen=True)
class LedgerEntry:
    """One release as recorded: what was done, when, for which run and round, on which rows."""

    seq: int
    time: str
    run: str
    round: int
    mechanism: str          # one of MECHANISMS
    release: Release
    delta: float
    rows: tuple[float, float] = ALL_ROWS
    id: str = ""
    recovered: str = ""     # "" if written by the release itself; else where it was recovered from

    @property
    def charge(self) -> Charge:
        return Charge(self.release, self.rows)


def _entry(seq: int, r: dict[str, Any]) -> LedgerEntry:
    rows = tuple(r.get("rows") or ALL_ROWS)
    return LedgerEntry(seq, r.get("time", ""), r.get("run", ""), int(r.get("round", 0)), r["mechanism"],
                       Release(r["noise_multiplier"], r["sample_rate"], r["steps"]), r["delta"],
                       (float(rows[0]), float(rows[1])), r.get("id", ""), r.get("recovered", ""))


def release_key(r: dict[str, Any]) -> str:
    """What identifies a release across ledger, anchor and audit trail: its id (older records
    without one: run, round, mechanism and parameters)."""
    if r.get("id"):
        return str(r["id"])
    mechanism = r.get("mechanism") or r.get("purpose")
    return f"{r.get('run')}|{r.get('round')}|{mechanism}|{r['noise_multiplier']!r}|{r['sample_rate']!r}|{r['steps']}"


_RELEASE_FIELDS = ("id", "partner", "run", "round", "mechanism", "rows", "noise_multiplier", "sample_rate",
                   "steps", "delta", "time")


def _release_record(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r[k] for k in _RELEASE_FIELDS if k in r}
    if "mechanism" not in out and r.get("purpose") in MECHANISMS:   # an audit-trail event
        out["mechanism"] = r["purpose"]
    return out


class PrivacyLedger:
    """Open with `PrivacyLedger.open(path, fingerprint, partner)`; nothing is cached."""

    def __init__(self, path: Path, fingerprint: str, partner: str, anchor: DatasetAnchor | None = None,
                 *, readonly: bool = False):
        self.path, self.fingerprint, self.partner, self.anchor = path, fingerprint, partner, anchor
        self._chain = HashChainLog(path)
        self.notes: list[str] = []
        self.readonly = readonly
        self._unwritten: list[dict[str, Any]] = []   # readonly: what reconciliation would have appended

    @classmethod
    def open(cls, path: str | Path, fingerprint: str, partner: str, *, anchor: DatasetAnchor | None = None,
             audit: str | Path | None = None, readonly: bool = False) -> PrivacyLedger:
        """Verify an existing ledger (or start one) for the dataset with this fingerprint, and
        reconcile it with the dataset's anchor and the partner's audit trail (if given).
        `readonly` writes nothing (no file is created): what reconciliation finds is held in memory."""
        ledger = cls(Path(path), fingerprint, partner, anchor, readonly=readonly)
        audit = Path(audit) if audit else None
        if anchor is None:
            ledger._reconcile(audit)
        else:
            with anchor.locked():
                ledger._reconcile(audit)
        if not readonly:
            ledger.check_writable()
        return ledger

    @classmethod
    def inspect(cls, path: str | Path) -> PrivacyLedger:
        """Open an existing ledger read-only (chain verified) without knowing its dataset."""
        path = Path(path)
        if not path.is_file():
            raise LedgerError("ledger file not found", source=str(path))
        read = cls(path, "", "")._read()
        header = next((r for r in read.records if r.get("type") == "header"), {})
        if header.get("type") != "header" or header.get("format") != FORMAT:
            raise LedgerError(f"not a {FORMAT} file", source=str(path))
        ledger = cls(path, header["fingerprint"], header.get("partner", ""))
        if read.torn is not None:
            ledger.notes.append(f"line {read.torn_line} is torn (a write was cut off); it is counted when the "
                                "partner next opens the ledger")
        return ledger

    # -- reading and reconciling -----------------------------------------------------------
    def _read(self) -> ChainRead:
        try:
            return self._chain.read_tolerant()
        except ChainError as exc:
            raise LedgerError(
                f"is damaged at line {exc.line}: {exc.reason}. fedcredit never edits a ledger: move this file "
                "aside (keep it as evidence) and run again — a new ledger is rebuilt from the dataset's anchor "
                "and the audit trail, so no recorded release is forgotten", source=str(self.path)) from exc
        except OSError as exc:
            raise LedgerError(f"cannot be read: {exc}", source=str(self.path)) from exc

    def _reconcile(self, audit: Path | None) -> None:
        read = self._read()
        if not any(r.get("type") == "header" for r in read.records):
            if any(r.get("type") == "release" for r in read.records):
                raise LedgerError(f"not a {FORMAT} file", source=str(self.path))
            if (read.torn is not None or read.unterminated) and not self.readonly:   # a header torn before any release
                self._chain.seal(read)
            self._append({"type": "header", "format": FORMAT, "fingerprint": self.fingerprint,
                          "partner": self.partner})
            read = self._read()
        header = next(r for r in [*read.records, *self._unwritten] if r.get("type") == "header")
        if header.get("type") != "header" or header.get("format") != FORMAT:
            raise LedgerError(f"not a {FORMAT} file", source=str(self.path))
        if header.get("fingerprint") != self.fingerprint:
            raise LedgerError(
                f"belongs to another dataset (fingerprint {str(header.get('fingerprint'))[:16]}…, the data "
                f"is {self.fingerprint[:16]}…): point [privacy].ledger_dir elsewhere, or restore the data "
                "it was kept for", source=str(self.path))
        held = {release_key(r): r for r in read.records if r.get("type") == "release"}
        torn = self._torn_release(read, list(held.values())) if read.torn is not None else None
        if (read.torn is not None or read.unterminated) and not self.readonly:
            self._chain.seal(read)
        known: dict[str, tuple[dict[str, Any], str]] = {}
        if self.anchor is not None:
            for r in self._anchor_records():
                known.setdefault(release_key(r), (r, "anchor"))
        if audit is not None:
            for r in self._audit_releases(audit):
                known.setdefault(release_key(r), (r, "audit trail"))
        if torn is not None and release_key(torn) not in known:
            known[release_key(torn)] = (torn, "torn record")
        missing = [(r, source) for key, (r, source) in known.items() if key not in held]
        for r, source in missing:
            self._append({"type": "release", **_release_record(r), "recovered": source})
        if read.torn is not None:
            self.notes.append(f"line {read.torn_line} was torn by an interrupted write: sealed and counted as spent")
        elif read.unterminated:
            self.notes.append("the last record lost its line end in an interrupted write: completed and counted")
        if missing:
            sources = sorted({s for _, s in missing})
            self.notes.append(f"{len(missing)} release(s) proven by the {' and '.join(sources)} were missing from "
                              "this ledger (restored from an older copy, or the data was used under another name or "
                              "folder): appended back; epsilon counts them")
        if self.anchor is not None and not self.readonly:
            anchored = {release_key(r) for r in self._anchor_records()}
            for key, r in held.items():
                if key not in anchored:
                    self.anchor.append(_release_record(r))

    def _anchor_records(self) -> list[dict[str, Any]]:
        try:
            return self.anchor.records(seal=not self.readonly)
        except ChainError as exc:
            raise LedgerError(f"the dataset's anchor is damaged at line {exc.line}: {exc.reason}; move it aside "
                              "(keep it as evidence): it is rebuilt from the ledger and the audit trail",
                              source=str(exc.path)) from exc

    def _audit_releases(self, audit: Path) -> list[dict[str, Any]]:
        """The audit trail's privacy releases of this dataset (read leniently: a broken line is
        skipped — the trail can only add spend here, never remove it)."""
        try:
            lines = audit.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LedgerError(f"the audit trail cannot be read: {exc}", source=str(audit)) from exc
        found = []
        for raw in lines:
            try:
                event = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if (isinstance(event, dict) and event.get("event") == "privacy-release"
                    and event.get("dataset") == self.fingerprint and event.get("purpose") in MECHANISMS):
                try:
                    Release(event["noise_multiplier"], event["sample_rate"], event["steps"])
                except (KeyError, TypeError, ValueError):
                    continue
                found.append({**_release_record(event), "delta": event.get("delta", 1e-6)})
        return found

    def _torn_release(self, read: ChainRead, held: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The release a torn last line was writing: by its id (then the anchor has it), else
        from its own fields, else the costliest release the ledger holds (over-count)."""
        text = read.torn.decode("utf-8", "replace")
        if '"type":"header"' in text or '"type":"torn"' in text:
            return None  # not a release
        fields: dict[str, Any] = {}
        for name in ("id", "run", "mechanism"):
            if m := re.search(rf'"{name}":"([^"]*)"', text):
                fields[name] = m.group(1)
        for name in ("noise_multiplier", "sample_rate", "delta", "round", "steps"):
            if m := re.search(rf'"{name}":(-?[0-9.eE+-]+)[,}}]', text):
                fields[name] = float(m.group(1))
        if m := re.search(r'"rows":\[([0-9.eE+-]+),([0-9.eE+-]+)\]', text):
            fields["rows"] = [float(m.group(1)), float(m.group(2))]
        try:
            release = Release(fields["noise_multiplier"], fields["sample_rate"], int(fields["steps"]))
            fields.update(steps=release.steps, round=int(fields.get("round", 0)))
            fields.setdefault("mechanism", "dp-sgd")
            fields.setdefault("delta", held[-1]["delta"] if held else 1e-6)
            fields.setdefault("id", uuid.uuid4().hex)
            return fields
        except (KeyError, ValueError):
            pass
        if held:
            costliest = max(held, key=lambda r: compose([Release(r["noise_multiplier"], r["sample_rate"],
                                                                 r["steps"])], 1e-6).epsilon)
            return {**_release_record(costliest), "id": fields.get("id") or uuid.uuid4().hex,
                    "run": fields.get("run", ""), "rows": list(ALL_ROWS)}
        return {"id": fields.get("id") or uuid.uuid4().hex, "run": fields.get("run", ""), "round": 0,
                "mechanism": "gaussian-statistics", "rows": list(ALL_ROWS), "noise_multiplier": 0.5,
                "sample_rate": 1.0, "steps": 1, "delta": 1e-6}

    # -- writing ---------------------------------------------------------------------------
    def check_writable(self) -> None:
        if not os.access(self.path, os.W_OK):
            raise LedgerError("cannot be written: check its permissions and the disk", source=str(self.path))

    def _append(self, record: dict[str, Any]) -> dict[str, Any]:
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
        if self.readonly:
            self._unwritten.append(record)
            return record
        try:
            return self._chain.append(record)
        except OSError as exc:
            raise LedgerError(f"cannot be written ({exc}); no update was released",
                              source=str(self.path)) from exc

    def record(self, release: Release, *, mechanism: str, delta: float, run: str, round: int,
               rows: tuple[float, float] = ALL_ROWS) -> LedgerEntry:
        """Append one release durably (anchor first, then this ledger; both fsynced)."""
        if mechanism not in MECHANISMS:
            raise ValueError(f"unknown mechanism {mechanism!r}; one of {list(MECHANISMS)}")
        if self.readonly:
            raise LedgerError("opened read-only: nothing can be charged", source=str(self.path))
        Charge(release, rows)   # validates the interval
        rec = {"type": "release", "id": uuid.uuid4().hex, "partner": self.partner, "run": run, "round": round,
               "mechanism": mechanism, "rows": list(rows), "noise_multiplier": release.noise_multiplier,
               "sample_rate": release.sample_rate, "steps": release.steps, "delta": delta,
               "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        if self.anchor is not None:
            with self.anchor.locked():
                try:
                    self.anchor.append(_release_record(rec))
                except OSError as exc:
                    raise LedgerError(f"the dataset's anchor cannot be written ({exc}); no update was released",
                                      source=str(self.anchor.path)) from exc
                written = self._append(rec)
        else:
            written = self._append(rec)
        return _entry(len(self.entries()), written)

    # -- reading entries -------------------------------------------------------------------
    def entries(self) -> list[LedgerEntry]:
        read = self._read()
        releases = [r for r in [*read.records, *self._unwritten] if r.get("type") == "release"]
        return [_entry(seq, r) for seq, r in enumerate(releases, start=1)]

    def charges(self) -> list[Charge]:
        return [e.charge for e in self.entries()]

    def releases(self) -> list[Release]:
        return [e.release for e in self.entries()]

    def spent(self, delta: float) -> PrivacySpent:
        """Lifetime epsilon of the whole ledger at `delta` (worst cell of rows)."""
        return compose_rows(self.charges(), delta)
