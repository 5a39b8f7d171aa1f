"""What the dashboard and GET /report cost a worker holding ~130,000 leads. Prints figures.

    python bench/bench_dashboard.py                      # 130,000 leads (bench/out/events-130000-s1.jsonl)
    python bench/bench_dashboard.py --leads 20000 --window 4   # a quick check
    python bench/bench_dashboard.py --paired --live-time --tail 0.45 --rate 2000 --window 10 --pairs 5

One run, one embedded broker, one `pulse worker` (event clock, 4 partitions):

1. The file is split: the first part is replayed and consumed in full (the worker then
   holds ~all the leads); the rest is kept for step 4.
2. **First render**: a fresh headless Chromium page (1280x800) loads GET / until the
   stale table shows, cold (no snapshot yet or an expired one: a build included) and
   warm (from the shared snapshot); 5 of each.
3. **GET /report latency**, quiet worker: 40 sequential requests (served from the
   snapshot; at most one build per 2 s interval).
4. **Ten viewers against none, while consuming**: the rest of the file is replayed at
   a fixed rate (`--rate`); the run alternates windows of `--window` seconds with no
   viewer and with ten simulated viewers (each holds /dashboard/events open and, on each
   `snapshot` event, fetches /dashboard/data with a stale page, as the page does), and a
   window with a client reading GET /report every 2 s (`--no-reader`: none). The first
   `--warmup` cycles are left out (one-time costs: the alert feed's start, the first
   build's whole read). Per window: the worker process's CPU (utime+stime from /proc),
   the CPU of its reaped build children (cutime+cstime), the worker's consumption rate
   and its CPU per message consumed (committed offsets: a window that caught up on more
   lag did more work). Ratios are per cycle and from this one run.
5. **`--paired`** (instead of 2-4): two identical workers consume the same input at the same
   moment; ten viewers stay on one for a phase, then on the other (run_paired says why).
   **`--live-time`**: the replayed events' times moved to real time (live_timed), so the
   event clock moves as a live worker's does instead of ~1 day per second.
6. **`--py-spy`** (a diagnostic run): py-spy samples the worker (with `--paired`: both
   workers; the summary then gives each one's share of busy samples in viewer work, viewed
   and not) in every window; it prints
   the functions with the most samples added by the viewers, and per ten-viewer window
   the share of the worker's busy samples in viewer work (snapshot builds, the figures
   kept for them, the dashboard's handlers, aiohttp): measured inside each window, so it
   does not depend on two windows doing the same work.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.support.live_harness import WorkerProcess  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from worker_bench.driver import CommittedOffsets  # noqa: E402

from pulse.kafka.broker import EmbeddedBroker, create_topics  # noqa: E402
from pulse.schemas.topics import INPUT_TOPICS, topic_names  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync"]


def _stat(pid: int) -> list[bytes]:
    """/proc/PID/stat's fields after the command name (field 3, the state, is index 0)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()


def system_cpu(pid: int) -> float:
    """Own stime in seconds: the kernel's share (fork, page faults, socket calls)."""
    return int(_stat(pid)[12]) / TICK


