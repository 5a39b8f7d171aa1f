"""What a report snapshot build costs the worker: built in process, or in a forked child. Prints figures.

    python bench/bench_snapshot_cost.py                          # 130,000 leads, builds every 3 s
    python bench/bench_snapshot_cost.py --interval 2 --child-sleep 0.05,0.6

No broker: a LivePulse (event clock, 4 partitions) is fed the first `--head` of the file in
process, then:

1. **In process**: the parts of one build (agents/app.py `snapshot_views`), timed
   `--repeat` times: merging the partitions (`merged_engine`), the report's figures, the
   document (its stale list), the pipeline gauges' exposition, the dashboard views.
2. **Forked, while consuming**: the rest of the file is applied at `--rate` messages/s on
   an asyncio loop (as the worker's loop would); windows of `--window` seconds alternate
   between no build and one forked build every `--interval` s (`run_forked`, as the
   worker's snapshot does). Per window: this process's CPU (user and system), its minor
   page faults, the fork's hold on the loop. `--child-sleep S` (a list) adds windows whose
   child only sleeps S seconds and returns the views built beforehand: how the worker's cost
   depends on how long a child lives. Ratios are from this one run.

The process runs with the worker's collector thresholds (pulse/cli/worker.py GC_THRESHOLDS;
`--gc-defaults`: CPython's), as the worker does: a collection writes the header of every
object it walks, after a fork a copy-on-write fault per page walked.

`--huge-pages` (an experiment, Linux): before measuring, asks transparent huge pages for
the process's anonymous memory (madvise MADV_HUGEPAGE, then MADV_COLLAPSE) and prints how
much of it is huge before and after the windows: whether 2 MiB pages make the fork's hold
or the copy-on-write faults cheaper. Compare with a run without it.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import resource
import statistics
import sys
import time
import zlib
from pathlib import Path

import orjson

from pulse.agents.live import LivePulse
from pulse.agents.metrics import pipeline_exposition
from pulse.agents.snapshot import FORK_SECONDS, run_forked
from pulse.agents.views import Views, encode_views
from pulse.cli.worker import GC_THRESHOLDS
from pulse.config import load_config
from pulse.schemas.topics import TOPIC_OF_TYPE
from pulse.streams.report import build_figures

ROOT = Path(__file__).resolve().parent.parent


class Feeder:
    """Input lines applied to a LivePulse in order, partitioned by lead id as the producer would."""

    def __init__(self, live: LivePulse, lines: list[bytes]):
        self.live, self.lines, self.pos = live, lines, 0
        self.offsets: dict[tuple[str, int], int] = {}

    def feed(self, n: int) -> None:
        for line in self.lines[self.pos:self.pos + n]:
            try:
                doc = orjson.loads(line)
                lead, kind = str(doc.get("lead_id")), doc.get("type")
            except (orjson.JSONDecodeError, AttributeError):
                lead, kind = "", None
            p = zlib.crc32(lead.encode()) % 4
            topic = TOPIC_OF_TYPE.get(kind, "crm.lead-created")
            offset = self.offsets[(topic, p)] = self.offsets.get((topic, p), -1) + 1
            self.live.on_message(topic, p, offset, None, line)
        self.pos += n


def huge_pages() -> str:
    """Ask for transparent huge pages over every anonymous read-write mapping (2 MiB-aligned part)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madv_hugepage, madv_collapse, huge = 14, 25, 2 << 20
    failed = 0
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith("rw") or (len(fields) > 5 and fields[5] != "[heap]"):
                continue
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            lo, hi = (lo + huge - 1) & ~(huge - 1), hi & ~(huge - 1)
            if hi > lo:
                failed += libc.madvise(lo, hi - lo, madv_hugepage) != 0 or libc.madvise(lo, hi - lo, madv_collapse) != 0
    return f"{anon_huge()} ({failed} mappings refused)"


def anon_huge() -> str:
    with open("/proc/self/smaps_rollup") as f:
        sizes = dict(line.split(":", 1) for line in f if line.startswith(("Anonymous", "AnonHugePages")))
    return f"anonymous {sizes['Anonymous'].strip()}, of it in huge pages {sizes['AnonHugePages'].strip()}"


def build_parts(live: LivePulse) -> dict[str, float]:
    out = {}
    t = time.perf_counter()
    engine = live.merged_engine()
    out["merge"] = time.perf_counter() - t
    as_of = live.report_as_of(engine)
    t = time.perf_counter()
    figures = build_figures(engine, as_of)
    out["figures"] = time.perf_counter() - t
    t = time.perf_counter()
    doc = figures.document()
    out["document"] = time.perf_counter() - t
    leads = {name: sum(len(s.engine.pipelines[name].leads) for s in live.partitions.values()) for name in engine.pipelines}
    t = time.perf_counter()
    metrics = pipeline_exposition(figures, leads, as_of)
    out["exposition"] = time.perf_counter() - t
    t = time.perf_counter()
    encode_views(doc, metrics)
    out["views"] = time.perf_counter() - t
    out["total"] = sum(out.values())
    return out


