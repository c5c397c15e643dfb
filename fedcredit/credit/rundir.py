"""A run directory: resolved config, per-round metrics (JSON lines), model, summary.json.

`summary.json` is written last and atomically: a directory without it is not a finished run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fedcredit.credit import strict_json
from fedcredit.credit.atomic import atomic_write_json, jsonable

CONFIG, ROUNDS, MODEL, SUMMARY = "config.json", "rounds.jsonl", "model.pt", "summary.json"
FAILED = "failed.json"            # written instead of summary.json when a run cannot finish
STAGING_SUFFIX = ".incomplete"   # a simulation writes here, then renames the finished run


class RunDirectory:
    """Writes one run's outputs under `path`."""

    def __init__(self, path: str | Path):
        self.path = Path(path).resolve()

    def create(self) -> RunDirectory:
        if (self.path / SUMMARY).exists():
            raise FileExistsError(f"{self.path} already holds a finished run; choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / ROUNDS).unlink(missing_ok=True)
        return self

    @property
    def run_id(self) -> str:
        """The run's name, as recorded in ledgers and audit trails (without the staging suffix)."""
        return self.path.name.removesuffix(STAGING_SUFFIX)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict[str, Any]) -> None:
        atomic_write_json(self.file(CONFIG), config)

    def append_round(self, record: dict[str, Any]) -> None:
        """One JSON object per line, flushed, so a reader can follow a live run.
        Standard JSON only: a NaN or ±Infinity raises NonFiniteError and nothing is appended."""
        line = strict_json.dumps(record, default=jsonable) + "\n"
        with open(self.file(ROUNDS), "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def rounds(self) -> list[dict[str, Any]]:
        path = self.file(ROUNDS)
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.file(SUMMARY), summary)

    def summary(self) -> dict[str, Any]:
        return json.loads(self.file(SUMMARY).read_text())

    def write_failure(self, reason: str) -> None:
        """A run that could not finish says why, in `failed.json` (there is then no summary.json)."""
        from datetime import UTC, datetime

        atomic_write_json(self.file(FAILED), {"reason": reason, "time": datetime.now(UTC).isoformat(timespec="seconds")})

    def failure(self) -> str | None:
        """Why the run failed (from failed.json), or None."""
        try:
            return str(json.loads(self.file(FAILED).read_text())["reason"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
