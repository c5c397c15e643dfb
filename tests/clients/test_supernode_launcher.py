"""The SuperNode launcher shortens Flower 1.42's hard-coded 3 s idle wait, and only that."""

from __future__ import annotations

import time

import flwr.supernode.start_client_internal as loop
import pytest

from fedcredit.clients import supernode_launcher as launcher


class _Recorder:
    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def monotonic(self) -> float:
        return 42.0


def test_only_the_idle_wait_is_shortened() -> None:
    recorder = _Recorder()
    clock = launcher._PromptClock(0.25, recorder)   # type: ignore[arg-type]
    clock.sleep(3)        # "no message pulled"
    clock.sleep(0.5)      # waiting for a reply to be ready: unchanged
    clock.sleep(3.5)
    assert recorder.slept == [0.25, 0.5, 3.5]
    assert clock.monotonic() == 42.0      # everything else is the time module's


def test_install_patches_the_pinned_supernode_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "time", time)          # restored after the test
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
    assert loop.time is time and "keeps Flower's own idle wait" in capsys.readouterr().err
