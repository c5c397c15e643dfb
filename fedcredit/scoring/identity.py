"""What a model artefact is and where it comes from: its content id, the scenario and run that
trained it, the partners (public noised row counts, dataset fingerprints when known, privacy
statements) and which reference distributions it holds. `load` is the one way scoring opens a model:
it refuses a file whose content does not match its id (`ScoringModel.load`) and a vertical model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedcredit.credit.artefact import FORMAT, ScoringModel
from fedcredit.credit.errors import InputError

VERTICAL_NOT_YET = ("is a vertical model (partial scores from several parties): scoring vertical models is not "
                    "supported yet — score with the horizontal model, or wait for the vertical scorer")


def load(path: str | Path) -> ScoringModel:
    """The artefact at `path`, verified; a vertical one is refused with a clear "not yet"."""
    model = ScoringModel.load(path)
    if model.metadata.get("kind") == "vertical" or model.metadata.get("vertical"):
        raise InputError(VERTICAL_NOT_YET, source=str(path))
    return model


def describe(model: ScoringModel, path: str | Path | None = None) -> dict[str, Any]:
    """The model's identity as JSON-able data (`fedcredit model inspect`, `GET /model`)."""
    meta = model.metadata
    ref = meta.get("reference") or {}
    return {
        "id": model.id,
        "sealed": model.sealed,
        "sealed_note": None if model.sealed else (
            "saved before content ids: the id is computed from what the file holds and cannot be checked "
            "against a stored one; save it again (ScoringModel.load(path).save(path)) to seal it"),
        "format": FORMAT,
        "file": str(path) if path is not None else None,
        "scenario": meta.get("scenario"),
        "run": meta.get("run"),
        "model": model.model_name,
        "hidden": list(model.hidden) if model.model_name == "mlp" else None,
        "strategy": meta.get("strategy"),
        "rounds": meta.get("rounds"),
        "secure_aggregation": meta.get("secure_aggregation"),
        "label": model.spec.label,
        "columns": {"numeric": list(model.transform.numeric), "categorical": list(model.transform.categorical)},
        "features": model.transform.n_features,
        "features_dropped": dict(model.transform.dropped),
        "partners": meta.get("partners", []),
        "privacy": meta.get("privacy", "not recorded (an artefact saved before privacy statements were kept)"),
        "reference": {"score": ref.get("score") is not None, "features": sorted(ref.get("features", {})),
                      "noised": ref.get("noised"), "source": ref.get("source")},
    }
