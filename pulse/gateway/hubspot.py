"""HubSpot deal webhooks (SPEC 8.4) -> section 1 events. Pure.

The body is a JSON array of up to 100 events, each handled on its own: an unreadable
element is dead-lettered alone, the others are published.
"""
from __future__ import annotations

from typing import Any

from pulse.gateway.model import (Adapted, BadDelivery, Message, Unreadable, amount_of, compact, event_message,
                                 from_epoch_ms, lead_id, parse_json)
from pulse.gateway.sources import Source, crm_id

DEAL_OBJECT_TYPE = "0-3"          # generic `object.*` subscriptions name deals by objectTypeId


def adapt(body: bytes, source: Source) -> Adapted:
    try:
        batch = parse_json(body)
    except BadDelivery as exc:
        return Adapted([], 0, [Unreadable(body, f"HubSpot delivery is {exc}")])
    if not isinstance(batch, list):
        return Adapted([], 0, [Unreadable(body, "HubSpot delivery is not a JSON array")])
    messages: list[Message] = []
    ignored = 0
    unreadable: list[Unreadable] = []
    for element in batch:
        try:
            events = element_events(element, source)
        except BadDelivery as exc:
            unreadable.append(Unreadable(compact(element), f"HubSpot event: {exc}"))
            continue
        if not events:
            ignored += 1
        messages.extend(event_message(e) for e in events)
    return Adapted(messages, ignored, unreadable)


def _kind(element: dict) -> str | None:
    kind = element.get("subscriptionType") or element.get("eventType")
    if kind in ("object.propertyChange", "object.creation") and crm_id(element.get("objectTypeId")) == DEAL_OBJECT_TYPE:
        kind = "deal." + kind.split(".", 1)[1]
    return kind if isinstance(kind, str) else None


def element_events(element: Any, source: Source) -> list[dict[str, Any]]:
    """The section 1 events of one HubSpot event (empty: ignored)."""
    if not isinstance(element, dict):
        raise BadDelivery("not a JSON object")
    kind = _kind(element)
    if kind is None:
        raise BadDelivery("no subscriptionType or eventType")
    if kind != "deal.propertyChange":
        return []                                   # deal.creation and everything else: ignored (counted)
    prop = element.get("propertyName")
    if prop not in ("dealstage", "amount", "hubspot_owner_id"):
        return []
    deal = lead_id(source, element.get("objectId"))
    occurred_at = from_epoch_ms(element.get("occurredAt"))
    event_id = "hubspot:{}:{}:{}:{}:{}".format(*(crm_id(element.get(k, "")) for k in (
        "portalId", "subscriptionId", "eventId", "objectId", "occurredAt")))
    value = element.get("propertyValue")
    if isinstance(value, (dict, list)):
        raise BadDelivery(f"{prop} value is not a scalar")
    common = {"event_id": event_id, "lead_id": deal, "occurred_at": occurred_at}
    if prop == "dealstage":
        if value is None or value == "":
            raise BadDelivery("dealstage without a value")
        target = source.target(crm_id(value))
        if target.closed is not None:
            return [{"type": "deal.closed", **common, "pipeline": target.pipeline, "outcome": target.closed}]
        return [{"type": "lead.stage_changed", **common, "pipeline": target.pipeline, "to_stage": target.stage}]
    if prop == "amount":
        amount = amount_of(value)
        if amount is None:
            return []                               # an emptied amount: section 1 cannot unset one
        if amount < 0:
            raise BadDelivery("amount is negative")
        fields: dict[str, Any] = {"amount": amount}
    else:
        fields = source.owner_fields(value if value != "" else None)
        if not fields:
            return []                               # an owner removed: section 1 cannot unset one
    # HubSpot's event does not say the deal's pipeline: one copy per mapped pipeline, same
    # event_id; a lead.updated never creates a lead (rule 8), so only the deal's own counts.
    return [{"type": "lead.updated", **common, "pipeline": p, **fields} for p in source.pipelines]
