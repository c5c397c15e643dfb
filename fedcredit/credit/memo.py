"""Remember what a pure function made of JSON-able data: a report's plot is drawn once per process.

A simulation writes its reports twice (the ServerApp at the end of the run, then the runner again with
the yardsticks); the second time most plots would be drawn again from the same data.
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def by_content(part: Callable[[Any], Any], maxsize: int = 16) -> Callable[[Callable[[Any], T]], Callable[[Any], T]]:
    """Decorate `fn(report)`, a pure function of `part(report)` (JSON-able): the same content (compared
    as sorted-key JSON) gives the remembered result; the `maxsize` latest contents are kept."""
    def wrap(fn: Callable[[Any], T]) -> Callable[[Any], T]:
        seen: OrderedDict[str, T] = OrderedDict()

        @functools.wraps(fn)
        def remembered(report: Any) -> T:
            key = json.dumps(part(report), sort_keys=True, default=repr)
            if key in seen:
                seen.move_to_end(key)
                return seen[key]
            value = seen[key] = fn(report)
            if len(seen) > maxsize:
                seen.popitem(last=False)
            return value
        return remembered
    return wrap
