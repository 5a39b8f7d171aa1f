"""The inverse of the adapters: section 1 events -> vendor-shaped, signed deliveries.

For `pulse simulate --via`, `pulse dev`, the end-to-end tests and the bench. A shaper
takes section 1 events in arrival order and returns vendor events (HubSpot elements,
Pipedrive or Close payloads), each with the section 1 events it stands for: what the
gateway must publish for it (modulo `event_id`), derived here from the section 1 side.
`sign` makes the headers a real CRM would send.
"""
from __future__ import annotations

import time
import uuid
from collections import OrderedDict
import zlib
from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson

from pulse.gateway import signatures
from pulse.gateway.sources import Source

VIA = ("hubspot", "pipedrive", "close", "pulse")
TYPES = ("lead.created", "lead.updated", "lead.stage_changed", "deal.closed")
_NS = uuid.UUID("5f1c1d5e-8a43-4c57-9d2f-0d1f6f3b9a11")
_REMEMBER = 50_000                      # re-sends farther back than this are shaped anew
_SUBSCRIPTIONS = {"dealstage": 1001, "amount": 1002, "hubspot_owner_id": 1003}


class VendorEvent(NamedTuple):
    payload: Any                        # a HubSpot element, or a whole Pipedrive/Close/pulse body object
    stands_for: list[dict[str, Any]]    # the section 1 events the gateway publishes for it


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _ms(text: str) -> int:
    return int(_dt(text).timestamp() * 1000)


def _z(moment: datetime) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


