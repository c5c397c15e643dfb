"""Reason codes: the documented attributions, the largest positive contribution first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.loading import prepare_table
from fedcredit.scoring.attribution import Attribution
from tests.conftest import make_partner_frame


def _design(model: ScoringModel, n: int = 300) -> np.ndarray:
    return model.transform.transform(prepare_table(make_partner_frame(n, 9), model.spec, source="t").features)


def test_logistic_contributions_add_up_to_the_logit_above_the_mean_applicant(model_path: Path) -> None:
    model = ScoringModel.load(model_path)
    module = model.module()
    attribution = Attribution(model, module)
    x = _design(model)
    contrib = attribution.contributions(x)
    assert contrib.shape == (300, 4) and attribution.columns == ["age", "income", "late", "housing"]
    with torch.no_grad():
        logit = module(torch.as_tensor(x, dtype=torch.float64)).numpy()
        base = module(torch.as_tensor(attribution.baseline[None, :])).numpy()
    np.testing.assert_allclose(contrib.sum(axis=1), logit - base, atol=1e-6)   # float32 products
    # the mean applicant's one-hot shares come from the released level counts: they sum to 1
    levels = len(model.transform.categorical["housing"])
    assert abs(attribution.baseline[-levels:].sum() - 1) < 1e-9
    reasons = attribution.reasons(x)
    for row, names in zip(contrib, reasons):
        positive = [attribution.columns[j] for j in np.argsort(-row, kind="stable") if row[j] > 0]
        assert [n for n in names if n] == positive[:4]


def test_mlp_attribution_is_gradient_times_the_difference_from_the_reference(mlp_path: Path) -> None:
    model = ScoringModel.load(mlp_path)
    module = model.module()
    attribution = Attribution(model, module)
    x = _design(model, 20)
    contrib = attribution.contributions(x)
    eps = 1e-6
    xt = torch.as_tensor(x, dtype=torch.float64)
    for i in range(3):                                    # against central finite differences
        grad = np.zeros(x.shape[1])
        for j in range(x.shape[1]):
            up, down = xt[i].clone(), xt[i].clone()
            up[j] += eps
            down[j] -= eps
            with torch.no_grad():
                grad[j] = float(module(up[None]) - module(down[None])) / (2 * eps)
        expected = (grad * (x[i] - attribution.baseline)) @ attribution.groups
        np.testing.assert_allclose(contrib[i], expected, atol=1e-6)
    assert attribution.reasons(x).shape == (20, 4)
