"""The gateway as a real HTTP server on loopback against the real embedded broker (SPEC 8.3):
what is refused publishes nothing, unreadable authentic deliveries are dead-lettered,
a broker that does not answer yields 503 and the CRM's retry counts once."""
from __future__ import annotations

import os
import signal

import orjson
import pytest

from pulse.broker import EmbeddedBroker, create_topics
from pulse.config import load_config
from pulse.streams.report import build_report
from pulse.topics import DEADLETTER, INPUT_TOPICS, topic_names

from tests.support.gateway_harness import GatewayThread, read_topics
from tests.support.metrics import parse_exposition, promtool_check_metrics

STAGE = {"type": "lead.stage_changed", "event_id": "e1", "lead_id": "L1", "occurred_at": "2026-01-01T00:00:00Z",
         "to_stage": "proposal"}


def hubspot_body(*values: str, first: int = 0) -> bytes:
    return orjson.dumps([{"eventId": i, "subscriptionId": 1001, "portalId": 1, "occurredAt": 1767225600000 + i,
                          "subscriptionType": "deal.propertyChange", "objectId": 42, "propertyName": "dealstage",
                          "propertyValue": v} for i, v in enumerate(values, first)])


BODIES = {
    "hubspot": hubspot_body("proposal"),
    "pipedrive": orjson.dumps({"meta": {"action": "create", "entity": "deal", "id": "m1"},
                               "data": {"id": 7, "stage_id": "new", "add_time": "2026-01-01 00:00:00"}}),
    "close": orjson.dumps({"event": {"id": "ev_1", "object_type": "opportunity", "action": "created",
                                     "date_created": "2026-01-01T00:00:00", "data": {"id": "oppo_1",
                                                                                     "status_id": "new"}}}),
    "pulse": orjson.dumps(STAGE),
}


@pytest.fixture
def gateway(broker, topics):
    ts = topics(partitions=2)
    gw = GatewayThread(broker.url, ts.prefix).start()
    gw.topics = ts
    yield gw
    gw.stop()


def input_messages(broker, gw) -> list:
    return read_topics(broker.bootstrap, [gw.topics.names[t] for t in INPUT_TOPICS])


def test_refused_requests_publish_nothing_then_authentic_ones_are_published(broker, gateway):
    gw = gateway
    for kind, body in BODIES.items():
        source = f"acme-{kind}"
        assert gw.post(kind, source, body, sign=False)[0] == 401, kind                       # unsigned
        assert gw.post(kind, source, body, secret=b"forged:secret" if kind == "pipedrive" else
                       (b"\x01" * 32 if kind == "close" else b"wrong"))[0] == 401, kind      # wrong secret
        if kind != "pipedrive":                                                               # Pipedrive has no timestamp
            assert gw.post(kind, source, body, now=1_000_000_000)[0] == 401, kind            # stale
        assert gw.post(kind, "nobody", body, secret=b"x:y")[0] == 404
        other = "hubspot" if kind != "hubspot" else "close"
        assert gw.post(other, source, body, sign=False)[0] == 404                           # kind must match the path
    # a body over 1 MiB: 413 before any authentication, announced or streamed (chunked)
    big = b"[" + b" " * (1024 * 1024) + b"]"
    assert gw.post("pulse", "acme-pulse", big, sign=False)[0] == 413
    assert gw.post("pulse", "acme-pulse", iter([big[:600_000], big[600_000:]]),
                   headers={"Content-Type": "application/json"}, sign=False)[0] == 413
    assert input_messages(broker, gw) == []
    metrics = gw.get("/metrics")[1].decode()
    assert 'pulse_gateway_auth_failures_total{source="acme-close"} 3.0' in metrics

    answers = {kind: gw.post(kind, f"acme-{kind}", body) for kind, body in BODIES.items()}
    assert {k: (s, orjson.loads(b)) for k, (s, b) in answers.items()} == {
        k: (200, {"published": 1, "ignored": 0}) for k in BODIES}
    published = input_messages(broker, gw)
    by_key = {m.key: orjson.loads(m.value) for m in published}
    assert len(published) == 4 and set(by_key) == {b"42", b"7", b"oppo_1", b"L1"}
    assert by_key[b"42"]["to_stage"] == "proposal" and by_key[b"7"]["stage"] == "new"
    assert by_key[b"L1"] == STAGE
    assert gw.get("/health")[0] == 200
    exposition = gw.get("/metrics")[1]
    samples = parse_exposition(exposition)
    assert samples[("pulse_gateway_events_published_total",
                    frozenset({("source", "acme-hubspot"), ("type", "lead.stage_changed")}))] == 1
    assert samples[("pulse_gateway_requests_total",
                    frozenset({("source", "(unknown)"), ("kind", ""), ("code", "404")}))] == 8
    promtool_check_metrics(exposition)


