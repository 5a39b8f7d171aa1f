"""SPEC section 1: the run-time parser (`pulse.schemas.parse`) and the published JSON
Schema files (`schemas/*.schema.json`) must agree, and both must follow the contract.

(a) corpus agreement: schema-valid <=> parse_event does not say invalid_event
(b) one test per dead-letter reason and per invalid_event rule
(c) precedence between reasons
(d) timestamps
(e) property tests: parse_event never raises
"""
from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pulse.config import Config
from pulse.schemas import generate
from pulse.schemas.parse import format_timestamp, parse_event, parse_timestamp
from pulse.schemas.types import (
    CLOSED,
    CREATED,
    INVALID_EVENT,
    INVALID_JSON,
    REASONS,
    STAGE_CHANGED,
    UNKNOWN_PIPELINE,
    UNKNOWN_STAGE,
    Event,
    Rejected,
)
from tests.support.event_cases import (
    ABSENT,
    CONFIG,
    CORPUS_CASES,
    DEFAULT_STAGES,
    ENTERPRISE_STAGES,
    MUTATIONS,
    TS,
    TS_US,
    TYPES,
    enc,
    ev,
    make_config,
    reason_of,
)

SCHEMA_DIR = Path(generate.__file__).resolve().parent


# --------------------------------------------------------------------------------------
# schema files
# --------------------------------------------------------------------------------------

def _load_schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))


SCHEMA_FILES = ("event.schema.json",) + tuple(f"{t}.schema.json" for t in TYPES)
COMBINED = Draft202012Validator(_load_schema("event.schema.json"))
PER_TYPE = {t: Draft202012Validator(_load_schema(f"{t}.schema.json")) for t in TYPES}


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_files_are_valid_draft_2020_12_with_docs(name):
    doc = _load_schema(name)
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["title"] and doc["description"]
    for prop in doc["properties"].values():
        assert prop.get("description"), prop


def test_schema_files_are_up_to_date():
    assert generate.main(["--check"]) == 0, "run: python -m pulse.schemas.generate"


def schema_valid(obj: dict) -> bool:
    ok = COMBINED.is_valid(obj)
    t = obj.get("type")
    if isinstance(t, str) and t in PER_TYPE:  # the per-type file must say the same as the combined one
        assert PER_TYPE[t].is_valid(obj) == ok, obj
    return ok


# --------------------------------------------------------------------------------------
# (a) corpus: hand-written cases (tests/schemas/corpus/events.jsonl) and generated mutations
# --------------------------------------------------------------------------------------

def test_corpus_is_big_enough_and_covers_every_outcome():
    expects = [p.values[1] for p in CORPUS_CASES]
    assert len(expects) >= 300
    assert set(expects) == {"valid", *REASONS}


@pytest.mark.parametrize("raw,expect", CORPUS_CASES)
def test_corpus_expected_reason(raw, expect):
    got = reason_of(raw)
    assert (got or "valid") == expect
    # and the same bytes given as text (a str that is valid UTF-8) give the same answer
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    assert (reason_of(text) or "valid") == expect


def _all_names_config(objs) -> Config:
    """A configuration that knows every pipeline and stage name used in `objs`."""
    pipelines, stages = {"default"}, set(DEFAULT_STAGES)
    for o in objs:
        if isinstance(o.get("pipeline"), str):
            pipelines.add(o["pipeline"])
        for f in ("stage", "to_stage"):
            if isinstance(o.get(f), str):
                stages.add(o[f])
    names = tuple(sorted(stages))
    return make_config({p: names for p in pipelines})


def _json_object(raw):
    """The decoded object when `raw` is a JSON object parse_event accepts as JSON."""
    if reason_of(raw) == INVALID_JSON:
        return None
    obj = json.loads(raw)
    assert isinstance(obj, dict)
    return obj


