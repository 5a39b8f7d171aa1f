"""Benchmark the live worker (`pulse worker`) against raw-consumer, Faust and Quix Streams baselines.

    python bench/bench_worker.py                       # default: ~500k events (--leads 81000)
    python bench/bench_worker.py --leads 8000          # quick check (~50k events)
    python bench/bench_worker.py --events-file F.jsonl [--json] [--py-spy 20]
    python bench/bench_worker.py --workers 1,2,4 --repeat 3 --poll offsets --skip a,b,e   # peers, scaling

One embedded broker (Tansu, memory storage), one event file published ONCE with
`pulse replay` into 4-partition input topics; then, one after another, each consumer
reads those same topics from the beginning with its own consumer group, in its own
fresh process (so each has its own RSS), and only consumption is measured:

  (a) faust-bare   a Faust agent, `async for` over the input topics, orjson.loads
                   of each raw value: the framework's own per-event ceiling here;
  (b) faust-table  the same agent writing `table[lead_id] = raw value` (raw serializers):
                   one changelog message per event, the naive way to keep state;
  (c) pulse worker `pulse worker --clock event --profile dev`: durable state, dead
                   letters and alerts on. Measured from outside by polling GET /report
                   every 0.2 s until data_quality.events_read == total; its peak RSS is
                   VmHWM of /proc/<pid>/status at the end -> bytes per lead;
  (q) quix         Quix Streams (the `bench` extra; `--no-quix` skips it): one
                   StreamingDataFrame over the input topics, one state get + set per
                   valid event (RocksDB, changelog on); self-timed like (a);
  (d) raw          a raw aiokafka consumer (getmany, 10,000-record batches) that only
                   parses: the physical ceiling of a Python consumer on this machine;
  (e) alert latency: a fresh worker on fresh topics; N leads created, other leads' events
                   push event time past the "new" stage's stale_after (3 days) so each gets
                   a lead.stale; then, one lead at a time, a lead.stage_changed moves it out,
                   timed from the producer's flush (acked) to the arrival of its
                   lead.stale_resolved at a consumer already tailing the notifications topic.
                   The same tailer's floor is measured too (a marker message produced
                   straight to the notifications topic: broker round trip).

`--workers 1,2,4` runs (c) once per number of workers sharing the partitions (one
consumer group); `--repeat N` runs (d) (a) (b) (q) (c) N times, interleaved, for medians.

(a), (b), (q), (d) time themselves (first to last event consumed, in the consumer process,
plus its CPU time) and write a JSON result; by default they stop 60 s after their first
event (`--max-seconds`) and report the rate over what they read. (c) always reads
everything and is timed by the poller: events/s = (total - n1)/(t_done - t1) where t1 is
the first /report poll that saw events (n1 of them) and t_done the first that saw them
all; between the two, committed offsets are polled instead (`--poll hybrid`, see
run_pulse_worker). t_done is late by at most the time since the previous poll, so the
figure is a slight underestimate; an upper bound (t_done minus that) is printed too.
See bench/README.md for the method and its limits.

`--py-spy SECONDS` also profiles a further worker run (own consumer group, same topics)
under load with `py-spy record -f raw` and prints the top self-time functions.

Every child runs in its own session and is killed (its whole process group) when its
phase ends, fails, or on Ctrl-C / SIGTERM; the broker is stopped last.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT_DIR = HERE / "out"
DEFAULT_LEADS = 81_000          # 501,817 events with --seed 1
POLL_S = 0.2
END_WINDOW_S = 4.0      # hybrid polling: back to /report this many seconds of events before the end
DEV_TIMEOUTS = dict(broker_session_timeout=6, broker_rebalance_timeout=6, broker_heartbeat_interval=1)


class BenchError(Exception):
    pass


# ======================================================================================
# Child consumers: run as `bench_worker.py _consume MODE ...` in a fresh process.
# Each prints one JSON line: count, first/last event time (perf_counter), VmHWM.
# ======================================================================================

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


# ======================================================================================
# The driver
# ======================================================================================

class Children:
    """Every child process of the benchmark: own session, killed as a group."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def spawn(self, argv: list[str], **kw) -> subprocess.Popen:
        proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    @staticmethod
    def kill(proc: subprocess.Popen, grace: float = 5.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):      # stragglers in the group, if any
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)

    def kill_all(self) -> None:
        for proc in reversed(self.procs):
            self.kill(proc, grace=2.0)
        self.procs.clear()


