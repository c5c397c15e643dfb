"""DP of the joint Gram matrix: row bounds, clipping, sensitivity, noise sd (also through the ring)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.features import FeatureTransform
from fedcredit.credit.schema import DatasetSpec
from fedcredit.privacy import gram
from fedcredit.protection import secure_product as sp


def test_row_and_block_bounds():
    assert gram.row_bound(16, per_column=1.5) == pytest.approx(6.0)
    assert gram.block_bound(16, per_column=1.5) == pytest.approx(6.0)
    assert gram.block_bound(16, per_column=1.5, label_holder=True) == pytest.approx(math.sqrt(38.0))
    with pytest.raises(ValueError):
        gram.row_bound(0)


def test_norm_columns_counts_a_categorical_once():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"income": rng.lognormal(10, 1, 300), "age": rng.uniform(20, 70, 300),
                          "region": rng.choice(["n", "s", "e", "w"], 300)})
    frame.loc[:20, "income"] = np.nan
    spec = DatasetSpec(label="y", numeric=("income", "age"), categorical=("region",))
    transform = FeatureTransform.fit_rows(frame, spec)
    assert transform.n_features > 4                       # one-hot levels + a missing indicator
    assert gram.norm_columns(transform) == 2 + 1 + 1      # numeric, indicator, one categorical
    # the squared norm of a transformed row is about that count on average
    x = transform.transform(frame).astype(np.float64)
    assert np.mean(np.sum(x * x, axis=1)) < 2 * gram.norm_columns(transform)


def test_clip_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, (500, 6))
    clipped = gram.clip_rows(x, 3.0)
    norms, before = np.linalg.norm(clipped, axis=1), np.linalg.norm(x, axis=1)
    assert np.all(norms <= 3.0 + 1e-12)
    short = before <= 3.0
    assert short.any() and (~short).any()
    np.testing.assert_array_equal(clipped[short], x[short])
    np.testing.assert_allclose(norms[~short], 3.0)
    cos = np.sum(clipped * x, axis=1) / (norms * before)
    np.testing.assert_allclose(cos, 1.0)                  # directions kept
    with pytest.raises(ValueError):
        gram.clip_rows(x, 0.0)


def _release(blocks: list[np.ndarray], p: int) -> np.ndarray:
    """Party p's release as one vector: the upper triangle of its own block and each cross block."""
    own = blocks[p].T @ blocks[p]
    parts = [own[np.triu_indices(len(own))]]
    parts += [(blocks[p].T @ blocks[q]).ravel() for q in range(len(blocks)) if q != p]
    return np.concatenate(parts)


def test_sensitivity_bounds_every_adjacent_dataset():
    rng = np.random.default_rng(2)
    bounds = [2.0, 1.0, 3.0]
    blocks = [gram.clip_rows(rng.normal(0, 2, (40, k)), c) for k, c in zip((3, 4, 2), bounds)]
    for p in range(3):
        sensitivity = gram.gram_sensitivity(bounds[p], bounds)
        full = _release(blocks, p)
        worst = max(np.linalg.norm(full - _release([b[np.arange(40) != i] for b in blocks], p)) for i in range(40))
        assert worst <= sensitivity + 1e-9
        # a row on every bound's sphere comes close to it (the bound is not loose by much)
        extra = [gram.clip_rows(rng.normal(0, 50, (1, b.shape[1])), c) for b, c in zip(blocks, bounds)]
        added = _release([np.vstack([b, e]) for b, e in zip(blocks, extra)], p)
        assert 0.8 * sensitivity <= np.linalg.norm(added - full) <= sensitivity + 1e-9
        # replacing p's values of one row (others' fixed): within twice the bound
        changed = [b.copy() for b in blocks]
        changed[p][0] = -changed[p][0] * bounds[p] / np.linalg.norm(changed[p][0])
        assert np.linalg.norm(_release(changed, p) - full) <= gram.gram_sensitivity(bounds[p], bounds,
                                                                                   replace_one=True) + 1e-9
    assert gram.gram_sensitivity(2.0, bounds) == pytest.approx(2.0 * math.sqrt(14.0))
    with pytest.raises(ValueError, match="not among"):
        gram.gram_sensitivity(5.0, bounds)


def _sd_tolerance(sd: float, draws: int) -> float:
    """Five standard errors of a sample sd (≈ sd / sqrt(2·draws) for a Gaussian)."""
    return 5 * sd / math.sqrt(2 * draws)


def test_symmetric_noise_sd_and_mirroring():
    rng = np.random.default_rng(3)
    draws = np.stack([gram.symmetric_noise(30, 7.0, rng) for _ in range(40)])
    np.testing.assert_array_equal(draws, np.transpose(draws, (0, 2, 1)))
    upper = draws[:, *np.triu_indices(30)]
    assert abs(upper.std() - 7.0) < _sd_tolerance(7.0, upper.size)
    assert abs(upper.mean()) < 5 * 7.0 / math.sqrt(upper.size)
    diagonal = draws[:, np.arange(30), np.arange(30)]
    assert abs(diagonal.std() - 7.0) < _sd_tolerance(7.0, diagonal.size)
    assert gram.symmetric_noise(3, 1.0).shape == (3, 3)     # the default CSPRNG-seeded generator


def test_cross_block_noise_sd_through_the_ring():
    """The released cross block (shares + each party's noise, reconstructed) has the stated sd."""
    rng = np.random.default_rng(4)
    left, right = rng.normal(size=(50, 6)), rng.normal(size=(50, 5))
    exact = left.T @ right
    sd_left, sd_right = 30.0, 40.0
    errors = []
    seed_left, seed_right = sp.new_seed(), sp.new_seed()
    c1, c2 = sp.dealer_shares(seed_left, seed_right, 50, 6, 5)
    E, F = sp.masked(sp.encode(left), seed_left), sp.masked(sp.encode(right), seed_right)
    share_left, share_right = sp.left_share(seed_left, F, c1), sp.right_share(E, F, seed_right, c2)
    for _ in range(200):
        released = sp.reconstruct(sp.add_noise(share_left, gram.block_noise(6, 5, sd_left, rng)),
                                  sp.add_noise(share_right, gram.block_noise(6, 5, sd_right, rng)))
        errors.append(released - exact)
    errors = np.stack(errors)
    assert abs(errors.std() - 50.0) < _sd_tolerance(50.0, errors.size)     # sqrt(30² + 40²)
    assert abs(errors.mean()) < 5 * 50.0 / math.sqrt(errors.size)
