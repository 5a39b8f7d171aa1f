"""The live processor's state: the analytics core per Kafka partition, made durable.

This is the imperative shell of `pulse worker` without Faust in it (agents/app.py
wires it to Faust), so its logic runs in unit tests with a fake `send`.

Per assigned input partition it keeps one `PulseEngine` (the same core as
`pulse report`) and one `StaleLeadDetector`. All four input topics are
co-partitioned by lead_id, so a lead lives in exactly one partition.

Durability, exactly once in effect with at-least-once delivery:
- Every change marks its lead dirty. `take_dirty()` gives each dirty lead's record (its
  event history and alert memory) and one record of the partition's input counters and
  last consumed offsets, for the table's changelog, in the lead's own partition. The
  worker writes them every 0.2 s and acks the messages to Faust only once the broker
  has them (agents/batching.py: DurableAcks): committed offsets never run ahead of
  durable state, and writes are coalesced per lead instead of one per event.
- After a restart, messages at or below the recorded offsets are skipped (they are
  in the counters). Messages after them are re-applied; a lead flushed with the
  same message already recorded (a crash between the lead writes and the counters
  record) counts it as applied without applying it twice (REDELIVERED).
- Alerts: what was raised is part of the lead's durable record; see StaleLeadDetector.
- Records: agents/records.py. Housekeeping (agents/housekeeping.py) forgets, from the
  timer, the leads and days no future report reads; a forgotten lead's record becomes a
  tombstone.

Alert time is per partition (Kafka Streams' stream time): a partition's alerts are
checked against its own clock, never against time another partition has reached.
- Event clock: a partition's time is the latest occurred_at it has applied, and its
  checks run as that time advances, message by message (not on a wall-clock timer), so
  the alerts depend on the partition's input alone: the same input, the same alert ids,
  whichever worker holds the partition and however fast the others are.
- Wall clock: a partition that is catching up (more than `lag_hold` input messages not
  yet applied, or its end offsets not known yet, as after a restart) raises no
  `lead.stale` until it has applied everything that was on the broker when it was found
  behind; the checks it held run then, against state that includes the backlog. Without
  this, a worker restarted after an outage would raise, then resolve seconds later, the
  stale alerts of every lead whose moves were waiting in its backlog.
"""
from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import msgspec

from pulse.schemas.config import Config
from pulse.schemas.fast_path import decode_fast
from pulse.schemas.types import CLOSED, TS, Event, Rejected
from pulse.streams.alerts import StaleLeadDetector
from pulse.streams.engine import APPLIED, HELD, PulseEngine
from pulse.streams.lead import Lead
from pulse.streams.cluster import ClusterFigures
from pulse.streams.report import ReportFigures, build_document, build_figures

from .align import messages_behind
from .housekeeping import FORGOTTEN, NO_HORIZON, housekeep_partition, sweep_due
from .records import (LEAD_RECORD, PARTITION_RECORD, lead_key, lead_record, partition_key, partition_record,
                      restore_partition, unpack)
from .recovery import lead_key_of, reconcile_alerts, unpublished_alerts

log = logging.getLogger("pulse.worker")

# send(topic_role, key, value, partition, headers): topic_role is "deadletter" or "notifications";
# headers a tuple of (name, bytes) pairs
Send = Callable[[str, bytes | None, bytes, int, tuple], None]
# input_ends(partition): input topic -> its end offset (the next offset to be written), as the
# consumer last saw it; None while unknown (no fetch answered yet)
InputEnds = Callable[[int], "dict[str, int] | None"]
LAG_HOLD_MESSAGES = 1_000       # wall clock: a partition further behind than this holds its stale checks (docs/operations.md)


def _unknown_ends(partition: int) -> None:
    return None


