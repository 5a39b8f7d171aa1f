"""`pulse stale`: the stale leads, oldest first, read from the Redis serving layer only
(no broker, no worker). The workers keep Redis up to date (`pulse worker --redis URL`);
the key layout and how far Redis can lag are in docs/redis.md.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

EXIT_UNAVAILABLE = 1


def add_stale_command(sub) -> None:
    stale = sub.add_parser("stale", help="list stale leads from the Redis serving layer (no broker needed)",
                           description="List the stale leads (SPEC 4.5), oldest stay first, as the workers "
                                       "keep them in Redis. Filters combine (AND).")
    stale.add_argument("--pipeline", help="only this pipeline (default: every pipeline)")
    stale.add_argument("--stage", help="only leads in this stage")
    stale.add_argument("--owner", help="only leads of this owner")
    stale.add_argument("--team", help="only leads of this team")
    stale.add_argument("--limit", type=int, default=50, metavar="N", help="show the N oldest (default 50; 0: all)")
    stale.add_argument("--redis", dest="redis_url", metavar="URL",
                       help="Redis URL (env PULSE_REDIS_URL), e.g. redis://localhost:6379/0")
    stale.add_argument("--topic-prefix", dest="topic_prefix",
                       help="the workers' topic prefix, which names the key prefix (env PULSE_TOPIC_PREFIX)")
    stale.add_argument("--json", action="store_true", help="print a JSON document instead of a table")
    stale.set_defaults(run=cmd_stale)


def cmd_stale(args: argparse.Namespace) -> int:
    from pulse.settings import from_args

    settings = from_args(args)
    if not settings.redis_url:
        print("pulse: pulse stale reads Redis: give --redis URL or PULSE_REDIS_URL", file=sys.stderr)
        return 2
    if args.limit < 0:
        print("pulse: --limit must be 0 (all) or more", file=sys.stderr)
        return 2
    from redis.exceptions import RedisError

    from pulse.agents.redis_layout import redact

    try:
        doc = asyncio.run(_query(settings, args))
    except (RedisError, OSError, ValueError) as exc:
        print(f"pulse: cannot read Redis at {redact(settings.redis_url)}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    else:
        _table(doc, show_pipeline=args.pipeline is None)
    return 0


async def _query(settings, args) -> dict:
    from pulse.agents.redis_layout import Keys, connect, key_prefix, query_stale, read_scorecards

    client = connect(settings.redis_url)
    keys = Keys(key_prefix(settings.topic_prefix))
    try:
        doc = await query_stale(client, keys, pipeline=args.pipeline, stage=args.stage, owner=args.owner,
                                team=args.team, limit=args.limit or None)
        if args.owner is not None:      # the rep's scorecard per pipeline, as the workers last wrote it
            doc["scorecards"] = await read_scorecards(client, keys, args.owner, args.pipeline)
        return doc
    finally:
        await client.aclose()


def _days(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _scorecards(console, cards: dict) -> None:
    """One block per pipeline: the owner's open pipeline, then a line per window."""
    from rich.markup import escape

    if not cards:
        console.print("[dim]no scorecard for this owner (none written yet, or no open lead, creation or close "
                      "in any window)[/dim]")
    for pipeline, card in cards.items():
        o = card["open"]
        levels = o["stale_by_level"]
        console.print(f"[bold]{escape(card['owner'])}[/bold] in {escape(pipeline)} (as of {card['as_of']}): "
                      f"{o['count']} open lead{'s' if o['count'] != 1 else ''}, {_money(o['amount'])} "
                      f"(weighted {_money(o['weighted_amount'])}), {o['stale']} stale "
                      f"(level 1/2/3: {levels['1']}/{levels['2']}/{levels['3']})")
        for window, w in card["windows"].items():
            rate = "-" if w["win_rate"] is None else f"{w['win_rate']:.0%}"
            console.print(f"  {window:>5}: {w['leads_created']} created, {w['won']} won, {w['lost']} lost, "
                          f"won {_money(w['won_amount'])}, win rate {rate}")


def _table(doc: dict, show_pipeline: bool) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    shown = len(doc["stale"])
    title = (f"{doc['count']} stale lead{'s' if doc['count'] != 1 else ''}"
             + (f", the {shown} oldest" if shown < doc["count"] else "")
             + f" — as of {doc['as_of']}")
    table = Table(title=title, title_justify="left")
    if show_pipeline:
        table.add_column("pipeline")
    for name, justify in (("lead", "left"), ("stage", "left"), ("age (d)", "right"), ("limit (d)", "right"),
                          ("level", "right"), ("owner", "left"), ("team", "left"), ("amount", "right"),
                          ("since", "left")):
        table.add_column(name, justify=justify)
    styles = {1: "yellow", 2: "dark_orange", 3: "bold red"}
    for e in doc["stale"]:
        row = [e["lead_id"], e["stage"] or "", _days(e["age_days"]), _days(e["stale_after_days"]),
               str(e["level"]), e["owner"] or "", e["team"] or "",
               "" if e["amount"] is None else f"{e['amount']:,.2f}", e["since"] or ""]
        cells = [Text(c) for c in ([e["pipeline"]] if show_pipeline else []) + row]    # names are not markup
        table.add_row(*cells, style=styles.get(e["level"]))
    console = Console(width=None if sys.stdout.isatty() else 160)    # piped: do not wrap at 80 columns
    if "scorecards" in doc:
        _scorecards(console, doc["scorecards"])
    console.print(table)
    if doc.get("synced_at") is None:
        console.print("[dim]no worker has synced this key space yet (check --redis and --topic-prefix)[/dim]")
