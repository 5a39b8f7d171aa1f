"""Talking to Slack: the official `slack_sdk` clients, one attempt per call, errors sorted.

`WebApi` wraps `slack_sdk`'s `AsyncWebClient` (bot token; chat.postMessage, chat.update,
conversations.history/replies to find a message again); `WebhookApi` wraps its
`AsyncWebhookClient` (an incoming-webhook URL: posts only, to the webhook's channel).
Neither retries by itself (`retry_handlers=[]`): the notifier decides, per channel.

Every failure becomes one of
- `Transient(reason, retry_after, ambiguous)`: retry later. `reason` is `ratelimited`
  (HTTP 429; `retry_after` from Retry-After; nothing was done), `http_5xx`, `network`
  or a Slack error meaning "try again"; `ambiguous` when Slack may have acted anyway
  (the request may have reached it): the notifier looks before it posts again.
- `Permanent(error)`: retrying will not help (`channel_not_found`, `invalid_auth`, ...).

The token is given to the client and never appears in a message of this module.
"""
from __future__ import annotations

import asyncio
import math
import re
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

# Slack `error` values that mean "try again later" (the rest are permanent).
TRANSIENT_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
                    "team_is_restricted_from_sending"}
_CHANNEL_ID_RE = re.compile(r"[CGD][A-Z0-9]{2,}")
_USER_ID_RE = re.compile(r"[UW][A-Z0-9]{2,}")


class SlackFailure(Exception):
    pass


class Transient(SlackFailure):
    def __init__(self, reason: str, retry_after: float | None = None, ambiguous: bool = False):
        self.reason, self.retry_after, self.ambiguous = reason, retry_after, ambiguous
        super().__init__(reason + (f" (retry after {retry_after:g}s)" if retry_after is not None else ""))


class Permanent(SlackFailure):
    def __init__(self, error: str, method: str = ""):
        self.error, self.method = error, method
        super().__init__(f"{method}: {error}" if method else error)


def _retry_after(headers: Any) -> float:
    try:
        value = float((headers or {}).get("Retry-After", 1))
        return value if math.isfinite(value) and value >= 0 else 1.0
    except (TypeError, ValueError):
        return 1.0


