"""The configuration checks every section shares: durations, values as error messages
show them, key paths, and `ConfigChecker`, the validator base class of the pipeline, Slack and
gateway sections (one error style for the whole file: file, key, problem)."""
from __future__ import annotations

import json
import re
from difflib import get_close_matches
from typing import Any

from pulse.schemas.config import ConfigError


# --------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SHORT_RE = re.compile(r"([0-9]+)([smhdw])")
_ISO_RE = re.compile(
    r"P(?:([0-9]+)W)?(?:([0-9]+)D)?(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)S)?)?"
)
_ISO_SECONDS = (604800, 86400, 3600, 60, 1)      # W, D, H, M, S
_DURATION_HINT = "(use e.g. 45s, 90m, 36h, 7d, 2w or ISO 8601 like P3DT12H)"


def show_value(value: Any) -> str:
    """A value as it appears in an error message: strings quoted, YAML spellings for the rest."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return kind_of(value)


def kind_of(value: Any) -> str:
    """What a YAML value is, in words: 'a string', 'a number', 'a list', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"          # dates, timestamps, binary, sets


def _why_not_duration(text: Any) -> str:
    """The reason (possibly empty) that `text` is not a duration, for the error message."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        return "expected text like 7d"
    if not isinstance(text, str):
        return "a bare number has no unit"
    s = text.strip()
    if not s:
        return "it is empty"
    if s.startswith("-"):
        return "it must not be negative"
    if re.fullmatch(r"[0-9]+", s):
        return "a bare number has no unit"
    if re.search(r"[0-9][.,][0-9]", s):
        return "fractions are not allowed"
    if re.fullmatch(r"[0-9]+[SMHDW]", s):
        return "units are lowercase"
    if s.startswith("P"):
        if re.fullmatch(r"P[^T]*[YM].*", s):
            return "months and years are not allowed"
        if s in ("P", "PT"):
            return "it has no value"
        if s.endswith("T"):
            return "T must be followed by hours, minutes or seconds"
    return ""


def parse_duration(text: Any) -> int:
    """Parse a SPEC section 2 duration into whole seconds.

    Accepts a non-negative integer with a lowercase unit s, m, h, d or w (`45s`, `90m`,
    `36h`, `7d`, `2w`) or an ISO 8601 duration of whole weeks, days, hours, minutes and
    seconds (`P2W`, `P7D`, `PT36H`, `P3DT12H`, `PT0S`). Raises ValueError otherwise;
    the message starts with the value and says why.
    """
    if isinstance(text, str):
        m = _SHORT_RE.fullmatch(text)
        if m:
            return _to_int(m.group(1), text) * _UNIT_SECONDS[m.group(2)]
        m = _ISO_RE.fullmatch(text)
        if m and any(g is not None for g in m.groups()) and not text.endswith("T"):
            return sum(_to_int(g, text) * unit for g, unit in zip(m.groups(), _ISO_SECONDS) if g is not None)
    reason = _why_not_duration(text)
    raise ValueError(f"{show_value(text)} is not a duration{': ' + reason if reason else ''} {_DURATION_HINT}")


def _to_int(digits: str, text: str) -> int:
    try:
        return int(digits)
    except ValueError:                              # beyond Python's int-from-string digit limit
        raise ValueError(f"{show_value(text)} is not a duration: the number is too long {_DURATION_HINT}") from None



_SIMPLE_KEY_RE = re.compile(r"[\w-]+")


def key_path(path: tuple) -> str:
    """A key path as text: `pipelines.default.stages[2].stale_after`.

    Keys that are not plain words (dots, spaces, brackets, empty) are written `["a.b"]`.
    """
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _SIMPLE_KEY_RE.fullmatch(part):
            out += ("." if out else "") + part
        else:
            out += "[" + json.dumps(str(part), ensure_ascii=False) + "]"
    return out or "(top level)"


class ConfigChecker:
    """Validates the parsed YAML of one file; every error names the file, key and problem.

    The one validator style for every configuration section: other sections' checkers
    (Slack routing, gateway sources) subclass it, raise `self.fail(path, problem)` with
    the key path as a tuple, and word values with `show_value` and `kind_of`.
    """

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: tuple | str, problem: str) -> ConfigError:
        return ConfigError(self.source, path if isinstance(path, str) else key_path(path), problem)

    def unknown_key(self, path: tuple, key: Any, allowed: tuple[str, ...], where: str) -> ConfigError:
        problem = f"unknown key {show_value(key)} in {where} (allowed: {', '.join(allowed)})"
        if isinstance(key, str):
            close = get_close_matches(key, allowed, n=1) or [a for a in allowed if a.lower() == key.lower()]
            if close:
                problem += f'; did you mean "{close[0]}"?'
        return self.fail(path + (key if isinstance(key, str) else show_value(key),), problem)

    def optional_mapping(self, path: tuple, value: Any, what: str = "a mapping") -> dict:
        """The mapping at `path` ({} when the key is absent or null); anything else fails."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"must be {what}, got {kind_of(value)}")
        return value

    def name(self, path: tuple, value: Any, what: str) -> str:
        if not isinstance(value, str):
            hint = f' (quote it: "{show_value(value)}")' if isinstance(value, (bool, int, float)) else ""
            raise self.fail(path, f"{what} must be a string, got {kind_of(value)}{hint}")
        if not value:
            raise self.fail(path, f"{what} must not be empty")
        return value

    def duration(self, path: tuple, value: Any) -> int:
        try:
            return parse_duration(value)
        except ValueError as e:
            raise self.fail(path, str(e)) from None

