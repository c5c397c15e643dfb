"""The empirical privacy check of a simulation run, beside the theoretical epsilon.

Runs where the modeller holds every table (simulation): the loss-threshold attack on the
final federated model (all partners' training rows vs their held-out rows), and a canary
experiment on the smallest partner trained locally with and without that partner's DP-SGD
settings from this run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedcredit.clients.partner import PartnerData
from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.features import FeatureTransform
from fedcredit.credit.loading import PartnerTable
from fedcredit.credit.scenario import Scenario
from fedcredit.privacy.accountant import Release, compose
from fedcredit.privacy.membership import canary_audit, loss_threshold_attack, row_losses
from fedcredit.server.stopping import MONITORED

METHOD = ("Loss-threshold membership inference (lower loss ⇒ guessed member): AUC 0.5 = no better than chance. "
          "Federated model: the rows every partner trained on (its training rows less the validation rows a "
          "stopping rule held out) vs its held-out test rows. Canaries: 40 outlier rows with "
          "the rarer label, half inserted into the smallest partner's training rows; exposure AUC tells inserted "
          "from not by their loss, for a local model trained without DP and with the partner's DP-SGD settings.")


def membership_audit(run_dir: Path, summary: dict[str, Any], data: Mapping[str, PartnerData],
                     scenario: Scenario) -> dict[str, Any]:
    model = ScoringModel.load(run_dir / summary["artefact"])
    fitted = [_trained_rows(d, summary, scenario) for d in data.values()]
    members = np.concatenate([row_losses(model.predict_proba(t.features), t.label) for t in fitted])
    outsiders = np.concatenate([row_losses(model.predict_proba(d.test.features), d.test.label) for d in data.values()])
    attack = loss_threshold_attack(members, outsiders)
    eps = [p["privacy"].get("epsilon") for p in summary["partners"]]
    results = [{"model": "federated (this run)", "epsilon": max(eps) if all(e is not None for e in eps) else None,
                "attack_auc": attack.attack_auc, "advantage": attack.advantage, "canary_auc": None}]

    fed = scenario.federation
    if scenario.trees is not None:   # the canaries train the network models with DP-SGD: not trees (yet)
        return {"method": METHOD, "results": results}
    smallest = min(data.values(), key=lambda d: len(d.train))
    transform = FeatureTransform.fit_rows(smallest.train.features, scenario.dataset)
    x = transform.transform(smallest.train.features)
    y = smallest.train.label.astype(np.float32)
    epochs = max(summary["rounds"], 1) * fed.local_epochs
    common = dict(model=fed.model, hidden=fed.hidden, epochs=epochs, batch_size=fed.batch_size, lr=fed.learning_rate)
    plain = canary_audit(x, y, noise_multiplier=None, **common)
    results.append({"model": f"local {smallest.partner.name}, no DP", "epsilon": None, **_pick(plain)})
    statement = next(p["privacy"] for p in summary["partners"] if p["name"] == smallest.partner.name)
    sigma = _last_noise(run_dir, smallest.partner.name)
    if statement.get("mode") == "sample" and sigma:
        private = canary_audit(x, y, noise_multiplier=sigma, max_grad_norm=statement["max_grad_norm"], **common)
        epsilon = compose([Release(sigma, private["sample_rate"], private["steps"])], statement["delta"]).epsilon
        results.append({"model": f"local {smallest.partner.name}, DP-SGD σ={sigma:.2f}", "epsilon": epsilon,
                        **_pick(private)})
    return {"method": METHOD, "results": results}


def _trained_rows(data: PartnerData, summary: dict[str, Any], scenario: Scenario) -> PartnerTable:
    """The rows the partner fitted on: a monitoring stopping rule held its validation rows out of training."""
    if (summary.get("stopping") or {}).get("monitored") == MONITORED:
        return data.validation_split(scenario.federation.validation_fraction)[0]
    return data.train


def _pick(r: dict[str, float]) -> dict[str, float]:
    return {k: r[k] for k in ("attack_auc", "advantage", "canary_auc")}


def _last_noise(run_dir: Path, partner: str) -> float | None:
    import json

    report = json.loads((run_dir / "privacy_report.json").read_text())
    sigmas = [r["noise_multiplier"] for r in report["rounds"] if r["partner"] == partner and r["mechanism"] == "dp-sgd"]
    return sigmas[-1] if sigmas else None
