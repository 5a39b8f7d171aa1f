"""Realistic synthetic CRM traffic (SPEC section 1 events), pure and seeded.

The model, in three layers, each usable on its own:

1. **Arrivals** — lead creation times: an inhomogeneous Poisson process with weekday
   seasonality, a working-hours daily profile (per team time zone) and a mild growth
   trend. `fixed_arrivals` draws exactly N of them over a period (the Poisson process
   conditioned on its count); `poisson_arrivals` is an unbounded stream at a given
   daily rate (for a live `pulse simulate`).
2. **Journeys** — `LeadJourney.build` simulates one lead from creation to close (or
   to silence): log-normal dwell per stage, stage-dependent advance / regress / lost /
   won probabilities scaled by the owner's skill, long stalls, leads that go dark (stay
   open for good: they go stale), amount set at creation or later and revised,
   owner hand-offs, same-stage "opportunity updated" events, a few reopens after a
   close and a few superseding closes (a second `deal.closed` correcting the first).
3. **Streams** — `event_stream` merges the journeys in event-time order through a
   heap of each lead's next event (journeys are built lazily as their lead arrives,
   so an unbounded arrival stream works); `arrival_stream` turns that into what a
   consumer receives, with optional messiness: exact re-sends, late (delayed)
   events, dropped `lead.created` (implicit creates), invalid lines of every
   dead-letter kind, and timestamps written with a non-`Z` offset.

A live feed (e.g. `pulse simulate`) composes the layers with an unbounded arrival
stream and paces on `Emitted.arrival` (epoch seconds, non-decreasing):

    t0 = int(time.time())
    events = event_stream(seed, poisson_arrivals(seed, t0, rate_per_day=2000))
    for e in arrival_stream(events, seed=seed, late=0.02, duplicates=0.01):
        sleep_until(t0 + (e.arrival - t0) / speedup); publish(e.line)

`generate(...)` is the one-call API: JSON lines (bytes, no newline) in arrival order.
Same arguments, same bytes. The journeys depend only on `seed`, `leads`, `start`,
`days` and `pipelines`; the messiness knobs draw from their own random streams, so a
messy file holds the same journeys (same `event_id`s) as the clean one plus noise.

Personal data (contact names, e-mails, phones, company names, call notes) is only ever
put inside `attributes`; `PII_TOKENS` lists every string it is built from, so tests
can check nothing of it appears elsewhere.
"""
from __future__ import annotations

import heapq
import math
import operator
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator, NamedTuple

import orjson

__all__ = [
    "DEFAULT_STAGES", "TEAMS", "REPS", "PII_TOKENS", "MESSY",
    "StageParams", "DEFAULT_STAGE_PARAMS", "LeadJourney", "SynthEvent", "Emitted",
    "fixed_arrivals", "poisson_arrivals", "event_stream", "arrival_stream",
    "generate", "generate_tagged", "format_ts", "parse_start",
]

DAY = 86_400
HOUR = 3_600
_new = tuple.__new__     # builds a NamedTuple without its Python-level __new__ (hot paths)

# --------------------------------------------------------------------------------------
# Static world: stages, teams, reps, reasons, fake people
# --------------------------------------------------------------------------------------

DEFAULT_STAGES: tuple[str, ...] = ("new", "prospecting", "qualified", "contacted", "proposal", "negotiation")

# team -> (currency choices, UTC offsets in seconds that its reps work in)
TEAMS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "emea": (("EUR", "EUR", "GBP"), (0, 1 * HOUR, 2 * HOUR)),
    "amer": (("USD",), (-5 * HOUR, -6 * HOUR, -8 * HOUR, -3 * HOUR)),
    "apac": (("USD", "AUD", "SGD"), (8 * HOUR, 10 * HOUR, 5 * HOUR + 1800, 9 * HOUR)),
}
_TEAM_SIZES = (("emea", 18), ("amer", 20), ("apac", 12))


class Rep(NamedTuple):
    name: str       # rep-NN
    team: str
    offset: int     # UTC offset (s) of the rep's working day
    skill: float    # > 1: converts better than average
    weight: float   # share of new leads routed to this rep


def _make_reps() -> tuple[Rep, ...]:
    rng = random.Random("pulse-synth:reps")
    reps = []
    n = 0
    for team, size in _TEAM_SIZES:
        offsets = TEAMS[team][1]
        for _ in range(size):
            n += 1
            reps.append(Rep(
                name=f"rep-{n:02d}", team=team, offset=rng.choice(offsets),
                skill=math.exp(rng.gauss(0.0, 0.25)),
                weight=math.exp(rng.gauss(0.0, 0.5)),   # uneven lead routing
            ))
    return tuple(reps)


