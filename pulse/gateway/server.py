"""The gateway's HTTP side (SPEC 8.1, 8.3): aiohttp app, endpoints, checks, responses.

Order of checks: unknown source or kind -> 404; body over 1 MiB -> 413 (not read
further); not authentic -> 401 (nothing published). Then the vendor adapter maps the
body; every event and every dead letter of the request is published and acknowledged
before the 200 `{"published": N, "ignored": M}`; if that cannot happen within 4 s, 503.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pulse.gateway import close, hubspot, pipedrive, pulse_kind, signatures
from pulse.gateway.metrics import UNKNOWN_SOURCE, GatewayMetrics
from pulse.gateway.model import Adapted, Unreadable
from pulse.gateway.publisher import NotConnected, Publisher, deadletter_headers
from pulse.gateway.sources import Source

log = logging.getLogger("pulse.gateway")

MAX_BODY = 1024 * 1024
PUBLISH_TIMEOUT = 4.0
# /health answers 503 for this long after a failed publish, then reports the connection
# again. Not until the next success: a readiness probe on /health takes the pod out of
# its Service, so no request would ever come to succeed and the pod would stay out.
FAILING_HOLD = 30.0
ADAPTERS: Mapping[str, Callable[[bytes, Source], Adapted]] = {
    "pulse": pulse_kind.adapt, "hubspot": hubspot.adapt, "pipedrive": pipedrive.adapt, "close": close.adapt}


class Gateway:
    def __init__(self, sources: Mapping[str, Source], publisher: Publisher, *, metrics: GatewayMetrics | None = None,
                 clock: Callable[[], float] = time.time, publish_timeout: float = PUBLISH_TIMEOUT,
                 failing_hold: float = FAILING_HOLD):
        self.sources = sources
        self.publisher = publisher
        self.metrics = metrics or GatewayMetrics()
        self.clock = clock
        self.publish_timeout = publish_timeout
        self.failing: str | None = None         # why the last publish failed (None after a success)
        self.failing_since = 0.0                # clock() of that failure
        self.failing_hold = failing_hold

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/ingest/{kind}/{source}", self.ingest)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics_page)
        return app

    async def health(self, request: web.Request) -> web.Response:
        failing = self.failing if self.clock() - self.failing_since < self.failing_hold else None
        if self.publisher.connected.is_set() and failing is None:
            return web.json_response({"status": "ok"})
        if failing is not None:
            return web.json_response({"status": "failing", "problem": failing}, status=503)
        return web.json_response({"status": "connecting", "problem": self.publisher.last_problem}, status=503)

    async def metrics_page(self, request: web.Request) -> web.Response:
        self.metrics.broker_connected.set(1 if self.publisher.connected.is_set() else 0)
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def ingest(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        kind = request.match_info["kind"]
        source = self.sources.get(request.match_info["source"])
        label = source.name if source is not None and source.kind == kind else UNKNOWN_SOURCE
        try:
            response = await self._ingest(request, kind, source)
        except web.HTTPRequestEntityTooLarge:
            response = _error(413, f"body over {MAX_BODY} bytes")
        self.metrics.requests.labels(label, kind if label != UNKNOWN_SOURCE else "", str(response.status)).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - started)
        return response

    async def _ingest(self, request: web.Request, kind: str, source: Source | None) -> web.Response:
        if source is None or source.kind != kind:
            return _error(404, "no such source for this kind")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _error(413, f"body over {MAX_BODY} bytes")
        body = await request.read()             # aiohttp stops at client_max_size: 413
        reason = self._not_authentic(request, source, body)
        if reason is not None:
            self.metrics.auth_failures.labels(source.name).inc()
            log.warning("401 for source %s: %s (%s %s)", source.name, reason,
                        request.method, request.remote)
            return _error(401, "not authentic")
        try:
            adapted = ADAPTERS[kind](body, source)
        except Exception as exc:                # an adapter bug must not make the CRM retry forever
            log.error("source %s: the %s adapter failed (%s); the delivery is dead-lettered", source.name, kind,
                      type(exc).__name__)
            adapted = Adapted([], 0, [Unreadable(body, f"the gateway could not read it ({type(exc).__name__})")])
        records = [(self.publisher.topic(m.type), m.key, m.value, None) for m in adapted.messages]
        records += [(self.publisher.deadletter, None, part.raw,
                     deadletter_headers("invalid_delivery", part.detail, source.name))
                    for part in adapted.unreadable]
        try:
            await asyncio.wait_for(self.publisher.publish(records), self.publish_timeout)
        except (asyncio.TimeoutError, NotConnected) as exc:
            log.warning("503 for source %s: the broker did not acknowledge %d message(s) within %g s%s",
                        source.name, len(records), self.publish_timeout,
                        f" ({exc})" if isinstance(exc, NotConnected) else "")
            if not isinstance(exc, NotConnected):
                self.failing = f"the broker did not acknowledge a request within {self.publish_timeout:g} s"
                self.failing_since = self.clock()
            return _error(503, "the broker did not acknowledge in time; retry")
        except Exception as exc:                # a broker error answer: the CRM retries
            log.warning("503 for source %s: publishing failed: %s", source.name, type(exc).__name__)
            self.failing = f"publishing failed: {type(exc).__name__}"
            self.failing_since = self.clock()
            return _error(503, "publishing failed; retry")
        self.failing = None
        for event_type, n in Counter(m.type or "untyped" for m in adapted.messages).items():
            self.metrics.published.labels(source.name, event_type).inc(n)
        if adapted.ignored:
            self.metrics.ignored.labels(source.name).inc(adapted.ignored)
        for part in adapted.unreadable:
            self.metrics.dead_letters.labels(source.name, "invalid_delivery").inc()
            log.info("dead-lettered an unreadable %s delivery from source %s: %s", kind, source.name, part.detail)
        log.debug("source %s: published %d, ignored %d", source.name, len(adapted.messages), adapted.ignored)
        return web.json_response({"published": len(adapted.messages), "ignored": adapted.ignored})

    def _not_authentic(self, request: web.Request, source: Source, body: bytes) -> str | None:
        headers = request.headers
        now = self.clock()
        if source.kind == "pulse":
            return signatures.check_pulse(source.secret, headers, body, now, source.max_age_s)
        if source.kind == "hubspot":
            scheme = headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
            host = headers.get("X-Forwarded-Host", headers.get("Host", request.host)).split(",")[0].strip()
            uri = signatures.hubspot_uri(scheme, host, request.raw_path)
            return signatures.check_hubspot(source.secret, headers, body, request.method, uri, now,
                                            source.max_age_s, source.legacy_signatures)
        if source.kind == "pipedrive":
            return signatures.check_pipedrive(source.secret, headers)
        return signatures.check_close(source.secret, headers, body, now, source.max_age_s)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def serve(gateway: Gateway, host: str, port: int) -> web.AppRunner:
    """Start the HTTP server (the caller cleans the runner up)."""
    runner = web.AppRunner(gateway.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return server.sockets[0].getsockname()[1]
    raise RuntimeError("the gateway is not listening")
