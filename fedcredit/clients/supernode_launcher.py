"""`flower-supernode` that asks the SuperLink for work sooner when it found none (Flower 1.42 adapter).

Flower 1.42's SuperNode loop (`flwr.supernode.start_client_internal.start_client_internal`,
upstream: https://github.com/adap/flower/blob/v1.42.0/framework/py/flwr/supernode/start_client_internal.py,
the `time.sleep(3)` after "No message has been pulled") waits a hard-coded 3 s whenever a pull
brought no message, so every message phase of a round waits 0–3 s before a partner even sees it.
This launcher runs Flower's own `flower-supernode` entry point unchanged except that the module's
`time` is a `_PromptClock`: its `sleep(3)` sleeps `idle_wait` seconds (the partner's `[node]
idle_wait`, passed in FEDCREDIT_SUPERNODE_IDLE_WAIT); every other call is the `time` module's.
On any other Flower version it changes nothing and says so in the SuperNode's log.
"""

from __future__ import annotations

import os
import sys
import time
from types import ModuleType
from typing import Any

PINNED = "1.42."
ENV_IDLE_WAIT = "FEDCREDIT_SUPERNODE_IDLE_WAIT"
ENV_WARM_START = "FEDCREDIT_WARM_START"       # "1": start the ClientApp fork server (`warm_start`)
FLOWER_IDLE_WAIT = 3.0     # seconds, hard-coded in the pinned version's loop


class _PromptClock:
    """The `time` module, except that Flower's idle wait of 3 s lasts `idle_wait` seconds."""

    def __init__(self, idle_wait: float, clock: ModuleType = time):
        self.idle_wait = idle_wait
        self._clock = clock

    def sleep(self, seconds: float) -> None:
        self._clock.sleep(self.idle_wait if seconds == FLOWER_IDLE_WAIT else seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clock, name)


def install(idle_wait: float) -> bool:
    """Shorten the SuperNode's idle wait in this process; False (and nothing changed) on a Flower
    version this adapter was not written for."""
    import flwr
    import flwr.supernode.start_client_internal as loop

    if not flwr.__version__.startswith(PINNED) or getattr(loop, "time", None) is not time:
        print(f"fedcredit: Flower {flwr.__version__} is not {PINNED}x: the SuperNode keeps Flower's own idle wait",
              file=sys.stderr, flush=True)
        return False
    loop.time = _PromptClock(idle_wait)   # type: ignore[assignment]
    return True


def main() -> int:
    from flwr.supernode.cli import flower_supernode

    idle = os.environ.get(ENV_IDLE_WAIT)
    if idle:
        install(float(idle))
    if os.environ.get(ENV_WARM_START) == "1":   # Flower's SuperExec, and the ClientApps it starts, inherit it
        from fedcredit.clients import warm_start

        os.environ[warm_start.ENV_SOCKET] = warm_start.start_server()
    sys.argv[0] = "flower-supernode"
    return flower_supernode() or 0


if __name__ == "__main__":
    sys.exit(main())
