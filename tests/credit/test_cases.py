"""The shared cases c02, c03, c05, c07, c11, c12 (read in place from ../shared/cases), each with
one more input of the same kind that the case does not contain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

from fedcredit.credit.errors import InputError
from fedcredit.credit.features import OTHER
from fedcredit.credit.loading import PartnerTable, load_table
from fedcredit.credit.scenario import load_scenario
from fedcredit.credit.statistics import RangeStats

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CASES = PROJECT_ROOT.parent / "shared" / "cases"


@pytest.fixture(scope="module")
def cases() -> Path:
    if not CASES.is_dir():
        pytest.fail(f"shared cases not found at {CASES}: they are read in place from ../shared/cases beside "
                    "the project root (never copied into the repository)")
    return CASES


def load_partners(scenario: Path) -> dict[str, PartnerTable | InputError]:
    """Each partner's checked table, or the InputError it was refused with."""
    parsed = load_scenario(scenario)
    out: dict[str, PartnerTable | InputError] = {}
    for p in parsed.partners:
        try:
            out[p.name] = load_table(p.data, parsed.dataset, source=f"partner '{p.name}'", sep=p.sep,
                                     decimal=p.decimal)
        except InputError as exc:
            out[p.name] = exc
    return out


def refusal(result: PartnerTable | InputError, partner: str, path: Path) -> str:
    assert isinstance(result, InputError), f"{partner} was not refused"
    message = str(result)
    assert f"partner '{partner}'" in message and str(path) in message, message
    return message


def variant(cases: Path, case: str, tmp_path: Path, partners: dict[str, Path], **dataset) -> Path:
    """The case's scenario with some partners' data replaced (and [dataset] keys changed)."""
    raw = load_scenario(cases / case / "scenario.toml")
    entries = [{"name": p.name, "kind": p.kind, "data": str(partners.get(p.name, p.data))} for p in raw.partners]
    scenario = {"dataset": {**raw.dataset.to_dict(), **dataset}, "partners": entries}
    path = tmp_path / "scenario.toml"
    path.write_text(tomli_w.dumps(scenario))
    return path


# ---- c02: headers that collide after trimming ---------------------------------------------

def test_c02_a_whitespace_duplicate_header_is_one_error(cases: Path) -> None:
    loaded = load_partners(cases / "c02-ws-duplicate-header" / "scenario.toml")
    message = refusal(loaded["insurer-2"], "insurer-2", cases / "c02-ws-duplicate-header" / "insurer-2.csv")
    assert "field 'income': columns 2 and 10 are both 'income' after trimming spaces" in message
    assert isinstance(loaded["bank-1"], PartnerTable) and isinstance(loaded["platform-3"], PartnerTable)


@pytest.mark.parametrize("column, suffix", [("employment", ".csv"), ("default", ".csv.gz"), ("housing", ".parquet")])
def test_c02_more_duplicated_headers(cases: Path, tmp_path: Path, column: str, suffix: str) -> None:
    frame = pd.read_csv(cases / "_base" / "insurer-2.csv")
    frame[f" {column}"] = frame[column]
    path = tmp_path / f"insurer-2{suffix}"
    frame.to_parquet(path) if suffix == ".parquet" else frame.to_csv(path, index=False)
    loaded = load_partners(variant(cases, "c02-ws-duplicate-header", tmp_path, {"insurer-2": path}))
    message = refusal(loaded["insurer-2"], "insurer-2", path)
    position = list(frame.columns).index(column) + 1
    assert f"field '{column}': columns {position} and 10 are both '{column}' after trimming spaces" in message


# ---- c03: missing codes written as TOML strings ---------------------------------------------

def test_c03_quoted_missing_codes_mean_the_same_as_numbers(cases: Path) -> None:
    quoted = load_partners(cases / "c03-quoted-special-codes" / "scenario.toml")
    control = load_partners(cases / "c03-quoted-special-codes" / "scenario-control.toml")
    for name, table in quoted.items():
        assert isinstance(table, PartnerTable), table
        pd.testing.assert_frame_equal(table.features, control[name].features)
        late = table.features["late_90"]
        assert late.max() < 96 and late.isna().mean() > 0.03, name


