"""agents/scrape_front.py: GET /metrics answered by a process of its own, every other request
handed to aiohttp in the worker, over real sockets on loopback and a real front process."""
from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

from aiohttp import web

from pulse.agents.fast_http import FastRoutes, _FastSite
from pulse.agents.scrape_front import MAX_AGE_S, ScrapeFront
from tests.agents.test_fast_http import _app      # aiohttp's own /metrics ("aiohttp GET") and /other

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def _published(body: bytes | None = b"wanted\n"):
    return body


@contextlib.asynccontextmanager
async def _running(front: ScrapeFront | None):
    """The port of a site served with `front`, and the site stopped afterwards."""
    runner, port = await _serve(front)
    try:
        yield port
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def _fronted(exposition=_published, **kwargs):
    """A front, and the port of the site it serves (`_running`)."""
    front = ScrapeFront(CONTENT_TYPE, exposition=exposition, **kwargs)
    async with _running(front) as port:
        yield front, port


async def _serve(front: ScrapeFront | None):
    """An aiohttp server on the worker's site, its fast path answering "fast" for /metrics."""
    routes = FastRoutes()
    routes.add("/metrics", CONTENT_TYPE, lambda: b"fast\n")
    routes.front = front
    runner = web.AppRunner(_app())
    await runner.setup()
    site = _FastSite(runner, "127.0.0.1", 0, routes=routes)
    await site.start()
    return runner, site.port


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes, dict]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read(), dict(response.getheaders())


async def _scraper_of(front: ScrapeFront, port: int) -> http.client.HTTPConnection:
    """A kept-alive connection whose first scrape the front answered (b"front\n")."""
    front.publish(b"front\n")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    assert (await _in_thread(_get, conn, "/metrics"))[1] == b"front\n"
    return conn


async def _in_thread(fn, *args):
    """A blocking client, off the loop that serves it."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_the_front_answers_metrics_it_was_given_and_hands_the_rest_to_aiohttp():
    async def scenario():
        scrapes = []
        async with _fronted(on_scrape=lambda: scrapes.append(1)) as (front, port):
            assert front.process is not None and front.process.poll() is None
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            # Nothing published yet: the front holds the scrape, the worker publishes, the front answers.
            status, body, headers = await _in_thread(_get, conn, "/metrics")
            assert (status, body) == (200, b"wanted\n") and "Server" not in headers
            front.publish(b"front 1\n")
            for _ in range(3):      # kept alive: every scrape stays with the front
                status, body, headers = await _in_thread(_get, conn, "/metrics")
                assert (status, body) == (200, b"front 1\n")
                assert headers["Content-Type"] == CONTENT_TYPE and "Server" not in headers
            front.publish(b"front 2\n")
            assert (await _in_thread(_get, conn, "/metrics"))[1] == b"front 2\n"
            await _until(lambda: front.answered == 5)       # reported in counts, at most 4 times a second
            assert 1 <= len(scrapes) <= 5 and front.handed_over == 0 and front.published == 3

            # Another path on the same connection: handed over with its request unread, and the
            # connection is the worker's from then on.
            status, body, headers = await _in_thread(_get, conn, "/other?x=1")
            assert (status, body) == (200, b"other") and "Server" in headers
            assert (await _in_thread(_get, conn, "/metrics"))[1] == b"fast\n"
            assert front.handed_over == 1
            conn.close()

            # What the fast path does not take goes to aiohttp whole: HEAD, Connection: close, a body.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("HEAD", "/metrics")
            response = await _in_thread(conn.getresponse)
            response.read()
            assert response.status == 200 and "Server" in dict(response.getheaders())
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/metrics", headers={"Connection": "close"})
            assert (await _in_thread(conn.getresponse)).read() == b"aiohttp GET"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/metrics", body=b"{}")
            assert (await _in_thread(conn.getresponse)).read() == b"aiohttp GET"
            conn.close()
            assert front.answered == 5
        assert front.process.poll() is not None             # the front stopped with the site
        assert not os.path.exists(front.path)                # and its exposition is gone
        with socket.socket() as probe:                       # so is the port
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    asyncio.run(scenario())


def test_an_exposition_older_than_the_limit_is_asked_for_again_and_without_one_the_loop_answers():
    async def scenario():
        bodies = [b"again\n", None]

        async def exposition():
            await asyncio.sleep(0.2)        # a build
            return bodies.pop(0)
        async with _fronted(exposition) as (front, port):
            conn = await _scraper_of(front, port)
            for expected in (b"again\n", b"fast\n"):      # the front's, then (none to be had) the loop's
                old = time.time() - MAX_AGE_S - 1
                os.utime(front.path, (old, old))
                assert (await _in_thread(_get, conn, "/metrics"))[1] == expected
            assert (front.answered, front.handed_over) == (2, 1) and not bodies
            conn.close()
    asyncio.run(scenario())


def test_a_scrape_is_answered_while_the_worker_s_loop_is_blocked():
    async def scenario():
        async with _fronted() as (front, port):
            conn = await _scraper_of(front, port)
            answered = []

            def scrape():
                started = time.monotonic()
                body = _get(conn, "/metrics")[1]
                answered.append((body, time.monotonic() - started))
            client = threading.Thread(target=scrape)
            client.start()
            time.sleep(1.5)         # the loop is blocked (as by a long step): the front still answers
            client.join(5)
            assert answered and answered[0][0] == b"front\n"
            assert answered[0][1] < 1.0
            conn.close()
    asyncio.run(scenario())


def test_when_the_front_dies_the_worker_serves_its_port_itself():
    async def scenario():
        async with _fronted() as (front, port):
            front.publish(b"front\n")
            front.process.kill()
            await _until(lambda: not front.is_serving())
            await _until(lambda: bool(front._fallback))
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            assert (await _in_thread(_get, conn, "/metrics"))[1] == b"fast\n"
            assert (await _in_thread(_get, conn, "/other"))[1] == b"other"
            conn.close()
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    asyncio.run(scenario())


def test_without_a_front_the_loop_serves_the_port():
    async def scenario():
        async with _running(None) as port:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            assert (await _in_thread(_get, conn, "/metrics"))[1] == b"fast\n"
            conn.close()
    asyncio.run(scenario())


WORKER = textwrap.dedent("""
    import asyncio, subprocess, sys
    sys.path[:0] = [{tests!r}]
    from test_scrape_front import CONTENT_TYPE, _published, _serve
    from pulse.agents.scrape_front import ScrapeFront

    async def main():
        front = ScrapeFront(CONTENT_TYPE, exposition=_published)
        runner, port = await _serve(front)
        front.publish(b"front\\n")
        # Another process holding the worker's end of the pair (as a build forked from the
        # worker does): the pair does not close when the worker dies.
        holder = subprocess.Popen(["sleep", "60"], pass_fds=[front._ctrl.fileno()])
        print(port, front.process.pid, front.path, holder.pid, flush=True)
        await asyncio.sleep(60)
    asyncio.run(main())
