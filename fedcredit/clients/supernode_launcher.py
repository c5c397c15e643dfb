"""`flower-supernode` that asks the SuperLink for work sooner when it found none (Flower 1.42 adapter).

Flower 1.42's SuperNode loop (`flwr.supernode.start_client_internal.start_client_internal`,
upstream: https://github.com/adap/flower/blob/v1.42.0/framework/py/flwr/supernode/start_client_internal.py,
the `time.sleep(3)` after "No message has been pulled") waits a hard-coded 3 s whenever a pull
brought no message, so every message phase of a round waits 0–3 s before a partner even sees it;
and once it holds a message it looks for the ClientApp's reply every 0.5 s (`_push_messages`, the
`time.sleep(0.5)` loops), so a reply waits 0–0.5 s more before it is sent.
This launcher runs Flower's own `flower-supernode` entry point unchanged except that the module's
`time` is a `_PromptClock`: its `sleep(0.5)` sleeps REPLY_WAIT seconds (a look at the node's own
in-memory state), and its `sleep(3)` sleeps `idle_wait` seconds (the partner's `[node] idle_wait`,
passed in FEDCREDIT_SUPERNODE_IDLE_WAIT) — or PROMPT_WAIT seconds for PROMPT_WINDOW seconds after
the node last worked on a message: a run's next message (SecAgg+'s next stage, the next round)
usually follows within a second or two, and each of a round's exchanges would otherwise wait up to
`idle_wait` for the slowest partner's next pull. An idle node asks every `idle_wait` seconds.
Every other call is the `time` module's.
A pulled message's parts (its objects) are pulled after it; one the coordinator has not finished
pushing is asked for again after `initial_backoff` seconds, doubling — 1 s the first time in the
pinned `flwr.supercore.inflatable.inflatable_utils.pull_objects`, so a pull that lands between the
coordinator registering a message and pushing its parts cost a whole second. The loop's
`pull_objects` is that function with `initial_backoff` OBJECT_RETRY (its cap, tries and time limit
unchanged).
On any other Flower version it changes nothing and says so in the SuperNode's log.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from types import ModuleType
from typing import Any

PINNED = "1.42."
ENV_IDLE_WAIT = "FEDCREDIT_SUPERNODE_IDLE_WAIT"
ENV_WARM_START = "FEDCREDIT_WARM_START"       # "1": start the ClientApp fork server (`warm_start`)
FLOWER_IDLE_WAIT = 3.0     # seconds, hard-coded in the pinned version's loop
FLOWER_REPLY_WAIT = 0.5    # seconds, hard-coded in the pinned version's `_push_messages`
REPLY_WAIT = 0.02          # seconds between looks for a ClientApp's reply (Flower: 0.5)
PROMPT_WAIT = 0.1          # seconds between pulls while a run is exchanging messages
PROMPT_WINDOW = 10.0       # seconds after the node last worked on a message that it pulls every PROMPT_WAIT
OBJECT_RETRY = 0.05        # seconds before a message's not yet pushed part is asked for again (Flower: 1 s), doubling


class _PromptClock:
    """The `time` module, except for the pinned SuperNode loop's two hard-coded waits: waiting for a
    reply to be ready (0.5 s) lasts `reply_wait`; the wait after a pull found no message (3 s) lasts
    `prompt_wait` within `prompt_window` seconds of the last reply wait (the node was working on a
    message), else `idle_wait`."""

    def __init__(self, idle_wait: float, clock: ModuleType = time, *, reply_wait: float = REPLY_WAIT,
                 prompt_wait: float = PROMPT_WAIT, prompt_window: float = PROMPT_WINDOW):
        self.idle_wait = idle_wait
        self.reply_wait = reply_wait
        self.prompt_wait = min(prompt_wait, idle_wait)
        self.prompt_window = prompt_window
        self._clock = clock
        self._worked_at: float | None = None     # monotonic time of the last reply wait

    def sleep(self, seconds: float) -> None:
        if seconds == FLOWER_REPLY_WAIT:
            self._worked_at = self._clock.monotonic()
            self._clock.sleep(self.reply_wait)
        elif seconds == FLOWER_IDLE_WAIT:
            busy = self._worked_at is not None and self._clock.monotonic() - self._worked_at < self.prompt_window
            self._clock.sleep(self.prompt_wait if busy else self.idle_wait)
        else:
            self._clock.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._clock, name)


def install(idle_wait: float) -> bool:
    """Shorten the SuperNode's waits in this process (see the module's text); False (and nothing
    changed) on a Flower version this adapter was not written for."""
    import flwr
    import flwr.supernode.start_client_internal as loop
    from flwr.supercore.inflatable import inflatable_utils

    if (not flwr.__version__.startswith(PINNED) or getattr(loop, "time", None) is not time
            or getattr(loop, "pull_objects", None) is not inflatable_utils.pull_objects):
        print(f"fedcredit: Flower {flwr.__version__} is not {PINNED}x: the SuperNode keeps Flower's own waits",
              file=sys.stderr, flush=True)
        return False
    loop.time = _PromptClock(idle_wait)   # type: ignore[assignment]
    loop.pull_objects = functools.partial(inflatable_utils.pull_objects, initial_backoff=OBJECT_RETRY)
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
