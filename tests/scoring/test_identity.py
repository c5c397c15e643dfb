"""Model identity: a content id that load verifies; a changed or cut file is refused; an artefact
saved before ids still loads (unsealed); a vertical model is a clear "not yet"."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.errors import InputError
from fedcredit.scoring import identity
from tests.commands import one_line_error, run


def test_the_id_is_the_content_hash_and_is_stable(model_path: Path, tmp_path: Path) -> None:
    model = ScoringModel.load(model_path)
    assert model.sealed and model.id.startswith("sha256:") and len(model.id) == 71
    assert torch.load(model_path, weights_only=True)["id"] == model.id
    model.save(tmp_path / "again.pt")                   # the same content saved again: the same id
    assert ScoringModel.load(tmp_path / "again.pt").id == model.id
    model.metadata["run"] = "another-run"               # any content change: another id
    assert model.id != ScoringModel.load(model_path).id


def test_a_changed_or_damaged_model_is_refused(model_path: Path, tmp_path: Path, capsys) -> None:
    payload = torch.load(model_path, weights_only=True)
    payload["state_dict"]["linear.weight"][0, 0] += 0.5            # weights edited, id kept
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(InputError, match="does not match its id"):
        ScoringModel.load(tmp_path / "edited.pt")
    payload = torch.load(model_path, weights_only=True)
    payload["metadata"]["privacy"] = "ε = 0 (a lie)"                # metadata edited, id kept
    torch.save(payload, tmp_path / "relabelled.pt")
    with pytest.raises(InputError, match="does not match its id"):
        ScoringModel.load(tmp_path / "relabelled.pt")
    data = model_path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a fedcredit model file"):
        ScoringModel.load(tmp_path / "cut.pt")
    code, out, err = run(capsys, "score", tmp_path / "edited.pt", tmp_path / "in.csv", "--out", tmp_path / "o.csv")
    assert code == 2 and "does not match its id" in one_line_error(err) and not (tmp_path / "o.csv").exists()
    code, out, err = run(capsys, "serve", tmp_path / "cut.pt", "--port", "0")
    assert code == 2 and "not a fedcredit model file" in one_line_error(err)


def test_an_artefact_saved_before_ids_loads_unsealed(model_path: Path, tmp_path: Path, capsys) -> None:
    payload = torch.load(model_path, weights_only=True)
    del payload["id"]
    torch.save(payload, tmp_path / "old.pt")
    old = ScoringModel.load(tmp_path / "old.pt")
    assert not old.sealed and old.id == ScoringModel.load(model_path).id
    code, out, _ = run(capsys, "model", "inspect", tmp_path / "old.pt")
    assert code == 0 and "NOT SEALED" in out and "save it again" in out
    old.save(tmp_path / "resaved.pt")
    assert ScoringModel.load(tmp_path / "resaved.pt").sealed


def test_a_vertical_model_is_not_yet_scored(model_path: Path, tmp_path: Path) -> None:
    model = ScoringModel.load(model_path)
    model.metadata["kind"] = "vertical"
    model.save(tmp_path / "vertical.pt")
    with pytest.raises(InputError, match="vertical model .* not supported yet"):
        identity.load(tmp_path / "vertical.pt")


def test_model_inspect_prints_the_identity(model_path: Path, tmp_path: Path, capsys) -> None:
    shutil.copy(model_path, tmp_path / "model.pt")
    code, out, _ = run(capsys, "model", "inspect", tmp_path / "model.pt")
    model = ScoringModel.load(model_path)
    assert code == 0 and f"model {model.id}" in out and "verified against the id stored in the file" in out
    assert "scenario scoring-test  run test-run" in out and "partner bank-a (bank)" in out and "ab" * 32 in out
    assert "drift reference: score distribution yes, 4 column(s)" in out
    code, out, _ = run(capsys, "model", "inspect", tmp_path / "model.pt", "--json")
    import json
    info = json.loads(out)
    assert info["id"] == model.id and info["columns"]["categorical"] == ["housing"] and info["sealed"] is True
