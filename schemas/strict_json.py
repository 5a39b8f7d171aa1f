"""JSON that orjson refuses: a strict standard-library path that accepts what JSON allows
and names the problem otherwise (the event parser's rare inputs)."""
from __future__ import annotations

import json as _json
from typing import Any

import orjson

from .types import INVALID_JSON, Rejected


class _BadJSON(Exception):
    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def _reject_constant(_name: str) -> Any:
    raise _BadJSON("NaN and Infinity are not JSON numbers")


def _strict_float(s: str) -> float:
    f = float(s)
    if f == _INF or f == -_INF:
        raise _BadJSON("a number is beyond double range")
    return f


def _strict_int(s: str) -> int | float:
    # Like orjson: integers that fit in 64 bits stay int, larger ones become float.
    if len(s) <= 20:
        v = int(s)
        if -(1 << 63) <= v < (1 << 64):
            return v
    return _strict_float(s)         # float() of the text: no int-digits limit involved


_INF = float("inf")


def _has_lone_surrogate(obj: Any) -> bool:
    stack = [obj]
    while stack:
        o = stack.pop()
        c = o.__class__
        if c is str:
            try:
                o.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif c is dict:
            for k, v in o.items():
                try:
                    k.encode("utf-8")
                except UnicodeEncodeError:
                    return True
                stack.append(v)
        elif c is list:
            stack.extend(o)
    return False


def strict_loads(raw: Any, orjson_error: str) -> Any:
    """Decode what orjson refused. Returns the value, or a `Rejected(invalid_json)`."""
    try:
        if isinstance(raw, str):
            raw.encode("utf-8")
            text = raw
        elif isinstance(raw, (bytes, bytearray, memoryview)):
            text = bytes(raw).decode("utf-8")
        else:
            return Rejected(INVALID_JSON, "input is neither bytes nor text")
    except UnicodeError:
        return Rejected(INVALID_JSON, "input is not valid UTF-8")
    if text.startswith("\ufeff"):
        return Rejected(INVALID_JSON, "input starts with a byte-order mark")
    low = orjson_error.lower()
    if "recursion" in low or "depth" in low:
        # orjson's limit is 1024 levels; the standard library's depends on the stack.
        return Rejected(INVALID_JSON, "JSON nested too deeply")
    try:
        obj = _json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_strict_float,
            parse_int=_strict_int,
        )
    except _BadJSON as e:
        return Rejected(INVALID_JSON, e.detail)
    except RecursionError:
        return Rejected(INVALID_JSON, "JSON nested too deeply")
    except (ValueError, OverflowError):
        return Rejected(INVALID_JSON, "unparseable JSON")
    if _has_lone_surrogate(obj):
        return Rejected(INVALID_JSON, "a string has an unpaired surrogate escape")
    return obj
