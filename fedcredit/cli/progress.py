"""Progress a person can see: a `rich` bar on a terminal, plain lines anywhere else.

Lower layers report `(done, total, what)` through a callback (`fedcredit.credit.progress`); this
module is the only one that draws it. Progress goes to stderr, so stdout keeps only what a command
produces (tables, the vault header, JSON) for whoever reads or pipes it. A bar is drawn only when
stdout and stderr are both terminals (and TERM is not "dumb"); otherwise — CI logs, `| head`, a
file — the same progress becomes plain lines without ANSI escape codes:

- a job of few long steps (rounds, yardsticks): one line per step, each saying what it measured;
- a stream (bytes, rows): a line at most every `interval` seconds, and a last one if any was
  printed, so a quick job prints nothing and a one-line error stays one line.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, TextIO

from fedcredit.credit.progress import Progress

PLAIN_INTERVAL = 5.0   # seconds between two plain lines of a stream


def is_terminal(*streams: Any) -> bool:
    """True if every stream (default: stdout and stderr) is a terminal a bar can be drawn on."""
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return all(s.isatty() for s in (streams or (sys.stdout, sys.stderr)))
    except (AttributeError, ValueError):     # no isatty, or a closed stream
        return False


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class ProgressView:
    """The progress of one command: `with ProgressView() as view:` then hand `view.steps(...)` or
    `view.stream(...)` callbacks to the work. Thread-safe (a simulation reports from the
    ServerApp's thread)."""

    def __init__(self, *, bar: bool | None = None, interval: float | None = None,
                 out: TextIO | None = None):
        self.bar = is_terminal() if bar is None else bar
        self.interval = PLAIN_INTERVAL if interval is None else interval
        self._out = out                      # plain lines (None: sys.stderr when written)
        self._rich: Any = None               # rich.progress.Progress while a bar is drawn

    # -- the display ----------------------------------------------------------------------
    def __enter__(self) -> ProgressView:
        if self.bar:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._rich = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                  TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                  TimeRemainingColumn(), console=Console(stderr=True))
            self._rich.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    @property
    def log_stream(self) -> TextIO | None:
        """Where other writers (Flower's console) should write while a bar is drawn, so their lines
        appear above it; None when there is no bar (leave them as they are)."""
        return sys.stderr if self._rich is not None else None

    def _line(self, text: str) -> None:
        if self._rich is not None:
            self._rich.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self._out or sys.stderr, flush=True)

    # -- callbacks ------------------------------------------------------------------------
    def steps(self, label: str, unit: str) -> Progress:
        """A job of few long steps: each call's `what` is shown as a line (above the bar)."""
        task: list[Any] = []

        def on_progress(done: int, total: int, what: str) -> None:
            if self._rich is not None:
                if not task:
                    task.append(self._rich.add_task(label, total=max(total, 1), detail=""))
                self._rich.update(task[0], completed=done, total=max(total, 1), detail=f"{done}/{total} {unit}")
            self._line(what)
        return on_progress

    def stream(self, label: str, unit: str = "bytes") -> Progress:
        """A stream of bytes or rows: a bar whose description is the running part (`what`);
        plain lines only now and then. Bytes show a speed (a file read twice counts twice),
        rows their count."""
        task: list[Any] = []
        state: dict[str, Any] = {"start": time.monotonic(), "last": time.monotonic(), "lines": 0, "told": None}

        def detail(done: int, total: int, now: float) -> str:
            if unit == "bytes":
                return f"{_size(done / max(now - state['start'], 1e-6))}/s"
            return f"{done:,} of {total:,} {unit}"

        def on_progress(done: int, total: int, what: str) -> None:
            now, finished = time.monotonic(), done >= total
            if self._rich is not None:
                if not task:
                    task.append(self._rich.add_task(what, total=max(total, 1), detail=""))
                self._rich.update(task[0], description=what, completed=done if total else 1, total=max(total, 1),
                                  detail=detail(done, total, now))
                return
            if state["told"] == (done, what):            # nothing new (the end reported twice)
                return
            if now - state["last"] >= self.interval or (finished and state["lines"]):
                share = 100.0 if total <= 0 else 100.0 * done / total
                self._line(f"{label}: {share:3.0f}% ({detail(done, total, now)})  {what}  "
                           f"[{now - state['start']:.1f} s]")
                state.update(last=now, lines=state["lines"] + 1, told=(done, what))
        return on_progress
