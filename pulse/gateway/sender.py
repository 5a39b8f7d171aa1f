"""A simulated CRM: posts section 1 events to the gateway as a vendor's signed webhooks.

Used by `pulse simulate --via KIND` and `pulse dev`. It behaves like the CRMs it
imitates: a refused or failed delivery is retried (a few times, with back-off), and a
small share of deliveries is sent twice although the first was accepted (a CRM that
missed the answer), so the gateway's duplicates path runs too. Same surface as
`pulse.kafka.producer.Publisher` where `pulse simulate` uses it.
"""
from __future__ import annotations

import random
import time
import urllib.error
import urllib.request
from typing import Any

import orjson

from pulse.gateway import vendor_shapes
from pulse.gateway.sources import Source

RETRIES = 3
HUBSPOT_BATCH = 100
DUPLICATE_SHARE = 0.03


class GatewaySender:
    def __init__(self, base_url: str, source: Source, first_stage: dict[str, str], *, seed: int = 0,
                 duplicate_share: float = DUPLICATE_SHARE, retry_delay: float = 0.5, timeout: float = 10.0,
                 batch_wait: float = 0.2):
        self.base_url = base_url.rstrip("/")
        self.source = source
        self.path = f"/ingest/{source.kind}/{source.name}"
        self.shaper = vendor_shapes.Shaper(source.kind, source, first_stage)
        self.rng = random.Random(seed)
        self.duplicate_share = duplicate_share
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.requests = self.retried = self.duplicated = self.failed = 0
        self.published = self.ignored = self.skipped = 0
        self.first_error: str | None = None
        self.batch: list = []                       # HubSpot elements not sent yet
        self.batch_since = 0.0
        self.batch_wait = batch_wait

    # -- the replay.Publisher surface used by pulse simulate
    @property
    def total_sent(self) -> int:
        return self.published

    @property
    def total_failed(self) -> int:
        return self.failed

    def publish(self, line: bytes) -> None:
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            event = None
        if self.source.kind == "pulse":
            self._post(line)
            return
        if not isinstance(event, dict) or not isinstance(event.get("lead_id"), str) or \
                not isinstance(event.get("event_id"), str) or event.get("type") not in vendor_shapes.TYPES:
            self.skipped += 1                       # a --messy invalid line: no CRM would send it
            return
        try:
            shaped = self.shaper.shape(event)
        except Exception:                            # a --messy malformed event (bad time, wrong types)
            self.skipped += 1
            return
        if not shaped:
            self.skipped += 1
            return
        if self.source.kind == "hubspot":             # HubSpot batches up to 100 events per request
            if not self.batch:
                self.batch_since = time.monotonic()
            self.batch.extend(v.payload for v in shaped)
            if len(self.batch) >= HUBSPOT_BATCH or time.monotonic() - self.batch_since >= self.batch_wait:
                self.flush()
        else:
            for v in shaped:
                self._post(vendor_shapes.body_of(self.source.kind, [v.payload]))

    def refuse(self, topic: str, error: str) -> None:      # pragma: no cover - publish never raises Refused
        self.failed += 1

    def flush(self, timeout: float | None = None) -> bool:
        while self.batch:
            part, self.batch = self.batch[:HUBSPOT_BATCH], self.batch[HUBSPOT_BATCH:]
            self._post(vendor_shapes.body_of("hubspot", part))
        return not self.failed

    def close(self, timeout: float = 0.0) -> None:
        pass

    def summary(self) -> str:
        text = (f"{self.requests:,} webhook requests to {self.base_url}{self.path} ({self.retried:,} retried, "
                f"{self.duplicated:,} sent twice); the gateway published {self.published:,} events, "
                f"ignored {self.ignored:,}")
        if self.skipped:
            text += f"; {self.skipped:,} inputs not representable in {self.source.kind} skipped"
        if self.failed:
            text += f"; {self.failed:,} deliveries FAILED ({self.first_error})"
        return text

    # -- HTTP
    def _post(self, body: bytes) -> None:
        for attempt in range(RETRIES + 1):
            if attempt:
                self.retried += 1
                time.sleep(self.retry_delay * 2 ** (attempt - 1))
            status, answer = self._request(body)
            if status == 200:
                self._count(answer)
                if self.rng.random() < self.duplicate_share:
                    self.duplicated += 1
                    status, answer = self._request(body)
                    if status == 200:
                        self._count(answer)
                return
            if status in (401, 404, 413):           # retrying cannot help; the CRM would give up too
                break
        self.failed += 1

    def _request(self, body: bytes) -> tuple[int | None, Any]:
        self.requests += 1
        url = self.base_url + self.path
        headers = vendor_shapes.sign(self.source.kind, self.source.secret, body, url)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as r:
                return r.status, orjson.loads(r.read())
        except urllib.error.HTTPError as e:
            self.first_error = self.first_error or f"HTTP {e.code}"
            return e.code, None
        except (OSError, ValueError) as e:
            self.first_error = self.first_error or (getattr(e, "reason", None) and str(e.reason)) or type(e).__name__
            return None, None

    def _count(self, answer: Any) -> None:
        if isinstance(answer, dict):
            self.published += int(answer.get("published", 0))
            self.ignored += int(answer.get("ignored", 0))


def open_sender(via: str, gateway_url: str, source_name: str | None, config, environ, *, seed: int = 0
                ) -> GatewaySender:
    """The sender for `pulse simulate --via VIA`: the source named (or the only one of that
    kind) in the configuration's `sources` section, with its secret (ConfigError, or
    ValueError with a message for the user)."""
    from pulse.gateway.sources import gateway_sources

    sources = gateway_sources(config, environ)
    if source_name is not None:
        source = sources.get(source_name)
        if source is None or source.kind != via:
            raise ValueError(f"--source {source_name}: no {via} source of that name in {config.source}")
    else:
        matching = [s for s in sources.values() if s.kind == via]
        if len(matching) != 1:
            raise ValueError(f"{len(matching)} {via} sources in {config.source}: name one with --source")
        source = matching[0]
    first = {p.name: p.stages[0].name for p in config.pipelines.values()}
    return GatewaySender(gateway_url, source, first, seed=seed)
