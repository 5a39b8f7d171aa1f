"""Which GET requests the worker's fast paths answer themselves, and their response.

Standard library only: the scrape front (agents/scrape_front.py) runs it in a process of its
own that must start in milliseconds, without aiohttp or Faust. agents/fast_http.py (in the
event loop's protocol) and the scrape front take exactly the same requests: one whole
bodiless GET HTTP/1.1 in one read, with headers aiohttp would read the same way (CRLF line
ends only, token header names, one Host, no header twice, at most MAX_HEADERS), none that
announces a body or a change of protocol, and no `Connection: close`. Anything else is left
to aiohttp, whose parser decides.
"""
from __future__ import annotations

import re
from email.utils import formatdate
from typing import TypeVar

__all__ = ["MAX_REQUEST", "fast_request", "one_bodiless_request", "one_header_block", "response"]

MAX_REQUEST = 8192      # larger reads go to aiohttp (a scrape request is ~200 bytes)
# headers of a request with a body, or one that changes protocol: aiohttp answers those
# (and the old WebSocket draft's key, which llhttp refuses)
_BODY_OR_UPGRADE = frozenset((b"content-length", b"transfer-encoding", b"upgrade", b"expect", b"sec-websocket-key1"))
_CLOSING = frozenset((b"connection", b"proxy-connection"))    # with "close": aiohttp closes after answering
MAX_HEADERS = 64        # aiohttp refuses more than 128; a scraper sends a handful
# A header line the fast path takes: a token name (RFC 9110 5.6.2), a colon, then a value of
# visible characters, spaces and tabs. Anything else (a lone CR or LF, a space before the
# colon, an obs-fold continuation, control bytes) goes to aiohttp, whose parser decides.
_HEADER_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*")
_REQUEST_TARGET = re.compile(rb"/[!$&-;=?-Z_a-z~%]*")

Route = TypeVar("Route")


def one_header_block(data: bytes) -> bool:
    """Whether a read ends with the end of a header block and holds no other (no pipelining)."""
    return data.endswith(b"\r\n\r\n") and data.find(b"\r\n\r\n") == len(data) - 4


def one_bodiless_request(data: bytes) -> bool:
    """Whether a read is exactly one whole request without a body (as far as its bytes show)."""
    if not one_header_block(data):
        return False
    lowered = data.lower()
    return b"content-length" not in lowered and b"transfer-encoding" not in lowered


def fast_request(data: bytes, routes: dict[bytes, Route]) -> tuple[Route, bytes] | None:
    """The route (`routes[path]`) and the query string (bytes after "?", still
    percent-encoded; b"" if none) of `data`, if it is one whole request a fast path takes
    (module docstring); else None."""
    if len(data) > MAX_REQUEST or data[:4] != b"GET " or not one_header_block(data):
        return None
    lines = data[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1" or _REQUEST_TARGET.fullmatch(parts[1]) is None:
        return None
    path, _, query = parts[1].partition(b"?")
    route = routes.get(path)
    if route is None:
        return None
    if len(lines) - 1 > MAX_HEADERS:
        return None
    names = set()
    for line in lines[1:]:
        if _HEADER_LINE.fullmatch(line) is None:
            return None
        name, _, value = line.partition(b":")
        name = name.lower()
        if name in names or name in _BODY_OR_UPGRADE or (name in _CLOSING and b"close" in value.lower()):
            return None
        names.add(name)
    if b"host" not in names:        # HTTP/1.1 requires it; aiohttp answers 400 without
        return None
    return route, query


def response(content_type: bytes, body: bytes) -> bytes:
    """A kept-alive 200 response with the headers of aiohttp's own that matter."""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\nDate: %s\r\n"
            b"Cache-Control: no-store\r\n\r\n%s" % (content_type, len(body), formatdate(usegmt=True).encode(), body))
