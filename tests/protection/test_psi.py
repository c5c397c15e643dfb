"""ECDH-PSI on X25519: correct alignment (pairs, hub with several parties), state round trip, nothing in clear."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fedcredit.credit.customer_keys import read_keys
from fedcredit.protection.psi import (
    POINT,
    PsiParty,
    hashed_points,
    hub_alignment,
    intersect_positions,
)


def _ids(start: int, stop: int, prefix: str = "CUST-") -> list[str]:
    return [f"{prefix}{i:08d}" for i in range(start, stop)]


def _pair(mine: list[str], theirs: list[str]) -> tuple[PsiParty, PsiParty, np.ndarray, np.ndarray]:
    """Run the two-party protocol; return both parties and the aligned original rows (mine, theirs)."""
    a, b = PsiParty.create(mine), PsiParty.create(theirs)
    mine_double = b.reblind(a.blinded())      # b answers a's points
    theirs_double = a.reblind(b.blinded())    # a re-blinds b's points itself
    pos_a, pos_b = intersect_positions(mine_double, theirs_double)
    return a, b, a.rows(pos_a), b.rows(pos_b)


def test_random_sets_align_exactly():
    rng = random.Random(7)
    universe = _ids(0, 3000)
    mine = rng.sample(universe, 2000)
    theirs = rng.sample(universe, 1500)
    a, b, rows_a, rows_b = _pair(mine, theirs)
    expected = set(mine) & set(theirs)
    assert len(rows_a) == len(rows_b) == len(expected)
    assert [mine[i] for i in rows_a] == [theirs[j] for j in rows_b]
    assert {mine[i] for i in rows_a} == expected
    assert rows_a.dtype == rows_b.dtype == np.int64
    assert a.size == 2000 and b.size == 1500


def test_keys_differing_only_by_case_or_whitespace_match_after_normalisation():
    raw_mine = ["  Ann Lee ", "BOB\tSMITH", "１２３４", "carol", "dave"]
    raw_theirs = ["ann  lee", "bob smith", "1234", "Eve", "CAROL "]
    mine = read_keys(raw_mine, source="a.csv", partner="a", field="id")
    theirs = read_keys(raw_theirs, source="b.csv", partner="b", field="id")
    _, _, rows_a, rows_b = _pair(mine, theirs)
    assert sorted(zip(rows_a.tolist(), rows_b.tolist())) == [(0, 0), (1, 1), (2, 2), (3, 4)]


def test_empty_intersection_and_empty_sets():
    _, _, rows_a, rows_b = _pair(_ids(0, 300), _ids(300, 500))
    assert rows_a.size == rows_b.size == 0
    _, _, rows_a, rows_b = _pair([], _ids(0, 50))
    assert rows_a.size == rows_b.size == 0


def test_one_sided_subset():
    theirs = _ids(0, 1000)
    mine = random.Random(1).sample(theirs, 400)
    _, _, rows_a, rows_b = _pair(mine, theirs)
    assert sorted(rows_a.tolist()) == list(range(400))
    assert [mine[i] for i in rows_a] == [theirs[j] for j in rows_b]
    _, _, rows_b2, rows_a2 = _pair(theirs, mine)   # the other way round
    assert sorted(rows_a2.tolist()) == list(range(400))


def test_three_parties_through_the_hub_share_one_order():
    rng = random.Random(3)
    universe = _ids(0, 5000)
    sets = {"hub": rng.sample(universe, 3000), "bureau": rng.sample(universe, 3500),
            "insurer": rng.sample(universe, 2500)}
    hub = PsiParty.create(sets["hub"])
    passive = {name: PsiParty.create(sets[name]) for name in ("bureau", "insurer")}
    hub_points = hub.blinded()
    mine_double = {name: party.reblind(hub_points) for name, party in passive.items()}
    theirs_double = {name: hub.reblind(party.blinded()) for name, party in passive.items()}
    joint, positions = hub_alignment(mine_double, theirs_double)

    hub_rows = hub.rows(joint)
    hub_keys = [sets["hub"][i] for i in hub_rows]
    assert set(hub_keys) == set(sets["hub"]) & set(sets["bureau"]) & set(sets["insurer"])
    assert len(hub_keys) > 0
    assert set(positions) == {"bureau", "insurer"}
    for name, party in passive.items():
        assert [sets[name][j] for j in party.rows(positions[name])] == hub_keys   # same key, same order
    assert np.all(np.diff(joint) > 0)   # the agreed order is the hub's (secret, random) shuffled order


def test_hub_alignment_refuses_mismatched_parties():
    a, b = PsiParty.create(_ids(0, 10)), PsiParty.create(_ids(5, 15))
    with pytest.raises(ValueError, match="same, non-empty set of parties"):
        hub_alignment({"b": b.reblind(a.blinded())}, {"c": a.reblind(b.blinded())})
    with pytest.raises(ValueError, match="same, non-empty"):
        hub_alignment({}, {})


def test_state_round_trip_mid_protocol():
    """Each party saves its state after sending its points and resumes in a 'new process'."""
    mine, theirs = _ids(0, 800), _ids(500, 1200)[::-1]
    a, b = PsiParty.create(mine), PsiParty.create(theirs)
    a_points, b_points = a.blinded(), b.blinded()
    saved_a, saved_b = a.to_bytes(), b.to_bytes()
    del a, b
    a, b = PsiParty.from_bytes(saved_a), PsiParty.from_bytes(saved_b)
    with pytest.raises(RuntimeError, match="holds no keys"):
        a.blinded()
    pos_a, pos_b = intersect_positions(b.reblind(a_points), a.reblind(b_points))
    assert [mine[i] for i in a.rows(pos_a)] == [theirs[j] for j in b.rows(pos_b)]
    assert len(pos_a) == 300
    assert saved_a == PsiParty.from_bytes(saved_a).to_bytes()


def test_damaged_state_and_bad_input_are_refused():
    a = PsiParty.create(_ids(0, 20))
    raw = a.to_bytes()
    with pytest.raises(ValueError, match="not a saved PSI party state"):
        PsiParty.from_bytes(b"garbage" + raw)
    with pytest.raises(ValueError, match="damaged"):
        PsiParty.from_bytes(raw[:-8])
    with pytest.raises(ValueError, match="whole number"):
        a.reblind(b"\x01" * (POINT + 1))
    with pytest.raises(ValueError, match="not valid blinded points"):
        a.reblind(bytes(POINT))   # u = 0: a low-order point
    with pytest.raises(ValueError, match=r"in \[0, 20\)"):
        a.rows(np.array([20]))
    with pytest.raises(ValueError, match="repeat"):
        PsiParty.create(["x", "y", "x"])


def test_blinded_points_hold_no_key_and_differ_between_runs():
    keys = _ids(0, 200, prefix="SECRET-")
    first, second = PsiParty.create(keys), PsiParty.create(keys)
    blob = first.blinded()
    assert len(blob) == POINT * len(keys)
    for key in keys[:20]:
        assert key.encode() not in blob and key.lower().encode() not in blob
    assert b"secret-" not in blob and b"SECRET" not in blob
    hashes = hashed_points(keys)
    assert not set(hashes[i:i + POINT] for i in range(0, len(hashes), POINT)) \
        & set(blob[i:i + POINT] for i in range(0, len(blob), POINT))   # blinded, not just hashed
    # a fresh secret per run: no point repeats between two runs on the same keys
    other = second.blinded()
    assert not set(blob[i:i + POINT] for i in range(0, len(blob), POINT)) \
        & set(other[i:i + POINT] for i in range(0, len(other), POINT))
    assert first.to_bytes() != second.to_bytes()


def test_shuffled_order_hides_row_order():
    keys = _ids(0, 1000)
    party = PsiParty.create(keys)
    order = party.rows(np.arange(1000))
    assert sorted(order.tolist()) == list(range(1000))
    assert not np.array_equal(order, np.arange(1000))


def _on_curve(point: bytes) -> bool:
    """Whether u lies on curve25519 (else on its twist): v = u³ + 486662u² + u is a square mod p."""
    p = 2 ** 255 - 19
    u = int.from_bytes(point, "little") % p
    return pow((u ** 3 + 486662 * u * u + u) % p, (p - 1) // 2, p) in (0, 1)


def test_keys_hashing_onto_the_curve_and_its_twist_both_align():
    """Half the hashes are twist points: they must be blinded, commute and match like curve points."""
    keys = _ids(0, 400)
    hashes = hashed_points(keys)
    on_curve = [_on_curve(hashes[i:i + POINT]) for i in range(0, len(hashes), POINT)]
    assert 100 < sum(on_curve) < 300
    theirs = keys[::2] + _ids(400, 600)
    _, _, rows_a, rows_b = _pair(keys, theirs)
    assert sorted(rows_a.tolist()) == list(range(0, 400, 2))
    assert [keys[i] for i in rows_a] == [theirs[j] for j in rows_b]
    assert {on_curve[i] for i in rows_a.tolist()} == {True, False}
    # blinding keeps each point on its own curve (the one public bit the module docstring states)
    party = PsiParty.create(keys)
    blob, rows = party.blinded(), party.rows(np.arange(len(keys)))
    assert [_on_curve(blob[i:i + POINT]) for i in range(0, len(blob), POINT)] == [on_curve[r] for r in rows]
