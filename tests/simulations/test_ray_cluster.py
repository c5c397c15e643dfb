"""`fedcredit simulate --ray-address`: a real two-node Ray cluster on 127.0.0.1, and bad addresses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fedcredit.credit.errors import InputError
from fedcredit.server.app import RunSettings
from fedcredit.simulations.ray_cluster import cluster_info, parse_address
from fedcredit.simulations.runner import backend_config, simulate
from tests.processes import free_port, kill_tree

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.mark.parametrize("address, expected", [("127.0.0.1:6379", ("127.0.0.1", 6379)), ("head.bank:10001", ("head.bank", 10001)),
                                               ("[::1]:6379", ("::1", 6379)), ("auto", None)])
def test_addresses_a_cluster_head_can_have(address: str, expected: tuple[str, int] | None) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize("address", ["127.0.0.1", "ray://127.0.0.1:10001", "127.0.0.1:0", "127.0.0.1:70000", ""])
def test_other_addresses_are_refused_with_what_to_give(address: str) -> None:
    with pytest.raises(InputError, match=r"field '--ray-address': must be HOST:PORT .* or auto"):
        parse_address(address)


def test_a_cluster_that_does_not_answer_is_one_clear_error() -> None:
    port = free_port()   # nothing listens there
    started = time.monotonic()
    with pytest.raises(InputError, match=rf"no Ray cluster answers at 127.0.0.1:{port} .*ray start --head"):
        cluster_info(f"127.0.0.1:{port}", timeout=5)
    assert time.monotonic() - started < 5


def test_joining_a_cluster_passes_no_machine_sizes() -> None:
    # Ray refuses num_cpus / object_store_memory when it joins a running cluster
    config = backend_config(ray_address="10.0.0.5:6379", client_cpus=2)
    assert config["init_args"]["address"] == "10.0.0.5:6379"
    assert not {"num_cpus", "num_gpus", "object_store_memory"} & config["init_args"].keys()
    assert config["client_resources"]["num_cpus"] == 2
    assert "address" not in backend_config(num_cpus=2)["init_args"]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    with log.open("wb") as out:
        return subprocess.Popen([RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                 "--object-store-memory=100000000", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)


def _wait_for_nodes(address: str, want: int, procs: list[subprocess.Popen], limit: float = 120.0) -> None:
    """Until `ray status` shows `want` active nodes (bounded; a dead `ray start` fails at once)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"`ray start` exited with {p.returncode}"
        status = subprocess.run([RAY, "status", f"--address={address}"], capture_output=True, text=True, timeout=60)
        if status.returncode == 0 and status.stdout.count(" node_") >= want:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster did not show {want} nodes within {limit:.0f} s")


@pytest.fixture
def two_node_cluster() -> Iterator[str]:
    """`ray start --head` plus one worker node on 127.0.0.1, one CPU each; stopped by PID (each
    `ray start --block` leads its own process group, with every Ray daemon and actor of its node)."""
    # short: Ray's socket paths under it must stay within AF_UNIX's 107 bytes (pytest's folders do not)
    folder = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    procs = [_start(["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={folder}",
                     "--disable-usage-stats"], folder / "head.log")]
    try:
        _wait_for_nodes(address, 1, procs)
        procs.append(_start([f"--address={address}"], folder / "worker.log"))
        _wait_for_nodes(address, 2, procs)
        yield address
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        kill_tree([p.pid for p in procs])
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        left = [q for q in psutil.process_iter(["cmdline"]) if str(folder) in " ".join(q.info["cmdline"] or [])]
        for q in left:
            q.kill()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.e2e
def test_a_simulation_runs_on_an_existing_two_node_cluster(two_node_cluster: str, three_partners: Path,
                                                          tmp_path: Path) -> None:
    result = simulate(RunSettings(scenario=str(three_partners), out_dir=str(tmp_path / "run"), rounds=2),
                      yardsticks=False, ray_address=two_node_cluster)
    summary = result.summary
    assert summary["simulation_engine"] == {"backend": "ray", "ray_address": two_node_cluster, "ray_nodes": 2, "ray_cpus": 2.0,
                                            "cpus_per_actor": 1}
    assert summary["rounds"] == 2
    assert summary["federated"]["auc"] > 0.6
    assert [p["name"] for p in summary["partners"]] == ["bank-a", "insurer-b", "platform-c"]
    # the partners ran in the cluster: its head recorded this process's drivers (the check, then Flower's)
    import ray

    ray.init(address=two_node_cluster, log_to_driver=False, logging_level="ERROR")
    try:
        drivers = [j for j in ray._private.state.jobs() if j["DriverPid"] == os.getpid()]
    finally:
        ray.shutdown()
    assert len(drivers) >= 3, drivers     # cluster_info, Flower's engine, and this look


def test_the_command_line_refuses_a_bad_address_before_reading_anything(capsys: pytest.CaptureFixture[str]) -> None:
    from fedcredit.cli.main import main

    assert main(["simulate", "--ray-address", "ray://head:10001", "--no-yardsticks"]) == 2
    err = capsys.readouterr().err
    assert "field '--ray-address': must be HOST:PORT" in err and "Traceback" not in err


def test_a_large_consortium_gets_one_actor_per_cpu_a_small_one_a_single_actor() -> None:
    assert backend_config(num_cpus=2, partners=3)["client_resources"]["num_cpus"] == 2      # one actor
    assert backend_config(num_cpus=2, partners=100)["client_resources"]["num_cpus"] == 1    # two side by side
