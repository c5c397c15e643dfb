"""Flower's executables as we run them: `flower-superlink`, `flower-supernode` and `flwr` of the
venv that runs this code (beside `sys.executable`), in an environment with a private FLWR_HOME,
no telemetry, no update check and no runtime dependency installation; values quoted so that
Flower's `k=v` config parser keeps them whole. The coordinator's processes are in `superlink`,
a partner's in `supernode`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fedcredit.credit.errors import InputError
from fedcredit.deployment.processes import DeploymentError

BIN_DIR = Path(sys.executable).parent
DEFAULT_WAIT = 30.0      # seconds a start waits for a Flower process to be ready


def executable(name: str) -> str:
    path = BIN_DIR / name
    if not path.is_file() or not os.access(path, os.X_OK):
        raise DeploymentError(f"{name} not found beside {sys.executable}: install fedcredit with its Flower "
                              "dependency in this environment")
    return str(path)


def flower_env(flwr_home: Path, **extra: str) -> dict[str, str]:
    """The environment of every Flower process: this venv's bin first on PATH (Flower starts
    `flower-superexec` by name), a private FLWR_HOME, no telemetry, no update check (it calls out
    to the internet), no runtime dependency installation."""
    env = dict(os.environ)
    env.update({"PATH": f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}", "FLWR_HOME": str(flwr_home),
                "FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
                "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1", **extra})
    # Each message starts a fresh ClientApp process; poll for it every 0.1 s instead of 1 s (a SecAgg+ round
    # has four message stages, each waiting on its slowest partner's poll; idle: ≈ 0.01 CPU a partner).
    env.setdefault("FLWR_SUPEREXEC_TASK_POLL_INTERVAL", "0.1")
    return env


def toml_string(value: str, *, what: str) -> str:
    """A TOML string literal that Flower's `k=v` parser (values quoted with ' or ") keeps whole."""
    if '"' not in value and "\\" not in value and "\n" not in value:
        return f'"{value}"'
    if "'" not in value and "\n" not in value:
        return f"'{value}'"
    raise InputError(f"contains both quote characters or a newline, which Flower's config parser cannot "
                     f"carry: {value!r}", source=what)
