"""A partner's ClientApp processes start warm: forked from a process that has already imported
torch, Opacus, pandas and fedcredit (a fork server beside the SuperNode).

Flower 1.42's SuperNode starts a new `flwr-clientapp` process for every message; each one used to
import torch/Opacus/pandas again (2–3 s on a quiet machine, 10 s on a busy one) before its work
of a few tenths of a second. Here `fedcredit partner start` (through `supernode_launcher`) starts
`serve()` beside the SuperNode; the `flwr-clientapp` script Flower runs (`launch()`) hands its
command line, environment, working folder and standard streams (SCM_RIGHTS) to it over a Unix
socket only the partner's user can open (0600 in a 0700 folder); the server forks a child that
runs exactly what the cold process runs — `verified_clientapp.main()`: the bundle's signature is
checked, then Flower's own ClientApp pulls the message, runs the handler through the same privacy
gate, ledger and vault, and pushes the reply — and the launcher relays the child's exit code and
forwards SIGTERM/SIGINT to it. Each message still runs in a fresh process (no state is kept
between messages beyond what a cold process has: none); only the imports are shared.

When the server is not there (not started yet, crashed, or the partner's `[node] warm_start =
false`), `launch()` runs the cold path itself: nothing is lost but time. If the server dies while a
child runs, the child finishes its message (its reply and ledger entry are its own) and the
launcher waits for it.
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

ENV_SOCKET = "FEDCREDIT_WARM_CLIENTAPP"       # the server's socket path, for the launcher
ENV_TARGET = "FEDCREDIT_WARM_TARGET"          # module:function a child runs (tests); default below
TARGET = "fedcredit.clients.verified_clientapp:main"
# torch._dynamo: the first `torch.optim` optimizer a process builds imports it (≈ 1.1 s, then 40 % of a
# training message's child when it was not preloaded)
PRELOAD = ("numpy", "pandas", "pyarrow.parquet", "scipy.stats", "sklearn.metrics", "torch", "torch._dynamo", "opacus",
           "httpcore", "flwr.supernode.cli.flwr_clientapp", "flwr.supernode.runtime.run_clientapp",
           "fedcredit.clients.verified_clientapp", "fedcredit.protection.app_signing", "fedcredit.clients.app",
           "fedcredit.clients.partner")
_MAX_REQUEST = 1 << 20


def _target():
    module, _, name = os.environ.get(ENV_TARGET, TARGET).partition(":")
    return getattr(importlib.import_module(module), name)


def _run_child(fds: list[int], request: dict, target) -> None:
    """In the forked child: become the launcher's process (streams, environment, folder, argv),
    run the target, exit with its code. Never returns."""
    code = 1
    try:
        for new, fd in enumerate(fds[:3]):
            os.dup2(fd, new)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = list(request["argv"])
        try:
            result = target()
            code = result if isinstance(result, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # the child's own failure: report it on its stderr, as a cold process would
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(path: Path, parent: int) -> None:
    """Import PRELOAD, then fork one child per launcher connection until `parent` (the SuperNode
    launcher) is gone. Single-threaded, so forking is safe. The socket and its folder are removed
    on SIGTERM or when the parent is gone, also while still importing."""
    def stop(*_: object) -> None:
        # Exit here, not by raising SystemExit: raised inside an import it can be swallowed (a library's broad
        # except), and the server would go on until its parent is gone.
        _remove_socket(path)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    listener = None
    try:
        for name in PRELOAD:
            importlib.import_module(name)
        target = _target()      # the server's choice (ENV_TARGET is for tests), not the launcher's
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(str(path))
        finally:
            os.umask(old)
        listener.listen(16)
        _serve(listener, parent, target)
    finally:
        if listener is not None:
            listener.close()
        _remove_socket(path)


def _remove_socket(path: Path) -> None:
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def _serve(listener: socket.socket, parent: int, target) -> None:
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    waiting: dict[int, socket.socket] = {}          # child pid → its launcher's connection
    while os.getppid() == parent:
        for key, _ in selector.select(timeout=0.05):
            conn, _ = listener.accept()
            try:
                conn.settimeout(10)
                data, fds, _, _ = socket.recv_fds(conn, _MAX_REQUEST, 3)
                request = json.loads(data)
            except (OSError, ValueError):
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                listener.close()
                conn.close()
                _run_child(fds, request, target)
            for fd in fds:
                os.close(fd)
            try:
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            except OSError:
                pass
            waiting[pid] = conn
        while waiting:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                except OSError:
                    pass
                conn.close()


FOLDER_PREFIX = "fcw-"


def sweep_stale(root: Path) -> list[Path]:
    """Remove the socket folders (``fcw-<launcher pid>-*``, ours) of fork servers whose launcher is gone:
    a SIGKILL leaves them behind. A folder whose launcher pid is alive, or that is not ours, is kept.
    Returns the folders removed."""
    removed = []
    for folder in root.glob(f"{FOLDER_PREFIX}*-*"):
        try:
            pid = int(folder.name[len(FOLDER_PREFIX):].split("-", 1)[0])
            if folder.stat().st_uid != os.getuid() or _alive(pid):
                continue
            (folder / "s").unlink(missing_ok=True)
            folder.rmdir()
            removed.append(folder)
        except (ValueError, OSError):
            continue
    return removed


def _alive(pid: int) -> bool:
    """Whether our process `pid` still runs (another user's process under that pid: ours is gone)."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def start_server() -> str:
    """Start the fork server as a child of this process (the SuperNode launcher); return the socket
    path it will listen on (the launcher runs cold until it does). Put it in ENV_SOCKET."""
    import subprocess

    sweep_stale(Path(tempfile.gettempdir()))
    # 0700; named after this launcher (see sweep_stale); short: a socket path has ≤ 107 bytes
    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
    path = folder / "s"
    subprocess.Popen([sys.executable, "-m", __name__, str(path), str(os.getpid())], stdin=subprocess.DEVNULL)
    return str(path)


def _wait_gone(pid: int) -> None:
    while _alive(pid):
        time.sleep(0.1)


def launch() -> int:
    """The `flwr-clientapp` entry point: run warm through the fork server, or cold in this process."""
    path = os.environ.get(ENV_SOCKET)
    conn = None
    if path and os.path.exists(path):
        try:
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(10)
            conn.connect(path)
            request = {"argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd()}
            socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
            reader = conn.makefile("rb")
            pid = int(json.loads(reader.readline())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            if conn is not None:
                conn.close()
            conn = None
    if conn is None:
        result = _target()()
        return result if isinstance(result, int) else 0

    def forward(signum: int, _frame) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    conn.settimeout(None)
    try:
        line = reader.readline()
        code = int(json.loads(line)["exit"]) if line else _lost(pid)
    except (OSError, ValueError, KeyError, TypeError):
        code = _lost(pid)
    if code < 0:      # the child died of a signal: so does the launcher, as the cold process would have
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def _lost(pid: int) -> int:
    """The server went away while its child runs: the child finishes on its own; wait for it."""
    _wait_gone(pid)
    return 0


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
