"""The run-time event parser (SPEC section 1): one raw input -> `Event` or `Rejected`.

`parse_event` runs once per input in the report and the stream processor, so its
common path is written for speed: one `orjson.loads`, then plain dict look-ups and
class-identity checks (`x.__class__ is str`; orjson only produces exact built-in
types), no regular expressions, no exception raised for a valid event. Rare inputs
(anything orjson refuses) take a slow but strict path through the standard library's
`json`, which also accepts what orjson refuses but JSON allows (none known for
orjson 3.13; older versions refused integers beyond 64 bits) and names the problem.

`Rejected.detail` names the field and the problem but never contains a value taken
from the input (values may be personal data).

Timestamps are converted to integer microseconds since the Unix epoch (UTC) with
exact integer arithmetic on the proleptic Gregorian calendar; `parse_timestamp` and
`format_timestamp` are shared with the CLI (`--as-of`) and the report.
"""
from __future__ import annotations

import functools
import json as _json
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import orjson

from .types import (
    CLOSED,
    CREATED,
    INVALID_EVENT,
    INVALID_JSON,
    KIND_BY_TYPE,
    STAGE_CHANGED,
    UNKNOWN_PIPELINE,
    UPDATED,
    UNKNOWN_STAGE,
    Event,
    Rejected,
)

if TYPE_CHECKING:
    from pulse.config import Config

__all__ = ["parse_event", "parse_timestamp", "format_timestamp", "MAX_ID_CHARS"]

MAX_ID_CHARS = 128          # `event_id` and `lead_id`: 1..128 code points
DEFAULT_PIPELINE = "default"

# --------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------

_US_PER_S = 1_000_000
_US_PER_DAY = 86_400 * _US_PER_S

# Two-character look-up tables: one dict access both validates (ASCII digits, range)
# and converts. `int()` alone would accept "+5", " 5", "0_5" or non-ASCII digits.
_MONTH = {f"{i:02d}": i for i in range(1, 13)}
_DAY = {f"{i:02d}": i for i in range(1, 32)}
_HOUR = {f"{i:02d}": i for i in range(24)}
# "+HH:MM" / "-HH:MM" -> offset in microseconds east of UTC (hours <= 23, minutes <= 59).
_OFFSET = {}
for _h in range(24):
    for _m in range(60):
        _OFFSET[f"+{_h:02d}:{_m:02d}"] = (_h * 60 + _m) * 60 * _US_PER_S
        _OFFSET[f"-{_h:02d}:{_m:02d}"] = -(_h * 60 + _m) * 60 * _US_PER_S
del _h, _m

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# ":MM:SS" -> microseconds past the hour (3,600 entries): one look-up validates both
# colons, the minute and the second (no :60) and converts them.
_MMSS = {f":{m:02d}:{s:02d}": (m * 60 + s) * _US_PER_S for m in range(60) for s in range(60)}
_MMSSZ = {k + "Z": v for k, v in _MMSS.items()}     # the same, for "...:MM:SSZ" endings

