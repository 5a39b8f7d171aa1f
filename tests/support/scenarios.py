"""Random messy inputs for the property tests (test_engine_properties.py, test_open_index.py):
`scenarios()` draws a configuration of 1-3 pipelines, a few leads and stages, and event
lines on a coarse time grid over a few days (ties, late events, duplicates, implicit
creates, supersedes, reopens, `lead.updated` of every field), sprinkled with invalid and
blank lines; `SETTINGS` keeps hypothesis deterministic in CI."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from hypothesis import HealthCheck
from hypothesis import strategies as st

from tests.support.reference import DAY_US, US, format_time, make_config, make_pipeline, parse_time

# Deterministic in CI: derandomized, no example database, no wall-clock deadline.
SETTINGS = dict(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BASE_US = parse_time("2026-03-01T00:00:00Z")


PIPELINE_NAMES = ("default", "p2", "p3")
STAGE_NAMES = ("s0", "s1", "s2", "s3")
LEADS = ("a", "b", "c", "é")
STALE = (None, 0, 3600, 43_200, 86_400, 172_800)
PROBS = (0.0, 0.1, 0.25, 0.5, 1.0)
WINDOWS = (("1d", 1), ("2d", 2), ("48h", 2), ("P3D", 3), ("7d", 7), ("30d", 30))
BAD_LINES = (
    "not json", "{}", "[]", "null", '{"type": "lead.created"}', "\ufeff{}", "{\"a\": NaN}",
    '{"type":"lead.created","event_id":"x","lead_id":"a","occurred_at":"2026-03-02T00:00:00"}',
    '{"type":"lead.moved","event_id":"x","lead_id":"a","occurred_at":"2026-03-02T00:00:00Z"}',
    '{"type":"deal.closed","event_id":"x","lead_id":"a","occurred_at":"2026-03-02T00:00:00Z",'
    '"outcome":"tie"}',
    '{"type":"lead.created","event_id":"x","lead_id":"a","occurred_at":"2026-03-02T00:00:00Z",'
    '"amount":-5}',
    '{"type":"lead.created","event_id":"","lead_id":"a","occurred_at":"2026-03-02T00:00:00Z"}',
    '{"type":"lead.updated","event_id":"x","lead_id":"a","occurred_at":"2026-03-02T00:00:00Z",'
    '"owner":7}',
    '{"type":"lead.updated","event_id":"x","lead_id":"a","occurred_at":"2026-03-02T00:00:00Z",'
    '"pipeline":"nope"}',
)
BLANK_LINES = ("", "  ", "\t", "\r")


@st.composite
def configs(draw, positive_probabilities=False):
    n = 1 if positive_probabilities else draw(st.integers(1, 3))
    pipelines = []
    for name in PIPELINE_NAMES[:n]:
        k = draw(st.integers(1, 4))
        probs = [p for p in PROBS if p > 0] if positive_probabilities else PROBS
        stages = [(STAGE_NAMES[i], draw(st.sampled_from(STALE)), draw(st.sampled_from(probs)))
                  for i in range(k)]
        q = draw(st.integers(0, k - 1))
        o = draw(st.integers(0, k - 1))
        pipelines.append(make_pipeline(name, stages, qualified=STAGE_NAMES[q],
                                       opportunity=STAGE_NAMES[o]))
    # forecast-rich: windows starting inside the data's few days
    offered = WINDOWS[:4] if positive_probabilities else WINDOWS
    windows = draw(st.lists(st.sampled_from(offered), min_size=1, max_size=3,
                            unique_by=lambda w: w[0]))
    return make_config(pipelines, windows=windows)


def render_time(us: int, offset_min: int, extra_digits: str) -> str:
    """An RFC 3339 text for instant `us`, written in a local offset (minutes)."""
    local = datetime(1970, 1, 1) + timedelta(microseconds=us + offset_min * 60 * US)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond or extra_digits:
        text += f".{local.microsecond:06d}{extra_digits}"
    if offset_min == 0:
        return text + "Z"
    sign = "+" if offset_min > 0 else "-"
    return text + f"{sign}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"


# event times: a coarse grid over 5 days (ties!), sometimes nudged by a microsecond
event_times = st.builds(
    lambda hours, nudge: BASE_US + hours * 3600 * US + nudge,
    st.integers(0, 5 * 24).map(lambda h: h - h % 6 if h % 4 else h),   # bias towards 6 h
    st.sampled_from([0, 0, 0, 0, 1, -1, 1800 * US, 999_999]),    # -1: just before a day
)


@st.composite
def events(draw, config, event_id, amounts_often=False):
    """One JSON line: a mostly valid event (sometimes an unknown pipeline/stage)."""
    names = list(config.pipelines)
    pipeline = draw(st.sampled_from(names + ["default", "nope"]
                                    if draw(st.integers(0, 9)) == 0 else names))
    stage_names = ([s.name for s in config.pipelines[pipeline].stages]
                   if pipeline in config.pipelines else list(STAGE_NAMES))
    kind = draw(st.sampled_from(["lead.created", "lead.updated", "lead.updated",
                                 "lead.stage_changed", "lead.stage_changed",
                                 "deal.closed", "deal.closed"]))
    ts = draw(event_times)
    # "u" only ever gets lead.updated: an update-only lead (SPEC 3 rule 8)
    leads = LEADS + ("u",) if kind == "lead.updated" else LEADS
    obj = {"type": kind, "event_id": event_id, "lead_id": draw(st.sampled_from(leads)),
           "occurred_at": render_time(ts, draw(st.sampled_from([0, 0, 0, 120, -330])),
                                      draw(st.sampled_from(["", "", "", "999"])))}
    if pipeline != "default" or draw(st.booleans()):
        obj["pipeline"] = pipeline
    stage = draw(st.sampled_from(stage_names + ["zz"]) if draw(st.integers(0, 14)) == 0
                 else st.sampled_from(stage_names))
    if kind == "lead.created":
        if draw(st.booleans()):
            obj["stage"] = stage
        obj["source"] = draw(st.sampled_from(["marketing", "sales", None]))
    elif kind == "lead.updated":
        if draw(st.booleans()):
            obj["source"] = draw(st.sampled_from(["marketing", "sales", "\u00e9v\u00e9nement"]))
        # stage fields on lead.updated are unknown extra fields: ignored whatever their type
        if draw(st.integers(0, 4)) == 0:
            obj[draw(st.sampled_from(["stage", "to_stage", "from_stage"]))] = draw(
                st.sampled_from(stage_names + ["zz", 7, None, {"x": 1}]))
    elif kind == "lead.stage_changed":
        obj["to_stage"] = stage
        if draw(st.booleans()):
            obj["from_stage"] = draw(st.sampled_from(stage_names))
    else:
        obj["outcome"] = draw(st.sampled_from(["won", "lost"]))
    for f, values in (("owner", ["ann", "bob", "Zoe"]), ("team", ["emea", "apac"]),
                      ("amount", [0, 10, 2.5, 100, 1e6, 0.1])):
        choice = draw(st.integers(0, 3))
        often = kind == "lead.updated" or (amounts_often and f == "amount")
        if choice == 1 or (often and choice == 3):
            obj[f] = draw(st.sampled_from(values))
        elif choice == 2:
            obj[f] = None
    return json.dumps(obj, ensure_ascii=draw(st.booleans()))


@st.composite
def scenarios(draw, exact_copies_only=False, forecast_rich=False):
    """(config, lines, as_of or None)."""
    config = draw(configs(positive_probabilities=forecast_rich))
    n = draw(st.integers(10, 30) if forecast_rich else st.integers(0, 24))
    lines = []
    for i in range(n):
        if exact_copies_only or forecast_rich:
            eid = f"e{i:03d}"                        # distinct; duplicates are copies below
        else:
            eid = draw(st.sampled_from(["1", "2", "3", "4", "A", "a", "é"]))
        lines.append(draw(events(config, eid, amounts_often=forecast_rich)))
    # exact copies (re-deliveries) at random places
    for _ in range(draw(st.integers(0, 4))):
        if lines:
            copy = draw(st.sampled_from(lines))
            lines.insert(draw(st.integers(0, len(lines))), copy)
    # invalid and blank lines
    for _ in range(draw(st.integers(0, 3))):
        lines.insert(draw(st.integers(0, len(lines))),
                     draw(st.sampled_from(BAD_LINES + BLANK_LINES)))
    choice = draw(st.integers(1, 2) if forecast_rich else st.integers(0, 3))
    if choice == 0:
        as_of = None
    elif choice == 1:          # inside (or just around) the data
        us = BASE_US + draw(st.integers(-DAY_US // US, 6 * DAY_US // US)) * US
        as_of = render_time(us, draw(st.sampled_from([0, 60])), "")
    elif choice == 2:          # on a grid point: ties with event times
        as_of = format_time(draw(event_times))
    else:                      # far after: the data is in the previous 30-day window
        as_of = format_time(BASE_US + draw(st.integers(29, 40)) * DAY_US
                            + draw(st.integers(0, 23)) * 3600 * US)
    return config, lines, as_of


def drawn_fields(kind: str, stage: int, won: bool, owner, amount, stage_names) -> dict:
    """The fields beyond type/ids/time of an event drawn as (kind, stage index, won, owner,
    amount), as the housekeeping and window-totals properties generate them."""
    extra: dict = {}
    if kind == "lead.created" and stage:
        extra["stage"] = stage_names[stage]
    if kind == "lead.stage_changed":
        extra["to_stage"] = stage_names[stage]
    if kind == "deal.closed":
        extra["outcome"] = "won" if won else "lost"
    if owner is not None:
        extra["owner"] = owner
    if amount is not None:
        extra["amount"] = amount
    return extra