def cpu(pid: int) -> tuple[float, float, int]:
    """(own utime+stime, reaped children's cutime+cstime) in seconds, and own minor page faults
    (after a fork, the first write to each page shared with the child is one)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK, (int(fields[13]) + int(fields[14])) / TICK, int(fields[7])


def get(url: str, timeout: float = 30) -> tuple[bytes, float]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body = r.read()
    return body, time.perf_counter() - t


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def replay(broker: EmbeddedBroker, prefix: str, path: Path, rate: float | None = None) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pulse.cli", "replay", str(path), "--broker", broker.url, "--topic-prefix", prefix,
            "--no-progress"] + (["--rate", str(rate)] if rate else [])
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def events_read(w: WorkerProcess) -> int:
    return json.loads(get(w.url("/report"))[0])["data_quality"]["events_read"]


def wait_read(w: WorkerProcess, n: int, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while events_read(w) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker did not read {n} events:\n{w.log_tail()}")
        time.sleep(2.0)


def first_render(url: str, rounds: int, cold_wait: float) -> dict:
    from playwright.sync_api import sync_playwright
    out: dict[str, list[float]] = {"cold": [], "warm": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        for i in range(rounds * 2):
            kind = "cold" if i % 2 == 0 else "warm"
            if kind == "cold":
                time.sleep(cold_wait)           # the snapshot expires (MAX_AGE_S): this load waits for a build
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            t = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("#stale-table tbody tr")
            page.wait_for_selector("[data-field$='.open.amount']")
            out[kind].append(time.perf_counter() - t)
            page.close()
        browser.close()
    return {k: {"median_s": statistics.median(v), "max_s": max(v), "n": len(v)} for k, v in out.items()}


async def viewer(base: str, stop: asyncio.Event, counts: dict) -> None:
    """What the page does: one SSE stream; on each new snapshot, its data with a stale page (one request)."""
    import aiohttp
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as s:
        async with s.get(f"{base}/dashboard/events") as stream:
            async def follow():
                event = None
                async for line in stream.content:
                    line = line.decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "snapshot":
                        for path in ("/dashboard/data?pipeline=default&offset=0&limit=25",):
                            async with s.get(base + path) as r:
                                await r.read()
                                counts["requests"] += 1
                    elif line.startswith("data: ") and event == "alert":
                        counts["alerts"] += 1
            task = asyncio.ensure_future(follow())
            await stop.wait()
            task.cancel()


async def report_reader(base: str, stop: asyncio.Event, latencies: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        _, dt = await loop.run_in_executor(None, get, f"{base}/report")
        latencies.append(dt)
        try:
            await asyncio.wait_for(stop.wait(), 2.0)
        except asyncio.TimeoutError:
            pass


class Published:
    """Sum of the input topics' end offsets (what the publisher has written so far)."""

    def __init__(self, bootstrap: str, topics: list[str], partitions: int):
        from kafka import KafkaConsumer, TopicPartition
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        self.tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]

    def __call__(self) -> int:
        return sum(self.consumer.end_offsets(self.tps).values())

    def close(self) -> None:
        self.consumer.close()


SPY_RATE = 100         # py-spy's samples per second (--spy-rate)


