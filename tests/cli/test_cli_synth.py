"""`fedcredit synth --out`: never replaces an existing folder unless --force, and never one
holding anything but a synthetic consortium (a privacy ledger beside the data survives)."""

from __future__ import annotations

import tomllib

from tests.commands import one_line_error, run


def files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_synth_refuses_an_existing_out_unless_force(tmp_path, capsys):
    out = tmp_path / "data"
    small = ["--partners", "1", "--rows", "400"]
    assert run(capsys, "synth", "--out", out, *small, "--seed", "1")[0] == 0
    before = files(out)

    code, stdout, err = run(capsys, "synth", "--out", out, *small, "--seed", "2")
    line = one_line_error(err)
    assert code == 2 and stdout == "" and str(out) in line and "not empty" in line and "--force" in line
    assert files(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["data"]

    assert run(capsys, "synth", "--out", out, *small, "--seed", "2", "--force")[0] == 0
    assert tomllib.loads((out / "scenario.toml").read_text())["synthetic"]["seed"] == 2
    assert files(out) != before

    ledger = out / "bank-1.privacy-ledger.jsonl"                 # lifetime spend, beside the data
    ledger.write_text('{"seq": 1}\n')
    replaced = files(out)
    code, _, err = run(capsys, "synth", "--out", out, *small, "--seed", "3", "--force")
    assert code == 2 and ledger.name in one_line_error(err) and files(out) == replaced

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = run(capsys, "synth", "--out", mine, *small)
    assert code == 2 and "not empty" in one_line_error(err) and (mine / "notes.txt").read_text() == "keep me"
