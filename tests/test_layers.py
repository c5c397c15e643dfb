"""The layering rules of ../shared/design.md hold: `lint-imports` keeps every contract in .importlinter.

Runs in `make test` with the rest of the suite (a fraction of a second), so a wrong import fails CI
like any other test, and `pytest` on its own checks it too. On failure the message is import-linter's
report: which contract broke and the import chain that broke it (file and line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ROOT / ".importlinter"


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")        # the venv's console script
    if not lint.exists():
        pytest.fail(f"{lint} is missing: import-linter is in the `test` extra, run `make venv`")
    result = subprocess.run([str(lint), "--no-cache", "--no-logo", str(CONTRACTS)], cwd=ROOT,
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "COLUMNS": "200"})
    if result.returncode != 0:
        pytest.fail(f"import contracts broken ({CONTRACTS.name}):\n{result.stdout}{result.stderr}", pytrace=False)
    assert "0 broken" in result.stdout, result.stdout                 # it really checked contracts


def test_one_import_root_when_installed(tmp_path: Path):
    """Installed, only `fedcredit` is importable: no generic top-level `server`, `privacy`, ... that
    another package could collide with (run from an empty folder: the repository is not on sys.path)."""
    probe = ("import importlib.util, fedcredit.server.app, fedcredit.cli.main;"
             "print([n for n in ('server', 'clients', 'privacy', 'credit', 'simulations', 'protection', 'cli',"
             " 'deployment') if importlib.util.find_spec(n) is not None])")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
