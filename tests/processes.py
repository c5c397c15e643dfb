"""Helpers for tests that start real processes: free loopback ports and PID-based cleanup."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import psutil


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range, with the next two free as well (a
    partner's SuperNode also takes port + 1 and + 2): see `free_port_block`."""
    return free_port_block(3)


def free_port_block(size: int, *, tries: int = 200) -> int:
    """First of `size` consecutive free loopback ports, below the kernel's ephemeral range (so no
    process's outgoing connection or bind(0) takes one of them while a test starts its servers) and
    above Ray's own (client server 10001, workers 10002–19999: a head given a port there exits)."""
    import random

    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    start, stop = 20_000, max(low - size, 20_001)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")       # "gw0", "gw1", …: each worker its own range
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if worker.startswith("gw") and worker[2:].isdigit() and count > 1:
        width = (stop - start) // count
        start += int(worker[2:]) % count * width
        stop = start + width
    for _ in range(tries):
        first = random.randrange(start, max(stop, start + 1))
        sockets = []
        try:
            for port in range(first, first + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {size} consecutive free loopback ports found")


def kill_tree(pids: Iterable[int], timeout: float = 10.0) -> None:
    """Terminate each PID and its descendants; kill what is still alive after `timeout`."""
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            root = psutil.Process(pid)
            procs += [*root.children(recursive=True), root]
        except psutil.NoSuchProcess:
            continue
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=timeout)


def pids_with_argument(fragment: str) -> list[int]:
    """PIDs whose command line mentions `fragment` (e.g. a test's private FLWR_HOME)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(fragment in part for part in (proc.info["cmdline"] or [])):
            found.append(proc.info["pid"])
    return found


def pids_in_files(*pid_files: Path) -> list[int]:
    """PIDs recorded in fedcredit PID files (JSON with a "pid"); missing or unreadable files are skipped."""
    pids = []
    for f in pid_files:
        try:
            pids.append(int(json.loads(Path(f).read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            pass
    return pids