async def start_spy(pid: int, seconds: float, spy_file: Path) -> asyncio.subprocess.Process:
    """py-spy sampling a worker's stacks for `seconds` (SPY_RATE Hz, raw) into `spy_file`."""
    return await asyncio.create_subprocess_exec(
        shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
        "-d", str(round(seconds)), "-f", "raw", "-r", str(SPY_RATE), "-o", str(spy_file),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def window(w: WorkerProcess, seconds: float, viewers: int, consumed, reader: bool = False,
                 published=None, spy_file: Path | None = None) -> dict:
    base = w.url("").rstrip("/")
    stop = asyncio.Event()
    counts = {"requests": 0, "alerts": 0}
    latencies: list[float] = []
    tasks = [asyncio.ensure_future(viewer(base, stop, counts)) for _ in range(viewers)]
    if reader:
        tasks.append(asyncio.ensure_future(report_reader(base, stop, latencies)))
    loop = asyncio.get_running_loop()
    read0 = await loop.run_in_executor(None, consumed)     # committed offsets: no request to the worker
    pub0 = await loop.run_in_executor(None, published)
    spy = await start_spy(w.proc.pid, seconds, spy_file) if spy_file is not None else None
    own0, kids0, faults0 = cpu(w.proc.pid)
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    if spy is not None:
        await spy.wait()
    own1, kids1, faults1 = cpu(w.proc.pid)
    t1 = time.monotonic()
    read1 = await loop.run_in_executor(None, consumed)
    pub1 = await loop.run_in_executor(None, published)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    wall = t1 - t0
    return {"viewers": viewers, "report_reader": reader, "seconds": round(wall, 2), "worker_cpu": round((own1 - own0) / wall, 4),
            "build_children_cpu": round((kids1 - kids0) / wall, 4),
            "minor_faults_per_s": round((faults1 - faults0) / wall), "committed_per_s": round((read1 - read0) / wall),
            "published_per_s": round((pub1 - pub0) / wall), "lag_at_end": pub1 - read1,
            "cpu_us_per_message": round((own1 - own0) / max(1, read1 - read0) * 1e6, 1),
            "viewer_requests": counts["requests"], "alerts_per_viewer": counts["alerts"] // max(1, viewers),
            "report_p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
            "report_max_ms": round(max(latencies) * 1000, 1) if latencies else None}


def raw_stacks(path: Path):
    """(stack, samples) of each line of a py-spy raw file (none if the file is missing): the
    stack's frames joined by ";", outermost first, each "function (file:line)"."""
    if not path.exists():
        return
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            yield stack, int(count)


def stack_samples(path: Path) -> collections.Counter:
    """Inclusive samples per function (file and name, no line) of a py-spy raw file."""
    incl: collections.Counter = collections.Counter()
    for stack, count in raw_stacks(path):
        for frame in {f.rsplit(":", 1)[0] for f in stack.split(";")}:
            incl[frame] += count
        incl["(all)"] += count
    return incl


# Frames of the work that viewers cause (snapshot builds, the figures kept for them, the
# dashboard's handlers and views, the alert feed, aiohttp serving them): nothing else calls the
# worker's HTTP server or builds a snapshot during the bench's windows.
VIEWER_FRAMES = ("agents/web.py", "agents/views.py", "agents/snapshot.py", "agents/alert_feed.py",
                 "streams/cluster.py", "streams/open_sums.py", "streams/open_stale.py", "streams/window_totals.py",
                 "streams/report.py", "aiohttp/")
IDLE_FRAMES = ("select (selectors.py", "EpollSelector.select", "_bootstrap_inner (threading.py")


def viewer_share(path: Path, frames: tuple[str, ...] = VIEWER_FRAMES) -> tuple[int, int]:
    """(samples in viewer work, busy samples) of one window's py-spy raw file: the share of the
    worker's busy time that the viewers caused, measured inside the window (no baseline needed).
    `frames`: what counts as their work (bench_reads.py counts a scraper's)."""
    viewer = busy = 0
    for stack, count in raw_stacks(path):
        leaf = stack.rsplit(";", 1)[-1]
        if any(f in leaf for f in IDLE_FRAMES[:2]):
            continue                            # waiting for the network, not working
        busy += count
        if any(f in stack for f in frames):
            viewer += count
    return viewer, busy


def viewer_breakdown(paths: list[Path], frames: tuple[str, ...] = VIEWER_FRAMES) -> collections.Counter:
    """The samples in viewer work of these py-spy raw files, per part: the innermost frame of
    `frames` in each stack (a build's own step, aiohttp, the dashboard's handlers...)."""
    parts: collections.Counter = collections.Counter()
    for path in paths:
        for stack, count in raw_stacks(path):
            for frame in reversed(stack.split(";")):
                hit = next((f for f in frames if f in frame), None)
                if hit is not None:
                    parts[hit if hit == "aiohttp/" else frame.rsplit(":", 1)[0]] += count
                    break
    return parts


def print_profile_difference(work: Path, pairs: int, top: int = 30) -> None:
    """Per function: samples summed over the ten-viewer windows minus the no-viewer windows (100 Hz:
    1 sample ~ 10 ms of the worker's threads' time); and per ten-viewer window, the share of its
    busy samples in viewer work."""
    none, ten = collections.Counter(), collections.Counter()
    shares = []
    for cycle in range(pairs):
        none.update(stack_samples(work / f"spy-{cycle}-0-0.raw"))
        ten.update(stack_samples(work / f"spy-{cycle}-10-0.raw"))
        shares.append(viewer_share(work / f"spy-{cycle}-10-0.raw"))
    print(f"py-spy: {none['(all)']} samples without viewers, {ten['(all)']} with ten ({pairs} window pairs); "
          f"functions with the most samples added by the viewers (inclusive):")
    diff = sorted(((ten[f] - none[f], f) for f in set(ten) | set(none)), reverse=True)
    for d, f in diff[:top]:
        print(f"  {d:+6d}  ({none[f]:5d} -> {ten[f]:5d})  {f}")
    print("py-spy: share of the worker's busy samples in viewer work, per ten-viewer window: "
          + ", ".join(f"{v}/{b} = {100 * v / b:.1f} %" for v, b in shares if b)
          + f"; all windows: {100 * sum(v for v, _ in shares) / max(1, sum(b for _, b in shares)):.1f} %")
    noneshares = [viewer_share(work / f"spy-{cycle}-0-0.raw") for cycle in range(pairs)]
    print("py-spy: the same share in the no-viewer windows (should be ~0): "
          + ", ".join(f"{v}/{b}" for v, b in noneshares))


def live_timed(head: list[bytes], tail: list[bytes], rate: float) -> list[bytes]:
    """The tail with each event's occurred_at moved to real time at `rate` events/s after the
    head's last (lines that are not JSON objects with a timestamp stay as they are). Replayed at
    `rate`, the event clock then moves as a live worker's does, ~4 s per snapshot build, where
    the file's own times move ~1 day per second of replay at 2,000 msg/s (every build then sees
    stays cross their stale limits by the thousand and alerts by the hundred per second)."""
    import orjson
    from pulse.schemas.timestamps import format_timestamp, parse_timestamp

    def occurred(line: bytes) -> int | None:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        at = event.get("occurred_at") if isinstance(event, dict) else None
        return parse_timestamp(at) if isinstance(at, str) else None

    start = max(t for t in map(occurred, head) if t is not None) + 1_000_000
    out = []
    for i, line in enumerate(tail):
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict) and isinstance(event.get("occurred_at"), str) \
                and parse_timestamp(event["occurred_at"]) is not None:
            event["occurred_at"] = format_timestamp(start + round(i * 1e6 / rate))
            line = orjson.dumps(event)
        out.append(line)
    return out


