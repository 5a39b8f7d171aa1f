"""SPEC section 1: (d) timestamps: the one parser, its formatter, and the schema's pattern.

The parser and the published schema files must agree, and both must follow the contract
(tests/support/schema_files.py loads the schema files).
"""
from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulse.schemas import generate
from pulse.schemas.parse import parse_event
from pulse.schemas.timestamps import format_timestamp, parse_timestamp
from pulse.schemas.types import INVALID_EVENT, Event
from tests.support.event_cases import (
    CONFIG,
    TS,
    TS_US,
    enc,
    ev,
    reason_of,
)


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
