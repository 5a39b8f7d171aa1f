"""Reading the lead-state changelog back at recovery.

Faust recovers a table by reading its changelog up to the high-water mark the
broker reports. Tansu (the embedded broker of `pulse dev` and the tests) reports a
partition's end as the base offset of its last batch, so a recovery stops short of
the last records of the last flush — exactly where the partition's counters record
is. So the worker reads its changelog partitions itself: to the reported end, then
on until the partition has been idle for a moment. Only the partition's owner writes
to it, and the owner is the one recovering, so idle means complete. On Apache Kafka
the second phase returns at once.
"""
from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_partitions(bootstrap: list[str], topic: str, partitions: set[int],
                          idle_s: float = 1.0) -> list[tuple[bytes, bytes | None]]:
    """Every (key, value) of the given changelog partitions, in offset order per partition
    (tombstones too: the last record of a key decides)."""
    if not partitions:
        return []
    # Tansu answers a fetch only when its wait runs out, even when data is there: keep the
    # wait short and the idle window several fetch rounds long, or "idle" could end while
    # the last records are still on their way.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await consumer.start()
    records: list[tuple[bytes, bytes | None]] = []
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        positions = {tp: 0 for tp in tps}
        idle_since = None
        loop = asyncio.get_running_loop()
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=10_000)
            got = 0
            for tp, messages in batch.items():
                for m in messages:
                    records.append((m.key, m.value))    # value None: a tombstone (a forgotten lead)
                    positions[tp] = m.offset + 1
                    got += 1
            reached_end = all(positions[tp] >= ends[tp] for tp in tps)
            if got or not reached_end:
                idle_since = None
                continue
            idle_since = idle_since or loop.time()
            if loop.time() - idle_since >= idle_s:
                return records
    finally:
        await consumer.stop()
