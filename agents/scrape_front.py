"""GET /metrics answered by a process of its own, the scrape front, off the worker's GIL.

Why: while the worker consumes at full speed its event loop's thread holds the GIL ~100 % of
the time. A scrape answered in the loop (agents/fast_http.py) waits for the loop's turn, and
one answered on a thread of the worker waits for the GIL at each system call: either way
p99 ~17-25 ms on two cores, p99 > 60 ms in a bad run, where a trivial server in a process of
its own answered the same scraper in p99 ~5 ms (bench/README.md, "The scrape front").

How (`ScrapeFront` in the worker, `serve` in the front process):
- The worker binds its HTTP port (`listening_sockets`, as aiohttp would) and starts the
  front (`python -m pulse.agents.scrape_front`) with the listening sockets and one end of a Unix
  SOCK_SEQPACKET pair. The front accepts every connection and reads nothing it does not answer.
- It looks at each request with MSG_PEEK, which leaves the bytes in the socket. A GET of
  /metrics that the loop's fast path would take (agents/http_parse.py) is answered from the
  exposition the worker published (`ScrapeFront.publish`: a file, replaced atomically) if
  that is at most MAX_AGE_S old. The connection stays with the front for its next request.
- Anything else goes to the worker with its bytes unread: the socket over the pair
  (SCM_RIGHTS), which the worker serves with aiohttp (`loop.connect_accepted_socket`) as
  if it had accepted it: another path, a request split over reads or pipelined, no
  exposition or one too old (the first scrape after a pause: the loop answers it with
  figures rendered then). A connection silent for FIRST_REQUEST_S goes to the worker too.
- A scrape that finds no exposition fresh enough (the first, or after a pause) waits in the
  front while the worker publishes one (WANTED, then PUBLISHED; UNAVAILABLE: the worker
  answers it), so a scraper's kept-alive connection stays with the front.
- The answers are told to the worker (a count, at most one message per REPORT_EVERY_S):
  while it is scraped the worker publishes every PUBLISH_EVERY_S and at each new snapshot,
  and each report may start a build, as a scrape answered by the worker would (agents/app.py).
- Nothing in the front waits on one client: answers are written without blocking (the rest
  when the client reads), connections for the worker queue behind the pair.
- The front exits when the pair closes (the worker stopped) or the worker dies (also while a
  build forked from the worker still holds the pair: PR_SET_PDEATHSIG); it ignores SIGINT and
  SIGTERM, which a terminal or a test sends to the whole group, so the port is served until
  the worker has stopped. If the front dies, the worker serves the port itself on the same
  listening sockets.

What a scraper sees: the same exposition, with the processing counters up to MAX_AGE_S old
(the pipeline gauges were already a snapshot's, up to its refresh interval old).
"""
from __future__ import annotations

import argparse
import collections
import errno
import fcntl
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Awaitable, Callable

from .http_parse import MAX_REQUEST, fast_request, response

if TYPE_CHECKING:       # the front process imports neither (it starts in ~0.1 s, ~20 MB)
    import asyncio

log = logging.getLogger("pulse.worker")

__all__ = ["ScrapeFront", "listening_sockets", "MAX_AGE_S", "PUBLISH_EVERY_S"]

