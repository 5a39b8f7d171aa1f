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

`parse_event` tries the fast path first (schemas/fast_path.py: msgspec, for the common
valid event) and decides everything else here, on the exact path (`parse_exact`).
Timestamps are schemas/timestamps.py's; JSON that orjson refuses, schemas/strict_json.py's."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from .fast_path import _parse_fast
from .strict_json import strict_loads
from .timestamps import parse_timestamp
from .types import (
    CLOSED,
    CREATED,
    DEFAULT_PIPELINE,
    INVALID_EVENT,
    INVALID_JSON,
    KIND_BY_TYPE,
    MAX_ID_CHARS,
    STAGE_CHANGED,
    UNKNOWN_PIPELINE,
    UNKNOWN_STAGE,
    UPDATED,
    Event,
    Rejected,
)

if TYPE_CHECKING:
    from .config import Config


__all__ = ["parse_event", "parse_exact"]

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
_won_get = _R_WON_LOST.get


def _parse_exact(raw: bytes | str, config: Config, expected_type: str | None = None) -> Event | Rejected:
    """`parse_event` without the fast path: decides every input, and every dead-letter reason."""
    try:
        d = _loads(raw)
    except Exception as e:      # orjson.JSONDecodeError; TypeError for odd input types
        d = strict_loads(raw, str(e))
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

    if occ.__class__ is str:
        ts = parse_timestamp(occ)
        if ts is None:
            return _R_OCC_BAD
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

    # ---- per type: its own fields (invalid_event), then unknown_pipeline, unknown_stage ---
    if pipeline is None:
        pipeline = DEFAULT_PIPELINE
    won = False
    if kind == STAGE_CHANGED:
        if to_stage is None:
            return _R_TO_STAGE_MISSING
    elif kind == CLOSED:
        # `outcome` is typed on this type only: SPEC 1 lists it under deal.closed and not among
        # the fields typed wherever present, so on other types it is an ignored extra field.
        outcome = get("outcome")
        if outcome is None:
            return _R_OUTCOME_MISSING
        won = _won_get(outcome) if outcome.__class__ is str else None
        if won is None:
            return _R_OUTCOME
    pc = config.pipelines.get(pipeline)
    if pc is None:
        return _R_UNKNOWN_PIPELINE
    idx = -1
    if kind == STAGE_CHANGED:
        idx = pc.stage_index.get(to_stage)
        if idx is None:
            return _R_UNKNOWN_TO_STAGE
    elif kind == CREATED and stage is not None:
        idx = pc.stage_index.get(stage)
        if idx is None:
            return _R_UNKNOWN_STAGE
    elif kind == CREATED:
        idx = 0
    # SPEC 1: `source` belongs to lead.created and lead.updated only
    return _tuple_new(Event, (ts, kind, idx, won, amount, owner, team,
                              source if kind == CREATED or kind == UPDATED else None, event_id, pipeline, lead_id))


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
