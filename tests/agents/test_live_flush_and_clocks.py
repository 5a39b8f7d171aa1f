"""Issue 12, in the live shell without a broker: a crash at any step of a flush raises no alert
twice; alert time per partition, no storm while catching up.

Shared builders and the Kafka-like feed in tests/support/live_cases.py.
"""
from __future__ import annotations

import asyncio
from typing import NamedTuple

import orjson
import pytest

from pulse.agents.batching import DurableAcks
from pulse.agents.live import LivePulse
from pulse.dev.synth import generate
from tests.support.live_cases import CFG, TYPE_OF_TOPIC, Fakes, created, feed, moved, topic_offsets, ts


# -- issue 12: a crash at any step of a flush raises no alert twice ------------------------------

class Crash(Exception):
    """The process dies here (what os._exit would do to a worker)."""


class Msg(NamedTuple):
    topic: str
    partition: int
    offset: int
    value: bytes


class FlushWorld:
    """The broker as a flush sees it: the notifications topic, the dead letters, the changelog,
    and the committed (acked) input offsets. `crash_at` kills the worker at one point of the
    first flush that carries a `lead.stale_resolved`: "before" any write, or right after the
    write that put the alerts ("alerts"), or the state ("state"), on the broker."""

    def ack(self, batch) -> None:
        for m in batch.messages:
            self.acked[m.topic] = max(m.offset, self.acked.get(m.topic, -1))

    def __init__(self, crash_at: str | None):
        self.crash_at = crash_at
        self.notifications: list[bytes] = []
        self.dead: list[bytes] = []
        self.changelog: list[tuple[bytes, bytes]] = []
        self.acked: dict[str, int] = {}
        self.crashed = False

    async def run(self, routed: list, every: int = 7) -> None:
        """One worker's life: restore, consume what was not acked, flush every `every` messages."""
        armed = [False]

        def send(role, key, value, partition, headers):
            acks.output((role, value), role == "notifications")
            if role == "notifications" and b'"lead.stale_resolved"' in value and not self.crashed:
                armed[0] = self.crash_at is not None

        def crash(point: str) -> None:
            if armed[0] and point == self.crash_at:
                self.crashed = True
                raise Crash(point)

        async def write_outputs(records):
            crash("before")
            for role, value in records:
                (self.notifications if role == "notifications" else self.dead).append(value)
            if any(role == "notifications" for role, _ in records):
                crash("alerts")

        async def write_state(state):
            crash("before")
            for records in state.values():
                self.changelog.extend(records)
            crash("state")

        live = LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock="event", send=send, now_us=lambda: 0)
        acks = DurableAcks(take_state=live.take_dirty, write_outputs=write_outputs, write_state=write_state,
                           ack=self.ack, generation=lambda: 1)
        live.restore([0], list(self.changelog), list(self.notifications))
        live.tick()                     # the alert timer may run before the redelivered input is in
        await acks.flush()
        todo = [r for r in routed if r[1] > self.acked.get(r[0], -1)]      # redelivered from the commit
        for i, (topic, offset, line) in enumerate(todo, 1):
            live.on_message(topic, 0, offset, None, line)
            acks.processed([Msg(topic, 0, offset, line)], 1)
            if i % every == 0 or i == len(todo):
                live.tick()
                await acks.flush()


def alert_ids(values: list[bytes]) -> list[str]:
    return [orjson.loads(v)["alert_id"] for v in values]


