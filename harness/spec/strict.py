"""Numbers in specs are numbers: a base model that rejects ``true``, ``"5"`` or ``2.0``
where an integer is expected (and booleans or strings where a float is), and inf/NaN
anywhere. Pydantic's lax mode would take ``True`` as 1 and ``"5"`` as 5, and let ``.inf``
through to crash the run later.

Full strict mode is not used because it also refuses a list for a tuple field, and specs
are YAML, where tuples are lists.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _alternatives(tp: Any) -> list[Any]:
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(tp) for a in _alternatives(arg)]
    return [tp]


def _bad_number(tp: Any, value: Any) -> tuple[str, Any, str] | None:
    """(where, what, expected) when ``value`` holds a bool or a string that ``tp`` would read as a
    number: ``where`` is the index path inside ``value`` ("" for the value itself)."""
    options = _alternatives(tp)
    if any(o is Any or o is str or o is bool for o in options):
        return None
    # A string may still be meant for a Literal alternative ("size") or a model that reads
    # one ("tune"); those validate it themselves.
    reads_strings = any(typing.get_origin(o) is typing.Literal
                        or (isinstance(o, type) and issubclass(o, BaseModel)) for o in options)
    numeric = any(o is int or o is float for o in options)
    expected = "a number" if float in options else "an integer"
    if numeric and (isinstance(value, bool) or (isinstance(value, str) and not reads_strings)):
        return "", value, expected
    if isinstance(value, float) and int in options and float not in options:
        return "", value, expected  # 2.0 where an integer is expected
    for option in options:
        origin, args = typing.get_origin(option), typing.get_args(option)
        pairs: list[tuple[Any, Any, Any]] = []  # (index, type, item)
        if origin in (list, set, frozenset) and args and isinstance(value, list | tuple | set):
            pairs = [(i, args[0], item) for i, item in enumerate(value)]
        elif origin is tuple and args and isinstance(value, list | tuple):
            types_ = [args[0]] * len(value) if args[-1] is ... else list(args)
            pairs = list(zip(range(len(value)), types_, value, strict=False))
        elif origin is dict and len(args) == 2 and isinstance(value, dict):
            for key, item in value.items():
                bad_key = _bad_number(args[0], key)
                if bad_key is not None:
                    return f"[{key!r}]", key, bad_key[2]
                pairs.append((repr(key), args[1], item))
        for index, inner, item in pairs:
            found = _bad_number(inner, item)
            if found is not None:
                return f"[{index}]{found[0]}", found[1], found[2]
    return None


class StrictModel(BaseModel):
    """Base of every spec model: unknown fields, inf/NaN and numbers written as booleans
    or strings are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _numbers_are_numbers(cls, data: Any) -> Any:
        # A model-level check: pydantic forbids "before" field validators on the
        # discriminator fields (``name``) of tagged unions. One line per problem.
        if not isinstance(data, dict):
            return data
        problems = []
        for name, field in cls.model_fields.items():
            key = field.alias if field.alias in data else name
            found = _bad_number(field.annotation, data[key]) if key in data else None
            if found is not None:
                where, got, expected = found
                problems.append(f"{key}{where}: expected {expected}, got {got!r}")
        if problems:
            raise PydanticCustomError("strict_number", "\n".join(problems))
        return data