class Shaper:
    """Per-vendor inverse mapping; keeps each deal's current stage, status, amount and owner."""

    def __init__(self, kind: str, source: Source, first_stage: dict[str, str]):
        self.kind = kind
        self.source = source
        self.first_stage = first_stage                  # pipeline -> its first stage
        self.stage_id = {(t.pipeline, t.stage): k for k, t in source.stages.items() if t.stage}
        self.closed_id = {(t.pipeline, t.closed): k for k, t in source.stages.items() if t.closed}
        self.owner_id = {name: k for k, name in source.owners.items()}
        self.deals: dict[str, dict[str, Any]] = {}
        self.sent: OrderedDict[str, list[VendorEvent]] = OrderedDict()   # event_id -> what was sent for it

    # -- helpers
    def crm_stage(self, pipeline: str, stage: str) -> str:
        return self.stage_id.get((pipeline, stage), stage)

    def owner_fields(self, crm_owner: Any) -> dict[str, str]:
        return self.source.owner_fields(crm_owner)

    def lead(self, event: dict) -> str:
        return self.source.lead_id_prefix + event["lead_id"]

    def shape(self, event: dict[str, Any]) -> list[VendorEvent]:
        """The vendor events for one section 1 event; a re-sent event (same event_id)
        gets exactly what was sent for it the first time, as a CRM's retry does."""
        if self.kind == "pulse":
            return [VendorEvent(event, [event])]
        if event.get("pipeline", "default") not in self.first_stage:
            return []
        key = f"{event.get('pipeline', 'default')}|{event['lead_id']}|{event['event_id']}"
        if key in self.sent:
            return self.sent[key]
        shaped = getattr(self, self.kind)(event)
        self.sent[key] = shaped
        if len(self.sent) > _REMEMBER:
            self.sent.popitem(last=False)
        return shaped

    # -- HubSpot: one element per property change
    def hubspot(self, e: dict[str, Any]) -> list[VendorEvent]:
        pipeline = e.get("pipeline", "default")
        t = _ms(e["occurred_at"])
        at = _z(datetime.fromtimestamp(t / 1000, timezone.utc))
        out = []

        def element(prop: str, value: Any) -> dict[str, Any]:
            return {"eventId": zlib.crc32(f"{e['event_id']}:{prop}".encode()), "subscriptionId": _SUBSCRIPTIONS[prop],
                    "portalId": 62515, "appId": 54321, "occurredAt": t, "subscriptionType": "deal.propertyChange",
                    "attemptNumber": 0, "objectId": e["lead_id"], "propertyName": prop,
                    "propertyValue": value, "changeSource": "CRM"}

        base = {"lead_id": self.lead(e), "occurred_at": at}
        kind = e["type"]
        stage = e.get("stage") or self.first_stage[pipeline] if kind == "lead.created" else e.get("to_stage")
        if kind == "deal.closed":
            crm = self.closed_id.get((pipeline, e["outcome"]))
            if crm is not None:
                out.append(VendorEvent(element("dealstage", crm), [
                    {"type": "deal.closed", **base, "pipeline": pipeline, "outcome": e["outcome"]}]))
        elif stage is not None:
            out.append(VendorEvent(element("dealstage", self.crm_stage(pipeline, stage)), [
                {"type": "lead.stage_changed", **base, "pipeline": pipeline, "to_stage": stage}]))
        if isinstance(e.get("owner"), str) and e["owner"]:
            crm_owner = self.owner_id.get(e["owner"], e["owner"])
            out.append(VendorEvent(element("hubspot_owner_id", crm_owner), [
                {"type": "lead.updated", **base, "pipeline": p, **self.owner_fields(crm_owner)}
                for p in self.source.pipelines]))
        if isinstance(e.get("amount"), (int, float)) and not isinstance(e["amount"], bool):
            out.append(VendorEvent(element("amount", str(e["amount"])), [
                {"type": "lead.updated", **base, "pipeline": p, "amount": e["amount"]}
                for p in self.source.pipelines]))
        return out

    # -- Pipedrive v2: one payload per event, data = the deal now, previous = what changed
    def pipedrive(self, e: dict[str, Any]) -> list[VendorEvent]:
        pipeline = e.get("pipeline", "default")
        deal = self.deals.setdefault(e["lead_id"], {"status": "open", "stage": None, "value": None,
                                                    "owner": None, "currency": None})
        before = dict(deal)
        kind = e["type"]
        at = _z(_dt(e["occurred_at"]).replace(microsecond=0))
        if e.get("amount") is not None:
            deal["value"] = e["amount"]
        if isinstance(e.get("currency"), str):
            deal["currency"] = e["currency"]
        if isinstance(e.get("owner"), str):
            deal["owner"] = self.owner_id.get(e["owner"], e["owner"])
        previous: dict[str, Any] = {}
        fields = {"pipeline": pipeline}
        if kind == "lead.created":
            deal["stage"] = (pipeline, e.get("stage") or self.first_stage[pipeline])
            action, typ = "create", "lead.created"
            fields["stage"] = deal["stage"][1]
        elif kind == "lead.stage_changed":
            deal["stage"] = (pipeline, e["to_stage"])
            action, typ = "change", "lead.stage_changed"
            if before["status"] != "open":
                previous["status"] = before["status"]
                deal["status"] = "open"
            else:
                previous["stage_id"] = self._pd_stage(before["stage"])
            fields["to_stage"] = e["to_stage"]
        elif kind == "deal.closed":
            if deal["stage"] is None:
                deal["stage"] = (pipeline, self.first_stage[pipeline])
            action, typ = "change", "deal.closed"
            previous["status"] = before["status"]
            deal["status"] = e["outcome"]
            fields["outcome"] = e["outcome"]
            if e["outcome"] == "lost" and isinstance(e.get("reason"), str) and e["reason"]:
                fields["reason"] = e["reason"]
        else:
            action, typ = "change", "lead.updated"
            if e.get("amount") is not None:
                previous["value"] = before["value"]
            if isinstance(e.get("owner"), str):
                previous["owner_id"] = before["owner"]
            if not previous or deal["stage"] is None:
                return []
        if deal["stage"] is None:
            deal["stage"] = (pipeline, self.first_stage[pipeline])
        fields["pipeline"] = deal["stage"][0]
        data = {"id": e["lead_id"], "stage_id": self._pd_stage(deal["stage"]),
                "status": "open" if action == "create" else deal["status"],
                "value": deal["value"], "currency": deal["currency"], "owner_id": deal["owner"],
                "add_time": at.replace("T", " ").rstrip("Z"), "update_time": at, "stage_change_time": at,
                "won_time": at if deal["status"] == "won" else None,
                "lost_time": at if deal["status"] == "lost" else None,
                "lost_reason": fields.get("reason")}
        payload = {"meta": {"action": action, "entity": "deal", "id": str(uuid.uuid5(_NS, e["event_id"])),
                            "entity_id": e["lead_id"], "timestamp": at, "version": "2.0", "attempt": 1},
                   "data": data, "previous": previous if action == "change" else None}
        carried: dict[str, Any] = {}
        if deal["value"] is not None:
            carried["amount"] = deal["value"]
        if deal["currency"] is not None:
            carried["currency"] = deal["currency"]
        carried.update(self.owner_fields(deal["owner"]))
        return [VendorEvent(payload, [{"type": typ, "lead_id": self.lead(e), "occurred_at": at,
                                       **carried, **fields}])]

    def _pd_stage(self, stage: tuple[str, str] | None) -> Any:
        if stage is None:
            return None
        crm = self.crm_stage(*stage)
        return int(crm) if crm.isdigit() else crm

    # -- Close: opportunity created / updated
    def close(self, e: dict[str, Any]) -> list[VendorEvent]:
        pipeline = e.get("pipeline", "default")
        deal = self.deals.setdefault(e["lead_id"], {"status": None, "type": "active", "value": None,
                                                    "owner": None, "currency": None})
        before = dict(deal)
        kind = e["type"]
        moment = _dt(e["occurred_at"])
        at = _z(moment)
        if e.get("amount") is not None:
            deal["value"] = round(e["amount"] * 100)
        if isinstance(e.get("currency"), str):
            deal["currency"] = e["currency"]
        if isinstance(e.get("owner"), str):
            deal["owner"] = self.owner_id.get(e["owner"], e["owner"])
        changed: list[str] = []
        fields: dict[str, Any] = {}
        if kind in ("lead.created", "lead.stage_changed"):
            stage = e.get("stage") or self.first_stage[pipeline] if kind == "lead.created" else e["to_stage"]
            deal["status"], deal["type"] = self.crm_stage(pipeline, stage), "active"
            action = "created" if kind == "lead.created" else "updated"
            changed = ["status_id", "status_label"]
            fields = {"type": kind, "pipeline": pipeline, ("stage" if kind == "lead.created" else "to_stage"): stage}
        elif kind == "deal.closed":
            crm = self.closed_id.get((pipeline, e["outcome"]))
            if crm is None:
                return []
            deal["status"], deal["type"] = crm, e["outcome"]
            action, changed = "updated", ["status_id", "status_label", "status_type"]
            fields = {"type": "deal.closed", "pipeline": pipeline, "outcome": e["outcome"]}
        else:
            action = "updated"
            changed = [f for f, k in (("value", "amount"), ("user_id", "owner")) if e.get(k) is not None]
            if not changed or deal["status"] is None:
                return []
            fields = {"type": "lead.updated", "pipeline": self.source.target(deal["status"]).pipeline}
        data = {"id": e["lead_id"], "status_id": deal["status"], "status_type": deal["type"], "value": deal["value"],
                "value_currency": deal["currency"], "user_id": deal["owner"]}
        payload = {"subscription_id": "whsub_demo", "event": {
            "id": "ev_" + uuid.uuid5(_NS, e["event_id"]).hex, "object_type": "opportunity", "action": action,
            "date_created": moment.replace(tzinfo=None).isoformat(), "changed_fields": changed,
            "previous_data": {"status_id": before["status"], "status_type": before["type"]}, "data": data}}
        carried: dict[str, Any] = {}
        if deal["value"] is not None:
            carried["amount"] = deal["value"] / 100
        if deal["currency"] is not None:
            carried["currency"] = deal["currency"]
        carried.update(self.owner_fields(deal["owner"]))
        return [VendorEvent(payload, [{"lead_id": self.lead(e), "occurred_at": at, **carried, **fields}])]