@pytest.mark.parametrize("crash_at", ["before", "alerts", "state"])
def test_a_crash_at_any_step_of_a_flush_raises_no_alert_twice(crash_at):
    lines = list(generate(leads=80, seed=11, late=0.05))
    routed = topic_offsets(lines)
    calm = FlushWorld(None)
    asyncio.run(calm.run(routed))
    world = FlushWorld(crash_at)
    with pytest.raises(Crash):
        asyncio.run(world.run(routed))
    asyncio.run(world.run(routed))                  # the restarted worker
    ids = alert_ids(world.notifications)
    repeated = {i for i in ids if ids.count(i) > 1}
    assert not repeated, [orjson.loads(v) for v in world.notifications if orjson.loads(v)["alert_id"] in repeated]
    assert {i for i in alert_ids(calm.notifications)} == set(ids)       # nothing lost either
    again = Fakes().live()
    again.restore([0], world.changelog, world.notifications)
    reference = Fakes().live()
    reference.restore([0], calm.changelog, calm.notifications)
    assert again.report() == reference.report()


# -- issue 12: alert time per partition; no storm while catching up ------------------------------

def notified(sent) -> list[dict]:
    return [orjson.loads(v) for role, _, v, _, _ in sent if role == "notifications"]


def test_event_clock_checks_a_partition_against_its_own_time_wherever_the_ticks_fall():
    """Partition 1 runs days ahead of partition 0: lead A (partition 0) moves on in time, so it
    was never stale in its own partition's time. And the ids do not depend on when ticks run."""
    p0 = [created("a", "A", "2026-03-01T00:00:00Z"), created("x", "X", "2026-03-02T00:00:00Z"),
          moved("a2", "A", "2026-03-03T12:00:00Z", "contacted"), created("y", "Y", "2026-03-09T00:00:00Z")]
    p1 = [created("b", "B", "2026-03-01T00:00:00Z"), created("c", "C", "2026-03-20T00:00:00Z")]

    def run(tick_every: int) -> set[str]:
        fakes = Fakes()
        live = fakes.live()
        live.restore([0, 1], [])
        for i, line in enumerate(p1):                # partition 1 is consumed first: it is far ahead
            live.on_message("c", 1, i, None, line)
        for n, (topic, offset, line) in enumerate(topic_offsets(p0), 1):
            live.on_message(topic, 0, offset, None, line)
            if n % tick_every == 0:
                live.tick()
        live.tick()
        return {(a["lead_id"], a["type"], a["level"]) for a in notified(fakes.sent)}

    runs = [run(every) for every in (1, 2, 3, 100)]
    assert all(r == runs[0] for r in runs), runs
    # A left "new" after 2.5 days of its partition's time: never stale. X was, by Mar 9 (level 2).
    # Watched from their start, stays raise each level the partition's time passes.
    assert runs[0] == {("B", "lead.stale", 1), ("B", "lead.stale", 2), ("B", "lead.stale", 3),
                       ("X", "lead.stale", 1), ("X", "lead.stale", 2)}


def test_a_tick_in_steps_raises_a_partition_s_alerts_per_step_and_skips_a_partition_revoked_meanwhile():
    """The worker's timer runs LivePulse.ticking one partition per turn of the event loop (wall
    clock here: ticks raise what fell due). In one piece or in steps, the same alerts; a
    partition revoked between two steps is not touched."""
    def world():
        sent = []
        live = LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock="wall", send=lambda *a: sent.append(a),
                         now_us=lambda: ts("2026-03-10T00:00:00Z"))
        live.restore([0, 1], [])
        live.on_message("c", 0, 0, None, created("a", "A", "2026-03-05T00:00:00Z"))
        live.on_message("c", 1, 0, None, created("b", "B", "2026-03-05T00:00:00Z"))
        return sent, live

    def stale(sent) -> set:
        return {(a["lead_id"], a["level"]) for a in notified(sent) if a["type"] == "lead.stale"}

    whole, live = world()
    assert live.tick() == 2 and stale(whole) == {("A", 1), ("B", 1)}
    stepped, live = world()
    assert list(live.ticking()) == [1, 1] and stale(stepped) == stale(whole)

    revoked, live = world()
    steps = live.ticking()
    assert next(steps) == 1 and stale(revoked) == {("A", 1)}       # partition 0's step
    live.drop([1])                                                  # revoked before its step
    assert list(steps) == [] and stale(revoked) == {("A", 1)}


