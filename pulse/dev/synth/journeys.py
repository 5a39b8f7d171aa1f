"""Synth layer 2, journeys: `LeadJourney.build` simulates one lead from creation to close
(or to silence); see the package docstring for what a journey holds."""
from __future__ import annotations

import math
import random
from typing import Any, Iterator, NamedTuple

from .arrivals import _poisson
from .world import (_AMOUNT_MEDIAN, _AMOUNT_SIGMA, _CAMPAIGNS, _COMPANY_A, _COMPANY_B, _FIRST, _LAST, _LOSS_CUM,
                    _REP_CUM, _REPS_BY_TEAM, _SOURCE_CUM, DEFAULT_STAGES, HOUR, LOSS_REASONS, REPS, SOURCES, TEAMS, Rep,
                    StageParams, _new, _params_for, _working_time, format_ts)


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
