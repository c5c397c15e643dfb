"""Read a partner's file as written: CSV cells as stripped text, Parquet columns as stored.

Nothing here guesses a column's type: the [dataset] spec decides that later
(`fedcredit.credit.columns`). A CSV's separator is sniffed among `,` `;` tab `|` unless the
partner's entry sets `sep`; a `;` file whose numbers use decimal commas is read with
`decimal = ","`. The decimal mark travels with the frame in `frame.attrs["decimal"]`.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fedcredit.credit.errors import InputError

# pandas' default NA markers plus a few seen in credit extracts.
NA_MARKERS = ("", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "none", "?", "#N/A", "<NA>", ".")
SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".txt.gz")
SEPARATORS = (",", ";", "\t", "|")
DECIMALS = (".", ",")
SNIFF_BYTES = 64 * 1024
SNIFF_RECORDS = 50
_COMMA_NUMBER = re.compile(r"[+-]?(\d{1,3}(\.\d{3})+|\d+),\d+")   # 0,14 or 1.234,56
_DOT_NUMBER = re.compile(r"[+-]?\d*\.\d+")


def sep_name(sep: str) -> str:
    return "tab" if sep == "\t" else repr(sep)


def _key_hint(key: str, value: str) -> str:
    shown = '"\\t"' if value == "\t" else f'"{value}"'
    return f"set {key} = {shown} in the partner's [[partners]] entry"


@dataclass(frozen=True)
class Dialect:
    """How a CSV is split into cells and how its numbers write the decimal mark."""

    sep: str
    decimal: str


def _table_file(path: str | Path, source: str | None) -> tuple[Path, str, str]:
    """(path, where to say it is, its lower-case name) of an existing file of a table type we read."""
    path = Path(path)
    where = source or str(path)
    if not path.is_file():
        raise InputError("data file not found: check the path", source=where)
    name = path.name.lower()
    if not name.endswith((".parquet", ".pq", *CSV_SUFFIXES)):
        raise InputError(f"unsupported file type; use one of {list(SUFFIXES)}", source=where)
    return path, where, name


def read_table(path: str | Path, *, source: str | None = None, sep: str | None = None,
               decimal: str | None = None) -> pd.DataFrame:
    """Read CSV / CSV.gz / Parquet. CSV cells come back as stripped text (NA markers → missing)."""
    path, where, name = _table_file(path, source)
    data = path.read_bytes()
    if not data:
        raise InputError("the file is empty", source=where)
    if name.endswith((".parquet", ".pq")):
        return _read_parquet(data, source=where)
    return _read_csv(data, source=where, sep=sep, decimal=decimal)


def read_table_bytes(data: bytes, *, source: str, sep: str | None = None,
                     decimal: str | None = None) -> pd.DataFrame:
    """Parse a table held in memory (e.g. decrypted from a vault): Parquet, gzipped or plain CSV."""
    if not data:
        raise InputError("the table is empty", source=source)
    if data[:4] == b"PAR1":
        return _read_parquet(data, source=source)
    return _read_csv(data, source=source, sep=sep, decimal=decimal)


def check_headers(names: Sequence[object], *, source: str) -> list[str]:
    """Stripped column names; any blank name or collision is one InputError naming the columns."""
    raw = ["" if pd.isna(n) else str(n) for n in names]
    stripped = [n.strip() for n in raw]
    blank = [i + 1 for i, n in enumerate(stripped) if not n]
    if blank:
        raise InputError(f"column(s) {blank} have no name (a trailing separator?): name them and list "
                         "them in [dataset], or remove them", source=source)
    positions: dict[str, list[int]] = {}
    for i, n in enumerate(stripped):
        positions.setdefault(n, []).append(i)
    clashes = [(n, idx) for n, idx in positions.items() if len(idx) > 1]
    if clashes:
        parts = [_describe_clash(n, [raw[i] for i in idx], idx) for n, idx in clashes]
        raise InputError("; ".join(parts) + ": rename or remove the extra column(s) so every header "
                         "is unique", source=source, field=clashes[0][0])
    return stripped


def _describe_clash(name: str, raw: list[str], idx: list[int]) -> str:
    cols = [str(i + 1) for i in idx]
    listed = f"{', '.join(cols[:-1])} and {cols[-1]}"
    both = "both" if len(cols) == 2 else "all"
    trimmed = " after trimming spaces" if len(set(raw)) > 1 else ""
    return f"columns {listed} are {both} '{name}'{trimmed}"


# ---- streaming: the same rules, a chunk of rows at a time ------------------------------

@dataclass
class TableChunks:
    """A table read in chunks: its (checked) column names, its row count (`exact` False: an estimate
    from the file's line count, for progress only), the CSV decimal mark, and the chunks themselves,
    each a frame as `read_table` would return that slice of rows."""

    columns: list[str]
    rows: int
    decimal: str
    chunks: Iterator[pd.DataFrame]
    exact: bool = True


def iter_table(path: str | Path, *, source: str | None = None, sep: str | None = None,
               decimal: str | None = None, chunk_rows: int = 65536) -> TableChunks:
    """`read_table` for files too large to hold twice: CSV / CSV.gz / Parquet read `chunk_rows` rows
    at a time, with the same checks (headers, dialect sniffing, NA markers, stripped text)."""
    path, where, name = _table_file(path, source)
    if path.stat().st_size == 0:
        raise InputError("the file is empty", source=where)
    with open(path, "rb") as f:
        parquet = f.read(4) == b"PAR1"        # by content, as read_table_bytes does
    if parquet or name.endswith((".parquet", ".pq")):
        return _iter_parquet(path, source=where, chunk_rows=chunk_rows)
    return _iter_csv(path, source=where, sep=sep, decimal=decimal, chunk_rows=chunk_rows)


def chunk_frame(frame: pd.DataFrame, chunk_rows: int = 65536) -> TableChunks:
    """A frame already in memory (e.g. a decrypted vault) as chunks."""
    def chunks() -> Iterator[pd.DataFrame]:
        for start in range(0, len(frame), chunk_rows):
            part = frame.iloc[start:start + chunk_rows].reset_index(drop=True)
            part.attrs.update(frame.attrs)
            yield part
    return TableChunks(list(frame.columns), len(frame), frame.attrs.get("decimal", "."), chunks())


def _iter_parquet(path: Path, *, source: str, chunk_rows: int) -> TableChunks:
    try:
        handle = pq.ParquetFile(path)
        names = check_headers(handle.schema_arrow.names, source=source)
        rows = handle.metadata.num_rows
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot be read as Parquet: {exc}", source=source) from exc

    def chunks() -> Iterator[pd.DataFrame]:
        try:
            for batch in handle.iter_batches(batch_size=chunk_rows):
                frame = batch.to_pandas()
                frame.columns = names
                yield frame
        except Exception as exc:
            raise InputError(f"cannot be read as Parquet: {exc}", source=source) from exc
    return TableChunks(names, rows, ".", chunks())


def _open_stream(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when it is gzip (the stream owns the file)."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _head(path: Path, source: str) -> bytes:
    """The first SNIFF_BYTES of the (gunzipped) file."""
    try:
        with _open_stream(path) as stream:
            return stream.read(SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"is not a valid gzip file: {exc}", source=source) from exc


def _count_lines(path: Path) -> int:
    """Newlines in the (gunzipped) file: the row count for progress (a quoted newline counts too)."""
    n = 0
    try:
        with _open_stream(path) as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                n += block.count(b"\n")
    except (OSError, EOFError, zlib.error):
        pass
    return n


def _iter_csv(path: Path, *, source: str, sep: str | None, decimal: str | None, chunk_rows: int) -> TableChunks:
    head = _head(path, source)
    handle = _open_stream(path)
    try:
        body, sep = _csv_start(head, sep, source)
        excel_sep = body is not head          # Excel's "sep=" line was dropped: skip it in the stream too
        text = body.decode("utf-8-sig", errors="replace")
        dialect = sniff_dialect(text, complete=len(head) < SNIFF_BYTES, sep=sep, decimal=decimal, source=source)
        reader = _csv_call(lambda: pd.read_csv(handle, sep=dialect.sep, header=None, dtype=str, keep_default_na=False,
                                               encoding="utf-8-sig", skip_blank_lines=True, chunksize=chunk_rows,
                                               skiprows=1 if excel_sep else None), source, dialect.sep)
        first = _csv_chunk(reader, source, dialect.sep)
    except BaseException:
        handle.close()
        raise
    if first is None:
        handle.close()
        raise InputError("the file is empty", source=source)
    names = check_headers(first.iloc[0].tolist(), source=source)

    def frame_of(raw: pd.DataFrame) -> pd.DataFrame:
        raw = raw.reset_index(drop=True)
        if raw.shape[1] != len(names):
            raise InputError(f"a line has {raw.shape[1]} cells where the header has {len(names)}: check for "
                             f"unquoted separators inside values (sep {sep_name(dialect.sep)})", source=source)
        frame = pd.DataFrame({n: clean_text(raw.iloc[:, i]) for i, n in enumerate(names)})
        frame.attrs["decimal"] = dialect.decimal
        return frame

    def chunks() -> Iterator[pd.DataFrame]:
        try:
            if len(first) > 1:
                yield frame_of(first.iloc[1:])
            while (raw := _csv_chunk(reader, source, dialect.sep)) is not None:
                yield frame_of(raw)
        finally:
            handle.close()
    return TableChunks(names, max(_count_lines(path) - 1, 0), dialect.decimal, chunks(), exact=False)


def _csv_chunk(reader: Iterator[pd.DataFrame], source: str, sep: str) -> pd.DataFrame | None:
    return _csv_call(lambda: next(reader, None), source, sep)


def _csv_call(call: Callable[[], Any], source: str, sep: str) -> Any:
    """`call()` with the parser's errors as one InputError each (None for no data)."""
    try:
        return call()
    except UnicodeDecodeError as exc:
        raise InputError("is not UTF-8 text: export the table as UTF-8 CSV", source=source) from exc
    except pd.errors.EmptyDataError:
        return None
    except pd.errors.ParserError as exc:
        raise InputError(f"cannot be split into columns with sep {sep_name(sep)}: {str(exc).strip()}; "
                         "check for unquoted separators inside values, or set the separator", source=source) from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise InputError(f"cannot be read: {exc}", source=source) from exc


# ---- Parquet ----------------------------------------------------------------------

def _read_parquet(data: bytes, *, source: str) -> pd.DataFrame:
    try:
        handle = pq.ParquetFile(pa.BufferReader(data))
        check_headers(handle.schema_arrow.names, source=source)
        frame = handle.read().to_pandas()
    except InputError:
        raise
    except Exception as exc:  # pyarrow's message carries the useful detail
        raise InputError(f"cannot be read as Parquet: {exc}", source=source) from exc
    # A stored pandas index comes back as the index: keep a named one (e.g. `id`) as a column.
    frame = frame.reset_index(drop=all(n is None for n in frame.index.names))
    frame.columns = check_headers(list(frame.columns), source=source)
    return frame


# ---- CSV --------------------------------------------------------------------------

def _csv_start(data: bytes, sep: str | None, source: str) -> tuple[bytes, str | None]:
    """A CSV file's (first) bytes checked — not empty, not a zip archive — without Excel's "sep=" line,
    and the separator: `sep`, else the one that line names (None: sniff it)."""
    if not data.strip():
        raise InputError("the file is empty", source=source)
    if data[:4] == b"PK\x03\x04":
        raise InputError("is a zip archive (an Excel workbook?), not CSV text: export the sheet as CSV",
                         source=source)
    body, excel_sep = _strip_excel_sep_line(data)
    return body, sep or excel_sep


def _read_csv(data: bytes, *, source: str, sep: str | None, decimal: str | None) -> pd.DataFrame:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"is not a valid gzip file: {exc}", source=source) from exc
    data, sep = _csv_start(data, sep, source)
    head = data[:SNIFF_BYTES].decode("utf-8-sig", errors="replace")
    dialect = sniff_dialect(head, complete=len(data) <= SNIFF_BYTES, sep=sep, decimal=decimal, source=source)
    try:
        raw = pd.read_csv(io.BytesIO(data), sep=dialect.sep, header=None, dtype=str, keep_default_na=False,
                          encoding="utf-8-sig", skip_blank_lines=True, low_memory=False)
    except UnicodeDecodeError as exc:
        raise InputError("is not UTF-8 text: export the table as UTF-8 CSV", source=source) from exc
    except pd.errors.EmptyDataError as exc:
        raise InputError("the file is empty", source=source) from exc
    except pd.errors.ParserError as exc:
        raise InputError(f"cannot be split into columns with sep {sep_name(dialect.sep)}: {str(exc).strip()}; "
                         "check for unquoted separators inside values, or set sep (one of ',', ';', '\\t', '|') "
                         "in the partner's [[partners]] entry if the separator is another", source=source) from exc
    except Exception as exc:  # anything else the parser meets: its message carries the detail
        raise InputError(f"cannot be read as a table: {exc}", source=source) from exc
    names = check_headers(raw.iloc[0].tolist(), source=source)
    body = raw.iloc[1:].reset_index(drop=True)
    frame = pd.DataFrame({name: clean_text(body.iloc[:, i]) for i, name in enumerate(names)})
    frame.attrs["decimal"] = dialect.decimal
    return frame


