"""GET /health of the gateway after a failed publish: 503 for FAILING_HOLD seconds, then
the connection again. A readiness probe on /health (deploy/k8s/gateway-deployment.yaml)
takes an unready pod out of its Service, so no request would come to clear the failure:
the pod must come back by itself.

The server is real (aiohttp on loopback); the publisher is a stand-in that fails on
demand, and the clock is the gateway's injected one, so no test waits.
"""
from __future__ import annotations

import asyncio

import orjson
from aiohttp import ClientSession

from tests.support.gateway_harness import demo_sources
from pulse.gateway import vendor_shapes
from pulse.gateway.server import Gateway, bound_port, serve

NOW = 1_790_000_000.0


class FlakyPublisher:
    """Connected; `publish` raises while `broken` is set, else accepts."""

    deadletter = "pipeline.deadletter"

    def __init__(self):
        self.connected = asyncio.Event()
        self.connected.set()
        self.last_problem = ""
        self.broken = False
        self.published: list = []

    def topic(self, event_type):
        return f"topic-of-{event_type}"

    async def publish(self, records):
        if self.broken:
            raise RuntimeError("the broker refused")
        self.published.extend(records)


def _event(i: int) -> bytes:
    return orjson.dumps({"type": "lead.created", "event_id": f"e-{i}", "lead_id": f"L-{i}",
                         "occurred_at": "2026-03-01T00:00:00Z", "pipeline": "default"})


def test_health_reports_a_failed_publish_for_the_hold_then_the_connection_again():
    async def scenario() -> list[tuple[str, int, str]]:
        clock = [NOW]
        publisher = FlakyPublisher()
        gateway = Gateway(demo_sources(), publisher, clock=lambda: clock[0], failing_hold=30.0)
        runner = await serve(gateway, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{bound_port(runner)}"
        secret = gateway.sources["acme-pulse"].secret
        seen = []
        try:
            async with ClientSession() as http:
                async def health(step: str):
                    async with http.get(base + "/health") as r:
                        seen.append((step, r.status, (await r.json())["status"]))

                async def post(step: str, i: int):
                    body = _event(i)
                    url = base + "/ingest/pulse/acme-pulse"
                    headers = vendor_shapes.sign("pulse", secret, body, url, clock[0])
                    async with http.post(url, data=body, headers=headers) as r:
                        seen.append((step, r.status, ""))

                await health("start")
                publisher.broken = True
                await post("broker refuses", 1)
                await health("just after")
                clock[0] += 29.0
                await health("29 s later")
                clock[0] += 2.0
                await health("31 s later")           # no request came: ready again by itself
                await post("broker refuses again", 2)
                await health("after the second failure")
                publisher.broken = False
                await post("broker accepts", 3)
                await health("after a success")
        finally:
            await runner.cleanup()
        return seen

    assert asyncio.run(scenario()) == [
        ("start", 200, "ok"),
        ("broker refuses", 503, ""),
        ("just after", 503, "failing"),
        ("29 s later", 503, "failing"),
        ("31 s later", 200, "ok"),
        ("broker refuses again", 503, ""),
        ("after the second failure", 503, "failing"),
        ("broker accepts", 200, ""),
        ("after a success", 200, "ok"),
    ]
