"""StaleLeadDetector (SPEC 4.5, 6) and the live shell's durability logic, without a broker."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import msgspec
import orjson

from pulse.agents.live import LEAD_RECORD, PARTITION_RECORD, LivePulse
from pulse.config import load_config
from pulse.schemas.parse import parse_timestamp
from pulse.streams.alerts import StaleLeadDetector, alert_id
from pulse.streams.engine import PulseEngine
from pulse.synth import generate
from tests.support.kafka_feed import KafkaFeed

CFG = load_config(None)
DAY = 86_400_000_000


def ts(s: str) -> int:
    return parse_timestamp(s)


def created(eid, lead, at, **extra):
    return orjson.dumps({"type": "lead.created", "event_id": eid, "lead_id": lead, "occurred_at": at, **extra})


def moved(eid, lead, at, to):
    return orjson.dumps({"type": "lead.stage_changed", "event_id": eid, "lead_id": lead, "occurred_at": at,
                         "to_stage": to})


def engine_with(*lines) -> PulseEngine:
    engine = PulseEngine(CFG)
    for line in lines:
        engine.ingest(line)
    return engine


def test_levels_rise_one_at_a_time_strictly_after_each_limit():
    engine = engine_with(created("a", "A", "2026-03-01T00:00:00Z", owner="maria", team="emea", amount=10))
    lead = engine.lead("default", "A")
    detector = StaleLeadDetector(dict(CFG.pipelines))
    detector.watch("default", lead)
    start = ts("2026-03-01T00:00:00Z")
    assert detector.due(start + 3 * DAY, engine.lead_by_id) == []          # age == limit: not stale
    ((_, first),) = detector.due(start + 3 * DAY + 1, engine.lead_by_id)
    assert (first["level"], first["severity"], first["stage"], first["owner"], first["amount"]) == (
        1, "warning", "new", "maria", 10.0)
    assert first["summary"] == "Lead A has been in new for 3 days (limit 3 days)"
    assert detector.due(start + 6 * DAY, engine.lead_by_id) == []
    ((_, second),) = detector.due(start + 6 * DAY + 1, engine.lead_by_id)
    ((_, third),) = detector.due(start + 30 * DAY, engine.lead_by_id)
    assert [second["level"], third["level"]] == [2, 3]
    assert detector.due(start + 300 * DAY, engine.lead_by_id) == []         # 3 is the last level
    assert len({first["alert_id"], second["alert_id"], third["alert_id"]}) == 3


def test_a_stay_first_seen_at_level_three_raises_only_level_three():
    engine = engine_with(created("a", "A", "2026-03-01T00:00:00Z"))
    detector = StaleLeadDetector(dict(CFG.pipelines))
    detector.watch("default", engine.lead("default", "A"))
    raised = detector.due(ts("2026-03-01T00:00:00Z") + 10 * DAY, engine.lead_by_id)
    assert [m["level"] for _, m in raised] == [3]


def test_a_finished_stay_is_dropped_and_resolution_reports_the_move():
    engine = engine_with(created("a", "A", "2026-03-01T00:00:00Z"))
    lead = engine.lead("default", "A")
    detector = StaleLeadDetector(dict(CFG.pipelines))
    detector.watch("default", lead)
    detector.due(ts("2026-03-04T00:00:01Z"), engine.lead_by_id)
    engine.ingest(moved("b", "A", "2026-03-05T00:00:00Z", "qualified"))
    resolved = detector.resolution("default", lead, ts("2026-03-05T00:00:00Z"), lead.stage, None)
    assert (resolved["type"], resolved["resolved_by"], resolved["to_stage"], resolved["stage"], resolved["level"]) == (
        "lead.stale_resolved", "stage_changed", "qualified", "new", 1)
    assert resolved["alert_id"] == alert_id("lead.stale_resolved", "default", "A", "new", ts("2026-03-01T00:00:00Z"))
    assert detector.resolution("default", lead, ts("2026-03-05T00:00:00Z"), lead.stage, None) is None  # once
    # The old "new" entry is stale: nothing is raised for it; qualified (10 days) is watched afresh.
    detector.watch("default", lead)
    assert detector.due(ts("2026-03-15T00:00:00Z"), engine.lead_by_id) == []
    assert [m["stage"] for _, m in detector.due(ts("2026-03-15T00:00:01Z"), engine.lead_by_id)] == ["qualified"]


def test_alert_ids_are_the_same_in_every_process_and_differ_per_condition():
    """SPEC 6: the same condition always yields the same id -- also in another worker process
    (another hash seed) -- and the id changes with each part of the condition."""
    base = ["lead.stale", "p", "L", "new", 5, 1]
    conditions = [base] + [base[:i] + [other] + base[i + 1:] for i, other in
                           enumerate(["lead.stale_resolved", "q", "M", "qualified", 6, 2])]
    conditions.append(["lead.stale_resolved", "p", "L", "new", 5])           # a resolution: no level
    here = [alert_id(*c) for c in conditions]
    assert len(set(here)) == len(conditions)
    code = ("import json, sys; from pulse.streams.alerts import alert_id; "
            "print(json.dumps([alert_id(*c) for c in json.loads(sys.argv[1])]))")
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", code, json.dumps(conditions)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        assert json.loads(done.stdout) == here


# -- the live shell --------------------------------------------------------------------------

TYPE_OF_TOPIC = {"c": "lead.created", "s": "lead.stage_changed", "d": "deal.closed"}
TOPIC_OF_TYPE = {v: k for k, v in TYPE_OF_TOPIC.items()}


def write_dirty(live: LivePulse, changelog: list) -> None:
    """What the worker's flush writes (agents/app.py), appended to a list as (partition, key, value)."""
    for p, records in live.take_dirty().items():
        changelog.extend((p, k, v) for k, v in records)