REPS: tuple[Rep, ...] = _make_reps()
_REPS_BY_TEAM: dict[str, tuple[Rep, ...]] = {t: tuple(r for r in REPS if r.team == t) for t in TEAMS}
_REP_CUM = []
_acc = 0.0
for _r in REPS:
    _acc += _r.weight
    _REP_CUM.append(_acc)
del _acc, _r

SOURCES = ("marketing", "sales", "partner")
_SOURCE_CUM = (0.55, 0.85, 1.0)
# median amount by source (currency units); log-normal with sigma _AMOUNT_SIGMA
_AMOUNT_MEDIAN = {"marketing": 8_000.0, "sales": 15_000.0, "partner": 25_000.0}
_AMOUNT_SIGMA = 0.9

LOSS_REASONS = ("not_a_fit", "unresponsive", "no_budget", "duplicate", "timing", "competitor", "price", "no_decision")
# cumulative weights over LOSS_REASONS for early / middle / late stages
_LOSS_CUM = {
    "early": (35, 65, 80, 90, 100, 100, 100, 100),
    "mid": (15, 40, 60, 60, 80, 100, 100, 100),
    "late": (0, 5, 15, 15, 25, 55, 85, 100),
}

_FIRST = (("Ana", "ana"), ("Ben", "ben"), ("Chloé", "chloe"), ("David", "david"), ("Elif", "elif"),
          ("Farah", "farah"), ("Giulia", "giulia"), ("Hiro", "hiro"), ("Ines", "ines"), ("José", "jose"),
          ("Kofi", "kofi"), ("Lena", "lena"), ("Łukasz", "lukasz"), ("Maya", "maya"), ("Noah", "noah"),
          ("Olga", "olga"), ("Priya", "priya"), ("Quinn", "quinn"), ("Rafael", "rafael"), ("Sofia", "sofia"),
          ("Tomás", "tomas"), ("Uma", "uma"), ("Viktor", "viktor"), ("Wen", "wen"), ("Yusuf", "yusuf"),
          ("Zoë", "zoe"), ("Aiko", "aiko"), ("Bruno", "bruno"), ("Carmen", "carmen"), ("Dmitri", "dmitri"))
_LAST = (("Silva", "silva"), ("Okafor", "okafor"), ("Müller", "muller"), ("Tanaka", "tanaka"),
         ("Kowalski", "kowalski"), ("Nguyen", "nguyen"), ("García", "garcia"), ("Smith", "smith"),
         ("Rossi", "rossi"), ("Haddad", "haddad"), ("Johansson", "johansson"), ("Patel", "patel"),
         ("Dubois", "dubois"), ("O'Brien", "obrien"), ("Yilmaz", "yilmaz"), ("Kim", "kim"),
         ("Novak", "novak"), ("Mendes", "mendes"), ("Fischer", "fischer"), ("Ivanova", "ivanova"))
_COMPANY_A = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Tyrell",
              "Cyberdyne", "Soylent", "Wonka", "Gringotts", "Oceanic", "Massive", "Nakatomi")
_COMPANY_B = (("Industries", "industries"), ("GmbH", "gmbh"), ("Ltd", "ltd"), ("Labs", "labs"),
              ("Holdings", "holdings"), ("S.A.", "sa"), ("K.K.", "kk"), ("Pty", "pty"))
_CAMPAIGNS = ("webinar-q1", "ebook-pipeline", "trade-show", "paid-search", "newsletter", "referral")

# Every string personal data is built from (display and ASCII forms), for leak tests.
PII_TOKENS: frozenset[str] = frozenset(
    [f for pair in _FIRST for f in pair] + [s for pair in _LAST for s in pair]
    + list(_COMPANY_A) + [b for pair in _COMPANY_B for b in pair]
)

# --------------------------------------------------------------------------------------
# Stage behaviour
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StageParams:
    """How a stay in one stage ends. Probabilities of the four outcomes sum to 1."""

    dwell_median_h: float   # log-normal dwell: median (hours)
    dwell_sigma: float      # ... and sigma of its logarithm
    p_advance: float
    p_regress: float
    p_lost: float
    p_won: float
    p_stall: float          # the stay lasts several times longer than usual
    p_dark: float           # the lead goes silent for good (stays open: goes stale)
    updates_mean: float     # mean number of same-stage "opportunity updated" events
    loss_mix: str           # "early", "mid" or "late" loss reasons


