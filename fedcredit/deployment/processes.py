"""Supervising the processes we start: each in its own session, its output piped through a log
pump (`fedcredit.deployment.logpump`) into a log file; a PID file that records the process's
start time, so a detached process is found again and a recycled PID is never signalled; stopping
a whole process tree (descendants, process group, helpers that watch it); SIGINT/SIGTERM turned
into a clean stop; services followed in the foreground (`serve`). A start either ends with a ready
process or stops what it started.

Knows nothing of Flower or of our config files (`.importlinter`): `superlink`, `supernode` and
`gateway_service` compose the command lines and say when a process is ready.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import psutil

from fedcredit.credit.atomic import atomic_write_json
from fedcredit.credit.errors import FederationError, InputError
from fedcredit.deployment import PROJECT_DIR

STOP_TIMEOUT = 20.0
Print = Callable[[str], None]


class DeploymentError(InputError):
    """A process could not be started or stopped; the message says why and what to do."""


def shell_join(cmd: Sequence[str]) -> str:
    """The command as one would type it (single-quoted, or double-quoted when it holds ' only)."""
    import shlex

    def quote(arg: str) -> str:
        if "'" in arg and not any(c in arg for c in '"$`\\!'):
            return f'"{arg}"'
        return shlex.quote(arg)

    return " ".join(quote(c) for c in cmd)


def check_port_free(host: str, port: int, *, source: str, field: str) -> None:
    """Bind the port (as the server will) and release it; refuse if something holds it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DeploymentError(f"port {port} on {host} is not available ({exc.strerror}): another program "
                                  f"(or a running SuperLink/SuperNode) uses it; stop it or choose another port",
                                  source=source, field=field) from None


def read_since(log_file: Path, offset: int) -> tuple[str, int]:
    """(text appended to `log_file` from byte `offset` on, the new offset); ("", offset) if unreadable."""
    try:
        with log_file.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return "", offset
    return data.decode("utf-8", errors="replace"), offset + len(data)


@dataclass(frozen=True)
class PidRecord:
    pid: int
    create_time: float
    argv: tuple[str, ...]
    log: str

    def process(self):
        """The live process this record names, or None (exited, or the PID now belongs to another)."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.5 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return None


def write_pid_record(path: Path, pid: int, argv: Sequence[str], log: Path) -> None:
    """A PID file that also records the process's start time (a recycled PID is never mistaken for it)."""
    atomic_write_json(path, {"pid": pid, "create_time": psutil.Process(pid).create_time(), "argv": list(argv),
                             "log": str(log)})


def read_pid_file(path: Path) -> PidRecord | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return PidRecord(int(raw["pid"]), float(raw["create_time"]), tuple(raw.get("argv", ())), str(raw.get("log", "")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise DeploymentError("is not a fedcredit PID file: remove it if no process runs", source=str(path)) from None


def _descendants(pid: int) -> list:
    """psutil.Process objects of `pid`'s descendants (they remember their start time, so a
    later signal never reaches a process that merely reuses a PID)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _orphans_of(pid: int) -> list:
    """Flower helpers left by `pid`: members of the process group it leads (we start every
    process in its own session) and `flower-superexec ... --parent-pid PID`, which Flower starts
    in a session of its own."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
            adopted = any(a == "--parent-pid" and i + 1 < len(cmd) and cmd[i + 1] == str(pid)
                          for i, a in enumerate(cmd))
            if proc.pid != pid and (adopted or os.getpgid(proc.pid) == pid):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError, PermissionError):
            continue
    return found


def stop_log_pumps(log: Path, *, timeout: float = 5.0) -> None:
    """Wait for the log pumps writing `log` to drain and exit (their writers are gone), then
    terminate any that have not."""
    pumps = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "fedcredit.deployment.logpump" in cmd and str(log) in cmd:
            pumps.append(proc)
    _, alive = psutil.wait_procs(pumps, timeout=timeout)
    for proc in alive:
        try:
            proc.terminate()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(alive, timeout=timeout)


def stop_tree(pid: int, *, timeout: float = STOP_TIMEOUT, known: Sequence = (), root_done: bool = False) -> None:
    """SIGTERM `pid` and wait (Flower shuts down cleanly on it), then terminate whatever it left
    (its descendants, its process group, helpers that watch it), SIGKILL after a grace period.
    `root_done`: the caller already stopped and reaped `pid` itself (its number may be reused)."""
    family = {p.pid: p for p in known}
    if not root_done:
        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            root = None
        family.update((p.pid, p) for p in _descendants(pid))
        if root is not None:
            try:
                root.terminate()
                root.wait(timeout)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                family.update((p.pid, p) for p in _descendants(pid))
                root.kill()
                try:
                    root.wait(5)
                except psutil.TimeoutExpired:
                    pass
    family.update((p.pid, p) for p in _orphans_of(pid))
    procs = [p for q, p in family.items() if q != pid]
    _, procs = psutil.wait_procs(procs, timeout=2)     # the log pump drains its last lines and exits itself
    for p in procs:
        try:
            p.terminate()           # psutil checks the start time: a reused PID is not signalled
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    _, alive = psutil.wait_procs(procs, timeout=5)
    for p in alive:
        try:
            p.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(alive, timeout=5)


class Service:
    """One Flower process we started: its Popen, log file, PID file; stops its whole tree."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_file: Path, pid_file: Path,
                 cwd: Path):
        from fedcredit.deployment import logpump

        self.name, self.argv, self.log_file, self.pid_file = name, argv, log_file, pid_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        logpump.rotate_if_full(log_file)
        with log_file.open("ab") as log:
            log.write(f"\n=== {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} fedcredit started: "
                      f"{shell_join(argv)}\n".encode())
            self.offset = log.tell()
        # The process writes into a pipe; the pump strips colour codes, rotates the log by size and
        # exits when the last writer (the process and its helpers) is gone. Neither holds our stdout.
        read, write = os.pipe()
        try:
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=write,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            self.pump = subprocess.Popen([sys.executable, "-m", "fedcredit.deployment.logpump", str(log_file)],
                                         cwd=PROJECT_DIR, stdin=read, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(read)
            os.close(write)
        self._seen: dict[int, Any] = {}     # pid → psutil.Process of every helper seen alive
        self._read_at = self.offset

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def remember_children(self) -> None:
        self._seen = {pid: p for pid, p in self._seen.items() if p.is_running()}
        self._seen.update((p.pid, p) for p in _descendants(self.pid))

    def new_output(self) -> str:
        """Log text written since the last call."""
        text, self._read_at = read_since(self.log_file, self._read_at)
        return text

    def log_text(self) -> str:
        try:
            with self.log_file.open("rb") as f:
                f.seek(self.offset)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def write_pid_file(self) -> None:
        write_pid_record(self.pid_file, self.pid, self.argv, self.log_file)

    def returncode(self) -> int | None:
        return self.proc.returncode

    def successor(self) -> Service | None:
        """A process that took this one's place (see the Fleet gateway's certificate reload)."""
        return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, wait up to `timeout` (then SIGKILL), then clean up the helpers; the exit code."""
        if self.alive():
            self.remember_children()
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.remember_children()
                self.proc.kill()
                self.proc.wait(10)
        stop_tree(self.pid, known=list(self._seen.values()), root_done=True)
        stop_log_pumps(self.log_file)
        self.remove_pid_file()
        return self.proc.returncode

    def remove_pid_file(self) -> None:
        record = None
        try:
            record = read_pid_file(self.pid_file)
        except DeploymentError:
            pass
        if record is not None and record.pid == self.pid:
            self.pid_file.unlink(missing_ok=True)


def refuse_if_running(pid_file: Path, what: str, stop_hint: str) -> None:
    record = read_pid_file(pid_file)
    if record is None:
        return
    if record.process() is not None:
        raise DeploymentError(f"{what} already runs (PID {record.pid}, log {record.log}): stop it first with "
                              f"`{stop_hint}`", source=str(pid_file))
    pid_file.unlink(missing_ok=True)    # stale: the process is gone


def stop_from_pid_file(pid_file: Path, what: str, *, timeout: float = STOP_TIMEOUT) -> int | None:
    """Stop the process a PID file names; returns its PID, or None if nothing was running."""
    record = read_pid_file(pid_file)
    if record is None:
        return None
    proc = record.process()
    if proc is None:
        pid_file.unlink(missing_ok=True)
        return None
    stop_tree(record.pid, timeout=timeout)
    if record.log:
        stop_log_pumps(Path(record.log))
    pid_file.unlink(missing_ok=True)
    return record.pid


def log_tail(text: str, lines: int = 1) -> str:
    """The last `lines` non-empty lines of a log, joined by ' | ' (our own `===` start lines left out)."""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("===")]
    return " | ".join(kept[-lines:])


