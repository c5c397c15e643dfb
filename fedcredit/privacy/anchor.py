"""The machine's own record of every private release of a dataset: the ledger's anchor.

A partner's ledger is a file beside its data (or in its `ledger_dir`) named after the
partner. A file can be restored from an older backup, copied to another folder, or used
under another partner name, and each of those, alone, would restart or roll back the
lifetime epsilon. The anchor closes those doors: one hash-chained journal per dataset
FINGERPRINT in the machine's state folder, written BEFORE the ledger line (write-ahead),
so every release the ledger holds — or would have held, had a write been torn — is also
here. `fedcredit.privacy.ledger` reads both (and the audit trail) and counts their union.

The state folder is `$FEDCREDIT_STATE_DIR` or `~/.local/state/fedcredit`; this module is the
only place that reads that variable. Keep the folder on the partner's own machine and in
its backups like the ledger; a restored anchor is still cross-checked against the ledger
and the audit trail, and epsilon is never lower than what any of the three proves.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fedcredit.protection.chain import ChainError, HashChainLog

STATE_ENV = "FEDCREDIT_STATE_DIR"
FORMAT = "fedcredit-dataset-anchor/1"


def state_dir() -> Path:
    """The machine's fedcredit state folder (anchors live in its `privacy/` subfolder)."""
    return Path(os.environ.get(STATE_ENV) or Path.home() / ".local" / "state" / "fedcredit").expanduser()


class DatasetAnchor:
    """Append-only journal of one dataset's releases on this machine, keyed by its fingerprint."""

    def __init__(self, fingerprint: str, folder: str | Path | None = None):
        if not fingerprint or not all(c in "0123456789abcdef" for c in fingerprint):
            raise ValueError(f"a dataset fingerprint is a hex SHA-256, got {fingerprint!r}")
        self.fingerprint = fingerprint
        self.folder = Path(folder) if folder is not None else state_dir() / "privacy"
        self.path = self.folder / f"{fingerprint}.jsonl"
        self._chain = HashChainLog(self.path)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise readers-then-writers of this dataset's anchor and ledger across processes."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / f"{self.fingerprint}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def records(self, *, seal: bool = True) -> list[dict[str, Any]]:
        """The release records (header excluded). A torn last line is skipped (and sealed, unless
        `seal` is False): the anchor is written first, so its torn line was never followed by a release."""
        read = self._chain.read_tolerant()
        if seal and (read.torn is not None or read.unterminated):
            self._chain.seal(read)
        records = read.records
        if records and (records[0].get("type") != "header" or records[0].get("fingerprint") != self.fingerprint):
            raise ChainError(self.path, 1, f"is not the {FORMAT} file of dataset {self.fingerprint[:16]}…")
        return [r for r in records[1:] if r.get("type") == "release"]

    def append(self, release: dict[str, Any]) -> None:
        """Record one release durably (fsynced); creates the journal on first use."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._chain.append({"type": "header", "format": FORMAT, "fingerprint": self.fingerprint})
        self._chain.append({**release, "type": "release"})