# "YYYY-MM-DDTHH" -> microseconds since the epoch at that hour (local to the
# timestamp's offset). Bounded: cleared when full (32,768 hours is ~3.7 years).
_HOUR_CACHE: dict[str, int] = {}
_HOUR_CACHE_MAX = 1 << 15


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + 9 if m <= 2 else m - 3) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """Inverse of `_days_from_civil`."""
    z += 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def _hour_base(p: str) -> int | None:
    """'YYYY-MM-DDTHH' -> microseconds since the epoch, or None if invalid. Caches."""
    if len(p) != 13 or p[4] != "-" or p[7] != "-" or p[10] != "T":
        return None
    ys = p[:4]
    if not (ys.isascii() and ys.isdigit()):
        return None
    y = int(ys)
    m = _MONTH.get(p[5:7])
    d = _DAY.get(p[8:10])
    h = _HOUR.get(p[11:13])
    if y == 0 or m is None or d is None or h is None:
        return None
    if d > _DAYS_IN_MONTH[m]:
        if not (m == 2 and d == 29 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
            return None
    base = (_days_from_civil(y, m, d) * 24 + h) * 3600 * _US_PER_S
    if len(_HOUR_CACHE) >= _HOUR_CACHE_MAX:
        _HOUR_CACHE.clear()
    _HOUR_CACHE[p] = base
    return base


def parse_timestamp(s: str) -> int | None:
    """An RFC 3339 timestamp as SPEC section 1 allows it -> microseconds since the epoch.

    Accepted: ``YYYY-MM-DDTHH:MM:SS``, optionally ``.`` and one or more ASCII digits
    (kept to the microsecond, further digits truncated), then ``Z`` or ``±HH:MM``
    (hours <= 23, minutes <= 59). Uppercase ``T``/``Z``, real calendar dates, years
    0001-9999, no leap second. Returns None for anything else (including non-strings).
    """
    if s.__class__ is not str or len(s) < 20:
        return None
    base = _HOUR_CACHE.get(s[:13])
    if base is None:
        base = _hour_base(s[:13])
        if base is None:
            return None
    mmss = _MMSS.get(s[13:19])
    if mmss is None:
        return None
    if len(s) == 20:                                    # "...SSZ": the common case
        return base + mmss if s[19] == "Z" else None
    tail = s[19:]
    if tail[0] == ".":
        if tail[-1] == "Z":
            frac = tail[1:-1]
            off = 0
        else:
            frac = tail[1:-6]
            off = _OFFSET.get(tail[-6:])
            if off is None:
                return None
        if not frac or not (frac.isascii() and frac.isdigit()):
            return None
        us = int(frac[:6]) if len(frac) >= 6 else int(frac) * 10 ** (6 - len(frac))
        return base + mmss - off + us
    off = _OFFSET.get(tail)
    if off is None:
        return None
    return base + mmss - off


def format_timestamp(us: int) -> str:
    """Microseconds since the epoch -> RFC 3339 in UTC with ``Z``.

    The fraction (always six digits) is written only when it is not zero:
    ``2026-03-01T10:15:00Z``, ``2026-03-01T10:15:00.250000Z``. Exact for any int;
    the result is RFC 3339 only for years 0001-9999.
    """
    days, rem = divmod(us, _US_PER_DAY)
    secs, frac = divmod(rem, _US_PER_S)
    hh, r = divmod(secs, 3600)
    mm, ss = divmod(r, 60)
    if frac:
        return f"{_date_text(days)}T{hh:02d}:{mm:02d}:{ss:02d}.{frac:06d}Z"
    return f"{_date_text(days)}T{hh:02d}:{mm:02d}:{ss:02d}Z"


@functools.lru_cache(maxsize=4096)
def _date_text(days: int) -> str:
    """YYYY-MM-DD of a day number (cached: a report formats thousands of times on few days)."""
    y, m, d = _civil_from_days(days)
    return f"{y:04d}-{m:02d}-{d:02d}"


# --------------------------------------------------------------------------------------
# JSON: orjson first, a strict standard-library path for whatever orjson refuses
# --------------------------------------------------------------------------------------

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


def _slow_loads(raw: Any, orjson_error: str) -> Any:
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


# --------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------

_R_NOT_OBJECT = Rejected(INVALID_JSON, "not a JSON object")


def _bad(detail: str) -> Rejected:
    return Rejected(INVALID_EVENT, detail)


_R_TYPE_MISSING = _bad("type: missing")
_R_TYPE_NOT_STR = _bad("type: not a string")
_R_TYPE_UNKNOWN = _bad("type: not a known event type")
_R_ID = {
    f: (_bad(f"{f}: missing"), _bad(f"{f}: not a string"),
        _bad(f"{f}: must be 1-{MAX_ID_CHARS} characters"))
    for f in ("event_id", "lead_id")
}
_R_OCC_MISSING = _bad("occurred_at: missing")
_R_OCC_NOT_STR = _bad("occurred_at: not a string")
_R_OCC_BAD = _bad("occurred_at: not an RFC 3339 timestamp with offset")
_R_AMOUNT_NOT_NUM = _bad("amount: not a number")
_R_AMOUNT_NEG = _bad("amount: negative")
_R_CURRENCY = _bad("currency: not 3 ASCII letters")
_R_ATTRIBUTES = _bad("attributes: not an object")
_R_OUTCOME = _bad("outcome: not \"won\" or \"lost\"")
_R_OUTCOME_MISSING = _bad("outcome: missing (required for deal.closed)")
_R_TO_STAGE_MISSING = _bad("to_stage: missing (required for lead.stage_changed)")
_R_UNKNOWN_PIPELINE = Rejected(UNKNOWN_PIPELINE, "pipeline: not configured")
_R_UNKNOWN_STAGE = Rejected(UNKNOWN_STAGE, "stage: not a stage of the event's pipeline")
_R_UNKNOWN_TO_STAGE = Rejected(UNKNOWN_STAGE, "to_stage: not a stage of the event's pipeline")

# Optional string fields (every event type; SPEC: "must have its stated type when present"),
# except that on lead.updated the three stage fields are unknown extra fields (SPEC 1, v2).
_STR_FIELDS = ("pipeline", "owner", "team", "source", "reason", "stage", "to_stage", "from_stage")
_R_NOT_STR = {f: _bad(f"{f}: not a string") for f in _STR_FIELDS}
_R_WON_LOST = {"won": True, "lost": False}


def _mismatch(expected_type: str) -> Rejected:
    return _bad(f"type: does not match the topic, which carries {expected_type}")


def _check_ids(d: dict) -> Rejected | None:
    for f in ("event_id", "lead_id"):
        v = d.get(f)
        missing, not_str, bad_len = _R_ID[f]
        if v is None:
            return missing
        if v.__class__ is not str:
            return not_str
        if not 0 < len(v) <= MAX_ID_CHARS:
            return bad_len
    return None


_loads = orjson.loads
_tuple_new = tuple.__new__        # builds an Event without NamedTuple.__new__'s extra frame
_kind_of = KIND_BY_TYPE.get
_hour_get = _HOUR_CACHE.get       # the cache is only ever cleared in place, never replaced
_mmssz_get = _MMSSZ.get
_won_get = _R_WON_LOST.get


def _parse_exact(raw: bytes | str, config: Config, expected_type: str | None = None) -> Event | Rejected:
    """`parse_event` without the fast path: decides every input, and every dead-letter reason."""
    try:
        d = _loads(raw)
    except Exception as e:      # orjson.JSONDecodeError; TypeError for odd input types
        d = _slow_loads(raw, str(e))
        if d.__class__ is Rejected:
            return d
    if d.__class__ is not dict:
        return _R_NOT_OBJECT
    get = d.get

    # ---- invalid_event -------------------------------------------------------------
    try:
        t = d["type"]
        event_id = d["event_id"]
        lead_id = d["lead_id"]
        occ = d["occurred_at"]
    except KeyError:
        t = get("type")
        event_id = get("event_id")
        lead_id = get("lead_id")
        occ = get("occurred_at")
    kind = _kind_of(t) if t.__class__ is str else None
    if kind is None:
        return _R_TYPE_MISSING if t is None else (_R_TYPE_NOT_STR if t.__class__ is not str else _R_TYPE_UNKNOWN)
    if expected_type is not None and t != expected_type:
        return _mismatch(expected_type)

    if (event_id.__class__ is not str or lead_id.__class__ is not str
            or not 0 < len(event_id) <= MAX_ID_CHARS or not 0 < len(lead_id) <= MAX_ID_CHARS):
        return _check_ids(d)

    # Inlined fast path of parse_timestamp for "YYYY-MM-DDTHH:MM:SSZ".
    if occ.__class__ is str:
        ts = _hour_get(occ[:13])
        mmss = _mmssz_get(occ[13:])
        if ts is None or mmss is None:
            ts = parse_timestamp(occ)
            if ts is None:
                return _R_OCC_BAD
        else:
            ts += mmss
    else:
        return _R_OCC_MISSING if occ is None else _R_OCC_NOT_STR

    pipeline = get("pipeline")
    owner = get("owner")
    team = get("team")
    source = get("source")
    reason = get("reason")
    if kind == UPDATED:                     # stage fields: ignored whatever their type
        stage = to_stage = from_stage = None
    else:
        stage = get("stage")
        to_stage = get("to_stage")
        from_stage = get("from_stage")
    if ((pipeline.__class__ is not str and pipeline is not None)
            or (owner.__class__ is not str and owner is not None)
            or (team.__class__ is not str and team is not None)
            or (source.__class__ is not str and source is not None)
            or (stage.__class__ is not str and stage is not None)
            or (to_stage.__class__ is not str and to_stage is not None)
            or (from_stage.__class__ is not str and from_stage is not None)
            or (reason.__class__ is not str and reason is not None)):
        for f, v in zip(_STR_FIELDS, (pipeline, owner, team, source, reason, stage, to_stage, from_stage)):
            if v.__class__ is not str and v is not None:
                return _R_NOT_STR[f]

    amount = get("amount")
    if amount is not None:
        c = amount.__class__
        if c is float or c is int:          # bool is not int here: its class is bool
            if amount < 0:
                return _R_AMOUNT_NEG
            amount = amount + 0.0           # int -> float, -0.0 -> 0.0
        else:
            return _R_AMOUNT_NOT_NUM

    currency = get("currency")
    if currency is not None and (currency.__class__ is not str or len(currency) != 3
                                 or not currency.isascii() or not currency.isalpha()):
        return _R_CURRENCY

    attributes = get("attributes")
    if attributes.__class__ is not dict and attributes is not None:
        return _R_ATTRIBUTES

    # ---- per type, then unknown_pipeline / unknown_stage ---------------------------
    if pipeline is None:
        pipeline = DEFAULT_PIPELINE
    if kind == STAGE_CHANGED:
        if to_stage is None:
            return _R_TO_STAGE_MISSING
        pc = config.pipelines.get(pipeline)
        if pc is None:
            return _R_UNKNOWN_PIPELINE
        idx = pc.stage_index.get(to_stage)
        if idx is None:
            return _R_UNKNOWN_TO_STAGE
        return _tuple_new(Event, (ts, STAGE_CHANGED, idx, False, amount, owner, team, None,
                              event_id, pipeline, lead_id))
    if kind == CREATED:
        pc = config.pipelines.get(pipeline)
        if pc is None:
            return _R_UNKNOWN_PIPELINE
        if stage is None:
            idx = 0
        else:
            idx = pc.stage_index.get(stage)
            if idx is None:
                return _R_UNKNOWN_STAGE
        return _tuple_new(Event, (ts, CREATED, idx, False, amount, owner, team, source,
                              event_id, pipeline, lead_id))
    if kind == UPDATED:
        if pipeline not in config.pipelines:
            return _R_UNKNOWN_PIPELINE
        return _tuple_new(Event, (ts, UPDATED, -1, False, amount, owner, team, source,
                              event_id, pipeline, lead_id))
    # deal.closed. `outcome` is typed on this type only: SPEC 1 lists it under deal.closed and not
    # among the fields typed wherever present, so on other types it is an ignored extra field.
    outcome = get("outcome")
    if outcome is None:
        return _R_OUTCOME_MISSING
    won = _won_get(outcome) if outcome.__class__ is str else None
    if won is None:
        return _R_OUTCOME
    if pipeline not in config.pipelines:
        return _R_UNKNOWN_PIPELINE
    return _tuple_new(Event, (ts, CLOSED, -1, won, amount, owner, team, None,
                              event_id, pipeline, lead_id))


# --------------------------------------------------------------------------------------
# The fast path: typed decoding for the common, valid event
# --------------------------------------------------------------------------------------
#
# msgspec decodes straight into typed structs, checking every field's type in C:
# about 2x faster than orjson.loads plus Python checks on realistic events. It only
# ever *accepts*: an input it refuses, or that a guard finds doubtful, goes to
# `_parse_exact`, which decides the reason. So `parse_event` returns exactly what
# `_parse_exact` returns (tests/schemas/test_parse_paths.py checks this on the corpus, on
# hand-made nasty inputs and on generated ones). Unknown fields are refused here
# (they take the exact path), so msgspec decodes, and so validates, every byte.
# Where its decoding is more lenient than SPEC 1, a guard sends the input on:
# - integers beyond double range (msgspec keeps them as Python ints): they need a
#   run of 309 digits, so only lines longer than _LONG_LINE are scanned for one;
# - nesting deeper than orjson's 1,024 levels: msgspec stops earlier (at Python's
#   recursion limit), and the long-line scan counts brackets too.

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]


