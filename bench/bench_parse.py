"""Micro-benchmark of `pulse.schemas.parse.parse_event` on a mix of valid events.

    .venv/bin/python bench/bench_parse.py [--n 20000] [--repeat 40]

Prints the best-of-`repeat` time per event in microseconds for: the full mix, each
event type alone, and `orjson.loads` alone (the floor this parser cannot go below).
Best-of-many short passes, because shared machines are noisy: the minimum is the
least disturbed measurement.
"""
from __future__ import annotations

import argparse
import random
import time

import orjson

from pulse.schemas.config import Config, PipelineConfig, Stage, Window
from pulse.schemas.parse import parse_event
from pulse.schemas.types import Event

STAGES = ("new", "prospecting", "qualified", "contacted", "proposal", "negotiation")


def make_config() -> Config:
    stages = tuple(Stage(n, i, 86_400 * 7, 0.1 * i) for i, n in enumerate(STAGES))
    pc = PipelineConfig("default", stages, {s.name: s.index for s in stages}, 2, 2)
    return Config({"default": pc}, (Window("7d", 7),))


def make_events(n: int, seed: int = 1) -> list[bytes]:
    rnd = random.Random(seed)
    out = []
    base = 1_772_000_000  # 2026-02-25
    for i in range(n):
        t = base + rnd.randrange(90 * 86_400)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
        if rnd.random() < 0.15:
            ts += ".%03d" % rnd.randrange(1000)
        ts += "Z" if rnd.random() < 0.8 else "+02:00"
        common = {
            "event_id": f"e-{i:06d}", "lead_id": f"L-{rnd.randrange(20_000):06d}",
            "occurred_at": ts, "pipeline": "default",
            "owner": f"rep-{rnd.randrange(40):02d}", "team": rnd.choice(["emea", "amer", "apac"]),
        }
        r = rnd.random()
        if r < 0.3:
            ev = {"type": "lead.created", **common, "stage": "new", "source": "marketing",
                  "attributes": {"email": "x@y.z", "company": "ACME"}}
        elif r < 0.85:
            ev = {"type": "lead.stage_changed", **common, "amount": float(rnd.randrange(100, 50_000)),
                  "to_stage": rnd.choice(STAGES), "from_stage": rnd.choice(STAGES),
                  "attributes": {"email": "x@y.z"}}
        else:
            ev = {"type": "deal.closed", **common, "amount": rnd.randrange(100, 50_000),
                  "currency": "EUR", "outcome": rnd.choice(["won", "lost"]), "reason": "price"}
        out.append(orjson.dumps(ev))
    return out


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=40)
    a = ap.parse_args()
    cfg = make_config()
    events = make_events(a.n)
    for e in events:
        assert isinstance(parse_event(e, cfg), Event), e
    avg_len = sum(map(len, events)) / len(events)

    def run(evs):
        def f():
            for e in evs:
                parse_event(e, cfg)
        return f

    def run_loads():
        loads = orjson.loads
        for e in events:
            loads(e)

    print(f"{len(events)} events, {avg_len:.0f} bytes on average, best of {a.repeat}")
    t = best(run(events), a.repeat)
    print(f"parse_event, mix:             {t / len(events) * 1e6:6.3f} us/event  ({len(events) / t:,.0f} events/s)")
    for typ in (b'"lead.created"', b'"lead.stage_changed"', b'"deal.closed"'):
        sub = [e for e in events if typ in e]
        t = best(run(sub), a.repeat)
        print(f"parse_event, {typ.decode():22s} {t / len(sub) * 1e6:6.3f} us/event")
    t = best(run_loads, a.repeat)
    print(f"orjson.loads alone:           {t / len(events) * 1e6:6.3f} us/event")


if __name__ == "__main__":
    main()
