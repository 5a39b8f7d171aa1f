"""What one GET /metrics scrape costs the worker's event loop (no broker: a LivePulse fed in process).

    python bench/bench_metrics.py --leads 20000 --repeat 5
    python bench/bench_metrics.py --leads 20000 --teams 80     # more teams than the 50-value limit

Prints the scrape time (median and min of `--repeat` renders, each building the document
again: cache_seconds 0), what of it is the report's figures (`build_figures(merged_engine())`),
the full SPEC 5 document and its dashboard views (what GET /report and the dashboard build),
the exposition's size and its series, and the label values of the team gauges.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import zlib

import orjson

from pulse.agents.live import LivePulse
from pulse.agents.metrics import ProcessingStats, make_registry, render
from pulse.agents.views import encode_views
from pulse.config import load_config
from pulse.streams.report import build_figures
from pulse.synth import generate
from pulse.topics import TOPIC_OF_TYPE


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--teams", type=int, default=0, help="rewrite the teams to this many values (0: synth's)")
    args = ap.parse_args()

    config = load_config(None)
    live = LivePulse(config, type_of_topic={t: k for k, t in TOPIC_OF_TYPE.items()}, clock="event",
                     send=lambda *a: None, now_us=lambda: time.time_ns() // 1000)
    live.ready = True
    for p in range(4):
        live.partitions[p] = live._new_state(p)
    offsets: dict = {}
    n = 0
    started = time.perf_counter()
    for line in generate(leads=args.leads, seed=args.seed):
        doc = orjson.loads(line)
        lead = doc["lead_id"]
        if args.teams:
            doc["team"] = f"team-{zlib.crc32(lead.encode()) % args.teams:03d}"
            line = orjson.dumps(doc)
        p = zlib.crc32(lead.encode()) % 4
        topic = TOPIC_OF_TYPE[doc["type"]]
        offsets[(topic, p)] = offsets.get((topic, p), -1) + 1
        live.on_message(topic, p, offsets[(topic, p)], None, line)
        n += 1
    fed = time.perf_counter() - started
    registry = make_registry(live, ProcessingStats(), config, clock="event", process_metrics=False)
    open_leads = sum(len(pl.open_leads) for s in live.partitions.values() for pl in s.engine.pipelines.values())

    scrapes, figures, documents, views = [], [], [], []
    text = b""
    for _ in range(args.repeat):
        t = time.perf_counter()
        engine = live.merged_engine()
        built = build_figures(engine, engine.max_ts)
        figures.append(time.perf_counter() - t)
        t = time.perf_counter()
        doc = built.document()
        documents.append(time.perf_counter() - t + figures[-1])
        t = time.perf_counter()
        encode_views(doc)
        views.append(time.perf_counter() - t)
        t = time.perf_counter()
        text = render(registry)
        scrapes.append(time.perf_counter() - t)
    series = [line for line in text.split(b"\n") if line and not line.startswith(b"#")]
    teams = {line.split(b'team="')[1].split(b'"')[0] for line in series if line.startswith(b"pulse_team_open_leads{")}
    print(f"events fed: {n:,} in {fed:.1f} s; open leads {open_leads:,}")
    print(f"scrape (render, document included): median {statistics.median(scrapes) * 1000:.1f} ms, "
          f"min {min(scrapes) * 1000:.1f} ms over {args.repeat}")
    print(f"  of which the report's figures:     median {statistics.median(figures) * 1000:.1f} ms")
    print(f"the SPEC 5 document (figures + stale list): median {statistics.median(documents) * 1000:.1f} ms "
          f"({sum(len(p['stale']) for p in doc['pipelines'].values()):,} stale leads); "
          f"its dashboard views: median {statistics.median(views) * 1000:.1f} ms")
    print(f"exposition: {len(text):,} bytes, {len(series):,} series; pulse_team_open_leads label values: "
          f"{len(teams)}{' (other included)' if b'other' in teams else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
