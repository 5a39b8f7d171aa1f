"""The static world of the synthetic CRM (synth layer 0): stages and their behaviour, teams and
reps, sources, loss reasons, fake people (PII_TOKENS), and the time helpers every layer uses."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

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
