"""One party's table in a vertical federation: keys normalised, features read by the horizontal loader's
rules for the party's own columns, the label only at the label holder; each bad file ONE InputError
naming the file, the partner and the field, never printing a key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

from fedcredit.credit.customer_keys import key_set_fingerprint, normalise_key, read_keys
from fedcredit.credit.errors import InputError
from fedcredit.credit.party_table import key_fractions, load_party_table, prepare_party_table
from fedcredit.credit.reading import read_table
from fedcredit.credit.scenario import Partner, load_scenario

N = 60


def _scenario(tmp_path: Path, *, lender: dict | None = None, bureau: dict | None = None) -> tuple[Partner, Partner]:
    raw = {"federation": {"partitioning": "vertical", "min_rows": 20},
           "partners": [{"name": "lender", "kind": "bank", "data": "lender.csv", "id": "customer_id",
                         "label": "default", "numeric": ["limit", "age"], "categorical": ["education"],
                         "levels": {"education": [1, 2, 3]}, **(lender or {})},
                        {"name": "bureau", "kind": "bureau", "data": "bureau.csv", "id": "cust",
                         "numeric": ["pay_0", "late"], "missing": {"late": [98]}, **(bureau or {})}]}
    path = tmp_path / "scenario.toml"
    path.write_text(tomli_w.dumps(raw))
    lender_p, bureau_p = load_scenario(path).partners
    return lender_p, bureau_p


def _frames(n: int = N) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ids = [f"C-{i:05d}" for i in range(n)]
    lender = pd.DataFrame({"customer_id": ids, "limit": rng.integers(1, 9, n) * 1000, "age": rng.integers(20, 70, n),
                           "education": rng.choice(["1", "2", "3"], n), "default": np.arange(n) % 4 == 0})
    lender["default"] = lender["default"].astype(int)
    bureau = pd.DataFrame({"cust": ids, "pay_0": rng.integers(-2, 5, n), "late": rng.poisson(0.5, n)})
    bureau.loc[3, "late"] = 98
    bureau["cust"] = [f"  {k.lower()} " if i % 3 == 0 else k for i, k in enumerate(ids)]   # spelled otherwise
    return lender, bureau.iloc[::-1].reset_index(drop=True)                               # another order


def _text(frame: pd.DataFrame, tmp_path: Path, name: str = "t.csv", **csv) -> pd.DataFrame:
    path = tmp_path / name
    frame.to_csv(path, index=False, **csv)
    return read_table(path)


def test_both_parties_read_by_their_own_columns(tmp_path: Path) -> None:
    lender_p, bureau_p = _scenario(tmp_path)
    lender_f, bureau_f = _frames()
    lender = prepare_party_table(_text(lender_f, tmp_path, "l.csv"), lender_p, source="l.csv", min_rows=20)
    bureau = prepare_party_table(_text(bureau_f, tmp_path, "b.csv"), bureau_p, source="b.csv", min_rows=20,
                                 label_column="default")
    assert len(lender) == len(bureau) == N
    assert lender.keys[:2] == ["c-00000", "c-00001"]                          # the canonical form
    assert set(lender.keys) == set(bureau.keys) and lender.keys != bureau.keys     # same customers, other order
    assert list(lender.features.columns) == ["limit", "age", "education"]
    assert lender.label.tolist() == lender_f["default"].tolist() and lender.label_values == ("0", "1")
    assert bureau.label is None and list(bureau.features.columns) == ["pay_0", "late"]
    assert bureau.features["late"].dtype == np.float64
    row = bureau.keys.index("c-00003")
    assert np.isnan(bureau.features["late"][row])                            # the missing code 98
    order = [bureau.keys.index(k) for k in lender.keys]                      # align the bureau on the lender
    aligned = bureau.take(np.array(order))
    assert aligned.keys == lender.keys
    assert aligned.features["pay_0"].tolist() == bureau_f.set_index(bureau_f["cust"].str.strip().str.upper())[
        "pay_0"].loc[lender_f["customer_id"]].astype(float).tolist()


def test_a_party_file_is_loaded_with_its_own_csv_keys(tmp_path: Path) -> None:
    lender_p, _ = _scenario(tmp_path, lender={"sep": ";", "decimal": ","})
    lender_f, _ = _frames()
    lender_f["limit"] = lender_f["limit"] + 0.5
    lender_f.to_csv(tmp_path / "lender.csv", index=False, sep=";", decimal=",")
    table = load_party_table(lender_p, min_rows=20)
    assert table.features["limit"].tolist() == lender_f["limit"].tolist()


def _refused(call, *parts: str, hidden: tuple[str, ...] = ()) -> str:
    with pytest.raises(InputError) as err:
        call()
    message = str(err.value)
    for part in parts:
        assert part in message, (part, message)
    for secret in hidden:
        assert secret not in message.casefold(), (secret, message)
    return message


def test_bad_party_files(tmp_path: Path) -> None:
    lender_p, bureau_p = _scenario(tmp_path)
    lender_f, bureau_f = _frames()

    def bureau(frame: pd.DataFrame, **kw):
        return lambda: prepare_party_table(_text(frame, tmp_path), bureau_p, source="b.csv",
                                           min_rows=kw.get("min_rows", 20), label_column="default")

    def lender(frame: pd.DataFrame):
        return lambda: prepare_party_table(_text(frame, tmp_path), lender_p, source="l.csv", min_rows=20)

    _refused(bureau(bureau_f.drop(columns="cust")), "b.csv partner 'bureau'", "field 'id'", "no key column 'cust'",
             "add the customer key column")
    _refused(bureau(bureau_f.assign(default=0)), "b.csv partner 'bureau'", "field 'default'",
             "party 'bureau' has the label column 'default'", "only the label holder", "drop the column")
    _refused(bureau(bureau_f.drop(columns="pay_0")), "partner 'bureau'", "missing column(s) ['pay_0']",
             "add them to the file")
    _refused(bureau(bureau_f.assign(branch="x")), "partner 'bureau'", "extra column(s) ['branch']",
             "numeric, categorical or drop")
    _refused(bureau(bureau_f.head(5)), "partner 'bureau'", "has 5 rows", "at least 20")
    _refused(lender(lender_f.drop(columns="default")), "partner 'lender'", "missing column(s) ['default']")
    _refused(lender(lender_f.assign(limit=["12k"] + list(lender_f["limit"][1:]))), "partner 'lender'", "limit")
    _refused(lender(lender_f.assign(default=0)), "partner 'lender'", "field 'default'", "no row has the 'bad' value")

    empty = bureau_f.copy()
    empty.loc[[4, 9], "cust"] = ""
    _refused(bureau(empty), "b.csv", "partner 'bureau'", "field 'cust'", "2 row(s) have an empty key")
    twice = bureau_f.copy()
    twice.loc[7, "cust"] = " " + twice.loc[8, "cust"].upper() + " "             # the same customer, spelled otherwise
    key = normalise_key(twice.loc[8, "cust"])
    _refused(bureau(twice), "b.csv", "partner 'bureau'", "field 'cust'", "1 key(s) appear more than once",
             hidden=(key,))


def test_a_horizontal_partner_is_no_party(tmp_path: Path) -> None:
    lender_f, _ = _frames()
    _refused(lambda: prepare_party_table(lender_f, Partner("a", "bank", None), source="a.csv", min_rows=1),
             "partner 'a'", "not a party of a vertical federation")


def test_keys_have_one_canonical_form() -> None:
    assert normalise_key("  C-004217 ") == normalise_key("c-004217") == normalise_key("Ｃ-004217") == "c-004217"
    assert normalise_key("Jane   Doe") == "jane doe" and normalise_key(17.0) == "17"
    assert normalise_key("   ") is None and normalise_key(float("nan")) is None and normalise_key(None) is None
    keys = read_keys(["B", "a "], source="f", partner="p", field="id")
    assert keys == ["b", "a"] and key_set_fingerprint(keys) == key_set_fingerprint(["a", "b"])
    assert key_set_fingerprint(keys) != key_set_fingerprint(["a", "c"])


def test_key_fractions_put_a_customer_on_the_same_side_at_every_party(tmp_path: Path) -> None:
    lender_p, bureau_p = _scenario(tmp_path)
    lender_f, bureau_f = _frames(400)
    lender = prepare_party_table(_text(lender_f, tmp_path, "l.csv"), lender_p, source="l.csv", min_rows=20)
    bureau = prepare_party_table(_text(bureau_f, tmp_path, "b.csv"), bureau_p, source="b.csv", min_rows=20)
    by_key = dict(zip(bureau.keys, key_fractions(bureau.keys), strict=True))
    fractions = key_fractions(lender.keys)
    assert [by_key[k] for k in lender.keys] == fractions.tolist()          # other spelling, other order
    assert ((fractions >= 0) & (fractions < 1)).all() and 0.15 < (fractions < 0.25).mean() < 0.35
    assert key_fractions([]).shape == (0,)
