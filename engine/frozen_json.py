"""Read-only copies of JSON values: what an event's payload is made into, so no subscriber can change what the
next one sees, and what is stored or sent is exactly what was emitted."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Union

JSONValue = Union[None, bool, int, float, str, tuple["JSONValue", ...], Mapping[str, "JSONValue"]]


def freeze_json(value: Any, path: str = "data") -> JSONValue:
    """Return a read-only copy of a JSON-compatible value, or raise TypeError naming the offending path.

    Lists become tuples and dicts become mappingproxies, so an Event's payload cannot be changed after
    it is emitted; `thaw_json` turns it back into plain JSON types.
    """
    try:
        return _freeze(value)
    except _NotJSON as problem:
        where = path + "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in reversed(problem.steps))
        raise TypeError(f"{where} {problem.what}") from None


class _NotJSON(Exception):
    """Raised deep inside a value; each level adds its key on the way out, so a value that freezes never pays
    for the path of every item."""

    def __init__(self, what: str) -> None:
        self.what, self.steps = what, []


_SCALARS = frozenset({str, int, bool, type(None)})


def _freeze(value: Any) -> JSONValue:
    # Payloads are mostly flat mappings of strings and numbers: the scalar checks are inlined in the loops, as
    # every event's data passes through here.
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is float or isinstance(value, float):
        if not math.isfinite(value):
            raise _NotJSON(f"is {value!r}; JSON has no NaN or infinity")
        return value
    if isinstance(value, (str, int)):  # a str or int subclass (an enum member)
        return value
    if isinstance(value, Mapping):
        frozen = {}
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise _NotJSON(f"has a non-string key {key!r}")
            item_kind = type(item)
            if item_kind in _SCALARS or (item_kind is float and item - item == 0):  # x - x is 0 for a finite float only
                frozen[key] = item
                continue
            try:
                frozen[key] = _freeze(item)
            except _NotJSON as problem:
                problem.steps.append(key)
                raise
        return MappingProxyType(frozen)
    if isinstance(value, (list, tuple)):
        items = []
        for index, item in enumerate(value):
            item_kind = type(item)
            if item_kind in _SCALARS or (item_kind is float and item - item == 0):
                items.append(item)
                continue
            try:
                items.append(_freeze(item))
            except _NotJSON as problem:
                problem.steps.append(index)
                raise
        return tuple(items)
    raise _NotJSON(f"is a {type(value).__name__}, which is not JSON-serialisable")


def thaw_json(value: JSONValue) -> Any:
    """Plain dict/list copy of a frozen JSON value (what `json.dumps` accepts)."""
    if isinstance(value, Mapping):
        return {key: thaw_json(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw_json(item) for item in value]
    return value
