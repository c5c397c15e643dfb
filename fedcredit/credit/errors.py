"""The one exception type users see for bad input."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: the message names the file/partner/field and what to do."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        parts = [p for p in (source, f"field '{field}'" if field else None) if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.source = source
        self.field = field


class FederationError(RuntimeError):
    """The federation cannot go on (no nodes, every partner failed or declined)."""
