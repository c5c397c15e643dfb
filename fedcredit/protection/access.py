"""Purpose-bound access to a partner's vault: check the purpose, decrypt in memory, audit.

`open_vault` is the one way training, evaluation and statistics code reads an encrypted
dataset. The plaintext exists only in the returned bytes, never on disk. Every attempt is
recorded in the audit log — granted, refused by policy, or failed (wrong key, damage) —
and a granted access is recorded before the data is returned: if the record cannot be
written, the data is not returned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedcredit.credit.errors import InputError
from fedcredit.protection.audit import AuditLog
from fedcredit.protection.keys import KeySource
from fedcredit.protection.vault import VaultError, decrypt_bytes, inspect, is_vault

DEFAULT_PURPOSES = frozenset({"train", "evaluate", "stats"})


class AccessDenied(InputError):
    """The purpose is not allowed by the partner's access policy."""


@dataclass(frozen=True)
class AccessPolicy:
    """The purposes for which a partner's data may be opened."""

    purposes: frozenset[str] = field(default=DEFAULT_PURPOSES)

    def __post_init__(self) -> None:
        given = self.purposes
        purposes = frozenset(given) if isinstance(given, Iterable) and not isinstance(given, str) else None
        if not purposes or not all(isinstance(p, str) and p.strip() for p in purposes):
            raise InputError(f"access policy purposes must be non-empty names, got {self.purposes!r}")
        object.__setattr__(self, "purposes", purposes)

    def allows(self, purpose: str) -> bool:
        return purpose in self.purposes


def open_vault(path: str | Path, key: KeySource | None, *, purpose: str,
               policy: AccessPolicy = AccessPolicy(), audit: AuditLog | None, partner: str,
               run: str = "", round: int | None = None,
               details: Mapping[str, Any] | None = None) -> bytes:
    """The plaintext of `path` for `purpose`, after the policy check; every attempt is audited.

    `details` adds fields to the audit event (e.g. {"epsilon": 1.2} when known).
    """
    path = Path(path)
    event = _checked(path, purpose=purpose, policy=policy, audit=audit, partner=partner, run=run, round=round,
                     details=details)
    try:
        data = decrypt_bytes(path, key)
    except VaultError as exc:
        _record(audit, {**event, "outcome": "failed", "reason": str(exc)})
        raise
    _record(audit, {**event, "outcome": "granted", "bytes": len(data)})
    return data


def reuse_vault(path: str | Path, *, purpose: str, policy: AccessPolicy = AccessPolicy(), audit: AuditLog | None,
                partner: str, run: str = "", round: int | None = None) -> None:
    """Grant `purpose` on a vault this process already decrypted (its table is held in memory):
    the same policy check and the same audit event as `open_vault`, without decrypting again."""
    event = _checked(Path(path), purpose=purpose, policy=policy, audit=audit, partner=partner, run=run,
                     round=round, details={"decrypted": "earlier in this process (held in memory)"})
    _record(audit, {**event, "outcome": "granted"})


def _checked(path: Path, *, purpose: str, policy: AccessPolicy, audit: AuditLog | None, partner: str, run: str,
             round: int | None, details: Mapping[str, Any] | None) -> dict[str, Any]:
    """The access event, after the purpose check (a refusal is audited, then raised)."""
    if not partner:
        raise InputError("open_vault needs the partner's name for the audit trail", source=str(path))
    event: dict[str, Any] = {"event": "vault-open", "partner": partner, "purpose": purpose,
                             "dataset": _fingerprint(path), "vault": str(path), "run": run, "round": round,
                             **(details or {})}
    if not policy.allows(purpose):
        _record(audit, {**event, "outcome": "refused"})
        raise AccessDenied(f"purpose {purpose!r} is not allowed by {partner}'s access policy (allowed: "
                           f"{', '.join(sorted(policy.purposes))})", source=str(path))
    return event


def dataset_fingerprint(path: str | Path) -> str:
    """The fingerprint a partner's ledger uses for its dataset: SHA-256 of the plaintext (a vault's
    header holds it, no key needed), hex."""
    path = Path(path)
    if is_vault(path):
        return inspect(path).fingerprint
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fingerprint(path: Path) -> str:
    """The dataset fingerprint from the vault header, or "" if the header is unreadable."""
    try:
        return inspect(path).fingerprint
    except VaultError:
        return ""


def _record(audit: AuditLog | None, event: dict[str, Any]) -> None:
    if audit is not None:
        audit.append(event)