""")


def test_the_front_exits_when_its_worker_is_killed(tmp_path):
    worker = subprocess.Popen([sys.executable, "-c", WORKER.format(tests=os.path.dirname(__file__))],
                              stdout=subprocess.PIPE, text=True)
    holder = None
    try:
        assert select.select([worker.stdout], [], [], 30)[0], "the worker did not start"
        port, front_pid, path, holder = worker.stdout.readline().split()
        port, front_pid, holder = int(port), int(front_pid), int(holder)
        assert os.path.exists(path)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        assert _get(conn, "/metrics")[1] == b"front\n"
        conn.close()
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
        deadline = time.monotonic() + 5
        while _alive(front_pid):
            assert time.monotonic() < deadline, "the front outlived its worker"
            time.sleep(0.02)
        assert _alive(holder)                   # so the front did not wait for the pair to close
        assert not os.path.exists(os.path.dirname(path))      # it took its folder with it
        with socket.socket() as probe:          # the port is free for the next worker
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
    finally:
        worker.kill()
        worker.wait()
        if holder:
            os.kill(holder, signal.SIGKILL)


def test_a_client_that_does_not_read_its_answer_holds_up_no_one():
    async def scenario():
        async with _fronted() as (front, port):
            conn = await _scraper_of(front, port)
            front.publish(b"x" * (16 << 20))        # more than the socket buffers hold
            slow = socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.connect(("127.0.0.1", port))
            slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")      # and never reads
            await asyncio.sleep(0.3)
            front.publish(b"front\n")
            started = time.monotonic()
            assert (await _in_thread(_get, conn, "/metrics"))[1] == b"front\n"
            assert time.monotonic() - started < 1.0
            # /other on a new connection: handed to the worker meanwhile
            other = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            assert (await _in_thread(_get, other, "/other"))[1] == b"other"
            other.close()
            slow.close()
            conn.close()
    asyncio.run(scenario())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"     # a zombie has exited
    except FileNotFoundError:
        return False


def test_folders_whose_lock_is_free_are_swept(tmp_path):
    from pulse.agents.scrape_front import _locked, _sweep
    gone, alive, making = (tmp_path / f"pulse-scrape-{name}" for name in ("1-a", "2-b", "3-c"))
    other = tmp_path / "other"
    for folder in (gone, alive, making, other):
        folder.mkdir()
    os.close(_locked(str(gone / "lock")))           # its worker and front are gone: the lock is free
    held = _locked(str(alive / "lock"))              # (another pid namespace would hold it the same way)
    (gone / "metrics.prom").write_bytes(b"old")
    (other / "lock").write_bytes(b"")
    try:
        _sweep(str(tmp_path))
        assert not gone.exists() and alive.exists() and making.exists() and other.exists()
    finally:
        os.close(held)


def test_a_front_that_cannot_start_leaves_the_port_to_the_loop(monkeypatch, caplog):
    def no_folder(**kwargs):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr("pulse.agents.scrape_front.tempfile.mkdtemp", no_folder)

    async def scenario():
        async with _fronted() as (front, port):
            assert front.process is None and not front.is_serving()
            front.publish(b"front\n")       # nothing to publish to: a no-op
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            assert (await _in_thread(_get, conn, "/metrics"))[1] == b"fast\n"
            conn.close()
    asyncio.run(scenario())
    assert "scrape front could not start" in caplog.text and "Read-only file system" in caplog.text
