"""The logistic model solved from a Gram matrix: the LDA direction, LR-level AUC, noise robustness."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from fedcredit.credit.gram_logistic import GramLayout, GramLogistic, assemble_gram


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Correlated features, the label drawn from a logistic model."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(6, 6)) / 2 + np.eye(6)
    x = rng.normal(size=(n, 6)) @ mix
    logit = -1.5 + x @ np.array([0.8, -0.5, 0.0, 0.3, 0.6, -0.2])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return x, y


def _gram(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, GramLayout]:
    """Z = [1, X_lender (3), y | X_other (3)]."""
    z = np.column_stack([np.ones(len(y)), x[:, :3], y, x[:, 3:]])
    return z.T @ z, GramLayout(constant=0, label=4, parties={"lender": slice(1, 4), "other": slice(5, 8)})


def test_exact_gram_gives_the_lda_direction_and_lr_auc():
    x, y = _data(6000, 0)
    S, layout = _gram(x, y)
    model = GramLogistic(ridge=0.0).fit(S, layout)
    lda = LinearDiscriminantAnalysis(solver="lsqr").fit(x, y)
    cosine = model.coef_ @ lda.coef_[0] / (np.linalg.norm(model.coef_) * np.linalg.norm(lda.coef_[0]))
    assert cosine >= 0.9999
    assert model.n_ == 6000 and model.n1_ == y.sum()
    # on held-out rows: AUC as logistic regression's, probabilities in the right range
    x_test, y_test = _data(4000, 1)
    parts = model.partial_score("lender", x_test[:, :3]) + model.partial_score("other", x_test[:, 3:])
    proba = model.predict_proba_from_scores(parts)
    lr = LogisticRegression(max_iter=1000).fit(x, y)
    assert abs(roc_auc_score(y_test, proba) - roc_auc_score(y_test, lr.predict_proba(x_test)[:, 1])) <= 0.01
    assert abs(proba.mean() - y_test.mean()) < 0.03
    np.testing.assert_allclose(np.concatenate(list(model.coef_by_party.values())), model.coef_)
    np.testing.assert_allclose(parts, x_test @ model.coef_)


def test_noisy_non_positive_definite_gram_still_solves():
    x, y = _data(3000, 2)
    S, layout = _gram(x, y)
    rng = np.random.default_rng(3)
    noise = np.triu(rng.normal(0, 100, S.shape))
    noisy = S + noise + np.triu(noise, 1).T
    features = np.r_[1:4, 5:8]
    centred = noisy[np.ix_(features, features)] - np.outer(noisy[0, features], noisy[0, features]) / noisy[0, 0]
    eigval, eigvec = np.linalg.eigh(centred)
    # push the weakest direction below zero (the class-pooled scatter is smaller still: indefinite too)
    noisy[np.ix_(features, features)] -= (eigval[0] + 1000.0) * np.outer(eigvec[:, 0], eigvec[:, 0])
    centred = noisy[np.ix_(features, features)] - np.outer(noisy[0, features], noisy[0, features]) / noisy[0, 0]
    assert np.linalg.eigvalsh(centred).min() < 0
    model = GramLogistic().fit(noisy, layout, noise_sd=100.0)
    assert np.all(np.isfinite(model.coef_)) and np.isfinite(model.intercept_)
    x_test, y_test = _data(3000, 4)
    assert roc_auc_score(y_test, x_test @ model.coef_) > 0.6
    # the noise rule shrinks: more noise, smaller coefficients
    assert np.linalg.norm(GramLogistic().fit(noisy, layout, noise_sd=1000.0).coef_) < np.linalg.norm(model.coef_)


def test_noisy_bad_count_is_clamped():
    x, y = _data(500, 5)
    S, layout = _gram(x, y)
    S[0, 4] = S[4, 0] = S[4, 4] = -20.0
    model = GramLogistic().fit(S, layout)
    assert model.n1_ == 1.0 and np.isfinite(model.intercept_)
    S[0, 4] = S[4, 0] = S[4, 4] = 10_000.0
    assert GramLogistic().fit(S, layout).n1_ == 499.0


def test_bad_input_is_refused():
    x, y = _data(200, 6)
    S, layout = _gram(x, y)
    with pytest.raises(ValueError, match="square"):
        GramLogistic().fit(S[:, :-1], layout)
    asymmetric = S.copy()
    asymmetric[1, 2] += 5.0
    with pytest.raises(ValueError, match="symmetric"):
        GramLogistic().fit(asymmetric, layout)
    with pytest.raises(ValueError, match="non-finite"):
        GramLogistic().fit(np.full_like(S, np.nan), layout)
    with pytest.raises(ValueError, match="twice"):
        GramLogistic().fit(S, GramLayout(0, 4, {"a": slice(1, 5), "b": slice(5, 8)}))
    with pytest.raises(ValueError, match="outside"):
        GramLogistic().fit(S, GramLayout(0, 9, {"a": slice(1, 4)}))
    with pytest.raises(ValueError, match="empty"):
        GramLogistic().fit(S, GramLayout(0, 4, {"a": slice(1, 4), "b": slice(9, 12)}))
    with pytest.raises(ValueError, match="not fitted"):
        GramLogistic().predict_proba_from_scores(np.zeros(3))
    with pytest.raises(ValueError, match="ridge"):
        GramLogistic(ridge=-1.0)
    with pytest.raises(ValueError, match="features"):
        GramLogistic().fit(S, layout).partial_score("lender", np.zeros((2, 5)))


def test_assemble_gram_from_released_blocks():
    x, y = _data(400, 7)
    holder = np.column_stack([np.ones(400), x[:, :2], y])
    blocks = {"bureau": x[:, 2:4], "lender": holder, "insurer": x[:, 4:]}
    own = {p: b.T @ b for p, b in blocks.items()}
    cross = {("lender", "bureau"): holder.T @ blocks["bureau"], ("insurer", "lender"): blocks["insurer"].T @ holder,
             ("bureau", "insurer"): blocks["bureau"].T @ blocks["insurer"]}
    S, layout = assemble_gram(own, cross, "lender")
    z = np.column_stack([holder, blocks["bureau"], blocks["insurer"]])     # the label holder first
    np.testing.assert_allclose(S, z.T @ z)
    assert layout == GramLayout(0, 3, {"lender": slice(1, 3), "bureau": slice(4, 6), "insurer": slice(6, 8)})
    model = GramLogistic(ridge=0.0).fit(S, layout)
    reference = GramLogistic(ridge=0.0).fit(*_gram(x, y))          # same rows, another column order
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=1e-6)
    with pytest.raises(ValueError, match="no cross block"):
        assemble_gram(own, {k: v for k, v in cross.items() if "insurer" not in k[0]}, "lender")
    with pytest.raises(ValueError, match="label holder"):
        assemble_gram(own, cross, "nobody")
    with pytest.raises(ValueError, match="expected"):
        assemble_gram(own, {**cross, ("lender", "bureau"): cross[("lender", "bureau")][:, :1]}, "lender")