def test_corpus_schema_agreement():
    """(a) schema-valid <=> parse_event does not return invalid_event, for JSON objects."""
    objs = []
    raws = []
    for p in CORPUS_CASES:
        obj = _json_object(p.values[0])
        if obj is not None:
            objs.append(obj)
            raws.append(p.values[0])
    for m in MUTATIONS:
        objs.append(m)
        raws.append(enc(m))
    assert len(objs) > 1500
    config = _all_names_config(objs)
    disagreements = []
    n_valid = n_invalid = 0
    for obj, raw in zip(objs, raws):
        sv = schema_valid(obj)
        r = parse_event(raw, config)
        parser_structurally_valid = not (isinstance(r, Rejected) and r.reason == INVALID_EVENT)
        assert not (isinstance(r, Rejected) and r.reason == INVALID_JSON)
        n_valid += sv
        n_invalid += not sv
        if sv != parser_structurally_valid:
            disagreements.append((obj, sv, r))
    assert not disagreements, disagreements[:5]
    assert n_valid > 200 and n_invalid > 500


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
    from pulse.schemas.parse import _slow_loads
    obj = _slow_loads(b'{"a": 123456789012345678901234567890, "b": 18446744073709551615}', "")
    assert obj == {"a": 1.2345678901234568e29, "b": 18446744073709551615}
    for bad, why in [(b'{"a": NaN}', "NaN"), (b'{"a": 1e400}', "double"), (b'{"a": -Infinity}', "NaN"),
                     (b'{"a": "\\ud800"}', "surrogate"), (b'\xef\xbb\xbf{}', "byte-order"),
                     (b'{"a": "\xed\xa0\x80"}', "UTF-8"), (b'{"a": 1' + b'0' * 400 + b'}', "double"),
                     (b'{"a": 1,}', "unparseable"), (b'{"a": "\x01"}', "unparseable"),
                     ('{"a": "\ud800"}', "UTF-8"), ('\ufeff{}', "byte-order")]:
        r = _slow_loads(bad, "")
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


# --------------------------------------------------------------------------------------
# (d) timestamps
# --------------------------------------------------------------------------------------

TS_RE = re.compile(generate.TIMESTAMP_PATTERN)


def schema_ts_ok(s: str) -> bool:
    return TS_RE.search(s) is not None and "\n" not in s


def _dt_us(d: dt.datetime) -> int:
    delta = d - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@pytest.mark.parametrize("s,expected", [
    ("2026-03-01T10:15:00Z", "2026-03-01T10:15:00Z"),
    ("2026-03-01T10:15:00.5Z", "2026-03-01T10:15:00.500000Z"),
    ("2026-03-01T10:15:00.123456Z", "2026-03-01T10:15:00.123456Z"),
    ("2026-03-01T10:15:00.1234569Z", "2026-03-01T10:15:00.123456Z"),            # truncated, not rounded
    ("2026-03-01T10:15:00.9999999999999Z", "2026-03-01T10:15:00.999999Z"),
    ("2026-03-01T10:15:00.000000999Z", "2026-03-01T10:15:00Z"),
    ("2026-03-01T10:15:00.000000Z", "2026-03-01T10:15:00Z"),
    ("2026-03-01T12:15:00+02:00", "2026-03-01T10:15:00Z"),
    ("2026-03-01T08:15:00-02:00", "2026-03-01T10:15:00Z"),
    ("2026-03-01T10:15:00+00:00", "2026-03-01T10:15:00Z"),
    ("2026-03-01T10:15:00-00:00", "2026-03-01T10:15:00Z"),
    ("2026-03-01T00:30:00.25+05:30", "2026-02-28T19:00:00.250000Z"),
    ("2026-03-01T00:00:00+23:59", "2026-02-28T00:01:00Z"),
    ("2026-12-31T23:00:00-23:59", "2027-01-01T22:59:00Z"),
    ("2024-02-29T12:00:00Z", "2024-02-29T12:00:00Z"),
    ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00Z"),
    ("1600-02-29T00:00:00Z", "1600-02-29T00:00:00Z"),
    ("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"),
    ("1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.999999Z"),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),
    ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999Z"),
])
def test_timestamp_valid(s, expected):
    us = parse_timestamp(s)
    assert us is not None
    assert format_timestamp(us) == expected
    assert parse_timestamp(expected) == us
    assert schema_ts_ok(s)
    # against the standard library (which rounds nothing when given <= 6 digits)
    frac_cut = re.sub(r"\.([0-9]{6})[0-9]+", r".\1", s).replace("Z", "+00:00")
    assert us == _dt_us(dt.datetime.fromisoformat(frac_cut))
    e = parse_event(enc(ev(occurred_at=s)), CONFIG)
    assert isinstance(e, Event) and e.ts == us


