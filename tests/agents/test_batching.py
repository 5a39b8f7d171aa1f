"""Unit tests of the worker's input path below Faust: TimeAligner and DurableAcks.

The same code runs against a real broker in tests/agents/test_worker.py (live == offline,
kill -9 recovery, two workers rebalancing); these pin the rules themselves.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings, strategies as st

from pulse.agents.align import OFFSET, PARTITION, TOPIC, TimeAligner, input_record, messages_behind
from pulse.agents.batching import DurableAcks

TOPICS = ["created", "changed", "closed"]


@dataclass
class Fetched:
    """What aiokafka hands over per record (the fields input_record reads)."""
    topic: str
    partition: int
    offset: int
    timestamp: float
    headers: object = None
    key: bytes | None = None
    value: bytes | None = None


def test_consumer_lag_counts_the_messages_after_the_last_offset_taken_up_to_the_end():
    assert messages_behind(10, None) == 10          # none taken: offsets 0..9
    assert messages_behind(10, 0) == 9
    assert messages_behind(10, 9) == 0
    assert messages_behind(10, 12) == 0             # an end reported below what was taken: not negative


def msgs(topic: str, partition: int, timestamps: list[float], first_offset: int = 0) -> list[tuple]:
    return [input_record(Fetched(topic, partition, first_offset + i, ts)) for i, ts in enumerate(timestamps)]


def order(released: list[tuple]) -> list[tuple[str, int]]:
    return [(m[TOPIC], m[OFFSET]) for m in released]


# -- TimeAligner -------------------------------------------------------------------------

def test_releases_across_topics_in_timestamp_order_ties_in_topic_order():
    a = TimeAligner(TOPICS)
    a.add(msgs("changed", 0, [2.0, 3.0, 5.0]) + msgs("created", 0, [1.0, 3.0]) + msgs("closed", 0, [4.0]))
    assert order(a.release(0.0)) == [("created", 0), ("changed", 0), ("created", 1), ("changed", 1),
                                     ("closed", 0), ("changed", 2)]
    assert len(a) == 0


def test_same_timestamp_heads_are_taken_in_publishing_order_when_numbered():
    """`pulse replay` numbers its messages (header pulse.seq): records of one millisecond across
    topics come out in that order, not topic by topic, so a replay's order is the file's."""
    from pulse.schemas.topics import SEQ_HEADER

    def numbered(topic, offset, seq, headers_as_dict=False):
        value = seq.to_bytes(8, "big")
        headers = {SEQ_HEADER: value} if headers_as_dict else [("other", b"x"), (SEQ_HEADER, value)]
        return input_record(Fetched(topic, 0, offset, 7.0, headers))

    a = TimeAligner(TOPICS)
    # file order: closed(1), changed(2), created(3), changed(4), all in one millisecond
    a.add([numbered("changed", 0, 2), numbered("changed", 1, 4, True), numbered("created", 0, 3),
           numbered("closed", 0, 1)])
    assert order(a.release(0.0)) == [("closed", 0), ("changed", 0), ("created", 0), ("changed", 1)]
    # unnumbered messages (other producers) keep the topic order on ties
    a.add(msgs("closed", 0, [7.0], 5) + msgs("created", 0, [7.0], 5))
    assert order(a.release(0.0)) == [("created", 5), ("closed", 5)]


def test_waits_for_a_topic_known_to_have_more_then_goes_on_after_max_idle():
    lag = {("created", 0): 5}
    a = TimeAligner(TOPICS, max_idle_s=2.0, lag=lambda t, p: lag.get((t, p), 0))
    a.add(msgs("changed", 0, [10.0, 11.0]))
    assert a.release(100.0) == []              # `created` has 5 messages not yet fetched: wait
    assert a.release(101.9) == []
    a.add(msgs("created", 0, [9.0]))
    lag.clear()
    assert order(a.release(102.0)) == [("created", 0), ("changed", 0), ("changed", 1)]
    # and when the lagging topic never comes, the others go on after max_idle_s
    lag[("created", 0)] = 3
    a.add(msgs("changed", 0, [12.0], first_offset=2))
    assert a.release(200.0) == []
    assert order(a.release(202.0)) == [("changed", 2)]


def test_a_caught_up_topic_never_holds_the_others_back():
    a = TimeAligner(TOPICS, max_idle_s=60.0, lag=lambda t, p: 0)
    a.add(msgs("changed", 3, [1.0]))
    assert order(a.release(0.0)) == [("changed", 0)]


def test_partitions_are_independent():
    a = TimeAligner(TOPICS, lag=lambda t, p: 1 if (t, p) == ("created", 1) else 0, max_idle_s=5)
    a.add(msgs("changed", 0, [5.0]) + msgs("changed", 1, [1.0]))
    assert [(m[PARTITION], m[OFFSET]) for m in a.release(0.0)] == [(0, 0)]


def test_pauses_a_topic_partition_buffering_too_much_and_resumes_it():
    events = []
    a = TimeAligner(TOPICS, max_idle_s=10.0, high=3, low=1, lag=lambda t, p: 1 if t == "created" else 0,
                    on_full=lambda t, p: events.append(("full", t, p)),
                    on_drop=lambda t, p: events.append(("drop", t, p)))
    a.add(msgs("changed", 0, [1.0, 2.0, 3.0, 4.0]))
    assert events == [("full", "changed", 0)]
    assert a.release(0.0) == []
    a.release(10.0)                             # waited long enough: all released, then resumed
    assert events == [("full", "changed", 0), ("drop", "changed", 0)]


def test_limit_and_clear():
    a = TimeAligner(TOPICS)
    a.add(msgs("changed", 0, [float(i) for i in range(10)]))
    assert len(a.release(0.0, limit=4)) == 4
    a.clear()
    assert len(a) == 0 and a.release(0.0) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TOPICS), st.integers(0, 2), st.integers(0, 50)), max_size=60),
       st.lists(st.integers(1, 7), min_size=1, max_size=10), st.integers(1, 5))
def test_every_message_released_once_in_order_per_topic_partition(spec, chunks, limit):
    """Whatever the timestamps and however the fetches split the input: nothing lost or
    repeated, and each topic-partition keeps its offset order (timestamps need not be monotonic)."""
    offsets: dict[tuple[str, int], int] = {}
    all_msgs = []
    for topic, partition, ts in spec:
        off = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = off + 1
        all_msgs.append(input_record(Fetched(topic, partition, off, float(ts))))
    a = TimeAligner(TOPICS, max_idle_s=0.0, lag=lambda t, p: 1)      # worst case: always "lagging"
    out, i, now = [], 0, 0.0
    while i < len(all_msgs):
        step = chunks[i % len(chunks)]
        a.add(all_msgs[i:i + step])
        i += step
        now += 1.0
        out += a.release(now, limit)
    while len(a):
        now += 1.0
        out += a.release(now, limit)
    assert sorted(order(out)) == sorted(order(all_msgs)) and len(out) == len(all_msgs)
    for key in offsets:
        seen = [m[OFFSET] for m in out if (m[TOPIC], m[PARTITION]) == key]
        assert seen == sorted(seen)


# -- DurableAcks -------------------------------------------------------------------------

def test_acks_only_after_dead_letters_then_state_then_alerts_are_acknowledged():
    async def scenario():
        log = []
        broker_ack = asyncio.Event()

        async def write_outputs(records):
            log.append(("outputs", records))
            await broker_ack.wait()

        async def write_state(state):
            log.append(("state", state))

        acks = DurableAcks(take_state=lambda: "S1", write_outputs=write_outputs, write_state=write_state,
                           ack=lambda batch: log.append(("ack", [m[OFFSET] for m in batch.messages])),
                           generation=lambda: 1)
        first = acks.processed(msgs("changed", 0, [1.0, 2.0]), 1)
        acks.output("dead letter")
        assert not acks.wake.is_set()
        acks.output("alert", alert=True)
        assert acks.wake.is_set() and acks.pending == 2
        flushing = asyncio.ensure_future(acks.flush())
        await asyncio.sleep(0.01)
        assert log == [("outputs", ["dead letter"])]            # not acked by the broker yet
        later = acks.processed(msgs("changed", 0, [3.0], first_offset=2), 1)     # meanwhile: the next flush
        broker_ack.set()
        assert await flushing == 2
        assert log == [("outputs", ["dead letter"]), ("state", "S1"), ("outputs", ["alert"]), ("ack", [0, 1])]
        assert acks.pending == 1 and not acks.wake.is_set()
        assert first.acked and not later.acked      # what Faust's wait_empty reads of its unacked set

    asyncio.run(scenario())


async def _nothing(_):
    return None


def test_a_message_of_an_older_generation_is_not_acked():
    async def scenario():
        acked = []

        acks = DurableAcks(take_state=lambda: None, write_outputs=_nothing, write_state=_nothing,
                           ack=lambda batch: acked.extend(m[OFFSET] for m in batch.messages), generation=lambda: 2)
        old, new = msgs("changed", 0, [1.0, 2.0])
        stale = acks.processed([old], 1)
        acks.processed([new], 2)
        assert await acks.flush() == 1 and acked == [1] and not stale.acked

    asyncio.run(scenario())


def test_nothing_is_acked_when_the_state_cannot_be_written():
    async def scenario():
        acked = []

        async def write_state(state):
            raise OSError("broker down")

        acks = DurableAcks(take_state=lambda: None, write_outputs=_nothing, write_state=write_state,
                           ack=lambda batch: acked.extend(m[OFFSET] for m in batch.messages), generation=lambda: 1)
        acks.processed(msgs("changed", 0, [1.0]), 1)
        try:
            await acks.flush()
        except OSError:
            pass
        else:
            raise AssertionError("flush must fail")
        assert acked == []

    asyncio.run(scenario())


def test_a_long_ack_run_gives_the_loop_turns_and_stops_acking_a_generation_revoked_meanwhile():
    """Acking thousands of messages is split into turns of the event loop (HTTP requests wait
    a few ms at most); a rebalance in one of those turns ends the acks of the old generation."""
    async def scenario():
        acked, generation = [], [1]

        async def other_task():
            generation[0] = 2                    # a rebalance, in the first turn the flush gives away

        acks = DurableAcks(take_state=lambda: None, write_outputs=_nothing, write_state=_nothing,
                           ack=lambda batch: acked.extend(m[OFFSET] for m in batch.messages),
                           generation=lambda: generation[0], yield_every=3)
        messages = msgs("changed", 0, [float(i) for i in range(10)])
        for chunk in (messages[:2], messages[2:4], messages[4:7], messages[7:]):
            acks.processed(chunk, 1)
        task = asyncio.ensure_future(other_task())
        assert await acks.flush() == 4 and acked == [0, 1, 2, 3]    # 4 >= 3 acked: a turn
        await task

    asyncio.run(scenario())


def test_while_a_partition_waits_for_a_topic_everything_buffered_is_paused_so_the_fetcher_serves_it():
    """The fetcher hands over prefetched records one topic-partition at a time: a partition
    waiting for `created` would wait behind the others' records. So while it waits, every
    topic-partition holding messages is paused (the next fetch can only bring what is
    missing), and all resume once the wait is over."""
    events, behind = [], {("created", 0): 1}
    a = TimeAligner(TOPICS, max_idle_s=10.0, high=100, low=10, lag=lambda t, p: behind.get((t, p), 0),
                    on_full=lambda t, p: events.append(("pause", t, p)),
                    on_drop=lambda t, p: events.append(("resume", t, p)))
    a.add(msgs("changed", 0, [2.0, 3.0]) + msgs("changed", 1, [1.0, 5.0]) + msgs("closed", 1, [6.0]))
    assert order(a.release(0.0)) == [("changed", 0), ("changed", 1), ("closed", 0)]     # partition 1: nothing to wait for
    assert sorted(events) == [("pause", "changed", 0)]     # partition 0 waits for created: its buffer is paused
    events.clear()
    a.add(msgs("created", 0, [1.0]) + msgs("changed", 1, [7.0], first_offset=2))
    behind.clear()                                          # created has been fetched to its end
    assert order(a.release(0.5)) == [("created", 0), ("changed", 0), ("changed", 1), ("changed", 2)]
    assert events == [("resume", "changed", 0)]            # the wait is over: fetched as usual again