def classify(exc: BaseException, method: str) -> SlackFailure:
    """One failed call as Transient or Permanent."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", 0) or 0
        data = getattr(response, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        if status == 429 or error == "ratelimited":
            return Transient("ratelimited", _retry_after(getattr(response, "headers", None)))
        if status >= 500:
            return Transient("http_5xx", ambiguous=True)
        if error in TRANSIENT_ERRORS:
            return Transient(error, ambiguous=True)
        return Permanent(error or f"http_{status}", method)
    if isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, OSError)):
        return Transient("network", ambiguous=True)
    if isinstance(exc, SlackClientError):
        return Permanent("client_error", method)
    raise exc


class WebApi:
    """chat.* and conversations.* through `slack_sdk.web.async_client.AsyncWebClient`."""

    can_update = can_search = True

    def __init__(self, token: str, base_url: str = "https://slack.com/api/", timeout: float = 10.0):
        if not base_url.endswith("/"):
            base_url += "/"
        self._session: aiohttp.ClientSession | None = None
        self._token, self._base_url, self._timeout = token, base_url, timeout
        self.client: AsyncWebClient | None = None

    def _client(self) -> AsyncWebClient:
        if self.client is None:               # made inside the running loop (aiohttp wants one)
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
            self.client = AsyncWebClient(token=self._token, base_url=self._base_url,
                                         timeout=max(1, math.ceil(self._timeout)), session=self._session,
                                         retry_handlers=[])
        return self.client

    def __repr__(self) -> str:                # never the token
        return f"<WebApi {self._base_url}>"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session, self.client = None, None

    async def _call(self, method: str, fn, **kwargs) -> dict:
        try:
            response = await fn(**kwargs)
        except Exception as exc:            # noqa: BLE001  sorted into Transient / Permanent
            raise classify(exc, method) from None
        return response.data if isinstance(response.data, dict) else {}

    async def post(self, channel: str, body: dict, thread_ts: str | None = None) -> tuple[str, str]:
        """chat.postMessage; returns (channel ID, message ts)."""
        c = self._client()
        args = {k: v for k, v in body.items() if v is not None}
        if thread_ts:
            args["thread_ts"] = thread_ts
        data = await self._call("chat.postMessage", c.chat_postMessage, channel=channel, **args)
        return data.get("channel") or channel, data.get("ts")

    async def update(self, channel_id: str, ts: str, body: dict) -> None:
        c = self._client()
        args = {k: v for k, v in body.items() if v is not None and k not in ("unfurl_links", "unfurl_media")}
        await self._call("chat.update", c.chat_update, channel=channel_id, ts=ts, **args)

    async def auth_test(self) -> dict:
        c = self._client()
        return await self._call("auth.test", c.auth_test)

    async def history(self, channel_id: str, oldest: float, thread_ts: str | None = None,
                      max_pages: int = 10) -> list[dict]:
        """Messages since `oldest` (epoch seconds), with their metadata; a thread's replies
        when `thread_ts` is given. At most `max_pages` pages of 200."""
        c = self._client()
        out: list[dict] = []
        cursor = None
        for _ in range(max_pages):
            kwargs = dict(channel=channel_id, oldest=f"{max(0.0, oldest):.6f}", limit=200,
                          include_all_metadata=True)
            if cursor:
                kwargs["cursor"] = cursor
            if thread_ts:
                data = await self._call("conversations.replies", c.conversations_replies, ts=thread_ts, **kwargs)
            else:
                data = await self._call("conversations.history", c.conversations_history, **kwargs)
            out.extend(data.get("messages") or [])
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return out

    async def resolve_channel(self, channel: str) -> str | None:
        """A channel as configured (ID, #name or user ID for a DM) as a channel ID."""
        if _CHANNEL_ID_RE.fullmatch(channel):
            return channel
        c = self._client()
        if _USER_ID_RE.fullmatch(channel):
            data = await self._call("conversations.open", c.conversations_open, users=channel)
            return (data.get("channel") or {}).get("id")
        name = channel.lstrip("#")
        cursor = None
        for _ in range(50):
            kwargs = dict(types="public_channel,private_channel", exclude_archived=True, limit=1000)
            if cursor:
                kwargs["cursor"] = cursor
            data = await self._call("conversations.list", c.conversations_list, **kwargs)
            for ch in data.get("channels") or []:
                if ch.get("name") == name:
                    return ch.get("id")
            cursor = (data.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None


class WebhookApi:
    """An incoming webhook: posts to the webhook's own channel; no updates, no history."""

    can_update = can_search = False

    def __init__(self, url: str, timeout: float = 10.0):
        self._url, self._timeout = url, timeout
        self._session: aiohttp.ClientSession | None = None
        self.client: AsyncWebhookClient | None = None

    def __repr__(self) -> str:                # the URL is a secret too
        return "<WebhookApi>"

    def _client(self) -> AsyncWebhookClient:
        if self.client is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
            self.client = AsyncWebhookClient(self._url, timeout=max(1, math.ceil(self._timeout)),
                                             session=self._session, retry_handlers=[])
        return self.client

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session, self.client = None, None

    async def post(self, channel: str, body: dict, thread_ts: str | None = None) -> tuple[str, None]:
        args = {k: v for k, v in body.items() if k in ("text", "blocks", "attachments", "unfurl_links", "unfurl_media")}
        try:
            response = await self._client().send_dict(args)
        except Exception as exc:            # noqa: BLE001
            raise classify(exc, "webhook") from None
        status = response.status_code
        if status == 200:
            return channel, None
        if status == 429:
            raise Transient("ratelimited", _retry_after(response.headers))
        if status >= 500:
            raise Transient("http_5xx", ambiguous=True)
        body_text = (response.body or "").strip()
        raise Permanent(body_text[:60] if re.fullmatch(r"[a-z_]+", body_text or "-") else f"http_{status}", "webhook")

    async def update(self, channel_id: str, ts: str, body: dict) -> None:
        raise Permanent("not_supported", "webhook update")

    async def auth_test(self) -> dict:
        return {}

    async def history(self, *args, **kwargs) -> list[dict]:
        return []

    async def resolve_channel(self, channel: str) -> str | None:
        return None
