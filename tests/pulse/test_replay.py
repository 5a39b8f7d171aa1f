"""`pulse replay` and `pulse simulate` against the real (embedded) broker, and the
embedded broker itself (SPEC 1 topics and keys, SPEC 5 inputs, SPEC 7.1)."""
from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import time

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from pulse.broker import EmbeddedBroker, bootstrap_servers, free_port, probe
from pulse.cli import main
from pulse.config import load_config
from pulse.schemas.parse import parse_event
from pulse.schemas.types import Rejected
from pulse.synth import generate, parse_start
from pulse.topics import DEAL_CLOSED, INPUT_TOPICS, LEAD_CREATED, STAGE_CHANGED, TOPIC_OF_TYPE

SUMMARY = re.compile(r"published (\d+) messages?: ((?:\d+ to [^\s,]+(?:, )?)+)")


def per_topic(m: re.Match) -> dict[str, int]:
    """The summary's "N to TOPIC, ..." part as {topic: N}."""
    return {topic: int(n) for n, topic in re.findall(r"(\d+) to ([^\s,]+)", m.group(2))}


def java_partition(key: bytes, partitions: int) -> int:
    """The Java client's default partitioner: toPositive(murmur2(key)) % partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def read_all(broker, names: list[str], expected: int, timeout: float = 15.0) -> list:
    """Every record of the topics `names` (all partitions, from the beginning); waits
    until `expected` records are in or `timeout`, then 0.3 s more for strays."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    try:
        tps = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records = []
        deadline = time.monotonic() + timeout
        settle = None
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
            if len(records) >= expected:
                settle = settle or time.monotonic() + 0.3
                if time.monotonic() >= settle:
                    break
        return records
    finally:
        consumer.close()


def _no_constants(name):
    raise ValueError(name)


def expected_route(line: bytes) -> tuple[str, bytes | None, bool]:
    """Independent statement of the routing rule (SPEC 7.1): (topic, key, typed)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:                                  # what orjson refuses but SPEC accepts (big numbers)
            obj = json.loads(line.decode("utf-8"), parse_constant=_no_constants)
        except ValueError:
            obj = None
    if not isinstance(obj, dict):
        return LEAD_CREATED, None, False
    key = obj["lead_id"].encode() if isinstance(obj.get("lead_id"), str) else None
    typ = obj.get("type")
    if isinstance(typ, str) and typ in TOPIC_OF_TYPE:
        return TOPIC_OF_TYPE[typ], key, True
    return LEAD_CREATED, key, False


# --------------------------------------------------------------------------------------
# replay
# --------------------------------------------------------------------------------------

EXTRA_LINES = [
    b"[1, 2, 3]",                                                         # not an object
    b'{"lead_id": "L-typeless", "event_id": "x1"}',                       # no type: keyed, fallback topic
    b'{"type": "lead.deleted", "lead_id": "L-unknown-type"}',             # unknown type
    b'{"type": "deal.closed", "lead_id": 17, "outcome": "won"}',          # known type, no string lead_id
    b'{"type": "lead.stage_changed", "lead_id": "L-\xc3\xa9t\xc3\xa9", "to_stage": "new"}',  # non-ASCII key
    b'{"type":"deal.closed","lead_id":"L-big","amount":123456789012345678901234567890}',  # orjson refuses
    b'\xef\xbb\xbf{"type": "lead.created", "lead_id": "L-bom"}',           # byte-order mark
    b'{"type": "deal.closed", "lead_id": "L-crlf", "outcome": "lost"}\r',  # CRLF file line: \r kept
]


def test_replay_publishes_every_line_once_byte_for_byte(broker, topics, tmp_path, capsys):
    lines = list(generate(leads=50, seed=1, duplicates=0.05, invalid=0.05)) + EXTRA_LINES
    assert len(lines) > 250
    path = tmp_path / "messy.jsonl"
    # blank and whitespace-only lines are not inputs (SPEC 5)
    path.write_bytes(b"\n".join(lines[:100] + [b"", b"  \t"] + lines[100:]) + b"\n\n")
    t = topics(4)

    code = main(["replay", str(path), "--broker", broker.url, "--topic-prefix", t.prefix])
    err = capsys.readouterr().err
    assert code == 0, err

    names = [t.names[n] for n in INPUT_TOPICS]
    records = read_all(broker, names + [t.names["pipeline.notifications"], t.names["pipeline.deadletter"]],
                       len(lines))
    got = collections.Counter((r.topic, r.key, r.value) for r in records)
    routes = [expected_route(line) for line in lines]
    assert routes[-3][:2] == (DEAL_CLOSED, b"L-big")      # valid per SPEC although orjson refuses it
    want = collections.Counter((t.prefix + topic, key, line) for (topic, key, _), line in zip(routes, lines))
    assert got == want                       # each line once, same bytes, right topic and key

    # the key picks the partition exactly as the Java client's default partitioner would
    for r in records:
        if r.key is not None:
            assert r.partition == java_partition(r.key, 4), r
    # per partition, file order is kept (partitions holding only keyed messages)
    by_tp = collections.defaultdict(list)
    for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        by_tp[(r.topic, r.partition)].append(r)
    for (topic, partition), recs in by_tp.items():
        if any(r.key is None for r in recs):
            continue
        in_file = [line for (tp, key, _), line in zip(routes, lines)
                   if t.prefix + tp == topic and key is not None and java_partition(key, 4) == partition]
        assert [r.value for r in recs] == in_file

    # the printed counts are the received ones
    m = SUMMARY.search(err)
    assert m, err
    printed = per_topic(m)
    received = collections.Counter(r.topic for r in records)
    assert printed == {n: received[n] for n in names}
    assert int(m.group(1)) == len(lines)
    untyped = sum(1 for _, _, typed in routes if not typed)
    assert untyped >= len(EXTRA_LINES) - 3
    assert f"({untyped} without a known type, on {t.prefix}{LEAD_CREATED})" in err


def test_java_partitioner_vectors():
    """kafka-python's murmur2 is the Java client's (vectors from Kafka's UtilsTest)."""
    def signed(v):
        return v - (1 << 32) if v >= 1 << 31 else v
    assert signed(murmur2(b"21")) == -973932308
    assert signed(murmur2(b"foobar")) == -790332482
    assert signed(murmur2(b"a-little-bit-long-string")) == -985981536


def test_replay_to_an_unreachable_broker_exits_2_quickly(tmp_path, capsys):
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"type": "lead.created"}\n')
    port = free_port()          # nothing listens there
    start = time.monotonic()
    code = main(["replay", str(path), "--broker", f"kafka://127.0.0.1:{port}", "--connect-timeout", "1"])
    elapsed = time.monotonic() - start
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "cannot reach the Kafka broker" in err and str(port) in err
    assert elapsed < 5