def usage() -> tuple[float, float, int]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


async def window(feeder: Feeder, seconds: float, rate: float, interval: float | None, work) -> dict:
    stop = asyncio.Event()
    builds: list[float] = []

    async def consume() -> None:
        step, t = 0.01, time.monotonic()
        while not stop.is_set():
            feeder.feed(int(rate * step))
            t += step
            await asyncio.sleep(max(0.0, t - time.monotonic()))

    async def build() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            Views.decode(await run_forked(work))
            builds.append(time.perf_counter() - t)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.perf_counter() - t)))

    tasks = [asyncio.ensure_future(consume())] + ([asyncio.ensure_future(build())] if interval else [])
    u0, s0, f0 = usage()
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    u1, s1, f1 = usage()
    wall = time.monotonic() - t0
    stop.set()
    await asyncio.gather(*tasks)
    forks = list(FORK_SECONDS)[-len(builds):] if builds else []
    return {"user": (u1 - u0) / wall, "sys": (s1 - s0) / wall, "cpu": (u1 - u0 + s1 - s0) / wall,
            "faults_per_s": (f1 - f0) / wall, "builds": len(builds),
            "fork_ms_max": round(max(forks) * 1000, 1) if forks else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", default=str(ROOT / "bench" / "out" / "events-130000-s1.jsonl"))
    ap.add_argument("--head", type=float, default=0.65, help="fraction of the file applied before measuring")
    ap.add_argument("--rate", type=float, default=2000.0)
    ap.add_argument("--interval", type=float, default=3.0, help="seconds between forked builds")
    ap.add_argument("--window", type=float, default=8.0)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gc-defaults", action="store_true", help="CPython's collector thresholds, not the worker's")
    ap.add_argument("--huge-pages", action="store_true", help="experiment: transparent huge pages for the heap")
    ap.add_argument("--child-sleep", default="", help="comma-separated seconds: children that only sleep")
    args = ap.parse_args()

    if not args.gc_defaults:
        gc.set_threshold(*GC_THRESHOLDS)
    print(f"collector thresholds {gc.get_threshold()}", flush=True)
    lines = [x for x in Path(args.file).read_bytes().split(b"\n") if x.strip()]
    cut = int(len(lines) * args.head)
    live = LivePulse(load_config(None), type_of_topic={t: k for k, t in TOPIC_OF_TYPE.items()}, clock="event",
                     send=lambda *a: None, now_us=lambda: time.time_ns() // 1000)
    live.ready = True
    for p in range(4):
        live.partitions[p] = live._new_state(p)
    head, tail = Feeder(live, lines[:cut]), Feeder(live, lines[cut:])
    tail.offsets = head.offsets
    t = time.perf_counter()
    head.feed(cut)
    print(f"applied {cut:,} messages in {time.perf_counter() - t:.0f} s; the rest ({len(lines) - cut:,}) while measuring",
          flush=True)

    if args.huge_pages:
        print(f"huge pages: before, {anon_huge()}; asked, {huge_pages()}", flush=True)
    parts = [build_parts(live) for _ in range(args.repeat)]
    print("in process, ms (median of %d): " % args.repeat
          + ", ".join(f"{k} {statistics.median(p[k] for p in parts) * 1000:.1f}" for k in parts[0]), flush=True)

    def views() -> bytes:
        figures, leads, as_of = live.own_figures()
        return encode_views(figures.document(), pipeline_exposition(figures, leads, as_of))

    built = views()

    def sleeper(seconds: float):
        return lambda: (time.sleep(seconds), built)[1]

    kinds = [("forked build", views)] + [(f"child sleeps {s} s", sleeper(float(s)))
                                         for s in args.child_sleep.split(",") if s]

    async def measure() -> None:
        ratios: dict[str, list[float]] = {name: [] for name, _ in kinds}
        for _ in range(args.pairs):
            for name, work in kinds:
                none = await window(tail, args.window, args.rate, None, None)
                forked = await window(tail, args.window, args.rate, args.interval, work)
                ratios[name].append(forked["cpu"] / none["cpu"])
                print(f"{name:>20}: cpu {none['cpu']:.3f} -> {forked['cpu']:.3f} (ratio {ratios[name][-1]:.3f}; "
                      f"sys {none['sys']:.3f} -> {forked['sys']:.3f}), minor faults/s {none['faults_per_s']:,.0f} -> "
                      f"{forked['faults_per_s']:,.0f}, builds {forked['builds']}, fork max {forked['fork_ms_max']} ms",
                      flush=True)
        for name, r in ratios.items():
            print(f"{name}: CPU ratio median {statistics.median(r):.3f} (per pair {', '.join(f'{x:.3f}' for x in r)})")
        if args.huge_pages:
            print(f"huge pages after the windows: {anon_huge()}")
        print(f"messages applied while measuring: {tail.pos:,} of {len(tail.lines):,}")
    asyncio.run(measure())
    return 0


if __name__ == "__main__":
    sys.exit(main())
