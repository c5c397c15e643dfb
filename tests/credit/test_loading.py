from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from credit.errors import InputError
from credit.loading import load_table, split_train_test
from credit.schema import DatasetSpec
from tests.conftest import SPEC, make_partner_frame

spec = DatasetSpec.from_dict(SPEC)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_every_format_loads_the_same_rows(tmp_path: Path, suffix: str) -> None:
    frame = make_partner_frame(300, 0)
    path = tmp_path / f"p{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    table = load_table(path, spec)
    assert len(table) == 300
    assert table.label.tolist() == frame["bad_flag"].tolist()
    assert list(table.features.columns) == ["age", "income", "late", "housing"]
    np.testing.assert_allclose(table.features["age"], frame["age"])


def test_na_markers_and_missing_codes_become_missing(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,age,income,late,housing,bad_flag\n"
                    "1,30,NA,96,rent,1\n2,,1000,0,,0\n3,50,null,98,own,0\n4,41,N/A,1,NULL,1\n")
    table = load_table(path, spec)
    assert table.features["income"].isna().tolist() == [True, False, True, True]
    assert table.features["late"].isna().tolist() == [True, False, True, False]
    assert table.features["age"].isna().tolist() == [False, True, False, False]
    assert table.features["housing"].isna().tolist() == [False, True, False, True]


def test_split_is_stratified_and_seeded() -> None:
    from credit.loading import prepare_table

    table = prepare_table(make_partner_frame(2000, 4), spec, source="x")
    train, test = split_train_test(table, test_fraction=0.25, seed=7)
    again, _ = split_train_test(table, test_fraction=0.25, seed=7)
    assert len(test) == 500 and len(train) == 1500
    assert abs(train.label.mean() - test.label.mean()) < 0.01
    pd.testing.assert_frame_equal(train.features, again.features)


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "partner.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("mutate, expected", [
    (lambda f: f.drop(columns=["income"]), r"missing column\(s\) \['income'\]"),
    (lambda f: f.assign(extra=1), r"extra column\(s\) \['extra'\].*numeric, categorical or drop"),
    (lambda f: f.assign(bad_flag=np.arange(len(f)) % 3), r"field 'bad_flag': label is not binary"),
    (lambda f: f.assign(bad_flag=0), r"no row has the 'bad' value 1"),
    (lambda f: f.head(10), r"has 10 rows; at least 50"),
    (lambda f: f.assign(age=np.nan), r"\['age'\] have no values at all"),
    (lambda f: f.assign(age=["x"] + [30] * (len(f) - 1)), r"field 'age': non-numeric value 'x'"),
])
def test_bad_tables_are_refused_with_file_and_field(tmp_path: Path, mutate, expected: str) -> None:
    path = _write(tmp_path, mutate(make_partner_frame(400, 5)))
    with pytest.raises(InputError, match=expected) as err:
        load_table(path, spec, source="partner 'bank-a'", min_rows=50)
    assert "partner 'bank-a'" in str(err.value) and str(path) in str(err.value)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="data file not found"):
        load_table(tmp_path / "nope.csv", spec)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        load_table(tmp_path / "empty.csv", spec)
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(InputError, match="unsupported file type"):
        load_table(tmp_path / "x.xlsx", spec)
