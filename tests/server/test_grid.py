"""PromptGrid: Flower's push-then-pull with a short pull interval, everything else delegated."""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import SimpleNamespace

import pytest
from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from fedcredit.server.grid import PromptGrid, prompt_object_pulls


class _SlowPartners(Grid):
    """A Grid whose replies arrive after `delay` seconds (unit-test stand-in for a SuperLink; its
    messages are plain objects with the metadata PromptGrid reads)."""

    def __init__(self, delay: float, answering: int):
        self.delay, self.answering, self.pulls = delay, answering, 0
        self.pushed: dict[str, Message] = {}
        self.started = 0.0

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):  # noqa: ANN001, ANN201
        return SimpleNamespace(content=content, dst=dst_node_id, metadata=SimpleNamespace())

    def get_node_ids(self) -> Iterable[int]:
        return [1, 2, 3]

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        self.started = time.monotonic()
        ids = []
        for i, m in enumerate(messages):
            m.metadata.message_id = f"m{i}"
            self.pushed[f"m{i}"] = m
            ids.append(f"m{i}")
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self.pulls += 1
        if time.monotonic() - self.started < self.delay:
            return []
        ids = sorted(message_ids)[: self.answering]
        self.answering -= len(ids)
        return [SimpleNamespace(metadata=SimpleNamespace(reply_to_message_id=i)) for i in ids]

    def send_and_receive(self, messages, *, timeout=None):  # noqa: ANN001 - Flower's own: pulls every 3 s
        raise AssertionError("PromptGrid must not call the wrapped Grid's send_and_receive")


def _messages(grid: Grid, n: int) -> list[Message]:
    return [grid.create_message(RecordDict(), "train", node, "1") for node in range(1, n + 1)]


def test_replies_are_seen_within_the_pull_interval() -> None:
    slow = _SlowPartners(delay=0.3, answering=3)
    grid = PromptGrid(slow, pull_interval=0.05)
    started = time.monotonic()
    replies = list(grid.send_and_receive(_messages(grid, 3), timeout=30))
    took = time.monotonic() - started
    assert len(replies) == 3 and {r.metadata.reply_to_message_id for r in replies} == {"m0", "m1", "m2"}
    assert took < 2.5          # Flower's own Grid would pull again only after 3 s
    assert slow.pulls >= 3     # it kept pulling while replies were outstanding


def test_a_timeout_returns_the_replies_that_came() -> None:
    slow = _SlowPartners(delay=0.0, answering=2)
    grid = PromptGrid(slow, pull_interval=0.05)
    started = time.monotonic()
    replies = list(grid.send_and_receive(_messages(grid, 3), timeout=0.4))
    assert len(replies) == 2 and 0.35 <= time.monotonic() - started < 5


def test_everything_else_is_the_wrapped_grid() -> None:
    slow = _SlowPartners(delay=0.0, answering=0)
    grid = PromptGrid(slow)
    assert list(grid.get_node_ids()) == [1, 2, 3] and [n.node_id for n in grid.get_nodes()] == [1, 2, 3]
    with pytest.raises(ValueError, match="pull_interval"):
        PromptGrid(slow, pull_interval=0)


def test_a_replys_missing_part_is_asked_again_within_a_tenth_of_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flower 1.42 asks again for a reply's part its SuperNode has not pushed yet after 1 s; the
    deployed Grid's `pull_objects` asks after 0.05 s (then doubling), with Flower's own function."""
    from flwr.supercore.inflatable import inflatable_utils
    from flwr.supercore.inflatable.inflatable_utils import ObjectUnavailableError
    from flwr.superlink.grid import http_grid

    monkeypatch.setattr(http_grid, "pull_objects", inflatable_utils.pull_objects)   # restored after the test
    assert prompt_object_pulls()
    asked: list[float] = []

    def pull_object(object_id: str) -> bytes:
        asked.append(time.monotonic())
        if len(asked) == 1:
            raise ObjectUnavailableError(object_id)
        return b"part"

    assert http_grid.pull_objects(["a"], pull_object_fn=pull_object) == {"a": b"part"}
    assert len(asked) == 2 and asked[1] - asked[0] < 0.5      # Flower's own first retry: 0.8–1.2 s
    assert http_grid.pull_objects.func is inflatable_utils.pull_objects


def test_object_pulls_are_left_alone_on_another_flower(monkeypatch: pytest.MonkeyPatch) -> None:
    import flwr
    from flwr.supercore.inflatable import inflatable_utils
    from flwr.superlink.grid import http_grid


    monkeypatch.setattr(http_grid, "pull_objects", inflatable_utils.pull_objects)
    monkeypatch.setattr(flwr, "__version__", "1.43.0")
    assert not prompt_object_pulls() and http_grid.pull_objects is inflatable_utils.pull_objects
