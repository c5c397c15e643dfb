"""The two-party secure product: exact in the ring, masked inputs uniform, dealer triple correct."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fedcredit.protection import secure_product as sp


def _protocol(left: np.ndarray, right: np.ndarray, noise_left=None, noise_right=None) -> np.ndarray:
    n, a = left.shape
    b = right.shape[1]
    seed_left, seed_right = sp.new_seed(), sp.new_seed()
    c1, c2 = sp.dealer_shares(seed_left, seed_right, n, a, b)
    E, F = sp.masked(sp.encode(left), seed_left), sp.masked(sp.encode(right), seed_right)
    share_left, share_right = sp.left_share(seed_left, F, c1), sp.right_share(E, F, seed_right, c2)
    if noise_left is not None:
        share_left, share_right = sp.add_noise(share_left, noise_left), sp.add_noise(share_right, noise_right)
    return sp.reconstruct(share_left, share_right)


def _tolerance(left: np.ndarray, right: np.ndarray) -> float:
    """Fixed-point rounding: ≤ 2^-(f+1) per value, so ≤ n·2^-(f+1)·(max|x| + max|y|) + rounding² per entry."""
    half_ulp = 2.0 ** -(sp.FRACTION_BITS + 1)
    return len(left) * half_ulp * (np.abs(left).max() + np.abs(right).max() + half_ulp)


@pytest.mark.parametrize("n,a,b", [(1, 1, 1), (7, 3, 5), (300, 4, 2), (2000, 10, 1)])
def test_secure_product_equals_plain_product(n, a, b):
    rng = np.random.default_rng(n + a + b)
    left, right = rng.normal(0, 3, (n, a)), rng.normal(0, 3, (n, b))   # negatives included
    product = _protocol(left, right)
    assert product.shape == (a, b)
    assert np.max(np.abs(product - left.T @ right)) <= _tolerance(left, right)


def test_three_parties_pairwise():
    rng = np.random.default_rng(3)
    blocks = [rng.uniform(-4, 4, (500, k)) for k in (3, 5, 2)]
    for i, j in itertools.combinations(range(3), 2):
        product = _protocol(blocks[i], blocks[j])
        np.testing.assert_allclose(product, blocks[i].T @ blocks[j], rtol=0, atol=_tolerance(blocks[i], blocks[j]))
        # and with the roles swapped: Z_j^T Z_i is the transpose
        np.testing.assert_allclose(_protocol(blocks[j], blocks[i]), product.T, rtol=0,
                                   atol=2 * _tolerance(blocks[i], blocks[j]))


def test_encode_decode_two_complement():
    x = np.array([[-1.5, 0.0, 2.25, -1024.0]])
    v = sp.encode(x)
    assert v.dtype == np.uint64
    assert v[0, 0] == np.uint64(2**64 - 3 * 2 ** (sp.FRACTION_BITS - 1))   # −1.5 wraps around
    # a product-scale value decodes back, sign included
    prod = (v.view(np.int64) * np.int64(2 ** sp.FRACTION_BITS)).view(np.uint64)
    np.testing.assert_array_equal(sp.decode_product(prod), x)


def test_masked_zero_matrix_is_minus_mask_and_masks_look_uniform():
    seed = sp.new_seed()
    A = sp.mask(seed, 400, 8)
    E = sp.masked(sp.encode(np.zeros((400, 8))), seed)
    np.testing.assert_array_equal(E, np.uint64(0) - A)
    # no plaintext value survives masking (each coincidence has probability 2^-64)
    z = sp.encode(np.random.default_rng(0).normal(size=(400, 8)))
    assert not np.any(sp.masked(z, seed) == z)
    # every bit of the masked matrix of a constant input is a fair coin: 3,200 words × 64 bits
    bits = np.unpackbits(sp.masked(sp.encode(np.ones((400, 8))), seed).view(np.uint8))
    ones = bits.mean()
    assert abs(ones - 0.5) < 5 * 0.5 / np.sqrt(bits.size)
    per_position = np.unpackbits(E.reshape(-1, 1).view(np.uint8), axis=1).mean(axis=0)
    assert np.all(np.abs(per_position - 0.5) < 5 * 0.5 / np.sqrt(E.size))


def test_mask_is_a_deterministic_prg_separated_by_shape():
    seed = sp.new_seed()
    np.testing.assert_array_equal(sp.mask(seed, 5, 3), sp.mask(seed, 5, 3))
    assert not np.array_equal(sp.mask(seed, 5, 3).ravel(), sp.mask(seed, 3, 5).ravel())
    assert not np.array_equal(sp.mask(seed, 5, 3), sp.mask(sp.new_seed(), 5, 3))
    assert len(sp.new_seed()) == 32 and sp.new_seed() != sp.new_seed()
    with pytest.raises(ValueError, match="32 bytes"):
        sp.mask(b"short", 2, 2)


def test_dealer_shares_sum_to_the_mask_product_and_c1_is_fresh():
    seed_left, seed_right = sp.new_seed(), sp.new_seed()
    c1, c2 = sp.dealer_shares(seed_left, seed_right, 50, 4, 3)
    A, B = sp.mask(seed_left, 50, 4), sp.mask(seed_right, 50, 3)
    np.testing.assert_array_equal(c1 + c2, A.T @ B)
    again, _ = sp.dealer_shares(seed_left, seed_right, 50, 4, 3)
    assert not np.any(again == c1)
    with pytest.raises(ValueError, match="distinct seeds"):
        sp.dealer_shares(seed_left, seed_left, 50, 4, 3)


def test_noise_added_to_shares_appears_in_the_product():
    rng = np.random.default_rng(5)
    left, right = rng.normal(size=(100, 3)), rng.normal(size=(100, 2))
    noise_left, noise_right = rng.normal(0, 50, (3, 2)), rng.normal(0, 50, (3, 2))
    product = _protocol(left, right, noise_left, noise_right)
    np.testing.assert_allclose(product, left.T @ right + noise_left + noise_right, rtol=0, atol=1e-3)


def test_bounds_are_checked():
    with pytest.raises(ValueError, match="fixed-point bound"):
        sp.encode(np.array([[2000.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        sp.encode(np.array([[np.nan]]))
    big = sp.encode(np.full((1100, 1), 1000.0))      # squared norm 1.1e9 > 2^30
    with pytest.raises(ValueError, match="overflow the ring"):
        sp.masked(big, sp.new_seed())
    share = np.zeros((2, 2), dtype=np.uint64)
    with pytest.raises(ValueError, match="at most"):
        sp.add_noise(share, np.full((2, 2), 2.0 ** 31))
    with pytest.raises(ValueError, match="uint64"):
        sp.masked(np.zeros((2, 2)), sp.new_seed())
    with pytest.raises(ValueError, match="shapes do not agree"):
        sp.right_share(share, np.zeros((3, 2), dtype=np.uint64), sp.new_seed(), share)
