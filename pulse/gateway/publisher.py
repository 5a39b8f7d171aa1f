"""The gateway's Kafka producer: acks from all in-sync replicas, keyed by lead_id.

`publish` hands every message of a request to the producer and returns once the broker
acknowledged them all (the caller bounds the wait: SPEC 8.3's 4 s). The producer asks
for idempotence; a broker that refuses it (the embedded Tansu answers aiokafka's
InitProducerId with an error) gets a plain acks=all producer and a warning: a retried
batch may then be written twice, which the worker drops as a duplicate (same event_id).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Sequence

from pulse.schemas import topics
from pulse.kafka.broker import bootstrap_servers

log = logging.getLogger("pulse.gateway")

Record = tuple[str, bytes | None, bytes, list[tuple[str, bytes]] | None]   # topic, key, value, headers


class NotConnected(RuntimeError):
    pass


class Publisher:
    def __init__(self, broker: str, prefix: str = "", *, linger_ms: int = 2, retry_every: float = 1.0):
        self.servers = bootstrap_servers(broker)
        self.names = topics.topic_names(prefix)
        self.topic_of_type = {typ: self.names[t] for typ, t in topics.TOPIC_OF_TYPE.items()}
        self.fallback = self.names[topics.FALLBACK_TOPIC]
        self.deadletter = self.names[topics.DEADLETTER]
        self.linger_ms = linger_ms
        self.retry_every = retry_every
        self.idempotent: bool | None = None
        self._producer = None
        self.connected = asyncio.Event()
        self.last_problem = ""

    def topic(self, event_type: str | None) -> str:
        return self.topic_of_type.get(event_type, self.fallback) if event_type else self.fallback

    async def _start_producer(self, idempotent: bool):
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.servers, client_id="pulse-gateway", acks="all",
                                    enable_idempotence=idempotent, linger_ms=self.linger_ms,
                                    request_timeout_ms=30000, max_batch_size=512 * 1024)
        sender_log = logging.getLogger("aiokafka.producer.sender")
        level = sender_log.level
        if idempotent:                  # its refusal is logged once, below, in words
            sender_log.setLevel(logging.CRITICAL)
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        finally:
            sender_log.setLevel(level)
        return producer

    async def connect_forever(self) -> None:
        """Connect (retrying every `retry_every` s) until the producer is up and the
        topics exist; the HTTP side answers 503 meanwhile."""
        from aiokafka.errors import KafkaConnectionError, KafkaError

        while self._producer is None:
            try:
                try:
                    wanted = self.idempotent is not False     # asked again only until refused once
                    producer = await self._start_producer(wanted)
                    self.idempotent = wanted
                except KafkaConnectionError:
                    raise
                except KafkaError as exc:
                    if self.idempotent is False:
                        raise
                    log.warning("the broker refused an idempotent producer (%s); publishing with acks=all "
                                "without idempotence: a retried batch may be written twice, the worker "
                                "drops the copy as a duplicate", type(exc).__name__)
                    self.idempotent = False
                    producer = await self._start_producer(False)
                missing = await self._missing_topics(producer)
                if missing:
                    await producer.stop()
                    raise NotConnected(f"topics not found on the broker: {', '.join(missing)} (wrong "
                                       "--topic-prefix? the worker creates them when it starts)")
                self._producer = producer
                self.connected.set()
                log.info("connected to the broker at %s (idempotent producer: %s)", ",".join(self.servers),
                         "yes" if self.idempotent else "no")
            except (KafkaError, NotConnected, OSError) as exc:
                problem = str(exc) or type(exc).__name__
                if problem != self.last_problem:
                    log.warning("broker not ready: %s; retrying every %g s", problem, self.retry_every)
                    self.last_problem = problem
                await asyncio.sleep(self.retry_every)

    async def _missing_topics(self, producer) -> list[str]:
        needed = [self.names[t] for t in topics.INPUT_TOPICS] + [self.deadletter]
        metadata = await producer.client.fetch_all_metadata()
        existing = metadata.topics()
        return [t for t in needed if t not in existing]

    async def publish(self, records: Sequence[Record]) -> None:
        """Send every record and wait for all acknowledgements (raises on any failure)."""
        producer = self._producer
        if producer is None:
            raise NotConnected(self.last_problem or "not connected to the broker yet")
        futures = [await producer.send(topic, value, key=key, headers=headers)
                   for topic, key, value, headers in records]
        if futures:
            await asyncio.gather(*futures)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        self.connected.clear()
        if producer is not None:
            await producer.stop()


def deadletter_headers(reason: str, detail: str, source: str) -> list[tuple[str, bytes]]:
    """The worker's dead-letter header names (agents/live.py) plus the gateway source."""
    return [("pulse.reason", reason.encode()), ("pulse.detail", detail.encode("utf-8", "replace")),
            ("pulse.source.gateway", source.encode("utf-8", "replace"))]
