"""Every column is read by its declared type, the same way from every file a person exports."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcredit.credit.errors import InputError
from fedcredit.credit.features import OTHER
from fedcredit.credit.loading import load_table, prepare_table, read_table, read_table_bytes
from fedcredit.credit.schema import DatasetSpec
from fedcredit.credit.statistics import RangeStats
from tests.conftest import SPEC, make_partner_frame

spec = DatasetSpec.from_dict(SPEC)
WHO = "partner 'bank-a'"


def _csv(tmp_path: Path, text: str, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _write(frame: pd.DataFrame, path: Path, **csv_args) -> Path:
    frame.to_parquet(path, index=False) if path.suffix == ".parquet" else frame.to_csv(path, index=False, **csv_args)
    return path


def _refusal(path: Path, dataset: DatasetSpec = spec, **kwargs) -> str:
    with pytest.raises(InputError) as err:
        load_table(path, dataset, source=WHO, **kwargs)
    message = str(err.value)
    assert WHO in message and str(path) in message, message
    return message


def _base(n: int = 200, seed: int = 0) -> pd.DataFrame:
    return make_partner_frame(n, seed)


# ---- header collisions -------------------------------------------------------------

@pytest.mark.parametrize("column", ["income", "bad_flag", "housing"])
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_a_header_that_collides_after_trimming_names_both_positions(tmp_path: Path, column: str,
                                                                     suffix: str) -> None:
    frame = _base()
    frame[f"{column} "] = frame[column]
    path = _write(frame, tmp_path / f"p{suffix}")
    position = list(frame.columns).index(column) + 1
    message = _refusal(path)
    assert f"field '{column}'" in message
    assert f"columns {position} and {len(frame.columns)} are both '{column}' after trimming spaces" in message


def test_an_exact_duplicate_header_is_not_mangled_into_a_new_name(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,age,income,late,housing,bad_flag,housing\n1,30,1000,0,rent,1,own\n")
    message = _refusal(path)
    assert "columns 5 and 7 are both 'housing'" in message and "trimming" not in message


def test_a_blank_header_is_named_by_position(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,age,income,late,housing,bad_flag,\n1,30,1000,0,rent,1,\n")
    assert "column(s) [7] have no name" in _refusal(path)


def test_header_collisions_in_vault_bytes_are_refused_the_same_way() -> None:
    frame = _base()
    frame["late "] = frame["late"]
    data = frame.to_csv(index=False).encode()
    for blob in (data, gzip.compress(data)):
        with pytest.raises(InputError, match=r"source-x: field 'late': columns 4 and 7 are both 'late'"):
            read_table_bytes(blob, source="source-x")


# ---- declared missing codes ------------------------------------------------------------

@pytest.mark.parametrize("codes", [[96, 98], ["96", "98"], [96.0, "98.0"], ["096", 98]])
def test_a_missing_code_written_as_number_or_string_masks_the_same_cells(tmp_path: Path, codes: list) -> None:
    path = _csv(tmp_path, "id,age,income,late,housing,bad_flag\n"
                          "1,30,10,96,rent,1\n2,31,11,96.0,own,0\n3,32,12,098,own,0\n4,33,13,9,own,1\n"
                          "5,34,14, 98 ,own,0\n6,35,15,0,own,0\n")
    table = load_table(path, DatasetSpec.from_dict({**SPEC, "missing": {"late": codes}}))
    assert table.features["late"].isna().tolist() == [True, True, True, False, True, False]
    assert table.features["late"].iloc[3] == 9


def test_a_text_code_in_a_numeric_column_is_applied_before_numbers_are_read(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,age,income,late,housing,bad_flag\n"
                          "1,30,n.k.,1,rent,1\n2,31,1000,0,own,0\n3,32,2000,0,own,1\n")
    dataset = DatasetSpec.from_dict({**SPEC, "missing": {"late": [96], "income": ["n.k.", -1]}})
    assert load_table(path, dataset).features["income"].isna().tolist() == [True, False, False]
    assert "non-numeric value 'n.k.'" in _refusal(path)  # undeclared, it is still refused


def test_categorical_codes_compare_as_text(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,age,income,late,housing,bad_flag\n"
                          "1,30,1,0,1,1\n2,31,1,0,01,0\n3,32,1,0,1.0,0\n4,33,1,0,X,1\n5,34,1,0,x,0\n")
    dataset = DatasetSpec.from_dict({**SPEC, "missing": {"housing": [1, "X"]}})
    housing = load_table(path, dataset).features["housing"]
    assert housing.tolist()[1:3] == ["01", "1.0"] and housing.tolist()[4] == "x"
    assert housing.isna().tolist() == [True, False, False, True, False]


_SPELLINGS = st.builds(lambda pad, plus, frac, pre, post: f"{pre}{plus}{'0' * pad}96{frac}{post}",
                       st.integers(0, 3), st.sampled_from(["", "+"]), st.sampled_from(["", ".0", ".00", "e0"]),
                       st.sampled_from(["", " "]), st.sampled_from(["", "  "]))
_OTHERS = st.sampled_from(["0", "1", "9", "960", "9.6", "97", "-96", "196", "96.5", "0.96"])


@settings(max_examples=60, deadline=None)
@given(cells=st.lists(st.tuples(st.booleans(), _SPELLINGS, _OTHERS), min_size=3, max_size=30),
       code=st.sampled_from([96, 96.0, "96", "096", "96.0", " 96 ", "+96"]))
def test_any_spelling_of_a_numeric_missing_code_masks_the_same_cells(cells, code) -> None:
    cells = [(False, "", "5"), *cells]  # one plain value, so the column is never all missing
    late = [spelled if is_code else other for is_code, spelled, other in cells]
    n = len(late)
    text = "id,age,income,late,housing,bad_flag\n" + "".join(
        f"{i},40,1000,\"{v}\",own,{i % 2}\n" for i, v in enumerate(late))
    dataset = DatasetSpec.from_dict({**SPEC, "missing": {"late": [code]}})
    table = prepare_table(read_table_bytes(text.encode(), source="t"), dataset, source="t")
    assert len(table) == n
    assert table.features["late"].isna().tolist() == [is_code for is_code, _, _ in cells]


# ---- categorical text and declared levels ------------------------------------------------

def _coded(values: list, n: int = 60, seed: int = 1) -> pd.DataFrame:
    frame = _base(n, seed)
    frame["housing"] = [values[i % len(values)] for i in range(n)]
    return frame


def test_categorical_cells_keep_their_exact_text_whatever_else_the_file_holds(tmp_path: Path) -> None:
    digits = _write(_coded(["01", "02", "03"]), tmp_path / "digits.csv")
    mixed = _write(_coded(["01", "02", "0X"]), tmp_path / "mixed.csv")
    assert set(load_table(digits, spec).features["housing"]) == {"01", "02", "03"}
    assert set(load_table(mixed, spec).features["housing"]) == {"01", "02", "0X"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_integer_and_float_codes_read_as_their_text(tmp_path: Path, suffix: str) -> None:
    frame = _coded([1, 2, np.nan])  # NaN makes the column float in memory and in Parquet
    housing = load_table(_write(frame, tmp_path / f"p{suffix}"), spec).features["housing"]
    if suffix == ".parquet":
        assert set(housing.dropna()) == {"1", "2"}
    else:  # pandas writes the float codes as 1.0: a CSV cell is kept as written
        assert set(housing.dropna()) == {"1.0", "2.0"}
    assert housing.isna().sum() == 20


@pytest.mark.parametrize("values, respelled", [
    (["1", "2", "3"], "'1' for '01'"),
    (["01", "2.0", "03"], "'2.0' for '02'"),
    ([" 01", "02", "3"], "'3' for '03'"),
])
def test_a_respelled_declared_code_is_refused_not_sent_to_other(tmp_path: Path, values: list[str],
                                                                respelled: str) -> None:
    dataset = DatasetSpec.from_dict({**SPEC, "levels": {"housing": ["01", "02", "03"]}})
    message = _refusal(_write(_coded(values), tmp_path / "p.csv"), dataset)
    assert "field 'housing'" in message and respelled in message
    assert "['01', '02', '03']" in message and OTHER in message


def test_declared_text_codes_differing_in_case_or_spaces_are_refused(tmp_path: Path) -> None:
    dataset = DatasetSpec.from_dict({**SPEC, "levels": {"housing": ["A", "B"]}})
    path = _csv(tmp_path, "id,age,income,late,housing,bad_flag\n"
                          "1,30,1,0,A,1\n2,31,1,0,\"a \",0\n3,32,1,0,B,0\n4,33,1,0,C,1\n")
    message = _refusal(path, dataset)
    assert "'a' for 'A'" in message and "the file has ['A', 'B', 'C', 'a']" in message


def test_a_parquet_integer_column_against_declared_zero_padded_codes_is_refused(tmp_path: Path) -> None:
    dataset = DatasetSpec.from_dict({**SPEC, "levels": {"housing": ["01", "02"]}})
    message = _refusal(_write(_coded([1, 2]), tmp_path / "p.parquet"), dataset)
    assert "'1' for '01'" in message and "'2' for '02'" in message


def test_undeclared_values_that_are_no_respelling_still_count_as_other(tmp_path: Path) -> None:
    dataset = DatasetSpec.from_dict({**SPEC, "levels": {"housing": [1, 2]}})
    table = load_table(_write(_coded([1, 2, 7, "x"]), tmp_path / "p.csv"), dataset)
    counts = RangeStats.from_frame(table.features, np.zeros(len(table.features)), dataset).levels["housing"]
    assert counts == {"1": 15, "2": 15, OTHER: 30}


# ---- dates in numeric columns ---------------------------------------------------------

@pytest.mark.parametrize("dates", [
    pd.to_datetime(["2015-03-01", "2019-11-30", None] * 20),
    pd.to_datetime(["2015-03-01", "2019-11-30", None] * 20, utc=True),
    [pd.Timestamp("2015-03-01").date(), pd.Timestamp("2016-01-02").date(), None] * 20,
])
def test_a_parquet_date_column_listed_as_numeric_is_refused(tmp_path: Path, dates) -> None:
    frame = _base(60)
    frame["income"] = dates
    message = _refusal(_write(frame, tmp_path / "p.parquet"))
    assert "field 'income': holds dates (40 row(s) such as '2015-03-01')" in message
    assert "days since 1970-01-01" in message


@pytest.mark.parametrize("spelled", ["2015-03-01", "01/03/2015", "1.3.2015", "2015-03-01T10:00:00", "01-Mar-2015"])
def test_csv_dates_in_a_numeric_column_are_refused(tmp_path: Path, spelled: str) -> None:
    frame = _base(60)
    frame["age"] = spelled
    message = _refusal(_write(frame, tmp_path / "p.csv"))
    assert f"field 'age': holds dates (60 row(s) such as '{spelled}')" in message
    assert "derive a number such as days since 1970-01-01" in message


# ---- numbers written as text ----------------------------------------------------------

def test_every_numeric_column_with_text_is_named_in_one_message(tmp_path: Path) -> None:
    frame = _base(60)
    frame["income"] = [f"{v:,.2f}" for v in np.linspace(1000, 9000, 60)]
    frame["age"] = [f"{v}%" for v in range(60)]
    frame["late"] = ["2015-03-01"] * 60
    message = _refusal(_write(frame, tmp_path / "p.csv"))
    assert "3 numeric columns ('age', 'income', 'late')" in message
    assert "'age': non-numeric value '0%' in a numeric column (60 row(s)): write percentages" in message
    assert "'income': non-numeric value '1,000.00' in a numeric column (60 row(s)): export numbers without " \
           "thousands separators" in message
    assert "'late': holds dates" in message


def test_currency_amounts_say_how_to_export_them(tmp_path: Path) -> None:
    frame = _base(60)
    frame["income"] = "$1,200.50"
    assert "'$1,200.50' in a numeric column (60 row(s)): export amounts as plain numbers, without currency " \
           "symbols" in _refusal(_write(frame, tmp_path / "p.csv"))


def test_a_decimal_comma_in_a_comma_file_points_to_the_decimal_key(tmp_path: Path) -> None:
    frame = _base(60)
    frame["income"] = [f"{v:.2f}".replace(".", ",") for v in np.linspace(1, 9, 60)]
    assert 'set decimal = ","' in _refusal(_write(frame, tmp_path / "p.csv"))


# ---- labels ---------------------------------------------------------------------------

@pytest.mark.parametrize("coded, bad, expected_values", [
    (["1", "0"], 1, ("0", "1")),
    (["1.0", "0"], 1, ("0", "1")),
    (["1", "0.0"], "1", ("0", "1")),
    (["2", "1"], 2, ("1", "2")),
    (["Y", "N"], "Y", ("N", "Y")),
    ([" Y", "N "], "Y", ("N", "Y")),
])
def test_the_label_is_compared_canonically(tmp_path: Path, coded: list[str], bad, expected_values) -> None:
    frame = _base(60)
    frame["bad_flag"] = [coded[0] if i % 3 == 0 else coded[1] for i in range(60)]
    table = load_table(_write(frame, tmp_path / "p.csv"), DatasetSpec.from_dict({**SPEC, "bad": bad}))
    assert table.label_values == expected_values
    assert table.label.tolist() == [1 if i % 3 == 0 else 0 for i in range(60)]


def test_label_spellings_of_one_value_are_one_value(tmp_path: Path) -> None:
    frame = _base(60)
    frame["bad_flag"] = ["1", "1.0", "01", "0", "0.0", "0"] * 10
    table = load_table(_write(frame, tmp_path / "p.csv"), spec)
    assert table.label_values == ("0", "1") and table.label.sum() == 30


def test_label_values_survive_the_split() -> None:
    from fedcredit.credit.loading import split_train_test

    frame = _base(400)
    frame["bad_flag"] = frame["bad_flag"] + 1
    table = prepare_table(frame, DatasetSpec.from_dict({**SPEC, "bad": 2}), source="t")
    train, test = split_train_test(table, test_fraction=0.25)
    assert table.label_values == train.label_values == test.label_values == ("1", "2")


@pytest.mark.parametrize("coded, expected", [
    (["1", "0", "2"], r"label is not binary: found values \['0', '1', '2'\]"),
    (["Y", "N"], r"no row has the 'bad' value 1 \(values: \['N', 'Y'\]\)"),
    (["1", "NA"], r"20 row\(s\) have no label"),
])
def test_label_refusals_name_the_values(tmp_path: Path, coded: list[str], expected: str) -> None:
    frame = _base(60)
    frame["bad_flag"] = [coded[i % len(coded)] for i in range(60)] if len(coded) == 3 else \
        [coded[0] if i % 3 else coded[1] for i in range(60)]
    with pytest.raises(InputError, match=expected):
        load_table(_write(frame, tmp_path / "p.csv"), spec, source=WHO)


# ---- separators and decimal marks -------------------------------------------------------

def _reference(tmp_path: Path) -> pd.DataFrame:
    return load_table(_write(_base(300, 3), tmp_path / "ref.csv"), spec).features


@pytest.mark.parametrize("sep, decimal", [(";", ","), (";", "."), ("\t", "."), ("|", "."), ("\t", ",")])
def test_other_separators_and_decimal_commas_read_the_same_rows(tmp_path: Path, sep: str, decimal: str) -> None:
    expected = _reference(tmp_path)
    path = _write(_base(300, 3), tmp_path / "p.csv", sep=sep, decimal=decimal)
    sniffed = {"decimal": decimal} if sep != ";" else {}  # only a ';' file's decimal comma is sniffed
    pd.testing.assert_frame_equal(load_table(path, spec, **sniffed).features, expected)
    pd.testing.assert_frame_equal(load_table(path, spec, sep=sep, decimal=decimal).features, expected)
    data = path.read_bytes()
    frame = read_table_bytes(gzip.compress(data), source="vault", **sniffed)
    pd.testing.assert_frame_equal(prepare_table(frame, spec, source="vault").features, expected)


def test_an_excel_sep_line_sets_the_separator(tmp_path: Path) -> None:
    expected = _reference(tmp_path)
    path = _write(_base(300, 3), tmp_path / "p.csv", sep=";", decimal=",")
    path.write_bytes(b"\xef\xbb\xbfsep=;\r\n" + path.read_bytes())
    pd.testing.assert_frame_equal(load_table(path, spec).features, expected)


def test_european_thousands_with_decimal_comma(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id;age;income;late;housing;bad_flag\n1;30;1.234,5;0;rent;1\n2;31;0,5;0;own;0\n")
    assert load_table(path, spec).features["income"].tolist() == [1234.5, 0.5]


def test_a_dot_in_a_decimal_comma_file_is_ambiguous(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id;age;income;late;housing;bad_flag\n1;30;1.234;0;rent;1\n2;31;500;0;own;0\n")
    assert "non-numeric value '1.234'" in _refusal(path, decimal=",")
    path = _csv(tmp_path, "id;age;income;late;housing;bad_flag\n1;30;1.234;0;rent;1\n2;31;0,5;0;own;0\n")
    message = _refusal(path)
    assert "both with a decimal comma ('0,5') and a decimal point ('1.234')" in message
    assert 'set decimal = ","' in message


def test_a_file_that_splits_evenly_on_two_separators_is_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id;age,income;late,housing;bad_flag\n1;30,5;0,rent;1\n")
    message = _refusal(path)
    assert "cannot tell the column separator" in message and "set sep" in message


def test_a_set_separator_that_the_header_lacks_is_refused(tmp_path: Path) -> None:
    path = _write(_base(), tmp_path / "p.csv")
    message = _refusal(path, sep=";")
    assert "the header has no ';'" in message and "it looks ','-separated" in message


def test_a_ragged_file_names_the_line_and_the_keys(tmp_path: Path) -> None:
    lines = "id,age,income,late,housing,bad_flag\n" + "1,30,1000,0,rent,1\n" * 60 + "2,31,1,000,0,own,0\n"
    message = _refusal(_csv(tmp_path, lines))
    assert "cannot be split into columns with sep ','" in message and "line 62" in message
    assert "set sep" in message


def test_a_non_utf8_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes("id,age,income,late,housing,bad_flag\n1,30,1,0,m\xe9nage,1\n".encode("latin-1"))
    assert "is not UTF-8 text" in _refusal(path)


def test_read_table_keeps_csv_cells_as_text(tmp_path: Path) -> None:
    frame = read_table(_csv(tmp_path, "a;b\n01; 2,5 \nNA;x\n"))
    assert frame.to_dict("list") == {"a": ["01", np.nan], "b": ["2,5", "x"]}
    assert frame.attrs["decimal"] == ","
    with pytest.raises(InputError, match="the table is empty"):
        read_table_bytes(b"", source="vault")
    assert list(read_table_bytes(io.BytesIO(b"a,b\n1,2\n").getvalue(), source="v").columns) == ["a", "b"]
