"""The Kafka producer of `pulse replay` and `pulse simulate`: routing of raw input lines to
their topics (SPEC 1) on one tuned, idempotent KafkaProducer with per-topic counts, the
exit codes both commands share, and the Ctrl-C/SIGTERM flag that stops them between two
messages."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator

import orjson

from pulse.kafka.broker import BrokerUnreachable, bootstrap_servers, wait_for_broker
from pulse.schemas.topics import FALLBACK_TOPIC, INPUT_TOPICS, SEQ_HEADER, TOPIC_OF_TYPE, topic_names

EXIT_OK = 0
EXIT_FAILED = 1        # some messages were not acknowledged by the broker
EXIT_USAGE = 2         # bad option, unreadable file, unreachable broker
EXIT_INTERRUPTED = 130

CONNECT_TIMEOUT = 5.0  # seconds to wait for a first broker answer
METADATA_TIMEOUT = 15.0
FLUSH_TIMEOUT = 60.0


class PublishError(Exception):
    """A setup failure that maps to exit code 2 (message for stderr)."""


class Refused(Exception):
    """The producer refused one message synchronously (counted as failed by the caller)."""

    def __init__(self, topic: str, error: str):
        super().__init__(error)
        self.topic = topic
        self.error = error


def _loads_fallback(raw: bytes, error: str):
    """What orjson refuses is decided by the parser's strict standard-library path
    (so a line the worker accepts is routed by its type, e.g. one with a 2^70 integer)."""
    from pulse.schemas.strict_json import strict_loads

    return strict_loads(raw, error)


class Publisher:
    """Routes raw input lines to their topics and publishes them (one KafkaProducer)."""

    def __init__(self, broker: str, prefix: str = "", *, client_id: str = "pulse-replay",
                 connect_timeout: float = CONNECT_TIMEOUT, linger_ms: int = 20, batch_size: int = 256 * 1024):
        try:
            self.servers = bootstrap_servers(broker)
        except ValueError as exc:
            raise PublishError(f"--broker {broker!r}: {exc}") from None
        try:
            wait_for_broker(self.servers, connect_timeout)
        except BrokerUnreachable as exc:
            raise PublishError(f"cannot reach the Kafka broker at {','.join(self.servers)}: {exc}") from None

        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        try:
            self.producer = KafkaProducer(
                bootstrap_servers=self.servers, client_id=client_id,
                acks="all", enable_idempotence=True,      # ordered per partition even across retries
                linger_ms=linger_ms, batch_size=batch_size, max_block_ms=int(METADATA_TIMEOUT * 1000),
                allow_auto_create_topics=False,   # a broker default partition count breaks co-partitioning
            )
        except KafkaError as exc:
            raise PublishError(f"cannot connect to the Kafka broker at {','.join(self.servers)}: {exc}") from None
        self.names = topic_names(prefix)
        self._of_type = {typ: self.names[t] for typ, t in TOPIC_OF_TYPE.items()}
        self.fallback = self.names[FALLBACK_TOPIC]
        self.input_topics = [self.names[t] for t in INPUT_TOPICS]
        self.sent = {t: 0 for t in self.input_topics}      # handed to the producer, per topic
        self.failed = {t: 0 for t in self.input_topics}    # reported failed by the producer
        self.untyped = 0                                   # lines routed to the fallback topic
        self.seq = 0                                       # messages numbered in publishing order
        self.first_error: str | None = None
        self._lock = threading.Lock()
        self._errbacks = {t: self._make_errback(t) for t in self.input_topics}
        self._send = self.producer.send
        self._kafka_error = KafkaError

    # -- setup checks
    def check_topics(self) -> list[str]:
        """Fail (PublishError) unless the four input topics exist; return warnings
        (unequal partition counts). Topics are not auto-created: the broker's default
        partition count would break co-partitioning."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.servers, client_id="pulse-admin",
                                     request_timeout_ms=int(METADATA_TIMEOUT * 1000))
            try:
                existing = set(admin.list_topics())
            finally:
                admin.close()
        except KafkaError as exc:
            raise PublishError(f"cannot list the broker's topics: {exc}") from None
        missing = [t for t in self.input_topics if t not in existing]
        if missing:
            raise PublishError(f"topic{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                               "not found on the broker (wrong --topic-prefix? the worker creates "
                               "the topics when it starts)")
        counts = {}
        for topic in self.input_topics:
            try:
                counts[topic] = len(self.producer.partitions_for(topic) or ())
            except KafkaError as exc:
                raise PublishError(f"no metadata for topic {topic!r}: {exc}") from None
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{t}: {n}" for t, n in counts.items())
            return [f"the input topics have different partition counts ({detail}); "
                    "SPEC 1 requires them to be co-partitioned"]
        return []

    # -- routing and sending
    def route(self, line: bytes) -> tuple[str, bytes | None, bool]:
        """(topic, key, typed) of one input line; `typed`: a JSON object with a known type."""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            obj = _loads_fallback(line, str(exc))
        if obj.__class__ is not dict:
            return self.fallback, None, False
        key = None
        lead_id = obj.get("lead_id")
        if lead_id.__class__ is str:
            try:
                key = lead_id.encode("utf-8")
            except UnicodeEncodeError:      # unpaired surrogate: invalid_json anyway
                key = None
        typ = obj.get("type")
        topic = self._of_type.get(typ) if typ.__class__ is str else None
        if topic is None:
            return self.fallback, key, False
        return topic, key, True

    def publish(self, line: bytes) -> str:
        """Publish one line; returns its topic. Raises `Refused` for a message the
        producer refuses outright (e.g. larger than its max request size)."""
        topic, key, typed = self.route(line)
        if not typed:
            self.untyped += 1
        self.seq += 1
        try:
            # pulse.seq: the worker's aligner orders same-millisecond records of different topics
            # by it (agents/align.py), so a replay's order is the file's, run after run.
            future = self._send(topic, value=line, key=key, headers=[(SEQ_HEADER, self.seq.to_bytes(8, "big"))])
        except self._kafka_error as exc:
            raise Refused(topic, f"{exc.__class__.__name__}: {exc}") from None
        future.add_errback(self._errbacks[topic])
        self.sent[topic] += 1
        return topic

    def refuse(self, topic: str, error: str) -> None:
        """Count a line the producer refused synchronously (as sent, and failed)."""
        with self._lock:
            self.sent[topic] += 1
            self.failed[topic] += 1
            if self.first_error is None:
                self.first_error = error

    def _make_errback(self, topic: str) -> Callable[[BaseException], None]:
        def errback(exc: BaseException) -> None:
            with self._lock:
                self.failed[topic] += 1
                if self.first_error is None:
                    self.first_error = f"{exc.__class__.__name__}: {exc}"
        return errback

    def flush(self, timeout: float | None = FLUSH_TIMEOUT) -> bool:
        """Wait for every message to be acknowledged (or failed); False on timeout."""
        from kafka.errors import KafkaTimeoutError

        try:
            self.producer.flush(timeout=timeout)
            return True
        except KafkaTimeoutError:
            return False

    def close(self, timeout: float = 10.0) -> None:
        self.producer.close(timeout=timeout)

    # -- reporting
    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    @property
    def total_failed(self) -> int:
        return sum(self.failed.values())

    def published(self) -> dict[str, int]:
        return {t: self.sent[t] - self.failed[t] for t in self.input_topics}

    def summary(self) -> str:
        """e.g. "published 300 messages: 120 to crm.lead-created, 40 to crm.lead-updated, 110 to
        crm.stage-changed, 30 to crm.deal-closed (7 without a known type, on crm.lead-created)"."""
        per = self.published()
        n = sum(per.values())
        text = f"published {n} message{'s' if n != 1 else ''}: " + ", ".join(f"{c} to {t}" for t, c in per.items())
        if self.untyped:
            text += f" ({self.untyped} without a known type, on {self.fallback})"
        if self.total_failed:
            text += f"; {self.total_failed} FAILED ({self.first_error})"
        return text


# --------------------------------------------------------------------------------------
# Ctrl-C / SIGTERM: stop between two messages, flush, report
# --------------------------------------------------------------------------------------

def open_publisher(broker: str, prefix: str, say, **options) -> "Publisher | None":
    """A Publisher whose input topics exist on the broker, or None once `say` has told why (exit 2)."""
    try:
        pub = Publisher(broker, prefix, **options)
    except PublishError as exc:
        say(str(exc))
        return None
    try:
        for warning in pub.check_topics():
            say(f"warning: {warning}")
    except PublishError as exc:
        say(str(exc))
        pub.close(timeout=5.0)
        return None
    return pub


class StopFlag:
    """Set by SIGINT/SIGTERM while installed; a second signal interrupts at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)

    @contextlib.contextmanager
    def installed(self) -> Iterator["StopFlag"]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, _frame):
            if self.event.is_set():          # second signal: give up on a clean stop
                raise KeyboardInterrupt
            self.signal = signum
            self.event.set()

        for s in previous:
            signal.signal(s, handler)
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