class _Common(msgspec.Struct, tag_field="type", forbid_unknown_fields=True):
    event_id: _Id
    lead_id: _Id
    occurred_at: str
    pipeline: str | None = None
    owner: str | None = None
    team: str | None = None
    amount: float | None = None
    currency: str | None = None
    attributes: dict[str, Any] | None = None
    source: str | None = None
    reason: str | None = None
    stage: str | None = None
    to_stage: str | None = None
    from_stage: str | None = None


class _Created(_Common, tag="lead.created"):
    pass


class _StageChanged(_Common, tag="lead.stage_changed"):
    pass


class _Updated(_Common, tag="lead.updated"):
    # SPEC 1 (v2): stage fields on lead.updated are unknown extra fields, ignored whatever their type.
    stage: Any = None
    to_stage: Any = None
    from_stage: Any = None


class _Closed(_Common, tag="deal.closed"):
    outcome: Literal["won", "lost"] | None = None


_decode = msgspec.json.Decoder(_Created | _StageChanged | _Closed | _Updated).decode
# msgspec raises UnicodeDecodeError (not a DecodeError) for invalid UTF-8 in a string.
_DecodeErrors = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)
_STRUCT_OF_TYPE = {"lead.created": _Created, "lead.stage_changed": _StageChanged, "deal.closed": _Closed,
                   "lead.updated": _Updated}
