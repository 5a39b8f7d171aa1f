"""The event parser's fast path: typed decoding (msgspec) of the common, valid event.

msgspec decodes straight into typed structs, checking every field's type in C:
about 2x faster than orjson.loads plus Python checks on realistic events. It only
ever *accepts*: an input it refuses, or that a guard finds doubtful, goes to
`_parse_exact`, which decides the reason. So `parse_event` returns exactly what
`_parse_exact` returns (tests/schemas/test_parse_paths.py checks this on the corpus, on
hand-made nasty inputs and on generated ones). Unknown fields are refused here
(they take the exact path), so msgspec decodes, and so validates, every byte.
Where its decoding is more lenient than SPEC 1, a guard sends the input on:
- integers beyond double range (msgspec keeps them as Python ints): they need a
  run of 309 digits, so only lines longer than LONG_LINE are scanned for one;
- nesting deeper than orjson's 1,024 levels: msgspec stops earlier (at Python's
  recursion limit), and the long-line scan counts brackets too.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from .timestamps import _HOUR_CACHE, _MMSSZ, parse_timestamp
from .types import CLOSED, CREATED, DEFAULT_PIPELINE, MAX_ID_CHARS, STAGE_CHANGED, UPDATED, Event

_tuple_new = tuple.__new__        # builds an Event without NamedTuple.__new__'s extra frame
_hour_get = _HOUR_CACHE.get       # the cache is only ever cleared in place, never replaced
_mmssz_get = _MMSSZ.get


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


# decode_fast's steps, for a caller that inlines it (PulseEngine.accept_line): `decode(raw)` of
# bytes not `doubtful` when longer than LONG_LINE, DECODE_ERRORS caught.
decode = msgspec.json.Decoder(_Created | _StageChanged | _Closed | _Updated).decode
# msgspec raises UnicodeDecodeError (not a DecodeError) for invalid UTF-8 in a string.
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)
_STRUCT_OF_TYPE = {"lead.created": _Created, "lead.stage_changed": _StageChanged, "deal.closed": _Closed,
                   "lead.updated": _Updated}
LONG_LINE = 400
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
    if len(raw) > LONG_LINE and doubtful(raw):
        return None
    try:
        return decode(raw)
    except DECODE_ERRORS:
        return None


def doubtful(raw: bytes) -> bool:
    """Whether a line longer than LONG_LINE may hold what msgspec decodes more leniently than SPEC 1."""
    return _LONG_DIGITS in raw.translate(_DIGITS) or raw.count(b"[") + raw.count(b"{") > _MAX_BRACKETS


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
