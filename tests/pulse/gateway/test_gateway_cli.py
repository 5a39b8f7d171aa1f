"""`pulse gateway` and `pulse simulate --via` as commands (SPEC 7, 7.1, 8.2)."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import orjson
import pytest
import yaml

from pulse.kafka.broker import free_port
from pulse.config import load_config
from pulse.dev.command import wait_healthy
from pulse.gateway import vendor_shapes
from pulse.schemas.topics import INPUT_TOPICS

from tests.support.gateway_harness import ENV, GatewayThread, read_topics


def _write_config(tmp_path, *, secret_env: str = "GW_HUBSPOT_SECRET") -> str:
    config = load_config(None)
    sources = {"acme-hubspot": vendor_shapes.demo_source_yaml(config, "hubspot", "acme-hubspot", secret_env),
               "acme-pipedrive": vendor_shapes.demo_source_yaml(config, "pipedrive", "acme-pipedrive",
                                                                "GW_PIPEDRIVE_SECRET")}
    path = tmp_path / "pulse.yaml"
    path.write_text(open(config.source).read() + "\n" + yaml.safe_dump({"sources": sources}))
    return str(path)


def _pulse(*argv, env=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pulse.cli", *argv], env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def test_gateway_configuration_errors_exit_2_naming_file_and_key(tmp_path):
    path = _write_config(tmp_path)
    done = _pulse("gateway", "--config", path, "--broker", "kafka://127.0.0.1:1", env={"GW_PIPEDRIVE_SECRET": "u:p"})
    assert done.returncode == 2 and done.stdout == ""
    assert f"{path}: sources.acme-hubspot.secret_env: the environment variable GW_HUBSPOT_SECRET" in done.stderr
    secret = "a-very-secret-value-with-no-colon"
    done = _pulse("gateway", "--config", path, env={"GW_HUBSPOT_SECRET": "x", "GW_PIPEDRIVE_SECRET": secret})
    assert done.returncode == 2 and "sources.acme-pipedrive.secret_env" in done.stderr
    assert secret not in done.stderr


def test_gateway_command_serves_signed_webhooks(broker, topics, tmp_path):
    ts = topics(partitions=2)
    path = _write_config(tmp_path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "pulse.cli", "gateway", "--config", path, "--topic-prefix",
                             ts.prefix, "--log-level", "warn"],
                            env={**os.environ, **ENV, "PULSE_BROKER": broker.url, "PULSE_GATEWAY_PORT": str(port)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        try:
            wait_healthy(port, proc, timeout=30, what="gateway", every=0.2)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"{exc}: {proc.stderr.read().decode() if proc.poll() is not None else ''}")
        body = orjson.dumps([{"eventId": 1, "subscriptionId": 1, "portalId": 1, "occurredAt": 1767225600000,
                              "subscriptionType": "deal.propertyChange", "objectId": 5,
                              "propertyName": "dealstage", "propertyValue": "closedwon"}])
        url = f"http://127.0.0.1:{port}/ingest/hubspot/acme-hubspot"
        headers = vendor_shapes.sign("hubspot", ENV["GW_HUBSPOT_SECRET"].encode(), body, url)
        with urllib.request.urlopen(urllib.request.Request(url, body, headers, method="POST"), timeout=10) as r:
            assert orjson.loads(r.read()) == {"published": 1, "ignored": 0}
        [message] = read_topics(broker.bootstrap, [ts.names[t] for t in INPUT_TOPICS])
        assert orjson.loads(message.value)["type"] == "deal.closed" and message.key == b"5"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
    assert ENV["GW_HUBSPOT_SECRET"] not in proc.stderr.read().decode()


def test_simulate_via_pipedrive_posts_through_the_gateway(broker, topics, tmp_path):
    ts = topics(partitions=2)
    path = _write_config(tmp_path)
    gw = GatewayThread(broker.url, ts.prefix).start()
    try:
        done = _pulse("simulate", "--via", "pipedrive", "--gateway", gw.url(""), "--source", "acme-pipedrive",
                      "--config", path, "--speed", "36000", "--leads-per-hour", "200", "--duration", "2",
                      "--seed", "5", env=ENV)
    finally:
        gw.stop()
    assert done.returncode == 0, done.stderr
    assert "/ingest/pipedrive/acme-pipedrive" in done.stderr and "FAILED" not in done.stderr
    published = read_topics(broker.bootstrap, [ts.names[t] for t in INPUT_TOPICS])
    assert published and f"the gateway published {len(published):,} events" in done.stderr
