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
# (the leads, their indexes: ~1M tracked objects at 130,000 leads) and every input message
# allocates a few dozen short-lived objects. With the defaults (700, 10, 10) a full collection
# ran about once a second while consuming, walked the whole state for 60-210 ms and freed
# nothing (measured with gc callbacks under bench/bench_reads.py): ~15 % of the worker's CPU,
# and the event loop's longest pauses (what a /metrics scrape waited for). Young objects are
# collected every 5,000 allocations and the middle generation every 10 young collections: the
# total is the same as with larger thresholds, the pauses shorter (gc callbacks over the worker
# bench's file in process, thresholds 20,000/20: young p99 47 ms, middle up to 180 ms; 5,000/10:
# young p99 10-22 ms, middle up to 37-51 ms). The whole heap at most once per 10,000 middle
# collections (CPython also waits for the long-lived objects to grow by 25 %). Cyclic garbage
# lives a little longer; nothing else changes.
GC_THRESHOLDS = (5_000, 10, 10_000)


def run_worker(settings) -> None:
    import gc

    import faust

    from pulse.agents.app import create_app

    app, _live = create_app(settings)
    gc.set_threshold(*GC_THRESHOLDS)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG, so every debug call in Faust and
    # aiokafka built a log record to throw away (~10 % of the worker's CPU, measured with py-spy).
    worker.spinner = None
    worker.execute_from_commandline()
