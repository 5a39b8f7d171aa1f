"""The parser's fast path (msgspec) never disagrees with its exact path.

`parse_event` takes a typed-decoding shortcut for plainly valid events and falls
back to `_parse_exact` for everything else. The shortcut may decline anything, but
whatever it accepts must be exactly what the exact path returns.
"""
from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings, strategies as st

from pulse.schemas.parse import _parse_exact, _parse_fast, parse_event

from tests.support.event_cases import CONFIG, CORPUS_CASES, MUTATIONS, TS, ev

NASTY = [
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":1e400}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","attributes":{"k":-1E+0309}}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":1e-400}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":"\\ud800"}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","attributes":{"k":"\\udc00x"}}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","attributes":{"k":"\xff"}}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":"\xc3"}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":"a\nb"}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":"a\tb"}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":"\\x"}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":NaN}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":[1,]}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":01}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":tru}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s"} x',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s"}\r',
    b' \t{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s"} ',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","lead_id":"c"}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","lead_id":7}',
    b'{"type":"lead.created","event_id":"a","lead_id":7,"occurred_at":"%s","lead_id":"b"}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","type":"deal.closed","outcome":"won"}',
    b'{"type":"deal.closed","type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s"}',
    b'{"lead\\u005fid":"b","type":"lead.created","event_id":"a","occurred_at":"%s"}',
    b'{"type":"lead.\\u0063reated","event_id":"a","lead_id":"b","occurred_at":"%s"}',
    b'{"type":"lead.created","event_id":"\\ud83d\\ude00","lead_id":"b","occurred_at":"%s"}',
    b'\xef\xbb\xbf{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s"}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","amount":-0.0}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","amount":123456789012345678901234567890}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","amount":1.7976931348623157e308}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","attributes":null}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","attributes":[]}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","attributes": {}}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","attributes":"{"}',
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":' + b"[" * 600 + b"]" * 600 + b"}",
    b'{"type":"lead.created","event_id":"a","lead_id":"b","occurred_at":"%s","zz":' + b"[" * 2000 + b"]" * 2000 + b"}",
    b'{"type":"deal.closed","event_id":"a","lead_id":"b","occurred_at":"%s","outcome":null}',
    b'{"type":"deal.closed","event_id":"a","lead_id":"b","occurred_at":"%s","outcome":"won","outcome":"lost"}',
    b'{"type":"lead.stage_changed","event_id":"a","lead_id":"b","occurred_at":"%s","to_stage":null}',
    b'{"type":"lead.created","event_id":"' + b"x" * 128 + b'","lead_id":"b","occurred_at":"%s"}',
    b'{"type":"lead.created","event_id":"' + "\U0001F600".encode() * 128 + b'","lead_id":"b","occurred_at":"%s"}',
    b'{"type":"lead.created","event_id":"' + "\U0001F600".encode() * 129 + b'","lead_id":"b","occurred_at":"%s"}',
]


def check(raw: bytes, expected_type=None) -> None:
    exact = _parse_exact(raw, CONFIG, expected_type)
    fast = _parse_fast(raw, CONFIG, expected_type)
    assert fast is None or fast == exact, (raw, fast, exact)
    assert parse_event(raw, CONFIG, expected_type) == exact


def test_corpus_and_mutations_agree():
    for case in CORPUS_CASES:
        raw = case.values[0]
        for t in (None, "lead.created", "deal.closed"):
            check(raw, t)
    for obj in MUTATIONS:
        check(json.dumps(obj).encode())
        check(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def test_nasty_inputs_agree():
    for template in NASTY:
        check(template.replace(b"%s", TS.encode()))


def test_fast_path_is_taken_for_ordinary_events():
    # Not a correctness property, but the reason the fast path exists: make sure it runs.
    for t in ("lead.created", "lead.stage_changed", "deal.closed"):
        raw = orjson.dumps({**ev(t), "owner": "rep-1", "amount": 10, "attributes": {"email": "x@example.com"}})
        assert _parse_fast(raw, CONFIG, None) is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)
field_values = st.one_of(
    json_values, st.sampled_from(["won", "lost", "new", "qualified", "default", "enterprise", "EUR", TS,
                                  "2026-03-01T10:15:00.5+01:00", "2026-02-29T00:00:00Z", "", "x" * 129]))
fields = st.sampled_from(["type", "event_id", "lead_id", "occurred_at", "pipeline", "owner", "team", "amount",
                          "currency", "attributes", "stage", "source", "to_stage", "from_stage", "outcome",
                          "reason", "extra"])


@settings(max_examples=1500, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["lead.created", "lead.stage_changed", "deal.closed"]),
       st.dictionaries(fields, field_values, max_size=4), st.sets(fields, max_size=2),
       st.sampled_from([None, "lead.created", "deal.closed"]))
def test_generated_events_agree(t, changes, removed, expected_type):
    obj = {**ev(t), **changes}
    for f in removed:
        obj.pop(f, None)
    try:
        raw = orjson.dumps(obj)
    except TypeError:       # integers beyond 64 bits: orjson cannot write them
        raw = json.dumps(obj).encode()
    check(raw, expected_type)


@settings(max_examples=800, derandomize=True, database=None)
@given(st.binary(max_size=80), st.integers(0, 120))
def test_spliced_bytes_agree(junk, at):
    base = orjson.dumps({**ev("lead.created"), "attributes": {"k": "v"}, "owner": "o"})
    at = min(at, len(base))
    check(base[:at] + junk + base[at:])