def _log(text: str) -> None:
    print(f"[bench_worker {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


# -- the event file ----------------------------------------------------------------------

def prepare_file(a) -> Path:
    if a.events_file:
        path = Path(a.events_file)
        if not path.is_file():
            raise BenchError(f"no such file: {path}")
        return path
    path = OUT_DIR / f"events-{a.leads}-s{a.seed}.jsonl"
    if not path.exists():
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        _log(f"generating {path} (--leads {a.leads}) ...")
        subprocess.run([sys.executable, str(HERE / "generate_events.py"), str(path), "--leads", str(a.leads),
                        "--seed", str(a.seed)], check=True, stdout=subprocess.DEVNULL)
    return path


def count_file(path: Path) -> tuple[int, int]:
    """(input lines = messages replay publishes, distinct lead_ids)."""
    import gzip

    import orjson

    opener = gzip.open if path.suffix == ".gz" else open
    n, leads = 0, set()
    with opener(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            n += 1
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if obj.__class__ is dict and obj.get("lead_id").__class__ is str:
                leads.add(obj["lead_id"])
    return n, len(leads)


# -- (a) (b) (d): self-timed consumers ----------------------------------------------------

def run_consumer(children: Children, mode: str, bootstrap: str, topics: list[str], total: int,
                 partitions: int, workdir: Path, timeout: float, max_s: float) -> dict:
    """Run one self-timed consumer. With `max_s`, it stops `max_s` seconds after its first
    event (a rate over the first events of the same topics) unless it read them all."""
    group = f"bench-{mode}-{uuid.uuid4().hex[:8]}"
    log = workdir / f"{group}.log"                  # a fresh name each run (--repeat)
    result_file = workdir / f"{group}.result.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "_consume", mode, "--bootstrap", bootstrap,
            "--topics", ",".join(topics), "--total", str(total), "--group", group,
            "--partitions", str(partitions), "--datadir", str(workdir / f"data-{group}"),
            "--result", str(result_file), "--max-seconds", str(max_s)]
    result: dict = {}
    with open(log, "wb") as err:
        t0 = time.monotonic()
        proc = children.spawn(argv, stdout=err, stderr=subprocess.STDOUT, cwd=str(ROOT))
        try:
            while time.monotonic() - t0 < timeout:
                if result_file.exists():
                    result = json.loads(result_file.read_text())
                    break
                if proc.poll() is not None:
                    break
                time.sleep(0.1)
            wall = time.monotonic() - t0
        finally:
            Children.kill(proc)
    if not result:
        raise BenchError(f"({mode}) gave no result (exit code {proc.returncode}, timeout {timeout:.0f} s, "
                         f"stopped after {wall:.0f} s); its log ends with:\n{_tail(log)}")
    n = result["count"]
    if n > total or (n < total and not max_s):
        raise BenchError(f"({mode}) consumed {n} of {total} messages")
    seconds = result["last"] - result["first"]
    out = {"events": n, "capped": n < total, "seconds": seconds, "events_per_s": n / seconds if seconds > 0 else None,
           "cpu_seconds": result.get("cpu"),
           "events_per_cpu_s": n / result["cpu"] if result.get("cpu") else None,
           "process_seconds": wall, "peak_rss": result.get("VmHWM"), "parse_errors": result.get("bad", 0)}
    if result.get("flushed"):
        out["seconds_incl_changelog_flush"] = result["flushed"] - result["first"]
    if mode == "quix":
        out.update(count_changelog(children, bootstrap, group, workdir, n))
    return out


# -- (c): pulse worker, timed from outside -------------------------------------------------

def _load_harness():
    sys.path.insert(0, str(ROOT))
    try:
        from tests.support.live_harness import WorkerProcess
    finally:
        sys.path.pop(0)
    return WorkerProcess


def launch_worker(children: Children, broker_url: str, prefix: str, workdir: Path, partitions: int,
                  tag: str, app_id: str | None = None):
    """A `pulse worker` (event clock, dev profile) via tests/support/live_harness.WorkerProcess,
    spawned without waiting for health (so the poller sees consumption start). Workers
    given the same `app_id` form one consumer group and share the partitions."""
    WorkerProcess = _load_harness()
    wdir = workdir / tag
    wdir.mkdir(parents=True, exist_ok=True)
    w = WorkerProcess(broker_url, prefix, app_id or f"bench-{tag}-{uuid.uuid4().hex[:8]}", wdir,
                      partitions=partitions)
    w._log = open(w.log_path, "ab")
    w.proc = children.spawn(w.argv, stdout=w._log, stderr=subprocess.STDOUT, env=w.env, cwd=str(ROOT))
    return w


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def fresh_output_topics(bootstrap: str, prefix: str, partitions: int) -> None:
    """Empty the notifications and dead-letter topics before each (c) run: a worker reads
    its partitions of the notifications topic at every assignment (its alert ledger), so
    the alerts of earlier runs (~100k each) would slow later runs' start and rebalances
    and raise their memory. The input topics are left as they are."""
    from kafka import KafkaAdminClient

    from pulse.broker import create_topics
    from pulse.topics import DEADLETTER, NOTIFICATIONS, topic_names

    names = [topic_names(prefix)[t] for t in (NOTIFICATIONS, DEADLETTER)]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
    try:
        admin.delete_topics([t for t in names if t in set(admin.list_topics())])
        deadline = time.monotonic() + 10
        while set(names) & set(admin.list_topics()):
            if time.monotonic() > deadline:
                raise BenchError(f"could not delete {names}")
            time.sleep(0.1)
    finally:
        admin.close()
    create_topics(bootstrap, names, partitions)


def _cpu_sum(pids: list[int]) -> float | None:
    got = [_cpu_seconds(pid) for pid in pids]
    return None if None in got else sum(got)


def _vm_sum(pids: list[int]) -> dict[str, int]:
    """VmHWM / VmRSS summed over processes (VmHWM: the sum of each one's own peak)."""
    out: dict[str, int] = {}
    for pid in pids:
        for k, v in _vm(pid).items():
            out[k] = out.get(k, 0) + v
    return out


MID_SPAN = (0.2, 0.8)
MID_MIN_S = 5.0         # commits come ~1 s apart: a shorter span says little


def _mid_rate(commits: list[tuple], total: int) -> dict:
    """The rate between the first committed-offset polls at or past 20 % and 80 % of the
    events: steady consumption, without the start (group join, the first rebalances
    when several workers join) and the end. Commits are ~1 s apart, so the two instants
    are late by up to ~1 s each, which mostly cancels out; spans under MID_MIN_S give
    no figure. Polls are (time, committed[, workers' CPU s, broker's CPU s]): with the
    CPU times, also the cores busy over the span."""
    lo = next((c for c in commits if c[1] >= MID_SPAN[0] * total), None)
    hi = next((c for c in commits if c[1] >= MID_SPAN[1] * total), None)
    if lo is None or hi is None or hi[0] - lo[0] < MID_MIN_S:
        return {"events_per_s_mid": None}
    span = hi[0] - lo[0]
    out = {"events_per_s_mid": (hi[1] - lo[1]) / span, "mid_seconds": span}
    if len(lo) == len(hi) == 4:
        out["worker_cores_mid"] = (hi[2] - lo[2]) / span if None not in (lo[2], hi[2]) else None
        out["broker_cores_mid"] = (hi[3] - lo[3]) / span if None not in (lo[3], hi[3]) else None
        out["events_per_cpu_s_mid"] = (hi[1] - lo[1]) / (hi[2] - lo[2]) if out["worker_cores_mid"] else None
    return out


def _events_read(w, timeout: float = 10.0) -> tuple[int | None, float, float]:
    """(events_read or None if not answering, request start, request end)."""
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(w.url("/report"), timeout=timeout) as r:
            doc = json.loads(r.read())
        n = doc["data_quality"]["events_read"]
    except (OSError, ValueError, KeyError, urllib.error.HTTPError):
        n = None
    return n, t0, time.monotonic()


def stop_worker(children: Children, w) -> None:
    if w.proc is not None:
        Children.kill(w.proc, grace=10.0)
    with contextlib.suppress(Exception):
        w._log.close()


class CommittedOffsets:
    """Sum of a consumer group's committed offsets on the input topics (they start at 0,
    so the sum is the number of messages consumed and committed). One OffsetFetch to
    the broker: costs the worker nothing, unlike GET /report."""

    def __init__(self, bootstrap: str, group: str, topics: list[str], partitions: int):
        from kafka import KafkaAdminClient, TopicPartition

        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-poller")
        self.group = group
        self.tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]

    def __call__(self) -> int | None:
        try:
            got = self.admin.list_group_offsets({self.group: self.tps})[self.group]
        except Exception:                 # noqa: BLE001  (no group yet, coordinator moving, ...)
            return None
        return sum(max(0, o.offset) for o in got.values() if o is not None)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.admin.close()


