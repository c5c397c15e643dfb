"""One party of a vertical federation: its table (keys, own columns, the label at the label holder), its
privacy gate, and what it remembers between the messages of one run.

Deployment starts a fresh ClientApp process per message, so a party keeps between phases a small state
file (0600, written atomically) in its privacy folder: its PSI secret and shuffle, its channel key, the
alignment (its own row numbers in the agreed order), its fitted transform and planned noise. Never a row,
never a customer key. The alignment is also cached per pair of key-set fingerprints, so a second run on the
same files skips the PSI; a changed file changes its fingerprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedcredit.clients.partner import file_fingerprint, privacy_folder, privacy_gate, vault_access
from fedcredit.credit.atomic import atomic_write_text
from fedcredit.credit.customer_keys import key_set_fingerprint
from fedcredit.credit.errors import InputError
from fedcredit.credit.party_table import PartyTable, prepare_party_table
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.reading import read_table, read_table_bytes
from fedcredit.credit.scenario import Partner
from fedcredit.privacy.gate import PrivacyGate
from fedcredit.protection.access import open_vault, reuse_vault
from fedcredit.protection.keys import load_key
from fedcredit.protection.vault import is_vault

_CACHE: dict[tuple[Any, ...], PartyData] = {}


@dataclass(frozen=True)
class PartyData:
    """A party's checked table (rows in file order) and the fingerprint of the file's bytes."""

    partner: Partner
    table: PartyTable
    fingerprint: str

    @property
    def keys_fingerprint(self) -> str:
        return key_set_fingerprint(self.table.keys)

    @property
    def holds_label(self) -> bool:
        return self.table.label is not None


def open_party_data(partner: Partner, task: TaskConfig, *, purpose: str, round: int | None = None) -> PartyData:
    """Load and check a party's table for `purpose` (a vault is decrypted in memory only, for a purpose the
    party allows, with an audit event), kept in this process's memory while its file is unchanged."""
    source = f"partner '{partner.name}'"
    if partner.data is None:
        raise InputError("has no data path: give `data` in its [[partners]] entry or partner config", source=source)
    path = Path(partner.data)
    stat = path.stat() if path.exists() else None
    key = (json.dumps(partner.to_dict(), sort_keys=True), task.spec.label, task.federation.min_rows,
           stat and (stat.st_mtime_ns, stat.st_size))
    if stat is not None and path.is_file() and is_vault(path):
        access = vault_access(partner, task, round=round)
        if key in _CACHE:
            reuse_vault(path, purpose=purpose, **access)
            return _CACHE[key]
        plaintext = open_vault(path, load_key(partner.key) if partner.key else None, purpose=purpose, **access)
        frame = read_table_bytes(plaintext, source=f"{source} ({path})", sep=partner.sep, decimal=partner.decimal)
        fingerprint = hashlib.sha256(plaintext).hexdigest()
    elif key in _CACHE:
        return _CACHE[key]
    else:
        frame = read_table(path, source=f"{source} ({path})", sep=partner.sep, decimal=partner.decimal)
        fingerprint = file_fingerprint(path)
    table = prepare_party_table(frame, partner, source=f"{source} ({path})", min_rows=task.federation.min_rows,
                                label_column=task.spec.label or None)
    data = PartyData(partner, table, fingerprint)
    if len(_CACHE) >= 8:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = data
    return data


def party_gate(data: PartyData, task: TaskConfig, *, rows: int, readonly: bool = False) -> PrivacyGate | None:
    """The party's privacy gate (`clients.partner.privacy_gate` with its training `rows`), else None."""
    return privacy_gate(data, task, rows=rows, readonly=readonly)


REPLACE_ONE = 2 ** 0.5     # a histogram's replace-one sensitivity ÷ its add/remove one (a count moves cell)


def statistics_refusal(data: PartyData, rows: int) -> str:
    """"" if a DP party's `rows` training rows support its own private transform statistics (noised at its
    policy's stats_noise_multiplier, replace-one), else why not and what to change (the horizontal rule,
    `privacy.statistics.too_few_rows`, for one contributor)."""
    from fedcredit.privacy.statistics import bins_noise_sd, too_few_rows

    policy = data.partner.privacy
    if not policy.enabled or not data.partner.spec.numeric:
        return ""
    sd = bins_noise_sd(policy.stats_noise_multiplier * REPLACE_ONE, len(data.partner.spec.numeric))
    why = too_few_rows(rows, sd, noise_multiplier=policy.stats_noise_multiplier)
    return why.replace("the partners' summed noise", "its noise").replace("in the consortium", "at this party")


# -- what a party remembers between messages ------------------------------------------------------
def _folder(partner: Partner, task: TaskConfig) -> Path:
    return privacy_folder(partner, task) / "vertical"


def _write_private(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    atomic_write_text(path, json.dumps(payload))      # mkstemp: 0600


class PartyState:
    """The state file of one party in one run: a JSON object of named values; bytes are stored base64."""

    def __init__(self, partner: Partner, task: TaskConfig):
        self.path = _folder(partner, task) / "state" / partner.name / f"{task.run or 'run'}.json"
        self.values: dict[str, Any] = json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def get_bytes(self, name: str) -> bytes:
        if name not in self.values:
            raise InputError(f"holds no '{name}' for this run: a message came out of order (or the state file was "
                             "removed mid-run); start the run again", source=f"party state {self.path}")
        return base64.b64decode(self.values[name])

    def update(self, **values: Any) -> None:
        for name, value in values.items():
            self.values[name] = base64.b64encode(value).decode() if isinstance(value, bytes) else value
        _write_private(self.path, self.values)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)

    def sweep(self) -> None:
        """Remove this party's state files of other runs (one that failed or was stopped before its end): a
        party takes part in one vertical run at a time."""
        for other in self.path.parent.glob("*.json") if self.path.parent.is_dir() else []:
            if other != self.path:
                other.unlink(missing_ok=True)


class AlignmentCache:
    """A party's finished alignments by alignment id: its own row numbers in the agreed order, valid only for
    the file they were computed on (a reordered file with the same customers has other row numbers)."""

    def __init__(self, data: PartyData, task: TaskConfig):
        self.path = _folder(data.partner, task) / f"{data.partner.name}.alignments.json"
        self.file = data.fingerprint

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def ids(self) -> list[str]:
        """The alignments this party can reuse on its current file."""
        return sorted(i for i, entry in self._read().items() if entry.get("file") == self.file)

    def get(self, ident: str) -> np.ndarray | None:
        entry = self._read().get(ident)
        if entry is None or entry.get("file") != self.file:
            return None
        return np.asarray(entry["rows"], dtype=np.int64)

    def put(self, ident: str, rows: np.ndarray) -> None:
        saved = self._read()
        saved.pop(ident, None)
        saved[ident] = {"file": self.file, "rows": [int(r) for r in rows]}
        while len(saved) > 8:
            saved.pop(next(iter(saved)))
        _write_private(self.path, saved)
