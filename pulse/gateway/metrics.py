"""Prometheus metrics of the gateway (GET /metrics).

Labels are the configured source names (operator-chosen, not PII), the kind, the
response code and the event type: bounded sets. A request for an unknown source is
counted under source="(unknown)", so a scanner cannot grow the label set.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

UNKNOWN_SOURCE = "(unknown)"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 4.0, 10.0)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("pulse_gateway_requests", "Webhook requests by source, kind and response code",
                                ["source", "kind", "code"], registry=r)
        self.published = Counter("pulse_gateway_events_published", "Section 1 events published and acknowledged",
                                 ["source", "type"], registry=r)
        self.ignored = Counter("pulse_gateway_events_ignored",
                               "Vendor events that yield no section 1 event (other objects, properties, actions)",
                               ["source"], registry=r)
        self.auth_failures = Counter("pulse_gateway_auth_failures", "Requests refused as not authentic (401)",
                                     ["source"], registry=r)
        self.dead_letters = Counter("pulse_gateway_dead_letters",
                                    "Authentic deliveries (or batch elements) the gateway could not read, "
                                    "dead-lettered", ["source", "reason"], registry=r)
        self.latency = Histogram("pulse_gateway_request_seconds", "Webhook request latency, until the answer",
                                 ["source"], buckets=LATENCY_BUCKETS, registry=r)
        self.broker_connected = Gauge("pulse_gateway_broker_connected",
                                      "1 when the producer is connected and the topics exist", registry=r)
