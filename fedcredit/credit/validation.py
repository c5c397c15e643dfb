"""The one way a config file is checked: pydantic schemas, and their errors as `InputError`.

Every config file (scenario, partner file, coordinator file, the ServerApp's run config) has one
schema built from these parts; each field states its rule once, in `rule(...)` — the text a user
reads when the value is wrong, e.g. ``/p/s.toml [federation]: field 'rounds': must be a whole
number ≥ 1 (got 0)``. Checks that join fields raise `Rule` (which names the field it blames).
TOML types are taken as they are: a number is never a string or a bool, and no default is guessed.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic.fields import FieldInfo

from fedcredit.credit.errors import InputError

T = TypeVar("T")

Whole = Annotated[int, Strict()]               # 3, never 3.0, "3" or true
Number = Annotated[float, Strict()]            # 3 or 3.0, never "3" or true; finite (`STRICT`)
Flag = Annotated[bool, Strict()]               # true or false, never "yes" or 1
Text = Annotated[str, Strict(), Field(min_length=1)]
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

# Where = (file or source, location in the schema) → "file [table]"-style text for the user.
Locate = Callable[[tuple[Any, ...]], str]


_NOT_A_TABLE = ("model_type", "dataclass_type", "dict_type", "model_attributes_type")


class Schema(BaseModel):
    """A table of a config file: unknown keys are refused, values are not converted."""

    model_config = ConfigDict(**STRICT, frozen=True)


def rule(text: str, default: Any = ..., *, missing: str | None = None, **constraints: Any) -> Any:
    """A field whose rule, stated once, is the message a wrong value gets: `text` (got value).
    `missing` is what a required field says when it is left out (default: "missing: `text`")."""
    extra = {"missing": missing} if missing else None
    return Field(default, description=text, json_schema_extra=extra, **constraints)


class Rule(ValueError):
    """A check across fields failed: `message` blames `field` (None: the table as a whole)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def validated(build: Callable[..., T], raw: Any, *, locate: Locate | str, schema: type | None = None) -> T:
    """`build(**raw)` (or `build.model_validate(raw)` for a model), with any failure raised as ONE
    InputError naming where (`locate(loc)`: file and table), the field and its rule.

    `schema` is the class whose fields the error locations refer to (default: `build`)."""
    if not isinstance(raw, Mapping):
        where = locate(()) if callable(locate) else locate
        raise InputError(f"must be a table (got {raw!r})", source=where)
    try:
        if isinstance(build, type) and issubclass(build, BaseModel):
            return build.model_validate(dict(raw))
        return build(**raw)
    except ValidationError as exc:
        raise as_input_error(exc, schema or build, raw, locate) from None
    except Rule as exc:
        where = locate(()) if callable(locate) else locate
        raise InputError(str(exc), source=where, field=exc.field) from None


def as_input_error(exc: ValidationError, schema: type, raw: Any, locate: Locate | str) -> InputError:
    """The first problem of `exc` as an InputError; unknown keys of one table are named together."""
    def where(loc: tuple[Any, ...]) -> str:
        return locate(loc) if callable(locate) else locate

    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(first["loc"])
    if first["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        parent = loc[:-1]
        unknown = sorted(str(e["loc"][-1]) for e in errors
                         if e["type"] == first["type"] and tuple(e["loc"][:-1]) == parent)
        allowed = sorted(_fields(_schema_at(schema, parent)))
        noun = "table(s)" if not parent and _is_file(schema) else "key(s)"
        return InputError(f"unknown {noun} {unknown}; allowed: {allowed}", source=where(parent))
    if first["type"] == "value_error" and isinstance(first.get("ctx", {}).get("error"), Rule):
        problem: Rule = first["ctx"]["error"]
        table = loc if problem.field is None or not loc or loc[-1] != problem.field else loc[:-1]
        return InputError(str(problem), source=where(table), field=problem.field)
    if first["type"] in _NOT_A_TABLE and loc and not isinstance(loc[-1], str):   # an entry of a list of tables
        return InputError(f"must be a table (got {_value_at(raw, loc)!r})", source=where(loc))
    table, field, info = _split(schema, loc)
    text = info.description if info is not None and info.description else first["msg"]
    if first["type"] == "missing":
        extra = info.json_schema_extra if info is not None and isinstance(info.json_schema_extra, dict) else {}
        return InputError(str(extra.get("missing") or f"missing: {text}"), source=where(table), field=field)
    shown = _value_at(raw, loc)
    return InputError(f"{text} (got {shown!r})", source=where(table), field=field)


def schema_fields(schema: type) -> dict[str, FieldInfo]:
    """A schema's fields by the name a file spells them with."""
    return _fields(schema)


def rule_of(schema: type, name: str) -> str:
    """The rule a field states (its message for a wrong value)."""
    return str(_fields(schema)[name].description)


def _is_file(schema: type) -> bool:
    return bool(getattr(schema, "__file_schema__", False))


def _fields(schema: Any) -> dict[str, FieldInfo]:
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return {info.alias or name: info for name, info in schema.model_fields.items()}
    return {info.alias or name: info for name, info in (getattr(schema, "__pydantic_fields__", {}) or {}).items()}


def _inner(annotation: Any) -> Any:
    """The schema class inside list[X], X | None, tuple[X, ...], Annotated[X, ...]."""
    seen = 0
    while seen < 8:
        seen += 1
        if _fields(annotation):
            return annotation
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if not args:
            return annotation
        annotation = next((a for a in args if _fields(_inner(a))), args[0])
    return annotation


def _schema_at(schema: Any, loc: Sequence[Any]) -> Any:
    current = schema
    for part in loc:
        if isinstance(part, str):
            info = _fields(current).get(part)
            if info is None:
                return None
            current = _inner(info.annotation)
    return current


def _split(schema: Any, loc: Sequence[Any]) -> tuple[tuple[Any, ...], str | None, FieldInfo | None]:
    """(the table's location, the field's name, its FieldInfo) for an error at `loc`: the last
    part of `loc` that is a schema field (deeper parts are list items or a mapping's keys)."""
    current, found = schema, (tuple(loc), None, None)
    for i, part in enumerate(loc):
        if not isinstance(part, str):
            continue
        info = _fields(current).get(part) if current is not None else None
        if info is None:
            break
        found = (tuple(loc[:i]), part, info)
        current = _inner(info.annotation)
    return found


def _value_at(raw: Any, loc: Sequence[Any]) -> Any:
    value = raw
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value
