"""Scoring a file of applicants: CSV, CSV.gz, Parquet, or a vault (decrypted in memory for the
`score` purpose, audited), read and scored in chunks, written atomically.

Per valid row the output holds `row` (the row's 1-based number among the input's data rows), the
key column when there is one, `pd` (probability of default, exactly `ScoringModel.predict_proba`),
`score` (points, with a `Scaling`), `decision` (with a cutoff), `reason_1..reason_k` (columns),
`reason_text_1..reason_text_k` (their texts, `fedcredit.scoring.reasons`) and
`unseen_levels` (the columns whose level the model did not know, scored as OTHER). A row that fails
validation goes to the rejects file (`row`, key, `field`, `reason`; one line per problem) instead of
the output, or stops the batch under `strict`. Nothing is half-written: the output and the rejects
file are written to temporary files beside them and put in place only when the whole input scored.
"""

from __future__ import annotations

import gzip
import hashlib
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fedcredit.credit.atomic import atomic_write
from fedcredit.credit.errors import InputError
from fedcredit.credit.progress import Every, Progress
from fedcredit.credit.reading import TableChunks, chunk_frame, iter_table, read_table_bytes
from fedcredit.protection.access import AccessPolicy, open_vault
from fedcredit.protection.audit import AuditLog
from fedcredit.protection.keys import KeySource
from fedcredit.protection.vault import is_vault
from fedcredit.scoring.drift import DriftCounter
from fedcredit.scoring.scorer import Scorer

SCORE_PURPOSE = "score"
OUTPUT_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
CHUNK_ROWS = 65536
KEY_NAMES = ("id", "key", "applicant", "applicant_id", "customer_id", "application_id")


@dataclass(frozen=True)
class VaultAccess:
    """How to open an encrypted input: the partner's key, its name and audit log (purpose `score`)."""

    key: KeySource | None
    partner: str
    audit: AuditLog | None


@dataclass
class BatchResult:
    """What a batch did (also written as JSON by the command line)."""

    input: str
    output: str
    rejects: str | None
    rows: int
    scored: int
    rejected: int
    model_id: str
    seconds: float
    other: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    drift: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"input": self.input, "output": self.output, "rejects": self.rejects, "rows": self.rows,
                "scored": self.scored, "rejected": self.rejected, "model_id": self.model_id,
                "seconds": round(self.seconds, 3), "rows_per_second": round(self.rows_per_second),
                "scored_as_other": self.other, "decisions": self.decisions, "notices": self.notices,
                "drift": self.drift}


def rejects_path(output: Path) -> Path:
    """`scores.csv` → `scores.rejects.csv` (beside the output)."""
    name = output.name
    for suffix in OUTPUT_SUFFIXES:
        if name.lower().endswith(suffix):
            return output.with_name(name[: -len(suffix)] + ".rejects.csv")
    return output.with_name(name + ".rejects.csv")


def open_input(path: Path, *, vault: VaultAccess | None, sep: str | None = None, decimal: str | None = None,
               chunk_rows: int = CHUNK_ROWS) -> TableChunks:
    """The input in chunks; a vault is opened for the `score` purpose (policy check, audit event)."""
    if path.is_file() and is_vault(path):
        if vault is None or vault.key is None:
            raise InputError("is a vault: give its key (--key KEYFILE, env:NAME or passphrase-env:NAME)",
                             source=str(path))
        plaintext = open_vault(path, vault.key, purpose=SCORE_PURPOSE,
                               policy=AccessPolicy(frozenset({SCORE_PURPOSE})), audit=vault.audit,
                               partner=vault.partner)
        frame = read_table_bytes(plaintext, source=str(path), sep=sep, decimal=decimal)
        return chunk_frame(frame, chunk_rows)
    return iter_table(path, source=str(path), sep=sep, decimal=decimal, chunk_rows=chunk_rows)


