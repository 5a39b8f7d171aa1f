"""CRM webhook -> gateway -> broker -> worker, end to end (issue 14, SPEC 8).

Synthetic CRM histories (late events, re-sends, implicit creates) are turned into signed
vendor deliveries for four sources (HubSpot batches, Pipedrive, Close, pulse), shuffled,
some posted twice (the CRM's retries), some HubSpot events repeated in another batch,
plus one unmapped HubSpot stage. The worker's GET /report must equal `pulse report`'s
document on the section 1 events those deliveries stand for (vendor_shapes), with each
vendor event's identity as its event_id.
"""
from __future__ import annotations

import dataclasses
import hashlib
import random

import orjson

from pulse.config import load_config
from pulse.gateway import vendor_shapes
from pulse.gateway.sources import gateway_sources
from pulse.streams.report import build_report
from pulse.synth import generate

from tests.support.gateway_harness import ENV, GatewayThread
from tests.support.live_harness import WorkerProcess

LEADS = 25


def _sources(config):
    entries = {}
    for kind in vendor_shapes.VIA:
        entry = vendor_shapes.demo_source_yaml(config, kind, f"acme-{kind}", f"GW_{kind.upper()}_SECRET")
        if kind != "pulse":
            entry["lead_id_prefix"] = kind[:2] + "-"
        entries[f"acme-{kind}"] = entry
    return gateway_sources(dataclasses.replace(config, extra={"sources": entries}), ENV)


def _identity(kind: str, payload) -> str:
    return f"{kind}:" + hashlib.sha256(orjson.dumps(payload)).hexdigest()[:32]


def _two_pipelines(tmp_path):
    """The shipped configuration plus an `enterprise` pipeline: HubSpot's amount and owner
    changes then go to both pipelines (SPEC 8.4), and only the deal's own copy counts."""
    shipped = load_config(None)
    stages = "".join(f"      - {{name: {s.name}, stale_after: 7d, probability: {s.probability}}}\n"
                     for s in shipped.pipelines["default"].stages)
    path = tmp_path / "two-pipelines.yaml"
    path.write_text(open(shipped.source).read() + "  enterprise:\n    stages:\n" + stages)
    return str(path)


def test_vendor_deliveries_through_gateway_and_worker_equal_pulse_report(broker, topics, tmp_path):
    config_path = _two_pipelines(tmp_path)
    config = load_config(config_path)
    assert set(config.pipelines) == {"default", "enterprise"}
    sources = _sources(config)
    first = {p.name: p.stages[0].name for p in config.pipelines.values()}
    rng = random.Random(14)
    deliveries: list[tuple[str, list]] = []          # (kind, vendor events of one request)
    for seed, kind in enumerate(vendor_shapes.VIA):
        shaper = vendor_shapes.Shaper(kind, sources[f"acme-{kind}"], first)
        vendor_events = []
        for line in generate(leads=LEADS, seed=seed, days=20, duplicates=0.05, late=0.1, implicit=0.05,
                             offsets=0.2, pipelines=("default", "enterprise")):
            vendor_events.extend(shaper.shape(orjson.loads(line)))
        if kind == "hubspot":
            unmapped = {**vendor_events[0].payload, "propertyName": "dealstage", "propertyValue": "mystery-stage",
                        "eventId": 777}
            vendor_events.append(vendor_shapes.VendorEvent(unmapped, [
                {**vendor_events[0].stands_for[0], "type": "lead.stage_changed", "to_stage": "mystery-stage"}]))
            vendor_events += rng.sample(vendor_events, len(vendor_events) // 20)    # repeated in other batches
            rng.shuffle(vendor_events)
            while vendor_events:
                size = rng.randint(1, 100)
                deliveries.append((kind, vendor_events[:size]))
                vendor_events = vendor_events[size:]
        else:
            deliveries += [(kind, [v]) for v in vendor_events]
    deliveries += rng.sample(deliveries, len(deliveries) // 7)                       # the CRM's retries
    rng.shuffle(deliveries)

    ts = topics(partitions=4)
    gateway = GatewayThread(broker.url, ts.prefix, sources).start()
    worker = WorkerProcess(broker.url, ts.prefix, f"g-{ts.prefix}", tmp_path,
                           extra_env={"PULSE_CONFIG": config_path}).start()
    expected_lines: list[bytes] = []
    try:
        published = 0
        for kind, batch in deliveries:
            body = vendor_shapes.body_of(kind, [v.payload for v in batch])
            status, answer = gateway.post(kind, f"acme-{kind}", body)
            assert status == 200, answer
            published += orjson.loads(answer)["published"]
            for v in batch:
                event_id = None if kind == "pulse" else _identity(kind, v.payload)
                expected_lines += [orjson.dumps({**e, "event_id": event_id or e["event_id"]}) for e in v.stands_for]
        assert published == len(expected_lines) > 4 * LEADS * 3
        expected = build_report(expected_lines, config)
        assert expected["data_quality"]["dead_letter_reasons"].get("unknown_stage", 0) >= 1
        assert expected["data_quality"]["duplicates"] > 0
        assert expected["pipelines"]["enterprise"]["open"]["count"] > 0
        assert worker.wait_consumed(len(expected_lines), timeout=120) == expected
    finally:
        worker.stop()
        gateway.stop()
