"""Bytes of state per lead: what the worker's analytics core holds after a file. Prints figures.

    python bench/bench_state_memory.py                                   # bench/out/events-81000-s1.jsonl
    python bench/bench_state_memory.py bench/out/events-130000-s1.jsonl --top 20

Issue 16 asks for at most 2 KB of state per lead. The worker bench (`bench_worker.py`) prints
its whole process's RSS per lead, which also holds fetch responses, the aligner's and the
producer's buffers and what the allocator keeps: those are per worker and bounded by the
consumer settings, not per lead. This script measures the state alone, in process and
without Kafka: the file is read first, then `LivePulse` (the object the worker's agents
drive, agents/live.py) applies every line in file order over 4 partitions (a lead's
partition by crc32 of its id: bench_snapshot_cost.Feeder), taking the dirty state every 2,000 events as the flush does.
After a full collection it prints the RSS growth (tracemalloc off; an upper bound, as
CPython's allocator keeps freed arenas), then, in a second pass, what tracemalloc traces as
allocated since the state began (everything `LivePulse` keeps), per lead, and the biggest
allocation sites.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_snapshot_cost import Feeder  # noqa: E402  (lines to a LivePulse, partitioned as the producer would)

from pulse.agents.live import LivePulse  # noqa: E402
from pulse.config.load import load_config  # noqa: E402
from pulse.schemas.topics import TOPIC_OF_TYPE  # noqa: E402

PARTITIONS = 4          # as Feeder partitions
FLUSH_EVERY = 2000


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def apply(cfg, lines: list[bytes]) -> tuple[LivePulse, float]:
    """A fresh LivePulse after every line, the dirty state taken every FLUSH_EVERY; and the seconds."""
    live = LivePulse(cfg, type_of_topic={t: k for k, t in TOPIC_OF_TYPE.items()}, clock="event",
                     send=lambda *args: None, now_us=lambda: 0)
    live.restore(list(range(PARTITIONS)), [])
    feeder = Feeder(live, lines)
    t0 = time.perf_counter()
    while feeder.pos < len(lines):
        feeder.feed(FLUSH_EVERY)
        live.take_state()
    return live, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", nargs="?", default=str(ROOT / "bench/out/events-81000-s1.jsonl"),
                    help="a JSON Lines event file (bench/generate_events.py makes one)")
    ap.add_argument("--top", type=int, default=12, help="allocation sites to list")
    a = ap.parse_args(argv)
    path = Path(a.file)
    if not path.is_file():
        print(f"bench_state_memory: no such file: {path} (make one: python bench/generate_events.py "
              f"{path} --leads 81000)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    lines = [x for x in path.read_bytes().split(b"\n") if x.strip()]
    print(f"{path}: {len(lines):,} lines read in {time.perf_counter() - t0:.1f} s", flush=True)
    cfg = load_config(None)
    # First pass: RSS growth, tracemalloc off (its own records would count). Second pass:
    # what tracemalloc traces. Each from a fresh LivePulse; the first is dropped before.
    gc.collect()
    rss0 = _rss()
    live, applied_s = apply(cfg, lines)
    gc.collect()
    rss = _rss() - rss0
    del live
    gc.collect()
    tracemalloc.start(1)
    live, _ = apply(cfg, lines)
    del lines
    gc.collect()
    traced, peak = tracemalloc.get_traced_memory()
    sites = tracemalloc.take_snapshot().statistics("lineno")
    tracemalloc.stop()
    leads = sum(len(p.leads) for s in live.partitions.values() for p in s.engine.pipelines.values())
    print(f"applied in {applied_s:.1f} s ({len(live.partitions)} partitions), leads held: {leads:,}")
    print(f"state traced: {traced / 2**20:,.1f} MiB = {traced / leads:,.0f} bytes per lead "
          f"(peak while applying {peak / 2**20:,.1f} MiB); target <= 2,048")
    print(f"RSS growth while applying (no tracemalloc): {rss / 2**20:,.1f} MiB = {rss / leads:,.0f} bytes "
          f"per lead (an upper bound: the allocator keeps what the flushes freed)")
    print(f"the {a.top} largest allocation sites (bytes per lead, blocks):")
    for st in sites[:a.top]:
        frame = st.traceback[0]
        where = Path(frame.filename)
        where = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
        print(f"  {st.size / leads:7,.0f}  {st.count:>10,}  {where}:{frame.lineno}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
