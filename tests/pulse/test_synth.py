"""The synthetic CRM traffic generator (pulse/synth.py) and bench/generate_events.py.

Every line is checked twice: by the product's parser (`pulse.schemas.parse.parse_event`,
when importable) and by a small independent reading of SPEC section 1 written here, so
a generator bug and a parser bug do not hide each other.
"""
from __future__ import annotations

import collections
import gzip
import importlib.util
import itertools
import re
from datetime import datetime
import tempfile
from pathlib import Path

import orjson
import pytest

from pulse import synth
from tests.support import ROOT

STAGES = synth.DEFAULT_STAGES
N = 600             # leads per generated sample: ~3,700 events, fast

try:
    from pulse.config import load_config
    from pulse.schemas.parse import parse_event
    from pulse.schemas.types import Rejected
    CONFIG = load_config()
except Exception:   # noqa: BLE001 - the parser is developed in parallel
    parse_event = None


# --------------------------------------------------------------------------------------
# An independent reading of SPEC section 1 (returns the dead-letter reason or None)
# --------------------------------------------------------------------------------------

_TS = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-](\d{2}):(\d{2}))\Z")
_STR_FIELDS = ("owner", "team", "source", "reason", "stage", "to_stage", "from_stage", "pipeline")


def spec_timestamp(s):
    m = _TS.match(s) if isinstance(s, str) else None
    if not m or (m.group(8) != "Z" and (int(m.group(9)) > 23 or int(m.group(10)) > 59)):
        return None
    try:
        return datetime(*(int(m.group(i)) for i in range(1, 7)))     # no Feb 30, no :60
    except ValueError:
        return None


def spec_reason(line: bytes, pipelines=("default",), stages=STAGES):
    if line.startswith(b"\xef\xbb\xbf"):
        return "invalid_json"
    try:
        d = orjson.loads(line)      # refuses NaN, invalid UTF-8, trailing data
    except orjson.JSONDecodeError:
        return "invalid_json"
    if not isinstance(d, dict):
        return "invalid_json"
    d = {k: v for k, v in d.items() if v is not None}
    typ = d.get("type")
    if typ not in ("lead.created", "lead.updated", "lead.stage_changed", "deal.closed"):
        return "invalid_event"
    for f in ("event_id", "lead_id"):
        if not isinstance(d.get(f), str) or not 1 <= len(d[f]) <= 128:
            return "invalid_event"
    if spec_timestamp(d.get("occurred_at")) is None:
        return "invalid_event"
    if any(f in d and not isinstance(d[f], str) for f in _STR_FIELDS
           if typ != "lead.updated" or f not in ("stage", "to_stage", "from_stage")):
        return "invalid_event"
    if "amount" in d and (type(d["amount"]) not in (int, float) or d["amount"] < 0):
        return "invalid_event"
    if "currency" in d and not (len(d["currency"]) == 3 and d["currency"].isascii() and d["currency"].isalpha()):
        return "invalid_event"
    if "attributes" in d and not isinstance(d["attributes"], dict):
        return "invalid_event"
    if typ == "lead.stage_changed" and "to_stage" not in d:
        return "invalid_event"
    if typ == "deal.closed" and d.get("outcome") not in ("won", "lost"):
        return "invalid_event"
    if d.get("pipeline", "default") not in pipelines:
        return "unknown_pipeline"
    own = d.get("stage") if typ == "lead.created" else d.get("to_stage") if typ == "lead.stage_changed" else None
    if own is not None and own not in stages:
        return "unknown_stage"
    return None


def product_reason(line: bytes):
    r = parse_event(line, CONFIG)
    return r.reason if isinstance(r, Rejected) else None


def ts(s: str) -> float:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clean() -> list[bytes]:
    return list(synth.generate(leads=N, seed=11))


@pytest.fixture(scope="module")
def clean_docs(clean) -> list[dict]:
    return [orjson.loads(b) for b in clean]


def tagged(**knobs) -> list[synth.Emitted]:
    return list(synth.generate_tagged(leads=N, seed=11, **knobs))


# --------------------------------------------------------------------------------------
# Determinism and shape
# --------------------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes(clean):
    assert list(synth.generate(leads=N, seed=11)) == clean
    assert list(synth.generate(leads=N, seed=12)) != clean
    messy = list(synth.generate(leads=200, seed=5, **synth.MESSY))
    assert list(synth.generate(leads=200, seed=5, **synth.MESSY)) == messy


