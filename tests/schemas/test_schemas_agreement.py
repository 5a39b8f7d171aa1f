"""SPEC section 1: the run-time parser (`pulse.schemas.parse`) and the published JSON
Schema files (`schemas/*.schema.json`) must agree.

The schema files themselves, then
(a) corpus agreement: schema-valid <=> parse_event does not say invalid_event
(e) property tests: parse_event never raises, and agrees with the schema on generated events
"""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from pulse.schemas.config import Config
from pulse.schemas import generate
from pulse.schemas.parse import parse_event
from pulse.schemas.types import (
    INVALID_EVENT,
    INVALID_JSON,
    REASONS,
    Event,
    Rejected,
)
from tests.support.event_cases import (
    CONFIG,
    CORPUS_CASES,
    DEFAULT_STAGES,
    MUTATIONS,
    TS,
    TYPES,
    enc,
    ev,
    make_config,
    reason_of,
)
from tests.support.schema_files import SCHEMA_FILES, schema_valid
from tests.support.schema_files import load_schema as _load_schema  # the test's body as it was


# --------------------------------------------------------------------------------------
# schema files
# --------------------------------------------------------------------------------------

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
