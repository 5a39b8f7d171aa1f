"""Synth layer 3, streams: journeys merged in event-time order (`event_stream`), what a
consumer receives with optional messiness (`arrival_stream`), and the one-call `generate`."""
from __future__ import annotations

import heapq
import math
import operator
import random
from typing import Iterable, Iterator, NamedTuple

import orjson

from .arrivals import fixed_arrivals
from .journeys import LeadJourney, SynthEvent
from .world import DAY, DEFAULT_STAGES, HOUR, _new, _params_for, format_ts, parse_start


def event_stream(seed: int, arrivals: Iterable[int], *, pipelines: tuple[str, ...] = ("default",),
                 stages: dict[str, tuple[str, ...]] | None = None, horizon: int | None = None,
                 first_lead: int = 1) -> Iterator[SynthEvent]:
    """All leads' events in event-time order (ties: lead arrival order, then journey order).

    A heap holds each live journey's next event; a journey is built when its lead's
    creation time comes up, so `arrivals` may be unbounded. With `horizon`, nothing
    after it is emitted."""
    rng = random.Random(f"pulse-synth:journeys:{seed}")
    stages = stages or {}
    pstages = [stages.get(p, DEFAULT_STAGES) for p in pipelines]
    pparams = [_params_for(s) for s in pstages]
    npl = len(pipelines)
    ids = iter(range(1, 1 << 62))
    heap: list[tuple[int, int, list[SynthEvent], int]] = []
    seq = 0
    lead_no = first_lead
    push, replace, pop = heapq.heappush, heapq.heapreplace, heapq.heappop
    it = iter(arrivals)
    nxt = next(it, None)
    while True:
        if nxt is not None and (not heap or nxt <= heap[0][0]):
            if horizon is not None and nxt > horizon:
                nxt = None
                continue
            k = 0 if npl == 1 or rng.random() < 0.8 else 1 + rng.randrange(npl - 1)
            j = LeadJourney.build(rng, ids, f"L-{lead_no:06d}", pipelines[k], nxt, pstages[k], pparams[k], horizon)
            lead_no += 1
            if j.events:
                push(heap, (j.events[0].t, seq, j.events, 0))
                seq += 1
            nxt = next(it, None)
            continue
        if not heap:
            return
        _, _, evs, i = heap[0]
        ev = evs[i]
        if i + 1 < len(evs):
            evs[i] = None       # emitted: let it go (only the journey's future stays in memory)
            replace(heap, (evs[i + 1].t, seq, evs, i + 1))
            seq += 1
        else:
            pop(heap)
        yield ev


class Emitted(NamedTuple):
    """One line as a consumer receives it."""

    arrival: int    # arrival time, epoch seconds (= occurred_at unless late or re-sent)
    tag: str        # "event", "duplicate", "late", or "invalid:<expected dead-letter reason>"
    line: bytes     # one JSON line, no newline


# messiness preset of `--messy`
MESSY = dict(duplicates=0.01, late=0.02, implicit=0.005, invalid=0.005, offsets=0.03)

_BAD_TS = ("{d}T{h}", "{d} {h}Z", "{d}T{h}z", "{d}", "{d}T{h}+0100", "2026-02-30T10:00:00Z",
           "{d}T23:59:60Z", "{d}T{h}+24:00", "yesterday")


