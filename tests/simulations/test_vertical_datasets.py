"""The Taiwan and German vertical splits (issue 11): the lender and the other party hold the same
customers under string keys in their own orders, `overlap` of all customers in both files, the label
only at the lender, every cell as in the source row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.party_table import load_party_table
from fedcredit.credit.reading import read_table
from fedcredit.credit.scenario import load_scenario
from fedcredit.simulations.datasets import (
    GERMAN,
    TAIWAN,
    TAIWAN_BUREAU,
    TAIWAN_LENDER,
    taiwan_key,
    vertical_memberships,
    write_german_vertical,
    write_taiwan_vertical,
)


def _need(path: Path) -> None:
    if not path.exists():
        pytest.fail(f"shared dataset missing: {path} (../shared/data must sit beside the project)")


def test_memberships_split_the_rest_between_one_side_and_the_other() -> None:
    first, second = vertical_memberships(1000, overlap=0.85, seed=3)
    assert (first & second).sum() == 850 and (first | second).all()
    assert (first & ~second).sum() == 75 and (second & ~first).sum() == 75
    again = vertical_memberships(1000, overlap=0.85, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(again, (first, second), strict=True))
    everyone = vertical_memberships(10, overlap=1.0, seed=0)
    assert everyone[0].all() and everyone[1].all()
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="overlap"):
            vertical_memberships(10, overlap=bad, seed=0)


def test_taiwan_lender_and_bureau(tmp_path: Path) -> None:
    _need(TAIWAN)
    path = write_taiwan_vertical(tmp_path / "tw", overlap=0.85, seed=1, privacy={"epsilon": 3.0})
    scenario = load_scenario(path)
    assert scenario.vertical and scenario.label_holder.name == "lender"
    lender_p, bureau_p = scenario.partners
    assert lender_p.privacy.enabled and lender_p.spec.categorical == ("SEX", "EDUCATION", "MARRIAGE")
    assert set(bureau_p.spec.features) == set(TAIWAN_BUREAU) and bureau_p.spec.categorical[0] == "PAY_0"
    assert set(lender_p.spec.features) == set(TAIWAN_LENDER)

    lender = pd.read_csv(lender_p.data, dtype=str)
    bureau = pd.read_csv(bureau_p.data, dtype=str)
    assert list(bureau.columns) == ["customer_id", *bureau_p.spec.features]            # no label at the bureau
    assert list(lender.columns) == ["customer_id", *lender_p.spec.features, "default"]
    ids_l, ids_b = set(lender["customer_id"]), set(bureau["customer_id"])
    assert len(ids_l | ids_b) == 30_000 and len(ids_l & ids_b) == 25_500                  # 85 % of all in both
    assert len(ids_l - ids_b) == 2_250 and len(ids_b - ids_l) == 2_250

    source = read_table(TAIWAN)
    source.index = [taiwan_key(i) for i in source["ID"]]
    lender = lender.set_index("customer_id")
    bureau = bureau.set_index("customer_id")
    pd.testing.assert_frame_equal(lender[list(TAIWAN_LENDER)], source.loc[lender.index, list(TAIWAN_LENDER)],
                                  check_dtype=False, check_names=False)
    assert (lender["default"] == source.loc[lender.index, "next_payment"]).all()
    pd.testing.assert_frame_equal(bureau[list(TAIWAN_BUREAU)], source.loc[bureau.index, list(TAIWAN_BUREAU)],
                                  check_dtype=False, check_names=False)
    shared = [k for k in lender.index if k in ids_b]
    assert shared != [k for k in bureau.index if k in ids_l]                           # shuffled on their own
    assert shared != sorted(shared)

    tables = [load_party_table(p, min_rows=scenario.federation.min_rows, label_column="default")
              for p in scenario.partners]
    assert tables[0].label.mean() == pytest.approx(0.22, abs=0.01) and tables[1].label is None


def test_german_lender_and_insurer(tmp_path: Path) -> None:
    _need(GERMAN)
    scenario = load_scenario(write_german_vertical(tmp_path / "de", overlap=0.85))
    lender_p, insurer_p = scenario.partners
    assert scenario.label_holder is lender_p and lender_p.spec.bad == 2 and insurer_p.kind == "insurer"
    tables = [load_party_table(p, min_rows=scenario.federation.min_rows, label_column="class")
              for p in scenario.partners]
    a, b = (set(t.keys) for t in tables)
    assert len(a | b) == 1000 and len(a & b) == 850
    assert len(lender_p.spec.features) == len(insurer_p.spec.features) == 10
