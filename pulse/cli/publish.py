"""Argparse wiring of the publishing commands, `pulse replay` and `pulse simulate`
(SPEC 7, 7.1). `pulse.cli.build_parser` calls `add_publish_commands(sub)`."""
from __future__ import annotations

import argparse
import math
import sys

from pulse.kafka.broker import DEFAULT_BROKER_URL

_BROKER_HELP = (f"Kafka bootstrap servers, Faust's URL form, e.g. kafka://h1:9092;h2:9092 "
                f"(default: $PULSE_BROKER, else {DEFAULT_BROKER_URL})")
_PREFIX_HELP = "prepended to every topic name (default: $PULSE_TOPIC_PREFIX, else none)"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def add_publish_commands(sub: argparse._SubParsersAction) -> None:
    replay = sub.add_parser(
        "replay", help="publish events from JSON Lines files to the input topics",
        description="Publish every input line of the files (blank lines are not inputs) as one Kafka "
                    "message, byte for byte, keyed by its lead_id, to the topic of its type; lines that "
                    "are not a JSON object with a known type go to crm.lead-created (the worker "
                    "dead-letters them). Counts are printed on stderr.")
    replay.add_argument("files", nargs="+", metavar="FILE", help="JSON Lines file; '-' for stdin; .gz accepted")
    _add_common(replay)
    replay.add_argument("--rate", type=_positive, metavar="N",
                        help="publish at most N messages per second (default: as fast as possible)")
    replay.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    replay.set_defaults(run=cmd_replay)

    simulate = sub.add_parser(
        "simulate", help="publish realistic synthetic CRM traffic, live",
        description="Publish synthetic CRM events (pulse.dev.synth) in real time. Event time starts now and "
                    "runs SPEED times faster than the wall clock (--speed 3600: one hour of CRM activity "
                    "per second); occurred_at carries that event time, so a worker fed a sped-up "
                    "simulation should run with --clock event. Stops after --duration or on Ctrl-C.")
    _add_common(simulate)
    simulate.add_argument("--leads-per-hour", dest="leads_per_hour", type=_positive, default=100.0, metavar="N",
                          help="new leads per hour of event time on an average weekday, spread over working "
                               "hours; weekends are quieter (default: 100)")
    simulate.add_argument("--speed", type=_positive, default=1.0, metavar="X",
                          help="event time runs X times faster than wall time (default: 1, real time)")
    simulate.add_argument("--seed", type=int, default=None, metavar="S",
                          help="random seed of the traffic (default: a random one, printed at the end)")
    simulate.add_argument("--duration", type=_positive, default=None, metavar="SECONDS",
                          help="stop after this many wall-clock seconds (default: run until Ctrl-C)")
    simulate.add_argument("--messy", action="store_true",
                          help="add real-world mess: re-sends, late events, missing lead.created, invalid "
                               "lines, non-Z offsets")
    simulate.add_argument("--no-progress", action="store_true", help="never show a status line")
    simulate.add_argument("--via", choices=("hubspot", "pipedrive", "close", "pulse"),
                          help="send the traffic through the CRM gateway as that CRM's signed webhooks (with "
                               "retries and some duplicate deliveries) instead of publishing to the broker")
    simulate.add_argument("--gateway", metavar="URL", help="--via: the gateway's base URL (default: "
                                                          "http://localhost:$PULSE_GATEWAY_PORT, else 8088)")
    simulate.add_argument("--source", metavar="NAME", help="--via: the source to post as (default: the only "
                                                           "source of that kind in the configuration)")
    simulate.add_argument("--config", dest="config_path", metavar="FILE",
                          help="--via: configuration with the sources section (env PULSE_CONFIG)")
    simulate.set_defaults(run=cmd_simulate)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", metavar="URL", help=_BROKER_HELP)
    parser.add_argument("--topic-prefix", dest="topic_prefix", metavar="P", help=_PREFIX_HELP)
    parser.add_argument("--connect-timeout", dest="connect_timeout", type=_positive, default=5.0,
                        metavar="SECONDS", help="how long to wait for the broker to answer (default: 5)")


def cmd_replay(args: argparse.Namespace) -> int:
    from pulse.kafka.replay import run_replay
    from pulse.settings import from_args

    settings = from_args(args)        # SPEC 7.1: option, else environment, else default

    return run_replay(args.files, settings.broker, settings.topic_prefix, rate=args.rate,
                      progress=not args.no_progress and sys.stderr.isatty(),
                      connect_timeout=args.connect_timeout)


def cmd_simulate(args: argparse.Namespace) -> int:
    from pulse.dev.simulate import run_simulate
    from pulse.settings import from_args

    settings = from_args(args)        # SPEC 7.1: option, else environment, else default
    sender = None
    if args.via:
        from pulse.schemas.config import ConfigError
        from pulse.gateway.sender import open_sender
        from pulse.settings import environment, with_config

        url = args.gateway or f"http://localhost:{settings.gateway_port}"
        try:
            sender = open_sender(args.via, url, args.source, with_config(settings).config, environment(),
                                 seed=args.seed or 0)
        except (ConfigError, ValueError) as exc:
            print(f"pulse simulate: {exc}", file=sys.stderr)
            return 2

    return run_simulate(settings.broker, settings.topic_prefix,
                        leads_per_hour=args.leads_per_hour, speed=args.speed, seed=args.seed,
                        duration=args.duration, messy=args.messy,
                        progress=not args.no_progress and sys.stderr.isatty(),
                        connect_timeout=args.connect_timeout, publisher=sender)