def run_pulse_worker(children: Children, broker, prefix: str, inputs: list[str], total: int, leads: int,
                     partitions: int, workdir: Path, timeout: float, poll_mode: str, n_workers: int = 1) -> dict:
    """(c). `n_workers` workers in one consumer group share the partitions (all spawned at
    once; GET /report of the first merges every worker's share).
    Poll GET /report every POLL_S s (start to start) until events_read > 0 (t1, n1).
    `poll_mode` "report": keep polling /report every POLL_S s to the end. "hybrid": in
    between, poll the group's committed offsets instead (every POLL_S s; the worker
    commits every 1 s in the dev profile), and go back to /report every POLL_S s once the
    committed count is within END_WINDOW_S seconds' worth of events of the total, so
    the worker is not slowed down by building reports of tens of thousands of leads
    five times a second in the middle of the run. "offsets": committed offsets only,
    from the first poll above 0 to the first at the total, and one GET /report at the
    end to check the count."""
    fresh_output_topics(broker.bootstrap, prefix, partitions)
    group = f"bench-worker{n_workers}-{uuid.uuid4().hex[:8]}"
    ws = [launch_worker(children, broker.url, prefix, workdir, partitions, f"worker{n_workers}-{i}", app_id=group)
          for i in range(n_workers)]
    w = ws[0]
    offsets = CommittedOffsets(broker.bootstrap, group, inputs, partitions) if poll_mode != "report" else None
    pids = [x.proc.pid for x in ws]
    broker_pid = broker.pid                               # the embedded broker's CPU over the same span
    bcpu0 = bcpu1 = None
    try:
        spawn = time.monotonic()
        deadline = spawn + timeout
        polls = []                   # /report polls: (events_read, request start, response end)
        commits = []                 # (time, committed)
        baseline = {}
        first = done = None
        cpu0 = cpu1 = None
        mode = "offsets" if poll_mode == "offsets" else "report"
        while time.monotonic() < deadline:
            tick = time.monotonic()
            for x in ws:
                if x.proc.poll() is not None:
                    raise BenchError(f"(c) pulse worker exited with {x.proc.returncode}:\n{x.log_tail()}")
            if mode == "report":
                n, t0, t1 = _events_read(w)
                if n is not None:
                    polls.append((n, t0, t1))
                    if n == 0:
                        baseline = _vm_sum(pids)              # the idle workers, just before the first event
                    elif first is None:
                        first = (n, t0, t1)
                        cpu0, bcpu0 = _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)
                        if offsets is not None:
                            mode = "offsets"
                    if n >= total:
                        done = (n, t0, t1)
                        cpu1, bcpu1 = _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)
                        break
            else:
                c = offsets()
                now = time.monotonic()
                if c is not None and poll_mode == "offsets":       # never GET /report while timing
                    commits.append((now, c, _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)))
                    if c == 0:                  # (consumption may have begun: commits lag ~1 s)
                        baseline = _vm_sum(pids)
                    elif first is None:
                        first = (c, now, now)
                        cpu0, bcpu0 = _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)
                    if c >= total:
                        done = (c, now, now)
                        cpu1, bcpu1 = _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)
                        break
                elif c is not None:
                    commits.append((now, c, _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)))
                    old = [x for x in commits if x[0] <= now - 3.0]
                    rate = (c - old[-1][1]) / (now - old[-1][0]) if old else 0.0
                    if c >= total or (rate > 0 and total - c <= rate * END_WINDOW_S):
                        mode = "report"
            time.sleep(max(0.0, POLL_S - (time.monotonic() - tick)))
        if done is None:
            got = polls[-1][0] if polls else None
            raise BenchError(f"(c) pulse worker read {got} of {total} events within {timeout:.0f} s:\n"
                             f"{w.log_tail()}")
        if poll_mode == "offsets":                   # committed == total: the report must agree
            n, _, _ = _events_read(w, timeout=60)
            if n != total:
                raise BenchError(f"(c) committed offsets reached {total} but GET /report counts {n} events")
        if done[0] != total:
            raise BenchError(f"(c) pulse worker read {done[0]} events, expected {total}")
        peak = _vm_sum(pids)
        peaks = [_vm(pid).get("VmHWM") for pid in pids]
        n1 = first[0]
        mid = lambda p: (p[1] + p[2]) / 2                      # noqa: E731
        seconds = mid(done) - mid(first)
        # The last event came between the last /report poll that had not seen it and the
        # one that had: t_done is late by at most end_gap.
        before = [p for p in polls if p[0] < total]
        end_gap = mid(done) - mid(before[-1]) if before and poll_mode != "offsets" else None
        latencies = [p[2] - p[1] for p in polls if p[0] > 0]
        busy = sum(latencies) / (done[2] - first[1]) if done[2] > first[1] and latencies else None
        result = {
            "events": total, "events_counted": total - n1, "seconds": seconds,
            "events_per_s": (total - n1) / seconds if seconds > 0 else None,
            "events_per_s_upper": ((total - n1) / (seconds - end_gap)
                                   if end_gap is not None and seconds > end_gap else None),
            "end_uncertainty_s": end_gap,
            "cpu_seconds": cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None,
            "events_per_cpu_s": ((total - n1) / (cpu1 - cpu0)
                                 if cpu0 is not None and cpu1 is not None and cpu1 > cpu0 else None),
            "poll_mode": poll_mode, "poll_interval_s": POLL_S, "report_polls": len(polls),
            "report_polls_after_first_event": len(latencies), "offset_polls": len(commits),
            "report_call_ms_mean": 1000 * statistics.fmean(latencies) if latencies else None,
            "report_call_ms_max": 1000 * max(latencies) if latencies else None,
            "report_busy_fraction": busy,
            "first_seen_after_spawn_s": first[1] - spawn,
            "workers": n_workers, "worker_peak_rss": peaks,
            # cores busy on average over the timed span: the workers together, the broker
            "worker_cores": ((cpu1 - cpu0) / seconds if cpu0 is not None and cpu1 is not None and seconds > 0
                             else None),
            "broker_cores": (bcpu1 - bcpu0) / seconds if bcpu0 is not None and bcpu1 is not None and seconds > 0
                            else None,
            **_mid_rate(commits, total),
            "peak_rss": peak.get("VmHWM"), "idle_rss": baseline.get("VmRSS"),
            "bytes_per_lead": peak["VmHWM"] / leads if peak.get("VmHWM") and leads else None,
            "bytes_per_lead_above_idle": ((peak["VmHWM"] - baseline["VmRSS"]) / leads
                                          if peak.get("VmHWM") and baseline.get("VmRSS") and leads else None),
        }
        for x in ws:
            stop_worker(children, x)
        result.update(count_changelog(children, broker.bootstrap, group, workdir, total))
        return result
    finally:
        if offsets is not None:
            offsets.close()
        for x in ws:
            stop_worker(children, x)


