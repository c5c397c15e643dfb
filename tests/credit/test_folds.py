"""Cross-validation folds from each row's content: the same on re-run, disjoint, covering, balanced."""

from __future__ import annotations

import numpy as np
import pytest

from fedcredit.clients.partner import PartnerData, hold_out_fold, open_partner_data
from fedcredit.credit.folds import (
    MIN_FOLD_ROWS,
    assign_folds,
    fold_interval,
    fold_problem,
    most_folds,
    training_position,
)
from fedcredit.credit.loading import row_fractions
from fedcredit.credit.protocol import TaskConfig
from fedcredit.credit.scenario import load_scenario
from tests.conftest import make_partner_frame, write_scenario

TF = 0.25


def _ids(frame, folds: int = 5) -> dict[int, int]:
    """Fold id per row, keyed by the row's own id column (its content; the file's row order is irrelevant)."""
    return dict(zip(frame["id"], assign_folds(row_fractions(frame), TF, folds)))


def test_the_same_rows_get_the_same_folds_on_rerun_and_in_any_order() -> None:
    frame = make_partner_frame(3000, 7)
    first = _ids(frame)
    assert _ids(frame) == first
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert _ids(shuffled) == first
    # a row's fold never depends on the other rows: dropping half of them moves none of the rest
    half = frame.iloc[::2].reset_index(drop=True)
    assert all(first[i] == k for i, k in _ids(half).items())


def test_folds_are_disjoint_cover_the_training_rows_and_leave_the_test_rows_out() -> None:
    frame = make_partner_frame(4000, 8)
    fractions = row_fractions(frame)
    ids = assign_folds(fractions, TF, 5)
    assert set(ids[fractions < TF]) == {-1}                    # test rows: in no fold
    assert set(ids[fractions >= TF]) == set(range(5))          # every training row in exactly one of 0..4
    for k in range(5):                                         # each fold is exactly its interval of fractions
        lo, hi = fold_interval(TF, 5, k)
        assert np.array_equal(ids == k, (fractions >= lo) & (fractions < hi))
    bounds = [fold_interval(TF, 5, k) for k in range(5)]       # the intervals tile [TF, 1)
    assert bounds[0][0] == TF and bounds[-1][1] == 1.0
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


@pytest.mark.parametrize("folds", [2, 3, 5, 10])
def test_folds_are_balanced_within_sampling_noise(folds: int) -> None:
    frame = make_partner_frame(20_000, 9)
    ids = assign_folds(row_fractions(frame), TF, folds)
    train = int((ids >= 0).sum())
    sizes = np.bincount(ids[ids >= 0], minlength=folds)
    p = 1 / folds
    sd = np.sqrt(train * p * (1 - p))                          # each row lands in a fold with probability 1/K
    assert np.all(np.abs(sizes - train * p) < 4 * sd), sizes
    bad = np.bincount(ids[ids >= 0], weights=frame["bad_flag"].to_numpy()[ids >= 0], minlength=folds)
    rate = bad / sizes
    assert np.ptp(rate) < 0.05, rate                           # the bad rate alike in every fold


def test_too_many_folds_say_which_fold_falls_short_and_how_many_fit() -> None:
    frame = make_partner_frame(400, 10)
    fractions, label = row_fractions(frame), frame["bad_flag"].to_numpy()
    train = fractions >= TF
    assert fold_problem(fractions[train], label[train], TF, 3) == ""
    problem = fold_problem(fractions[train], label[train], TF, 100)
    assert problem.startswith("fold ") and "row(s)" in problem
    most = most_folds(fractions[train], label[train], TF, 100)
    assert 3 <= most < 100 and fold_problem(fractions[train], label[train], TF, most) == ""
    assert most <= train.sum() // MIN_FOLD_ROWS


def test_training_position_stretches_the_rows_around_the_held_out_fold() -> None:
    held = fold_interval(TF, 3, 1)
    f = np.array([TF, held[0] - 1e-9, held[1], 1 - 1e-9])
    pos = training_position(f, TF, held)
    assert pos[0] == 0 and np.all(np.diff(pos) > 0) and pos[-1] < 1
    assert pos[1] == pytest.approx(0.5, abs=1e-6) and pos[2] == pytest.approx(0.5, abs=1e-6)


def _partner(tmp_path, **federation) -> PartnerData:
    scenario = load_scenario(write_scenario(tmp_path, {"bank": make_partner_frame(900, 12)}, federation=federation))
    return open_partner_data(scenario.partner("bank"), TaskConfig(scenario.dataset, scenario.federation),
                             purpose="check")


def test_a_partner_holds_its_fold_out_and_charges_the_rest(tmp_path) -> None:
    whole = _partner(tmp_path / "whole")
    assert whole.fold is None and whole.train_parts == ((TF, 1.0),) and whole.test_rows == (0.0, TF)
    folds = []
    for k in range(3):
        data = _partner(tmp_path / f"fold{k}", cv_folds=3, cv_fold=k)
        lo, hi = fold_interval(TF, 3, k)
        assert data.test_rows == (lo, hi)                       # evaluated: the held-out fold
        assert np.all((data.test.fractions >= lo) & (data.test.fractions < hi))
        assert not np.any((data.train.fractions >= lo) & (data.train.fractions < hi))
        assert len(data.train) + len(data.test) == len(whole.train)
        assert data.train_parts == tuple(p for p in ((TF, lo), (hi, 1.0)) if p[0] < p[1])
        folds.append(set(data.test.fractions))
    assert len(_partner(tmp_path / "mid", cv_folds=3, cv_fold=1).train_parts) == 2   # a fold in the middle
    assert sum(len(f) for f in folds) == len(set().union(*folds)) == len(whole.train)  # disjoint and covering
    # the stopping rule's validation rows: a share of the rows that train, never the held-out fold's
    data = _partner(tmp_path / "fold0", cv_folds=3, cv_fold=0)
    fit, held = data.validation_split(0.15)
    assert len(held) > 0 and len(fit) + len(held) == len(data.train)
    assert hold_out_fold(whole, load_scenario(tmp_path / "whole" / "scenario.toml").federation) is whole
