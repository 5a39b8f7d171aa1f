"""Child consumers: run as `bench_worker.py _consume MODE ...` in a fresh process.

Each prints one JSON line: count, first/last event time (perf_counter), VmHWM."""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from .common import DEV_TIMEOUTS


def _vm(pid: int | str = "self") -> dict[str, int]:
    """VmHWM / VmRSS (bytes) of a process, from /proc/<pid>/status."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    name, value = line.split(":", 1)
                    out[name] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


RESULT_FILE = None      # set by child_main: where the child writes its JSON result


def _emit(result: dict) -> None:
    """Write the result (Faust redirects stdout to its logger, so to a file, atomically)."""
    result.update(_vm())
    tmp = RESULT_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, RESULT_FILE)


def _child_raw(broker: str, topics: list[str], total: int, group: str, max_s: float) -> None:
    import asyncio

    import orjson
    from aiokafka import AIOKafkaConsumer

    async def run() -> None:
        consumer = AIOKafkaConsumer(
            *topics, bootstrap_servers=broker.split(";"), group_id=group, auto_offset_reset="earliest",
            enable_auto_commit=False, max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20,
            session_timeout_ms=6000, heartbeat_interval_ms=1000, rebalance_timeout_ms=6000)
        await consumer.start()
        loads, n, first, bad = orjson.loads, 0, None, 0
        clock = time.perf_counter
        try:
            while n < total:
                batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
                if batch and first is None:
                    first, cpu0 = clock(), time.process_time()
                for messages in batch.values():
                    for m in messages:
                        try:
                            loads(m.value)
                        except orjson.JSONDecodeError:
                            bad += 1
                    n += len(messages)
                if max_s and first is not None and clock() - first >= max_s:
                    break
            last, cpu1 = clock(), time.process_time()
        finally:
            await consumer.stop()
        _emit({"count": n, "first": first, "last": last, "cpu": cpu1 - cpu0, "bad": bad})

    asyncio.run(run())


def _child_count(broker: str, topics: list[str], idle_s: float = 2.0) -> None:
    """Count every record (and value bytes) of whole topics: read until idle for idle_s."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.split(";"), group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", max_partition_fetch_bytes=8 << 20,
                                    fetch_max_bytes=64 << 20)
        await consumer.start()
        n = size = 0
        try:
            tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < idle_s:
                batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
                for messages in batch.values():
                    n += len(messages)
                    size += sum(len(m.value or b"") for m in messages)
                if batch:
                    idle_since = time.monotonic()
        finally:
            await consumer.stop()
        _emit({"count": n, "value_bytes": size})

    asyncio.run(run())


def _child_faust(mode: str, broker: str, topics: list[str], total: int, group: str, partitions: int,
                 datadir: str, max_s: float) -> None:
    import faust
    import orjson

    app = faust.App(group, broker="kafka://" + broker, store="memory://", autodiscover=False,
                    web_enabled=False, datadir=datadir, topic_partitions=partitions,
                    topic_replication_factor=1, consumer_auto_offset_reset="earliest",
                    table_standby_replicas=0, **DEV_TIMEOUTS)
    source = app.topic(*topics, key_serializer="raw", value_serializer="raw")
    table = None
    if mode == "faust-table":
        table = app.Table("bench", default=None, partitions=partitions)
        table.key_serializer = table.value_serializer = "raw"     # as pulse/agents/app.py does
        table.changelog_topic = table._new_changelog_topic()
    state = {"n": 0, "first": None, "bad": 0, "cpu0": 0.0}
    clock = time.perf_counter

    async def finish(last: float) -> None:
        cpu = time.process_time() - state["cpu0"]
        flushed = None
        if table is not None:               # the changelog writes are still being sent
            await app.producer.flush()
            flushed = clock()
        _emit({"count": state["n"], "first": state["first"], "last": last, "cpu": cpu, "flushed": flushed,
               "bad": state["bad"]})
        os._exit(0)

    if table is None:
        @app.agent(source, name="bare")
        async def bare(stream):
            loads = orjson.loads
            async for value in stream:
                if state["first"] is None:
                    state["first"], state["cpu0"] = clock(), time.process_time()
                try:
                    loads(value)
                except orjson.JSONDecodeError:
                    state["bad"] += 1
                state["n"] += 1
                if state["n"] >= total or max_s and clock() - state["first"] >= max_s:
                    await finish(clock())
    else:
        @app.agent(source, name="table")
        async def with_table(stream):
            loads = orjson.loads
            async for value in stream:
                if state["first"] is None:
                    state["first"], state["cpu0"] = clock(), time.process_time()
                try:
                    lead_id = loads(value).get("lead_id") or ""
                except (orjson.JSONDecodeError, AttributeError):
                    state["bad"] += 1
                    lead_id = ""
                table[str(lead_id)] = value           # one changelog message per event
                state["n"] += 1
                if state["n"] >= total or max_s and clock() - state["first"] >= max_s:
                    await finish(clock())

    worker = faust.Worker(app, loglevel="warning", quiet=True)
    if os.environ.get("BENCH_FAUST_SPINNER") != "1":
        # faust.Worker's progress spinner, at a log level of WARN or above, sets the root
        # logger to DEBUG and adds a DEBUG handler that spins for every record: every
        # aiokafka/faust debug call then builds a LogRecord. Off, as a tuned app would be.
        worker.spinner = None
    worker.execute_from_commandline()


