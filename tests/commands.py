"""Helpers for tests that drive the `fedcredit` command line in-process."""

from __future__ import annotations

from fedcredit.cli.main import main


def run(capsys, *argv) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `fedcredit ARGV`."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    """The single `fedcredit: error:` line a bad input must produce."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fedcredit: error: "), err
    return lines[0]
