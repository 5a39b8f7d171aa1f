"""Shared building blocks of the hand-computed SPEC tests (test_spec_rules_*.py,
test_spec_v2*.py): the `report_fn` fixture that runs every test over both the naive
reference (tests/support/reference.py) and the engine (pulse.streams.report.build_report), the
default test pipeline, event-line builders and containment assertions.

Default pipeline "default" with stages
    new (stale 1d, p 0.1) < qualified (stale 2d, p 0.5) < proposal (never stale, p 0.8)
    < negotiation (stale 12h, p 0.9);
qualified_stage = qualified, opportunity_stage = proposal; windows 1d, 7d, 30d;
as_of T = 2026-03-10T12:00:00Z, so the windows are
    1d:  [2026-03-10T00:00Z, T]     7d:  [2026-03-04T00:00Z, T]
    30d: [2026-02-09T00:00Z, T]     previous 30d: [2026-01-10T00:00Z, 2026-02-09T00:00Z)

Each test builds a few JSON lines, states the expected numbers computed by hand (in
comments and literals, never by calling code) and checks them against `report_fn`,
which runs over two independent implementations: the naive `tests/support/reference.py` and the
real engine `pulse.streams.report.build_report`.
"""
from __future__ import annotations

import itertools
import json
import time

import pytest

from tests.support.reference import DAY_US, make_config, make_pipeline, parse_time, reference_report

from pulse.streams.report import build_report


