"""Pipedrive deal webhooks, version 2.0 payloads (SPEC 8.4) -> section 1 events. Pure.

One event per delivery: `meta` (action, entity, id, timestamp), `data` (the deal now),
`previous` (only the fields that changed).
"""
from __future__ import annotations

from typing import Any

from pulse.gateway.model import Adapted, BadDelivery, adapt_delivery, from_crm_time, lead_id, money_fields
from pulse.gateway.sources import Source, crm_id

CLOSED = ("won", "lost")


def adapt(body: bytes, source: Source) -> Adapted:
    return adapt_delivery(body, source, "Pipedrive", delivery_events)


def _time(data: dict, meta: dict, *names: str) -> str:
    """The first present time field, then `update_time`, then `meta.timestamp`."""
    for name in names + ("update_time",):
        if data.get(name) not in (None, ""):
            return from_crm_time(data[name])
    if meta.get("timestamp") not in (None, ""):
        return from_crm_time(meta["timestamp"])
    raise BadDelivery("no time field")


def delivery_events(payload: Any, source: Source) -> list[dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("meta"), dict):
        raise BadDelivery("not a webhook v2 payload (no meta object)")
    meta = payload["meta"]
    if "current" in payload or "object" in meta and "entity" not in meta:
        raise BadDelivery("a webhook version 1.0 payload: subscribe with version 2.0")
    if meta.get("entity") != "deal":
        return []
    action = meta.get("action")
    if action not in ("create", "change"):
        return []                                   # delete (and anything new): ignored
    data = payload.get("data")
    previous = payload.get("previous") or {}
    if not isinstance(data, dict) or not isinstance(previous, dict):
        raise BadDelivery("data or previous is not an object")
    if meta.get("id") in (None, "") or isinstance(meta.get("id"), (dict, list)):
        raise BadDelivery("no meta.id")
    common: dict[str, Any] = {"type": "", "event_id": f"pipedrive:{crm_id(meta['id'])}",
                              "lead_id": lead_id(source, data.get("id")), "occurred_at": ""}
    common.update(money_fields(data.get("value"), data.get("currency")))
    owner = data.get("owner_id")
    if isinstance(owner, dict):                    # some API shapes nest the user
        owner = owner.get("id")
    common.update(source.owner_fields(owner))
    stage_id = data.get("stage_id")
    target = source.target(crm_id(stage_id)) if stage_id not in (None, "") else None
    status = data.get("status")

    def to_stage(occurred_at: str) -> dict[str, Any]:
        if target is None:
            raise BadDelivery("no data.stage_id")
        if target.closed is not None:
            return {**common, "type": "deal.closed", "occurred_at": occurred_at, "pipeline": target.pipeline,
                    "outcome": target.closed}
        return {**common, "type": "lead.stage_changed", "occurred_at": occurred_at, "pipeline": target.pipeline,
                "to_stage": target.stage}

    if action == "create":
        if target is None:
            raise BadDelivery("no data.stage_id")
        event = {**common, "type": "lead.created", "occurred_at": _time(data, meta, "add_time"),
                 "pipeline": target.pipeline}
        if target.closed is None:
            event["stage"] = target.stage
        events = [event]
        if status in CLOSED or target.closed is not None:   # created as won/lost (an import)
            outcome = status if status in CLOSED else target.closed
            events.append(_closed(common, data, meta, target.pipeline, outcome, ":2"))
        return events
    pipeline = target.pipeline if target is not None else source.pipeline
    if "status" in previous and status in CLOSED:
        return [_closed(common, data, meta, pipeline, status, "")]
    if "status" in previous and previous["status"] in CLOSED and status == "open":
        return [to_stage(_time(data, meta))]
    if "stage_id" in previous:
        return [to_stage(_time(data, meta, "stage_change_time"))]
    if "value" in previous or "owner_id" in previous:
        return [{**common, "type": "lead.updated", "occurred_at": _time(data, meta), "pipeline": pipeline}]
    return []


def _closed(common: dict, data: dict, meta: dict, pipeline: str, outcome: str, suffix: str) -> dict[str, Any]:
    event = {**common, "type": "deal.closed", "event_id": common["event_id"] + suffix,
             "occurred_at": _time(data, meta, f"{outcome}_time"), "pipeline": pipeline, "outcome": outcome}
    if outcome == "lost" and isinstance(data.get("lost_reason"), str) and data["lost_reason"]:
        event["reason"] = data["lost_reason"]
    return event
