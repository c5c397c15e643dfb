"""Progress of long work, reported upward and never printed here.

A long job (federated rounds, yardsticks, vault encryption, writing a synthetic consortium) takes
`on_progress: Progress | None` and calls it as `on_progress(done, total, what)`: `done` of `total`
units are finished — counts never decrease and reach `total` when the job completes — and `what`
says in words what the step just finished measured (or, for a stream of bytes or rows, which
part of the job is running). Only the command line (`fedcredit.cli.progress`) draws it: a bar on a
terminal, plain lines elsewhere. Lower layers never import a console library.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int, str], None]


def report(on_progress: Progress | None, done: int, total: int, what: str) -> None:
    """Call `on_progress` if there is one (a caller that does not watch passes None)."""
    if on_progress is not None:
        on_progress(done, total, what)


class Every:
    """Report a stream of units (bytes, rows) at most once per `step` units, and always its end,
    so a callback is not called once per 64 KiB segment of a many-gigabyte file."""

    def __init__(self, on_progress: Progress | None, total: int, step: int):
        self.on_progress, self.total, self.step = on_progress, total, max(int(step), 1)
        self._told: tuple[int, str] | None = None

    def __call__(self, done: int, what: str) -> None:
        """`done` units are finished; tell the callback if a step has passed, the job ended or
        `what` (the part of the job that runs) changed."""
        if self.on_progress is None:
            return
        told = self._told
        if told is None or what != told[1] or done - told[0] >= self.step or (done >= self.total > told[0]):
            self._told = (done, what)
            self.on_progress(done, self.total, what)
