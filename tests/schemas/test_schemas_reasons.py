"""SPEC section 1: the run-time parser's dead-letter reasons.

(b) one test per dead-letter reason and per invalid_event rule
(c) precedence between reasons

The parser and the published schema files must agree, and both must follow the contract
(tests/support/schema_files.py loads the schema files).
"""
from __future__ import annotations

import math

import pytest

from pulse.schemas.parse import parse_event
from pulse.schemas.types import (
    CLOSED,
    CREATED,
    INVALID_EVENT,
    INVALID_JSON,
    STAGE_CHANGED,
    UNKNOWN_PIPELINE,
    UNKNOWN_STAGE,
    Event,
    Rejected,
)
from tests.support.event_cases import (
    ABSENT,
    CONFIG,
    ENTERPRISE_STAGES,
    TS,
    TS_US,
    TYPES,
    enc,
    ev,
    make_config,
    reason_of,
)
from tests.support.schema_files import schema_valid


# --------------------------------------------------------------------------------------
# (b) one test per reason and per invalid_event rule
# --------------------------------------------------------------------------------------

def test_valid_events_and_their_fields():
    r = parse_event(enc(ev("lead.created", stage="qualified", source="web", owner="o", team="t",
                              amount=5, currency="EUR", attributes={"email": "a@b.c"})), CONFIG)
    assert r == Event(ts=TS_US, kind=CREATED, event_id="e-1", pipeline="default", lead_id="L-1", stage=2, won=False,
                      owner="o", team="t", amount=5.0, source="web")
    assert type(r.amount) is float
    r = parse_event(enc(ev("lead.created")), CONFIG)
    assert r.stage == 0 and r.pipeline == "default" and r.amount is None and r.source is None
    r = parse_event(enc(ev("lead.stage_changed", to_stage="contract", pipeline="enterprise",
                           from_stage="anything", source="ignored")), CONFIG)
    assert r == Event(ts=TS_US, kind=STAGE_CHANGED, event_id="e-1", pipeline="enterprise", lead_id="L-1", stage=3,
                      won=False, owner=None, team=None, amount=None, source=None)
    r = parse_event(enc(ev("deal.closed", outcome="won", amount=1.5, reason="x")), CONFIG)
    assert r == Event(ts=TS_US, kind=CLOSED, event_id="e-1", pipeline="default", lead_id="L-1", stage=-1, won=True,
                      owner=None, team=None, amount=1.5, source=None)
    r = parse_event(enc(ev("deal.closed", outcome="lost")), CONFIG)
    assert r.won is False and r.stage == -1


def test_accepts_bytes_bytearray_memoryview_and_str():
    raw = enc(ev())
    for x in (raw, bytearray(raw), memoryview(raw), raw.decode()):
        assert isinstance(parse_event(x, CONFIG), Event)


def test_amount_normalisation():
    assert parse_event(b'{"type":"lead.created","event_id":"e","lead_id":"L","occurred_at":"%s","amount":-0.0}'
                       % TS.encode(), CONFIG).amount == 0.0
    r = parse_event(b'{"type":"lead.created","event_id":"e","lead_id":"L","occurred_at":"%s","amount":-0.0}'
                    % TS.encode(), CONFIG)
    assert math.copysign(1, r.amount) == 1.0
    r = parse_event(enc(ev(amount=10**30)), CONFIG)
    assert r.amount == 1e30 and type(r.amount) is float


def test_duplicate_keys_last_wins():
    raw = b'{"type":"deal.closed","outcome":"won","type":"lead.created","event_id":"e","lead_id":"L","occurred_at":"%s"}'
    r = parse_event(raw % TS.encode(), CONFIG)
    assert isinstance(r, Event) and r.kind == CREATED


def test_big_integers_within_double_range_are_accepted():
    raw = enc(ev())[:-1] + b', "amount": 123456789012345678901234567890, "x": -99999999999999999999999}'
    r = parse_event(raw, CONFIG)
    assert isinstance(r, Event) and r.amount == 1.2345678901234568e29


def test_slow_json_path_agrees_on_big_integers():
    # Whatever orjson does with big integers, the strict fallback must accept them too.
    from pulse.schemas.strict_json import strict_loads
    obj = strict_loads(b'{"a": 123456789012345678901234567890, "b": 18446744073709551615}', "")
    assert obj == {"a": 1.2345678901234568e29, "b": 18446744073709551615}
    for bad, why in [(b'{"a": NaN}', "NaN"), (b'{"a": 1e400}', "double"), (b'{"a": -Infinity}', "NaN"),
                     (b'{"a": "\\ud800"}', "surrogate"), (b'\xef\xbb\xbf{}', "byte-order"),
                     (b'{"a": "\xed\xa0\x80"}', "UTF-8"), (b'{"a": 1' + b'0' * 400 + b'}', "double"),
                     (b'{"a": 1,}', "unparseable"), (b'{"a": "\x01"}', "unparseable"),
                     ('{"a": "\ud800"}', "UTF-8"), ('\ufeff{}', "byte-order")]:
        r = strict_loads(bad, "")
        assert isinstance(r, Rejected) and r.reason == INVALID_JSON and why in r.detail, (bad, r)


