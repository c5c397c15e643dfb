"""A partner's lifetime privacy ledger: every private release of one dataset, ever.

One append-only, hash-chained JSON-lines file (see `privacy.chain`) per partner dataset,
kept by the partner. The first record names the dataset by fingerprint; every later record
is a release (DP-SGD steps, or a noisy statistic) with the run and round it belongs to.
Epsilon is always recomputed from the whole ledger — never kept as a running number.
Spend is appended and fsynced BEFORE the update it pays for leaves the partner, so a crash
can only over-count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from credit.errors import InputError
from privacy.accountant import PrivacySpent, Release, compose
from privacy.chain import ChainError, HashChainLog

FORMAT = "fedcredit-privacy-ledger/1"


class LedgerError(InputError):
    """The ledger is corrupted, belongs to another dataset, or cannot be written."""


def ledger_path(folder: str | Path, partner: str) -> Path:
    return Path(folder) / f"{partner}.privacy-ledger.jsonl"


@dataclass(frozen=True)
class LedgerEntry:
    """One release as recorded: what was done, when, for which run and round."""

    seq: int
    time: str
    run: str
    round: int
    mechanism: str          # "dp-sgd" or "gaussian-statistics"
    release: Release
    delta: float


class PrivacyLedger:
    """Open with `PrivacyLedger.open(path, fingerprint, partner)`; nothing is cached."""

    def __init__(self, path: Path, fingerprint: str, partner: str):
        self.path, self.fingerprint, self.partner = path, fingerprint, partner
        self._chain = HashChainLog(path)

    @classmethod
    def open(cls, path: str | Path, fingerprint: str, partner: str) -> PrivacyLedger:
        """Verify an existing ledger (or start one) for the dataset with this fingerprint."""
        ledger = cls(Path(path), fingerprint, partner)
        records = ledger._records()
        if not records:
            ledger._append({"type": "header", "format": FORMAT, "fingerprint": fingerprint,
                            "partner": partner})
        else:
            header = records[0]
            if header.get("type") != "header" or header.get("format") != FORMAT:
                raise LedgerError(f"not a {FORMAT} file", source=str(path))
            if header.get("fingerprint") != fingerprint:
                raise LedgerError(
                    f"belongs to another dataset (fingerprint {str(header.get('fingerprint'))[:16]}…, the data "
                    f"is {fingerprint[:16]}…): point [privacy].ledger_dir elsewhere, or restore the data "
                    "it was kept for", source=str(path))
        ledger.check_writable()
        return ledger

    @classmethod
    def inspect(cls, path: str | Path) -> PrivacyLedger:
        """Open an existing ledger read-only (chain verified) without knowing its dataset."""
        path = Path(path)
        if not path.is_file():
            raise LedgerError("ledger file not found", source=str(path))
        records = cls(path, "", "")._records()
        header = records[0] if records else {}
        if header.get("type") != "header" or header.get("format") != FORMAT:
            raise LedgerError(f"not a {FORMAT} file", source=str(path))
        return cls(path, header["fingerprint"], header.get("partner", ""))

    def check_writable(self) -> None:
        if not os.access(self.path, os.W_OK):
            raise LedgerError("cannot be written: check its permissions and the disk", source=str(self.path))

    def _records(self) -> list[dict[str, Any]]:
        try:
            return self._chain.read()
        except ChainError as exc:
            raise LedgerError(f"is corrupted at line {exc.line}: {exc.reason}; it is never repaired "
                              "automatically — restore it from a backup", source=str(self.path)) from exc
        except OSError as exc:
            raise LedgerError(f"cannot be read: {exc}", source=str(self.path)) from exc

    def _append(self, record: dict[str, Any]) -> dict[str, Any]:
        record = {**record, "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        try:
            return self._chain.append(record)
        except OSError as exc:
            raise LedgerError(f"cannot be written ({exc}); no update was released",
                              source=str(self.path)) from exc

    def entries(self) -> list[LedgerEntry]:
        out = []
        for seq, r in enumerate(self._records()[1:], start=1):
            out.append(LedgerEntry(seq, r["time"], r.get("run", ""), int(r.get("round", 0)), r["mechanism"],
                                   Release(r["noise_multiplier"], r["sample_rate"], r["steps"]), r["delta"]))
        return out

    def releases(self) -> list[Release]:
        return [e.release for e in self.entries()]

    def record(self, release: Release, *, mechanism: str, delta: float, run: str, round: int) -> LedgerEntry:
        """Append one release durably (fsynced) and return it as recorded."""
        rec = self._append({"type": "release", "partner": self.partner, "run": run, "round": round,
                            "mechanism": mechanism, "noise_multiplier": release.noise_multiplier,
                            "sample_rate": release.sample_rate, "steps": release.steps, "delta": delta})
        return LedgerEntry(len(self.entries()), rec["time"], run, round, mechanism, release, delta)

    def spent(self, delta: float) -> PrivacySpent:
        """Epsilon of the whole ledger at `delta`."""
        return compose(self.releases(), delta)
