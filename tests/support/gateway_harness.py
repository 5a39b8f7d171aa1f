"""The gateway as a real HTTP server on loopback (its own event loop in a thread), for tests."""
from __future__ import annotations

import asyncio
import dataclasses
import threading
import urllib.error
import urllib.request

from kafka import KafkaConsumer

from pulse.config import load_config
from pulse.gateway import vendor_shapes
from pulse.gateway.publisher import Publisher
from pulse.gateway.server import Gateway, bound_port, serve
from pulse.gateway.sources import gateway_sources

SECRETS = {"hubspot": "hs-client-secret", "pipedrive": "pd_user:pd_pass", "close": "ab" * 32, "pulse": "pulse-key"}
ENV = {f"GW_{k.upper()}_SECRET": v for k, v in SECRETS.items()}


def demo_sources(config=None):
    """One source per kind, named `acme-{kind}`, stage ids = our stage names (vendor_shapes)."""
    config = config or load_config(None)
    entries = {f"acme-{k}": vendor_shapes.demo_source_yaml(config, k, f"acme-{k}", f"GW_{k.upper()}_SECRET")
               for k in vendor_shapes.VIA}
    return gateway_sources(dataclasses.replace(config, extra={"sources": entries}), ENV)


class GatewayThread:
    def __init__(self, broker_url: str, prefix: str, sources=None, *, publish_timeout: float = 4.0):
        self.sources = sources or demo_sources()
        self.publisher = Publisher(broker_url, prefix, retry_every=0.2)
        self.gateway = Gateway(self.sources, self.publisher, publish_timeout=publish_timeout)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def start(self, wait_connected: bool = True) -> "GatewayThread":
        self.thread.start()
        self.runner = asyncio.run_coroutine_threadsafe(serve(self.gateway, "127.0.0.1", 0), self.loop).result(10)
        self.port = bound_port(self.runner)
        self.connecting = asyncio.run_coroutine_threadsafe(self.publisher.connect_forever(), self.loop)
        if wait_connected:
            self.connecting.result(30)
        return self

    def stop(self) -> None:
        self.connecting.cancel()
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        asyncio.run_coroutine_threadsafe(self.publisher.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def post(self, kind: str, source: str, body: bytes, headers: dict | None = None, *,
             sign: bool = True, secret: bytes | None = None, now: float | None = None) -> tuple[int, bytes]:
        path = f"/ingest/{kind}/{source}"
        if sign:
            secret = secret if secret is not None else self.sources[source].secret
            headers = {**vendor_shapes.sign(kind, secret, body, self.url(path), now), **(headers or {})}
        return self.post_path(path, body, headers or {})

    def post_path(self, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url(path), data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()


def read_topics(bootstrap: str, names: list[str], timeout_ms: int = 1500) -> list:
    consumer = KafkaConsumer(*names, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=timeout_ms, group_id=None)
    try:
        return list(consumer)
    finally:
        consumer.close()
