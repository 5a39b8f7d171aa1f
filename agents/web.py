"""The dashboard's HTTP side on the worker's port: the page, its data, and its live stream.

    GET /                       the page (pulse/web/: plain HTML, CSS, JS; nothing fetched from elsewhere)
    GET /dashboard/app.js|.css  its assets
    GET /dashboard/data         ?pipeline=NAME: one pipeline's figures (its report section without
                                the stale list, plus the stale leads' counts by level, owner, team);
                                with &filters=&offset=&limit= also a page of stale leads (`stale`)
    GET /dashboard/stale        ?pipeline=&filters={"owner":..,"team":..,"level":..}&offset=&limit=:
                                a page of stale leads, in the report's order, and how many match
    GET /dashboard/events       server-sent events: `snapshot` (new figures are ready) and `alert`

Everything is answered from the shared snapshot (agents/snapshot.py): the cost of a
request is the size of its answer. While a page is connected to /dashboard/events, one
loop rebuilds the snapshot every refresh interval and tells every page, so ten pages cost
what one does.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import logging
import time
from typing import Any, Callable

import orjson
from aiohttp import web as aioweb

from .alert_feed import AlertFeed
from .fast_http import simple_query
from .snapshot import FORK_SECONDS, Snapshot, Snapshots
from .views import FILTERS, MAX_PAGE

log = logging.getLogger("pulse.worker")

__all__ = ["Dashboard"]

KEEPALIVE_S = 15.0
ALERT_BATCH_S = 1.0     # alerts are sent at most this late, several per write (~100 a write at 2,000 msg/s)
PAGE_ALERTS = 200       # the page keeps the newest 200 alerts (pulse/web/dashboard.js): more per write is never shown
_ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
           "/dashboard/app.js": ("dashboard.js", "text/javascript; charset=utf-8"),
           "/dashboard/app.css": ("dashboard.css", "text/css; charset=utf-8")}
# The page loads nothing from elsewhere, and nothing may load it in a frame.
_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}


class BadRequest(ValueError):
    pass


class _Refused(Exception):
    """A dashboard request answered with an error: its status and document."""

    def __init__(self, status: int, doc: dict):
        super().__init__(status, doc)
        self.status, self.doc = status, doc


def parse_stale_query(query, pipelines) -> tuple[str, dict[str, Any], int, int]:
    """(pipeline, filters, offset, limit) of a /dashboard/stale query; BadRequest names the problem."""
    pipeline = query.get("pipeline") or next(iter(pipelines))
    if pipeline not in pipelines:
        raise BadRequest("unknown pipeline")
    try:
        filters = orjson.loads(query.get("filters") or "{}")
    except orjson.JSONDecodeError:
        raise BadRequest("filters: not JSON") from None
    if not isinstance(filters, dict) or not set(filters) <= set(FILTERS):
        raise BadRequest(f"filters: an object with keys among {', '.join(FILTERS)}")
    for key, value in filters.items():
        if key == "level" and value not in (1, 2, 3):
            raise BadRequest("filters.level: 1, 2 or 3")
        if key != "level" and value is not None and not isinstance(value, str):
            raise BadRequest(f"filters.{key}: a string or null")
    try:
        offset = int(query.get("offset") or 0)
        limit = int(query.get("limit") or 50)
    except ValueError:
        raise BadRequest("offset and limit: integers") from None
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"offset >= 0 and 1 <= limit <= {MAX_PAGE}")
    return pipeline, filters, offset, limit


class Dashboard:
    def __init__(self, snapshots: Snapshots, feed: AlertFeed, pipelines: list[str], *,
                 windows: list[str], report_error: Callable[[Exception], tuple[int, dict]]):
        self.snapshots = snapshots
        self.feed = feed
        self.pipelines = pipelines
        self.windows = windows
        self.report_error = report_error
        self.closing = asyncio.Event()
        self.viewers = 0
        self._wake: asyncio.Future | None = None       # what the open pages wait on (_woken)
        self._refresher: asyncio.Task | None = None
        snapshots.listeners.append(self._wake_pages)
        feed.on_publish = self._wake_pages
        root = importlib.resources.files("pulse") / "web"
        self._assets = {path: (root.joinpath(name).read_bytes(), ctype) for path, (name, ctype) in _ASSETS.items()}

    # -- wiring ----------------------------------------------------------------------------

    def install(self, app) -> None:
        for path in _ASSETS:
            app.page(path)(self._asset_view(path))
        for path, method in (("/dashboard/data", self.data), ("/dashboard/stale", self.stale),
                             ("/dashboard/events", self.events)):
            app.page(path)(_view(method))
        fast_routes = getattr(app.web, "fast_routes", None)      # PulseWeb (agents/fast_http.py)
        if fast_routes is not None:
            fast_routes.add("/dashboard/data", "application/json", self.data_now, query=True)

        @app.on_before_shutdown.connect
        async def close_streams(app_, **kwargs) -> None:
            self.closing.set()
            self._wake_pages()
            await self.feed.stop()

    def _asset_view(self, path: str):
        body, ctype = self._assets[path]

        async def asset(web, request):
            return web.bytes(body, headers={**_HEADERS, "Content-Type": ctype})
        asset.__name__ = "dashboard_" + (path.strip("/").replace("/", "_").replace(".", "_") or "page")
        return asset

    @staticmethod
    def _json(web, body: bytes, status: int = 200):
        return web.bytes(body, content_type="application/json", status=status, headers={"Cache-Control": "no-store"})

    async def _snapshot(self, web):
        try:
            return await self.snapshots.get(), None
        except Exception as exc:
            status, doc = self.report_error(exc)
            return None, self._json(web, orjson.dumps(doc), status)

    # -- endpoints -------------------------------------------------------------------------

    async def data(self, web, request):
        """One pipeline's figures; with a stale query (`limit`, and `filters`, `offset` as
        /dashboard/stale takes them) also that page of stale leads: one request per refresh.
        The page's requests are answered by `data_now` in the turn that reads them; this
        handler answers the rest (errors, no fresh snapshot yet: it waits for the build)."""
        try:
            pipeline, stale_query = self._data_query(dict(request.query))
        except _Refused as exc:
            return self._json(web, orjson.dumps(exc.doc), exc.status)
        snap, error = await self._snapshot(web)
        if error is not None:
            return error
        return self._json(web, self._data_body(snap, pipeline, stale_query))

    def data_now(self, query: bytes) -> bytes | None:
        """GET /dashboard/data answered in the protocol (agents/fast_http.py), as `data` would
        answer it now: a page's refresh then costs no aiohttp request and handler tasks (three
        turns of the loop each). None (aiohttp's handler answers): a query read otherwise by
        aiohttp, an error to answer, or no snapshot fresh enough (`data` waits for the build)."""
        params = simple_query(query)
        if params is None:
            return None
        try:
            pipeline, stale_query = self._data_query(params)
        except _Refused:
            return None
        snap = self.snapshots.peek_fresh()
        return None if snap is None else self._data_body(snap, pipeline, stale_query)

    def _data_query(self, params: dict[str, str]) -> tuple[str, tuple | None]:
        """(pipeline, stale query or None); _Refused with the status and error document."""
        pipeline = params.get("pipeline") or self.pipelines[0]
        if pipeline not in self.pipelines:
            raise _Refused(404, {"error": "unknown pipeline"})
        stale_query = None
        if "limit" in params:
            try:
                stale_query = parse_stale_query({**params, "pipeline": pipeline}, self.pipelines)
            except BadRequest as exc:
                raise _Refused(400, {"error": str(exc)}) from exc
        return pipeline, stale_query

    def _data_body(self, snap: Snapshot, pipeline: str, stale_query) -> bytes:
        views = snap.views
        forks = list(FORK_SECONDS)
        builds = self.snapshots.builds
        build = {"seconds": round(snap.build_seconds, 4), "builds": builds,
                 "seconds_mean": round(self.snapshots.build_seconds_total / builds, 4) if builds else None,
                 "fork_ms_last": round(forks[-1] * 1000, 2) if forks else None,
                 "fork_ms_p50": round(sorted(forks)[len(forks) // 2] * 1000, 2) if forks else None,
                 "fork_ms_max": round(max(forks) * 1000, 2) if forks else None, "forks": len(forks)}
        body = b'{"version":%d,"as_of":%s,"built_at":%s,"age_s":%s,"refresh_s":%s,"build":%s,"pipelines":%s,' \
               b'"windows":%s,"pipeline":%s,"data_quality":%s,"section":%s}' % (
                   snap.version, orjson.dumps(views.as_of), orjson.dumps(snap.built_at),
                   orjson.dumps(round(snap.age(), 3)), orjson.dumps(self.snapshots.fresh_s), orjson.dumps(build),
                   orjson.dumps(self.pipelines),
                   orjson.dumps(self.windows), orjson.dumps(pipeline), views.data_quality,
                   views.pipelines[pipeline].summary)
        if stale_query is not None:
            _, filters, offset, limit = stale_query
            page = views.pipelines[pipeline].stale_page(filters, offset, limit)
            body = body[:-1] + b',"stale":%s}' % page.to_json(limit)
        return body

    async def stale(self, web, request):
        try:
            pipeline, filters, offset, limit = parse_stale_query(request.query, self.pipelines)
        except BadRequest as exc:
            return self._json(web, orjson.dumps({"error": str(exc)}), 400)
        snap, error = await self._snapshot(web)
        if error is not None:
            return error
        page = snap.views.pipelines[pipeline].stale_page(filters, offset, limit)
        return self._json(web, b'{"version":%d,"page":%s}' % (snap.version, page.to_json(limit)))

    async def events(self, web, request):
        response = aioweb.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                                  "X-Accel-Buffering": "no"})
        await response.prepare(request)
        # Every page waits on one shared wake-up (new alerts in the feed's log, new figures, closing)
        # and sends what is new for it in one write per burst: ten pages and hundreds of alerts a
        # second cost one wake-up and one write per page per burst, not one per alert.
        self.feed.watch()
        self._viewer_joined()
        try:
            out = [b"retry: 2000\n\n", *self.feed.recent]
            seen = self.feed.seq
            started = float("-inf")
            while not self.closing.is_set():
                snap = self.snapshots.current
                if snap is not None and snap.started > started:     # new figures, or the same confirmed current
                    started = snap.started
                    out.append(_event("snapshot", orjson.dumps(
                        {"version": snap.version, "as_of": snap.views.as_of, "built_at": snap.built_at,
                         "age_s": round(snap.age(), 3)})))
                out += self.feed.since(seen, PAGE_ALERTS)
                seen = self.feed.seq
                if out:
                    await response.write(b"".join(out))
                    out = []
                current = self.snapshots.current
                if self.feed.seq == seen and (current is None or current.started <= started):   # nothing new yet
                    if not await self._woken(KEEPALIVE_S):
                        out.append(b": keep-alive\n\n")
                        continue
                if self.feed.seq != seen:
                    await asyncio.sleep(ALERT_BATCH_S)      # alerts come in bursts: one write per burst
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.feed.unwatch()
            self._viewer_left()
        with contextlib.suppress(Exception):
            await response.write_eof()
        return response

    async def _woken(self, timeout: float) -> bool:
        """Wait for the next wake-up of the pages; False after `timeout` seconds without one."""
        if self._wake is None:
            self._wake = asyncio.get_running_loop().create_future()
        done, _ = await asyncio.wait({self._wake}, timeout=timeout)
        return bool(done)

    def _wake_pages(self, *_args) -> None:
        wake, self._wake = self._wake, None
        if wake is not None and not wake.done():
            wake.set_result(None)

    # -- the refresh loop: runs while someone watches ---------------------------------------

    def _viewer_joined(self) -> None:
        self.viewers += 1
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.ensure_future(self._refresh_while_watched())

    def _viewer_left(self) -> None:
        self.viewers -= 1

    async def _refresh_while_watched(self) -> None:
        while self.viewers > 0 and not self.closing.is_set():
            fresh_s = self.snapshots.fresh_s            # the interval now: longer while catching up (snapshot.py)
            snap = self.snapshots.current
            if snap is None or snap.age() >= fresh_s:
                try:
                    snap = await self.snapshots.refresh()
                except Exception as exc:    # a peer away: the pages keep the last figures and say how old
                    log.debug("dashboard refresh: %r", exc)
                    await asyncio.sleep(fresh_s)
                    continue
            await asyncio.sleep(max(0.05, self.snapshots.fresh_s - snap.age()))    # as the build set it


def _view(method):
    """A Faust page handler (a function of (view, request)) calling a bound method."""
    async def view(web, request):
        return await method(web, request)
    view.__name__ = f"dashboard_{method.__name__}"
    return view


def _event(name: str, data: bytes) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), data)