def _prefetched(chunks: Iterator[pd.DataFrame], depth: int = 2) -> Iterator[pd.DataFrame]:
    """The chunks, the next one read in a thread while this one is scored (pyarrow and the CSV parser
    release the GIL). An error while reading is raised here; stopping early stops the reader."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
            put(done)
        except BaseException as exc:        # handed to the scoring thread, which raises it
            put(exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read, name="fedcredit-score-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = ready.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join(timeout=10)


def guess_key(columns: list[str], used: tuple[str, ...]) -> str | None:
    """A column the model does not use and whose name says it identifies the row (id, key, *_id)."""
    for col in columns:
        low = col.lower()
        if col not in used and (low in KEY_NAMES or low.endswith("_id")):
            return col
    return None


class _Writer:
    """Chunks of a frame into one open file: CSV, gzipped CSV or Parquet (by the output's suffix)."""

    def __init__(self, f: IO[bytes], name: str):
        low = name.lower()
        self.kind = "parquet" if low.endswith((".parquet", ".pq")) else "csv"
        self.f = f
        self.gz = gzip.GzipFile(fileobj=f, mode="wb", mtime=0, compresslevel=6) if low.endswith(".gz") else None
        self.parquet: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None
        self.header = True

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "parquet":
            if self.parquet is None and not len(frame):    # the column types come from the first rows
                return
            table = pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False)
            if self.parquet is None:
                self.schema = table.schema
                self.parquet = pq.ParquetWriter(self.f, self.schema)
            self.parquet.write_table(table)
            return
        text = frame.to_csv(index=False, header=self.header, lineterminator="\n")
        self.header = False
        (self.gz or self.f).write(text.encode("utf-8"))

    def close(self, empty: pd.DataFrame) -> None:
        if self.kind == "parquet":
            if self.parquet is None:                     # no row scored: the columns, no rows
                self.schema = pa.Table.from_pandas(empty, preserve_index=False).schema
                self.parquet = pq.ParquetWriter(self.f, self.schema)
            self.parquet.close()
        elif self.header:                       # nothing written yet: the header alone
            self.write(empty)
        if self.gz is not None:
            self.gz.close()


def _columns(scorer: Scorer, key: str | None) -> list[str]:
    opts = scorer.options
    return (["row"] + ([key] if key else []) + ["pd"] + (["score"] if opts.scaling else [])
            + (["decision"] if opts.cutoff is not None else [])
            + [f"reason_{j + 1}" for j in range(opts.reasons)] + [f"reason_text_{j + 1}" for j in range(opts.reasons)]
            + ["unseen_levels"])


def _empty(columns: list[str]) -> pd.DataFrame:
    typed = {"row": "int64", "pd": "float64", "score": "float64"}
    return pd.DataFrame({c: pd.Series(dtype=typed.get(c, object)) for c in columns})