def _strip_excel_sep_line(data: bytes) -> tuple[bytes, str | None]:
    """Excel may open a CSV with a `sep=;` line: drop it and use that separator."""
    first, _, rest = data.removeprefix(b"\xef\xbb\xbf").partition(b"\n")
    match = re.fullmatch(rb'"?sep=(.)"?', first.strip())
    if match and match.group(1).decode() in SEPARATORS:
        return rest, match.group(1).decode()
    return data, None


def clean_text(series: pd.Series) -> pd.Series:
    """CSV cells stripped, as object text; NA markers (and absent trailing cells) become NaN."""
    text = series.astype("str").str.strip()
    return text.where(~text.isin(NA_MARKERS)).astype(object)


def sniff_dialect(head: str, *, complete: bool = True, sep: str | None = None, decimal: str | None = None,
                  source: str) -> Dialect:
    """The separator and decimal mark of a CSV from its first records (explicit keys win)."""
    records = _records(head, complete=complete)
    if not records:
        raise InputError("the file is empty", source=source)
    counts = {c: [_count_outside_quotes(r, c) for r in records] for c in SEPARATORS}
    chosen = sep or _sniff_separator(counts, source=source)
    if sep and counts[sep][0] == 0:
        others = [c for c in SEPARATORS if counts[c][0] > 0]
        looks = f"; it looks {sep_name(others[0])}-separated" if others else ""
        raise InputError(f"the header has no {sep_name(sep)} although sep = {sep!r} is set{looks}: "
                         "fix or remove `sep` in the partner's [[partners]] entry", source=source)
    return Dialect(chosen, decimal or _sniff_decimal(records, chosen, source=source))


