"""Benchmark the CRM gateway (`pulse gateway`) against a plain kafka-python producer.

    python bench/bench_gateway.py                    # default: 600 HubSpot batches of 100 events
    python bench/bench_gateway.py --batches 200 --concurrency 10 --rounds 3 [--json]

One embedded broker (Tansu, memory storage), 4-partition topics. Per round, alternately:

  gateway  `pulse gateway` in its own process; this process posts signed HubSpot
           deliveries (JSON arrays of 100 `deal.propertyChange` events, from synthetic
           CRM histories through pulse.gateway.vendor_shapes) with `--concurrency`
           requests in flight (aiohttp client). A request's latency runs from sending
           it to its 200, which the gateway gives only after the broker acknowledged
           every event of it (acks=all). events/s = events published / wall time of
           all requests.
  plain    kafka-python `KafkaProducer(acks="all", enable_idempotence=True)`, one `send`
           per event of the same section 1 events (as the gateway maps them: same keys,
           values and topics), then `flush()`: events/s = events / (first send to flush).

Printed: each round's figures, then medians and the ratio gateway/plain (target >= 0.5)
and the gateway's p99 request latency (target < 250 ms). The client shares the machine
with the gateway and the broker (2 cores here): compare figures within one run only.
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

import orjson

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pulse.kafka.broker import EmbeddedBroker, create_topics, free_port  # noqa: E402
from pulse.config import load_config  # noqa: E402
from pulse.gateway import hubspot, vendor_shapes  # noqa: E402
from pulse.gateway.sources import gateway_sources  # noqa: E402
from pulse.dev.command import wait_healthy  # noqa: E402
from pulse.dev.synth import generate  # noqa: E402
from pulse.schemas.topics import TOPIC_OF_TYPE, topic_names  # noqa: E402

SECRET_ENV = "BENCH_HUBSPOT_SECRET"
SECRET = "bench-client-secret"


def make_batches(n_batches: int, size: int):
    config = load_config(None)
    entry = vendor_shapes.demo_source_yaml(config, "hubspot", "bench", SECRET_ENV)
    source = gateway_sources(dataclasses.replace(config, extra={"sources": {"bench": entry}}),
                             {SECRET_ENV: SECRET})["bench"]
    shaper = vendor_shapes.Shaper("hubspot", source, {p.name: p.stages[0].name for p in config.pipelines.values()})
    elements = []
    leads = max(100, n_batches * size // 6)
    for line in generate(leads=leads, seed=11, days=60):
        elements.extend(v.payload for v in shaper.shape(orjson.loads(line)))
        if len(elements) >= n_batches * size:
            break
    bodies = [orjson.dumps(elements[i:i + size]) for i in range(0, n_batches * size, size)]
    bodies = [b for b in bodies if b != b"[]"]
    messages = [m for body in bodies for m in hubspot.adapt(body, source).messages]
    return entry, bodies, messages


async def post_all(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float], int]:
    import aiohttp

    latencies: list[float] = []
    published = 0
    queue = list(reversed(bodies))

    async def worker(session):
        nonlocal published
        while queue:
            body = queue.pop()
            headers = vendor_shapes.sign("hubspot", SECRET.encode(), body, url)
            t = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                answer = await r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status}: {answer[:200]!r}")
            latencies.append(time.perf_counter() - t)
            published += orjson.loads(answer)["published"]

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - t0, latencies, published


def run_gateway_round(broker, config_path: str, prefix: str, bodies, concurrency: int) -> dict:
    port = free_port()
    env = {**os.environ, SECRET_ENV: SECRET}
    proc = subprocess.Popen([sys.executable, "-m", "pulse.cli", "gateway", "--config", config_path, "--broker",
                             broker.url, "--topic-prefix", prefix, "--gateway-port", str(port), "--log-level", "error"],
                            env=env, start_new_session=True)
    try:
        wait_healthy(port, proc, timeout=30, what="gateway", every=0.1)
        url = f"http://127.0.0.1:{port}/ingest/hubspot/bench"
        asyncio.run(post_all(url, bodies[:concurrency], concurrency))          # warm-up: connections, metadata
        wall, latencies, published = asyncio.run(post_all(url, bodies, concurrency))
    finally:
        proc.terminate()
        proc.wait(15)
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99 + 0.999999) - 1)]
    return {"events": published, "seconds": wall, "events_per_s": published / wall, "requests": len(latencies),
            "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": p99 * 1000}


def run_plain_round(broker, prefix: str, messages) -> dict:
    from kafka import KafkaProducer

    names = topic_names(prefix)
    topic_of = {t: names[name] for t, name in TOPIC_OF_TYPE.items()}
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True, linger_ms=2)
    try:
        producer.send(topic_of["lead.created"], b"{}", key=b"warm").get(10)
        t0 = time.perf_counter()
        for m in messages:
            producer.send(topic_of[m.type], m.value, key=m.key)
        producer.flush()
        wall = time.perf_counter() - t0
    finally:
        producer.close()
    return {"events": len(messages), "seconds": wall, "events_per_s": len(messages) / wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=600, help="HubSpot deliveries per round (default 600)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    entry, bodies, messages = make_batches(args.batches, args.batch_size)
    config = load_config(None)
    import tempfile

    import yaml

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(open(config.source).read() + "\n" + yaml.safe_dump({"sources": {"bench": entry}}))
        config_path = f.name
    results = {"gateway": [], "plain": []}
    with EmbeddedBroker() as broker:
        for i in range(args.rounds):
            for kind in ("gateway", "plain"):
                prefix = f"bench{i}{kind}."
                create_topics(broker.bootstrap, list(topic_names(prefix).values()), 4)
                r = (run_gateway_round(broker, config_path, prefix, bodies, args.concurrency) if kind == "gateway"
                     else run_plain_round(broker, prefix, messages))
                results[kind].append(r)
                extra = f", p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms" if kind == "gateway" else ""
                print(f"round {i + 1} {kind:>7}: {r['events']:,} events in {r['seconds']:.2f} s = "
                      f"{r['events_per_s']:,.0f} events/s{extra}", file=sys.stderr, flush=True)
    os.unlink(config_path)
    gw = statistics.median(r["events_per_s"] for r in results["gateway"])
    plain = statistics.median(r["events_per_s"] for r in results["plain"])
    p99 = statistics.median(r["p99_ms"] for r in results["gateway"])
    summary = {"gateway_events_per_s": gw, "plain_events_per_s": plain, "ratio": gw / plain, "p99_ms": p99,
               "batches": len(bodies), "events_per_round": len(messages), "concurrency": args.concurrency}
    if args.json:
        print(json.dumps({"summary": summary, "rounds": results}, indent=2))
    else:
        print(f"gateway {gw:,.0f} events/s (median of {args.rounds}), plain kafka-python producer "
              f"{plain:,.0f} events/s: ratio {gw / plain:.2f} (target >= 0.5); gateway p99 request latency "
              f"{p99:.1f} ms at {args.concurrency} concurrent requests of {args.batch_size} events "
              f"(target < 250 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