def score_file(scorer: Scorer, input: str | Path, output: str | Path, *, key: str | None = None,
               rejects: str | Path | None = None, strict: bool = False, overwrite: bool = False,
               vault: VaultAccess | None = None, sep: str | None = None, decimal: str | None = None,
               chunk_rows: int = CHUNK_ROWS, on_progress: Progress | None = None,
               audit: AuditLog | None = None, purpose: str = SCORE_PURPOSE) -> BatchResult:
    """Score every row of `input` into `output` (see the module docstring); `key` None: guessed."""
    started = time.perf_counter()
    src, out = Path(input), Path(output)
    if not out.name.lower().endswith(OUTPUT_SUFFIXES):
        raise InputError(f"unsupported output type; use one of {list(OUTPUT_SUFFIXES)}", source=str(out))
    bad_path = Path(rejects) if rejects is not None else rejects_path(out)
    if src.resolve() in (out.resolve(), bad_path.resolve()):
        raise InputError("the output would replace the input: choose another --out", source=str(out))
    if not overwrite:
        for path in (out, bad_path):
            if path.exists():
                raise InputError("already exists; scoring never replaces a file: choose another name, or pass "
                                 "--force if it may be replaced", source=str(path))
    table = open_input(src, vault=vault, sep=sep, decimal=decimal, chunk_rows=chunk_rows)
    used = scorer.validator.required
    if key is None:
        key = guess_key(table.columns, used)
    elif key in used:
        raise InputError(f"{key!r} is a column the model uses, not a row key", field=key, source=str(src))
    notices = scorer.validator.columns(table.columns, source=str(src), key=key)
    columns = _columns(scorer, key)
    drift = DriftCounter(scorer.model.metadata.get("reference"), scorer.model.transform)
    counts = {"rows": 0, "scored": 0}
    bad_rows: list[tuple[int, Any, str, str]] = []
    rejected_rows: set[int] = set()
    other: Counter = Counter()
    decisions: Counter = Counter()
    every = Every(on_progress, max(table.rows, 1), chunk_rows)

    def write_all(f: IO[bytes]) -> None:
        writer = _Writer(f, out.name)
        for chunk in _prefetched(table.chunks):
            offset = counts["rows"]
            scored = scorer.score(chunk, source=str(src), decimal=chunk.attrs.get("decimal", table.decimal))
            checked = scored.checked
            keys = chunk[key].to_numpy() if key else None     # passed through as read
            if checked.rejects:
                if strict:
                    pos, fld, why = checked.rejects[0]
                    raise InputError(f"row {offset + pos + 1}: {why} (--strict stops at the first bad row; without "
                                     "it such rows go to a rejects file)", source=str(src), field=fld)
                for pos, fld, why in checked.rejects:
                    bad_rows.append((offset + pos + 1, keys[pos] if keys is not None else None, fld, why))
                    rejected_rows.add(offset + pos)
            pos = checked.rows
            frame: dict[str, Any] = {"row": (offset + pos + 1).astype(np.int64)}
            if key:
                frame[key] = keys[pos]
            frame["pd"] = scored.pd
            if scored.points is not None:
                frame["score"] = np.round(scored.points, 2)
            if scored.decision is not None:
                frame["decision"] = scored.decision
                declined = int(np.count_nonzero(scored.pd >= scorer.options.cutoff))
                decisions.update({"decline": declined, "approve": len(scored.pd) - declined})
            for j in range(scored.reason_codes.shape[1]):     # categorical: a dictionary column in Parquet
                frame[f"reason_{j + 1}"] = pd.Categorical.from_codes(scored.reason_codes[:, j], scored.columns)
            for j in range(scored.reason_codes.shape[1]):
                frame[f"reason_text_{j + 1}"] = pd.Categorical.from_codes(scored.reason_codes[:, j], scorer.texts.texts)
            frame["unseen_levels"] = checked.unseen
            writer.write(pd.DataFrame(frame, columns=columns))
            drift.add(checked.features, scored.logit)
            other.update(checked.other)
            counts["rows"] += len(chunk)
            counts["scored"] += len(pos)
            every(min(counts["rows"], every.total) if table.exact else counts["rows"], f"scoring {src.name}")
        if counts["rows"] == 0:
            raise InputError("has no rows to score (a header only?)", source=str(src))
        writer.close(_empty(columns))

    try:
        atomic_write(out, write_all, overwrite=overwrite)
    except FileExistsError as exc:
        raise InputError("already exists; scoring never replaces a file: pass --force if it may be replaced",
                         source=str(exc.filename or out)) from None
    if on_progress is not None:
        on_progress(counts["rows"], counts["rows"], f"scored {src.name}")
    written_rejects = None
    if bad_rows:
        frame = pd.DataFrame(bad_rows, columns=["row", key or "key", "field", "reason"])
        if not key:
            frame = frame.drop(columns="key")
        atomic_write(bad_path, lambda f: f.write(frame.to_csv(index=False, lineterminator="\n").encode()),
                     overwrite=True)
        written_rejects = str(bad_path)
    elif overwrite and bad_path.exists():          # a stale rejects file of an earlier run would mislead
        bad_path.unlink()
    for col, n in sorted(other.items()):
        notices.append(f"{n} row(s) have a level of '{col}' the model does not know: scored as its OTHER level")
    result = BatchResult(str(src), str(out), written_rejects, counts["rows"], counts["scored"], len(rejected_rows),
                         scorer.model.id, time.perf_counter() - started, dict(other), dict(decisions), notices,
                         drift.report())
    if audit is not None:
        audit.append({"event": "score-batch", "purpose": purpose, "model": scorer.model.id, "input": str(src),
                      "output": str(out), "rows": result.rows, "scored": result.scored,
                      "rejected": result.rejected, "decisions": result.decisions,
                      "output_sha256": _sha256(out)})
    return result


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


__all__ = ["BatchResult", "VaultAccess", "open_input", "rejects_path", "score_file"]
