"""`pulse worker`: run the Faust stream processor (SPEC 7, 7.1)."""
from __future__ import annotations

import argparse

from pulse.settings import add_arguments, from_args, start_up, with_config


def add_worker_command(sub) -> None:
    worker = sub.add_parser("worker", help="run the stream processor (a Faust worker)",
                            description="Consume the CRM topics, keep durable state, raise stale-lead "
                                        "alerts and serve /report, /health and /metrics.")
    add_arguments(worker)
    worker.add_argument("--partitions", type=int, default=None,
                        help="partition count of the input topics (env PULSE_PARTITIONS; default 4)")
    worker.set_defaults(run=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    import os

    overrides = {}
    partitions = args.partitions or (int(os.environ["PULSE_PARTITIONS"]) if os.environ.get("PULSE_PARTITIONS") else None)
    if partitions:
        overrides["partitions"] = partitions
    settings = from_args(args, **overrides)

    def load():
        from pulse.agents.metrics import metrics_options

        loaded = with_config(settings)
        metrics_options(loaded.config)          # validates the `metrics:` section, if any
        return loaded

    settings = start_up(load)
    if settings is None:
        return 2
    run_worker(settings)
    return 0


# CPython's collector thresholds for the worker process. Its heap is mostly long-lived state
# (the leads, their indexes: ~1M tracked objects at 130,000 leads before the leads left the
# collector, streams/lead.py) and every input message allocates a few dozen short-lived objects
# (tuples of atoms, mostly: they are untracked at their first collection). With the defaults
# (700, 10, 10) a full collection ran about once a second while consuming, walked the whole
# state for 60-210 ms and freed nothing (measured with gc callbacks under bench/bench_reads.py):
# ~15 % of the worker's CPU, and the event loop's longest pauses (what a /metrics scrape waited
# for). The young generation's cost is per object allocated whatever its threshold, its pauses
# are not: with 5,000 a fifth of the young collections found 13,000-24,000 objects there and took
# 5-55 ms (CPU, not preemption: loop probe, bench/README.md); with 2,000, young p99 6-6.5 ms
# instead of 19-22, their total a little lower, and the worker bench's rate unchanged. The middle
# generation every 10 young collections; the whole heap at most once per 10,000 middle
# collections (CPython also waits for the long-lived objects to grow by 25 %). Cyclic garbage
# lives a little longer; nothing else changes.
GC_THRESHOLDS = (2_000, 10, 10_000)

# How long a thread that waits for the GIL waits before it asks the running one to drop it
# (CPython's default is 5 ms). The worker runs Python on two threads, the event loop and Faust's
# consumer thread (its fetches), so every time the loop blocks in select() or a socket call it
# may wait that long to run again, and a request (GET /metrics) waits with it. With 1 ms, GET
# /metrics from a scraper's own process while consuming at full speed: p99 18.7 ms (n 613)
# against 23.5 ms (n 423), and the worker bench's rate no lower (pulse / Quix 1.17 against 1.08,
# same hour): bench/README.md, "The switch interval".
SWITCH_INTERVAL_S = 0.001


def run_worker(settings) -> None:
    import gc
    import sys

    import faust

    from pulse.agents.app import create_app

    app, _live = create_app(settings)
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG, so every debug call in Faust and
    # aiokafka built a log record to throw away (~10 % of the worker's CPU, measured with py-spy).
    worker.spinner = None
    worker.execute_from_commandline()