DEFAULT_STAGE_PARAMS: tuple[StageParams, ...] = (
    #             median_h sigma  adv   reg   lost  won   stall dark  upd   reasons
    StageParams(10.0, 1.1, 0.72, 0.00, 0.28, 0.00, 0.05, 0.04, 0.5, "early"),   # new
    StageParams(48.0, 1.0, 0.64, 0.03, 0.33, 0.00, 0.07, 0.04, 0.9, "early"),   # prospecting
    StageParams(72.0, 0.9, 0.74, 0.05, 0.21, 0.00, 0.07, 0.03, 1.2, "mid"),     # qualified
    StageParams(60.0, 0.9, 0.68, 0.07, 0.23, 0.02, 0.08, 0.03, 1.2, "mid"),     # contacted
    StageParams(150.0, 0.8, 0.55, 0.08, 0.24, 0.13, 0.10, 0.03, 2.0, "late"),   # proposal
    StageParams(96.0, 0.8, 0.00, 0.10, 0.30, 0.60, 0.08, 0.02, 1.8, "late"),    # negotiation
)


def _params_for(stages: tuple[str, ...]) -> tuple[StageParams, ...]:
    """Stage behaviour for any stage list: the default table, stretched by position."""
    n = len(stages)
    if n == len(DEFAULT_STAGE_PARAMS):
        return DEFAULT_STAGE_PARAMS
    m = len(DEFAULT_STAGE_PARAMS) - 1
    out = []
    for i in range(n):
        p = DEFAULT_STAGE_PARAMS[round(i * m / (n - 1)) if n > 1 else m]
        if i == n - 1 and p.p_advance:   # the last stage cannot advance: its advances win
            p = StageParams(p.dwell_median_h, p.dwell_sigma, 0.0, p.p_regress, p.p_lost,
                            p.p_won + p.p_advance, p.p_stall, p.p_dark, p.updates_mean, p.loss_mix)
        if i == 0 and p.p_regress:
            p = StageParams(p.dwell_median_h, p.dwell_sigma, p.p_advance, 0.0, p.p_lost + p.p_regress,
                            p.p_won, p.p_stall, p.p_dark, p.updates_mean, p.loss_mix)
        out.append(p)
    return tuple(out)


# --------------------------------------------------------------------------------------
# Time helpers
# --------------------------------------------------------------------------------------

_HOUR_PREFIX: dict[int, str] = {}   # hours since epoch -> "YYYY-MM-DDTHH:"
_MMSS = tuple(f"{m:02d}:{s:02d}" for m in range(60) for s in range(60))
_EPOCH = datetime(1970, 1, 1)