PUBLISH_EVERY_S = 1.0       # the worker's publishing period while scraped
MAX_AGE_S = 2.5             # an older exposition is not served: the worker is asked for one
FIRST_REQUEST_S = 1.0       # a new connection silent this long goes to the worker (e.g. a browser's preconnect)
SEND_TIMEOUT_S = 5.0        # a client that does not read its answer for this long is disconnected
HAND_OVER_TIMEOUT_S = 5.0   # a connection the worker has not taken for this long is closed
FIRST_SCRAPE_WAIT_S = 30.0  # how long a scrape waits for the worker's exposition (then the worker answers it)
REPORT_EVERY_S = 0.25       # the answers are reported to the worker at most this often
ACCEPT_PAUSE_S = 1.0        # out of file descriptors: accepting stops this long (as asyncio's servers do)
STOP_WAIT_S = 2.0           # how long the worker waits for the front to exit when it stops
SCRAPED = b"S"              # front -> worker: S<n>, n GET /metrics answered
CONNECTION = b"C"           # front -> worker: a connection (its socket in SCM_RIGHTS)
WANTED = b"W"               # front -> worker: a scrape waits for an exposition (none, or too old)
PUBLISHED = b"P"            # worker -> front: there is one now
UNAVAILABLE = b"U"          # worker -> front: there will be none (the worker answers those scrapes)
FOLDER_PREFIX = "pulse-scrape-"     # + the worker's pid
LOCK = "lock"               # held (flock) by the worker and its front: a folder whose lock is free is swept
WORKER_DIED = signal.SIGUSR1    # what the kernel sends the front when the worker dies (PR_SET_PDEATHSIG)
_OUT_OF_FDS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


def listening_sockets(host: str | None, port: int, *, backlog: int = 128, reuse_address: bool | None = None,
                      reuse_port: bool | None = None) -> list[socket.socket]:
    """Listening sockets bound as `loop.create_server(host, port)` binds them (every address
    the host resolves to; IPv6 ones IPv6-only; SO_REUSEADDR unless asked not to)."""
    infos = socket.getaddrinfo(host or None, port, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if reuse_address is not False:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, f"error while attempting to bind on address {address!r}: "
                                         f"{(exc.strerror or '').lower()}") from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def available() -> bool:
    """Whether this platform can pass sockets between processes (Linux: SCM_RIGHTS over SEQPACKET)."""
    return sys.platform.startswith("linux") and hasattr(socket, "send_fds") and hasattr(socket, "SOCK_SEQPACKET")


def aiohttp_keepalive_s() -> float:
    """aiohttp's own default keep-alive timeout (an idle connection the front holds closes after it)."""
    import inspect

    from aiohttp.web_protocol import RequestHandler
    return float(inspect.signature(RequestHandler.__init__).parameters["keepalive_timeout"].default)