def test_hubspot_signature_over_the_url_hubspot_called_behind_a_proxy(broker, gateway):
    """HubSpot signs https://its-host/path?query with some escapes decoded; the gateway
    rebuilds that URL from X-Forwarded-Proto and X-Forwarded-Host."""
    gw = gateway
    from pulse.gateway import vendor_shapes

    body = hubspot_body("new")
    called = "https://crm-hooks.example.com:8443/ingest/hubspot/acme-hubspot?tenant=a:b"
    headers = vendor_shapes.sign("hubspot", gw.sources["acme-hubspot"].secret, body, called)
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "crm-hooks.example.com:8443"}
    path = "/ingest/hubspot/acme-hubspot?tenant=a%3Ab"
    status = gw.post_path(path, body, {**headers, **proxy})[0]
    assert status == 200
    assert gw.post_path(path, body, headers)[0] == 401             # without the proxy headers: another URL


def test_signed_body_swapped_is_refused(broker, gateway):
    gw = gateway
    from pulse.gateway import vendor_shapes

    url = gw.url("/ingest/hubspot/acme-hubspot")
    headers = vendor_shapes.sign("hubspot", gw.sources["acme-hubspot"].secret, hubspot_body("new"), url)
    assert gw.post("hubspot", "acme-hubspot", hubspot_body("closedwon"), headers, sign=False)[0] == 401
    assert input_messages(broker, gw) == []


def test_unreadable_authentic_deliveries_are_dead_lettered_and_answered_200(broker, gateway):
    gw = gateway
    batch = orjson.loads(hubspot_body("proposal", "qualified"))
    batch.insert(1, {"subscriptionType": "deal.propertyChange", "propertyName": "dealstage"})   # no objectId
    batch.append({**batch[0], "subscriptionType": "deal.creation"})                            # ignored
    status, body = gw.post("hubspot", "acme-hubspot", orjson.dumps(batch))
    assert (status, orjson.loads(body)) == (200, {"published": 2, "ignored": 1})
    status, body = gw.post("close", "acme-close", b"<xml>not json</xml>")
    assert (status, orjson.loads(body)) == (200, {"published": 0, "ignored": 0})
    dead = read_topics(broker.bootstrap, [gw.topics.names[DEADLETTER]])
    assert sorted(m.value for m in dead) == sorted([orjson.dumps(batch[1]), b"<xml>not json</xml>"])
    for m in dead:
        headers = dict(m.headers)
        assert headers["pulse.reason"] == b"invalid_delivery" and headers["pulse.detail"]
        assert headers["pulse.source.gateway"] in (b"acme-hubspot", b"acme-close")
    assert len(input_messages(broker, gw)) == 2


def test_broker_not_answering_gives_503_and_the_retry_counts_once(tmp_path):
    """Tansu is frozen (SIGSTOP) while a delivery is published: 503 after the timeout;
    once it answers again the CRM's retry is accepted, and whatever copies reached the
    topics, the section 1 report counts the events once."""
    with EmbeddedBroker() as own:
        names = topic_names("gw503.")
        create_topics(own.bootstrap, list(names.values()), 2)
        gw = GatewayThread(own.url, "gw503.", publish_timeout=1.0).start()
        try:
            body = hubspot_body("new", "proposal")
            assert gw.post("hubspot", "acme-hubspot", body)[0] == 200          # the producer is warm
            os.kill(own.pid, signal.SIGSTOP)
            try:
                retry = hubspot_body("qualified", first=2)
                assert gw.post("hubspot", "acme-hubspot", retry)[0] == 503
                assert gw.get("/health")[0] == 503
            finally:
                os.kill(own.pid, signal.SIGCONT)
            assert gw.post("hubspot", "acme-hubspot", retry)[0] == 200          # the CRM retries
            assert gw.get("/health")[0] == 200
            assert gw.post("hubspot", "acme-hubspot", retry)[0] == 200          # ... and once more
            values = [m.value for m in read_topics(own.bootstrap, [names[t] for t in INPUT_TOPICS], 3000)]
        finally:
            gw.stop()
    report = build_report(values, load_config(None))
    quality = report["data_quality"]
    assert quality["applied"] == 3 and quality["duplicates"] == len(values) - 3 >= 1
