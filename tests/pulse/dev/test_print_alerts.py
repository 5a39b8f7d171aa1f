"""`pulse dev`'s alert printer stops at its deadline even when alerts never pause.

Unit test with a stand-in consumer: the real one is exercised by test_dev.py. The bug it guards:
`for message in KafkaConsumer(consumer_timeout_ms=500)` restarts its timeout at every message,
so a worker raising alerts more often than every 500 ms kept `pulse dev --duration` running forever.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import orjson
import pytest

from pulse.dev.command import print_alerts


class EndlessAlerts:
    """Answers every poll with one alert after `gap_s`, like a busy notifications topic."""

    def __init__(self, gap_s: float = 0.01) -> None:
        self.gap_s = gap_s
        self.polls = 0

    def poll(self, timeout_ms: int) -> dict:
        self.polls += 1
        time.sleep(self.gap_s)
        alert = {"severity": "warning", "type": "lead.stale", "summary": f"alert {self.polls}"}
        return {("pipeline.notifications", 0): [SimpleNamespace(value=orjson.dumps(alert))]}


class Running:
    returncode = None

    def poll(self):
        return None


class Exited(Running):
    returncode = 3

    def poll(self):
        return 3


def test_a_steady_stream_of_alerts_does_not_outlast_the_deadline(capsys):
    consumer = EndlessAlerts()
    t0 = time.monotonic()
    print_alerts(consumer, [Running()], until=t0 + 0.3)
    took = time.monotonic() - t0
    assert 0.3 <= took < 0.3 + 0.5            # one poll past the deadline at most, however busy
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == consumer.polls > 5
    assert lines[0] == "[ warning] lead.stale           alert 1"


def test_quiet_reads_but_prints_nothing(capsys):
    consumer = EndlessAlerts()
    print_alerts(consumer, [Running()], until=time.monotonic() + 0.1, quiet=True)
    assert consumer.polls >= 1 and capsys.readouterr().out == ""


def test_a_component_that_exits_stops_it_with_its_code():
    with pytest.raises(RuntimeError, match="exited with code 3"):
        print_alerts(EndlessAlerts(), [Running(), Exited()], until=None)
