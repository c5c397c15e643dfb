"""Writing a synthetic consortium (`fedcredit.credit.synthetic`) to disk: one data file per partner
and its scenario.toml, built in a temporary sibling folder and renamed into place."""

from __future__ import annotations

import os
import shutil
import tomllib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import tomli_w

from fedcredit.credit.progress import Progress, report
from fedcredit.credit.synthetic import DATASET, FORMATS, GENERATOR_VERSION, ConsortiumSpec, generate_partner


def _write_frame(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "csv.gz":
        frame.to_csv(path, index=False, compression={"method": "gzip", "compresslevel": 5, "mtime": 0})
    else:
        frame.to_csv(path, index=False)


def _scenario(spec: ConsortiumSpec, fmt: str, rounds: int, model: str) -> dict[str, Any]:
    dataset = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DATASET.items()}
    return {
        "dataset": dataset,
        "partners": [{"name": p.name, "kind": p.kind, "data": p.name + FORMATS[fmt]}
                     for p in spec.partners],
        "federation": {"rounds": rounds, "model": model},
        "synthetic": {
            "generator": "credit.synthetic",
            "version": GENERATOR_VERSION,
            "seed": int(spec.seed),
            "format": fmt,
            "rows": {p.name: p.rows for p in spec.partners},
        },
    }


def _scenario_toml(scenario: dict[str, Any]) -> str:
    """TOML text laid out as documented: [dataset], one [[partners]] table each, ..."""
    chunks = ["# Synthetic credit consortium written by credit.synthetic; data paths are\n"
              "# relative to this file.\n\n", tomli_w.dumps({"dataset": scenario["dataset"]})]
    chunks += ["\n[[partners]]\n" + tomli_w.dumps(p) for p in scenario["partners"]]
    chunks += ["\n" + tomli_w.dumps({k: scenario[k]}) for k in ("federation", "synthetic")]
    text = "".join(chunks)
    if tomllib.loads(text) != scenario:   # guard the hand-assembled layout
        raise AssertionError("scenario.toml does not round-trip")
    return text


def _refusal(out_dir: Path, replace: bool) -> str | None:
    """Why `out_dir` may not be written, or None. One listing, so a concurrent writer swapping
    its copy in or out between two checks cannot fool it."""
    try:
        names = [entry.name for entry in out_dir.iterdir()]
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return "exists and is not a folder; choose another --out"
    if not names:
        return None
    if not replace:
        return ("exists and is not empty; choose another --out, or pass --force to replace the synthetic "
                "consortium in it")
    strangers = sorted(n for n in names if n != "scenario.toml" and not n.endswith(tuple(FORMATS.values())))
    if "scenario.toml" not in names or strangers:
        shown = ", ".join(strangers[:5]) + (", …" if len(strangers) > 5 else "")
        return ("holds files a synthetic consortium does not write" + (f" ({shown})" if strangers else
                " (no scenario.toml)") + "; refusing to replace it even with --force: choose another --out")
    return None


def write_consortium(spec: ConsortiumSpec, out_dir: Path, *, fmt: str = "csv", rounds: int = 20,
                     model: str = "logistic", replace: bool = False, on_progress: Progress | None = None) -> Path:
    """Write one data file per partner plus `scenario.toml` into `out_dir`, atomically.

    Everything is built in a temporary sibling directory and renamed into place when
    complete. `out_dir` must be new or empty; with `replace` an existing complete
    consortium (scenario.toml and data files only) is replaced, never a folder holding
    anything else (a privacy ledger or audit trail beside the data, the user's files).
    FileExistsError says why. Returns the scenario path. `on_progress(done, total, what)` counts
    rows written, partner by partner.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {list(FORMATS)}, got {fmt!r}")
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        raise ValueError(f"rounds must be a whole number ≥ 1, got {rounds!r}")
    if not isinstance(model, str) or not model:
        raise ValueError(f"model must be a non-empty string, got {model!r}")

    def fill(tmp: Path) -> None:
        written, total = 0, spec.total_rows
        for profile in spec.partners:   # stream: one partner in memory at a time
            name = profile.name + FORMATS[fmt]
            report(on_progress, written, total, f"generating and writing {name} ({profile.rows:,} rows)")
            _write_frame(generate_partner(profile, spec.seed), tmp / name, fmt)
            written += profile.rows
        report(on_progress, written, total, "all partners written")
        (tmp / "scenario.toml").write_text(_scenario_toml(_scenario(spec, fmt, rounds, model)),
                                           encoding="utf-8")

    return write_folder(out_dir, fill, replace=replace)


def write_folder(out_dir: Path, fill: Callable[[Path], None], *, replace: bool = False) -> Path:
    """`fill(tmp)` writes data files and `scenario.toml` into a temporary sibling folder, which is then
    renamed to `out_dir` (the rules of `write_consortium`). Returns the scenario path."""
    out_dir = Path(out_dir).expanduser().absolute()
    refusal = _refusal(out_dir, replace)
    if refusal:
        raise FileExistsError(f"{out_dir} {refusal}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{token}"
    tmp.mkdir()
    olds: list[Path] = []
    done = False
    try:
        fill(tmp)
        # Swap in. A concurrent writer may put its own complete copy in place between
        # our steps; then the last writer wins (a few attempts) instead of failing.
        for attempt in range(3):
            try:
                if out_dir.exists():
                    if replace and (out_dir / "scenario.toml").is_file():
                        old = out_dir.parent / f".{out_dir.name}.old-{token}-{attempt}"
                        os.replace(out_dir, old)
                        olds.append(old)
                    else:
                        out_dir.rmdir()   # empty (checked above); fails if no longer empty
                os.replace(tmp, out_dir)   # onto a missing or empty folder only
                done = True
                break
            except OSError:
                if not replace and (refusal := _refusal(out_dir, False)):   # someone else wrote it meanwhile
                    raise FileExistsError(f"{out_dir} {refusal}") from None
                if attempt == 2:
                    if olds and not out_dir.exists():
                        os.replace(olds.pop(), out_dir)   # put the previous consortium back
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)   # gone already after a successful rename
        if done:
            for old in olds:
                shutil.rmtree(old, ignore_errors=True)
    return out_dir / "scenario.toml"
