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