def test_generate_yields_bytes_lines_without_newline(clean):
    assert all(isinstance(b, bytes) and b"\n" not in b and b.strip() for b in clean)


def test_every_clean_line_is_a_valid_spec_event(clean, clean_docs):
    assert len(clean) > 5 * N
    for b in clean:
        assert spec_reason(b) is None, b
    assert all(d["occurred_at"].endswith("Z") for d in clean_docs)
    if parse_event is not None:
        rejected = [(b, product_reason(b)) for b in clean if product_reason(b) is not None]
        assert rejected == []


def test_clean_output_is_in_event_time_order(clean_docs):
    times = [d["occurred_at"] for d in clean_docs]          # all Z, same width: text order = time order
    assert times == sorted(times)
    start, end = ts("2026-01-01T00:00:00Z"), ts("2026-01-01T00:00:00Z") + 120 * 86400
    assert start <= ts(times[0]) and ts(times[-1]) < end


def test_ids_owners_and_lead_lifecycle(clean_docs):
    ids = [d["event_id"] for d in clean_docs]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"evt-\d+", i) for i in ids)
    assert all(re.fullmatch(r"L-\d{6}", d["lead_id"]) for d in clean_docs)
    assert {d["owner"] for d in clean_docs} <= {f"rep-{i:02d}" for i in range(1, 51)}
    assert {d["team"] for d in clean_docs} == {"emea", "amer", "apac"}
    owner_team = {r.name: r.team for r in synth.REPS}
    assert all(owner_team[d["owner"]] == d["team"] for d in clean_docs)
    first = {}
    for d in clean_docs:
        first.setdefault(d["lead_id"], d["type"])
    assert len(first) == N and set(first.values()) == {"lead.created"}
    assert {d.get("source") for d in clean_docs if d["type"] == "lead.created"} == {"marketing", "sales", "partner"}


