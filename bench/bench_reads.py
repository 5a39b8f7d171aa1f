"""What reading /metrics and /report costs a worker consuming at full speed (issue 16's "reads that
cost nothing"). Prints figures.

    python bench/bench_reads.py                          # 130,000 leads (bench/out/events-130000-s1.jsonl)
    python bench/bench_reads.py --leads 20000 --window 3   # a quick check
    python bench/bench_reads.py --window 3 --start 0.3 --metrics-every 0.2 --save F.json   # more /metrics samples
    python bench/bench_reads.py --continuous --start 0.1 --save F.json   # issue 16's scraper all along: latencies
    python bench/bench_reads.py --continuous --start 0.1 --metrics-every 0.2 --metrics-process [--no-scrape-front]
    python bench/bench_reads.py --leads 260000 --start 0.03 --window 4 --settle 6   # the scraper's cost
    python bench/bench_reads.py --leads 600000 --start 0.05 --window 12 --settle 6 [--py-spy]   # ... at a build per 12 s

One run, one embedded broker, one `pulse worker` (event clock, 4 partitions):

1. The whole file is published first; then the worker starts and consumes it as fast as
   it can (no publisher competing for the cores while it does).
2. Once it has read `--start` of the file (it then holds most of the leads), the run
   alternates windows of `--window` seconds with no reader and with a scraper that reads
   GET /metrics every 1 s (`--metrics-every`) and GET /report every 2 s, each wait drawn in
   [0.5, 1.5] x its period, until the backlog is nearly done.
   Per window: the worker's consumption rate (committed offsets: no request to the
   worker) and CPU (also per message consumed: less sensitive to other jobs on the
   machine); per request: its latency (a window's first read apart: the run's first waits
   for the first build, and a later window's first GET /report may wait for one, as the
   window before let the snapshot expire; printed as first_*). Ratios are from this one run,
   per pair of adjacent windows, and their median. The snapshot is kept fresh for 5 s after
   the last GET /report (agents/snapshot.py, KEEP_FRESH_S): a no-reader window shorter than
   that still holds builds: `--settle 6` leaves the first 6 s of each no-reader window out
   (and 1 s of each scraper window, its first build), and each scraper window is also
   compared with the mean of the no-reader windows either side (the rate falls as the
   state grows).
3. Quiet worker (backlog consumed): 30 sequential GET /metrics and GET /report.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.resources
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_dashboard import (VIEWER_FRAMES, cpu, events_read, get, pct, replay, start_spy, system_cpu,  # noqa: E402
                             viewer_share)
from worker_bench.driver import CommittedOffsets  # noqa: E402
from tests.support.live_harness import WorkerProcess  # noqa: E402

from pulse.config.load import DEFAULT_CONFIG_RESOURCE  # noqa: E402
from pulse.kafka.broker import EmbeddedBroker, create_topics  # noqa: E402
from pulse.schemas.topics import INPUT_TOPICS, topic_names  # noqa: E402


async def scraper(base: str, stop: asyncio.Event, latencies: dict[str, list[float]], metrics_every: float,
                  metrics: bool = True) -> None:
    """GET /metrics every `metrics_every` s (1 s: issue 16's scraper) and GET /report every 2 s, each
    on its own schedule. Each wait is drawn in [0.5, 1.5] x the period, so that the reads sample
    the worker at random phases rather than lock to its 1 s timer (a fixed period may hit, or
    miss, the timer's turns every time)."""
    import random

    import aiohttp
    rng = random.Random(len(latencies["metrics"]))

    async def every(path: str, period: float, into: list[float]) -> None:
        async with aiohttp.ClientSession() as s:
            first = True
            while not stop.is_set():
                t = time.perf_counter()
                async with s.get(base + path) as r:
                    await r.read()
                into.append(time.perf_counter() - t)
                if first:
                    # Reported apart: the run's first read waits for the first build; a later window's
                    # first GET /report may wait for one too, as the window before (no reader) let the
                    # snapshot expire, which a scraper reading all along never meets.
                    latencies["first_" + path.strip("/")].append(into.pop())
                    first = False
                try:
                    await asyncio.wait_for(stop.wait(), max(0.0, period * rng.uniform(0.5, 1.5) - (time.perf_counter() - t)))
                except asyncio.TimeoutError:
                    pass
    await asyncio.gather(*([every("/metrics", metrics_every, latencies["metrics"])] if metrics else []),
                         every("/report", 2.0, latencies["report"]))


def metrics_scraper_process(base: str, every: float, stop, out: str) -> None:
    """`--metrics-process`: GET /metrics every ~`every` s from a process of its own (as Prometheus
    scrapes), until `stop` is set; the latencies (s) to `out` as JSON. In the bench's own process the
    same loop also reads GET /report (megabytes at 130,000 leads) and a thread polls the committed
    offsets with kafka-python: both delay a /metrics read as seen from there."""
    import random

    import aiohttp

    async def run() -> list[float]:
        rng, got = random.Random(7), []
        async with aiohttp.ClientSession() as s:
            while not stop.is_set():
                t = time.perf_counter()
                async with s.get(base + "/metrics") as r:
                    await r.read()
                got.append(time.perf_counter() - t)
                await asyncio.sleep(max(0.0, every * rng.uniform(0.5, 1.5) - (time.perf_counter() - t)))
        return got[1:]          # the first waits for the first build (reported apart in-process)
    Path(out).write_text(json.dumps(asyncio.run(run())))


# Frames of the work a scraper causes: the snapshot's builds and views (as a dashboard's), the
# /metrics exposition (and its publishing for the scrape front) and the HTTP server; nothing
# else calls them in a window.
READER_FRAMES = VIEWER_FRAMES + ("agents/fast_http.py", "agents/pipeline_metrics.py", "prometheus_client/",
                                 "collect (", "render (", "agents/scrape_front.py", "publish_exposition (")


async def window(w: WorkerProcess, seconds: float, reading: bool, consumed, latencies, metrics_every: float,
                 settle: float = 0.0, spy_file: Path | None = None) -> dict:
    stop = asyncio.Event()
    task = (asyncio.ensure_future(scraper(w.url("").rstrip("/"), stop, latencies, metrics_every))
            if reading else None)
    loop = asyncio.get_running_loop()
    await asyncio.sleep(settle)         # not measured: the builds the last reads keep going, or the first build
    read0 = await loop.run_in_executor(None, consumed)
    own0, kids0, faults0 = cpu(w.proc.pid)
    sys0 = system_cpu(w.proc.pid)
    spy = await start_spy(w.proc.pid, seconds, spy_file) if spy_file is not None else None    # its stacks, 100 Hz
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    if spy is not None:
        await spy.wait()
    own1, kids1, faults1 = cpu(w.proc.pid)
    sys1 = system_cpu(w.proc.pid)
    t1 = time.monotonic()
    read1 = await loop.run_in_executor(None, consumed)
    stop.set()
    if task is not None:
        await task
    wall = t1 - t0
    share = {}
    if spy_file is not None:
        part, busy = viewer_share(spy_file, READER_FRAMES)
        share = {"py_spy_reader_samples": part, "py_spy_busy_samples": busy}
    return {**share, "reader": reading, "seconds": round(wall, 2), "committed_per_s": round((read1 - read0) / wall),
            "committed_at_end": read1, "worker_cpu": round((own1 - own0) / wall, 3),
            "worker_cpu_us_per_message": round((own1 - own0) * 1e6 / max(1, read1 - read0), 1),
            "build_children_cpu": round((kids1 - kids0) / wall, 3),
            # minor page faults: after each fork, the worker's first write to each page it still
            # shares with the build child is one (copy-on-write)
            "worker_minor_faults_per_s": round((faults1 - faults0) / wall),
            "worker_system_cpu": round((sys1 - sys0) / wall, 3)}


def summary(values: list[float]) -> dict:
    return {"n": len(values), "p50_ms": round(pct(values, 50) * 1000, 1), "p99_ms": round(pct(values, 99) * 1000, 1),
            "max_ms": round(max(values) * 1000, 1)} if values else {"n": 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leads", type=int, default=130_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=float, default=0.55, help="fraction of the file read before measuring")
    ap.add_argument("--stop", type=float, default=0.97, help="no window starts after this fraction is read")
    ap.add_argument("--window", type=float, default=5.0, help="seconds per measurement window")
    ap.add_argument("--metrics-every", type=float, default=1.0, metavar="S",
                    help="the scraper's mean period for GET /metrics (default 1 s; shorter: more latency samples)")
    ap.add_argument("--continuous", action="store_true",
                    help="one scraper from --start to --stop, no windows without: latencies only (no rate ratio)")
    ap.add_argument("--metrics-process", action="store_true",
                    help="with --continuous: GET /metrics from a process of its own (as Prometheus does), "
                    "the bench's process reading GET /report only; its latencies are 'metrics_own_process'")
    ap.add_argument("--settle", type=float, default=0.0, metavar="S",
                    help="seconds not measured at the start of each no-reader window (at most 1 s of each reader "
                    "window): 6 leaves out the builds the last reads keep going (KEEP_FRESH_S 5 s)")
    ap.add_argument("--py-spy", action="store_true",
                    help="profile the worker (py-spy, 100 Hz) in every window: the share of its busy samples in the "
                    "scraper's work (builds, views, exposition, HTTP), per window; its own overhead is in both kinds")
    ap.add_argument("--no-scrape-front", action="store_true",
                    help="the worker answers GET /metrics on its event loop (metrics.scrape_front: false), for an A/B")
    ap.add_argument("--save", metavar="FILE", help="also write every latency (ms) and the summary, as JSON, to FILE")
    args = ap.parse_args()

    path = ROOT / "bench" / "out" / f"events-{args.leads}-s{args.seed}.jsonl"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "generate_events.py"), str(path), "--leads",
                        str(args.leads), "--seed", str(args.seed), "--messy"], check=True)
    total = sum(1 for x in path.read_bytes().split(b"\n") if x.strip())
    work = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    print(f"file {path.name}: {total:,} messages, all published before the worker starts", flush=True)

    with EmbeddedBroker() as broker:
        prefix = f"br{uuid.uuid4().hex[:6]}."
        names = topic_names(prefix)
        create_topics(broker.bootstrap, list(names.values()), 4)
        if replay(broker, prefix, path).wait() != 0:
            raise RuntimeError("replay failed")
        group = f"bench-reads-{prefix}"
        consumed = CommittedOffsets(broker.bootstrap, group, [names[t] for t in INPUT_TOPICS], 4)
        w = WorkerProcess(broker.url, prefix, group, work)
        if args.no_scrape_front:
            config = Path(work) / "pipeline-no-front.yaml"
            shipped = (importlib.resources.files("pulse") / DEFAULT_CONFIG_RESOURCE).read_text()
            config.write_text(shipped + "\nmetrics: {scrape_front: false}\n")
            w.argv += ["--config", str(config)]
        w.start(timeout=120)
        try:
            while (consumed() or 0) < args.start * total:
                time.sleep(0.5)
            print(f"measuring from {consumed():,} messages consumed", flush=True)
            results: list[dict] = []
            latencies: dict[str, list[float]] = {"metrics": [], "report": [], "first_metrics": [], "first_report": []}

            async def measure() -> None:
                if args.continuous:     # one scraper all along: latencies only
                    stop = asyncio.Event()
                    base = w.url("").rstrip("/")
                    if args.metrics_process:
                        import multiprocessing
                        ctx = multiprocessing.get_context("spawn")
                        proc_stop, proc_out = ctx.Event(), str(work / "metrics-latencies.json")
                        proc = ctx.Process(target=metrics_scraper_process,
                                           args=(base, args.metrics_every, proc_stop, proc_out))
                        proc.start()
                    task = asyncio.ensure_future(scraper(base, stop, latencies, args.metrics_every,
                                                         metrics=not args.metrics_process))
                    loop = asyncio.get_running_loop()
                    while (await loop.run_in_executor(None, consumed) or 0) < args.stop * total:
                        await asyncio.sleep(0.5)
                    stop.set()
                    await task
                    if args.metrics_process:
                        proc_stop.set()
                        await loop.run_in_executor(None, proc.join)
                        latencies["metrics_own_process"] = json.loads(Path(proc_out).read_text())
                    return
                reading = False
                while (results[-1]["committed_at_end"] if results else 0) < args.stop * total:
                    # a scraper's first reads start the first build at once: 1 s is enough there
                    settle = min(1.0, args.settle) if reading else args.settle
                    spy = work / f"spy-{len(results)}.raw" if args.py_spy else None
                    results.append(await window(w, args.window, reading, consumed, latencies, args.metrics_every,
                                                settle, spy))
                    print(json.dumps(results[-1]), flush=True)
                    reading = not reading
            asyncio.run(measure())
            while events_read(w) < total:
                time.sleep(1.0)
            quiet = {p: [get(w.url(p))[1] for _ in range(30)] for p in ("/metrics", "/report")}
            leads = sum(float(line.split()[-1]) for line in get(w.url("/metrics"))[0].decode().splitlines()
                        if line.startswith("pulse_leads_in_state{"))
            if args.continuous:
                doc = {"leads_in_state_at_end": int(leads), "continuous": True,
                       "while_consuming": {k: summary(v) for k, v in latencies.items()},
                       "quiet": {p.strip("/"): summary(v) for p, v in quiet.items()}}
            else:
                results = [r for r in results if r["committed_at_end"] < total]     # not one that ran out of input
                pairs = [(a, b) for a, b in zip(results, results[1:]) if not a["reader"] and b["reader"]]
                ratios = [b["committed_per_s"] / a["committed_per_s"] for a, b in pairs if a["committed_per_s"]]
                # the rate falls as the state grows: a reader window against the mean of the
                # no-reader windows either side cancels a steady drift
                around = [(results[i - 1], results[i], results[i + 1]) for i in range(1, len(results) - 1)
                          if results[i]["reader"]]

                def against_neighbours(key: str) -> list[float]:
                    return [round(b[key] * 2 / (a[key] + c[key]), 3) for a, b, c in around if a[key] + c[key]]
                rate_around = against_neighbours("committed_per_s")
                cpu_around = against_neighbours("worker_cpu_us_per_message")
                doc = {
                    "leads_in_state_at_end": int(leads),
                    "while_consuming": {k: summary(v) for k, v in latencies.items()},
                    "quiet": {p.strip("/"): summary(v) for p, v in quiet.items()},
                    "committed_per_s_no_reader_median": statistics.median(a["committed_per_s"] for a, _ in pairs),
                    "committed_per_s_reader_median": statistics.median(b["committed_per_s"] for _, b in pairs),
                    "rate_ratio_reader_vs_none_per_pair": [round(r, 3) for r in ratios],
                    "rate_ratio_median": round(statistics.median(ratios), 3) if ratios else None,
                    "rate_ratio_reader_vs_neighbours": rate_around,
                    "rate_ratio_vs_neighbours_median": round(statistics.median(rate_around), 3) if rate_around else None,
                    "cpu_per_message_ratio_reader_vs_neighbours": cpu_around,
                    "cpu_per_message_ratio_vs_neighbours_median": (
                        round(statistics.median(cpu_around), 3) if cpu_around else None),
                    "settle_s": args.settle,
                    "worker_cpu_us_per_message_no_reader_median": statistics.median(
                        a["worker_cpu_us_per_message"] for a, _ in pairs),
                    "worker_cpu_us_per_message_reader_median": statistics.median(
                        b["worker_cpu_us_per_message"] for _, b in pairs),
                    "worker_cpu_no_reader_median": statistics.median(a["worker_cpu"] for a, _ in pairs),
                    "worker_cpu_reader_median": statistics.median(b["worker_cpu"] for _, b in pairs),
                    "build_children_cpu_reader_median": statistics.median(b["build_children_cpu"] for _, b in pairs),
                }
                if args.py_spy:
                    def share(reader: bool) -> float | None:
                        part = sum(r["py_spy_reader_samples"] for r in results if r["reader"] == reader)
                        busy = sum(r["py_spy_busy_samples"] for r in results if r["reader"] == reader)
                        return round(part / busy, 4) if busy else None
                    doc["py_spy_reader_share_in_reader_windows"] = share(True)
                    doc["py_spy_reader_share_in_no_reader_windows"] = share(False)
            print(json.dumps(doc, indent=1), flush=True)
            if args.save:
                Path(args.save).write_text(json.dumps({**doc, "metrics_every_s": args.metrics_every, "latencies_ms": {
                    k: [round(v * 1000, 2) for v in vs] for k, vs in latencies.items()}}))
        finally:
            consumed.close()
            w.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