def test_timestamp_epoch_values():
    assert parse_timestamp("1970-01-01T00:00:00Z") == 0
    assert parse_timestamp("1970-01-01T00:00:00.000001Z") == 1
    assert parse_timestamp("1969-12-31T23:59:59.999999Z") == -1
    assert parse_timestamp(TS) == TS_US
    assert parse_timestamp("2026-03-01T10:15:00.1234567Z") == TS_US + 123456


@pytest.mark.parametrize("s", [
    "2026-03-01T10:15:00", "2026-03-01T10:15:00.5", "2026-03-01t10:15:00Z", "2026-03-01T10:15:00z",
    "2026-03-01 10:15:00Z", "2026-03-01T10:15Z", "2026-03-01T10:15:60Z", "2026-03-01T23:59:60Z",
    "2026-03-01T24:00:00Z", "2026-03-01T10:60:00Z", "2026-03-01T10:15:00+24:00", "2026-03-01T10:15:00-24:00",
    "2026-03-01T10:15:00+23:60", "2026-03-01T10:15:00+0100", "2026-03-01T10:15:00+01", "2026-03-01",
    "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
    "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-01-00T00:00:00Z",
    "0000-01-01T00:00:00Z", "0000-02-29T00:00:00Z", "2026-03-01T10:15:00.Z", "2026-03-01T10:15:00.+01:00",
    "2026-03-01T10:15:00,5Z", "\uff12\uff10\uff12\uff16-03-01T10:15:00Z", "2026-03-01T10:15:0\u0661Z",
    "2026-03-01T10:15:00.\u0661\u0662Z", "2026-03-01T10:15:00.\u00b2Z", "2026-03-01T10:15:00Z\n",
    " 2026-03-01T10:15:00Z", "2026-03-01T10:15:00Z ", "12026-03-01T10:15:00Z", "+2026-03-01T10:15:00Z",
    "2026-03-01T10:15:00+01:00Z", "2026-03-01T10:15:00ZZ", "2026-03-01T10:15:00\u221201:00",
    "2026-03-01T10:15:00.1_0Z", "2026-03-01T+1:15:00Z", "2026-03-01T1_:15:00Z", "2026-03-01T10:15:00.1 Z",
    "", "Z", "2026-03-01T10:15:00.",
])
def test_timestamp_invalid(s):
    assert parse_timestamp(s) is None
    assert not schema_ts_ok(s)
    assert reason_of(enc(ev(occurred_at=s))) == INVALID_EVENT


def test_parse_timestamp_non_strings():
    for x in (None, 5, 1.5, b"2026-03-01T10:15:00Z", ["2026-03-01T10:15:00Z"]):
        assert parse_timestamp(x) is None


def test_every_calendar_day_of_selected_years():
    """The parser, the schema pattern and the calendar agree on every month/day pair."""
    for y in (1, 4, 100, 400, 1900, 1970, 2000, 2023, 2024, 2100, 9996, 9999):
        for m in range(0, 14):
            for d in range(0, 33):
                s = f"{y:04d}-{m:02d}-{d:02d}T12:34:56.789+01:00"
                try:
                    expected = dt.datetime(y, m, d, 12, 34, 56, 789000,
                                           tzinfo=dt.timezone(dt.timedelta(hours=1)))
                except ValueError:
                    expected = None
                got = parse_timestamp(s)
                assert schema_ts_ok(s) == (expected is not None), s
                assert got == (None if expected is None else _dt_us(expected)), s


def test_format_timestamp():
    assert format_timestamp(0) == "1970-01-01T00:00:00Z"
    assert format_timestamp(1) == "1970-01-01T00:00:00.000001Z"
    assert format_timestamp(-1) == "1969-12-31T23:59:59.999999Z"
    assert format_timestamp(TS_US) == TS
    assert format_timestamp(TS_US + 250_000) == "2026-03-01T10:15:00.250000Z"


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=_dt_us(dt.datetime(1, 1, 1, tzinfo=dt.timezone.utc)),
                   max_value=_dt_us(dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc))))