class Fakes:
    def __init__(self):
        self.sent, self.changelog = [], []

    def live(self) -> LivePulse:
        return LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock="event",
                         send=lambda *a: self.sent.append(a), now_us=lambda: 0)

    def flush(self, live: LivePulse) -> None:
        write_dirty(live, self.changelog)


def feed(live, lines, start=0, stop=None):
    """Deliver lines[start:stop] as Kafka would: by type to a topic, all in partition 0 (offsets count
    over the whole sequence)."""
    for topic, offset, line in topic_offsets(lines)[start:stop]:
        live.on_message(topic, 0, offset, None, line)


def topic_offsets(lines):
    """(topic, offset, line) of each line, all in partition 0 (tests/support/kafka_feed.py)."""
    return [(topic, offset, line) for topic, _, offset, line in KafkaFeed(1, TOPIC_OF_TYPE).deliveries(lines)]


def test_dead_letters_carry_reason_and_source_and_the_original_bytes():
    fakes = Fakes()
    live = fakes.live()
    live.restore([0], [])
    live.on_message("s", 0, 7, b"L", b'{"type": "lead.created", "event_id": "x", "lead_id": "L", '
                                     b'"occurred_at": "2026-03-01T00:00:00Z"}')
    ((role, key, value, partition, headers),) = fakes.sent
    assert (role, key, partition) == ("deadletter", b"L", 0) and value.startswith(b'{"type": "lead.created"')
    headers = dict(headers)
    detail = headers.pop("pulse.detail").decode()
    assert headers == {"pulse.reason": b"invalid_event", "pulse.source.topic": b"s", "pulse.source.partition": b"0",
                       "pulse.source.offset": b"7"}
    # the detail names the field at fault and what the topic carries, never a value of the event
    assert detail.startswith("type:") and "lead.stage_changed" in detail and '"L"' not in detail


def test_flush_writes_leads_then_the_counters_and_restore_reproduces_the_report():
    lines = list(generate(leads=40, seed=2, duplicates=0.05, late=0.1, invalid=0.05))
    fakes = Fakes()
    live = fakes.live()
    live.restore([0], [])
    for topic, offset, line in topic_offsets(lines):
        live.on_message(topic, 0, offset, None, line)
    fakes.flush(live)
    kinds = [msgspec.msgpack.decode(v)[0] for _, _, v in fakes.changelog]
    assert kinds[-1] == PARTITION_RECORD and set(kinds[:-1]) == {LEAD_RECORD}
    expected = live.report()
    again = Fakes().live()
    again.restore([0], [(k, v) for _, k, v in fakes.changelog])
    assert again.report() == expected
    # Re-delivery of everything (offsets not committed) changes nothing: all skipped.
    for topic, offset, line in topic_offsets(lines):
        assert again.on_message(topic, 0, offset, None, line) == "skipped"
    assert again.report() == expected


def test_a_crash_between_lead_writes_and_the_counters_record_counts_nothing_twice():
    lines = list(generate(leads=30, seed=3, duplicates=0.05))
    routed = topic_offsets(lines)
    half = len(routed) // 2
    fakes = Fakes()
    live = fakes.live()
    live.restore([0], [])
    for topic, offset, line in routed[:half]:
        live.on_message(topic, 0, offset, None, line)
    fakes.flush(live)
    durable = len(fakes.changelog)
    for topic, offset, line in routed[half:]:
        live.on_message(topic, 0, offset, None, line)
    fakes.flush(live)
    expected = live.report()
    # The crash: the second flush's lead records made it, its counters record did not.
    survived = fakes.changelog[:-1]
    assert len(survived) > durable
    again = Fakes().live()
    again.restore([0], [(k, v) for _, k, v in survived])
    for topic, offset, line in routed:            # Kafka re-delivers from the last commit (here: the start)
        again.on_message(topic, 0, offset, None, line)
    assert again.report() == expected


