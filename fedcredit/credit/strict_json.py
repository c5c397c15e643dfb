"""Standard JSON only: no bare NaN or Infinity in anything fedcredit writes.

Python's `json` writes `NaN`/`Infinity` by default, which strict readers (JavaScript's
`JSON.parse`, Go, jq …) reject. Every writer of the project goes through `dumps`, which
refuses a non-finite number and names where it is: an undefined value must be `None`
(`null`), with its reason beside it, so a stray NaN is a loud bug, not a broken file.
`loads` is the matching strict reader; `loads_old` reads older outputs, turning their bare
NaN/Infinity into None so they can be rewritten as standard JSON.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


class NonFiniteError(ValueError):
    """A value to write as JSON holds NaN or ±Infinity."""


def first_nonfinite(value: Any, where: str = "") -> str | None:
    """The path (e.g. `partners[2].local.auc`) of the first non-finite float in `value`, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where or "the value")
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = first_nonfinite(item, f"{where}.{key}" if where else str(key))
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = first_nonfinite(item, f"{where}[{i}]")
            if found:
                return found
        return None
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):   # numpy arrays and scalars
        return first_nonfinite(value.tolist(), where)
    return None


def dumps(value: Any, **kwargs: Any) -> str:
    """`json.dumps` that refuses NaN and ±Infinity (NonFiniteError naming the offending field)."""
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except ValueError as exc:
        where = first_nonfinite(value)
        if where is None:
            raise
        raise NonFiniteError(f"refusing to write non-standard JSON: {where} is not a finite number; "
                             "an undefined value must be None (null) with its reason") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def loads(text: str | bytes) -> Any:
    """`json.loads` that rejects the non-standard constants NaN, Infinity and -Infinity."""
    return json.loads(text, parse_constant=_reject_constant)


def loads_old(text: str | bytes) -> Any:
    """Read a file an older fedcredit may have written with bare NaN/Infinity: those become None."""
    return json.loads(text, parse_constant=lambda name: None)
