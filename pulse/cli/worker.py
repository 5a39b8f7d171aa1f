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


def run_worker(settings) -> None:
    import faust

    from pulse.agents.app import create_app

    app, _live = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG, so every debug call in Faust and
    # aiokafka built a log record to throw away (~10 % of the worker's CPU, measured with py-spy).
    worker.spinner = None
    worker.execute_from_commandline()
