"""A Grid that notices replies sooner (Flower 1.42 adapter).

Flower 1.42's deployed Grid (`flwr.superlink.grid.http_grid.HttpGrid.send_and_receive`, upstream:
https://github.com/adap/flower/blob/v1.42.0/framework/py/flwr/superlink/grid/http_grid.py) pulls the
replies of a message phase every 3 s, so each phase of a round ends up to 3 s after the last
partner answered; its simulation Grid (`inmemory_grid.InMemoryGrid`) every 0.1 s. `PromptGrid` wraps any
Grid and does the same push-then-pull with its own interval; everything else is the wrapped Grid's. Flower's workflows (SecAgg+) and our round loop
call `send_and_receive` on it like on any Grid.

A reply's parts (its objects) are pulled after the reply itself; one the partner's SuperNode has not
finished pushing is asked for again after `initial_backoff` seconds, doubling — 1 s the first time in
the pinned `flwr.supercore.inflatable.inflatable_utils.pull_objects` — so a pull landing between a
SuperNode registering its reply and pushing its parts cost a whole second (measured: the last reply
of a SecAgg+ stage often arrived ≈ 1.0 s after its SuperNode had pushed it). `prompt_object_pulls()`
makes the deployed Grid's `pull_objects` that function with `initial_backoff` OBJECT_RETRY (cap, tries
and time limit unchanged).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.proto.node_pb2 import NodeInfo  # pylint: disable=E0611
from flwr.serverapp import Grid
from flwr.supercore.run import Run

DEFAULT_PULL_INTERVAL = 0.05  # seconds between pulls while replies are outstanding (the SuperLink on its machine)
SIMULATION_PULL_INTERVAL = 0.02   # the simulation's in-memory state: a pull is a dictionary lookup
OBJECT_RETRY = 0.05           # seconds before a reply's not yet pushed part is asked for again (Flower: 1 s), doubling
PINNED = "1.42."


def prompt_object_pulls() -> bool:
    """Retry a reply's missing parts after OBJECT_RETRY seconds in this process's deployed Grid (see
    the module's text); False (nothing changed) on a Flower version this adapter was not written for."""
    import flwr
    from flwr.supercore.inflatable import inflatable_utils
    from flwr.superlink.grid import http_grid

    if not flwr.__version__.startswith(PINNED) or getattr(http_grid, "pull_objects", None) is not \
            inflatable_utils.pull_objects:
        return False
    http_grid.pull_objects = functools.partial(inflatable_utils.pull_objects, initial_backoff=OBJECT_RETRY)
    return True


class PromptGrid(Grid):
    """`grid` with `send_and_receive` pulling every `pull_interval` seconds."""

    def __init__(self, grid: Grid, pull_interval: float = DEFAULT_PULL_INTERVAL):
        if not pull_interval > 0:
            raise ValueError(f"pull_interval must be > 0 seconds, got {pull_interval!r}")
        self.grid = grid
        self.pull_interval = pull_interval

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(self, *args, **kwargs) -> Message:  # noqa: ANN002, ANN003 - Flower's signature
        return self.grid.create_message(*args, **kwargs)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def get_nodes(self) -> Iterable[NodeInfo]:
        return self.grid.get_nodes()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Push `messages`, then pull until every one has a reply or `timeout` seconds have passed
        (None: no limit), as Flower's Grid does; a reply is seen within `pull_interval` seconds."""
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending:
            got = list(self.pull_messages(pending))
            replies += got
            pending -= {m.metadata.reply_to_message_id for m in got}
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(self.pull_interval if deadline is None else
                       max(0.0, min(self.pull_interval, deadline - time.monotonic())))
        return replies