def test_event_clock_judges_a_level_by_the_lead_s_events_not_by_when_its_move_arrived():
    """Lead A leaves "new" (3 days) after 4 days; its move arrives after B's creation has taken
    the partition's time past 6 days. Level 1 happened (A was there on day 3), level 2 did
    not (A had left by day 6): the same alerts as in time order, then the resolution."""
    a0, a1 = created("a", "A", "2026-03-01T00:00:00Z"), moved("a2", "A", "2026-03-05T00:00:00Z", "contacted")
    b0 = created("b", "B", "2026-03-07T00:00:00Z")

    def run(lines) -> list[tuple]:
        fakes = Fakes()
        live = fakes.live()
        live.restore([0], [])
        feed(live, lines)
        return sorted((a["lead_id"], a["type"], a["level"]) for a in notified(fakes.sent))

    in_order, move_late = run([a0, a1, b0]), run([a0, b0, a1])
    assert in_order == move_late == [("A", "lead.stale", 1), ("A", "lead.stale_resolved", 1)]


def _event_clock_alerts(lines: list[tuple[str, bytes]]) -> list[tuple]:
    """(lead, type, stage, level) of the alerts of `lines` (type, line) fed in order, event clock."""
    sent = []
    live = LivePulse(CFG, type_of_topic={t: t for t in TYPES}, clock="event", send=lambda *a: sent.append(a),
                     now_us=lambda: 0)
    live.restore([0], [])
    offsets: dict[str, int] = {}
    for kind, line in lines:
        offsets[kind] = offsets.get(kind, -1) + 1
        live.on_message(kind, 0, offsets[kind], None, line)
    live.tick()
    return [(a["lead_id"], a["type"], a["stage"], a["level"]) for a in notified(sent)]


TYPES = ("lead.created", "lead.updated", "lead.stage_changed", "deal.closed")


def _line(kind: str, eid: str, lead: str, at: str, **extra) -> tuple[str, bytes]:
    return kind, orjson.dumps({"type": kind, "event_id": eid, "lead_id": lead, "occurred_at": at, **extra})


@pytest.mark.parametrize("mover", [
    _line("lead.updated", "u", "A", "2026-03-11T00:00:00Z", amount=5.0),        # fields only (SPEC 3.8)
    _line("lead.stage_changed", "s", "A", "2026-03-11T00:00:00Z", to_stage="new"),     # its own stage (3.3)
    _line("lead.created", "c2", "A", "2026-03-11T00:00:00Z", owner="zoe"),      # created again (3.1)
    _line("lead.created", "b", "B", "2026-03-11T00:00:00Z"),                    # another lead
], ids=["update", "same-stage-move", "second-create", "other-lead"])
def test_event_clock_alerts_do_not_depend_on_which_event_moved_the_clock(mover):
    """Lead A sits in "new" (3 days) from Mar 1; one event dated Mar 11 takes the partition's
    time past all three levels. Whichever event it is, A's levels are raised one by one, as the
    clock passed them (a fields-only event of A's own used to reschedule its stay as first
    seen then: only level 3)."""
    alerts = _event_clock_alerts([_line("lead.created", "a", "A", "2026-03-01T00:00:00Z"), mover])
    assert [a for a in alerts if a[0] == "A"] == [("A", "lead.stale", "new", level) for level in (1, 2, 3)]


@pytest.mark.parametrize("then", [
    _line("deal.closed", "d", "L", "2026-03-06T00:00:00Z", outcome="won"),
    _line("lead.created", "z", "Z", "2026-03-06T00:00:00Z"),
], ids=["closed-later", "clock-moved-by-another-lead"])
def test_a_stay_that_ends_at_the_instant_it_began_is_never_stale(then):
    """L enters "new" and moves on to "prospecting" at the same instant (SPEC 3 orders the two
    rows); 5 days later its stay in "new" is not 5 days old: it lasted no time at all."""
    alerts = _event_clock_alerts([
        _line("lead.stage_changed", "m1", "L", "2026-03-01T00:00:00Z", to_stage="new"),
        _line("lead.stage_changed", "m2", "L", "2026-03-01T00:00:00Z", to_stage="prospecting"),
        then])
    assert [a for a in alerts if a[0] == "L" and a[2] == "new"] == []