@pytest.mark.parametrize("raw,why", [
    (b"\xff\xfe", "UTF-8"),
    (b'{"a": "\xe9"}', "UTF-8"),
    (b"{", "unparseable"),
    (b"[]", "object"),
    (b'"x"', "object"),
    (b"null", "object"),
    (b"\xef\xbb\xbf{}", "byte-order"),
    (b'{"a": NaN}', "NaN"),
    (b'{"a": Infinity}', "NaN"),
    (b'{"a": 1e400}', "double"),
    (b'{"a": "\\ud800"}', "surrogate"),
])
def test_invalid_json(raw, why):
    r = parse_event(raw, CONFIG)
    assert r.reason == INVALID_JSON and why in r.detail


def test_non_bytes_input_is_invalid_json_not_an_exception():
    for x in (None, 5, 1.5, ["{}"], {"type": "lead.created"}):
        assert parse_event(x, CONFIG).reason == INVALID_JSON


def test_str_input_with_lone_surrogate_character_is_invalid_json():
    text = enc(ev(owner="X")).decode().replace('"X"', '"\ud800"')
    assert parse_event(text, CONFIG).reason == INVALID_JSON


# One test per invalid_event rule, each also naming the field in `detail`.
INVALID_EVENT_RULES = [
    ("type missing", ev(type=ABSENT), "type"),
    ("type null", ev(type=None), "type"),
    ("type wrong type", ev(type=1), "type"),
    ("type unknown", ev(type="lead.deleted"), "type"),
    ("event_id missing", ev(event_id=ABSENT), "event_id"),
    ("event_id null", ev(event_id=None), "event_id"),
    ("event_id not a string", ev(event_id=7), "event_id"),
    ("event_id empty", ev(event_id=""), "event_id"),
    ("event_id 129 code points", ev(event_id="\U0001F600" * 129), "event_id"),
    ("lead_id missing", ev(lead_id=ABSENT), "lead_id"),
    ("lead_id null", ev(lead_id=None), "lead_id"),
    ("lead_id not a string", ev(lead_id=["L"]), "lead_id"),
    ("lead_id empty", ev(lead_id=""), "lead_id"),
    ("lead_id 129 chars", ev(lead_id="L" * 129), "lead_id"),
    ("occurred_at missing", ev(occurred_at=ABSENT), "occurred_at"),
    ("occurred_at null", ev(occurred_at=None), "occurred_at"),
    ("occurred_at not a string", ev(occurred_at=1772360100), "occurred_at"),
    ("occurred_at without offset", ev(occurred_at="2026-03-01T10:15:00"), "occurred_at"),
    ("occurred_at unparseable", ev(occurred_at="yesterday"), "occurred_at"),
    ("amount negative", ev(amount=-1), "amount"),
    ("amount string", ev(amount="12"), "amount"),
    ("amount true", ev(amount=True), "amount"),
    ("amount false", ev(amount=False), "amount"),
    ("currency 2 letters", ev(currency="EU"), "currency"),
    ("currency non-ASCII letter", ev(currency="\u00c9UR"), "currency"),
    ("currency digit", ev(currency="E1R"), "currency"),
    ("currency number", ev(currency=978), "currency"),
    ("attributes array", ev(attributes=[]), "attributes"),
    ("attributes string", ev(attributes="x"), "attributes"),
    ("outcome missing", ev("deal.closed", outcome=ABSENT), "outcome"),
    ("outcome null", ev("deal.closed", outcome=None), "outcome"),
    ("outcome other", ev("deal.closed", outcome="draw"), "outcome"),
    ("outcome wrong case", ev("deal.closed", outcome="Won"), "outcome"),
    ("outcome bool", ev("deal.closed", outcome=True), "outcome"),
    ("to_stage missing", ev("lead.stage_changed", to_stage=ABSENT), "to_stage"),
    ("to_stage null", ev("lead.stage_changed", to_stage=None), "to_stage"),
    ("to_stage not a string", ev("lead.stage_changed", to_stage=3), "to_stage"),
    ("pipeline not a string", ev(pipeline=1), "pipeline"),
    ("owner not a string", ev(owner=1), "owner"),
    ("team not a string", ev(team=True), "team"),
    ("source not a string", ev(source=["web"]), "source"),
    ("reason not a string", ev("deal.closed", reason={}), "reason"),
    ("stage not a string", ev(stage=0), "stage"),
    ("from_stage not a string", ev("lead.stage_changed", from_stage=1), "from_stage"),
]


@pytest.mark.parametrize("obj,field", [pytest.param(o, f, id=n) for n, o, f in INVALID_EVENT_RULES])
def test_invalid_event_rule(obj, field):
    r = parse_event(enc(obj), CONFIG)
    assert isinstance(r, Rejected) and r.reason == INVALID_EVENT
    assert r.detail.startswith(field + ":"), r.detail
    assert not schema_valid(obj)