def test_replay_usage_errors_exit_2(broker, tmp_path, capsys):
    assert main(["replay", str(tmp_path / "missing.jsonl"), "--broker", broker.url]) == 2
    assert "no such file" in capsys.readouterr().err
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"type": "lead.created"}\n')
    assert main(["replay", str(path), "--broker", broker.url, "--topic-prefix", "no-such-prefix."]) == 2
    assert "not found on the broker" in capsys.readouterr().err
    assert main(["replay", str(path), "--broker", "http://x:1"]) == 2
    assert "unsupported broker URL scheme" in capsys.readouterr().err


def test_replay_reads_the_environment(broker, topics, tmp_path, capsys, monkeypatch):
    t = topics(2)
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"type": "deal.closed", "lead_id": "L-1"}\n')
    monkeypatch.setenv("PULSE_BROKER", broker.url)
    monkeypatch.setenv("PULSE_TOPIC_PREFIX", t.prefix)
    assert main(["replay", str(path)]) == 0
    assert f"1 to {t.prefix}{DEAL_CLOSED}" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------

def test_simulate_publishes_valid_compressed_time_events(broker, topics, capsys):
    t = topics(4)
    config = load_config(None)
    before = time.time()
    code = main(["simulate", "--broker", broker.url, "--topic-prefix", t.prefix, "--duration", "2",
                 "--speed", "36000", "--seed", "5", "--leads-per-hour", "300", "--no-progress"])
    after = time.time()
    err = capsys.readouterr().err
    assert code == 0, err
    m = SUMMARY.search(err)
    assert m, err
    n = int(m.group(1))
    assert n > 50
    type_of = {t.prefix + topic: typ for typ, topic in TOPIC_OF_TYPE.items()}
    records = read_all(broker, list(type_of), n)
    assert len(records) == n
    earliest, latest = int(before) - 86_400, after + (after - before) * 36_000
    for r in records:
        ev = parse_event(r.value, config, type_of[r.topic])
        assert not isinstance(ev, Rejected), (ev, r.value)
        doc = orjson.loads(r.value)
        assert r.key == doc["lead_id"].encode()
        assert doc["occurred_at"].endswith("Z")
        assert earliest <= parse_start(doc["occurred_at"]) <= latest   # event time: now, sped up
    # ~20 h of event time passed: later stages were reached by some leads
    assert any(r.topic == t.names[STAGE_CHANGED] for r in records)


def test_simulate_stops_cleanly_on_ctrl_c(broker, topics):
    t = topics(4)
    proc = subprocess.Popen([sys.executable, "-m", "pulse.cli", "simulate", "--broker", broker.url,
                             "--topic-prefix", t.prefix, "--speed", "36000", "--leads-per-hour", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out == b""
    m = SUMMARY.search(err.decode())
    assert m, err
    assert len(read_all(broker, [t.names[n] for n in INPUT_TOPICS], int(m.group(1)))) == int(m.group(1))


# --------------------------------------------------------------------------------------
# the embedded broker and broker URLs
# --------------------------------------------------------------------------------------

def test_embedded_broker_starts_answers_and_stops():
    with EmbeddedBroker() as b:
        assert b.url == f"kafka://{b.bootstrap}" and b.bootstrap.startswith("127.0.0.1:")
        probe(b.bootstrap)
        pid = b.pid
        assert b.start_seconds < 5
    assert not b.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)     # reaped: no orphan, no zombie


def test_bootstrap_servers_parses_faust_urls():
    assert bootstrap_servers("kafka://h1:9092;h2:9093") == ["h1:9092", "h2:9093"]
    assert bootstrap_servers("kafka://h1;kafka://h2:1") == ["h1:9092", "h2:1"]
    assert bootstrap_servers("h1:1,h2:2") == ["h1:1", "h2:2"]
    assert bootstrap_servers("kafka://[::1]:9092") == ["[::1]:9092"]
    for bad in ("http://h:1", "kafka://", "kafka://h:0", "kafka://h:x", "kafka://::1:9092"):
        with pytest.raises(ValueError):
            bootstrap_servers(bad)
