"""Where a simulation's partners run: in this process, or on Ray (a private one, or an existing cluster).

A few partners train one after another in one Ray actor anyway (`runner.backend_config`); starting Ray for
them costs ≈ 10–12 s and ≈ 1.1 GB (its daemons and the actor's own copy of torch; benchmarks/README.md).
The in-process backend runs the same ClientApp on Flower's own worker thread in this process instead.

Adapter, pinned to Flower 1.42 (`flwr/server/superlink/fleet/vce/vce_api.py`, upstream
https://github.com/adap/flower/blob/v1.42.0/framework/py/flwr/server/superlink/fleet/vce/vce_api.py): `start_vce`'s
`backend_fn` always builds `backend.raybackend.RayBackend` (the `backend_name` it is given is not read), so
`in_process()` swaps that class for `InProcessBackend` for the length of one simulation — and swaps
`add_messages_to_queue`, the loop that hands the partners their messages, for the same loop waiting
EXTRACT_INTERVAL between passes instead of 0.1 s (each round has two message phases; a pass is a lookup in
memory). `tests/simulations/test_engine.py` checks both swap points are still there; on another Flower version
the swap refuses to run.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from logging import DEBUG
from typing import Any, Literal

from fedcredit.credit.errors import InputError

Backend = Literal["in-process", "ray"]
BACKENDS: tuple[str, ...] = ("auto", "in-process", "ray")
FLOWER_VERSION = "1.42."
EXTRACT_INTERVAL = 0.01    # seconds between the engine's passes over its queued messages (Flower: 0.1)
PARTNERS_PER_ACTOR = 5      # from this many partners per CPU, Ray with one actor per CPU (partners side by side)
_SWAP_LOCK = threading.Lock()
_IN_CLIENT_APP = threading.local()    # `.active` while this thread runs a partner's ClientApp


def _in_client_app() -> bool:
    return getattr(_IN_CLIENT_APP, "active", False)


class PartnerLines(logging.Filter):
    """Keeps a partner's own log lines (those its ClientApp logs while it runs in this process) off Flower's
    logger, as Ray keeps them in the actor (`log_to_driver` False): the coordinator logs what it hears."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _in_client_app()


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: `taskset`, a container's cpuset), not the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:           # no affinity on this platform
        return os.cpu_count() or 1


def choose_backend(requested: str, *, partners: int, ray_address: str = "", cpus: int | None = None) -> Backend:
    """`requested` ("auto", "in-process" or "ray") → the backend a simulation of `partners` runs on.

    auto: Ray when joining a cluster (`ray_address`) or when there are at least PARTNERS_PER_ACTOR partners per
    CPU (they then train side by side, one actor per CPU); in this process otherwise.
    Raises InputError for an unknown name, or in-process together with a cluster address."""
    if requested not in BACKENDS:
        raise InputError(f"must be one of {', '.join(BACKENDS)} (got '{requested}')", field="--engine")
    if ray_address:
        if requested == "in-process":
            raise InputError("--ray-address runs the partners on that Ray cluster: drop --engine in-process "
                             "or the address", field="--engine")
        return "ray"
    if requested != "auto":
        return requested  # type: ignore[return-value]
    return "ray" if partners >= PARTNERS_PER_ACTOR * (cpus or usable_cpus()) else "in-process"


