"""Customer keys (the column a vertical federation aligns on) in one canonical form.

MINIMAL LOCAL VERSION written by the vconfig helper so party tables can be tested; the psi helper's
module with the same API replaces it at merge.

Canonical form: the cell as text, Unicode NFKC, stripped, inner whitespace collapsed to one space,
casefolded (" c-004217 " and "C-004217" are the same customer). No key is ever printed in a message.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from fedcredit.credit.errors import InputError

_SPACE = re.compile(r"\s+")


def normalise_key(value: Any) -> str | None:
    """The canonical text of one key cell; None when the cell is missing or blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _SPACE.sub(" ", unicodedata.normalize("NFKC", str(value)).strip()).casefold()
    return text or None


def read_keys(values: Iterable[Any], *, source: str, partner: str, field: str) -> list[str]:
    """The normalised keys of a party's key column, in row order.

    InputError (one, naming the source, partner and column, with counts but never a key) when some
    rows have no key or two rows normalise to the same key."""
    keys = [normalise_key(v) for v in values]
    empty = sum(k is None for k in keys)
    at = f"{source} partner '{partner}'"
    if empty:
        raise InputError(f"{empty} of {len(keys)} row(s) have an empty key: every row needs its customer key; "
                         "fill them in or remove those rows", source=at, field=field)
    duplicates = len(keys) - len(set(keys))
    if duplicates:
        raise InputError(f"{duplicates} row(s) repeat a key already in the file (after trimming spaces and "
                         "ignoring case): keep one row per customer", source=at, field=field)
    return keys  # type: ignore[return-value]


def key_set_fingerprint(keys: Iterable[str]) -> str:
    """sha256 (hex) of the sorted normalised keys, one per line: the same set gives the same value."""
    digest = hashlib.sha256()
    for key in sorted(keys):
        digest.update(key.encode("utf-8") + b"\n")
    return digest.hexdigest()
