"""The trees' yardsticks: scikit-learn's models of the same kind and settings, and a partner alone
growing trees from its own noised histograms at its per-run cap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier

from fedcredit.clients.partner import open_partner_data
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import load_scenario
from fedcredit.credit.trees import TreeSettings
from fedcredit.simulations.tree_yardsticks import fit_reference, fit_trees_on_rows, local_private_trees
from tests.conftest import make_partner_frame, write_scenario


def test_reference_models_and_a_private_partner_alone(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, {"bank-a": make_partner_frame(3000, 1)}, federation={"model": "gbdt"},
                          privacy={"mode": "sample", "epsilon": 8.0, "run_epsilon": 4.0, "delta": 1e-5})
    scenario = load_scenario(path)
    data = open_partner_data(scenario.partners[0], TaskConfig(scenario.dataset, scenario.federation), purpose="check")
    settings = TreeSettings(trees=20, max_depth=1, colsample=0.5, max_bins=8)
    transform, exact = fit_trees_on_rows(data.train.features, data.train.label, scenario.dataset, settings)
    x = transform.transform(data.train.features)
    hgb = fit_reference(x, data.train.label, settings.resolved("gbdt"), "gbdt")
    forest = fit_reference(x, data.train.label, settings.resolved("random_forest"), "random_forest")
    assert isinstance(hgb, HistGradientBoostingClassifier) and hgb.max_iter == 20 and hgb.max_depth == 1
    assert isinstance(forest, RandomForestClassifier) and forest.max_samples == 0.632 and forest.max_features == 0.5
    metrics, p = local_private_trees(data, scenario.dataset, settings.resolved("gbdt"), scenario.partners[0].privacy)
    assert len(p) == len(data.test) and np.all((p > 0) & (p < 1)) and metrics["auc"] > 0.55
    exact_auc = fit_trees_on_rows(data.train.features, data.train.label, scenario.dataset, settings)[1]
    assert exact_auc.to_dict() == exact.to_dict()                          # the exact grower is deterministic