_LONG_LINE = 400
_DIGITS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))   # digits -> "0", the rest -> " "
_LONG_DIGITS = b"0" * 300
_MAX_BRACKETS = 512


def decode_fast(raw: Any) -> _Common | None:
    """The fast path's first step: the input decoded (types checked), or None.

    Its `lead_id` is the one any parse of the input yields when the input is valid
    (the last "lead_id" key, like orjson), so `pulse report --jobs` routes by it.
    """
    if raw.__class__ is not bytes:
        return None
    if len(raw) > _LONG_LINE and (_LONG_DIGITS in raw.translate(_DIGITS)
                                  or raw.count(b"[") + raw.count(b"{") > _MAX_BRACKETS):
        return None
    try:
        return _decode(raw)
    except _DecodeErrors:
        return None


def _parse_fast(raw: Any, config: Any, expected_type: str | None) -> Event | None:
    """The Event of a plainly valid input, or None: let the exact path decide."""
    e = decode_fast(raw)
    return None if e is None else event_of(e, config, expected_type)


_GOOD_CURRENCIES: set[str] = set()     # currency codes event_of has found valid


def event_of(e: _Common, config: Any, expected_type: str | None) -> Event | None:
    """The fast path's second step: the Event of a decoded input, or None (the exact path decides)."""
    cls = e.__class__
    if expected_type is not None and _STRUCT_OF_TYPE.get(expected_type) is not cls:
        return None
    occ = e.occurred_at
    ts = _hour_get(occ[:13])                    # the common "...:MM:SSZ": two look-ups, as in _parse_exact
    mmss = _mmssz_get(occ[13:])
    if ts is None or mmss is None:
        ts = parse_timestamp(occ)
        if ts is None:
            return None
    else:
        ts += mmss
    amount = e.amount
    if amount is not None:
        if amount < 0:
            return None
        amount += 0.0                       # -0.0 -> 0.0, as the exact path does
    currency = e.currency
    if currency is not None and currency not in _GOOD_CURRENCIES:
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
            return None
        if len(_GOOD_CURRENCIES) < 4096:        # a few dozen in practice: one set look-up, not three calls
            _GOOD_CURRENCIES.add(currency)
    pipeline = e.pipeline
    if pipeline is None:
        pipeline = DEFAULT_PIPELINE
    pc = config.pipelines.get(pipeline)
    if pc is None:
        return None
    if cls is _StageChanged:
        to_stage = e.to_stage
        idx = pc.stage_index.get(to_stage) if to_stage is not None else None
        if idx is None:
            return None
        return _tuple_new(Event, (ts, STAGE_CHANGED, idx, False, amount, e.owner, e.team, None,
                              e.event_id, pipeline, e.lead_id))
    if cls is _Created:
        stage = e.stage
        idx = 0 if stage is None else pc.stage_index.get(stage)
        if idx is None:
            return None
        return _tuple_new(Event, (ts, CREATED, idx, False, amount, e.owner, e.team, e.source,
                              e.event_id, pipeline, e.lead_id))
    if cls is _Updated:
        return _tuple_new(Event, (ts, UPDATED, -1, False, amount, e.owner, e.team, e.source,
                              e.event_id, pipeline, e.lead_id))
    outcome = e.outcome
    if outcome is None:
        return None
    return _tuple_new(Event, (ts, CLOSED, -1, outcome == "won", amount, e.owner, e.team, None,
                              e.event_id, pipeline, e.lead_id))


# For callers that inline parse_event on their hot path (PulseEngine.ingest): its exact step.
parse_exact = _parse_exact


def parse_event(raw: bytes | str, config: Any, expected_type: str | None = None) -> Event | Rejected:
    """Parse one input (a Kafka message value or one JSON Lines line without its newline).

    `config` is a `pulse.config.Config`; `expected_type` is the event type the topic
    carries (None for file replays: no topic check). Returns an `Event`, or a
    `Rejected` whose reason is the first of SPEC's table that applies:
    invalid_json, invalid_event, unknown_pipeline, unknown_stage.
    Never raises for any bytes or text.
    """
    ev = _parse_fast(raw, config, expected_type)
    if ev is not None:
        return ev
    return _parse_exact(raw, config, expected_type)