def test_c03_codes_spelled_differently_in_the_file(cases: Path, tmp_path: Path) -> None:
    source = cases / "c03-quoted-special-codes" / "bank-1.csv"
    lines = source.read_text().splitlines()
    respelled = [lines[0]] + [_respell_late_90(line) for line in lines[1:]]
    path = tmp_path / "bank-1.csv"
    path.write_text("\n".join(respelled) + "\n")
    assert path.read_text() != source.read_text()
    loaded = load_partners(variant(cases, "c03-quoted-special-codes", tmp_path, {"bank-1": path},
                                   missing={"late_90": ["96.0", 98]}))
    control = load_partners(cases / "c03-quoted-special-codes" / "scenario-control.toml")
    pd.testing.assert_frame_equal(loaded["bank-1"].features, control["bank-1"].features)


def _respell_late_90(line: str) -> str:
    cells = line.split(",")
    cells[5] = {"96": "096", "98": "98.0"}.get(cells[5], cells[5])
    return ",".join(cells)


# ---- c05: zero-padded codes ------------------------------------------------------------------

def test_c05_zero_padded_codes_are_spelled_the_same_by_every_partner(cases: Path) -> None:
    loaded = load_partners(cases / "c05-leading-zero-codes" / "scenario.toml")
    levels = {name: set(t.features["occupation"].dropna()) for name, t in loaded.items()}
    assert levels["bank-1"] == {"01", "02", "03", "04", "05"}
    assert levels["insurer-2"] == {"01", "02", "03", "04", "05", "0X"}
    assert levels["platform-3"] <= {"01", "02", "03", "04", "05"}


def test_c05_a_declared_code_list_keeps_every_partner_out_of_other(cases: Path) -> None:
    case = cases / "c05-leading-zero-codes"
    spec = load_scenario(case / "scenario-declared-levels.toml").dataset
    loaded = load_partners(case / "scenario-declared-levels.toml")
    other = {name: RangeStats.from_frame(t.features, np.zeros(len(t.features)), spec).levels["occupation"][OTHER] for name, t in loaded.items()}
    zero_x = int((loaded["insurer-2"].features["occupation"] == "0X").sum())
    assert other == {"bank-1": 0, "insurer-2": zero_x, "platform-3": 0} and zero_x > 0


