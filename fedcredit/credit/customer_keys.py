"""Customer keys (ID number, phone, account) in one canonical form, checked before alignment.

Two parties only find a customer in common if they spell its key alike, so every key is first
put in this documented canonical form (`normalise_key`):

1. an integer (Python or NumPy) is written in decimal: 123 → "123"; a float that is a whole
   number is written as that integer (123.0 → "123", as a key column read as floats because of a
   missing value would hold it); any other float as Python writes it (12.5 → "12.5");
2. bytes are read as UTF-8; anything else is `str(value)`;
3. Unicode NFKC (full-width "１２３" → "123", ligatures, compatibility spaces), then case folding
   (`str.casefold`: "Straße" → "strasse") and NFKC again (so the result is stable: normalising a
   normalised key gives it back);
4. leading/trailing whitespace removed and every inner run of whitespace made one space;
5. digits followed by a point and only zeros lose them ("742949.0" → "742949"): the text a spreadsheet
   or a float column writes for a whole-number key.

None, NaN, NA/NaT and keys that are empty after step 4 have no canonical form (None).

`read_keys` normalises a whole key column and refuses empty or repeated keys (and long numeric
keys read as floats, which may have lost digits) with one
`InputError` that counts them and gives the first few row numbers — never a key value: keys must
not appear in any message or log. `key_set_fingerprint` names a set of keys (order-independent)
so an alignment can be cached per pair of key sets.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import unicodedata
from collections.abc import Mapping, Sequence

import pandas as pd

from fedcredit.credit.errors import InputError

ROWS_SHOWN = 5
FLOAT_EXACT = 2.0 ** 53   # from here on, a float64 cannot hold every integer: a long key read as float lost digits
FINGERPRINT_LABEL = b"fedcredit-key-set-v1\0"


def normalise_key(value: object) -> str | None:
    """The canonical form of one customer key (module docstring), or None if it is empty/missing."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, numbers.Integral):
        text = str(int(value))
    elif isinstance(value, numbers.Real):
        number = float(value)
        if math.isnan(number):
            return None
        text = str(int(number)) if number.is_integer() else repr(number)
    elif isinstance(value, (bytes, bytearray)):
        text = bytes(value).decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        try:
            if pd.isna(value):   # pd.NA, pd.NaT, np.datetime64("NaT"), ...
                return None
        except (TypeError, ValueError):
            pass
        text = str(value)
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    text = " ".join(text.split())
    whole, point, zeros = text.partition(".")
    if point and whole.isdigit() and zeros and set(zeros) == {"0"} and whole.isascii():
        text = whole
    return text or None


def key_shape(keys: Sequence[str]) -> dict[str, float]:
    """A coarse description of a key column's format, for a hint when two parties' keys do not meet: the
    share of digit-only keys and, among them, of those with a leading zero (each rounded to a tenth), and the
    median length. No key and nothing about one customer."""
    if not keys:
        return {"digits": 0.0, "leading_zero": 0.0, "length": 0.0}
    digits = [k for k in keys if k.isdigit()]
    lengths = sorted(len(k) for k in keys)
    return {"digits": round(len(digits) / len(keys), 1),
            "leading_zero": round(sum(k.startswith("0") for k in digits) / len(digits), 1) if digits else 0.0,
            "length": float(lengths[len(lengths) // 2])}


def shape_hint(shapes: Mapping[str, Mapping[str, float]]) -> str:
    """Why parties' keys may not meet, from their `key_shape`s ("" when their formats look alike)."""
    def describe(s: Mapping[str, float]) -> str:
        kind = "digits" if s["digits"] >= 0.9 else "text" if s["digits"] <= 0.1 else "mixed"
        zeros = " with leading zeros" if kind == "digits" and s["leading_zero"] >= 0.5 else ""
        return f"{kind}{zeros}, typically {s['length']:.0f} characters"

    described = {p: describe(s) for p, s in shapes.items()}
    if len(set(described.values())) <= 1:
        return ""
    return "their keys look different: " + "; ".join(f"'{p}' {d}" for p, d in described.items())


def _rows(positions: list[int]) -> str:
    shown = ", ".join(str(p + 1) for p in positions[:ROWS_SHOWN])
    more = f" and {len(positions) - ROWS_SHOWN} more" if len(positions) > ROWS_SHOWN else ""
    return f"data rows {shown}{more} (counting from 1, header not counted)"


def read_keys(values: Sequence | pd.Series, *, source: str, partner: str, field: str) -> list[str]:
    """Normalised keys of a key column, in row order.

    Raises InputError (naming `source`, `partner` and `field`, with counts and the first row
    numbers, never a key) if some rows have an empty key or some keys repeat after normalisation.
    """
    raw = values.tolist() if isinstance(values, pd.Series) else list(values)
    where = f"{source} (partner '{partner}')"
    inexact = [i for i, v in enumerate(raw) if isinstance(v, float) and abs(v) >= FLOAT_EXACT]
    if inexact:
        raise InputError(f"{len(inexact)} keys in column '{field}' were read as floating-point numbers too large "
                         f"to hold every digit ({_rows(inexact)}): read the key column as text so no digit is lost",
                         source=where, field=field)
    keys = [normalise_key(v) for v in raw]
    empty = [i for i, k in enumerate(keys) if k is None]
    if empty:
        raise InputError(f"{len(empty)} row(s) have an empty key in column '{field}' ({_rows(empty)}): every row "
                         "needs its customer key to be aligned; fill the keys or drop these rows",
                         source=where, field=field)
    first: dict[str, int] = {}
    repeats: list[int] = []
    for i, key in enumerate(keys):
        if first.setdefault(key, i) != i:
            repeats.append(i)
    if repeats:
        repeated_keys = len({keys[i] for i in repeats})
        raise InputError(f"{repeated_keys} key(s) appear more than once in column '{field}' (after trimming and "
                         f"case folding; {len(repeats)} repeated rows: {_rows(repeats)}): a customer must have "
                         "one row per partner; merge or drop the repeated rows", source=where, field=field)
    return keys  # type: ignore[return-value]  # no None left


def key_set_fingerprint(keys: Sequence[str]) -> str:
    """SHA-256 hex over the sorted normalised keys (the same set in any order gives the same value).

    Each key is length-prefixed (4 bytes, big-endian) after a fixed label. Keep it with the party:
    whoever sees it can tell whether the set changed and test a guess of the whole set.
    """
    digest = hashlib.sha256(FINGERPRINT_LABEL)
    for key in sorted(keys):
        encoded = key.encode("utf-8")
        digest.update(len(encoded).to_bytes(4, "big"))
        digest.update(encoded)
    return digest.hexdigest()


def alignment_id(fingerprints: Mapping[str, str]) -> str:
    """The id of an alignment: SHA-256 over the parties' names and key-set fingerprints (a party caches its
    alignment under it; the coordinator compares the ids the parties report)."""
    return hashlib.sha256(json.dumps(sorted(fingerprints.items())).encode()).hexdigest()