# What Apache Kafka reports as a topic's retention.ms when it was created without one
# (log.retention.hours=168). Tansu reports only the configs a topic was created with.
KAFKA_DEFAULT_RETENTION_MS = str(7 * 24 * 3600 * 1000)


def _child_quix(broker: str, topics: list[str], total: int, group: str, datadir: str, max_s: float) -> None:
    """(q) Quix Streams: one StreamingDataFrame over the input topics (concatenated, so
    Quix aligns them by timestamp within a partition, as pulse's aligner does), one state
    get + set per valid event, keyed by the message key (= lead_id), RocksDB store with
    its changelog topic (Quix's defaults). Values are taken as bytes and parsed with
    orjson in the callback, so bad input is counted instead of stopping the app."""
    import logging

    import orjson
    from quixstreams import Application

    app = Application(broker_address=broker.split(";")[0], consumer_group=group, auto_offset_reset="earliest",
                      state_dir=datadir, loglevel=logging.WARNING,
                      consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    sources = []
    for name in topics:
        topic = app.topic(name, key_deserializer="bytes", value_deserializer="bytes")
        # Quix derives the changelog topic's config from its input topics' retention.ms
        # (TopicManager.derive_topic_config) and raises KeyError when the broker does not
        # report it, as Tansu does for topics created without configs. Fill in what
        # Apache Kafka would report for such a topic; nothing else of Quix is changed.
        topic.broker_config.extra_config.setdefault("retention.ms", KAFKA_DEFAULT_RETENTION_MS)
        sources.append(app.dataframe(topic))
    sdf = sources[0]
    for other in sources[1:]:
        sdf = sdf.concat(other)
    st = {"n": 0, "first": None, "last": None, "cpu0": 0.0, "cpu": None, "bad": 0}
    clock, loads = time.perf_counter, orjson.loads

    def on_event(value: bytes, state) -> None:
        if st["first"] is None:
            st["first"], st["cpu0"] = clock(), time.process_time()
        try:
            doc = loads(value)
            valid = doc.__class__ is dict and doc.get("lead_id").__class__ is str
        except orjson.JSONDecodeError:
            valid = False
        if valid:
            state.set("events", state.get("events", 0) + 1)     # one state read + write
        else:
            st["bad"] += 1
        st["n"] += 1
        if st["n"] >= total or max_s and clock() - st["first"] >= max_s:
            st["last"], st["cpu"] = clock(), time.process_time() - st["cpu0"]
            app.stop()

    sdf.update(on_event, stateful=True)
    app.run()               # returns after app.stop(): commits the checkpoint, flushes the changelog
    if st["first"] is None or st["last"] is None:
        raise SystemExit(f"quix stopped after {st['n']} events")
    _emit({"count": st["n"], "first": st["first"], "last": st["last"], "cpu": st["cpu"], "flushed": clock(),
           "bad": st["bad"]})


def child_main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="bench_worker.py _consume")
    ap.add_argument("mode", choices=("raw", "faust-bare", "faust-table", "quix", "count"))
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topics", required=True)
    ap.add_argument("--total", type=int, default=0)
    ap.add_argument("--group", default="")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--datadir", default=tempfile.gettempdir())
    ap.add_argument("--result", required=True)
    ap.add_argument("--max-seconds", type=float, default=0.0)
    a = ap.parse_args(argv)
    global RESULT_FILE
    RESULT_FILE = a.result
    topics = a.topics.split(",")
    if a.mode == "count":
        _child_count(a.bootstrap, topics)
    elif a.mode == "raw":
        _child_raw(a.bootstrap, topics, a.total, a.group, a.max_seconds)
    elif a.mode == "quix":
        _child_quix(a.bootstrap, topics, a.total, a.group, a.datadir, a.max_seconds)
    else:
        _child_faust(a.mode, a.bootstrap, topics, a.total, a.group, a.partitions, a.datadir, a.max_seconds)


