"""Every JSON writer refuses NaN/Infinity (a stray one is a loud bug, never a file a strict reader rejects)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from fedcredit.credit import strict_json
from fedcredit.credit.atomic import atomic_write_json
from fedcredit.credit.errors import InputError
from fedcredit.credit.rundir import RunDirectory
from fedcredit.credit.scenario import read_toml
from fedcredit.credit.strict_json import NonFiniteError


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float64("nan")])
def test_atomic_write_json_refuses_non_finite_and_names_the_field(tmp_path: Path, bad) -> None:
    path = tmp_path / "summary.json"
    with pytest.raises(NonFiniteError, match=r"partners\[1\]\.local\.auc is not a finite number"):
        atomic_write_json(path, {"partners": [{"local": {"auc": 0.7}}, {"local": {"auc": bad}}]})
    assert os.listdir(tmp_path) == []            # nothing written, no temp file left


def test_atomic_write_json_refusal_keeps_the_previous_file(tmp_path: Path) -> None:
    path = atomic_write_json(tmp_path / "s.json", {"auc": None, "undefined": "why"})
    before = path.read_bytes()
    with pytest.raises(NonFiniteError):
        atomic_write_json(path, {"auc": float("nan")})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["s.json"]
    assert strict_json.loads(before) == {"auc": None, "undefined": "why"}


def test_numpy_arrays_with_nan_are_refused_too(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteError, match=r"hist\[2\]"):
        atomic_write_json(tmp_path / "a.json", {"hist": np.array([1.0, 2.0, np.nan])})


def test_append_round_refuses_non_finite_and_appends_nothing(tmp_path: Path) -> None:
    run = RunDirectory(tmp_path / "run").create()
    run.append_round({"round": 0, "train_loss": None, "pooled": {"auc": 0.7, "n": np.int64(5)}})
    with pytest.raises(NonFiniteError, match="train_loss"):
        run.append_round({"round": 1, "train_loss": float("nan")})
    lines = run.file("rounds.jsonl").read_text().splitlines()
    assert len(lines) == 1 and strict_json.loads(lines[0])["pooled"] == {"auc": 0.7, "n": 5}


def test_strict_loads_rejects_bare_constants() -> None:
    for text in ('{"a": NaN}', '[Infinity]', '[-Infinity]'):
        with pytest.raises(ValueError, match="non-standard JSON constant"):
            strict_json.loads(text)
        assert json.loads(text) is not None           # what the standard library would have accepted
    assert strict_json.loads_old('{"a": NaN, "b": [Infinity, 1]}') == {"a": None, "b": [None, 1]}


def test_config_files_refuse_nan_and_inf(tmp_path: Path) -> None:
    path = tmp_path / "scenario.toml"
    path.write_text("[federation]\nrounds = 3\nlearning_rate = inf\n")
    with pytest.raises(InputError, match=r"field 'federation\.learning_rate': must be a finite number"):
        read_toml(path, "scenario file")
    path.write_text('[dataset]\nmissing = { late = [96, nan] }\n')
    with pytest.raises(InputError, match=r"dataset\.missing\.late\[1\]"):
        read_toml(path, "scenario file")

