"""Customer keys: the canonical form, clear errors for empty/repeated keys (never showing a key), fingerprints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fedcredit.credit.customer_keys import key_set_fingerprint, normalise_key, read_keys
from fedcredit.credit.errors import InputError


@pytest.mark.parametrize("a, b", [
    ("  ab C ", "AB c"),
    ("ab\t\n  c", "AB C"),
    ("１２３", "123"),                 # full-width digits (NFKC)
    ("ＡＢＣ-７", "abc-7"),           # full-width letters
    ("Straße", "STRASSE"),            # case folding, not lower()
    ("a\u00a0b", "a b"),              # no-break space is whitespace
    ("ﬁle", "FILE"),                  # ligature (NFKC)
    ("e\u0301", "\u00e9"),            # combining accent vs precomposed
])
def test_variants_normalise_alike(a, b):
    assert normalise_key(a) == normalise_key(b)
    assert normalise_key(a) is not None


def test_numbers_and_strings_share_a_form():
    assert normalise_key(123) == normalise_key("123") == normalise_key(123.0) == normalise_key(np.int64(123)) \
        == normalise_key(np.float32(123.0)) == normalise_key(" 123 ") == "123"
    assert normalise_key(12.5) == "12.5"
    assert normalise_key(123) != normalise_key("0123")   # leading zeros are part of a string key
    assert normalise_key(b"AbC") == "abc"


@pytest.mark.parametrize("empty", [None, float("nan"), np.nan, pd.NA, pd.NaT, "", "   ", "\t\n", "\u3000"])
def test_empty_and_missing_have_no_form(empty):
    assert normalise_key(empty) is None


def test_normalising_is_idempotent_and_distinguishes_real_differences():
    for raw in ["  Ab  C ", "１２３", "Straße", "ﬁle", "x\u00a0y", "İstanbul", "ǅ"]:
        once = normalise_key(raw)
        assert normalise_key(once) == once
    assert normalise_key("ab c") != normalise_key("abc")
    assert normalise_key("a-1") != normalise_key("a_1")


def test_read_keys_keeps_row_order_and_takes_a_series():
    values = pd.Series(["  B2 ", "a1", 3.0, "Ｃ3"])
    assert read_keys(values, source="bureau.csv", partner="bureau", field="customer_id") == ["b2", "a1", "3", "c3"]
    assert read_keys(["x", "y"], source="s", partner="p", field="f") == ["x", "y"]


def test_empty_keys_are_counted_with_rows_and_no_values():
    values = ["SECRET-ID-1", None, "SECRET-ID-2", "  ", np.nan, "SECRET-ID-3"]
    with pytest.raises(InputError) as err:
        read_keys(values, source="lender.csv", partner="lender", field="customer_id")
    message = str(err.value)
    assert "3 row(s) have an empty key in column 'customer_id'" in message
    assert "lender.csv" in message and "'lender'" in message
    assert "data rows 2, 4, 5" in message
    assert "secret" not in message.lower()
    assert err.value.field == "customer_id"


def test_duplicates_after_normalisation_are_counted_with_rows_and_no_values():
    values = ["Alice-77", "bob-88", "  ALICE-77", "carol-99", "BOB-88 ", "alice-77", "dave-11"]
    with pytest.raises(InputError) as err:
        read_keys(values, source="bureau.csv", partner="bureau", field="cid")
    message = str(err.value)
    assert "2 key(s) appear more than once" in message and "(after trimming and case folding" in message
    assert "3 repeated rows: data rows 3, 5, 6" in message
    assert "bureau.csv" in message and "'bureau'" in message and "'cid'" in message
    for key in ["alice", "bob", "carol", "dave", "77", "88"]:
        assert key not in message.lower()


def test_many_problem_rows_show_only_the_first_few():
    values = ["k"] * 12
    with pytest.raises(InputError, match=r"1 key\(s\) appear more than once .* 11 repeated rows: "
                                         r"data rows 2, 3, 4, 5, 6 and 6 more"):
        read_keys(values, source="s.csv", partner="p", field="id")


def test_fingerprint_is_order_independent_and_set_sensitive():
    keys = [f"c{i}" for i in range(100)]
    fp = key_set_fingerprint(keys)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert key_set_fingerprint(list(reversed(keys))) == fp
    assert key_set_fingerprint(keys[:-1]) != fp
    assert key_set_fingerprint(keys[:-1] + ["c100"]) != fp
    # concatenation is unambiguous: ["ab", "c"] is not ["a", "bc"]
    assert key_set_fingerprint(["ab", "c"]) != key_set_fingerprint(["a", "bc"])


def test_long_numeric_keys_read_as_floats_are_refused():
    """A 17-digit account number in a column pandas read as float (one missing value) lost its last digits."""
    values = pd.Series([12345678901234567.0, 2.0, 98765432109876543.0])
    with pytest.raises(InputError, match=r"2 keys in column 'acct' were read as floating-point .*data rows 1, 3"):
        read_keys(values, source="a.csv", partner="a", field="acct")
    assert read_keys(pd.Series([12345678901234567, 2]), source="a.csv", partner="a", field="acct") == \
        ["12345678901234567", "2"]


def test_a_whole_number_written_with_a_point_zero_is_that_number_and_key_shapes_explain_a_miss() -> None:
    from fedcredit.credit.customer_keys import key_shape, shape_hint

    assert normalise_key("742949.0") == normalise_key("742949") == normalise_key(742949.0) == "742949"
    assert normalise_key("742949.50") == "742949.50" and normalise_key("ab.0") == "ab.0"
    lender = key_shape([f"{i:08d}" for i in range(100)])
    bureau = key_shape([str(i + 1000) for i in range(100)])
    assert lender == {"digits": 1.0, "leading_zero": 1.0, "length": 8.0}
    hint = shape_hint({"lender": lender, "bureau": bureau})
    assert "'lender' digits with leading zeros, typically 8 characters" in hint and "'bureau' digits, typically 4" in hint
    assert shape_hint({"a": lender, "b": lender}) == ""
