"""Summarise a loop probe's file (bench/loop_probe/sitecustomize.py says how to make one).

    python bench/loop_probe/analyse.py /tmp/probe.json [--last 30] [--beyond-ms 12]

Over the last `--last` seconds of the run: the collections per generation; the main
thread's turns over 2 ms; the callbacks that took longest in total; and the share of
time a request arriving at a random instant would wait more than `--beyond-ms` for the
callback running when it arrived, by what that callback was (a collection inside it
counts as the collection).
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_dashboard import pct  # noqa: E402  the benches' one percentile (nearest rank)


def kind(what: str, collected: list[int]) -> str:
    if any(g >= 1 for g in collected):
        return "middle/full collection"
    for key, name in (("raise_due", "alert timer"), ("_drain_messages", "consumption"), ("make_durable", "flush"),
                      ("produce", "produce request"), ("Snapshots", "snapshot build"), ("RequestHandler", "HTTP")):
        if key in what:
            return name
    return what[:60]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--last", type=float, default=30.0, help="seconds at the end of the run to look at")
    ap.add_argument("--beyond-ms", type=float, default=12.0)
    args = ap.parse_args()
    doc = json.load(open(args.file))
    since = doc["now"] - args.last

    by_gen, cpu_of_slow = collections.defaultdict(list), collections.defaultdict(list)
    for start, gen, seconds, *cpu in doc["gc"]:
        if start > since:
            by_gen[gen].append(seconds * 1000)
            if cpu and seconds > 0.005:         # the slow ones: how much of their time was CPU
                cpu_of_slow[gen].append((seconds * 1000, cpu[0] * 1000))
    print(f"collections in the last {args.last:.0f} s (ms):")
    for gen, ms in sorted(by_gen.items()):
        slow = cpu_of_slow.get(gen)
        cpu = (f"; the {len(slow)} over 5 ms: wall {sum(w for w, _ in slow):.0f}, CPU {sum(c for _, c in slow):.0f}"
               if slow else "")
        print(f"  generation {gen}: {len(ms)}, total {sum(ms):.0f}, p50 {pct(ms, 50):.1f}, p99 {pct(ms, 99):.1f}, "
              f"max {max(ms):.1f}{cpu}")
    turns = [seconds * 1000 for start, seconds, thread in doc["turns"] if start > since and thread == "MainThread"]
    if turns:
        print(f"main thread's turns over 2 ms: {len(turns)}, p50 {pct(turns, 50):.1f}, p90 {pct(turns, 90):.1f}, "
              f"max {max(turns):.1f} ms")
    main_handles = [h for h in doc["handles"] if h[0] > since and h[2] == "MainThread"]
    total, count, worst = collections.Counter(), collections.Counter(), {}
    beyond = collections.Counter()
    gcs = [(s, g) for s, g, *_ in doc["gc"] if s > since]
    for start, seconds, _, what in main_handles:
        total[what] += seconds
        count[what] += 1
        worst[what] = max(worst.get(what, 0.0), seconds)
        inside = [g for s, g in gcs if start <= s <= start + seconds]
        beyond[kind(what, inside)] += max(0.0, seconds - args.beyond_ms / 1000) / args.last
    print("main thread's callbacks over 4 ms, by total time (count, total s, max ms, what):")
    for what, seconds in total.most_common(10):
        print(f"  {count[what]:5d} {seconds:6.2f} {worst[what] * 1000:7.1f}  {what[:140]}")
    print(f"share of time a request would wait over {args.beyond_ms:g} ms for the running callback: "
          f"{sum(beyond.values()) * 100:.2f} %")
    for name, share in beyond.most_common(8):
        print(f"  {share * 100:5.2f} %  {name}")
    for at, shapes in doc.get("gc_types", [])[-2:]:
        print("a middle collection's objects:", ", ".join(f"{n} {c}" for n, c in shapes[:10]))


if __name__ == "__main__":
    main()
