"""The per-distinct-value shortcuts give exactly what the cell rules give cell by cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.columns import as_text, categorical_column, numbers_in, numeric_cells, per_distinct
from fedcredit.credit.features import MISSING, OTHER, level_codes


def _cells(seed: int) -> list[pd.Series]:
    rng = np.random.default_rng(seed)
    text = rng.choice([" 1", "01", "2.5", "96", "96.0", "NA", "", "abc", "1,5", "rent ", "-3", "1e3", "?"], 400)
    with_nan = pd.Series(text, dtype=object).where(rng.random(400) > 0.1)
    ints = pd.Series(rng.integers(-2, 9, 400))
    floats = pd.Series(rng.choice([0.0, 1.0, 2.5, 96.0, np.nan], 400))
    arrow = pd.Series(text).astype("string[pyarrow]")
    mixed = pd.Series(rng.choice(np.array([1, "1", 2.0, None, "x"], dtype=object), 400), dtype=object)
    return [with_nan, ints, floats, arrow, mixed]


@pytest.mark.parametrize("seed", [0, 1])
def test_per_distinct_equals_the_cell_rules(seed: int) -> None:
    for raw in _cells(seed):
        for decimal in (".", ","):
            direct = (numbers_in(as_text(raw), decimal),)
            shortcut = per_distinct(raw, lambda cells: (numbers_in(as_text(cells), decimal),))
            pd.testing.assert_series_equal(shortcut[0], direct[0], check_dtype=False)
        codes = (96, "rent")
        text = categorical_column(raw, codes)
        expected = as_text(raw)
        expected = expected.mask(expected.isin({"96", "rent"}))
        pd.testing.assert_series_equal(text, expected.astype(object))
        values, unparsed = numeric_cells(raw, codes)
        assert values.dtype == np.float64 and len(values) == len(unparsed) == len(raw)
        assert not (values.notna() & unparsed.notna()).any()


def test_level_codes_match_the_categorical_rule() -> None:
    rng = np.random.default_rng(3)
    levels = ("rent", "own", OTHER, MISSING)
    for n in (10, 500):             # the small path and the factorised one
        values = rng.choice(np.array(["rent", "own", "castle", None, np.nan, "RENT"], dtype=object), n)
        codes = level_codes(values, levels, 2, 3)
        expected = [3 if v is None or v != v else {"rent": 0, "own": 1}.get(v, 2) for v in values]
        assert codes.tolist() == expected
    assert level_codes(np.array([None, pd.NA], dtype=object), levels, 2, 3).tolist() == [3, 3]
