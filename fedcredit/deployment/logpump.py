"""Copy a Flower process's output into its log file: colour codes removed, rotated by size.

    python -m fedcredit.deployment.logpump LOG [--max-bytes N] [--backups K]  < output

Flower colours its console lines (ANSI escapes) and has no size limit on them. The pump reads
its standard input line by line until end of file (the process it serves has exited), strips
ANSI escape sequences, and appends each line to LOG through the standard library's
`RotatingFileHandler` (LOG, LOG.1 … LOG.K). Each line is flushed as it is written, so a reader
following LOG sees it at once.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import re
import sys
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 5
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def handler(path: str | Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> logging.handlers.RotatingFileHandler:
    h = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
    h.setFormatter(logging.Formatter("%(message)s"))
    return h


def rotate_if_full(path: str | Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
    """Start a fresh LOG when it is near full, so a start's lines never straddle a rotation."""
    p = Path(path)
    if p.is_file() and p.stat().st_size > max_bytes * 0.9:
        h = handler(p, max_bytes=max_bytes, backups=backups)
        try:
            h.doRollover()
        finally:
            h.close()


def pump(source, path: str | Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> int:
    """Copy `source` (binary lines) to `path` until EOF; returns the number of lines written."""
    h = handler(path, max_bytes=max_bytes, backups=backups)
    lines = 0
    try:
        for raw in source:
            text = ANSI.sub("", raw.decode("utf-8", errors="replace")).rstrip("\r\n")
            h.emit(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))
            lines += 1
    finally:
        h.close()
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log")
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES)
    parser.add_argument("--backups", type=int, default=BACKUPS)
    args = parser.parse_args(argv)
    pump(sys.stdin.buffer, args.log, max_bytes=args.max_bytes, backups=args.backups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