def test_format_parse_round_trip(us):
    s = format_timestamp(us)
    assert parse_timestamp(s) == us
    d = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=us)
    assert dt.datetime.fromisoformat(s.replace("Z", "+00:00")) == d


_TS_ALPHABET = "0123456789-:T.Z+ tz\u0661\n"


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.text(_TS_ALPHABET, max_size=32),
    st.builds(lambda y, mo, d, h, mi, s, frac, off: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{off}",
              st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
              st.integers(0, 61), st.integers(0, 61),
              st.one_of(st.just(""), st.text("0123456789", min_size=0, max_size=12).map(lambda f: "." + f)),
              st.one_of(st.sampled_from(["Z", "z", "", "+00:00", "-00:00"]),
                        st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}", st.sampled_from("+-"),
                                  st.integers(0, 25), st.integers(0, 61)))),
))
def test_timestamp_parser_agrees_with_schema_pattern(s):
    got = parse_timestamp(s)
    assert (got is not None) == schema_ts_ok(s), s
    if got is not None:
        m = re.fullmatch(r"(.{19})(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})", s)
        frac = (m.group(2) or "")[:6].ljust(6, "0")
        off = "+00:00" if m.group(3) == "Z" else m.group(3)
        assert got == _dt_us(dt.datetime.fromisoformat(f"{m.group(1)}.{frac}{off}"))


# --------------------------------------------------------------------------------------
# (e) properties: parse_event never raises, always answers Event or Rejected(REASONS)
# --------------------------------------------------------------------------------------

def _check_answer(r):
    assert isinstance(r, (Event, Rejected))
    if isinstance(r, Rejected):
        assert r.reason in REASONS and isinstance(r.detail, str) and r.detail
    return r


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([None, *TYPES]))
def test_never_raises_on_arbitrary_bytes(raw, expected_type):
    _check_answer(parse_event(raw, CONFIG, expected_type))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_never_raises_on_arbitrary_text(text):
    _check_answer(parse_event(text, CONFIG))


_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**300, 10**300), st.floats(),
                          st.text(max_size=20))
_json_values = st.recursive(
    _json_scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=8), kids, max_size=4)),
    max_leaves=20)


def _contains_non_finite(v) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    if isinstance(v, list):
        return any(map(_contains_non_finite, v))
    if isinstance(v, dict):
        return any(map(_contains_non_finite, v.values()))
    return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json_values)
def test_never_raises_on_arbitrary_json_values(value):
    raw = json.dumps(value).encode()               # NaN/Infinity written as such
    r = _check_answer(parse_event(raw, CONFIG))
    if not isinstance(value, dict) or _contains_non_finite(value):
        assert isinstance(r, Rejected) and r.reason == INVALID_JSON
    else:
        assert not (isinstance(r, Rejected) and r.reason == INVALID_JSON)


_FIELD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**20), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5), st.sampled_from([TS, "2026-03-01T10:15:00", "2024-02-29T23:59:59.9999999-23:59",
                                          "won", "lost", "EUR", "new", "qualified", "e" * 128, "e" * 129,
                                          *TYPES]),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
_FIELD_NAMES = ["type", "event_id", "lead_id", "occurred_at", "pipeline", "owner", "team", "amount",
                "currency", "attributes", "stage", "source", "to_stage", "from_stage", "outcome", "reason", "x"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TYPES), st.dictionaries(st.sampled_from(_FIELD_NAMES), _FIELD_VALUES, max_size=5),
       st.lists(st.sampled_from(_FIELD_NAMES), max_size=2))
def test_schema_agreement_on_generated_events(t, overrides, removed):
    obj = ev(t)
    obj.update(overrides)
    for f in removed:
        obj.pop(f, None)
    config = _all_names_config([obj])
    r = _check_answer(parse_event(enc(obj), config))
    structurally_valid = not (isinstance(r, Rejected) and r.reason == INVALID_EVENT)
    assert schema_valid(obj) == structurally_valid, (obj, r)
