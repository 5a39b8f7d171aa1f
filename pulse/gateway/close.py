"""Close opportunity webhooks (SPEC 8.4) -> section 1 events. Pure.

Body: `{"subscription_id": …, "event": {id, object_type, action, date_created,
changed_fields, previous_data, data}}`. Close counts `value` in cents and writes
`date_created` without an offset (UTC).
"""
from __future__ import annotations

from typing import Any

from pulse.gateway.model import Adapted, BadDelivery, adapt_delivery, from_crm_time, lead_id, money_fields, numbered
from pulse.gateway.sources import Source, Target, crm_id

CLOSED = ("won", "lost")
STATUS_FIELDS = ("status_id", "status_type")
FIELD_EDITS = ("value", "user_id", "value_currency")


def adapt(body: bytes, source: Source) -> Adapted:
    return adapt_delivery(body, source, "Close", delivery_events)


def delivery_events(payload: Any, source: Source) -> list[dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), dict):
        raise BadDelivery("no event object")
    event = payload["event"]
    if event.get("object_type") != "opportunity":
        return []
    action = event.get("action")
    if action not in ("created", "updated"):
        return []
    data = event.get("data")
    if not isinstance(data, dict):
        raise BadDelivery("event.data is not an object")
    if event.get("id") in (None, "") or isinstance(event.get("id"), (dict, list)):
        raise BadDelivery("no event.id")
    event_id = f"close:{crm_id(event['id'])}"
    common: dict[str, Any] = {"type": "", "event_id": event_id, "lead_id": lead_id(source, data.get("id")),
                              "occurred_at": from_crm_time(event.get("date_created"))}
    common.update(money_fields(data.get("value"), data.get("value_currency"), divisor=100))
    common.update(source.owner_fields(data.get("user_id")))
    status_id = data.get("status_id")
    status_type = data.get("status_type")
    target = source.target(crm_id(status_id)) if status_id not in (None, "") else Target(source.pipeline)

    def closed(outcome: str) -> dict[str, Any]:
        return {**common, "type": "deal.closed", "pipeline": target.pipeline, "outcome": outcome}

    def moved() -> dict[str, Any]:
        if status_id in (None, ""):
            raise BadDelivery("no data.status_id")
        if target.closed is not None:
            return closed(target.closed)
        return {**common, "type": "lead.stage_changed", "pipeline": target.pipeline, "to_stage": target.stage}

    if action == "created":
        if status_type in CLOSED:                   # created as won/lost: first stage, closed at once
            return numbered(event_id, [{**common, "type": "lead.created", "pipeline": target.pipeline},
                                       closed(status_type)])
        if target.closed is not None:
            return numbered(event_id, [{**common, "type": "lead.created", "pipeline": target.pipeline},
                                       closed(target.closed)])
        if status_id in (None, ""):
            raise BadDelivery("no data.status_id")
        return [{**common, "type": "lead.created", "pipeline": target.pipeline, "stage": target.stage}]
    changed = event.get("changed_fields") or []
    if not isinstance(changed, list):
        raise BadDelivery("changed_fields is not a list")
    if any(f in changed for f in STATUS_FIELDS):
        if status_type in CLOSED:
            return [closed(status_type)]
        return [moved()]                            # a reopen (won/lost -> active) or a move
    if any(f in changed for f in FIELD_EDITS):
        return [{**common, "type": "lead.updated", "pipeline": target.pipeline}]
    return []
