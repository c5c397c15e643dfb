from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fedcredit.credit.artefact import ScoringModel
from fedcredit.credit.errors import InputError
from fedcredit.credit.features import FeatureTransform
from fedcredit.credit.loading import prepare_table
from fedcredit.credit.metrics import exact_metrics
from fedcredit.credit.model import (
    CreditClassifier,
    build_model,
    make_loader,
    make_optimizer,
    train_epochs,
)
from fedcredit.credit.schema import DatasetSpec
from tests.conftest import SPEC, make_partner_frame


def _xy(n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ np.array([1.5, -1.0, 0.5, 0, 0]) - 1)))).astype(np.float32)
    return x, y


@pytest.mark.parametrize("model", ["logistic", "mlp"])
def test_classifier_learns_a_real_signal(model: str) -> None:
    x, y = _xy()
    clf = CreditClassifier(model, epochs=5, seed=1).fit(x[:3000], y[:3000])
    proba = clf.predict_proba(x[3000:])
    assert proba.shape == (1000, 2) and np.allclose(proba.sum(axis=1), 1)
    assert exact_metrics(y[3000:], proba[:, 1])["auc"] > 0.8
    assert clf.steps_ == 5 * int(np.ceil(3000 / 256))


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        CreditClassifier("forest")
    with pytest.raises(ValueError, match="epochs"):
        CreditClassifier(epochs=0)
    with pytest.raises(RuntimeError, match="fit"):
        CreditClassifier().predict_proba(np.zeros((1, 5), dtype=np.float32))


def test_proximal_term_keeps_weights_near_the_anchor() -> None:
    x, y = _xy(2000, 3)
    drift = {}
    for mu in (0.0, 10.0):
        model = build_model("logistic", 5, seed=0)
        anchor = {k: v.clone() for k, v in model.state_dict().items()}
        train_epochs(model, make_loader(x, y, batch_size=64, seed=0),
                     make_optimizer(model, "sgd", lr=0.05), epochs=2, proximal_mu=mu, anchor=anchor)
        drift[mu] = float(sum(((model.state_dict()[k] - anchor[k]) ** 2).sum() for k in anchor))
    assert drift[10.0] < 0.5 * drift[0.0]


def test_artefact_round_trip_scores_raw_rows(tmp_path: Path) -> None:
    spec = DatasetSpec.from_dict(SPEC)
    table = prepare_table(make_partner_frame(1500, 2), spec, source="t")
    transform = FeatureTransform.fit_rows(table.features, spec)
    clf = CreditClassifier(epochs=3).fit(transform.transform(table.features), table.label.astype(np.float32))
    saved = ScoringModel(spec, transform, "logistic", (32, 16), clf.module_.state_dict(), {"note": "t"})
    path = saved.save(tmp_path / "model.pt")
    loaded = ScoringModel.load(path)
    np.testing.assert_allclose(loaded.predict_proba(table.features),
                               clf.predict_proba(transform.transform(table.features))[:, 1], rtol=1e-6)
    assert loaded.metadata == {"note": "t"} and loaded.spec == spec
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a fedcredit model"):
        ScoringModel.load(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a fedcredit-model/1 file"):
        ScoringModel.load(tmp_path / "other.pt")


def test_batched_rows_train_exactly_as_row_by_row_fetching_plain_and_under_dp() -> None:
    import torch

    from fedcredit.credit.model import Rows, build_model, make_optimizer, train_epochs
    from fedcredit.privacy.dpsgd import make_private

    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, 5)).astype(np.float32)
    y = (rng.random(700) < 0.2).astype(np.float32)

    def trained(dataset, private: bool) -> list[np.ndarray]:
        model = build_model("logistic", 5, seed=0)
        opt = make_optimizer(model, "adam", lr=0.05)
        if private:
            p = make_private(model, opt, dataset, noise_multiplier=1.0, max_grad_norm=1.0, public_rows=700,
                             batch_size=64, seed=3)
            train_epochs(p.model, p.loader, p.optimizer, epochs=2)
        else:
            loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True,
                                                 generator=torch.Generator().manual_seed(3),
                                                 **({"collate_fn": lambda b: b} if isinstance(dataset, Rows) else {}))
            train_epochs(model, loader, opt, epochs=2)
        return [v.detach().numpy().copy() for v in model.state_dict().values()]

    threads = torch.get_num_threads()
    for private in (False, True):
        torch.manual_seed(11)
        rowwise = trained(torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y)), private)
        torch.manual_seed(11)
        batched = trained(Rows(x, y), private)
        for a, b in zip(rowwise, batched):
            np.testing.assert_array_equal(a, b)
    assert torch.get_num_threads() == threads          # training ran on one thread, then gave them back
    empty = Rows(x, y).__getitems__([])           # a Poisson batch may be empty: (0, d) and (0,)
    assert empty[0].shape == (0, 5) and empty[1].shape == (0,)
