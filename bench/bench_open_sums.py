"""The open leads' figures across a worker's 4 partitions, read every few seconds at N leads:
OpenSums.figures (sums kept by deltas, streams/open_sums.py) against open_figures (every
index's groups added up per call).

    python bench/bench_open_sums.py bench/out/events-130000-s1.jsonl --head 0.65 --rounds 6 --step 6000

Applies the file's first `head` to a 4-partition LivePulse (in process, no Kafka), then per
round: both reads at one T (checked equal, field by field), then `step` more events. Prints
CPU ms per read (once after a step, for both; compare within one run), and the stale
list's rendering (whole, and one page of 200). Runs with the worker's collector thresholds.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path

from bench_snapshot_cost import Feeder

from pulse.agents.live import LivePulse
from pulse.cli.worker import GC_THRESHOLDS
from pulse.config import load_config
from pulse.schemas.topics import TOPIC_OF_TYPE
from pulse.streams.open_index import OpenFigures, open_figures
from pulse.streams.open_sums import OpenSums


def best_ms(f, repeat: int):
    """(the least CPU time of `repeat` calls in ms, the last result). Each after a collection:
    the collector's debt left by the events applied does not land in the read timed."""
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        t = time.process_time()
        out = f()
        best = min(best, time.process_time() - t)
    return best * 1000, out


def same(a: OpenFigures, b: OpenFigures) -> bool:
    fields = ("stale_by_stage", "stale_by_level", "segments", "_stale", "_as_of", "_config")
    return vars(a.pipeline) == vars(b.pipeline) and all(getattr(a, f) == getattr(b, f) for f in fields)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", help="events, one JSON per line (bench/generate_events.py)")
    ap.add_argument("--head", type=float, default=0.65, help="the file's share applied before the first round")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--step", type=int, default=6000, help="events applied between rounds")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    gc.set_threshold(*GC_THRESHOLDS)
    lines = [x for x in Path(args.file).read_bytes().split(b"\n") if x.strip()]
    cut = int(len(lines) * args.head)
    config = load_config(None)
    live = LivePulse(config, type_of_topic={t: k for k, t in TOPIC_OF_TYPE.items()}, clock="event",
                     send=lambda *a: None, now_us=lambda: time.time_ns() // 1000)
    live.restore(range(4), [])                  # 4 partitions, nothing to recover
    feeder = Feeder(live, lines)
    feeder.feed(cut)
    name = next(iter(config.pipelines))
    pipeline = config.pipelines[name]
    sums = OpenSums(pipeline)
    after_step, old_reads = [], []
    for r in range(args.rounds):
        indexes = [s.engine.pipelines[name].open_index for s in live.partitions.values()]
        as_of = live.report_as_of(live.merged_engine())
        t_delta, new = best_ms(lambda: sums.figures(indexes, as_of), 1)     # the first read after the step
        t_again, _ = best_ms(lambda: sums.figures(indexes, as_of), args.repeat)
        t_old, old = best_ms(lambda: open_figures(indexes, pipeline, as_of), 1)    # once too: alike
        assert same(new, old), "OpenSums.figures != open_figures"
        t_all, entries = best_ms(new.stale_entries, args.repeat)
        t_page, page = best_ms(lambda: new.stale_entries(1000, 1200), args.repeat)
        assert page == entries[1000:1200]
        if r:
            after_step.append(t_delta)
        old_reads.append(t_old)
        print(f"round {r}: {sum(len(ix.held) for ix in indexes):,} open leads, {len(new._stale):,} stale, "
              f"{sum(len(ix.groups) for ix in indexes)} groups | OpenSums.figures {t_delta:.1f} ms "
              f"(after {args.step if r else 'all'} events), {t_again:.1f} ms (nothing changed) | "
              f"open_figures {t_old:.1f} ms | stale_entries() {t_all:.1f} ms, (1000, 1200) {t_page:.2f} ms",
              flush=True)
        feeder.feed(args.step)
    if after_step:
        print(f"median: OpenSums.figures {statistics.median(after_step):.1f} ms after {args.step} events, "
              f"open_figures {statistics.median(old_reads):.1f} ms")


if __name__ == "__main__":
    main()