def _invalid_line(rng: random.Random, ev: SynthEvent, line: bytes, n: int, kind: int) -> tuple[str, bytes]:
    """A broken variant of `ev` (fresh event id) that SPEC section 1 rejects.

    kind: 0 broken JSON, 1 missing/mistyped field, 2 bad timestamp,
    3 unknown pipeline, 4 unknown stage. Returns (expected reason, line)."""
    doc = dict(ev.doc)
    doc["event_id"] = f"evt-bad-{n}"
    if kind == 0:
        b = orjson.dumps(doc)
        v = rng.randrange(6)
        if v == 0:
            return "invalid_json", b[: rng.randrange(1, len(b) - 1)]           # truncated
        if v == 1:
            return "invalid_json", b + line                                    # two objects on one line
        if v == 2:
            return "invalid_json", b"\xef\xbb\xbf" + b                         # byte-order mark
        if v == 3:
            return "invalid_json", b"[" + b + b"]"                             # not an object
        if v == 4:
            doc["amount"] = 0.5
            return "invalid_json", orjson.dumps(doc).replace(b'"amount":0.5', b'"amount":NaN')
        return "invalid_json", b.replace(b'"lead_id":"', b'"lead_id":"\xff', 1)  # not UTF-8
    if kind == 1:
        typ = doc["type"]
        options = ["type", "event_id", "lead_id", "occurred_at", "neg_amount", "str_amount",
                   "bad_type", "num_lead", "bad_currency", "bool_amount", "owner_obj"]
        if typ == "lead.stage_changed":
            options.append("to_stage")
        if typ == "deal.closed":
            options += ["outcome", "bad_outcome"]
        o = rng.choice(options)
        if o in ("type", "event_id", "lead_id", "occurred_at", "to_stage", "outcome"):
            if rng.random() < 0.2:
                doc[o] = None       # null counts as absent
            else:
                del doc[o]
        elif o == "neg_amount":
            doc["amount"] = -float(doc.get("amount") or 1000)
        elif o == "str_amount":
            doc["amount"] = f"{doc.get('amount') or 1000:,}"
        elif o == "bool_amount":
            doc["amount"] = True
        elif o == "bad_type":
            doc["type"] = rng.choice(("lead.deleted", "deal.won", "Lead.Created"))
        elif o == "num_lead":
            doc["lead_id"] = int(doc["lead_id"][2:])
        elif o == "bad_currency":
            doc["currency"] = rng.choice(("US Dollar", "usd1", "€"))
        elif o == "owner_obj":
            doc["owner"] = {"id": doc.get("owner")}
        else:   # bad_outcome
            doc["outcome"] = rng.choice(("closed_won", "Won", "pending"))
        return "invalid_event", orjson.dumps(doc)
    if kind == 2:
        full = doc["occurred_at"]
        d, h = full[:10], full[11:19]
        doc["occurred_at"] = rng.choice(_BAD_TS).format(d=d, h=h)
        if rng.random() < 0.15:
            doc["occurred_at"] = ev.t * 1000                                   # epoch millis
        return "invalid_event", orjson.dumps(doc)
    if kind == 3:
        doc["pipeline"] = rng.choice(("Default", "sales", "defualt", "legacy-import"))
        return "unknown_pipeline", orjson.dumps(doc)
    bad = rng.choice(("closed_won", "Qualified", "discovery", "demo", "NEW"))
    if doc["type"] == "lead.created":
        doc["stage"] = bad
    else:
        doc["type"] = "lead.stage_changed"
        doc.pop("outcome", None)
        doc.pop("reason", None)
        doc["to_stage"] = bad
    return "unknown_stage", orjson.dumps(doc)


