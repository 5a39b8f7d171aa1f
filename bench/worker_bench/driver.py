"""The driver's parts: child processes, the event file, (a) (b) (d) self-timed consumers, starting
and reading a pulse worker, publishing the event file."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from .children import _vm
from .common import HERE, OUT_DIR, ROOT, SCRIPT, BenchError, _log, _tail


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
    argv = [sys.executable, str(SCRIPT), "_consume", mode, "--bootstrap", bootstrap,
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


TIMING_HOOK = Path(__file__).resolve().parent / "timing_hook"


def launch_worker(children: Children, broker_url: str, prefix: str, workdir: Path, partitions: int,
                  tag: str, app_id: str | None = None, timed_total: int | None = None):
    """A `pulse worker` (event clock, dev profile) via tests/support/live_harness.WorkerProcess,
    spawned without waiting for health (so the poller sees consumption start). Workers
    given the same `app_id` form one consumer group and share the partitions.
    `timed_total`: the worker times itself (timing_hook/sitecustomize.py) until it has applied
    that many messages, into `w.timing_file`."""
    WorkerProcess = _load_harness()
    wdir = workdir / tag
    wdir.mkdir(parents=True, exist_ok=True)
    env, timing_file = None, None
    if timed_total:
        timing_file = wdir / "timing.json"
        timing_file.unlink(missing_ok=True)
        path = os.environ.get("PYTHONPATH")
        env = {"PYTHONPATH": str(TIMING_HOOK) + (os.pathsep + path if path else ""),
               "PULSE_BENCH_TIMING": str(timing_file), "PULSE_BENCH_TOTAL": str(timed_total)}
    w = WorkerProcess(broker_url, prefix, app_id or f"bench-{tag}-{uuid.uuid4().hex[:8]}", wdir,
                      partitions=partitions, extra_env=env)
    w.timing_file = timing_file
    w._log = open(w.log_path, "ab")
    w.proc = children.spawn(w.argv, stdout=w._log, stderr=subprocess.STDOUT, env=w.env, cwd=w.cwd)
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

    from pulse.kafka.broker import create_topics
    from pulse.schemas.topics import DEADLETTER, NOTIFICATIONS, topic_names

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
        proc = children.spawn([sys.executable, str(SCRIPT), "_consume", "count", "--bootstrap",
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


# -- publishing --------------------------------------------------------------------------------

def publish(children: Children, broker, path: Path, prefix: str, partitions: int, total: int,
            workdir: Path) -> float:
    from pulse.kafka.broker import create_topics
    from pulse.schemas.topics import topic_names

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


