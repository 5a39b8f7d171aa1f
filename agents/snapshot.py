"""Cheap reads: the report built at most once per refresh interval, off the event loop.

GET /report and the dashboard (agents/web.py) read one shared `Snapshot`: the report
document of the whole cluster at one instant, prepared as views (agents/views.py).

- **At most one build per interval, whatever the number of readers.** A snapshot younger
  than `fresh_s` is served as is; an older one (up to `max_age_s`) is served while one
  background build replaces it; older still, the reader waits for that same build.
  Concurrent readers share one in-flight build.
- **Cheap to build.** A worker without peers builds in process: its partitions' sums are
  kept between builds (streams/cluster.py), so a build costs in what changed since the
  previous one; that is taken into the sums in steps of a few milliseconds with the event
  loop running between them (`LivePulse.catch_up_steps`), then the figures are built at one
  instant from the little left (at 130,000 leads ~5 ms after 8,000 events, where the whole
  build held the loop ~25 ms), and nothing is rendered per lead until a reader asks
  (agents/views.py, `FigureViews`). It used to fork a child per build: the fork and the
  copy-on-write faults of every page the worker wrote next cost ten viewers more than 5 %
  of it. While the worker catches up on a backlog, builds are spaced `BACKLOG_FRESH_S`
  apart (`refresh_interval`): each then takes in a large part of the state.
- **Off the event loop, with peers.** A peer's share comes as rows of its open leads
  (streams/partial.py): merging it walks them. `run_forked` forks the worker: the child
  builds from a copy-on-write image of memory frozen at the fork (a consistent snapshot,
  like Redis's BGSAVE), on the other core, and sends back bytes. The loop pays for the
  fork (~10-20 ms at these heap sizes) and for reading the result. Where fork is not
  available the build runs inline.

The caller gives the build function; nothing here knows about Faust.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import fcntl
import gc
import logging
import os
import pickle
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Awaitable, Callable

from .views import FigureViews, Views

log = logging.getLogger("pulse.worker")

__all__ = ["Snapshot", "Snapshots", "run_forked", "refresh_interval", "ForkedBuildError"]

# A snapshot this young is served without a rebuild (the refresh interval): 4 s keeps a page
# within 5 s of the state (4 s, plus a build of ~10-30 ms, plus the page's fetch). While pages
# are open the worker builds once per interval: in process that costs ~10 ms after 2,000
# events since the last build, ~17 ms after 8,000 at 130,000 leads (bench/README.md), so the interval sets
# the fixed part; a forked build (with peers) also costs the worker its copy-on-write faults.
FRESH_S = 4.0
MAX_AGE_S = 5.0     # never served older than this: readers wait for the build instead
# After a read that needs fresh figures (GET /report, the dashboard's data), the snapshot is kept
# fresh this long: rebuilt each time it turns FRESH_S old, whether or not a read comes then. Else a
# reader every 2 s met a snapshot past MAX_AGE_S whenever two reads straddled the 1 s between
# FRESH_S and MAX_AGE_S, and waited for a whole build (0.3-0.75 s forked at full speed).
KEEP_FRESH_S = 5.0
# While the worker catches up on a backlog (more input waiting on the broker than it reads in
# BACKLOG_S at its current rate), the snapshot is rebuilt every BACKLOG_FRESH_S instead (and served
# up to 15 s old). At full speed a build per 4 s takes in ~100,000 changed leads each and, while a
# scraper reads, cost the worker ~8-14 % of its rate (forked or in process); in process a build
# per 12 s takes ~2-4 % of its time at ~240,000 leads (bench/README.md, "A build per 12 s while
# catching up"). The figures are then of a state
# that is itself behind its input by more than BACKLOG_S: the longer interval buys rate where
# freshness means least. A worker that keeps up is back to FRESH_S from its next build.
# A backlog also holds at least BACKLOG_MIN_MESSAGES (~2 s at full speed): a worker just started,
# whose rate since start counts its start-up, or a burst, is not one.
BACKLOG_S = 5.0
BACKLOG_MIN_MESSAGES = 50_000
BACKLOG_FRESH_S = 12.0
IDLE_MAX_S = 30.0   # an unchanged state (same token) is re-confirmed without a build for this long
_CAN_FORK = hasattr(os, "fork") and sys.platform.startswith("linux")
FORK_SECONDS: collections.deque = collections.deque(maxlen=256)    # how long recent forks held the loop


def refresh_interval(waiting: int | None, read_per_s: float) -> float:
    """The refresh interval (s) for a worker with `waiting` input messages on the broker not yet
    read (None: not known) that read `read_per_s` messages a second since its previous build."""
    if waiting is None or waiting <= BACKLOG_MIN_MESSAGES or read_per_s <= 0 or waiting <= read_per_s * BACKLOG_S:
        return FRESH_S
    return BACKLOG_FRESH_S


class ForkedBuildError(RuntimeError):
    pass


async def run_forked(work: Callable[[], bytes]) -> bytes | memoryview:
    """`work()` in a forked child, from the memory image at this instant; its bytes back
    (a memoryview: bytes-like, not hashable).

    The event loop is held only for the fork itself; the result is read as it arrives.
    Only the calling (event loop) thread exists in the child, which runs `work`, writes,
    and leaves with os._exit (no atexit, no finally blocks of the parent's stack).
    """
    if not _CAN_FORK:
        return work()
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:                                            # the child
        status = 1
        try:
            os.close(read_fd)
            signal.set_wakeup_fd(-1)                        # the parent's loop must not see our signals
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            gc.disable()                                    # a collection would touch (copy) every page
            try:
                out, status = b"\x00" + work(), 0
            except BaseException as exc:        # the parent raises the same exception (when it pickles)
                try:
                    out = b"\x02" + pickle.dumps(exc)
                except Exception:
                    out = b"\x01" + traceback.format_exc().encode(errors="replace")
            view = memoryview(out)
            while view:
                view = view[os.write(write_fd, view):]
        finally:
            os._exit(status)
    FORK_SECONDS.append(time.perf_counter() - started)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    with contextlib.suppress(OSError):                      # fewer, larger reads (Linux; 1 MiB is the unprivileged limit)
        fcntl.fcntl(read_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    chunks: list[bytes] = []
    done = loop.create_future()

    def on_readable() -> None:
        try:
            while True:
                chunk = os.read(read_fd, 1 << 20)
                if not chunk:
                    if not done.done():
                        done.set_result(None)
                    return
                chunks.append(chunk)
        except BlockingIOError:
            return
        except OSError as exc:
            if not done.done():
                done.set_exception(exc)

    loop.add_reader(read_fd, on_readable)
    try:
        await done
    finally:
        loop.remove_reader(read_fd)
        os.close(read_fd)
        if not done.done():                                 # cancelled: stop the child
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        await _reap(pid)
    out = memoryview(b"".join(chunks))         # the status byte is skipped without a copy of the rest
    if out[:1] == b"\x00":
        return out[1:]
    if out[:1] == b"\x02":
        raise pickle.loads(out[1:])             # our own child's exception: trusted bytes
    raise ForkedBuildError(bytes(out[1:]).decode(errors="replace") or "the build process died")


async def _reap(pid: int) -> None:
    while True:
        try:
            reaped, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if reaped:
            return
        await asyncio.sleep(0.005)


@dataclass(frozen=True)
class Snapshot:
    version: int            # increases by one per build that changed something
    started: float          # monotonic time the build started (its data is from then)
    built_at: float         # wall clock (unix seconds) of the same instant
    build_seconds: float
    views: Views | FigureViews
    token: object = None    # the state's change token when built (None: unknown)
    confirmed_from: float = 0.0     # monotonic start of the build that produced `views`

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.started


class Snapshots:
    """The shared, periodically rebuilt snapshot. `build()` returns the views to serve, or
    raises (e.g. a peer worker unreachable): then readers get the error, and the last good
    snapshot stays for those that can take it."""

    def __init__(self, build: Callable[[], Awaitable[Views | FigureViews]], *, fresh_s: float = FRESH_S,
                 max_age_s: float = MAX_AGE_S, clock: Callable[[], float] = time.monotonic,
                 token: Callable[[], object] | None = None, keep_fresh_s: float | None = None):
        """`token()`: a cheap value that changes whenever the report could (None when it cannot
        tell, e.g. peers hold part of the state): an unchanged token skips the build.
        `keep_fresh_s` (KEEP_FRESH_S in the worker): how long after a get() without max_age_s
        the snapshot is rebuilt as it turns fresh_s old (None: only reads start builds)."""
        self._build = build
        self._token = token or (lambda: None)
        self.fresh_s, self.max_age_s = fresh_s, max_age_s
        self._max_age_ratio = max_age_s / fresh_s
        self._clock = clock
        self.current: Snapshot | None = None
        self._inflight: asyncio.Task | None = None
        self.builds = 0
        self.build_seconds_total = 0.0
        self._changed = asyncio.Event()
        self._keep_fresh_s = keep_fresh_s
        self._fresh_read_at = float("-inf")
        self._keeper: asyncio.Task | None = None
        # called with each new snapshot (new figures, or the same ones confirmed current)
        self.listeners: list[Callable[[Snapshot], None]] = []

    async def get(self, max_age_s: float | None = None) -> Snapshot:
        """A snapshot no older than max_age_s (default: the instance's; fresh_s when nothing was
        built yet). A reader that can take older figures (GET /metrics: they say their T) passes
        a larger one: it is answered at once while one build replaces them."""
        if max_age_s is None and self._keep_fresh_s is not None:
            self._keep_fresh()
        snap = self.peek(max_age_s)
        return snap if snap is not None else await self.refresh()

    def peek_fresh(self) -> Snapshot | None:
        """`get()` without waiting: what it would return at once (a read that needs fresh
        figures: the keeper kept going), or None where it would wait for a build."""
        if self._keep_fresh_s is not None:
            self._keep_fresh()
        return self.peek()

    def peek(self, max_age_s: float | None = None) -> Snapshot | None:
        """`get()` without waiting: the current snapshot if it is no older than max_age_s (then a
        build replaces it in the background once it is older than fresh_s), else None."""
        snap = self.current
        if snap is not None:
            age = self._clock() - snap.started
            if age <= self.fresh_s:
                return snap
            if age <= (self.max_age_s if max_age_s is None else max_age_s):
                self.refresh_soon()
                return snap
        return None

    def set_interval(self, fresh_s: float) -> None:
        """A new refresh interval (refresh_interval), from the next read or keeper turn on; the
        age past which readers wait for a build moves in proportion (4 s and 5 s: 12 s and 15 s)."""
        self.fresh_s, self.max_age_s = fresh_s, fresh_s * self._max_age_ratio

    def close(self) -> None:
        """The worker stops: the keeper stops and none starts again, so no build begins on its
        own after this (a read still gets one; a build in flight finishes for its readers)."""
        self._keep_fresh_s = None       # get() then never asks for a keeper
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None

    def _keep_fresh(self) -> None:
        self._fresh_read_at = self._clock()
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.ensure_future(self._keep_fresh_while_read())

    async def _keep_fresh_while_read(self) -> None:
        """Rebuild each time the snapshot turns fresh_s old, until keep_fresh_s after the last
        read that needs fresh figures: such a reader never meets one older than fresh_s plus a
        build (what the dashboard's refresh loop does for open pages: agents/web.py)."""
        while self._clock() - self._fresh_read_at < self._keep_fresh_s:
            snap = self.current
            if snap is None or self._clock() - snap.started >= self.fresh_s:
                try:
                    snap = await self.refresh()
                except Exception as exc:        # the readers get the error; try again an interval later
                    log.debug("snapshot keep-fresh build failed: %r", exc)
                    await asyncio.sleep(self.fresh_s)
                    continue
            await asyncio.sleep(max(0.05, self.fresh_s - (self._clock() - snap.started)))

    def refresh_soon(self) -> None:
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._run())
            self._inflight.add_done_callback(_consume_exception)

    async def refresh(self) -> Snapshot:
        """A build started now or already in flight (shared by every caller)."""
        self.refresh_soon()
        return await asyncio.shield(self._inflight)

    async def _run(self) -> Snapshot:
        try:
            started, wall = self._clock(), time.time()
            token, snap = self._token(), self.current
            if (token is not None and snap is not None and token == snap.token
                    and started - snap.confirmed_from < IDLE_MAX_S):
                self.current = dataclasses.replace(snap, started=started, built_at=wall)   # same figures, now
                self._notify()
                return self.current
            views = await self._build()
            seconds = self._clock() - started
            version = (self.current.version if self.current else 0) + 1
            self.current = Snapshot(version, started, wall, seconds, views, token, started)
            self.builds += 1
            self.build_seconds_total += seconds
            self._notify()
            return self.current
        finally:
            self._inflight = None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        for listener in self.listeners:
            listener(self.current)

    async def wait_newer(self, started: float, timeout: float) -> Snapshot | None:
        """The next snapshot (new figures, or the same ones confirmed current) after the one
        that started at `started`, or None after `timeout` seconds."""
        if self.current is not None and self.current.started > started:
            return self.current
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        return self.current


def _consume_exception(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("snapshot build failed: %r", task.exception())
