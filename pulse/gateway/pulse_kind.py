"""The `pulse` kind (SPEC 8.4): section 1 events as they are. Pure.

A body that parses as one JSON object or array is that object or its elements;
otherwise it is JSON Lines (split on `\\n`, blank lines skipped). Each object with a
known `type` is published as compact JSON to its topic; anything else goes as its
bytes to the fallback topic, where the worker dead-letters it (as `pulse replay` does).
"""
from __future__ import annotations

from typing import Any

import orjson

from pulse.gateway.model import Adapted, Message
from pulse.gateway.sources import Source
from pulse.schemas.topics import TOPIC_OF_TYPE


def adapt(body: bytes, source: Source) -> Adapted:
    try:
        whole = orjson.loads(body)
    except orjson.JSONDecodeError:
        parts = [line for line in body.split(b"\n") if line.strip()]
        return Adapted([_line_message(line) for line in parts], 0, [])
    items = whole if isinstance(whole, list) else [whole]
    return Adapted([_item_message(item, None) for item in items], 0, [])


def _line_message(line: bytes) -> Message:
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError:
        return Message(None, None, line.rstrip(b"\r"))    # the worker decides (invalid_json, or a 2^70 integer)
    return _item_message(item, line)


def _item_message(item: Any, raw: bytes | None) -> Message:
    if isinstance(item, dict):
        lead = item.get("lead_id")
        key = lead.encode("utf-8", "surrogatepass") if isinstance(lead, str) else None
        kind = item.get("type")
        if isinstance(kind, str) and kind in TOPIC_OF_TYPE:
            return Message(kind, key, orjson.dumps(item))
        return Message(None, key, raw.rstrip(b"\r") if raw is not None else orjson.dumps(item))
    return Message(None, None, raw.rstrip(b"\r") if raw is not None else orjson.dumps(item))
