"""What one in-process snapshot build costs while events keep coming (no broker). Prints figures.

    python bench/bench_snapshot_build.py bench/out/events-130000-s1.jsonl 0.65 2000 6 [--check] [--steps]
    python bench/bench_snapshot_build.py bench/out/events-130000-s1.jsonl 0.45 12000 14 --steps --live-time 3000

Loads FRAC of FILE into a 4-partition LivePulse (event clock), builds once (every
partition's sums read whole), then `rounds` times: applies STEP more events and times one
build as the worker's snapshot makes it (`LivePulse.own_figures()` and its `FigureViews`).
`--check`: the last build's report equals the one built from the merged engines.
`--steps`: before each timed build, the catch-up in steps as the worker runs it between
turns of its event loop (`LivePulse.catch_up_steps`), each step timed: the build then takes
only the rest (the longest step and the build are how long the loop is held).
`--share`: then applies the rest of the file twice over fresh state loaded the same way,
alternately (without builds, with a build every STEP events), and prints the CPU per
event outside the builds and in them: what the builds add per event, and whether keeping
the sums for a reader costs the per-event path anything.
"""
import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import orjson

gc.set_threshold(5_000, 10, 10_000)
from pulse.config import load_config
from pulse.agents.live import LivePulse
from pulse.agents.views import FigureViews
from pulse.agents.pipeline_metrics import pipeline_exposition
from pulse.inputs.parallel import shard_of
from pulse.schemas import topics
ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("file")
ap.add_argument("frac", type=float, nargs="?", default=0.65, help="fraction of the file loaded first")
ap.add_argument("step", type=int, nargs="?", default=6000, help="events applied between two timed builds")
ap.add_argument("rounds", type=int, nargs="?", default=10)
ap.add_argument("--check", action="store_true", help="the last build's report equals the merged engines'")
ap.add_argument("--steps", action="store_true", help="before each timed build, the worker's catch-up steps "
                "(LivePulse.catch_up_steps), each timed: the build then takes only the rest")
ap.add_argument("--share", action="store_true", help="CPU per event of the rest of the file, with and without builds")
ap.add_argument("--live-time", type=float, metavar="RATE", help="the events after FRAC re-timed to real time at RATE "
                "events/s (bench_dashboard.live_timed): the event clock moves as a live worker's, ~4 s per build at "
                "12,000 events and 3,000/s, not days")
args = ap.parse_args()
path, frac, step, rounds = args.file, args.frac, args.step, args.rounds
lines = [l for l in open(path, 'rb').read().split(b'\n') if l]
cfg = load_config(None)
names = topics.topic_names("")
type_of_topic = {names[topics.TOPIC_OF_TYPE[t]]: t for t in topics.TOPIC_OF_TYPE}
topic_of = {t: names[topics.TOPIC_OF_TYPE[t]] for t in topics.TOPIC_OF_TYPE}
def fresh() -> LivePulse:
    live = LivePulse(cfg, type_of_topic=type_of_topic, clock="event", send=lambda *a: None, now_us=lambda: time.time_ns()//1000)
    live.restore(range(4), [])
    return live
live = fresh()
offs = {}
def feed(a, b, every=0):
    """Apply lines a..b; with `every`, a build after every `every` of them. CPU seconds (outside, in builds)."""
    outside = inside = 0.0
    t = time.process_time()
    for i in range(a, b):
        l = lines[i]
        try: kind = orjson.loads(l).get("type")
        except Exception: kind = None
        topic = topic_of.get(kind, names[topics.TOPIC_OF_TYPE["lead.created"]])
        p = shard_of(l, i, 4)
        o = offs.get((topic, p), 0); offs[(topic, p)] = o + 1
        live.on_message(topic, p, o, None, l)
        if i % 3000 == 0: live.take_dirty()
        if every and (i - a + 1) % every == 0:
            t1 = time.process_time()
            outside += t1 - t
            held = build()          # noqa: F841 - kept until the next, as the worker's snapshot is
            t = time.process_time()
            inside += t - t1
    live.take_dirty()
    return outside + time.process_time() - t, inside
start = int(len(lines) * frac)
if args.live_time:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_dashboard import live_timed
    lines[start:] = live_timed(lines[:start], lines[start:], args.live_time)
feed(0, start)
def build():
    figs, leads, as_of = live.own_figures()
    v = FigureViews(figs, lambda: pipeline_exposition(figs, leads, as_of))
    return v
t = time.perf_counter(); build(); print(f"first build {1000*(time.perf_counter()-t):.1f} ms")
ts, cpu = [], []
step_ms: list[float] = []       # --steps: each catch-up step's wall ms
steps_total: list[float] = []
pos = start
for r in range(rounds):
    feed(pos, pos + step); pos += step
    gc.collect()
    if args.steps:
        these, t = [], time.perf_counter()
        for _ in live.catch_up_steps():
            t1 = time.perf_counter(); these.append(1000 * (t1 - t)); t = t1
        these.append(1000 * (time.perf_counter() - t))
        step_ms += these
        steps_total.append(sum(these))
    t, c = time.perf_counter(), time.process_time(); v = build(); ts.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
if args.steps:
    q = statistics.quantiles(step_ms, n=100) if len(step_ms) > 1 else step_ms * 99
    print(f"catch-up steps before each build: {len(step_ms) / rounds:.0f} per build, ms per step median "
          f"{statistics.median(step_ms):.2f}, p99 {q[98]:.2f}, max {max(step_ms):.2f}; their total per build median "
          f"{statistics.median(steps_total):.1f} ms")
print(f"builds after {step} events{' and the steps' if args.steps else ''}: wall ms median {1000*statistics.median(ts):.1f} (min {1000*min(ts):.1f}, max {1000*max(ts):.1f}); cpu median {1000*statistics.median(cpu):.1f}")
if args.check:
    from pulse.streams.report import build_figures
    eng = live.merged_engine(); as_of = live.report_as_of(eng)
    assert orjson.loads(v.report()) == build_figures(eng, as_of).document(); print("equal to the merged build")
if args.share:
    collecting = [0.0, 0.0]         # CPU seconds in the collector, and when the running one started

    def on_gc(phase, info):
        if phase == "start":
            collecting[1] = time.process_time()
        else:
            collecting[0] += time.process_time() - collecting[1]
    gc.callbacks.append(on_gc)
    for every in (0, step, 0, step):
        live, offs = fresh(), {}
        feed(0, start)
        if every:
            build()
        collecting[0] = 0.0
        outside, inside = feed(start, len(lines), every)
        n = len(lines) - start
        print(f"{'a build every %d events' % every if every else 'no builds':>26}: {1e6 * outside / n:.2f} us/event "
              f"outside builds, {1e6 * inside / n:.2f} us/event in builds; {1e6 * collecting[0] / n:.2f} us/event "
              f"in the collector (in and out)", flush=True)
