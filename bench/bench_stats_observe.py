"""What `ProcessingStats.observe` costs per call: the worker calls it once per input message
(agents/app.py), to count the message and put its processing time in the histogram of
GET /metrics, so it must stay far below the per-event cost of the engine.

    python bench/bench_stats_observe.py --calls 1000000 --repeat 5

Prints the median and the best of `--repeat` runs, in nanoseconds per call. (It used to
be a timed assertion in tests/agents/test_metrics.py: < 5 µs per call.)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from pulse.agents.metrics import ProcessingStats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    per_call_ns = []
    for _ in range(args.repeat):
        stats = ProcessingStats()
        observe = stats.observe
        started = time.perf_counter_ns()
        for _ in range(args.calls):
            observe("crm.lead-created", "applied", 12_345)
        per_call_ns.append((time.perf_counter_ns() - started) / args.calls)
    print(f"ProcessingStats.observe: {statistics.median(per_call_ns):.0f} ns per call (median of "
          f"{args.repeat} runs of {args.calls:,}), best {min(per_call_ns):.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
