"""The ClientApp fork server: a child runs with the launcher's argv, environment, folder and
streams, its exit code comes back, SIGTERM reaches it, and without a server the cold path runs."""

from __future__ import annotations

import json
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

from fedcredit.clients import warm_start
from tests.processes import kill_tree

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = "from fedcredit.clients.warm_start import launch; raise SystemExit(launch())"


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def _wait_for(path: Path, proc: subprocess.Popen, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert proc.poll() is None, f"the fork server exited with {proc.returncode}"
        assert time.monotonic() < deadline, "the fork server did not listen in time"
        time.sleep(0.1)


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, subprocess.Popen]]:
    """A fork server (test target) whose parent is this test process; stopped by PID."""
    folder = Path(tempfile.mkdtemp(prefix="fcw-t"))
    path = folder / "s"
    target = getattr(request, "param", "tests.clients.warm_target:echo")
    proc = subprocess.Popen([sys.executable, "-m", "fedcredit.clients.warm_start", str(path), str(os.getpid())],
                            env=_env(**{warm_start.ENV_TARGET: target}), cwd=ROOT)
    try:
        _wait_for(path, proc)
        yield str(path), proc
    finally:
        killed = proc.poll() is not None
        kill_tree([proc.pid])
        left = folder.exists()
        if killed:                                # a test killed the server: its folder is the test's to remove
            shutil.rmtree(folder, ignore_errors=True)
    assert killed or not left                     # the server removed its socket and folder on SIGTERM


def test_a_forked_child_is_the_launchers_process_in_all_but_its_imports(server, tmp_path: Path) -> None:
    server, _ = server
    run = subprocess.run([sys.executable, "-c", LAUNCH, "--flag", "x"], capture_output=True, text=True, timeout=120,
                         env=_env(**{warm_start.ENV_SOCKET: server, "WARM_PROBE": "seen"}), cwd=tmp_path)
    assert run.returncode == 3, run.stderr
    seen = json.loads(run.stdout)
    assert seen["argv"][1:] == ["--flag", "x"] and seen["probe"] == "seen" and seen["cwd"] == str(tmp_path)
    assert seen["torch_loaded"] is True                  # imported once, in the server, before the fork
    assert "to stderr" in run.stderr


def test_without_a_server_the_launcher_runs_the_same_target_cold(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", LAUNCH, "--cold"], capture_output=True, text=True, timeout=120,
                         env=_env(**{warm_start.ENV_SOCKET: str(tmp_path / "none"),
                                     warm_start.ENV_TARGET: "tests.clients.warm_target:echo", "WARM_PROBE": "cold"}),
                         cwd=tmp_path)
    assert run.returncode == 3, run.stderr
    seen = json.loads(run.stdout)
    assert seen["probe"] == "cold" and seen["torch_loaded"] is False


def _start_sleeper(socket_path: str, tmp_path: Path) -> tuple[subprocess.Popen, psutil.Process]:
    pidfile = tmp_path / "child.pid"
    env = _env(**{warm_start.ENV_SOCKET: socket_path, "WARM_PIDFILE": str(pidfile)})
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCH], env=env, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not pidfile.exists():
        assert time.monotonic() < deadline and launcher.poll() is None
        time.sleep(0.1)
    return launcher, psutil.Process(int(pidfile.read_text()))


@pytest.mark.parametrize("server", ["tests.clients.warm_target:sleeper"], indirect=True)
def test_sigterm_to_the_launcher_reaches_the_child(server, tmp_path: Path) -> None:
    launcher, child = _start_sleeper(server[0], tmp_path)
    try:
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=30) == -signal.SIGTERM     # the child's own end, relayed
        assert psutil.wait_procs([child], timeout=10)[1] == []  # and the child is gone
    finally:
        kill_tree([launcher.pid, child.pid])


@pytest.mark.parametrize("server", ["tests.clients.warm_target:sleeper"], indirect=True)
def test_a_server_that_dies_mid_message_leaves_the_child_to_finish(server, tmp_path: Path) -> None:
    path, proc = server
    launcher, child = _start_sleeper(path, tmp_path)
    try:
        proc.kill()
        proc.wait(timeout=30)
        time.sleep(0.5)
        assert child.is_running() and launcher.poll() is None    # the message goes on; the launcher waits
        child.terminate()
        assert launcher.wait(timeout=30) == 0
    finally:
        kill_tree([launcher.pid, child.pid])


def test_a_server_stopped_while_it_still_imports_leaves_no_folder(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="fcw-t"))
    proc = subprocess.Popen([sys.executable, "-m", "fedcredit.clients.warm_start", str(folder / "s"),
                             str(os.getpid())], env=_env(), cwd=ROOT)
    try:
        time.sleep(0.5)                       # still importing torch & co: not listening yet
        proc.terminate()
        proc.wait(timeout=60)
    finally:
        kill_tree([proc.pid])
    assert not folder.exists()


def test_socket_folders_a_killed_launcher_left_are_swept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{warm_start.FOLDER_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{warm_start.FOLDER_PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{warm_start.FOLDER_PREFIX}notapid"
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "s").touch()
    assert warm_start.sweep_stale(tmp_path) == [stale]
    assert not stale.exists() and (live / "s").exists() and (other / "s").exists()


def test_what_a_training_message_imports_is_preloaded() -> None:
    """A forked child imports nothing heavy: building and stepping the optimizer (which pulls in
    torch._dynamo, ≈ 1.1 s) and a DP-SGD step find their modules already loaded by the server."""
    code = (
        "import importlib, sys\n"
        "from fedcredit.clients import warm_start\n"
        "for name in warm_start.PRELOAD: importlib.import_module(name)\n"
        "before = set(sys.modules)\n"
        "import torch\n"
        "from fedcredit.credit.model import make_optimizer\n"
        "model = torch.nn.Linear(3, 1)\n"
        "opt = make_optimizer(model, 'adam', lr=0.01)\n"
        "model(torch.ones(2, 3)).sum().backward(); opt.step()\n"
        "heavy = ('torch._dynamo', 'torch._inductor', 'torch._functorch', 'torch.fx', 'opacus', 'pandas', 'scipy')\n"
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(heavy)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True,
                         env=_env())
    assert out.stdout.strip() == "[]", out.stdout