def test_a_stay_left_later_at_one_instant_with_a_close_still_raises_its_levels():
    """(engineer A's case) A sits in "new" 19 days, then moves and closes at one instant: the
    stay ends then, after all three levels."""
    alerts = _event_clock_alerts([
        _line("lead.created", "c", "L", "2026-03-01T00:00:00Z"),
        _line("lead.stage_changed", "b", "L", "2026-03-20T00:00:00Z", to_stage="prospecting"),
        _line("deal.closed", "d", "L", "2026-03-20T00:00:00Z", outcome="won")])
    assert [a for a in alerts if a[1] == "lead.stale"] == [("L", "lead.stale", "new", level) for level in (1, 2, 3)]


def test_wall_clock_holds_stale_checks_of_a_partition_catching_up():
    now = ts("2026-03-10T12:00:00Z")
    ends = {"c": 2, "s": 0}                          # what the consumer last saw on the broker
    known = [False]
    fakes = Fakes()
    live = LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock="wall", send=lambda *a: fakes.sent.append(a),
                     now_us=lambda: now, input_ends=lambda p: dict(ends) if known[0] else None, lag_hold=1)
    live.restore([0], [])
    live.on_message("c", 0, 0, None, created("a", "A", "2026-03-01T00:00:00Z"))   # stale by now ...
    live.on_message("c", 0, 1, None, created("b", "B", "2026-03-01T00:00:00Z"))
    assert live.tick() == 0 and live.checks_held == 2 and live.partitions_held == 1   # ends unknown: held
    known[0] = True
    ends["s"] = 3                                    # ... but their moves are waiting on the broker
    assert live.tick() == 0 and live.checks_held == 2
    live.on_message("s", 0, 0, None, moved("a2", "A", "2026-03-02T00:00:00Z", "contacted"))
    live.on_message("s", 0, 1, None, moved("b2", "B", "2026-03-02T00:00:00Z", "contacted"))
    assert live.tick() == 0 and live.checks_held == 2                # one left: still catching up
    ends["s"] = 10                                   # more arrived meanwhile: the target stays
    live.on_message("s", 0, 2, None, moved("b3", "B", "2026-03-09T00:00:00Z", "qualified"))
    assert live.tick() == 1 and live.checks_held == 0 and live.partitions_held == 0  # reached: checks run
    assert [(a["lead_id"], a["stage"], a["level"]) for a in notified(fakes.sent)] == [("A", "contacted", 1)]
    live.on_message("c", 0, 2, None, created("d", "D", "2026-03-01T00:00:00Z"))
    assert live.tick() == 0 and live.partitions_held == 1 and live.checks_held == 1   # 7 behind: held again
    # Just assigned (a restart): any backlog at all is applied before the first checks run.
    again = LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock="wall", send=lambda *a: fakes.sent.append(a),
                      now_us=lambda: now, input_ends=lambda p: {"c": 2, "s": 1}, lag_hold=1_000)
    again.restore([0], [])
    again.on_message("c", 0, 0, None, created("e", "E", "2026-03-01T00:00:00Z"))
    again.on_message("c", 0, 1, None, created("f", "F", "2026-03-01T00:00:00Z"))
    assert again.tick() == 0 and again.checks_held == 2             # 1 behind, but just assigned
    again.on_message("s", 0, 0, None, moved("e2", "E", "2026-03-10T00:00:00Z", "contacted"))
    assert again.tick() == 1 and again.checks_held == 0             # F only: E's move was in the backlog