def test_c05_a_parquet_integer_column_against_the_declared_codes_is_refused(cases: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(cases / "c05-leading-zero-codes" / "bank-1.csv", dtype={"occupation": str})
    frame["occupation"] = frame["occupation"].astype(int)   # what a typed export stores: 1, not 01
    path = tmp_path / "bank-1.parquet"
    frame.to_parquet(path)
    loaded = load_partners(variant(cases, "c05-leading-zero-codes", tmp_path, {"bank-1": path},
                                   levels={"occupation": ["01", "02", "03", "04", "05"]}))
    message = refusal(loaded["bank-1"], "bank-1", path)
    assert "field 'occupation'" in message and "'1' for '01'" in message and "'5' for '05'" in message
    assert "['01', '02', '03', '04', '05']" in message
    assert isinstance(loaded["insurer-2"], PartnerTable)


# ---- c07: dates listed as numeric ------------------------------------------------------------

def test_c07_a_datetime_column_listed_as_numeric_is_refused(cases: Path) -> None:
    case = cases / "c07-datetime-as-numeric"
    loaded = load_partners(case / "scenario.toml")
    for name, result in loaded.items():
        message = refusal(result, name, case / f"{name}.parquet")
        assert "field 'first_credit': holds dates" in message
        assert "derive a number such as days since 1970-01-01" in message
    control = load_partners(case / "control-days" / "scenario.toml")
    for table in control.values():
        assert isinstance(table, PartnerTable) and table.features["first_credit"].abs().max() < 1e5


@pytest.mark.parametrize("date_format", ["%d/%m/%Y", "%Y-%m-%d"])
def test_c07_the_same_dates_in_a_csv_are_refused(cases: Path, tmp_path: Path, date_format: str) -> None:
    frame = pd.read_parquet(cases / "c07-datetime-as-numeric" / "platform-3.parquet")
    frame["first_credit"] = frame["first_credit"].dt.strftime(date_format)
    path = tmp_path / "platform-3.csv"
    frame.to_csv(path, index=False)
    loaded = load_partners(variant(cases, "c07-datetime-as-numeric", tmp_path, {"platform-3": path}))
    message = refusal(loaded["platform-3"], "platform-3", path)
    example = frame["first_credit"].iloc[0]
    assert f"field 'first_credit': holds dates (400 row(s) such as '{example}')" in message
    assert "days since 1970-01-01" in message


# ---- c11: percent strings and thousands separators ----------------------------------------------

def test_c11_every_text_numeric_column_is_named_in_one_message(cases: Path) -> None:
    case = cases / "c11-percent-thousands"
    loaded = load_partners(case / "scenario.toml")
    message = refusal(loaded["bank-1"], "bank-1", case / "bank-1.csv")
    assert "'income': non-numeric value '6,829.67' in a numeric column (874 row(s)): export numbers " \
           "without thousands separators" in message
    assert "'utilization': non-numeric value '11.44%' in a numeric column (880 row(s)): write percentages " \
           "as plain numbers" in message
    assert isinstance(loaded["insurer-2"], PartnerTable)


def test_c11_the_same_export_tab_separated(cases: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(cases / "c11-percent-thousands" / "bank-1.csv", dtype=str, keep_default_na=False)
    path = tmp_path / "bank-1.csv"
    frame.to_csv(path, sep="\t", index=False)
    loaded = load_partners(variant(cases, "c11-percent-thousands", tmp_path, {"bank-1": path}))
    message = refusal(loaded["bank-1"], "bank-1", path)
    assert "2 numeric columns ('income', 'utilization')" in message
    assert "'6,829.67'" in message and "'11.44%'" in message


def test_c11_a_semicolon_decimal_comma_export_reads_the_same_numbers(cases: Path, tmp_path: Path) -> None:
    base = cases / "_base" / "bank-1.csv"
    path = tmp_path / "bank-1.csv"
    pd.read_csv(base).to_csv(path, sep=";", decimal=",", index=False)
    assert ";" in path.read_text().splitlines()[0] and "0,1449" in path.read_text()
    loaded = load_partners(variant(cases, "c11-percent-thousands", tmp_path, {"bank-1": path}))
    reference = load_partners(variant(cases, "c11-percent-thousands", tmp_path, {"bank-1": base}))
    pd.testing.assert_frame_equal(loaded["bank-1"].features, reference["bank-1"].features)


# ---- c12: one partner codes the label 1/2 ------------------------------------------------------

def test_c12_each_partner_reports_its_label_values(cases: Path) -> None:
    loaded = load_partners(cases / "c12-label-coding-mismatch" / "scenario.toml")
    values = {name: t.label_values for name, t in loaded.items()}
    assert values == {"bank-1": ("0", "1"), "insurer-2": ("1", "2"), "platform-3": ("0", "1")}


@pytest.mark.parametrize("coding, bad, expected", [
    ({0: "N", 1: "Y"}, "Y", ("N", "Y")),
    ({0: "2.0", 1: "1.0"}, 1, ("1", "2")),
])
def test_c12_other_label_codings(cases: Path, tmp_path: Path, coding: dict, bad, expected) -> None:
    frame = pd.read_csv(cases / "_base" / "insurer-2.csv")
    frame["default"] = frame["default"].map(coding)
    path = tmp_path / "insurer-2.csv"
    frame.to_csv(path, index=False)
    loaded = load_partners(variant(cases, "c12-label-coding-mismatch", tmp_path, {"insurer-2": path}, bad=bad))
    table = loaded["insurer-2"]
    assert isinstance(table, PartnerTable) and table.label_values == expected
    np.testing.assert_array_equal(table.label, pd.read_csv(cases / "_base" / "insurer-2.csv")["default"])
