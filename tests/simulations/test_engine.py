"""Where a simulation's partners run (`simulations.engine`): in this process for a few partners, on Ray for
many or on a cluster — the same ClientApp, so the same model either way."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import pytest

from fedcredit.credit.errors import InputError
from fedcredit.server.app import RunSettings
from fedcredit.simulations.engine import choose_backend, in_process
from fedcredit.simulations.runner import simulate


@pytest.mark.parametrize("requested, partners, address, expected", [
    ("auto", 3, "", "in-process"), ("auto", 9, "", "in-process"), ("auto", 10, "", "ray"),
    ("auto", 3, "127.0.0.1:6379", "ray"), ("ray", 3, "", "ray"), ("in-process", 100, "", "in-process")])
def test_the_backend_chosen(requested: str, partners: int, address: str, expected: str) -> None:
    assert choose_backend(requested, partners=partners, ray_address=address, cpus=2) == expected


def test_a_backend_that_cannot_be_is_one_clear_error() -> None:
    with pytest.raises(InputError, match="field '--engine': must be one of auto, in-process, ray"):
        choose_backend("threads", partners=3)
    with pytest.raises(InputError, match="field '--engine': --ray-address runs the partners on that Ray cluster"):
        choose_backend("in-process", partners=3, ray_address="127.0.0.1:6379")


def test_the_swap_point_in_flower_is_still_there() -> None:
    """The adapter swaps the Ray backend class that Flower 1.42's engine builds; if Flower moves it, this fails
    before a simulation would quietly start Ray."""
    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.server.superlink.fleet.vce.backend import raybackend

    assert "from .backend.raybackend import RayBackend" in inspect.getsource(vce_api.start_vce)
    assert "target=add_messages_to_queue" in inspect.getsource(vce_api.run_api)
    assert "f_stop.wait(0.1)" in inspect.getsource(vce_api.add_messages_to_queue)    # what the swap shortens
    original, extractor = raybackend.RayBackend, vce_api.add_messages_to_queue
    with in_process():
        assert raybackend.RayBackend is not original and raybackend.RayBackend.__name__ == "InProcessBackend"
        assert vce_api.add_messages_to_queue is not extractor
    assert raybackend.RayBackend is original and vce_api.add_messages_to_queue is extractor


def test_a_partners_own_log_lines_stay_off_the_coordinators_log(caplog: pytest.LogCaptureFixture) -> None:
    """Under Ray a ClientApp's log lines stay in its actor; in this process they are dropped the same way
    (the coordinator logs what it hears), while the coordinator's own lines pass."""
    from logging import WARNING

    from flwr.common.logger import log
    from flwr.server.superlink.fleet.vce.backend import raybackend

    def partner_app(message: dict, context: object) -> dict:
        log(WARNING, "partner line: %s", message["text"])
        warnings.warn("partner warning", UserWarning, stacklevel=1)
        message["text"] = "edited"                     # the app gets its own copy of the message
        return message

    caplog.set_level(WARNING, logger="flwr")
    sent = {"text": "hello"}
    with warnings.catch_warnings(record=True) as shown, in_process():
        warnings.simplefilter("always")
        backend = raybackend.RayBackend({})
        backend.build(lambda: partner_app)
        reply, _ = backend.process_message(sent, context=None)
        log(WARNING, "coordinator line")
        warnings.warn("coordinator warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in shown] == ["coordinator warning"]
    assert reply == {"text": "edited"} and sent == {"text": "hello"}
    lines = [r.getMessage() for r in caplog.records]
    assert "coordinator line" in lines and not [line for line in lines if line.startswith("partner line")]


def test_a_partner_failure_is_its_one_line_reason_not_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A ClientApp's exception becomes the error reply Flower's engine would make (CLIENT_APP_RAISED_EXCEPTION),
    its reason the partner's own message: the coordinator names the partner and says what to do."""
    import time
    from logging import INFO

    from flwr.app import Message, Metadata, RecordDict
    from flwr.common.constant import ErrorCode
    from flwr.server.superlink.fleet.vce.backend import raybackend

    reason = "partner 'bank-a' (/data/bank-a.csv): data file not found: check the path"

    def failing_app(message: Message, context: object) -> Message:
        raise InputError(reason.split(": ", 1)[1], source="partner 'bank-a' (/data/bank-a.csv)")

    sent = Message(RecordDict(), metadata=Metadata(run_id=1, message_id="m-1", src_node_id=0, dst_node_id=7,
                                                   reply_to_message_id="", group_id="", created_at=time.time(),
                                                   ttl=60, message_type="query"))
    caplog.set_level(INFO, logger="flwr")
    with in_process():
        backend = raybackend.RayBackend({})
        backend.build(lambda: failing_app)
        reply, _ = backend.process_message(sent, context=None)
    assert reply.has_error() and reply.error.code == ErrorCode.CLIENT_APP_RAISED_EXCEPTION
    assert reply.error.reason == str(InputError(reason.split(": ", 1)[1], source="partner 'bank-a' (/data/bank-a.csv)"))
    assert "data file not found" in reply.error.reason and "Traceback" not in reply.error.reason
    assert reply.metadata.reply_to_message_id == "m-1" and reply.metadata.src_node_id == 7
    assert not [r for r in caplog.records if "Traceback" in r.getMessage()]


def test_auto_counts_the_cpus_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})       # as under `taskset -c 0`
    assert choose_backend("auto", partners=5) == "ray" and choose_backend("auto", partners=4) == "in-process"


@pytest.mark.e2e
def test_in_process_and_ray_train_the_same_model(three_partners: Path, tmp_path: Path) -> None:
    runs = {}
    for engine in ("in-process", "ray"):
        runs[engine] = simulate(RunSettings(scenario=str(three_partners), out_dir=str(tmp_path / engine), rounds=2),
                                yardsticks=False, engine=engine).summary
    assert runs["in-process"]["simulation_engine"] == {"backend": "in-process", "ray_address": None, "ray_nodes": 0,
                                                       "ray_cpus": 0.0, "cpus_per_actor": 0}
    assert runs["ray"]["simulation_engine"]["backend"] == "ray" and runs["ray"]["simulation_engine"]["ray_nodes"] == 1
    assert runs["in-process"]["federated"]["auc"] == pytest.approx(runs["ray"]["federated"]["auc"], abs=1e-5)
    assert runs["in-process"]["federated"]["auc"] > 0.6
