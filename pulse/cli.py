"""The `pulse` command line (SPEC section 7)."""
from __future__ import annotations

import argparse
import os
import sys

import orjson

from pulse.config import ConfigError, load_config

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"pulse: {message}", file=sys.stderr)
    return EXIT_USAGE


def _jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of processes, at least 1, not {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulse", description="Pipeline Pulse: real-time sales-pipeline analytics.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    report = sub.add_parser("report", help="compute the report document from JSON Lines event files (no broker)",
                            description="Read CRM events from JSON Lines files and print the SPEC section 5 "
                                        "report document on stdout.")
    report.add_argument("files", nargs="+", metavar="FILE", help="JSON Lines file; '-' for stdin; .gz accepted")
    report.add_argument("--config", help="pipeline configuration YAML (default: $PULSE_CONFIG, else the shipped one)")
    report.add_argument("--as-of", dest="as_of", metavar="TS",
                        help="report time, RFC 3339 with offset (default: the latest occurred_at of a valid event)")
    report.add_argument("--dead-letter", dest="dead_letter", metavar="OUT",
                        help="write every rejected input with its reason to OUT as JSON Lines")
    report.add_argument("--jobs", type=_jobs, default=None, metavar="N",
                        help="processes to use, at most 16 (default: one per core for large files, 1 for stdin)")
    report.add_argument("--compact", action="store_true", help="print the document on one line")
    report.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    report.set_defaults(run=cmd_report)

    from pulse.worker_command import add_worker_command
    add_worker_command(sub)
    from pulse.dev import add_dev_command
    add_dev_command(sub)

    from pulse.publish_cli import add_publish_commands
    add_publish_commands(sub)
    from pulse.stale_command import add_stale_command
    add_stale_command(sub)
    from pulse.slack.cli import add_slack_command
    add_slack_command(sub)
    from pulse.gateway.command import add_gateway_command
    add_gateway_command(sub)
    return parser


def config_path(option: str | None) -> str | None:
    """SPEC 7.1: the option wins over the environment; None means the shipped default."""
    return option or os.environ.get("PULSE_CONFIG") or None


def cmd_report(args: argparse.Namespace) -> int:
    from pulse.inputs import InputError, check_readable
    from pulse.report_command import run_report
    from pulse.schemas.parse import parse_timestamp

    try:
        config = load_config(config_path(args.config))
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}")
    as_of = None
    if args.as_of is not None:
        as_of = parse_timestamp(args.as_of)
        if as_of is None:
            return _fail(f"--as-of: {args.as_of!r} is not an RFC 3339 timestamp with offset "
                         "(e.g. 2026-03-31T12:00:00Z)")
    try:
        check_readable(args.files)
        document = run_report(args.files, config, as_of, dead_letter_path=args.dead_letter,
                              progress=not args.no_progress and sys.stderr.isatty(), jobs=args.jobs)
    except InputError as exc:
        return _fail(str(exc))
    except OSError as exc:  # e.g. the dead-letter output cannot be written
        return _fail(f"{exc.filename or 'output'}: {exc.strerror or exc}")
    option = 0 if args.compact else orjson.OPT_INDENT_2
    sys.stdout.buffer.write(orjson.dumps(document, option=option) + b"\n")
    sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("pulse: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