def engine_report(lines, config, as_of=None) -> dict:
    """The engine's document (`build_report`); with no as_of and no valid event T is now, as
    for `pulse report` and the reference."""
    return build_report(lines, config, as_of=as_of, now_us=time.time_ns() // 1000)


IMPLEMENTATIONS = [
    pytest.param(reference_report, id="reference"),
    pytest.param(engine_report, id="engine"),
]


@pytest.fixture(params=IMPLEMENTATIONS)
def report_fn(request):
    fn = request.param

    def run(lines, config, as_of=None):
        doc = fn(list(lines), config, as_of=as_of)
        json.dumps(doc, allow_nan=False)          # the document must be plain JSON
        return doc
    return run


# --------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------

T = "2026-03-10T12:00:00Z"
H = 3600.0 / 86400          # one hour in days

DEFAULT = make_pipeline(
    "default",
    [("new", 86_400, 0.1), ("qualified", 172_800, 0.5), ("proposal", None, 0.8),
     ("negotiation", 43_200, 0.9)],
    qualified="qualified",
    opportunity="proposal",
)
CONFIG = make_config([DEFAULT], windows=[("1d", 1), ("7d", 7), ("30d", 30)])
STAGES = ("new", "qualified", "proposal", "negotiation")

_ids = itertools.count()


def line(type_, lead, at, eid=None, **fields) -> str:
    obj = {"type": type_, "event_id": eid if eid is not None else f"auto-{next(_ids):06d}",
           "lead_id": lead, "occurred_at": at}
    obj.update(fields)
    return json.dumps(obj)


def created(lead, at, eid=None, **fields):
    return line("lead.created", lead, at, eid, **fields)


def moved(lead, at, to, eid=None, **fields):
    return line("lead.stage_changed", lead, at, eid, to_stage=to, **fields)


def closed(lead, at, outcome, eid=None, **fields):
    return line("deal.closed", lead, at, eid, outcome=outcome, **fields)


def d(day, hh=0, mm=0, ss=0, month=3):
    """A 2026 timestamp: d(9, 6) = 2026-03-09T06:00:00Z."""
    return f"2026-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z"


def pct_ok(actual, exact) -> bool:
    """SPEC 4.3: within 5 % of the exact nearest-rank value or 1 hour, the larger."""
    if exact is None or actual is None:
        return actual is exact
    return abs(actual - exact) <= max(0.05 * abs(exact), H) + 1e-12


def assert_sub(actual, expected, path="doc"):
    """`actual` contains `expected`: dicts compared on expected's keys only (use
    `assert_keys` for exact key sets), floats with rel 1e-9, times as instants,
    p50/p90 with the SPEC's tolerance; lists element by element."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        for k, v in expected.items():
            assert k in actual, f"{path}: missing key {k!r} (has {sorted(actual)})"
            if k in ("p50", "p90"):
                assert pct_ok(actual[k], v), f"{path}.{k}: {actual[k]!r}, exact {v!r}"
            else:
                assert_sub(actual[k], v, f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), \
            f"{path}: {actual!r} != {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_sub(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(actual, (int, float)) and not isinstance(actual, bool), \
            f"{path}: {actual!r} is not a number"
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12), \
            f"{path}: {actual!r} != {expected!r}"
    elif isinstance(expected, str) and expected.endswith("Z") and expected[:1].isdigit():
        assert isinstance(actual, str) and actual.endswith("Z"), f"{path}: {actual!r}"
        assert parse_time(actual) == parse_time(expected), f"{path}: {actual!r} != {expected!r}"
    else:
        assert actual == expected and type(actual) is type(expected), \
            f"{path}: {actual!r} != {expected!r}"


def assert_keys(obj, keys, path):
    assert set(obj) == set(keys), f"{path}: keys {sorted(obj)} != {sorted(keys)}"


def win(doc, key, pipeline="default"):
    return doc["pipelines"][pipeline]["windows"][key]


def stage(doc, key, name, pipeline="default"):
    return win(doc, key, pipeline)["stages"][name]


def dq(doc):
    return doc["data_quality"]


ZERO_STAGE_FLOW = {"entered": 0, "exited": 0, "advanced": 0, "regressed": 0, "won": 0,
                   "lost": 0, "conversion_rate": None, "drop_off_rate": None,
                   "dwell_days": {"mean": None, "p50": None, "p90": None}}


def updated(lead, at, eid=None, **fields):
    return line("lead.updated", lead, at, eid, **fields)


def seg(doc, dim, key=None, pipeline="default"):
    """The segment list of dimension `dim`: under window `key`, or under `open`."""
    p = doc["pipelines"][pipeline]
    return (p["open"] if key is None else p["windows"][key])["segments"][dim]


def forecast(doc, key, pipeline="default"):
    return win(doc, key, pipeline)["forecast"]


# --------------------------------------------------------------------------------------
# Whole documents: the engine against the reference
# --------------------------------------------------------------------------------------

HOUR_DAYS = 1 / 24
TIME_KEYS = {"as_of", "from", "to", "since"}


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def assert_reports_match(actual, expected, *, exact_percentiles=False, now_slack_us=0,
                         path="doc"):
    """`actual` must equal `expected` (the reference) everywhere, with three allowances:

    * floats: relative 1e-9 (float sums depend on summation order);
    * dwell_days p50/p90: within 5 % of the exact value or 1 hour (1/24 day), whichever
      is larger (SPEC 4.3) -- unless `exact_percentiles`;
    * times are compared as instants (SPEC 5), exactly unless `now_slack_us` (used when
      both sides defaulted T to the current clock at slightly different moments).
    """
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        assert set(actual) == set(expected), \
            f"{path}: keys differ: extra {sorted(set(actual) - set(expected))}, " \
            f"missing {sorted(set(expected) - set(actual))}"
        for k in expected:
            sub = f"{path}.{k}"
            if k in ("p50", "p90") and not exact_percentiles and _is_num(expected[k]):
                assert _is_num(actual[k]), f"{sub}: {actual[k]!r}, exact {expected[k]!r}"
                slack = max(0.05 * abs(expected[k]), HOUR_DAYS) + 1e-12
                assert abs(actual[k] - expected[k]) <= slack, \
                    f"{sub}: {actual[k]!r} is not within {slack} of exact {expected[k]!r}"
            elif k in TIME_KEYS and isinstance(expected[k], str):
                assert isinstance(actual[k], str) and actual[k].endswith("Z"), \
                    f"{sub}: {actual[k]!r} is not an RFC 3339 UTC time"
                a, e = parse_time(actual[k]), parse_time(expected[k])
                slack = now_slack_us + (DAY_US if (k == "from" and now_slack_us) else 0)
                assert abs(a - e) <= slack, f"{sub}: {actual[k]!r} != {expected[k]!r}"
            else:
                assert_reports_match(actual[k], expected[k],
                                     exact_percentiles=exact_percentiles,
                                     now_slack_us=now_slack_us, path=sub)
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{path}: {actual!r} is not a list"
        assert len(actual) == len(expected), \
            f"{path}: {len(actual)} items != {len(expected)}:\n{actual!r}\n{expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_reports_match(a, e, exact_percentiles=exact_percentiles,
                                 now_slack_us=now_slack_us, path=f"{path}[{i}]")
    elif isinstance(expected, float):
        # a float-valued field (amounts, rates, days) may come as a JSON integer
        assert _is_num(actual), f"{path}: {actual!r} is not a number (expected {expected!r})"
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12), \
            f"{path}: {actual!r} != {expected!r}"
    else:
        # counts, strings, booleans, null: same value and same type (a count is an int)
        assert actual == expected and type(actual) is type(expected), \
            f"{path}: {actual!r} != {expected!r}"


# -- SPEC v2 (tests/streams/test_spec_v2_*.py) ------------------------------------------

def open_(doc, pipeline="default"):
    return doc["pipelines"][pipeline]["open"]


def created_only(value, n=1):
    """A window segment entry with n creations and no close."""
    return {"value": value, "leads_created": n, "won": 0, "lost": 0, "won_amount": 0.0,
            "win_rate": None, "close_rate": 0.0, "avg_deal_size": None,
            "sales_cycle_days": {"mean": None, "count": 0}}