class _Stop(KeyboardInterrupt):
    """SIGTERM, turned into the same clean stop as Ctrl-C."""


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _main_thread() -> bool:
    import threading

    return os.name == "posix" and threading.current_thread() is threading.main_thread()


def install_stop_signals() -> Callable[[], None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt in the main thread; returns the restore function."""
    if not _main_thread():
        return lambda: None

    def handler(signum, frame):
        raise _Stop()

    old = {sig: signal.signal(sig, handler) for sig in _STOP_SIGNALS}
    return lambda: [signal.signal(sig, h) for sig, h in old.items()]


def hold_stop_signals() -> None:
    """Defer SIGINT/SIGTERM: a start hands a running service to its caller with them held, so a
    signal in between cannot leave the service without an owner; `serve` releases them."""
    if _main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)


def release_stop_signals() -> None:
    if _main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def serve(service: Service, *, echo: TextIO | None, out: Print = print, banner: Sequence[str] = (),
          companions: Sequence[Service] = ()) -> int:
    """Print `banner`, then follow the service's log (to `echo`, if given) until SIGINT/SIGTERM
    (stops it cleanly, returns 0) or until it exits by itself (FederationError). `companions`
    (the Fleet gateway in front of the SuperLink) are followed alike and stopped first; when one
    process exits, the others are stopped — unless another took its place (`Service.successor`)."""
    services = [*companions, service]
    gone: Service | None = None
    try:
        release_stop_signals()
        for line in banner:
            out(line)
        while gone is None:
            for i, svc in enumerate(services):
                text = svc.new_output()
                if text and echo is not None:
                    echo.write(text)
                    echo.flush()
                svc.remember_children()
                if not svc.alive():
                    successor = svc.successor()
                    if successor is None:
                        gone = svc
                        break
                    services[i] = successor
            else:
                time.sleep(0.25)
    except KeyboardInterrupt:
        for svc in services:
            out(f"stopping the {svc.name} (PID {svc.pid}) ...")
            code = svc.stop()
            out(f"{svc.name} stopped (exit code {code})")
        return 0
    except BaseException:
        for svc in services:
            svc.stop()
        raise
    if echo is not None:
        echo.write(gone.new_output())
    code = gone.returncode()
    for svc in services:
        svc.stop()
    raise FederationError(f"the {gone.name} exited unexpectedly{f' (code {code})' if code is not None else ''}; "
                          f"see {gone.log_file}")
