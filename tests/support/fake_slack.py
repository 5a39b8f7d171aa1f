"""A local fake of the Slack Web API (and of an incoming webhook), for tests.

An aiohttp server on loopback, run in its own thread with its own event loop, so
synchronous tests, asyncio tests and `pulse slack` subprocesses can all use it:

    with FakeSlack(token="xoxb-...") as slack:
        ... WebApi(token, slack.url) ...            # slack.url = "http://127.0.0.1:PORT/api/"
        slack.posts("C0SALES")                      # the messages posted there, oldest first
        slack.fail("chat.postMessage", status=429, retry_after=1)

It checks the bearer token (`invalid_auth` / `not_authed` like Slack, with HTTP 200),
records every request (`.requests`), keeps messages per channel (with their metadata,
threads and updates) and answers chat.postMessage, chat.update, conversations.history,
conversations.replies, conversations.open, conversations.list and auth.test. Faults
are queued per method (and optionally channel): HTTP 429 with Retry-After, HTTP 500,
a Slack error, or "act, then answer 500" (a lost answer: the message exists).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field

from aiohttp import web

CHANNELS = {"C0SALES": "sales", "C0MANAGERS": "sales-managers", "C0EMEA": "emea", "C0DIGEST": "digest",
            "C0OTHER": "other"}
USERS = {"U0ALICE", "U0BOB"}


@dataclass
class Fault:
    method: str
    status: int = 200
    error: str | None = None
    retry_after: float | None = None
    channel: str | None = None
    times: int = 1
    after: bool = False            # do the work, then answer `status` (a lost answer)


@dataclass
class Request:
    method: str
    args: dict
    authorized: bool
    at: float = field(default_factory=time.monotonic)
    status: int = 200
    answer: dict | None = None


def _truthy(value) -> bool:
    return value in (True, 1, "1", "true", "True")


class FakeSlack:
    def __init__(self, token: str = "xoxb-fake-0000-test-token", channels: dict | None = None,
                 users: set | None = None):
        self.token = token
        self.channels = dict(CHANNELS if channels is None else channels)
        self.users = set(USERS if users is None else users)
        self.requests: list[Request] = []
        self.messages: dict[str, list[dict]] = {}          # channel ID -> messages (top level and replies)
        self.webhook_posts: list[dict] = []
        self.faults: list[Fault] = []
        self.latency = 0.0                                 # seconds before every Web API answer (a slow Slack)
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0TEST/B0TEST/webhooksecret0000000000"

    def start(self) -> "FakeSlack":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-slack", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Slack server did not start")
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/services/{a}/{b}/{c}", self._webhook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> "FakeSlack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test controls --------------------------------------------------------------------------

    def fail(self, method: str, *, status: int = 200, error: str | None = None, retry_after: float | None = None,
             channel: str | None = None, times: int = 1, after: bool = False) -> None:
        with self._lock:
            self.faults.append(Fault(method, status, error, retry_after, channel, times, after))

    def calls(self, method: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    def posts(self, channel: str | None = None, *, replies: bool | None = None) -> list[dict]:
        """Messages that exist (posted and answered or not), oldest first; `replies` True/False
        keeps only thread replies / top-level messages."""
        with self._lock:
            chans = [channel] if channel else list(self.messages)
            out = [m for c in chans for m in self.messages.get(c, [])]
        if replies is not None:
            out = [m for m in out if bool(m.get("thread_ts")) == replies]
        return sorted(out, key=lambda m: float(m["ts"]))

    def seed(self, channel: str, **message) -> dict:
        """Put a message in a channel as if the bot had posted it."""
        with self._lock:
            return self._store(channel, message)

    # -- the API --------------------------------------------------------------------------------

    def _store(self, channel: str, args: dict) -> dict:
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        message = {"ts": ts, "type": "message", "bot_id": "B0PULSE", "channel": channel,
                   **{k: args[k] for k in ("text", "blocks", "attachments", "metadata", "thread_ts") if k in args}}
        self.messages.setdefault(channel, []).append(message)
        return message

    def _channel(self, name) -> str | None:
        if not isinstance(name, str):
            return None
        if name in self.channels:
            return name
        if name in self.users:
            return "D" + name[1:]
        if name.startswith("D") and "U" + name[1:] in self.users:
            return name
        bare = name.lstrip("#")
        return next((cid for cid, n in self.channels.items() if n == bare), None)

    async def _args(self, request: web.Request) -> dict:
        args = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                args.update(body if isinstance(body, dict) else {})
            else:
                args.update(dict(await request.post()))
        for key in ("blocks", "attachments", "metadata"):
            if isinstance(args.get(key), str):
                try:
                    args[key] = json.loads(args[key])
                except ValueError:
                    pass
        return args

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        if self.latency:
            await asyncio.sleep(self.latency)
        auth = request.headers.get("Authorization")
        authorized = auth == f"Bearer {self.token}"
        with self._lock:
            record = Request(method, args, authorized)
            self.requests.append(record)
            if auth is None:
                return self._answer(record, {"ok": False, "error": "not_authed"})
            if not authorized:
                return self._answer(record, {"ok": False, "error": "invalid_auth"})
            fault = self._take_fault(method, args)
            if fault is not None and not fault.after:
                return self._fault(record, fault)
            answer = self._do(method, args)
            if fault is not None and answer.get("ok"):
                return self._fault(record, fault)
            return self._answer(record, answer)

    def _take_fault(self, method: str, args: dict) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and (fault.channel is None or self._channel(args.get("channel")) ==
                                           self._channel(fault.channel)):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def _answer(self, record: Request, body: dict, status: int = 200, headers: dict | None = None) -> web.Response:
        record.status, record.answer = status, body
        return web.json_response(body, status=status, headers=headers)

    def _fault(self, record: Request, fault: Fault) -> web.Response:
        if fault.status == 429:
            return self._answer(record, {"ok": False, "error": "ratelimited"}, 429,
                                {"Retry-After": f"{fault.retry_after if fault.retry_after is not None else 1:g}"})
        if fault.status >= 500:
            record.status = fault.status
            return web.Response(status=fault.status, text="<html>upstream error</html>", content_type="text/html")
        return self._answer(record, {"ok": False, "error": fault.error or "fatal_error"})

    def _do(self, method: str, args: dict) -> dict:
        if method == "auth.test":
            return {"ok": True, "user": "pulse-bot", "team": "Test Team", "bot_id": "B0PULSE"}
        if method == "chat.postMessage":
            cid = self._channel(args.get("channel"))
            if cid is None:
                return {"ok": False, "error": "channel_not_found"}
            thread = args.get("thread_ts")
            if thread and not any(m["ts"] == thread for m in self.messages.get(cid, [])):
                return {"ok": False, "error": "thread_not_found"}
            message = self._store(cid, args)
            return {"ok": True, "channel": cid, "ts": message["ts"], "message": message}
        if method == "chat.update":
            cid = self._channel(args.get("channel"))
            for message in self.messages.get(cid or "", []):
                if message["ts"] == args.get("ts"):
                    for key in ("text", "blocks", "attachments", "metadata"):
                        if key in args:
                            message[key] = args[key]
                    message["edited"] = True
                    return {"ok": True, "channel": cid, "ts": message["ts"]}
            return {"ok": False, "error": "message_not_found" if cid else "channel_not_found"}
        if method in ("conversations.history", "conversations.replies"):
            cid = self._channel(args.get("channel"))
            if cid is None:
                return {"ok": False, "error": "channel_not_found"}
            oldest = float(args.get("oldest") or 0)
            if method == "conversations.history":
                found = [m for m in self.messages.get(cid, []) if not m.get("thread_ts")]
            else:
                root = args.get("ts")
                found = [m for m in self.messages.get(cid, []) if m["ts"] == root or m.get("thread_ts") == root]
            found = sorted((m for m in found if float(m["ts"]) >= oldest), key=lambda m: float(m["ts"]),
                           reverse=method == "conversations.history")
            limit = int(args.get("limit") or 100)
            start = int(args.get("cursor") or 0)
            page = found[start:start + limit]
            keep = _truthy(args.get("include_all_metadata"))
            page = [m if keep else {k: v for k, v in m.items() if k != "metadata"} for m in page]
            more = start + limit < len(found)
            return {"ok": True, "messages": page, "has_more": more,
                    "response_metadata": {"next_cursor": str(start + limit) if more else ""}}
        if method == "conversations.open":
            user = args.get("users")
            if user not in self.users:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "channel": {"id": "D" + user[1:]}}
        if method == "conversations.list":
            return {"ok": True, "channels": [{"id": c, "name": n} for c, n in self.channels.items()],
                    "response_metadata": {"next_cursor": ""}}
        return {"ok": False, "error": "unknown_method"}

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            record = Request("webhook", body, True)
            self.requests.append(record)
            fault = self._take_fault("webhook", body)
            if fault is not None:
                if fault.status == 429:
                    return web.Response(status=429, text="rate_limited",
                                        headers={"Retry-After": f"{1 if fault.retry_after is None else fault.retry_after:g}"})
                if fault.status >= 500:
                    return web.Response(status=fault.status, text="server_error")
                return web.Response(status=404, text=fault.error or "no_service")
            self.webhook_posts.append(body)
        return web.Response(text="ok")