def count_changelog(children: Children, bootstrap: str, app_id: str, workdir: Path, events: int) -> dict:
    """Records and bytes the worker (Faust: `<app_id>-<table>-changelog`) or the Quix
    application (`changelog__<consumer group>--<stream id>--<store>`) wrote to its state
    changelog(s), after it stopped."""
    from kafka import KafkaAdminClient

    def is_changelog(t: str) -> bool:
        return (t.startswith(app_id) and t.endswith("-changelog")) or t.startswith(f"changelog__{app_id}--")

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-admin")
    try:
        topics = sorted(t for t in admin.list_topics() if is_changelog(t))
    finally:
        admin.close()
    if not topics:
        return {"changelog_topics": []}
    result_file = workdir / f"changelog-{app_id}.result.json"
    log = workdir / f"changelog-{app_id}.log"
    with open(log, "wb") as out:
        proc = children.spawn([sys.executable, str(Path(__file__).resolve()), "_consume", "count", "--bootstrap",
                               bootstrap, "--topics", ",".join(topics), "--result", str(result_file)],
                              stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT))
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            pass
        finally:
            Children.kill(proc)
    if not result_file.exists():
        return {"changelog_topics": topics, "changelog_error": _tail(log, 500)}
    r = json.loads(result_file.read_text())
    return {"changelog_topics": topics, "changelog_records": r["count"], "changelog_bytes": r["value_bytes"],
            "changelog_records_per_event": r["count"] / events if events else None}


# -- py-spy under load ---------------------------------------------------------------------

def run_profile(children: Children, broker_url: str, prefix: str, total: int, partitions: int,
                workdir: Path, seconds: int, timeout: float) -> dict:
    import shutil

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise BenchError("py-spy not found")
    out = workdir / "pyspy.raw"
    w = launch_worker(children, broker_url, prefix, workdir, partitions, "profile")
    try:
        deadline = time.monotonic() + timeout
        while True:                                   # wait until it is consuming
            if w.proc.poll() is not None:
                raise BenchError(f"(profile) pulse worker exited:\n{w.log_tail()}")
            n, _, _ = _events_read(w)
            if n and n > 2000:
                break
            if time.monotonic() > deadline:
                raise BenchError("(profile) the worker did not start consuming")
            time.sleep(POLL_S)
        log = workdir / "pyspy.log"
        with open(log, "wb") as err:
            spy_proc = children.spawn([spy, "record", "--pid", str(w.proc.pid), "-d", str(seconds), "-f", "raw",
                                       "-r", "100", "-o", str(out)], stdout=err, stderr=subprocess.STDOUT)
            try:
                spy_proc.wait(seconds + 60)
            finally:
                Children.kill(spy_proc)
        n_end, _, _ = _events_read(w)
        if not out.exists():
            raise BenchError(f"py-spy wrote nothing:\n{_tail(log)}")
        prof = summarize_profile(out)
        prof["events_read_at_end"] = n_end
        prof["still_consuming_at_end"] = bool(n_end is not None and n_end < total)
        prof["raw_file"] = str(out)
        return prof
    finally:
        stop_worker(children, w)