def test_type_must_match_the_topic():
    for t in TYPES:
        raw = enc(ev(t))
        assert reason_of(raw, expected_type=t) is None
        assert reason_of(raw) is None
        for other in TYPES:
            if other != t:
                r = parse_event(raw, CONFIG, other)
                assert r.reason == INVALID_EVENT and r.detail.startswith("type:")


def test_unknown_pipeline():
    for t in TYPES:
        for p in ("nope", "Default", "", "default "):
            r = parse_event(enc(ev(t, pipeline=p)), CONFIG)
            assert r.reason == UNKNOWN_PIPELINE and r.detail.startswith("pipeline:")
    # the default pipeline must be configured when `pipeline` is absent
    only_enterprise = make_config({"enterprise": ENTERPRISE_STAGES})
    assert reason_of(enc(ev()), only_enterprise) == UNKNOWN_PIPELINE


def test_unknown_stage():
    r = parse_event(enc(ev(stage="nirvana")), CONFIG)
    assert r.reason == UNKNOWN_STAGE and r.detail.startswith("stage:")
    assert reason_of(enc(ev(stage="New"))) == UNKNOWN_STAGE                  # case-sensitive
    assert reason_of(enc(ev(stage="demo"))) == UNKNOWN_STAGE                 # another pipeline's
    r = parse_event(enc(ev("lead.stage_changed", to_stage="nirvana")), CONFIG)
    assert r.reason == UNKNOWN_STAGE and r.detail.startswith("to_stage:")
    # from_stage is never checked; nor is `stage` on other types
    assert reason_of(enc(ev("lead.stage_changed", from_stage="nirvana"))) is None
    assert reason_of(enc(ev("lead.stage_changed", stage="nirvana"))) is None
    assert reason_of(enc(ev("deal.closed", stage="nirvana", to_stage="nirvana"))) is None
    assert reason_of(enc(ev("lead.created", to_stage="nirvana"))) is None


PII = "SECRET-PII-\u00e9@example.com"


def test_detail_never_echoes_values():
    objs = [ev(**{f: PII}) for f in ("type", "occurred_at", "currency", "pipeline", "stage")]
    objs += [ev(event_id=PII * 10), ev(lead_id=PII * 10), ev("deal.closed", outcome=PII),
             ev("lead.stage_changed", to_stage=PII), ev(amount=PII), ev(attributes=PII)]
    objs += [ev(**{f: [PII]}) for f in ("owner", "team", "source", "reason", "from_stage")]
    for o in objs:
        for expected_type in (None, "deal.closed"):
            r = parse_event(enc(o), CONFIG, expected_type)
            assert isinstance(r, Rejected), o
            assert "SECRET" not in r.detail and "example" not in r.detail
    for raw in (b'{"SECRET": NaN}', b'{"a": "SECRET\\ud800"}', b'SECRET', b'{"SECRET": 1e999}'):
        r = parse_event(raw, CONFIG)
        assert r.reason == INVALID_JSON and "SECRET" not in r.detail


# --------------------------------------------------------------------------------------
# (c) precedence: an input with several faults gets the first reason of the table
# --------------------------------------------------------------------------------------

def test_precedence_invalid_json_before_everything():
    bad = enc(ev(type="nope", pipeline="nope", stage="nope"))[:-1] + b', "amount": NaN}'
    assert reason_of(bad) == INVALID_JSON
    assert reason_of(b"\xef\xbb\xbf" + enc(ev(event_id=""))) == INVALID_JSON
    assert reason_of(enc([ev(pipeline="nope")])) == INVALID_JSON


def test_precedence_invalid_event_before_unknown_pipeline_and_stage():
    cases = [
        ev("lead.created", pipeline="nope", stage="nope", amount=-1),
        ev("lead.created", pipeline="nope", occurred_at="2026-03-01T10:15:00"),
        ev("lead.stage_changed", pipeline="nope", to_stage="nope", currency="EURO"),
        ev("lead.stage_changed", pipeline="nope", to_stage=ABSENT),
        ev("deal.closed", pipeline="nope", outcome=ABSENT),
        ev("deal.closed", pipeline="nope", outcome="maybe"),
        ev("lead.created", stage="nope", attributes=[1]),
        ev("lead.created", stage="nope", owner=5),
        ev("lead.stage_changed", to_stage="nope", event_id=""),
    ]
    for c in cases:
        assert reason_of(enc(c)) == INVALID_EVENT, c
    # topic mismatch is invalid_event too, so it also beats the configuration checks
    assert reason_of(enc(ev("lead.created", pipeline="nope")), expected_type="deal.closed") == INVALID_EVENT


def test_precedence_unknown_pipeline_before_unknown_stage():
    assert reason_of(enc(ev("lead.created", pipeline="nope", stage="nope"))) == UNKNOWN_PIPELINE
    assert reason_of(enc(ev("lead.stage_changed", pipeline="nope", to_stage="nope"))) == UNKNOWN_PIPELINE
    # a stage of the default pipeline that the named pipeline does not have
    assert reason_of(enc(ev("lead.created", pipeline="enterprise", stage="new"))) == UNKNOWN_STAGE