def _backend_class() -> type:
    from flwr.app.error import Error
    from flwr.app.message import Context, Message
    from flwr.clientapp.client_app import ClientApp, LoadClientAppError
    from flwr.common.constant import ErrorCode
    from flwr.common.logger import log
    from flwr.server.superlink.fleet.vce.backend import Backend as FlowerBackend
    from flwr.server.superlink.fleet.vce.backend import BackendConfig

    class InProcessBackend(FlowerBackend):
        """Flower's Simulation Engine backend that runs each message's ClientApp on the engine's one worker
        thread, in this process: partners one after another, as in the one Ray actor it replaces."""

        def __init__(self, backend_config: BackendConfig) -> None:
            super().__init__(backend_config)
            self.app_fn: Callable[[], ClientApp] | None = None

        def build(self, app_fn: Callable[[], ClientApp]) -> None:
            self.app_fn = app_fn

        @property
        def num_workers(self) -> int:
            return 1

        def is_worker_idle(self) -> bool:
            return True

        def terminate(self) -> None:
            self.app_fn = None

        def process_message(self, message: Message, context: Context) -> tuple[Message, Context]:
            if self.app_fn is None:
                raise ValueError("the in-process backend was not built before its first message")
            # As Flower's Ray actor does (simulation/ray_transport/ray_actor.py, `run`), the ClientApp gets its
            # own copy of the message: Ray's serialisation makes one, and Flower's SecAgg+ mod edits the message
            # it is given, which in one process would be the one the next partner reads.
            _IN_CLIENT_APP.active = True
            try:
                app = self.app_fn()
                return app(message=copy.deepcopy(message), context=context), context
            except LoadClientAppError:
                raise
            except Exception as ex:      # noqa: BLE001 - any partner failure is the reply, as a node's would be
                failure = ex
            finally:
                _IN_CLIENT_APP.active = False
            # A partner's failure reaches the ServerApp as the error reply Flower's engine would make of it
            # (CLIENT_APP_RAISED_EXCEPTION), its reason the partner's own one-line message rather than the
            # class-and-traceback text Flower's worker logs; the traceback only in Flower's debug log.
            log(DEBUG, "a partner's ClientApp raised:\n%s",
                "".join(traceback.format_exception(type(failure), failure, failure.__traceback__)))
            reason = str(failure) or type(failure).__name__
            return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason),
                           reply_to=message), context

    return InProcessBackend


def _prompt_extractor(state: Any, queue: Any, nodes_mapping: Any, f_stop: threading.Event) -> None:
    """Flower 1.42's `vce_api.add_messages_to_queue`, waiting EXTRACT_INTERVAL between passes (not 0.1 s)."""
    while not f_stop.is_set():
        for node_id in nodes_mapping.keys():
            for message in state.get_message_ins(node_id=node_id, limit=1):
                queue.put(message)
        f_stop.wait(EXTRACT_INTERVAL)


def check_flower() -> tuple[Any, Any]:
    """The Flower modules whose Ray backend class and message loop `in_process` swaps; raises RuntimeError when
    this Flower is not the version the adapter was written against."""
    import flwr
    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.server.superlink.fleet.vce.backend import raybackend

    if (not flwr.__version__.startswith(FLOWER_VERSION) or not hasattr(raybackend, "RayBackend")
            or not hasattr(vce_api, "add_messages_to_queue")):
        raise RuntimeError(f"fedcredit's in-process simulation backend is written for Flower {FLOWER_VERSION}x "
                           f"(this is {flwr.__version__}): run with --engine ray")
    return raybackend, vce_api


@contextmanager
def in_process() -> Iterator[None]:
    """For the length of the `with` block, Flower's Simulation Engine runs ClientApps in this process (their
    own log lines kept off Flower's logger: `PartnerLines`)."""
    from flwr.common.logger import FLOWER_LOGGER

    raybackend, vce_api = check_flower()
    lines = PartnerLines()
    show = warnings.showwarning

    def partner_warnings_stay(*args: Any, **kwargs: Any) -> None:     # and so do its Python warnings
        if not _in_client_app():
            show(*args, **kwargs)

    with _SWAP_LOCK:
        original, extractor = raybackend.RayBackend, vce_api.add_messages_to_queue
        raybackend.RayBackend, vce_api.add_messages_to_queue = _backend_class(), _prompt_extractor
        FLOWER_LOGGER.addFilter(lines)
        warnings.showwarning = partner_warnings_stay
        try:
            yield
        finally:
            warnings.showwarning = show
            FLOWER_LOGGER.removeFilter(lines)
            raybackend.RayBackend, vce_api.add_messages_to_queue = original, extractor