def geometric_mean(a: float, b: float) -> float:
    return (a * b) ** 0.5


async def paired_windows(workers: list[WorkerProcess], consumed: list, seconds: float, windows: int,
                         viewed: int | None, label: str, spy_dir: Path | None = None) -> list[dict]:
    """`windows` windows over which both workers consume the same input at the same time; with
    `viewed` set, ten viewers stay on that worker for all of them (a page left open). Per window:
    each worker's CPU and messages committed, and the viewed worker's CPU over the other's;
    with `spy_dir` (--py-spy), also each worker's share of busy samples in viewer work."""
    base = workers[viewed].url("").rstrip("/") if viewed is not None else None
    stop = asyncio.Event()
    counts = {"requests": 0, "alerts": 0}
    tasks = [asyncio.ensure_future(viewer(base, stop, counts)) for _ in range(10)] if base else []
    loop = asyncio.get_running_loop()
    out = []
    try:
        for i in range(windows):
            read0 = [await loop.run_in_executor(None, c) for c in consumed]
            spy_files = [spy_dir / f"paired-{label.replace(' ', '_')}-{i}-{k}.raw" for k in range(2)] if spy_dir else []
            spies = [await start_spy(w.proc.pid, seconds, f) for w, f in zip(workers, spy_files)]
            cpu0 = [cpu(w.proc.pid)[0] for w in workers]
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            for spy in spies:
                await spy.wait()
            cpu1 = [cpu(w.proc.pid)[0] for w in workers]
            wall = time.monotonic() - t0
            read1 = [await loop.run_in_executor(None, c) for c in consumed]
            used = [(b - a) / wall for a, b in zip(cpu0, cpu1)]
            msgs = [max(1, (b or 0) - (a or 0)) for a, b in zip(read0, read1)]
            per_msg = [u * wall / m * 1e6 for u, m in zip(used, msgs)]
            mine, other = (viewed, 1 - viewed) if viewed is not None else (0, 1)
            row = {"phase": label, "window": i, "cpu": [round(u, 4) for u in used],
                   "committed_per_s": [round(m / wall) for m in msgs], "cpu_us_per_message": [round(x, 1) for x in per_msg],
                   "cpu_ratio": round(used[mine] / used[other], 4),
                   "per_message_ratio": round(per_msg[mine] / per_msg[other], 4), "viewer_requests": counts["requests"],
                   "viewer_alerts": counts["alerts"]}
            if spy_files:       # [viewer-work samples, busy samples] per worker
                row["py_spy_viewer_busy"] = [list(viewer_share(f)) for f in spy_files]
            print(json.dumps(row), flush=True)
            out.append(row)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return out


