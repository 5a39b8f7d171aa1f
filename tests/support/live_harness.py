"""Running real `pulse worker` and `pulse replay` processes against the embedded broker, and
reading what they wrote, for integration tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from kafka import KafkaConsumer

from pulse.kafka.broker import create_topics, free_port
from pulse.config import load_config
from pulse.streams.report import build_report
from pulse.schemas.topics import topic_names


class WorkerProcess:
    """`pulse worker` in its own process (so a test can kill -9 it), event clock, dev profile."""

    def __init__(self, broker_url: str, prefix: str, app_id: str, log_dir: Path, partitions: int = 4,
                 extra_env: dict | None = None):
        self.port = free_port()
        self.log_path = log_dir / f"worker-{self.port}.log"
        self.argv = [sys.executable, "-m", "pulse.cli", "worker", "--broker", broker_url,
                     "--topic-prefix", prefix, "--app-id", app_id, "--clock", "event", "--profile", "dev",
                     "--web-port", str(self.port), "--partitions", str(partitions),
                     "--data-dir", str(log_dir / f"data-{self.port}"), "--log-level", "warn"]
        self.env = {**os.environ, "PULSE_ADVERTISED_HOST": "127.0.0.1", **(extra_env or {})}
        # Not the repository: `python -m` puts the working directory first on sys.path, so a worker
        # started in the repository's root imports its pulse/ whatever PYTHONPATH says (a bench's
        # A/B against bench/out/ref-SHA/_pkg would run this tree twice).
        self.cwd = str(log_dir)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "WorkerProcess":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                     cwd=self.cwd, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.status("/health") == 200:
                return self
            time.sleep(0.3)
        raise TimeoutError(f"worker not healthy after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode(errors="replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def status(self, path: str) -> int | None:
        try:
            with urllib.request.urlopen(self.url(path), timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url(path), timeout=10) as r:
            return r.read()

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.url(path), timeout=10) as r:
            return orjson.loads(r.read())

    def report(self) -> dict:
        return self.get_json("/report")

    def wait_consumed(self, events_read: int, timeout: float = 60) -> dict:
        """Poll /report until every input was counted (and stays so for a moment)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                doc = self.report()
            except OSError:
                time.sleep(0.3)
                continue
            if doc["data_quality"]["events_read"] >= events_read:
                if last is not None and doc == last:
                    return doc
                last = doc
            time.sleep(0.5)
        raise TimeoutError(f"consumed {last and last['data_quality']} of {events_read}:\n{self.log_tail()}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def fresh_prefix(broker, partitions: int = 4) -> str:
    """A new topic prefix with the six SPEC 1 topics created under it."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    create_topics(broker.bootstrap, list(topic_names(prefix).values()), partitions)
    return prefix


def replay(broker, prefix, path, *extra) -> subprocess.Popen:
    """`pulse replay` of a file to the topics under `prefix`, in its own process."""
    return subprocess.Popen([sys.executable, "-m", "pulse.cli", "replay", str(path), "--broker", broker.url,
                             "--topic-prefix", prefix, *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def offline_report(path) -> tuple[dict, int]:
    """The report `pulse report` makes of a file (default configuration), and its line count."""
    lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
    return build_report(lines, load_config(None)), len(lines)


def read_topic(broker, name) -> list:
    """Every record of a topic, from the start."""
    consumer = KafkaConsumer(name, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=2000, group_id=None)
    try:
        return list(consumer)
    finally:
        consumer.close()