def summarize_profile(path: Path, top: int = 15) -> dict:
    """Self time (leaf frame) and inclusive time per function from py-spy's raw output."""
    self_t: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    # this project's code: frames whose file starts with one of the checkout's package folders
    ours = {p.name for p in ROOT.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [_short(f) for f in stack.split(";")]
        if frames:
            self_t[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    pct = lambda c: round(100.0 * c / total, 1) if total else 0.0     # noqa: E731
    project = [(f, c) for f, c in incl.most_common()       # entry points (~all samples) left out
               if f.rpartition(" (")[2].split("/")[0] in ours and c < 0.8 * total]
    return {"samples": total,
            "top_self": [(f, pct(c)) for f, c in self_t.most_common(top)],
            "top_inclusive": [(f, pct(c)) for f, c in incl.most_common(top + 10)],
            "project_inclusive": [(f, pct(c)) for f, c in project[:top + 5]]}


def _short(frame: str) -> str:
    """'func (path/to/module.py:123)' -> 'func (path/to/module.py)' (line numbers split
    samples); py-spy already shortens library paths (faust/streams.py, asyncio/...)."""
    name, sep, where = frame.partition(" (")
    if not sep:
        return frame
    file = where.rstrip(")").rsplit(":", 1)[0]
    if file.startswith("/"):
        parts = file.split("/")
        if "site-packages" in parts:
            file = "/".join(parts[parts.index("site-packages") + 1:])
        elif ROOT.name in parts:
            file = "/".join(parts[len(parts) - parts[::-1].index(ROOT.name):])
    return f"{name} ({file})"


# -- (e): alert latency ----------------------------------------------------------------------

class Tailer(threading.Thread):
    """Tails a topic from its beginning; records the arrival time of every message."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True, name="tailer")
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      auto_offset_reset="earliest", fetch_max_wait_ms=50)
        parts = self.consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + 10
        while not parts and time.monotonic() < deadline:
            time.sleep(0.1)
            parts = self.consumer.partitions_for_topic(topic)
        if not parts:
            raise BenchError(f"no partitions for {topic}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.arrivals: dict[tuple, float] = {}
        self.cond = threading.Condition()
        self.stop_flag = threading.Event()

    def run(self) -> None:
        import orjson

        while not self.stop_flag.is_set():
            batch = self.consumer.poll(timeout_ms=100)
            now = time.monotonic()
            if not batch:
                continue
            with self.cond:
                for messages in batch.values():
                    for m in messages:
                        try:
                            doc = orjson.loads(m.value)
                            key = (doc.get("type"), doc.get("lead_id"))
                        except (orjson.JSONDecodeError, AttributeError):
                            continue
                        self.arrivals.setdefault(key, now)
                self.cond.notify_all()

    def wait_for(self, pred, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def close(self) -> None:
        self.stop_flag.set()
        self.join(5)
        with contextlib.suppress(Exception):
            self.consumer.close()


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))    # nearest rank
    return s[k]


def run_alert_latency(children: Children, broker, partitions: int, workdir: Path, n_leads: int,
                      gap: float, seed: int) -> dict:
    """(e). Before each stage change, a random pause of U(0, gap) s: the worker's consumer
    sees new data only when its current Fetch returns (Tansu answers a Fetch after its
    full max wait, which Faust sets to 1.5 s), so publishing right after the previous
    alert arrived would lock onto the same phase of that cycle every time."""
    import random

    import orjson
    from kafka import KafkaProducer

    from pulse.broker import create_topics
    from pulse.topics import LEAD_CREATED, NOTIFICATIONS, STAGE_CHANGED, topic_names

    prefix = f"bench-alert-{uuid.uuid4().hex[:6]}."
    names = topic_names(prefix)
    create_topics(broker.bootstrap, names.values(), partitions)
    w = launch_worker(children, broker.url, prefix, workdir, partitions, "alerts")
    tailer = producer = None
    try:
        deadline = time.monotonic() + 90
        while w.status("/health") != 200:
            if w.proc.poll() is not None:
                raise BenchError(f"(e) pulse worker exited:\n{w.log_tail()}")
            if time.monotonic() > deadline:
                raise BenchError(f"(e) pulse worker not healthy:\n{w.log_tail()}")
            time.sleep(0.2)
        tailer = Tailer(broker.bootstrap, names[NOTIFICATIONS])
        tailer.start()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=0)
        run = uuid.uuid4().hex[:6]

        def send(topic: str, event: dict) -> None:
            producer.send(names[topic], key=event["lead_id"].encode(), value=orjson.dumps(event))

        # The broker round trip as the tailer sees it: a marker straight to notifications.
        floor = []
        for i in range(20):
            lid = f"MARK-{run}-{i}"
            producer.send(names[NOTIFICATIONS], key=lid.encode(),
                          value=orjson.dumps({"type": "bench.marker", "lead_id": lid}))
            producer.flush()
            t0 = time.monotonic()
            if not tailer.wait_for(lambda: ("bench.marker", lid) in tailer.arrivals, 10):
                raise BenchError("(e) the tailer did not see a marker message")
            floor.append(1000 * (tailer.arrivals[("bench.marker", lid)] - t0))

        leads = [f"AL-{run}-{i:04d}" for i in range(n_leads)]
        for i, lid in enumerate(leads):
            send(LEAD_CREATED, {"type": "lead.created", "event_id": f"{lid}-c", "lead_id": lid,
                                "occurred_at": "2026-03-01T00:00:00Z", "owner": "rep-1", "team": "emea"})
        for k in range(2 * partitions):           # other leads move event time past 3 days
            lid = f"AF-{run}-{k}"
            send(LEAD_CREATED, {"type": "lead.created", "event_id": f"{lid}-c", "lead_id": lid,
                                "occurred_at": "2026-03-04T01:00:00Z"})
        producer.flush()
        if not tailer.wait_for(lambda: all(("lead.stale", lid) in tailer.arrivals for lid in leads), 60):
            got = sum(("lead.stale", lid) in tailer.arrivals for lid in leads)
            raise BenchError(f"(e) only {got} of {n_leads} lead.stale alerts arrived:\n{w.log_tail()}")
        time.sleep(1.0)
        lat, ack = [], []
        rng = random.Random(seed)
        for lid in leads:
            key = ("lead.stale_resolved", lid)
            if gap > 0:
                time.sleep(rng.uniform(0, gap))
            t_send = time.monotonic()
            send(STAGE_CHANGED, {"type": "lead.stage_changed", "event_id": f"{lid}-s", "lead_id": lid,
                                 "occurred_at": "2026-03-04T02:00:00Z", "to_stage": "prospecting"})
            producer.flush()
            t0 = time.monotonic()
            if not tailer.wait_for(lambda: key in tailer.arrivals, 30):
                raise BenchError(f"(e) no lead.stale_resolved for {lid} within 30 s:\n{w.log_tail()}")
            lat.append(1000 * (tailer.arrivals[key] - t0))
            ack.append(1000 * (t0 - t_send))
        return {"leads": n_leads, "gap_s": gap, "p50_ms": _pct(lat, 50), "p99_ms": _pct(lat, 99), "max_ms": max(lat),
                "min_ms": min(lat), "mean_ms": statistics.fmean(lat),
                "publish_ack_p50_ms": _pct(ack, 50),
                "tailer_floor_p50_ms": _pct(floor, 50), "tailer_floor_p99_ms": _pct(floor, 99),
                "latencies_ms": [round(x, 1) for x in lat]}
    finally:
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(5)
        if tailer is not None:
            tailer.close()
        stop_worker(children, w)


# -- publishing --------------------------------------------------------------------------------

def publish(children: Children, broker, path: Path, prefix: str, partitions: int, total: int,
            workdir: Path) -> float:
    from pulse.broker import create_topics
    from pulse.topics import topic_names

    create_topics(broker.bootstrap, topic_names(prefix).values(), partitions)
    log = workdir / "replay.log"
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = children.spawn([sys.executable, "-m", "pulse.cli", "replay", str(path), "--broker", broker.url,
                               "--topic-prefix", prefix], stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT))
        try:
            code = proc.wait(600)
        finally:
            Children.kill(proc)
    seconds = time.monotonic() - t0
    text = _tail(log)
    if code != 0:
        raise BenchError(f"pulse replay exited with {code}:\n{text}")
    if f"published {total} message" not in text:
        raise BenchError(f"pulse replay did not publish {total} messages:\n{text}")
    return seconds


# -- orchestration ----------------------------------------------------------------------------

PHASES = ("d", "a", "b", "q", "c", "e")
QUIX_MISSING = ("quixstreams is not installed, so phase (q) (Quix Streams) cannot run: install the bench extra "
                "(pip install -e '.[bench]', or `make bench-worker`), or pass --no-quix to skip it")


def quix_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("quixstreams") is not None


def worker_key(n: int) -> str:
    """Result key of (c) with n workers sharing the partitions: "c", "c2", "c4"."""
    return "c" if n == 1 else f"c{n}"


def _loadavg() -> float | None:
    """1-minute load average (this machine may be shared: a hint of other load)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _loadavg3() -> list[float] | None:
    """1, 5 and 15-minute load averages, as `uptime` prints them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run(a) -> dict:
    from pulse.broker import EmbeddedBroker
    from pulse.topics import INPUT_TOPICS, topic_names

    path = prepare_file(a)
    total, leads = count_file(path)
    if total == 0:
        raise BenchError(f"{path} has no input lines")
    skip = set(a.skip.split(",")) if a.skip else set()
    res: dict = {"file": str(path), "events": total, "leads": leads, "partitions": a.partitions,
                 "command": " ".join([shlex.quote(x) for x in ["python", "bench/bench_worker.py", *a.argv]]),
                 "cores": os.cpu_count(), "max_seconds": a.max_seconds, "workers": a.workers,
                 "loadavg_start": _loadavg3(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    consume_timeout = a.timeout or (90 + a.max_seconds if a.max_seconds else 90 + total / 300)
    worker_timeout = a.timeout or 120 + total / 300
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    res["workdir"] = str(workdir)
    try:
        with EmbeddedBroker(log_path=str(workdir / "tansu.log")) as broker:
            prefix = f"bench-{uuid.uuid4().hex[:6]}."
            names = topic_names(prefix)
            inputs = [names[t] for t in INPUT_TOPICS]
            _log(f"publishing {total:,} events ({leads:,} leads) from {path} with pulse replay ...")
            res["publish_seconds"] = publish(children, broker, path, prefix, a.partitions, total, workdir)
            _log(f"published in {res['publish_seconds']:.1f} s")
            rounds = res["rounds"] = []
            for r in range(a.repeat):         # rounds interleave the phases: drifting load hits all alike
                got: dict = {}
                rounds.append(got)
                tag = f"round {r + 1}/{a.repeat} " if a.repeat > 1 else ""
                for phase, mode in (("d", "raw"), ("a", "faust-bare"), ("b", "faust-table"), ("q", "quix")):
                    if phase in skip:
                        continue
                    _log(f"{tag}({phase}) {mode} ...")
                    load = _loadavg()
                    got[phase] = run_consumer(children, mode, broker.bootstrap, inputs, total, a.partitions,
                                              workdir, consume_timeout, a.max_seconds)
                    got[phase]["loadavg"] = max(load, _loadavg())
                    _log(f"{tag}({phase}) {got[phase]['events_per_s']:,.0f} events/s")
                for n in (a.workers if "c" not in skip else ()):
                    key = worker_key(n)
                    _log(f"{tag}(c) pulse worker x{n} ...")
                    load = _loadavg()
                    got[key] = run_pulse_worker(children, broker, prefix, inputs, total, leads, a.partitions,
                                                workdir, worker_timeout, a.poll, n_workers=n)
                    got[key]["loadavg"] = max(load, _loadavg())
                    _log(f"{tag}(c) x{n}: {got[key]['events_per_s']:,.0f} events/s")
                got.update(_ratios(got, a.workers))
            res.update(_medians(rounds))
            if "e" not in skip:
                _log(f"(e) alert latency, {a.alert_leads} leads ...")
                res["e"] = run_alert_latency(children, broker, a.partitions, workdir, a.alert_leads, a.alert_gap,
                                             a.seed)
                _log(f"(e) p50 {res['e']['p50_ms']:.0f} ms, p99 {res['e']['p99_ms']:.0f} ms")
            if a.py_spy:
                _log(f"(profile) py-spy on pulse worker for {a.py_spy} s ...")
                res["profile"] = run_profile(children, broker.url, prefix, total, a.partitions, workdir,
                                             a.py_spy, worker_timeout)
    finally:
        children.kill_all()
    res["loadavg_end"] = _loadavg3()
    return res


RATE_FIELDS = ("events_per_s", "events_per_cpu_s", "events_per_s_mid")


def _ratios(got: dict, workers: list[int]) -> dict:
    """One round's ratios: pulse (c, one worker) over each other consumer; n workers over one."""
    out: dict = {}
    for suffix, field in (("", "events_per_s"), ("_cpu", "events_per_cpu_s")):
        c_ = got.get("c", {}).get(field)
        for k in "abqd":
            other = got.get(k, {}).get(field)
            out[f"c_over_{k}{suffix}"] = c_ / other if c_ and other else None
    for n in workers:
        if n > 1 and got.get("c") and got.get(worker_key(n)):
            for field in ("events_per_s", "events_per_s_mid"):
                one, many = got["c"].get(field), got[worker_key(n)].get(field)
                got[worker_key(n)][f"{field}_over_one"] = many / one if one and many else None
    return out


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _medians(rounds: list[dict]) -> dict:
    """The figures of several rounds: each phase's result is its last round's, with every
    rate, scaling factor and ratio replaced by the median over the rounds (the single
    runs' values are kept under `<field>_runs`). Ratios are medians of each round's
    ratio, not ratios of medians."""
    if len(rounds) == 1:
        return dict(rounds[0])
    out: dict = {}
    for key in dict.fromkeys(k for r in rounds for k in r):
        values = [r.get(key) for r in rounds]
        if any(isinstance(v, dict) for v in values):
            phase = dict(next(v for v in reversed(values) if isinstance(v, dict)))
            for field in (*RATE_FIELDS, "events_per_s_over_one", "events_per_s_mid_over_one", "worker_cores",
                          "broker_cores", "worker_cores_mid", "broker_cores_mid", "events_per_cpu_s_mid"):
                runs = [v.get(field) if isinstance(v, dict) else None for v in values]
                if any(x is not None for x in runs):
                    phase[field] = _median(runs)
                    phase[f"{field}_runs"] = runs
            phase["loadavg_runs"] = [v.get("loadavg") if isinstance(v, dict) else None for v in values]
            out[key] = phase
        else:
            out[key] = _median(values)
            out[f"{key}_runs"] = values
    return out


def _times100(v):
    return None if v is None else 100 * v


def _fmt(v, spec=",.0f", unit="") -> str:
    return "-" if v is None else f"{v:{spec}}{unit}"


def print_table(res: dict) -> None:
    g = lambda k, f: res.get(k, {}).get(f)                                  # noqa: E731

    def runs(values, spec) -> str:
        return " / ".join(_fmt(v, spec) for v in values)

    def ratio(k: str) -> str:
        text = f"{_fmt(res.get(f'c_over_{k}'), '.2f')}  ({_fmt(res.get(f'c_over_{k}_cpu'), '.2f')})"
        if res.get(f"c_over_{k}_runs") and res.get(f"c_over_{k}") is not None:
            text += f"   runs {runs(res[f'c_over_{k}_runs'], '.2f')}  ({runs(res[f'c_over_{k}_cpu_runs'], '.2f')})"
        return text

    def rate(k: str) -> str:
        if not res.get(k):
            return "-"
        text = (f"{_fmt(g(k, 'events_per_s'), ',.0f')} events/s   "
                f"[{_fmt(g(k, 'events_per_cpu_s'), ',.0f')} per CPU-s; load avg {_fmt(g(k, 'loadavg'), '.1f')}]")
        if g(k, "capped"):
            text += f"  (first {g(k, 'events'):,} events: stopped after {res['max_seconds']:g} s)"
        if g(k, "poll_mode") == "offsets":
            text += "  (timed by committed offsets)"
        if g(k, "events_per_s_runs"):
            text += (f"  medians of {runs(g(k, 'events_per_s_runs'), ',.0f')}  "
                     f"[{runs(g(k, 'events_per_cpu_s_runs'), ',.0f')}]; load avg "
                     f"{runs(g(k, 'loadavg_runs'), '.1f')}")
        elif g(k, "events_per_s_upper"):
            text += (f"  (<= {g(k, 'events_per_s_upper'):,.0f}: end seen within "
                     f"{g(k, 'end_uncertainty_s'):.2f} s, /report every {POLL_S} s)")
        return text

    rows = [
        ("events / leads / partitions", f"{res['events']:,} / {res['leads']:,} / {res['partitions']}"),
        ("publish (pulse replay, once)", _fmt(res.get("publish_seconds"), ".1f", " s")),
        ("(a) Faust agent, parse only", rate("a")),
        ("(b) Faust agent + Table write per event", rate("b")),
        ("(q) Quix Streams, state get + set per event", rate("q")),
        ("(c) pulse worker (event clock, dev)", rate("c")),
        ("(d) raw aiokafka getmany + orjson", rate("d")),
        ("c / a  (per CPU-s)", ratio("a")),
        ("c / b  (per CPU-s)", ratio("b")),
        ("pulse / Quix = c / q  (per CPU-s)", ratio("q")),
        ("pulse / raw = c / d  (per CPU-s)", ratio("d")),
        ("(c) peak RSS (VmHWM)", _fmt((g("c", "peak_rss") or 0) / 2**20 if g("c", "peak_rss") else None,
                                      ",.0f", " MiB")),
        ("(c) bytes / lead (peak; above idle)",
         f"{_fmt(g('c', 'bytes_per_lead'))} ; {_fmt(g('c', 'bytes_per_lead_above_idle'))}"),
        ("(c) changelog records per event; MiB written",
         f"{_fmt(g('c', 'changelog_records_per_event'), '.2f')}; "
         f"{_fmt(g('c', 'changelog_bytes') / 2**20 if g('c', 'changelog_bytes') else None, ',.0f')}"),
        ("(q) changelog records per event; MiB written",
         f"{_fmt(g('q', 'changelog_records_per_event'), '.2f')}; "
         f"{_fmt(g('q', 'changelog_bytes') / 2**20 if g('q', 'changelog_bytes') else None, ',.1f')}"),
        ("(c) /report call mean/max; worker busy serving it",
         f"{_fmt(g('c', 'report_call_ms_mean'), '.1f')} / {_fmt(g('c', 'report_call_ms_max'), '.1f')} ms; "
         f"{_fmt(_times100(g('c', 'report_busy_fraction')), '.1f')} %"),
        ("(e) alert latency p50 / p99 (ack -> resolved)",
         f"{_fmt(g('e', 'p50_ms'), ',.0f')} / {_fmt(g('e', 'p99_ms'), ',.0f')} ms"
         + (f"  ({g('e', 'leads')} leads)" if g("e", "leads") else "")),
        ("(e) tailer floor p50 / p99 (broker round trip)",
         f"{_fmt(g('e', 'tailer_floor_p50_ms'), ',.0f')} / {_fmt(g('e', 'tailer_floor_p99_ms'), ',.0f')} ms"),
    ]
    for n in res.get("workers") or ():
        k = worker_key(n)
        if n == 1 or not res.get(k):
            continue
        rows.insert(rows.index(next(r for r in rows if r[0].startswith("(d)"))),
                    (f"(c) {n} pulse workers, one group", rate(k)))
    scaling = [(n, res[worker_key(n)]) for n in res.get("workers") or () if res.get(worker_key(n))]
    if len(scaling) > 1:
        def scale(n: int, r: dict, field: str) -> str:
            text = _fmt(r.get(field))
            return text + (f" (x{_fmt(r.get(field + '_over_one'), '.2f')})" if n > 1 else "")

        rows.append(("(c) scaling, N workers: events/s (x one)",
                     "   ".join(f"{n}: {scale(n, r, 'events_per_s')}" for n, r in scaling)))
        rows.append(("(c) scaling, steady rate (20-80 % of the events)",
                     "   ".join(f"{n}: {scale(n, r, 'events_per_s_mid')}" for n, r in scaling)))
    if scaling:
        rows.append(("(c) cores busy: workers + broker (Tansu)",
                     "   ".join(f"{n}: {_fmt(r.get('worker_cores'), '.2f')} + {_fmt(r.get('broker_cores'), '.2f')}"
                                for n, r in scaling)))
        rows.append(("(c) the same, steady (20-80 %); events per CPU-s",
                     "   ".join(f"{n}: {_fmt(r.get('worker_cores_mid'), '.2f')} + "
                                f"{_fmt(r.get('broker_cores_mid'), '.2f')}; {_fmt(r.get('events_per_cpu_s_mid'))}"
                                for n, r in scaling)))
    if len(scaling) <= 1 and g("c", "events_per_s_mid"):
        rows.append(("(c) steady rate (20-80 % of the events)", f"{_fmt(g('c', 'events_per_s_mid'))} events/s"))
    for k in "abqd":
        if g(k, "peak_rss"):
            rows.append((f"({k}) peak RSS", f"{g(k, 'peak_rss') / 2**20:,.0f} MiB"))
    width = max(len(r[0]) for r in rows)
    print(f"\nPipeline Pulse worker benchmark ({res['cores']} cores, embedded Tansu broker)")
    la = lambda k: ", ".join(f"{x:.2f}" for x in res[k]) if res.get(k) else "-"      # noqa: E731
    print(f"  started {res.get('started', '-')}; load average (1, 5, 15 min) at the start: {la('loadavg_start')}, "
          f"at the end: {la('loadavg_end')}")
    for name, value in rows:
        print(f"  {name.ljust(width)}  {value}")
    prof = res.get("profile")
    if prof:
        print(f"\n  py-spy, pulse worker under load ({prof['samples']} samples; "
              f"still consuming at the end: {prof['still_consuming_at_end']}), top self time:")
        for f, p in prof["top_self"]:
            print(f"    {p:5.1f} %  {f}")
        print("  this project's functions, inclusive time:")
        for f, p in prof["project_inclusive"]:
            print(f"    {p:5.1f} %  {f}")
    print(f"\n  command: {res['command']}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_consume"]:
        child_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events-file", help="publish this JSON Lines file instead of a generated one")
    ap.add_argument("--leads", type=int, default=DEFAULT_LEADS,
                    help=f"leads of the generated file (default {DEFAULT_LEADS:,}: ~500k events)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--alert-leads", type=int, default=100, help="leads timed in (e), one at a time (default 100)")
    ap.add_argument("--poll", choices=("hybrid", "report", "offsets"), default="hybrid",
                    help="(c): hybrid (default): GET /report every 0.2 s at the start and the end, committed "
                         "offsets in between; report: GET /report every 0.2 s throughout; offsets: the "
                         "group's committed offsets only (first > 0 to == total; the worker commits every "
                         "1 s, so both ends are late by up to ~1.2 s), GET /report once at the end to check")
    ap.add_argument("--alert-gap", type=float, default=1.5, metavar="SECONDS",
                    help="(e): random pause U(0, SECONDS) before each stage change (default 1.5: "
                         "Faust's fetch max wait), so publishes fall at random phases of the fetch cycle")
    ap.add_argument("--skip", default="", help="comma-separated phases to skip, of a,b,q,c,d,e")
    ap.add_argument("--no-quix", action="store_true",
                    help="skip (q), Quix Streams (needed when quixstreams, the bench extra, is not installed)")
    ap.add_argument("--workers", default="1", metavar="N[,N...]",
                    help="(c) with each of these numbers of pulse workers sharing the partitions in one "
                         "consumer group, one after another (default 1; e.g. 1,2,4)")
    ap.add_argument("--py-spy", type=int, default=0, metavar="SECONDS",
                    help="also profile pulse worker under load for SECONDS with py-spy (0: off)")
    ap.add_argument("--max-seconds", type=float, default=60.0, metavar="S",
                    help="(a), (b), (q), (d) stop S seconds after their first event unless done: their rate over "
                         "the first events of the same topics (default 60; 0: read everything). (c) always "
                         "reads everything")
    ap.add_argument("--timeout", type=float, default=None, help="per-phase failsafe timeout in seconds "
                                                                  "(default 90 + max-seconds; (c) 120 + events/300)")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="N rounds of (d), (a), (b), (q), (c) on the same published topics (interleaved: "
                         "d a b q c.. d a b q c..); the table shows medians of rates and of each round's "
                         "ratios (default 1)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ap.add_argument("--save", metavar="FILE", help="also write the results (JSON) to FILE")
    a = ap.parse_args(argv)
    a.argv = argv
    if a.skip and not set(a.skip.split(",")) <= set(PHASES):
        ap.error(f"--skip takes phases of {','.join(PHASES)}")
    try:
        a.workers = sorted({int(x) for x in a.workers.split(",")})
    except ValueError:
        ap.error("--workers takes numbers, e.g. 1,2,4")
    if a.workers[0] < 1 or a.workers[-1] > a.partitions:
        ap.error(f"--workers: each between 1 and --partitions ({a.partitions}); more would stand idle")
    if a.repeat < 1:
        ap.error("--repeat takes a number >= 1")
    if a.no_quix:
        a.skip = ",".join(filter(None, [a.skip, "q"]))
    elif "q" not in a.skip.split(",") and not quix_available():
        print(f"bench_worker: {QUIX_MISSING}", file=sys.stderr)
        return 2

    def on_term(signum, frame):          # SIGTERM: unwind like Ctrl-C, so every phase cleans up
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)     # also when started with SIGINT ignored
    try:
        res = run(a)
    except BenchError as exc:
        print(f"bench_worker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_worker: interrupted", file=sys.stderr)
        return 130
    if a.save:
        Path(a.save).write_text(json.dumps(res, indent=1))
    if a.json:
        print(json.dumps(res))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(1, str(ROOT))
    sys.exit(main())
