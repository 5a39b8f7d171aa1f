"""What an adapter returns, and the helpers every vendor mapping shares (SPEC 8.4).

An adapter is a pure function `(body: bytes, source: Source) -> Adapted`: the section 1
events to publish (as Kafka messages), how many vendor events yielded none (`ignored`),
and the parts it could not read (dead-lettered as `invalid_delivery`).
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Callable, NamedTuple

import orjson

from pulse.gateway.sources import Source, crm_id


class Message(NamedTuple):
    type: str | None        # the event type, whose topic carries it; None: the fallback topic
    key: bytes | None       # the lead_id as UTF-8
    value: bytes            # compact JSON


class Unreadable(NamedTuple):
    raw: bytes              # the delivery's bytes (or the batch element's JSON bytes)
    detail: str             # why, for the dead letter's pulse.detail (no payload content)


class Adapted(NamedTuple):
    messages: list[Message]
    ignored: int
    unreadable: list[Unreadable]


class BadDelivery(ValueError):
    """A vendor event the gateway cannot read; its message is the dead letter's detail."""


def event_message(event: dict[str, Any]) -> Message:
    return Message(event["type"], event["lead_id"].encode("utf-8"), orjson.dumps(event))


def numbered(event_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SPEC 8.4: when one vendor event yields several section 1 events, the second gets
    `:2`, the third `:3`."""
    for i, event in enumerate(events):
        event["event_id"] = event_id if i == 0 else f"{event_id}:{i + 1}"
    return events


def lead_id(source: Source, deal_id: Any) -> str:
    if deal_id is None or deal_id == "" or isinstance(deal_id, (dict, list, bool)):
        raise BadDelivery("no deal id")
    return source.lead_id_prefix + crm_id(deal_id)


def amount_of(value: Any, divisor: int = 1) -> float | int | None:
    """A CRM amount as a number (None when absent or empty); HubSpot sends strings."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadDelivery("amount is not a number")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise BadDelivery("amount is not a number") from None
        if value.is_integer():
            value = int(value)
    if not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
        raise BadDelivery("amount is not a number")
    if divisor != 1:
        return value / divisor
    return value


def money_fields(value: Any, currency: Any, divisor: int = 1) -> dict[str, Any]:
    """A deal's `amount` (not negative) and `currency` fields, those present, for an event."""
    fields: dict[str, Any] = {}
    amount = amount_of(value, divisor)
    if amount is not None:
        if amount < 0:
            raise BadDelivery("value is negative")
        fields["amount"] = amount
    if isinstance(currency, str) and currency:
        fields["currency"] = currency
    return fields


def utc_text(moment: datetime) -> str:
    """RFC 3339 in UTC with `Z` (microseconds when not zero)."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def from_epoch_ms(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadDelivery("timestamp is not epoch milliseconds")
    try:
        ms = int(value)
        return utc_text(datetime.fromtimestamp(ms // 1000, timezone.utc).replace(microsecond=(ms % 1000) * 1000))
    except (ValueError, OverflowError, OSError):
        raise BadDelivery("timestamp is not epoch milliseconds") from None


_NAIVE_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?")


def from_crm_time(value: Any) -> str:
    """A CRM time string: RFC 3339 with an offset or `Z`, or without offset (UTC:
    Pipedrive's `2024-05-31 16:08:37`, Close's `2019-01-15T12:48:23.395000`); or Unix
    seconds (a number or a 10-digit string)."""
    if isinstance(value, bool):
        raise BadDelivery("time is not a timestamp")
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit() and len(value) == 10):
        try:
            return utc_text(datetime.fromtimestamp(float(value), timezone.utc))
        except (ValueError, OverflowError, OSError):
            raise BadDelivery("time is not a timestamp") from None
    if not isinstance(value, str):
        raise BadDelivery("time is not a timestamp")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if _NAIVE_RE.fullmatch(text):
        text += "+00:00"
    try:
        moment = datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        raise BadDelivery("time is not a timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return utc_text(moment)
    except (OverflowError, ValueError):        # e.g. year 1 with a positive offset
        raise BadDelivery("time is out of range") from None


def adapt_delivery(body: bytes, source: Any, vendor: str,
                   delivery_events: Callable[[Any, Any], list[dict[str, Any]]]) -> Adapted:
    """A vendor whose delivery is one JSON object (Close, Pipedrive): its events, or the whole
    body unreadable (with `delivery_events`' reason), or ignored (nothing for us in it)."""
    try:
        events = delivery_events(parse_json(body), source)
    except BadDelivery as exc:
        return Adapted([], 0, [Unreadable(body, f"{vendor} delivery: {exc}")])
    if not events:
        return Adapted([], 1, [])
    return Adapted([event_message(e) for e in events], 0, [])


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadDelivery("not JSON") from None


def compact(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:                      # cannot happen for parsed JSON; keep the part anyway
        return repr(value).encode()
