"""Helpers for tests that start real processes: free loopback ports and PID-based cleanup."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
