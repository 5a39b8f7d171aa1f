"""GET routes answered in the turn of the event loop that reads the request.

aiohttp (under Faust's web server) answers a request in three turns of the loop on Python
3.11: the protocol's `data_received` parses it and wakes the connection's task; that task
makes a task for the handler; the handler's task runs and writes the response. While the
worker consumes at full speed a turn holds a batch of events (~3-8 ms) and every other ready
step, so a scrape of GET /metrics waited ~3 turns: p99 ~27 ms (bench/README.md).

A `FastPathHandler` answers a few chosen routes (`FastRoutes`) inside `data_received`,
from bytes the route already has (GET /metrics: the snapshot's gauges and the processing
metrics), and hands every other request to aiohttp unchanged. It only takes a request
aiohttp could not tell from its own answer:
- a whole GET request in one read, with no body, while aiohttp's connection task waits for
  the next request (its `_waiter` pending: every earlier request answered, its body read to
  the end, nothing queued), so responses stay in request order and a body aiohttp has not
  read yet (which may look like a request) is never taken for one;
- on a connection where aiohttp was only ever given whole bodiless requests, one per read:
  after anything else (a body, pipelined requests, a request split over reads) the fast path
  is off for the connection, because aiohttp's C parser can then keep unparsed bytes that no
  Python-visible state shows (its `_tail`, once it paused itself at its in-flight limit);
- headers aiohttp would accept the same way (CRLF line ends only, token header names, one
  Host, no header twice, at most MAX_HEADERS: agents/http_parse.py, which the scrape front
  shares) and none that announces a body or a change of
  protocol; HTTP/1.1 without `Connection: close` or `Proxy-Connection: close` (the connection
  stays open, as aiohttp would keep it);
- a client that reads its answers: nothing waiting in the transport's write buffer and
  writing not paused (otherwise aiohttp's handler answers, with its flow control);
- a route that has an answer now: a route returns None (e.g. no snapshot yet) to let its
  aiohttp handler answer, which may wait for a build.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable
from urllib.parse import parse_qsl

from aiohttp.web_protocol import RequestHandler
from aiohttp.web_runner import TCPSite
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from . import scrape_front
from .http_parse import MAX_REQUEST, fast_request, one_bodiless_request, one_header_block, response

log = logging.getLogger("pulse.worker")

__all__ = ["FastRoutes", "FastPathHandler", "PulseWeb", "PRIVATE_ATTRIBUTES", "simple_query"]

# aiohttp's private names used here (the overridden methods are pinned in faust_compat.OVERRIDDEN):
# tests/agents/test_fast_http.py checks each still exists on a live connection's handler.
PRIVATE_ATTRIBUTES = {
    "handler": ("_messages", "_request_in_progress", "_waiter", "_force_close", "_close", "_upgraded", "_keepalive",
                "_keepalive_timeout", "_next_keepalive_close_time", "_keepalive_handle", "_process_keepalive",
                "_loop"),
    "server": ("_kwargs", "_loop"),
}


class FastRoutes:
    """The routes a FastPathHandler answers: path -> (content type, answer), where answer()
    returns the body, or None to let aiohttp's handler of the same path answer. A route added
    with `query=True` is called with the request's query string (the bytes after "?", b"" if
    none), still percent-encoded (`simple_query` decodes it as aiohttp would)."""

    def __init__(self) -> None:
        self.routes: dict[bytes, tuple[bytes, Callable[..., bytes | None], bool]] = {}
        self.answered = 0       # requests answered in the protocol (tests, bench)
        # GET /metrics answered by a process of its own, when set before the site starts
        self.front: scrape_front.ScrapeFront | None = None

    def add(self, path: str, content_type: str, answer: Callable[..., bytes | None], *, query: bool = False) -> None:
        self.routes[path.encode()] = (content_type.encode(), answer, query)


def simple_query(query: bytes) -> dict[str, str] | None:
    """A query string as aiohttp's `request.query` reads it (percent-decoded, UTF-8, blank
    values kept), for the queries that reads unambiguously: None (let aiohttp answer) for a
    "+" (yarl reads it as a space, urllib too, but not every client means one), a key given
    twice (aiohttp's `get` takes the first), or bytes that are not valid UTF-8 once decoded."""
    if not query:
        return {}
    if b"+" in query:
        return None
    out: dict[str, str] = {}
    try:
        for key, value in parse_qsl(query.decode("ascii"), keep_blank_values=True, strict_parsing=False,
                                    encoding="utf-8", errors="strict"):
            if key in out:
                return None
            out[key] = value
    except (UnicodeDecodeError, ValueError):
        return None
    return out


class FastPathHandler(RequestHandler):
    """aiohttp's protocol for one connection, answering `routes` itself (module docstring)."""

    # Set once aiohttp was given a read that was not one whole bodiless request: its parser may
    # then hold bytes the fast path cannot see (module docstring), so it stays off.
    _pulse_off = False

    def __init__(self, manager, *, routes: FastRoutes, **kwargs):
        super().__init__(manager, **kwargs)
        self._pulse_routes = routes.routes
        self._pulse_fast = routes

    def data_received(self, data: bytes) -> None:
        if (not self._pulse_off and self._pulse_routes and data[:4] == b"GET "
                and len(data) <= MAX_REQUEST and one_header_block(data)
                and self._pulse_idle() and self._pulse_answer(data)):
            return
        # (aiohttp calls data_received(b"") itself, to reparse what it buffered: not a read)
        if data and not self._pulse_off and not one_bodiless_request(data):
            self._pulse_off = True
        super().data_received(data)

    def _pulse_idle(self) -> bool:
        """aiohttp waits for the next request at a message boundary. Its connection task sets
        `_waiter` only at the top of its loop with no message queued, after the previous
        request's handler finished and its body was read (or the connection closed): between
        popping a message and its handler running, and while it reads an unread body, there is
        no pending waiter. A client that does not read its answers is left to aiohttp."""
        waiter = self._waiter
        transport = self.transport
        return (waiter is not None and not waiter.done() and not self._messages
                and not self._request_in_progress and not self._force_close and not self._close
                and not self._upgraded and transport is not None and not self.writing_paused
                and transport.get_write_buffer_size() == 0)

    def _pulse_answer(self, data: bytes) -> bool:
        """Answer `data`, one header block (one_header_block), if the request is one to take."""
        found = fast_request(data, self._pulse_routes)
        if found is None:
            return False
        (content_type, answer, takes_query), query = found
        try:
            body = answer(query) if takes_query else answer()
        except Exception:       # noqa: BLE001 - aiohttp's handler answers (and reports) instead
            log.debug("fast route %r failed; aiohttp answers", data.split(b" ", 2)[1], exc_info=True)
            return False
        if body is None:
            return False
        self.transport.write(response(content_type, body))
        self._pulse_kept_alive()
        self._pulse_fast.answered += 1
        return True

    def _pulse_kept_alive(self) -> None:
        # What aiohttp's start() does after a kept-alive response: idle connections still close
        # after keepalive_timeout.
        self._keepalive = True
        if self._keepalive_timeout > 0:
            self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
            if self._keepalive_handle is None:
                self._keepalive_handle = self._loop.call_at(self._next_keepalive_close_time,
                                                            self._process_keepalive)


class _FastSite(TCPSite):
    """aiohttp's TCPSite, serving connections with FastPathHandler."""

    def __init__(self, runner, host, port, *, routes: FastRoutes, **kwargs):
        super().__init__(runner, host, port, **kwargs)
        self._pulse_routes = routes

    async def start(self) -> None:
        await super(TCPSite, self).start()      # BaseSite.start: registers the site with the runner
        server = self._runner.server
        assert server is not None
        routes = self._pulse_routes

        def protocol() -> FastPathHandler:
            return FastPathHandler(server, loop=server._loop, routes=routes, **server._kwargs)
        loop = asyncio.get_running_loop()
        front = self._pulse_routes.front
        self._server = None
        if front is not None and self._ssl_context is None and scrape_front.available():
            # GET /metrics answered by a process of its own, off this process's GIL (agents/scrape_front.py)
            sockets = scrape_front.listening_sockets(self._host, self._port, backlog=self._backlog,
                                                     reuse_address=self._reuse_address, reuse_port=self._reuse_port)
            try:
                front.start(loop, protocol, sockets, keepalive_s=server._kwargs.get(
                    "keepalive_timeout", scrape_front.aiohttp_keepalive_s()))
                self._server = front        # what BaseSite.stop closes, as it would an asyncio.Server
            except Exception as exc:        # noqa: BLE001 - e.g. no writable temporary folder: the loop serves
                log.warning("the scrape front could not start (%s): GET /metrics is answered on the event loop", exc)
                for sock in sockets:
                    sock.close()
        if self._server is None:
            self._server = await loop.create_server(
                protocol, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
                reuse_address=self._reuse_address, reuse_port=self._reuse_port)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


class PulseWeb(AiohttpWeb):
    """Faust's aiohttp web driver, whose TCP server answers `fast_routes` in the protocol."""

    def __init__(self, app, **kwargs):
        super().__init__(app, **kwargs)
        self.fast_routes = FastRoutes()

    def _new_transport_tcp(self) -> TCPSite:
        conf = self.app.conf
        return _FastSite(self._runner, conf.web_bind, conf.web_port, ssl_context=conf.web_ssl_context,
                         routes=self.fast_routes)
