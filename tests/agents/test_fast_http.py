"""agents/fast_http.py: chosen GET routes answered in the protocol, everything else by aiohttp,
over real sockets on loopback (an aiohttp server, raw HTTP/1.1 and aiohttp's client)."""
from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from pulse.agents.fast_http import PRIVATE_ATTRIBUTES, FastPathHandler, FastRoutes, _FastSite

FAST = b"fast 1\n"


async def _serve(routes: FastRoutes, keepalive_timeout: float = 75.0):
    async def slow_metrics(request):
        return web.Response(body=b"aiohttp " + request.method.encode(), content_type="text/plain")

    async def other(request):
        return web.Response(body=b"other", content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", slow_metrics)
    app.router.add_get("/other", other)
    runner = web.AppRunner(app, keepalive_timeout=keepalive_timeout)
    await runner.setup()
    site = _FastSite(runner, "127.0.0.1", 0, routes=routes)
    await site.start()
    return runner, site.port


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    headers = {}
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


def _request(path: str, *headers: str, method: str = "GET", version: str = "HTTP/1.1") -> bytes:
    return "\r\n".join([f"{method} {path} {version}", "Host: 127.0.0.1", *headers, "", ""]).encode()


def _routes(answer=lambda: FAST) -> FastRoutes:
    routes = FastRoutes()
    routes.add("/metrics", "text/plain; version=0.0.4", answer)
    return routes


def test_the_route_is_answered_in_the_protocol_and_the_rest_by_aiohttp_on_one_connection():
    async def scenario():
        routes = _routes()
        runner, port = await _serve(routes)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            answers = []
            for path in ("/metrics", "/other", "/metrics?name=x", "/missing", "/metrics"):
                writer.write(_request(path))
                answers.append(await _read_response(reader))
            writer.close()
            return routes.answered, answers
        finally:
            await runner.cleanup()
    answered, answers = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert answered == 3
    assert [(status, body) for status, _, body in answers] == [
        (200, FAST), (200, b"other"), (200, FAST), (404, b"404: Not Found"), (200, FAST)]
    assert answers[0][1]["content-type"] == "text/plain; version=0.0.4"
    assert "server" in answers[1][1] and "server" not in answers[0][1]


def test_requests_it_cannot_answer_exactly_as_aiohttp_would_go_to_aiohttp():
    """None from the route, a failing route, HEAD, HTTP/1.0, Connection: close, a body, and a
    request whose headers arrive in two reads: aiohttp's handler answers each."""
    def failing():
        raise RuntimeError("no figures")

    async def one(routes: FastRoutes, *chunks: bytes):
        runner, port = await _serve(routes)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
                await asyncio.sleep(0.05)
            status, headers, body = await _read_response(reader)
            writer.close()
            return routes.answered, status, body
        finally:
            await runner.cleanup()

    async def scenario():
        split = _request("/metrics")
        return [await one(_routes(lambda: None), _request("/metrics")),
                await one(_routes(failing), _request("/metrics")),
                await one(_routes(), _request("/metrics", version="HTTP/1.0")),
                await one(_routes(), _request("/metrics", "Connection: close")),
                await one(_routes(), _request("/metrics", "Content-Length: 2") + b"{}"),
                await one(_routes(), split[:20], split[20:])]
    results = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert results == [(0, 200, b"aiohttp GET")] * 6


def test_pipelined_requests_are_answered_in_order():
    async def scenario():
        routes = _routes()
        runner, port = await _serve(routes)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_request("/other") + _request("/metrics") + _request("/other"))
            answers = [await _read_response(reader) for _ in range(3)]
            writer.write(_request("/metrics"))         # nothing pending any more: answered in the protocol
            answers.append(await _read_response(reader))
            writer.close()
            return routes.answered, [body for _, _, body in answers]
        finally:
            await runner.cleanup()
    answered, bodies = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert bodies == [b"other", b"aiohttp GET", b"other", FAST]
    assert answered == 1


def test_an_http_client_keeps_its_connection_and_idle_connections_still_close():
    async def scenario():
        routes = _routes()
        runner, port = await _serve(routes, keepalive_timeout=0.3)
        try:
            async with aiohttp.ClientSession() as session:
                bodies = []
                for _ in range(3):
                    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                        bodies.append((response.status, await response.read()))
                connections = len(runner.server.connections)
            # A request every 0.1 s for 1 s keeps the connection open past keepalive_timeout (0.3 s)...
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            kept = []
            for _ in range(10):
                writer.write(_request("/metrics"))
                kept.append((await _read_response(reader))[2])
                await asyncio.sleep(0.1)
            # ... and once idle for keepalive_timeout, the server closes it.
            closed_by_server = await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
            return routes.answered, bodies, connections, kept, closed_by_server
        finally:
            await runner.cleanup()
    answered, bodies, connections, kept, closed_by_server = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert bodies == [(200, FAST)] * 3 and kept == [FAST] * 10 and answered == 13
    assert connections == 1             # three requests, one kept-alive connection
    assert closed_by_server


def test_the_private_parts_of_aiohttp_it_uses_are_still_there():
    async def scenario():
        runner, port = await _serve(_routes())
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_request("/metrics"))
            await _read_response(reader)
            (handler,) = runner.server.connections
            writer.close()
            return runner.server, handler
        finally:
            await runner.cleanup()
    server, handler = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert isinstance(handler, FastPathHandler)
    for what, target in (("handler", handler), ("server", server)):
        missing = [name for name in PRIVATE_ATTRIBUTES[what] if not hasattr(target, name)]
        assert not missing, f"aiohttp's {what} has no {missing} any more: agents/fast_http.py uses them"
