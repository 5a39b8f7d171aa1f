"""Prometheus metrics of `pulse slack`, in their own registry (one per notifier), served at
`GET /metrics` (and `GET /health`) on `--slack-metrics-port`."""
from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.errors = Counter("pulse_slack_errors_total", "Slack deliveries that failed for good, by Slack error "
                              "(channel_not_found, invalid_auth, ...) or internal cause", ["error"], registry=r)
        self.messages = Counter("pulse_slack_messages_total", "Slack actions done, by action (posted, updated, "
                                "replied, digest)", ["action"], registry=r)
        self.duplicates = Counter("pulse_slack_duplicates_total", "alert deliveries skipped because the ledger "
                                  "shows them posted already", registry=r)
        self.reconciled = Counter("pulse_slack_reconciled_total", "pending claims settled by finding the message "
                                  "in Slack (posted, but not recorded, before a crash or a lost answer)", registry=r)
        self.retries = Counter("pulse_slack_retries_total", "Slack calls retried, by reason (ratelimited, http_5xx, "
                               "network, redis, ...)", ["reason"], registry=r)
        self.in_flight = Gauge("pulse_slack_in_flight", "alert deliveries queued or running", registry=r)
        self.consumed = Counter("pulse_slack_alerts_consumed_total", "messages read from the notifications topic",
                                registry=r)

    def value(self, name: str, **labels) -> float:
        """A sample's current value (tests, logs); 0 when it was never set."""
        v = self.registry.get_sample_value(name, labels or None)
        return 0.0 if v is None else v

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


async def serve(metrics: Metrics, host: str, port: int, healthy) -> web.AppRunner:
    """GET /metrics and GET /health (200 while `healthy()` is true, else 503)."""

    async def get_metrics(_request):
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_health(_request):
        ok = healthy()
        return web.json_response({"status": "ok" if ok else "starting"}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/health", get_health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