def run_paired(args, broker: EmbeddedBroker, head: Path, tail: Path, cut: int, work: Path) -> None:
    """Two identical workers (own consumer groups) consume the same topics at the same time:
    one is looked at by ten viewers for a whole phase, the other not; then the roles swap.
    Both do the same work at the same moment, so the event mix along the file (which moves
    a single worker's CPU by ±30 % between windows) cancels out, and swapping the roles
    cancels what differs between the two processes: the viewers' factor is the geometric
    mean of (A/B with viewers on A) and (B/A with viewers on B)."""
    prefix = f"bd{uuid.uuid4().hex[:6]}."
    names = topic_names(prefix)
    create_topics(broker.bootstrap, list(names.values()), 4)
    groups = [f"bench-dash-a-{prefix}", f"bench-dash-b-{prefix}"]
    workers = [WorkerProcess(broker.url, prefix, g, work).start(timeout=120) for g in groups]
    consumed = [CommittedOffsets(broker.bootstrap, g, [names[t] for t in INPUT_TOPICS], 4) for g in groups]
    try:
        if replay(broker, prefix, head).wait() != 0:
            raise RuntimeError("replay failed")
        for w in workers:
            wait_read(w, cut)
        for w in workers:           # each builds its first snapshot (every partition read whole) before measuring
            get(w.url("/dashboard/data"))
        print(f"preloaded: {cut:,} messages consumed by both workers", flush=True)
        publisher = replay(broker, prefix, tail, rate=args.rate)
        time.sleep(3.0)

        async def measure():
            spy_dir = work if args.py_spy else None
            rows = await paired_windows(workers, consumed, args.window, args.calibration, None, "calibration", spy_dir)
            for viewed, label in ((0, "viewers on A"), (1, "viewers on B")):
                rows += await paired_windows(workers, consumed, args.window, args.warmup + args.pairs, viewed, label,
                                             spy_dir)
            return rows
        rows = asyncio.run(measure())
        if publisher.poll() is None:
            publisher.terminate()
        else:
            print("note: the replay ended before the last window; use a larger --tail or lower --rate")
        med = statistics.median
        calib = [r for r in rows if r["phase"] == "calibration"]
        on_a = [r for r in rows if r["phase"] == "viewers on A" and r["window"] >= args.warmup]
        on_b = [r for r in rows if r["phase"] == "viewers on B" and r["window"] >= args.warmup]
        summary = {
            "calibration_cpu_ratio_a_over_b": [r["cpu_ratio"] for r in calib],
            "viewed_over_other_cpu_ratio_viewers_on_a": [r["cpu_ratio"] for r in on_a],
            "viewed_over_other_cpu_ratio_viewers_on_b": [r["cpu_ratio"] for r in on_b],
            "viewers_cpu_factor": round(geometric_mean(med(r["cpu_ratio"] for r in on_a),
                                                       med(r["cpu_ratio"] for r in on_b)), 4),
            "viewers_cpu_per_message_factor": round(geometric_mean(med(r["per_message_ratio"] for r in on_a),
                                                                   med(r["per_message_ratio"] for r in on_b)), 4),
            "viewed_worker_cpu_median": med(r["cpu"][0] for r in on_a),
            "warm_up_windows_left_out_per_phase": args.warmup,
        }
        if args.py_spy:
            # samples in viewer work / busy samples, summed over the measured windows: the viewed
            # worker's and the other's (the other's is the sampler's noise floor)
            def share(rows_, k):
                part = sum(r["py_spy_viewer_busy"][k][0] for r in rows_)
                return round(100 * part / max(1, sum(r["py_spy_viewer_busy"][k][1] for r in rows_)), 2)
            summary["py_spy_viewer_share_pct_viewed"] = [share(on_a, 0), share(on_b, 1)]
            summary["py_spy_viewer_share_pct_other"] = [share(on_a, 1), share(on_b, 0)]
            # where the viewed worker's viewer samples are, summed over its measured windows
            viewed_files = [work / f"paired-viewers_on_{ab}-{r['window']}-{k}.raw"
                            for ab, k, rows_ in (("A", 0, on_a), ("B", 1, on_b)) for r in rows_]
            summary["py_spy_viewer_samples_by_function"] = dict(viewer_breakdown(viewed_files).most_common(25))
        print(json.dumps(summary, indent=1), flush=True)
    finally:
        for c in consumed:
            c.close()
        for w in workers:
            w.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leads", type=int, default=130_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tail", type=float, default=0.15, help="fraction of the file kept for the consuming phase")
    ap.add_argument("--rate", type=float, default=3000.0, help="messages/s replayed during the consuming phase")
    ap.add_argument("--window", type=float, default=8.0, help="seconds per measurement window")
    ap.add_argument("--pairs", type=int, default=3, help="(no viewer, ten viewers, /report reader) window cycles")
    ap.add_argument("--renders", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1,
                    help="cycles run first and left out of the figures: the first viewers start the alert "
                         "feed and the first in-process build reads every partition whole (one-time costs)")
    ap.add_argument("--paired", action="store_true",
                    help="two identical workers consume the same input at once; ten viewers stay on one for a "
                         "phase, then on the other: the viewers' cost without the event mix's noise (run_paired)")
    ap.add_argument("--calibration", type=int, default=2, help="--paired: windows without viewers first")
    ap.add_argument("--live-time", action="store_true",
                    help="move the replayed events' occurred_at to real time at --rate (live_timed): the event "
                         "clock then moves as a live worker's, not ~1 day per second")
    ap.add_argument("--no-reader", action="store_true",
                    help="cycles of (no viewer, ten viewers) only: no GET /report window (more cycles per run)")
    ap.add_argument("--py-spy", action="store_true",
                    help="profile the worker (py-spy) in every window; print where ten viewers' samples go "
                         "against no viewer's (a diagnostic run: sampling costs the worker too)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (--paired: its py-spy files)")
    ap.add_argument("--spy-rate", type=int, default=100, help="py-spy's samples per second (--py-spy)")
    args = ap.parse_args()
    global SPY_RATE
    SPY_RATE = args.spy_rate

    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"events-{args.leads}-s{args.seed}.jsonl"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "generate_events.py"), str(path), "--leads",
                        str(args.leads), "--seed", str(args.seed), "--messy"], check=True)
    lines = path.read_bytes().split(b"\n")
    lines = [x for x in lines if x.strip()]
    cut = int(len(lines) * (1 - args.tail))
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    head, tail = work / "head.jsonl", work / "tail.jsonl"
    head.write_bytes(b"\n".join(lines[:cut]) + b"\n")
    tail.write_bytes(b"\n".join(live_timed(lines[:cut], lines[cut:], args.rate) if args.live_time
                                else lines[cut:]) + b"\n")
    print(f"file {path.name}: {len(lines):,} messages; {cut:,} preloaded, {len(lines) - cut:,} replayed "
          f"at {args.rate:,.0f}/s while measuring", flush=True)

    if args.paired:
        with EmbeddedBroker() as broker:
            run_paired(args, broker, head, tail, cut, work)
        if args.keep:
            print(f"kept: {work} (the py-spy files: paired-*.raw)")
        else:
            shutil.rmtree(work, ignore_errors=True)
        return 0

    with EmbeddedBroker() as broker:
        prefix = f"bd{uuid.uuid4().hex[:6]}."
        create_topics(broker.bootstrap, list(topic_names(prefix).values()), 4)
        w = WorkerProcess(broker.url, prefix, f"bench-dash-{prefix}", work).start(timeout=120)
        try:
            t = time.monotonic()
            if replay(broker, prefix, head).wait() != 0:
                raise RuntimeError("replay failed")
            wait_read(w, cut)
            print(f"preloaded: {cut:,} messages consumed in {time.monotonic() - t:.0f} s", flush=True)
            data = json.loads(get(w.url("/dashboard/data"))[0])
            section = data["section"]
            print(f"worker holds: {section['open']['count']:,} open leads, "
                  f"{section['stale_summary']['total']:,} stale; snapshot build {data['build']['seconds'] * 1000:.0f} ms "
                  f"({'in process' if not data['build']['forks'] else 'forked: the fork held the loop %s ms' % data['build']['fork_ms_last']}; "
                  f"the first build takes every partition's sums whole)", flush=True)

            sizes = {p: len(get(w.url(p))[0]) for p in ("/report", "/dashboard/data", "/dashboard/stale")}
            renders = first_render(w.url("/"), args.renders, cold_wait=5.5)
            lat = [get(w.url("/report"))[1] for _ in range(40)]
            print(json.dumps({"first_render": renders,
                              "report_quiet_ms": {"p50": round(pct(lat, 50) * 1000, 1), "p99": round(pct(lat, 99) * 1000, 1),
                                                  "max": round(max(lat) * 1000, 1)},
                              "bytes": sizes}, indent=1), flush=True)

            names = topic_names(prefix)
            consumed = CommittedOffsets(broker.bootstrap, f"bench-dash-{prefix}", [names[t] for t in INPUT_TOPICS], 4)
            published = Published(broker.bootstrap, [names[t] for t in INPUT_TOPICS], 4)
            publisher = replay(broker, prefix, tail, rate=args.rate)
            time.sleep(3.0)                     # the worker settles into the input rate
            results = []

            async def measure():
                for cycle in range(-args.warmup, args.pairs):
                    for viewers, reader in ((0, False), (10, False)) + (() if args.no_reader else ((0, True),)):
                        spy_file = work / f"spy-{cycle}-{viewers}-{int(reader)}.raw" if args.py_spy and cycle >= 0 else None
                        result = await window(w, args.window, viewers, consumed, reader, published, spy_file)
                        print(json.dumps({**result, "warm_up": cycle < 0}), flush=True)
                        if cycle >= 0:
                            results.append(result)
            asyncio.run(measure())
            consumed.close()
            published.close()
            if publisher.poll() is None:
                publisher.terminate()
            else:
                print("note: the replay ended before the last window; use a larger --tail or lower --rate")
            build = json.loads(get(w.url("/dashboard/data"))[0])["build"]
            none = [r for r in results if r["viewers"] == 0 and not r["report_reader"]]
            ten = [r for r in results if r["viewers"] == 10]
            reading = [r for r in results if r["report_reader"]]
            med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
            # per cycle: the ten-viewer window against the no-viewer window just before it
            ratios = [t["worker_cpu"] / n["worker_cpu"] for n, t in zip(none, ten)]
            deltas = [t["worker_cpu"] - n["worker_cpu"] for n, t in zip(none, ten)]
            # CPU per message consumed (committed offsets): a window in which the worker caught up
            # on more of its lag did more work; this ratio does not charge that to the viewers
            per_message = [t["cpu_us_per_message"] / n["cpu_us_per_message"] for n, t in zip(none, ten)]
            print(json.dumps({
                "worker_cpu_none": med(none, "worker_cpu"), "worker_cpu_ten": med(ten, "worker_cpu"),
                "worker_cpu_ratio_ten_vs_none_per_cycle": [round(r, 3) for r in ratios],
                "worker_cpu_ratio_median": round(statistics.median(ratios), 3),
                "worker_cpu_added_by_ten_median_cores": round(statistics.median(deltas), 4),
                "worker_cpu_ratio_all_windows": round(sum(r["worker_cpu"] for r in ten) / sum(r["worker_cpu"] for r in none), 3),
                "cpu_per_message_ratio_per_cycle": [round(r, 3) for r in per_message],
                "cpu_per_message_ratio_median": round(statistics.median(per_message), 3),
                "build_children_cpu_ten": med(ten, "build_children_cpu"),
                "minor_faults_per_s_none": med(none, "minor_faults_per_s"),
                "minor_faults_per_s_ten": med(ten, "minor_faults_per_s"),
                "committed_per_s_none": med(none, "committed_per_s"), "committed_per_s_ten": med(ten, "committed_per_s"),
                "published_per_s_none": med(none, "published_per_s"), "published_per_s_ten": med(ten, "published_per_s"),
                "lag_at_end_none": med(none, "lag_at_end"), "lag_at_end_ten": med(ten, "lag_at_end"),
                **({"worker_cpu_report_every_2s": med(reading, "worker_cpu"),
                    "report_p50_ms_while_consuming": med(reading, "report_p50_ms"),
                    "report_max_ms_while_consuming": max(r["report_max_ms"] for r in reading)} if reading else {}),
                "snapshot_builds": build,
            }, indent=1), flush=True)
            if args.py_spy:
                print_profile_difference(work, args.pairs)
        finally:
            w.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