def test_restart_raises_each_alert_exactly_once_whatever_the_flush_missed():
    lines = [created("a", "A", "2026-03-01T00:00:00Z"), created("b", "B", "2026-03-04T01:00:00Z"),
             created("c", "C", "2026-03-08T01:00:00Z")]
    fakes = Fakes()
    live = fakes.live()
    live.restore([0], [])
    feed(live, lines, 0, 1)
    fakes.flush(live)                                     # A durable, before any alert
    feed(live, lines, 1, 2)
    live.tick()                                           # T = Mar 4 01:00: A level 1 published ...
    published = [v for role, _, v, _, _ in fakes.sent if role == "notifications"]
    assert [orjson.loads(v)["level"] for v in published] == [1]
    # ... and the worker dies before flushing. Restart from the changelog and the topic:
    again = Fakes()
    restarted = again.live()
    restarted.restore([0], [(k, v) for _, k, v in fakes.changelog], published)
    feed(restarted, lines, 1, 2)                           # B re-delivered from the last commit
    restarted.tick()                                       # T is back at Mar 4 01:00: A is at level 1 ...
    assert [m for role, _, m, _, _ in again.sent if role == "notifications"] == []   # ... already said
    feed(restarted, lines, 2, 3)
    restarted.tick()
    after = [orjson.loads(v) for role, _, v, _, _ in again.sent if role == "notifications"]
    assert [a["level"] for a in after if a["lead_id"] == "A"] == [2]
    assert [a["level"] for a in after if a["lead_id"] == "B"] == [1]     # B went stale meanwhile


def test_wall_clock_holds_events_dated_after_now_until_the_clock_gets_there():
    clock = [ts("2026-03-01T12:00:00Z")]
    changelog = []
    live = LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock="wall", send=lambda *a: None,
                     now_us=lambda: clock[0])
    live.restore([0], [])
    live.on_message("c", 0, 0, None, created("a", "A", "2026-03-01T11:00:00Z"))
    assert live.on_message("c", 0, 1, None, created("b", "B", "2026-03-01T12:00:05Z")) == "held"   # 5 s ahead
    doc = live.report()
    assert (doc["data_quality"]["after_as_of"], doc["data_quality"]["applied"], doc["pipelines"]["default"]["open"]["count"]) == (1, 1, 1)
    write_dirty(live, changelog)
    restarted = LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock="wall", send=lambda *a: None,
                          now_us=lambda: clock[0])
    restarted.restore([0], [(k, v) for _, k, v in changelog])
    assert restarted.report() == doc                     # the held event survived the restart, still held
    clock[0] += 6_000_000
    restarted.tick()
    doc = restarted.report()
    assert (doc["data_quality"]["after_as_of"], doc["data_quality"]["applied"], doc["pipelines"]["default"]["open"]["count"]) == (0, 2, 2)



def test_report_time_is_now_on_the_wall_clock_and_the_latest_event_in_the_report_on_the_event_clock():
    now = ts("2026-03-10T00:00:00Z")
    for clock in ("wall", "event"):
        live = LivePulse(CFG, type_of_topic=TYPE_OF_TOPIC, clock=clock, send=lambda *a: None, now_us=lambda: now)
        live.restore([0, 1], [])
        assert live.report_as_of(live.merged_engine()) == now               # nothing read yet: now
        live.on_message("c", 0, 0, None, created("a", "A", "2026-03-01T11:00:00Z"))
        merged = live.merged_engine()
        merged.merge(engine_with(created("b", "B", "2026-03-02T00:00:00Z")))     # a peer's share, later
        assert live.report_as_of(merged) == (now if clock == "wall" else ts("2026-03-02T00:00:00Z"))
        assert live.report_as_of(live.merged_engine()) == (now if clock == "wall" else ts("2026-03-01T11:00:00Z"))

# -- issue 12: a crash at any step of a flush raises no alert twice ------------------------------

import asyncio  # noqa: E402
from typing import NamedTuple  # noqa: E402

import pytest  # noqa: E402

from pulse.agents.batching import DurableAcks  # noqa: E402


class Crash(Exception):
    """The process dies here (what os._exit would do to a worker)."""


class Msg(NamedTuple):
    topic: str
    partition: int
    offset: int
    value: bytes
    generation_id: int = 1


class FlushWorld:
    """The broker as a flush sees it: the notifications topic, the dead letters, the changelog,
    and the committed (acked) input offsets. `crash_at` kills the worker at one point of the
    first flush that carries a `lead.stale_resolved`: "before" any write, or right after the
    write that put the alerts ("alerts"), or the state ("state"), on the broker."""

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
                           ack=lambda m: self.acked.__setitem__(m.topic, max(m.offset, self.acked.get(m.topic, -1))),
                           generation=lambda: 1)
        live.restore([0], list(self.changelog), list(self.notifications))
        live.tick()                     # the alert timer may run before the redelivered input is in
        await acks.flush()
        todo = [r for r in routed if r[1] > self.acked.get(r[0], -1)]      # redelivered from the commit
        for i, (topic, offset, line) in enumerate(todo, 1):
            live.on_message(topic, 0, offset, None, line)
            acks.processed([Msg(topic, 0, offset, line)])
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