@dataclass
class PartitionState:
    partition: int
    engine: PulseEngine
    detector: StaleLeadDetector
    offsets: dict[str, int] = field(default_factory=dict)       # input topic -> last consumed offset
    dirty: dict[tuple[str, str], Lead] = field(default_factory=dict)
    counters_dirty: bool = False
    # Wall clock: valid events dated after now, as a heap of (ts, topic, offset, event fields).
    held: list = field(default_factory=list)
    # Leads changed since the Redis serving layer last synced (agents/serving.py); None: no Redis.
    changed: set | None = None
    # Event clock: the partition time its stale checks last ran at.
    checked_us: int = -1
    # Wall clock, catching up: the end offsets to reach before stale checks run (None: not behind).
    catch_up_to: dict[str, int] | None = None
    just_assigned: bool = True          # no end offsets seen since the partition was (re)assigned
    # Alerts raised since the last take_dirty (encoded): they go into the partition record, an
    # outbox written with the state and before the alerts themselves (agents/batching.py).
    outbox: list[bytes] = field(default_factory=list)
    # Housekeeping (agents/housekeeping.py): unknown leads' events before horizon_us are
    # FORGOTTEN; per pipeline how many forgotten leads were implicit creates; the leads
    # forgotten since the last take_dirty (their changelog records become tombstones).
    horizon_us: int = NO_HORIZON
    swept_from: int | None = None           # first day kept at this process's last sweep (not durable)
    implicit_forgotten: dict[str, int] = field(default_factory=dict)
    forgotten: list[tuple[str, str]] = field(default_factory=list)