def body_of(kind: str, payloads: list[Any]) -> bytes:
    """One request body: HubSpot batches elements in an array; the others send one object each."""
    if kind == "hubspot":
        return orjson.dumps(payloads)
    if kind == "pulse":
        return b"\n".join(orjson.dumps(p) for p in payloads)
    assert len(payloads) == 1, "Pipedrive and Close send one event per request"
    return orjson.dumps(payloads[0])


def sign(kind: str, secret: bytes, body: bytes, url: str, now: float | None = None) -> dict[str, str]:
    """The headers the vendor sends (SPEC 8.3)."""
    now = time.time() if now is None else now
    headers = {"Content-Type": "application/json"}
    if kind == "pulse":
        ts = str(int(now))
        headers.update({"X-Pulse-Timestamp": ts, "X-Pulse-Signature": signatures.pulse_signature(secret, ts, body)})
    elif kind == "hubspot":
        ts = str(int(now * 1000))
        headers.update({"X-HubSpot-Request-Timestamp": ts,
                        "X-HubSpot-Signature-v3": signatures.hubspot_v3(secret, "POST", url, body, ts)})
    elif kind == "pipedrive":
        headers["Authorization"] = signatures.basic_authorization(secret)
    else:
        ts = str(int(now))
        headers.update({"close-sig-timestamp": ts, "close-sig-hash": signatures.close_signature(secret, ts, body)})
    return headers


def demo_source_yaml(config, kind: str, name: str, secret_env: str) -> dict[str, Any]:
    """A source entry whose CRM stage ids are our stage names (`pipeline:stage` outside
    the default pipeline), with a won and a lost id per pipeline: for `pulse dev` and tests."""
    entry: dict[str, Any] = {"kind": kind, "secret_env": secret_env}
    if kind == "pulse":
        return entry
    stages: dict[str, Any] = {}
    for p in config.pipelines.values():
        prefix = "" if p.name == "default" else f"{p.name}:"
        for s in p.stages:
            stages[prefix + s.name] = {"stage": s.name, "pipeline": p.name}
        stages[prefix + "closedwon"] = {"closed": "won", "pipeline": p.name}
        stages[prefix + "closedlost"] = {"closed": "lost", "pipeline": p.name}
    entry.update(pipeline=next(iter(config.pipelines)), stages=stages)
    return entry
