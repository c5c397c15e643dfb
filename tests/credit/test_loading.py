from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.errors import InputError
from fedcredit.credit.loading import load_table, split_train_test
from fedcredit.credit.schema import DatasetSpec
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
    assert table.label_values == ("0", "1")
    assert table.features["housing"].tolist() == frame["housing"].tolist()


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_vault_bytes_follow_the_same_rules_as_files(tmp_path: Path, suffix: str) -> None:
    from fedcredit.credit.loading import prepare_table, read_table_bytes

    frame = make_partner_frame(300, 1).assign(housing=lambda f: f["housing"].map({"rent": "01", "own": "1",
                                                                                  "mortgage": " 1.0 "}))
    path = tmp_path / f"p{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    from_file = load_table(path, spec)
    from_bytes = prepare_table(read_table_bytes(path.read_bytes(), source="vault"), spec, source="vault")
    pd.testing.assert_frame_equal(from_bytes.features, from_file.features)
    assert set(from_file.features["housing"]) == {"01", "1", "1.0"}
    assert from_bytes.label_values == from_file.label_values == ("0", "1")


def test_na_markers_and_missing_codes_become_missing(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,age,income,late,housing,bad_flag\n"
                    "1,30,NA,96,rent,1\n2,,1000,0,,0\n3,50,null,98,own,0\n4,41,N/A,1,NULL,1\n")
    table = load_table(path, spec)
    assert table.features["income"].isna().tolist() == [True, False, True, True]
    assert table.features["late"].isna().tolist() == [True, False, True, False]
    assert table.features["age"].isna().tolist() == [False, True, False, False]
    assert table.features["housing"].isna().tolist() == [False, True, False, True]


def test_split_is_by_row_content_and_stable() -> None:
    from fedcredit.credit.loading import prepare_table

    frame = make_partner_frame(4000, 4)
    table = prepare_table(frame, spec, source="x")
    train, test = split_train_test(table, test_fraction=0.25)
    assert abs(len(test) - 1000) < 4 * (4000 * 0.25 * 0.75) ** 0.5
    assert abs(train.label.mean() - test.label.mean()) < 0.04
    # another row added, columns reordered: no existing row changes side
    more = prepare_table(pd.concat([frame, make_partner_frame(1, 99)], ignore_index=True)[frame.columns[::-1]],
                         spec, source="x")
    _, test_more = split_train_test(more, test_fraction=0.25)
    assert len(test_more) - len(test) in (0, 1)
    assert set(test.fractions) <= set(test_more.fractions)     # each row keeps its place


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
    with pytest.raises(InputError, match="partner 'bank-a' .*nope.csv.*: data file not found"):
        load_table(tmp_path / "nope.csv", spec, source="partner 'bank-a'")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(InputError, match="empty"):
        load_table(tmp_path / "empty.csv", spec)
    (tmp_path / "header-only.csv").write_text("id,age,income,late,housing,bad_flag\n")
    with pytest.raises(InputError, match="has 0 rows"):
        load_table(tmp_path / "header-only.csv", spec)
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(InputError, match="unsupported file type"):
        load_table(tmp_path / "x.xlsx", spec)
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="cannot be read as Parquet"):
        load_table(tmp_path / "bad.parquet", spec)
    (tmp_path / "bad.csv.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(InputError, match="is not a valid gzip file"):
        load_table(tmp_path / "bad.csv.gz", spec)