class ScrapeFront:
    """The worker's half: starts the front process, serves the connections it hands over,
    publishes the exposition. Looks like the asyncio.Server an aiohttp site keeps
    (`sockets`, `close()`)."""

    def __init__(self, content_type: str, *, exposition: Callable[[], Awaitable[bytes | None]],
                 on_scrape: Callable[[], None] = lambda: None, max_age_s: float = MAX_AGE_S):
        """`exposition()`: one to publish now that a scrape waits for it (None: none can be
        had, the worker's own handler answers); `on_scrape()`: the front answered some."""
        self.content_type = content_type
        self.max_age_s = max_age_s
        self.exposition = exposition
        self.on_scrape = on_scrape
        self.sockets: list[socket.socket] = []
        self.answered = 0           # GET /metrics answered by the front (tests, bench)
        self.handed_over = 0        # connections it gave to the worker
        self.published = 0
        self.process: subprocess.Popen | None = None
        self._ctrl: socket.socket | None = None
        self._dir: str | None = None
        self._lock: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._protocol: Callable[[], asyncio.Protocol] | None = None
        self._wanted: asyncio.Task | None = None
        self._fallback: list[asyncio.AbstractServer] = []
        self._closing = False

    @property
    def path(self) -> str | None:
        return None if self._dir is None else os.path.join(self._dir, "metrics.prom")

    def start(self, loop: asyncio.AbstractEventLoop, protocol: Callable[[], asyncio.Protocol],
              sockets: list[socket.socket], *, keepalive_s: float) -> None:
        self._loop, self._protocol, self.sockets = loop, protocol, sockets
        shm = "/dev/shm"        # memory, not disk, where there is one
        base = shm if os.access(shm, os.W_OK) else tempfile.gettempdir()
        _sweep(base)
        self._dir = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-", dir=base)
        ours = theirs = None
        try:
            self._lock = _locked(os.path.join(self._dir, LOCK))
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            fds = [s.fileno() for s in sockets]
            self.process = subprocess.Popen(
                # -P: not the working directory's `pulse` (python -m puts it first), the worker's
                [sys.executable, "-P", "-m", __name__, "--ctrl", str(theirs.fileno()),
                 "--listen", ",".join(map(str, fds)), "--file", self.path, "--content-type", self.content_type,
                 "--max-age", repr(self.max_age_s), "--keepalive", repr(keepalive_s), "--parent", str(os.getpid()),
                 "--lock", str(self._lock)],
                pass_fds=[*fds, theirs.fileno(), self._lock], stdin=subprocess.DEVNULL, close_fds=True)
        except BaseException:
            if ours is not None:
                ours.close()
            self._release()
            raise
        finally:
            if theirs is not None:
                theirs.close()
        ours.setblocking(False)
        self._ctrl = ours
        loop.add_reader(ours, self._on_ctrl)
        log.debug("scrape front started (pid %d)", self.process.pid)

    def is_serving(self) -> bool:
        return self._ctrl is not None and not self._closing

    def publish(self, body: bytes) -> None:
        """The exposition the front serves from now on (until MAX_AGE_S old). Written whole
        to a new file, then renamed over the old one: the front never reads half of one."""
        path = self.path
        if path is None or not self.is_serving():
            return
        tmp = path + ".new"
        with open(tmp, "wb") as f:
            f.write(body)
        os.replace(tmp, path)
        self.published += 1

    def _on_ctrl(self) -> None:
        while self._ctrl is not None:
            try:
                msg, fds, flags, _addr = socket.recv_fds(self._ctrl, 32, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                msg, fds, flags = b"", [], 0
            if flags & getattr(socket, "MSG_CTRUNC", 0):
                log.warning("a connection from the scrape front was lost (out of file descriptors?)")
            if not msg and not fds:
                self._front_gone()
                return
            for fd in fds:
                self._adopt(fd)
            if msg[:1] == SCRAPED:
                self.answered += int(msg[1:] or 1)
                self.on_scrape()
            elif msg == WANTED and self._wanted is None:
                self._wanted = self._loop.create_task(self._publish_wanted())

    async def _publish_wanted(self) -> None:
        published = False
        try:
            body = await self.exposition()
            if body is not None:
                self.publish(body)
                published = True
        except Exception:       # noqa: BLE001 - e.g. no room left: the worker's handler answers those scrapes
            log.warning("GET /metrics: no exposition for the scrape front", exc_info=True)
        finally:
            self._wanted = None
        self._tell(PUBLISHED if published else UNAVAILABLE)

    def _tell(self, msg: bytes) -> None:
        if self._ctrl is not None:
            try:
                self._ctrl.send(msg)
            except OSError:     # full (the front reads it at once) or gone: its scrapes go to the loop in time
                log.debug("the scrape front was not told %r", msg)

    def _adopt(self, fd: int) -> None:
        """Serve a connection the front handed over, with its unread bytes, as aiohttp's own."""
        os.set_inheritable(fd, False)       # (SCM_RIGHTS gives an inheritable descriptor)
        conn = socket.socket(fileno=fd)
        self.handed_over += 1
        conn.setblocking(False)
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._protocol, sock=conn))
        task.add_done_callback(lambda t: _closed_if_failed(t, conn))

    def _front_gone(self) -> None:
        """The pair closed: the front exited. Unless the worker is stopping, it serves its port itself."""
        self._detach()
        if self._closing:
            return
        log.warning("the scrape front exited: the worker serves GET /metrics itself")
        self._loop.create_task(self._serve_here())

    async def _serve_here(self) -> None:
        for sock in self.sockets:
            if self._closing:
                return
            server = await self._loop.create_server(self._protocol, sock=sock)
            self._fallback.append(server)
            if self._closing:
                server.close()

    def _detach(self) -> None:
        if self._wanted is not None:
            self._wanted.cancel()
            self._wanted = None
        if self._ctrl is not None:
            try:
                self._loop.remove_reader(self._ctrl)
            except Exception:       # noqa: BLE001 - the loop may be closed already
                pass
            self._ctrl.close()
            self._ctrl = None

    def close(self) -> None:
        """Stop: the front exits (its pair closed; killed after STOP_WAIT_S), the port closes."""
        if self._closing:
            return
        self._closing = True
        self._detach()
        if self.process is not None:
            try:
                self.process.wait(STOP_WAIT_S)          # the pair closed: it exits
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for server in self._fallback:
            server.close()
        for sock in self.sockets:
            sock.close()
        self._release()

    def _release(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _locked(path: str) -> int:
    """A descriptor of `path` holding its flock: held while the worker or its front lives."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _sweep(base: str) -> None:
    """Remove the folders of fronts that are gone: a worker and its front killed together
    (`kill -9` of the process group) leave theirs behind. A folder is in use while its lock is
    held (whatever pid namespace the holder is in); one without a lock yet is being made."""
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for name in entries:
        if not name.startswith(FOLDER_PREFIX):
            continue
        folder = os.path.join(base, name)
        try:
            fd = os.open(os.path.join(folder, LOCK), os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue            # held: in use
        finally:
            os.close(fd)
        shutil.rmtree(folder, ignore_errors=True)


def _closed_if_failed(task: asyncio.Task, conn: socket.socket) -> None:
    if task.cancelled() or task.exception() is not None:
        log.debug("aiohttp did not take a connection: %r", None if task.cancelled() else task.exception())
        conn.close()


# -- the front process ----------------------------------------------------------------------

class _Exposition:
    """The published exposition, read again only when the file was replaced."""

    def __init__(self, path: str, max_age_s: float):
        self.path, self.max_age_s = path, max_age_s
        self._key: tuple | None = None
        self._body = b""

    def current(self) -> bytes | None:
        """The exposition if it is at most max_age_s old, else None (the worker is asked)."""
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if not 0 <= time.time() - st.st_mtime <= self.max_age_s:      # (a clock set back: asked again)
                    return None
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                if key != self._key:
                    self._body, self._key = f.read(), key
        except FileNotFoundError:
            return None
        return self._body


class _Front:
    """The front's event loop: one thread, nothing blocking (module docstring)."""

    def __init__(self, listening: list[socket.socket], ctrl: socket.socket, exposition: _Exposition,
                 content_type: bytes, keepalive_s: float):
        self.listening, self.ctrl, self.exposition = listening, ctrl, exposition
        self.routes = {b"/metrics": content_type}
        self.keepalive_s = keepalive_s
        self.selector = selectors.DefaultSelector()
        self.held: dict[socket.socket, float] = {}      # connection -> deadline (monotonic)
        self.answered: set[socket.socket] = set()       # ... that had an answer here (idle: kept alive)
        self.sending: dict[socket.socket, memoryview] = {}     # ... whose answer is partly written
        self.waiting: dict[socket.socket, float] = {}   # scrapes waiting for an exposition -> deadline
        # to the worker, in order: (message, connection handed over or None, deadline)
        self.outbox: collections.deque[list] = collections.deque()
        self.unreported = 0             # answers not yet reported
        self.report_at = 0.0            # when the next report may go
        self.accept_again: float | None = None

    def run(self) -> None:
        for sock in self.listening:
            self.selector.register(sock, selectors.EVENT_READ, "listen")
        self.selector.register(self.ctrl, selectors.EVENT_READ, "ctrl")
        while True:
            deadlines = [*self.held.values(), *self.waiting.values()]
            if self.outbox:
                deadlines.append(self.outbox[0][2])
            if self.unreported:
                deadlines.append(self.report_at)
            if self.accept_again is not None:
                deadlines.append(self.accept_again)
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, events in self.selector.select(timeout):
                if key.data == "listen":
                    self._accept(key.fileobj)
                elif key.data == "ctrl":
                    if events & selectors.EVENT_READ and not self._from_worker():
                        return      # the worker closed its end: it stopped or died
                    if events & selectors.EVENT_WRITE:
                        self._flush()
                elif events & selectors.EVENT_WRITE:
                    self._write(key.fileobj)
                else:
                    self._request(key.fileobj)
            self._on_time()

    def _on_time(self) -> None:
        now = time.monotonic()
        for conn, deadline in list(self.held.items()):
            if deadline <= now:
                # idle past the keep-alive timeout after an answer, or not reading its answer: closed;
                # silent since accepted: the worker decides
                self._drop(conn) if conn in self.answered or conn in self.sending else self._hand_over(conn)
        for conn, deadline in list(self.waiting.items()):
            if deadline <= now:
                self._hand_over(conn)
        while self.outbox and self.outbox[0][2] <= now:       # the worker took nothing for that long
            _msg, conn, _deadline = self.outbox.popleft()
            if conn is not None:
                conn.close()
                print("pulse scrape front: the worker took no connection; one closed", file=sys.stderr)
        if self.unreported and now >= self.report_at:
            self._tell(SCRAPED + str(self.unreported).encode())
            self.unreported, self.report_at = 0, now + REPORT_EVERY_S
        if self.accept_again is not None and now >= self.accept_again:
            self.accept_again = None
            for sock in self.listening:
                self.selector.register(sock, selectors.EVENT_READ, "listen")

    def _from_worker(self) -> bool:
        """Read the worker's messages; False once it has closed its end."""
        while True:
            try:
                msg = self.ctrl.recv(16)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not msg:
                return False
            if msg in (PUBLISHED, UNAVAILABLE):
                for conn in list(self.waiting):
                    del self.waiting[conn]
                    self.selector.register(conn, selectors.EVENT_READ, "conn")
                    self.held[conn] = time.monotonic() + FIRST_REQUEST_S
                    self._request(conn, wait=False)     # answered now, or by the worker

    def _accept(self, listening: socket.socket) -> None:
        while True:
            try:
                conn, _address = listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS:        # pending connections wait in the backlog meanwhile
                    print(f"pulse scrape front: accept failed ({exc}); accepting again in {ACCEPT_PAUSE_S} s",
                          file=sys.stderr)
                    for sock in self.listening:
                        self.selector.unregister(sock)
                    self.accept_again = time.monotonic() + ACCEPT_PAUSE_S
                return
            conn.setblocking(False)
            if conn.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)      # as asyncio's transports do
                except OSError:
                    pass
            self.held[conn] = time.monotonic() + FIRST_REQUEST_S
            self.selector.register(conn, selectors.EVENT_READ, "conn")

    def _request(self, conn: socket.socket, *, wait: bool = True) -> None:
        """The next request on `conn`: answered here, or left to wait for the worker's exposition
        (`wait`), or handed to the worker."""
        try:
            data = conn.recv(MAX_REQUEST + 1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:            # the client closed
            self._drop(conn)
            return
        found = fast_request(data, self.routes)
        if found is None:
            self._hand_over(conn)
            return
        body = self.exposition.current()
        if body is None:
            if not wait:
                self._hand_over(conn)
                return
            # A scraper keeps its connection: answer it here once the worker has published.
            if not self.waiting:
                self._tell(WANTED)
            self.selector.unregister(conn)
            del self.held[conn]
            self.waiting[conn] = time.monotonic() + FIRST_SCRAPE_WAIT_S
            return
        try:
            conn.recv(len(data))        # the request peeked: exactly one header block, nothing after it
        except OSError:
            self._drop(conn)
            return
        self.unreported += 1
        self.sending[conn] = memoryview(response(found[0], body))
        self._write(conn)

    def _write(self, conn: socket.socket) -> None:
        """Write what is left of `conn`'s answer; the rest once it can take more."""
        out = self.sending[conn]
        try:
            sent = conn.send(out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:         # the client went
            self._drop(conn)
            return
        if sent < len(out):
            self.sending[conn] = out[sent:]
            if self.selector.get_key(conn).events != selectors.EVENT_WRITE:
                # The whole answer within SEND_TIMEOUT_S of its first write, however slowly it is read.
                self.selector.modify(conn, selectors.EVENT_WRITE, "conn")
                self.held[conn] = time.monotonic() + SEND_TIMEOUT_S
            return
        del self.sending[conn]
        self.selector.modify(conn, selectors.EVENT_READ, "conn")
        self.held[conn] = time.monotonic() + self.keepalive_s
        self.answered.add(conn)

    def _tell(self, msg: bytes, conn: socket.socket | None = None) -> None:
        """A message to the worker, in order; queued while the pair is full."""
        self.outbox.append([msg, conn, time.monotonic() + HAND_OVER_TIMEOUT_S])
        self._flush()

    def _flush(self) -> None:
        while self.outbox:
            msg, conn, _deadline = self.outbox[0]
            try:
                if conn is not None:
                    socket.send_fds(self.ctrl, [msg], [conn.fileno()])
                else:
                    self.ctrl.send(msg)
            except (BlockingIOError, InterruptedError):
                self.selector.modify(self.ctrl, selectors.EVENT_READ | selectors.EVENT_WRITE, "ctrl")
                return
            except OSError:     # the worker is gone: run() sees the pair close
                return
            self.outbox.popleft()
            if conn is not None:
                conn.close()    # the worker has its own copy
        self.selector.modify(self.ctrl, selectors.EVENT_READ, "ctrl")

    def _hand_over(self, conn: socket.socket) -> None:
        self._forget(conn)
        self._tell(CONNECTION, conn)

    def _drop(self, conn: socket.socket) -> None:
        self._forget(conn)
        conn.close()

    def _forget(self, conn: socket.socket) -> None:
        if self.waiting.pop(conn, None) is None:
            self.selector.unregister(conn)
            del self.held[conn]
        self.answered.discard(conn)
        self.sending.pop(conn, None)


def serve(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pulse.agents.scrape_front", description=__doc__.split("\n")[0])
    parser.add_argument("--ctrl", type=int, required=True)
    parser.add_argument("--listen", required=True, help="listening socket fds, comma-separated")
    parser.add_argument("--file", required=True)
    parser.add_argument("--content-type", required=True)
    parser.add_argument("--max-age", type=float, default=MAX_AGE_S)
    parser.add_argument("--keepalive", type=float, default=75.0)
    parser.add_argument("--parent", type=int, required=True, help="the worker's pid")
    parser.add_argument("--lock", type=int, help="the folder's lock, held while the front lives")
    args = parser.parse_args(argv)
    # Ctrl-C, or a SIGTERM sent to the whole group, also reaches the worker, which closes the
    # pair when it has stopped: the port is served until then.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    folder = os.path.dirname(args.file)       # the worker's, made for this front: gone with it

    def worker_died(*_) -> None:
        if os.getppid() != args.parent:         # (SIGUSR1 from anyone else, e.g. mode's stack dump: ignored)
            shutil.rmtree(folder, ignore_errors=True)
            os._exit(0)
    signal.signal(WORKER_DIED, worker_died)
    _die_with_parent(args.parent)
    listening = [socket.socket(fileno=int(fd)) for fd in args.listen.split(",")]
    for sock in listening:
        sock.setblocking(False)
    ctrl = socket.socket(fileno=args.ctrl)
    ctrl.setblocking(False)
    try:
        _Front(listening, ctrl, _Exposition(args.file, args.max_age), args.content_type.encode(), args.keepalive).run()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _die_with_parent(parent: int) -> None:
    """WORKER_DIED when the worker dies, even if another process still holds the worker's end of
    the pair (a build forked from it: agents/snapshot.py). Linux only (`available`). The signal
    follows the thread that started the front: the worker's main thread, which runs its loop."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, WORKER_DIED)          # PR_SET_PDEATHSIG
    if os.getppid() != parent:          # it died before prctl
        os.kill(os.getpid(), WORKER_DIED)


if __name__ == "__main__":
    serve()
