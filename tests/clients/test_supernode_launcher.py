"""The SuperNode launcher shortens Flower 1.42's hard-coded waits (3 s idle, 0.5 s for a reply), and only those."""

from __future__ import annotations

import time

import flwr.supernode.start_client_internal as loop
import pytest

from fedcredit.clients import supernode_launcher as launcher


class _Recorder:
    """A clock whose sleeps only move its own time."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.now = 42.0

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def test_only_flowers_two_waits_are_shortened() -> None:
    recorder = _Recorder()
    clock = launcher._PromptClock(0.25, recorder, reply_wait=0.02)   # type: ignore[arg-type]
    clock.sleep(3)        # "no message pulled", nothing worked on yet: the idle wait
    clock.sleep(3.5)      # any other wait: unchanged
    clock.sleep(0.5)      # waiting for a ClientApp's reply
    assert recorder.slept == [0.25, 3.5, 0.02]
    assert clock.monotonic() == recorder.now      # everything else is the time module's


def test_prompt_pulls_for_a_window_after_a_message_then_idle() -> None:
    recorder = _Recorder()
    clock = launcher._PromptClock(0.5, recorder, reply_wait=0.02, prompt_wait=0.1,   # type: ignore[arg-type]
                                  prompt_window=1.0)
    clock.sleep(3)
    clock.sleep(0.5)                  # the node worked on a message
    recorder.slept.clear()
    for _ in range(12):               # no message: pulls every 0.1 s for about a second, then every 0.5 s
        clock.sleep(3)
    assert recorder.slept[:9] == [0.1] * 9 and recorder.slept[-2:] == [0.5, 0.5]
    clock.sleep(0.5)                  # the next message starts a new window
    clock.sleep(3)
    assert recorder.slept[-1] == 0.1


def test_prompt_wait_is_never_longer_than_the_idle_wait() -> None:
    clock = launcher._PromptClock(0.05, _Recorder(), prompt_wait=0.1)   # type: ignore[arg-type]
    assert clock.prompt_wait == 0.05


def test_install_patches_the_pinned_supernode_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "time", time)          # restored after the test
    monkeypatch.setattr(loop, "pull_objects", loop.pull_objects)
    assert launcher.install(0.05)
    assert isinstance(loop.time, launcher._PromptClock) and loop.time.idle_wait == 0.05
    started = time.monotonic()
    loop.time.sleep(3)
    assert time.monotonic() - started < 2.0


def test_another_flower_version_is_left_alone(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import flwr

    monkeypatch.setattr(loop, "time", time)
    monkeypatch.setattr(flwr, "__version__", "1.43.0")
    assert not launcher.install(0.05)
    assert loop.time is time and "keeps Flower's own waits" in capsys.readouterr().err


def test_install_asks_again_for_a_messages_missing_part_within_a_tenth_of_a_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.supercore.inflatable import inflatable_utils

    monkeypatch.setattr(loop, "time", time)
    monkeypatch.setattr(loop, "pull_objects", inflatable_utils.pull_objects)
    assert launcher.install(0.5)
    asked: list[float] = []

    def pull_object(object_id: str) -> bytes:
        asked.append(time.monotonic())
        if len(asked) == 1:
            raise inflatable_utils.ObjectUnavailableError(object_id)
        return b"part"

    assert loop.pull_objects(["a"], pull_object_fn=pull_object) == {"a": b"part"}
    assert len(asked) == 2 and asked[1] - asked[0] < 0.5      # Flower's own first retry: 0.8–1.2 s