def test_journeys_look_like_a_sales_pipeline(clean_docs):
    """Walk each lead (SPEC section 3) and check the model's broad shape."""
    stage_of, closed = {}, {}
    moves = collections.Counter()
    won_from = collections.Counter()
    reopens = supersedes = 0
    amounts = []
    edits = collections.Counter()
    owner_of = {}
    for d in clean_docs:
        lid, typ = d["lead_id"], d["type"]
        previous_owner = owner_of.get(lid)
        owner_of[lid] = d["owner"]
        if typ == "lead.created":
            stage_of[lid] = d.get("stage", STAGES[0])
            closed[lid] = False
            if "amount" in d:
                amounts.append(d["amount"])
        elif typ == "lead.stage_changed":
            if closed[lid]:
                reopens += 1
                closed[lid] = False
            else:
                a, b = STAGES.index(stage_of[lid]), STAGES.index(d["to_stage"])
                moves["advance" if b > a else "regress" if b < a else "update"] += 1
                assert d["from_stage"] == stage_of[lid]
            stage_of[lid] = d["to_stage"]
        elif typ == "lead.updated":         # SPEC v2: a CRM edit of the deal, never of its stage
            assert not closed[lid] and not {"stage", "to_stage", "from_stage"} & set(d)
            edits["owner" if d["owner"] != previous_owner else "amount"] += 1
        else:
            if closed[lid]:
                supersedes += 1
            elif d["outcome"] == "won":
                won_from[stage_of[lid]] += 1
            closed[lid] = True
            assert d["outcome"] == "won" or d["reason"]
    won = sum(won_from.values())
    assert 0.03 * N < won < 0.3 * N
    assert (won_from["negotiation"] + won_from["proposal"]) / won > 0.8
    assert moves["advance"] > moves["regress"] > 0 and moves["update"] > 0
    assert reopens > 0 and supersedes > 0
    assert edits["owner"] > 0 and edits["amount"] > edits["owner"]     # reassignments and amount revisions
    still_open = sum(not c for c in closed.values())
    assert 0.05 * N < still_open < 0.6 * N            # some stall for good
    amounts.sort()
    assert 2_000 < amounts[len(amounts) // 2] < 50_000  # log-normal, median ~10k


def test_arrivals_follow_the_working_week():
    t0 = synth.parse_start("2026-01-05T00:00:00Z")      # a Monday
    times = list(synth.fixed_arrivals(1, 20_000, t0, 28))
    assert times == sorted(times) and len(times) == 20_000 and t0 <= times[0] and times[-1] < t0 + 28 * 86400
    by_weekday = collections.Counter(((t - t0) // 86400) % 7 for t in times)
    assert min(by_weekday[d] for d in range(5)) > 3 * max(by_weekday[5], by_weekday[6])


def test_unbounded_live_stream_is_lazy_and_ordered():
    t0 = synth.parse_start("2026-06-01T00:00:00Z")
    evs = synth.event_stream(3, synth.poisson_arrivals(3, t0, rate_per_day=500))
    first = list(itertools.islice(evs, 3000))
    assert [e.t for e in first] == sorted(e.t for e in first)
    assert first[0].doc["type"] == "lead.created" and first[-1].t < t0 + 30 * 86400
    assert all(synth.parse_start(e.doc["occurred_at"]) == e.t for e in first)


def test_second_pipeline_and_bad_arguments():
    docs = [orjson.loads(b) for b in synth.generate(leads=300, seed=2, pipelines=("default", "renewals"))]
    per = collections.Counter(d["pipeline"] for d in docs if d["type"] == "lead.created")
    assert set(per) == {"default", "renewals"} and per["default"] > per["renewals"] > 0
    for b in synth.generate(leads=100, seed=2, pipelines=("default", "renewals")):
        assert spec_reason(b, pipelines=("default", "renewals")) is None
    with pytest.raises(ValueError):
        synth.generate(leads=10, late=1.5)
    with pytest.raises(ValueError):
        synth.generate(leads=10, pipelines=())


# --------------------------------------------------------------------------------------
# Messiness knobs
# --------------------------------------------------------------------------------------

def test_duplicates_are_exact_resends(clean):
    out = tagged(duplicates=0.05)
    dups = [e.line for e in out if e.tag == "duplicate"]
    assert 0.03 * len(clean) < len(dups) < 0.07 * len(clean)
    assert sorted(e.line for e in out if e.tag != "duplicate") == sorted(clean)
    assert set(dups) <= set(clean)


def test_late_events_arrive_out_of_order_but_nothing_else_changes(clean):
    out = tagged(late=0.1)
    assert sorted(e.line for e in out) == sorted(clean)
    late = [e for e in out if e.tag == "late"]
    assert 0.07 * len(clean) < len(late) < 0.13 * len(clean)
    times = [orjson.loads(e.line)["occurred_at"] for e in out]
    assert sum(a > b for a, b in zip(times, times[1:])) > 0.05 * len(clean)
    assert [e.arrival for e in out] == sorted(e.arrival for e in out)
    assert all(e.arrival > ts(orjson.loads(e.line)["occurred_at"]) for e in late)


def test_implicit_drops_lead_created_only(clean, clean_docs):
    out = [e.line for e in tagged(implicit=0.2)]
    dropped = set(clean) - set(out)
    assert set(out) <= set(clean)
    assert all(orjson.loads(b)["type"] == "lead.created" for b in dropped)
    assert 0.1 * N < len(dropped) < 0.3 * N


def test_offsets_write_the_same_instant_differently(clean_docs):
    out = [orjson.loads(e.line) for e in tagged(offsets=0.3)]
    assert [d["event_id"] for d in out] == [d["event_id"] for d in clean_docs]
    changed = 0
    for a, b in zip(out, clean_docs):
        if a["occurred_at"] != b["occurred_at"]:
            changed += 1
            assert not a["occurred_at"].endswith("Z") and ts(a["occurred_at"]) == ts(b["occurred_at"])
        assert {k: v for k, v in a.items() if k != "occurred_at"} == {k: v for k, v in b.items() if k != "occurred_at"}
    assert 0.2 * len(out) < changed < 0.4 * len(out)
    if parse_event is not None:
        assert all(product_reason(orjson.dumps(d)) is None for d in out)


def test_invalid_lines_are_rejected_with_the_expected_reason(clean):
    out = tagged(invalid=0.1)
    bad = [e for e in out if e.tag.startswith("invalid:")]
    assert 0.07 * len(clean) < len(bad) < 0.13 * len(clean)
    reasons = collections.Counter(e.tag.split(":", 1)[1] for e in bad)
    assert set(reasons) == {"invalid_json", "invalid_event", "unknown_pipeline", "unknown_stage"}
    for e in bad:
        assert spec_reason(e.line) == e.tag.split(":", 1)[1], e.line
        if parse_event is not None:
            assert product_reason(e.line) == e.tag.split(":", 1)[1], e.line
    assert sorted(e.line for e in out if e.tag == "event") == sorted(clean)


def test_messy_preset_keeps_the_same_journeys(clean):
    out = tagged(**synth.MESSY)
    tags = collections.Counter(e.tag.split(":")[0] for e in out)
    assert tags["duplicate"] and tags["late"] and tags["invalid"]
    valid = [orjson.loads(e.line) for e in out if not e.tag.startswith("invalid")]
    clean_by_id = {d["event_id"]: d for d in map(orjson.loads, clean)}
    for d in valid:
        ref = clean_by_id[d["event_id"]]
        assert ts(d["occurred_at"]) == ts(ref["occurred_at"])
        assert {k: v for k, v in d.items() if k != "occurred_at"} == {k: v for k, v in ref.items() if k != "occurred_at"}


# --------------------------------------------------------------------------------------
# Personal data stays inside `attributes`
# --------------------------------------------------------------------------------------

def test_no_personal_data_outside_attributes():
    out = tagged(**synth.MESSY)
    # capitalised display forms (names, companies); lowercase e-mail parts are caught by "@"
    tokens = sorted(t for t in synth.PII_TOKENS if not t.islower())
    seen_inside = 0
    for e in out:
        if e.tag == "invalid:invalid_json":
            continue
        d = orjson.loads(e.line)
        attrs = d.pop("attributes", None)
        rest = orjson.dumps(d).decode()
        assert "@" not in rest and "+1-555" not in rest
        assert not [t for t in tokens if t in rest], rest
        if attrs:
            inside = orjson.dumps(attrs).decode()
            seen_inside += any(t in inside for t in tokens)
    assert seen_inside > N // 2


# --------------------------------------------------------------------------------------
# The committed demo sample and the bench file writer
# --------------------------------------------------------------------------------------

def _load_generate_events():
    spec = importlib.util.spec_from_file_location("generate_events", ROOT / "bench" / "generate_events.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_demo_sample_is_what_its_documented_command_writes():
    mod = _load_generate_events()
    cmd = next(line.strip() for line in mod.__doc__.splitlines() if "demo.jsonl" in line)
    args = cmd.split()[2:]                  # after "python bench/generate_events.py"
    sample = ROOT / "pulse" / "samples" / "demo.jsonl"
    assert args[0] == "pulse/samples/demo.jsonl"
    assert sample.stat().st_size < 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo.jsonl"
        assert mod.main([str(out)] + args[1:]) == 0
        assert out.read_bytes() == sample.read_bytes(), "regenerate the sample with: " + cmd
    lines = sample.read_bytes().splitlines()
    assert 1_000 < len(lines) < 5_000
    reasons = collections.Counter(spec_reason(b) for b in lines)
    assert {"invalid_json", "invalid_event", "unknown_pipeline", "unknown_stage"} <= set(reasons)


def test_write_events_plain_and_gzip(tmp_path, capsys):
    mod = _load_generate_events()
    plain, gz = tmp_path / "a.jsonl", tmp_path / "a.jsonl.gz"
    assert mod.main([str(plain), "--leads", "150", "--seed", "3", "--messy"]) == 0
    assert mod.main([str(gz), "--leads", "150", "--seed", "3", "--messy"]) == 0
    assert gzip.decompress(gz.read_bytes()) == plain.read_bytes()
    assert plain.read_bytes() == b"\n".join(synth.generate(leads=150, seed=3, **synth.MESSY)) + b"\n"
    assert "lines" in capsys.readouterr().out
    counts = mod.write_events(tmp_path / "b.jsonl", leads=150, seed=3)
    assert counts["lines"] == counts["events"] == len((tmp_path / "b.jsonl").read_bytes().splitlines())
    assert counts["leads_in_file"] == 150 and counts["duplicates"] == 0 and counts["invalid"] == {}
    assert mod.main([str(tmp_path / "c.jsonl"), "--leads", "5", "--late", "2"]) == 2