def format_ts(t: int, offset: int = 0, z: bool = True) -> str:
    """RFC 3339 text of epoch second `t`, written in UTC offset `offset` (seconds).

    `z`: write a zero offset as `Z` (else `+00:00`)."""
    lt = t + offset
    hours, r = divmod(lt, HOUR)
    p = _HOUR_PREFIX.get(hours)
    if p is None:
        if len(_HOUR_PREFIX) > 200_000:
            _HOUR_PREFIX.clear()
        p = _HOUR_PREFIX[hours] = (_EPOCH + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:")
    if offset == 0 and z:
        return p + _MMSS[r] + "Z"
    sign = "+" if offset >= 0 else "-"
    oh, om = divmod(abs(offset) // 60, 60)
    return f"{p}{_MMSS[r]}{sign}{oh:02d}:{om:02d}"


def parse_start(text: str) -> int:
    """Epoch seconds of an RFC 3339 timestamp with offset (e.g. `2026-01-01T00:00:00Z`)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"timestamp without offset: {text!r}")
    return int(dt.astimezone(timezone.utc).timestamp())


def _weekday(day: int) -> int:
    """0 = Monday for a day number since 1970-01-01 (a Thursday)."""
    return (day + 3) % 7


_WEEKDAY_WEIGHT = (1.0, 1.05, 1.05, 1.0, 0.85, 0.22, 0.15)
_TEAM_OFFSETS = tuple(r.offset for r in REPS)


def _working_time(rng: random.Random, t: int, offset: int) -> int:
    """Usually push `t` into the next working hours (Mon–Fri 08–19 local); never earlier."""
    day, sod = divmod(t + offset, DAY)
    wd = (day + 3) % 7
    if wd < 5 and 8 * HOUR <= sod < 19 * HOUR:
        return t
    if rng.random() < 0.12:         # some after-hours activity
        return t
    if sod >= 8 * HOUR or wd >= 5:
        day += 1
    while (day + 3) % 7 >= 5:
        day += 1
    return day * DAY + 8 * HOUR + int(rng.random() * 10 * HOUR) - offset


def _times_in_day(rng: random.Random, day_start: int, k: int) -> list[int]:
    """k lead-creation times for the UTC day starting at `day_start` (may spill ±14 h)."""
    out = []
    for _ in range(k):
        if rng.random() < 0.8:      # in someone's working day
            off = rng.choice(_TEAM_OFFSETS)
            h = min(max(rng.gauss(13.0, 2.6), 5.0), 23.0)
            out.append(day_start + int(h * HOUR) - off)
        else:                       # web forms, imports, night owls
            out.append(day_start + int(rng.random() * DAY))
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    if lam < 30:
        L, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= L:
                return k
            k += 1
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def _day_weight(day: int, i: int, days: float, growth: float) -> float:
    return _WEEKDAY_WEIGHT[_weekday(day)] * (1.0 + growth * i / days)


def _reorder(per_day: Iterable[list[int]], first_day: int) -> Iterator[int]:
    """Sorted merge of per-day time lists whose items spill at most a day either side."""
    heap: list[int] = []
    for i, times in enumerate(per_day):
        for t in times:
            heapq.heappush(heap, t)
        safe = (first_day + i - 1) * DAY
        while heap and heap[0] < safe:
            yield heapq.heappop(heap)
    while heap:
        yield heapq.heappop(heap)


def fixed_arrivals(seed: int | str, n: int, start: int, days: int, growth: float = 0.3) -> Iterator[int]:
    """Exactly `n` lead-creation times in [start, start + days·86400), ascending.

    Inhomogeneous Poisson conditioned on its count: weekday weights, a linear growth
    of `growth` over the period, working-hours profile. Times spilling out of the
    period are clamped into it."""
    rng = random.Random(f"pulse-synth:arrivals:{seed}")
    first_day = start // DAY
    end = start + days * DAY
    cum, acc = [], 0.0
    for i in range(days):
        acc += _day_weight(first_day + i, i, days, growth)
        cum.append(acc)
    counts = [0] * days
    for d in rng.choices(range(days), cum_weights=cum, k=n):
        counts[d] += 1
    per_day = (_inside(rng, _times_in_day(rng, start + i * DAY, counts[i]), start + i * DAY, start, end)
               for i in range(days))
    return _reorder(per_day, first_day)


def _inside(rng: random.Random, times: list[int], day_start: int, lo: int, hi: int | None) -> list[int]:
    """`times`, each one that spilled out of [lo, hi) redrawn uniformly in its day."""
    out = []
    for t in times:
        if t < lo or (hi is not None and t >= hi):
            a = max(lo, day_start)
            b = day_start + DAY if hi is None else min(hi, day_start + DAY)
            t = a + int(rng.random() * (b - a))
        out.append(t)
    return out


def poisson_arrivals(seed: int | str, start: int, rate_per_day: float, growth_per_day: float = 0.0,
                     days: int | None = None) -> Iterator[int]:
    """Unbounded (or `days`-long) Poisson lead-creation times from `start`, ascending."""
    rng = random.Random(f"pulse-synth:arrivals:{seed}")
    first_day = start // DAY

    def per_day() -> Iterator[list[int]]:
        i = 0
        while days is None or i < days:
            lam = rate_per_day * _WEEKDAY_WEIGHT[_weekday(first_day + i)] * (1.0 + growth_per_day * i)
            yield _inside(rng, _times_in_day(rng, start + i * DAY, _poisson(rng, lam)), start + i * DAY, start, None)
            i += 1

    return _reorder(per_day(), first_day)


# --------------------------------------------------------------------------------------
# Journeys
# --------------------------------------------------------------------------------------


class SynthEvent(NamedTuple):
    """One event of a journey: its time, its JSON object, and its owner's UTC offset."""

    t: int                  # occurred_at, epoch seconds
    doc: dict[str, Any]     # the SPEC section 1 object (occurred_at written with `Z`)
    offset: int             # the owner's local offset (for rendering with a non-Z offset)


_MAX_EVENTS = 60


def _lognormal_h(rng: random.Random, median_h: float, sigma: float) -> int:
    return max(60, int(median_h * HOUR * math.exp(rng.gauss(0.0, sigma))))


def _pick_rep(rng: random.Random) -> Rep:
    return REPS[_bisect(_REP_CUM, rng.random() * _REP_CUM[-1])]


def _bisect(cum: list[float] | tuple, x: float) -> int:
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _loss_reason(rng: random.Random, mix: str) -> str:
    return LOSS_REASONS[_bisect(_LOSS_CUM[mix], rng.random() * 100)]


def _round_amount(x: float) -> int:
    return max(500, int(round(x / 100.0)) * 100)


class LeadJourney:
    """One lead's whole life as a list of `SynthEvent`s in strictly increasing time.

    Built at once when the lead arrives (`build`); the stream layer only walks it."""

    __slots__ = ("lead_id", "pipeline", "events")

    def __init__(self, lead_id: str, pipeline: str, events: list[SynthEvent]):
        self.lead_id, self.pipeline, self.events = lead_id, pipeline, events

    @classmethod
    def build(cls, rng: random.Random, ids: Iterator[int], lead_id: str, pipeline: str, t0: int,
              stages: tuple[str, ...] = DEFAULT_STAGES, params: tuple[StageParams, ...] | None = None,
              horizon: int | None = None) -> "LeadJourney":
        """Simulate a lead created at `t0`; events after `horizon` are cut off.

        `ids` yields the numbers of the `evt-<n>` event ids, in build order."""
        params = params or _params_for(stages)
        nst = len(stages)
        rnd = rng.random
        events: list[SynthEvent] = []

        rep = _pick_rep(rng)
        x = rnd()
        source = SOURCES[0 if x < _SOURCE_CUM[0] else 1 if x < _SOURCE_CUM[1] else 2]
        currency = rng.choice(TEAMS[rep.team][0])
        median = _AMOUNT_MEDIAN[source] * (0.6 if pipeline != "default" else 1.0)
        amount: float | None = _round_amount(median * math.exp(rng.gauss(0.0, _AMOUNT_SIGMA)))
        if source == "marketing" and rnd() < 0.6:
            amount = None           # unknown until qualified
        stage = 0
        if source != "marketing" and nst > 2:
            y = rnd()
            stage = 2 if y < 0.06 else 1 if y < 0.25 else 0
        skill = rep.skill

        def emit(t: int, typ: str, extra: dict[str, Any] | None, attrs: dict[str, Any] | None = None) -> bool:
            if horizon is not None and t > horizon:
                return False
            doc = {"type": typ, "event_id": f"evt-{next(ids)}", "lead_id": lead_id, "occurred_at": format_ts(t),
                   "pipeline": pipeline, "owner": rep.name, "team": rep.team}
            if extra:
                doc.update(extra)
            if amount is not None:
                doc["amount"] = amount
                doc["currency"] = currency
            if attrs:
                doc["attributes"] = attrs
            events.append(_new(SynthEvent, (t, doc, rep.offset)))
            return True

        # --- creation
        fi = rng.randrange(len(_FIRST))
        la = rng.randrange(len(_LAST))
        ca = rng.randrange(len(_COMPANY_A))
        cb = rng.randrange(len(_COMPANY_B))
        person = f"{_FIRST[fi][0]} {_LAST[la][0]}"
        company = f"{_COMPANY_A[ca]} {_COMPANY_B[cb][0]}"
        email = f"{_FIRST[fi][1]}.{_LAST[la][1]}@{_COMPANY_A[ca].lower()}-{_COMPANY_B[cb][1]}.example"
        extra: dict[str, Any] = {"stage": stages[stage]} if stage or rnd() < 0.5 else {}  # or default
        extra["source"] = source
        attrs: dict[str, Any] = {"contact": {"name": person, "email": email}, "company": company}
        if rnd() < 0.4:
            attrs["contact"]["phone"] = f"+1-555-{rng.randrange(10000):04d}"
        if source == "marketing":
            attrs["campaign"] = rng.choice(_CAMPAIGNS)
        t = t0
        if not emit(t, "lead.created", extra, attrs):
            return cls(lead_id, pipeline, events)

        reopens = 0
        while len(events) < _MAX_EVENTS:
            p = params[stage]
            dwell = _lognormal_h(rng, p.dwell_median_h, p.dwell_sigma)
            if rnd() < p.p_stall:
                dwell = int(dwell * math.exp(rng.gauss(math.log(5.0), 0.5)))
            dark = rnd() < p.p_dark
            # edits during the stay: owner reassignments and amount revisions are CRM edits of
            # the deal (lead.updated, SPEC v2); touches (a call logged) are same-stage updates
            k = _poisson(rng, p.updates_mean * (0.5 if dark else 1.0))
            if k:
                for tu in sorted(t + 60 + int(rnd() * dwell) for _ in range(k)):
                    tu = max(tu, events[-1].t + 1)
                    u = rnd()
                    edit = u < 0.45
                    if u < 0.08:
                        team_reps = _REPS_BY_TEAM[rep.team]
                        rep = team_reps[rng.randrange(len(team_reps))]
                    elif edit:
                        if amount is None:
                            if stage >= 1:
                                amount = _round_amount(median * math.exp(rng.gauss(0.0, _AMOUNT_SIGMA)))
                        else:
                            amount = _round_amount(amount * math.exp(rng.gauss(0.0, 0.15)))
                    here = stages[stage]
                    note = {"note": f"call with {person}"} if rnd() < 0.2 else None
                    if edit:
                        ok = emit(tu, "lead.updated", None, note)
                    else:
                        ok = emit(tu, "lead.stage_changed", {"from_stage": here, "to_stage": here}, note)
                    if not ok:
                        return cls(lead_id, pipeline, events)
            if dark:
                break
            t = _working_time(rng, max(t + dwell, events[-1].t + 1), rep.offset)

            # how the stay ends
            padv = p.p_advance * skill
            pwon = p.p_won * skill
            preg = p.p_regress
            plost = max(0.05, 1.0 - padv - pwon - preg)
            x = rnd() * (padv + pwon + preg + plost)
            if x < padv:
                to = min(stage + (2 if rnd() < 0.05 else 1), nst - 1)
                outcome = "advance" if to > stage else "won"   # the last stage cannot advance
            elif x < padv + preg:
                to = max(0, stage - (2 if stage >= 2 and rnd() < 0.2 else 1))
                outcome = "regress" if to < stage else "lost"
            elif x < padv + preg + pwon:
                outcome = "won"
            else:
                outcome = "lost"
            if outcome == "advance" or outcome == "regress":
                if outcome == "advance":
                    if to >= 2 and stage < 2 and rnd() < 0.3:
                        # hand-off from the SDR to an account executive of the team
                        team_reps = _REPS_BY_TEAM[rep.team]
                        rep = team_reps[rng.randrange(len(team_reps))]
                    if amount is None and to >= 2:
                        amount = _round_amount(median * math.exp(rng.gauss(0.0, _AMOUNT_SIGMA)))
                    elif amount is not None and to == nst - 2 and rnd() < 0.4:
                        amount = _round_amount(amount * math.exp(rng.gauss(0.05, 0.3)))
                    elif amount is not None and to == nst - 1 and rnd() < 0.5:
                        amount = round(amount * (0.8 + 0.2 * rnd()), 2)
                if not emit(t, "lead.stage_changed", {"from_stage": stages[stage], "to_stage": stages[to]}):
                    break
                stage = to
                continue

            # close
            won = outcome == "won"
            if won and amount is not None and rnd() < 0.2:
                amount = round(amount * (0.9 + 0.15 * rnd()), 2)
            close = {"outcome": "won"} if won else {"outcome": "lost", "reason": _loss_reason(rng, p.loss_mix)}
            if not emit(t, "deal.closed", close):
                break
            if rnd() < 0.015:
                # a correction: a second deal.closed supersedes the first
                t = max(t + 60, t + _lognormal_h(rng, 20.0, 1.2))
                flip = rnd() < 0.75
                won = (not won) if flip else won
                if not flip and amount is not None:
                    amount = _round_amount(amount * math.exp(rng.gauss(0.0, 0.2)))
                close = {"outcome": "won"} if won else {"outcome": "lost", "reason": _loss_reason(rng, p.loss_mix)}
                emit(t, "deal.closed", close)
                break
            if reopens < 2 and rnd() < (0.01 if won else 0.03):
                # revived (lost) or fallen through (won): back into the pipeline
                reopens += 1
                t = _working_time(rng, t + _lognormal_h(rng, 30 * 24.0, 0.6), rep.offset)
                to = (nst - 1) if won else max(1, min(stage, nst - 1) - 1) if nst > 1 else 0
                if not emit(t, "lead.stage_changed", {"to_stage": stages[to]}):
                    break
                stage = to
                continue
            break
        return cls(lead_id, pipeline, events)


# --------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------


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