def _sniff_separator(counts: dict[str, list[int]], *, source: str) -> str:
    even = [c for c, n in counts.items() if n[0] > 0 and all(k == n[0] for k in n)]
    if len(even) == 1:
        return even[0]
    if len(even) > 1:
        shown = " and ".join(sep_name(c) for c in even)
        raise InputError(f"cannot tell the column separator: every one of the first lines splits evenly on "
                         f"{shown}; {_key_hint('sep', even[0])} (one of ',', ';', '\\t', '|')", source=source)
    # No separator splits every line evenly: take the one that agrees with the header most often
    # and let the parser name the first line that does not fit.
    used = {c: sum(k == n[0] for k in n) for c, n in counts.items() if n[0] > 0}
    return max(used, key=lambda c: (used[c], c == ",")) if used else ","


def _sniff_decimal(records: list[str], sep: str, *, source: str) -> str:
    if sep != ";":  # decimal commas go with ';' files; elsewhere a ',' in a number is refused later
        return "."
    cells = [c.strip() for row in csv.reader(io.StringIO("\n".join(records)), delimiter=sep) for c in row]
    comma = next((c for c in cells if _COMMA_NUMBER.fullmatch(c)), None)
    dot = next((c for c in cells if _DOT_NUMBER.fullmatch(c)), None)
    if comma and dot:
        raise InputError(f"this ';'-separated file writes numbers both with a decimal comma ({comma!r}) and "
                         f"a decimal point ({dot!r}): {_key_hint('decimal', ',')} or \".\"", source=source)
    return "," if comma else "."


def _records(head: str, *, complete: bool) -> list[str]:
    """The first non-blank records of a CSV text (a newline inside quotes does not end one)."""
    records, start, quoted = [], 0, False
    for i, ch in enumerate(head):
        if ch == '"':
            quoted = not quoted
        elif ch == "\n" and not quoted:
            records.append(head[start:i].rstrip("\r"))
            start = i + 1
            if len(records) > SNIFF_RECORDS:
                break
    else:
        if complete and start < len(head):
            records.append(head[start:].rstrip("\r"))
    if not records and head.strip():  # one record longer than the sample
        records.append(head)
    return [r for r in records[:SNIFF_RECORDS] if r.strip()]


def _count_outside_quotes(record: str, ch: str) -> int:
    count, quoted = 0, False
    for c in record:
        if c == '"':
            quoted = not quoted
        elif c == ch and not quoted:
            count += 1
    return count