def arrival_stream(events: Iterable[SynthEvent], *, seed: int = 0, duplicates: float = 0.0, late: float = 0.0,
                   implicit: float = 0.0, invalid: float = 0.0, offsets: float = 0.0) -> Iterator[Emitted]:
    """What a consumer receives from `events` (in event-time order), with messiness.

    - `implicit`: fraction of leads whose `lead.created` never arrives;
    - `late`: fraction of events delayed by minutes to days (log-normal, median 2 h);
    - `duplicates`: fraction of events re-sent byte for byte, seconds to hours later;
    - `invalid`: per event, chance that a broken line (fresh `evt-bad-<n>` id; the
      five kinds in turn at random: broken JSON, missing/mistyped field, bad
      timestamp, unknown pipeline, unknown stage) is sent right after it;
    - `offsets`: fraction of events whose `occurred_at` is written in the owner's
      local offset (`+01:00`, `-05:00`, `+05:30`, ..., `+00:00`) instead of `Z`.
    Every other event arrives at its own `occurred_at`, so with all knobs 0 the
    output is the input, in event-time order."""
    rng = random.Random(f"pulse-synth:mess:{seed}")
    rnd = rng.random
    dumps = orjson.dumps
    delayed: list[tuple[int, int, str, bytes]] = []
    seq = 0
    bad_n = 0
    dropped_created = 0
    messy = duplicates or late or invalid or offsets
    for ev in events:
        doc = ev.doc
        if implicit and doc["type"] == "lead.created" and rnd() < implicit:
            dropped_created += 1
            continue
        if not messy:
            yield _new(Emitted, (ev.t, "event", dumps(doc)))
            continue
        while delayed and delayed[0][0] <= ev.t:
            a, _, tag, b = heapq.heappop(delayed)
            yield Emitted(a, tag, b)
        if offsets and rnd() < offsets:
            doc = dict(doc)
            doc["occurred_at"] = format_ts(ev.t, ev.offset, z=False)
        line = dumps(doc)
        if late and rnd() < late:
            a = ev.t + max(1, int(2 * HOUR * math.exp(rng.gauss(0.0, 1.5))))
            heapq.heappush(delayed, (a, seq, "late", line))
            seq += 1
        else:
            yield Emitted(ev.t, "event", line)
        if duplicates and rnd() < duplicates:
            a = ev.t + max(1, int(30 * math.exp(rng.gauss(0.0, 2.0))))
            heapq.heappush(delayed, (a, seq, "duplicate", line))
            seq += 1
        if invalid and rnd() < invalid:
            bad_n += 1
            reason, b = _invalid_line(rng, ev, line, bad_n, rng.randrange(5))
            yield Emitted(ev.t, "invalid:" + reason, b)
    while delayed:
        a, _, tag, b = heapq.heappop(delayed)
        yield Emitted(a, tag, b)


def generate_tagged(*, leads: int, seed: int = 0, start: str = "2026-01-01T00:00:00Z", days: int = 120,
                    duplicates: float = 0.0, late: float = 0.0, implicit: float = 0.0, invalid: float = 0.0,
                    offsets: float = 0.0, pipelines: tuple[str, ...] = ("default",)) -> Iterator[Emitted]:
    """`generate`, with each line's arrival time and tag (see `Emitted`)."""
    if leads < 0 or days < 1:
        raise ValueError("leads must be >= 0 and days >= 1")
    for name, v in (("duplicates", duplicates), ("late", late), ("implicit", implicit),
                    ("invalid", invalid), ("offsets", offsets)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1], got {v!r}")
    if not pipelines:
        raise ValueError("at least one pipeline")
    t0 = parse_start(start)
    horizon = t0 + days * DAY - 1
    evs = event_stream(seed, fixed_arrivals(seed, leads, t0, days), pipelines=tuple(pipelines), horizon=horizon)
    return arrival_stream(evs, seed=seed, duplicates=duplicates, late=late, implicit=implicit,
                          invalid=invalid, offsets=offsets)


def generate(*, leads: int, seed: int = 0, start: str = "2026-01-01T00:00:00Z", days: int = 120,
             duplicates: float = 0.0, late: float = 0.0, implicit: float = 0.0, invalid: float = 0.0,
             offsets: float = 0.0, pipelines: tuple[str, ...] = ("default",)) -> Iterator[bytes]:
    """Synthetic CRM input: one JSON line (bytes, no newline) per input, in arrival order.

    `leads` leads are created over `days` days from `start`; nothing happens after the
    period ends (journeys still running are cut off: a snapshot). The knobs are the
    fractions described in `arrival_stream`; all 0 gives clean, valid, event-time
    ordered events. Pipelines other than the first get ~20 % of the leads, split evenly
    (they use the default stage names; a configuration must declare them, otherwise
    their events are dead-lettered as `unknown_pipeline`)."""
    tagged = generate_tagged(leads=leads, seed=seed, start=start, days=days, duplicates=duplicates, late=late,
                             implicit=implicit, invalid=invalid, offsets=offsets, pipelines=pipelines)
    return map(_LINE, tagged)


_LINE = operator.itemgetter(2)