class LivePulse:
    def __init__(self, config: Config, *, type_of_topic: dict[str, str], clock: str,
                 send: Send, now_us: Callable[[], int], input_ends: InputEnds | None = None,
                 lag_hold: int = LAG_HOLD_MESSAGES):
        self.config = config
        self.cluster = ClusterFigures(config)       # the report's sums over the partitions (own_figures)
        self.type_of_topic = type_of_topic         # input topic name -> event type it carries
        self.clock = clock
        self.send = send
        self.now_us = now_us
        # Wall clock only. Without it (unit tests, tools) no partition is ever held back.
        self.input_ends = input_ends
        self.lag_hold = lag_hold
        self.checks_held = 0                        # stale checks due but held back (catching up), for /metrics
        self.partitions_held = 0
        self.partitions: dict[int, PartitionState] = {}
        self.ready = False
        self.alerts_sent = 0
        self.alerts_emitted: dict[tuple[str, str], int] = {}    # (type, severity) -> count, for /metrics
        self.track_changes = False      # set by the Redis serving layer: keep PartitionState.changed

    # -- partitions ----------------------------------------------------------------------

    def _new_state(self, partition: int) -> PartitionState:
        return PartitionState(partition, PulseEngine(self.config, index_open=True),
                              StaleLeadDetector(dict(self.config.pipelines), in_event_time=self.clock == "event"),
                              changed=set() if self.track_changes else None)

    def restore(self, partitions: Iterable[int], records: Iterable[tuple[bytes, bytes]],
                alerts: Iterable[bytes] = ()) -> None:
        """Build the state of newly assigned partitions from recovered changelog records.

        `alerts`: the messages of the same partitions of the notifications topic, in
        order. They are the ledger of what was raised: a lead's alert memory is set to
        what reached the topic (a flush can lag behind a publish, or run ahead of a
        publish that failed), so a restart raises each alert exactly once.
        """
        wanted = {p for p in partitions if p not in self.partitions}
        if not wanted:
            return
        states = {p: self._new_state(p) for p in wanted}
        latest: dict[bytes, bytes | None] = {}
        for key, value in records:              # a changelog: the last record of a key wins
            latest[key] = value                 # (None: a tombstone, the lead was forgotten)
        restored = 0
        outboxes: dict[int, list[bytes]] = {}
        for value in latest.values():
            if value is None:
                continue
            record = unpack(value)
            state = states.get(record[1])
            if state is None:
                continue
            if record[0] == LEAD_RECORD:
                _, _, pipeline, lead_id, n_events, history, alert_stage, alert_stay, alert_level = record
                if pipeline not in state.engine.pipelines:
                    log.warning("a recovered lead's pipeline is no longer configured; it is ignored")
                    continue
                lead = state.engine.restore_lead(pipeline, lead_id, history, n_events)
                lead.alert_stage, lead.alert_stay, lead.alert_level = alert_stage, alert_stay, alert_level
                restored += 1
            elif record[0] == PARTITION_RECORD:
                outboxes[record[1]] = restore_partition(state, record)
        alerts = list(alerts)
        unpublished = unpublished_alerts(outboxes, alerts)
        reconcile_alerts(states, alerts + [value for _, value in unpublished])
        self.partitions.update(states)
        for p, value in unpublished:            # raised and remembered, then the worker died: publish
            states[p].outbox.append(value)
            self.send("notifications", lead_key_of(value), value, p, ())
        for p, state in states.items():
            now = self.partition_time_us(state)
            for name, pipeline in state.engine.pipelines.items():
                for lead in list(pipeline.leads.values()):
                    if lead.alert_level > 0:            # left its alerted stay, resolution not published
                        for message in state.detector.levels_before_end(name, lead, now):
                            state.dirty[(name, lead.lead_id)] = lead
                            self._alert(p, message)
                        message = state.detector.resolution(
                            name, lead, now, lead.stage if lead.is_open else None,
                            None if lead.is_open else ("won" if lead.won else "lost"))
                        if message is not None:
                            state.dirty[(name, lead.lead_id)] = lead
                            self._alert(p, message)
                state.detector.watch_all(name, pipeline.open_leads.values(), now)
        log.info("restored %d leads in partitions %s", restored, sorted(wanted))

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget revoked partitions (flush them first)."""
        for p in partitions:
            self.partitions.pop(p, None)

    # -- input ---------------------------------------------------------------------------

    def on_message(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> str:
        state = self.partitions.get(partition)
        if state is None:                       # not (yet) restored: cannot happen after recovery
            state = self.partitions[partition] = self._new_state(partition)
        if offset <= state.offsets.get(topic, -1):
            return "skipped"                    # already counted before a restart
        state.offsets[topic] = offset
        state.counters_dirty = True
        engine = state.engine
        raw = value if value is not None else b""
        # PulseEngine.ingest_decoded's steps, with housekeeping's rule between parsing and applying
        ev = result = engine.accept(raw, decode_fast(raw), self.type_of_topic.get(topic))
        if ev.__class__ is not Rejected:
            ts = ev[TS]
            if self.clock == "wall" and ts > self.now_us():
                engine.after_as_of += 1         # dated after now: takes effect when the clock gets there
                heapq.heappush(state.held, (ts, topic, offset, tuple(ev)))
                return HELD
            if ts < state.horizon_us and engine.lead(ev.pipeline, ev.lead_id) is None:
                engine.duplicates += 1          # of a forgotten lead, most likely (docs/operations.md)
                return FORGOTTEN
            result = engine.ingest_event(ev, offset)
        if result.__class__ is Rejected:
            self.send("deadletter", key, raw, partition, (
                ("pulse.reason", result.reason.encode()), ("pulse.detail", result.detail.encode()),
                ("pulse.source.topic", topic.encode()), ("pulse.source.partition", str(partition).encode()),
                ("pulse.source.offset", str(offset).encode())))
            return result.reason
        if result != APPLIED:
            return result
        self._applied(state)
        if self.clock == "event" and engine.max_ts > state.checked_us:
            if state.detector.any_due(engine.max_ts):
                self._raise_due(state, engine.max_ts)   # the partition's time moved: what fell due
            else:
                state.checked_us = engine.max_ts
        return result

    def _applied(self, state: PartitionState) -> None:
        """After an event changed a lead: mark it for the next flush, resolve and (re)schedule alerts."""
        partition = state.partition
        ev = state.engine.last_event
        lead = state.engine.lead(ev.pipeline, ev.lead_id)
        state.dirty[(ev.pipeline, ev.lead_id)] = lead
        if state.changed is not None:
            state.changed.add((ev.pipeline, ev.lead_id))
        if not state.engine.last_stay_changed:
            # Fields only (lead.updated, a lead.created of a known lead, a move to its own stage,
            # or a late event that left the current stay as it was): the stay's entry in the
            # detector's schedule stands, and nothing was left to resolve. A new entry here
            # would not be stepwise, and the alerts would depend on which event moved the clock.
            return
        if (lead.alert_level > 0 and (not lead.is_open or (lead.stage, lead.stay_start)
                                      != (lead.alert_stage, lead.alert_stay))):
            for message in state.detector.levels_before_end(ev.pipeline, lead, self.partition_time_us(state)):
                self._alert(partition, message)
            message = state.detector.resolution(
                ev.pipeline, lead, self.partition_time_us(state), None if ev.kind == CLOSED else lead.stage,
                ("won" if lead.won else "lost") if not lead.is_open else None)
            if message is not None:
                self._alert(partition, message)
        state.detector.watch(ev.pipeline, lead, self.partition_time_us(state))

    # -- time ------------------------------------------------------------------------------

    def clock_us(self) -> int:
        """T of the report (SPEC 4): now, or in event-time mode the latest occurred_at seen by
        this worker. Alerts use each partition's own time instead (partition_time_us)."""
        if self.clock == "event":
            latest = [s.engine.max_ts for s in self.partitions.values() if s.engine.max_ts is not None]
            return max(latest) if latest else self.now_us()
        return self.now_us()

    def report_as_of(self, engine: PulseEngine) -> int:
        """T of a report over `engine` (this worker's partitions, perhaps merged with its peers'):
        now, or in event-time mode the latest occurred_at in it (this worker's T while none)."""
        if self.clock == "event":
            return engine.max_ts or self.clock_us()
        return self.clock_us()

    def partition_time_us(self, state: PartitionState) -> int:
        """The time a partition's alerts are checked against: now, or in event-time mode the
        latest occurred_at the partition has applied (now while it has applied nothing)."""
        if self.clock == "event":
            return state.engine.max_ts if state.engine.max_ts is not None else self.now_us()
        return self.now_us()

    def tick(self) -> int:
        """Apply held events whose time has come, then raise the stale alerts due at each
        partition's time, except in partitions catching up (wall clock), then housekeep;
        returns how many alerts were raised."""
        return sum(self.ticking())

    def ticking(self) -> Iterator[int]:
        """`tick` in steps: one partition's held events and alerts per step, yielding the alerts
        it raised; the housekeeping sweep runs when the caller resumes after the last one. The
        worker's timer lets the event loop run between steps (a tick in a replay at full speed took 15-70 ms in one piece: the alert bursts of
        four partitions and a sweep); a partition revoked meanwhile is skipped."""
        held_checks = held_partitions = 0
        for p, state in list(self.partitions.items()):
            if self.partitions.get(p) is not state:
                continue
            if self.clock == "event":
                if state.engine.max_ts is not None:
                    yield self._raise_due(state, state.engine.max_ts)
                continue
            now = self.now_us()
            while state.held and state.held[0][0] <= now:
                _, _topic, offset, fields = heapq.heappop(state.held)
                state.counters_dirty = True
                if state.engine.release(Event(*fields), offset) == APPLIED:
                    self._applied(state)
            if self._catching_up(state):
                held_checks += state.detector.due_count(now, state.engine.lead_by_id)
                held_partitions += 1
                continue
            yield self._raise_due(state, now)
        self.checks_held, self.partitions_held = held_checks, held_partitions
        self.housekeep()

    def _raise_due(self, state: PartitionState, now: int) -> int:
        raised = 0
        touched: dict[tuple[str, str], Lead] = {}
        for lead, message in state.detector.due(now, state.engine.lead_by_id):
            key = (message["pipeline"], lead.lead_id)
            state.dirty[key] = touched[key] = lead
            self._alert(state.partition, message)
            raised += 1
        for (pipeline, _), lead in touched.items():     # event time: a level of a stay left since
            if lead.alert_level > 0 and (not lead.is_open or (lead.stage, lead.stay_start)
                                     != (lead.alert_stage, lead.alert_stay)):
                message = state.detector.resolution(pipeline, lead, now, lead.stage if lead.is_open else None,
                                                    None if lead.is_open else ("won" if lead.won else "lost"))
                if message is not None:
                    self._alert(state.partition, message)
        state.checked_us = now
        return raised

    def _catching_up(self, state: PartitionState) -> bool:
        """Wall clock: True while the partition has a backlog to apply before its stale checks
        may run. Found behind (more than `lag_hold` messages; any, the first time after it was
        assigned; or ends unknown), it must apply everything up to the ends seen then; once
        there, its checks run (even if new input arrived meanwhile: that state is at most one
        catch-up behind the broker)."""
        if self.input_ends is None:
            return False
        applied = state.offsets
        if state.catch_up_to is not None:
            if any(applied.get(t, -1) + 1 < end for t, end in state.catch_up_to.items()):
                return True
            state.catch_up_to = None
            log.info("partition %d caught up: its stale checks run again", state.partition)
            return False
        ends = self.input_ends(state.partition)
        if ends is None:
            return True                         # nothing known yet (just assigned): wait for a fetch
        behind = sum(messages_behind(end, applied.get(t)) for t, end in ends.items())
        first, state.just_assigned = state.just_assigned, False
        if behind > self.lag_hold or (first and behind):    # after a start or a rebalance: the whole backlog
            log.info("partition %d is %d input messages behind: its stale checks wait until it has applied them",
                     state.partition, behind)
            state.catch_up_to = dict(ends)
            return True
        return False

    def _alert(self, partition: int, message: dict) -> None:
        value = msgspec.json.encode(message)
        self.send("notifications", message["lead_id"].encode(), value, partition, ())
        state = self.partitions.get(partition)
        if state is not None:
            state.outbox.append(value)
        self.alerts_sent += 1
        kind = (message["type"], message["severity"])
        self.alerts_emitted[kind] = self.alerts_emitted.get(kind, 0) + 1

    def housekeep(self) -> int:
        """Forget, in one partition whose horizon moved (the one swept longest ago), the day
        buckets and closed leads no future report can read (agents/housekeeping.py); returns
        how many leads. One per call: a sweep walks the partition's leads."""
        due = [state for state in self.partitions.values()
               if (state.engine.max_ts is not None if self.clock == "event"      # no time before an event
                   else self.input_ends is None or not (state.catch_up_to is not None or state.just_assigned))
               and sweep_due(state, self.partition_time_us(state))]
        if not due:
            return 0
        state = min(due, key=lambda s: NO_HORIZON if s.swept_from is None else s.swept_from)
        return housekeep_partition(state, self.partition_time_us(state))

    # -- durability ------------------------------------------------------------------------

    def take_dirty(self, partitions: Iterable[int] | None = None) -> dict[int, list[tuple[bytes, bytes | None]]]:
        """The changelog records of every forgotten lead (a tombstone) and dirty lead, then the
        partition's counters record (last: it vouches for everything before it), per partition;
        marks all clean."""
        return {p: list(records) for p, records in self.take_state(partitions).items()}

    def take_state(self, partitions: Iterable[int] | None = None) -> dict[int, Iterator[tuple[bytes, bytes | None]]]:
        """`take_dirty`, with each dirty lead's record encoded as it is read, so that a flush
        encodes them over several turns of the event loop (at ~3 us a lead, a flush after a
        busy second took 10-60 ms in one piece). What is taken is fixed now: which leads, the
        tombstones, and the counters record (encoded now, yielded last). A lead changed between
        this call and its read is written as it is then -- ahead of the counters record, which
        is what a crash between the lead records and the counters record leaves anyway: after
        a restart its re-delivered events count once (PulseEngine's REDELIVERED) -- and it is
        dirty again, so the next flush writes it with its counters."""
        out: dict[int, Iterator[tuple[bytes, bytes | None]]] = {}
        for p in (list(self.partitions) if partitions is None else partitions):
            state = self.partitions.get(p)
            if state is None or not (state.dirty or state.counters_dirty or state.outbox or state.forgotten):
                continue
            tombstones = [(lead_key(*key), None) for key in state.forgotten]
            leads, state.dirty = state.dirty, {}
            last = None
            if state.counters_dirty or state.outbox or state.forgotten:
                last = (partition_key(p), partition_record(state))
                state.forgotten = []
                state.counters_dirty = False
                state.outbox = []
            out[p] = _records(p, tombstones, leads, last)
        return out

    # -- output ----------------------------------------------------------------------------

    def events_read(self) -> int:
        """Input messages read so far by this worker's partitions (valid or not)."""
        return sum(state.engine.events_read for state in self.partitions.values())

    def offsets_of(self, partition: int) -> dict[str, int] | None:
        """The last offset applied per input topic of `partition` (None: not held here)."""
        state = self.partitions.get(partition)
        return state.offsets if state is not None else None

    def own_figures(self) -> tuple[ReportFigures, dict[str, int], int]:
        """This worker's report figures at T (T as report_as_of picks it) and its leads held per
        pipeline, from the sums kept between calls (streams/cluster.py): at one instant, in
        process, in time proportional to what changed since the previous call and to the stale
        leads. Equal to build_figures(merged_engine(), T)."""
        engines = [state.engine for state in self.partitions.values()]
        view = self.cluster.view(engines)
        as_of = self.report_as_of(view)            # type: ignore[arg-type]  (reads max_ts, as an engine)
        leads = {name: sum(len(e.pipelines[name].leads) for e in engines) for name in self.config.pipelines}
        return build_figures(view, as_of), leads, as_of          # type: ignore[arg-type]

    def catch_up_steps(self) -> Iterator[None]:
        """What the next own_figures() would take from the partitions, taken in small steps
        (~1-4 ms each at full speed; streams/cluster.py), yielding between them: the worker's
        event loop runs between the steps, then own_figures() takes the rest at one instant.
        Stops when the partitions change (a rebalance): own_figures() takes it all then."""
        engines = [state.engine for state in self.partitions.values()]
        for _ in self.cluster.catch_up_steps(engines, self.clock_us()):     # report_as_of's T, now
            yield
            if len(self.partitions) != len(engines) or any(
                    state.engine is not engine for state, engine in zip(self.partitions.values(), engines)):
                return

    def merged_engine(self) -> PulseEngine:
        """The partitions' state for a report: their accumulators added up, their open leads'
        indexes shared (not their leads: nothing is copied per lead)."""
        total = PulseEngine(self.config)
        for state in self.partitions.values():
            total.merge(state.engine, leads=False)
        return total

    def report(self, pipeline: str | None = None) -> dict:
        engine = self.merged_engine()
        return build_document(engine, self.report_as_of(engine), pipeline)


def _records(partition: int, tombstones: list, leads: dict[tuple[str, str], Lead],
             last: tuple[bytes, bytes] | None) -> Iterator[tuple[bytes, bytes | None]]:
    """A partition's changelog records of one flush: tombstones, the leads (encoded as read), the counters."""
    yield from tombstones
    for (pipeline, lead_id), lead in leads.items():
        yield lead_key(pipeline, lead_id), lead_record(partition, pipeline, lead)
    if last is not None:
        yield last
