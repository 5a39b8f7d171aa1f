"""Recovery's alert ledger: what the notifications topic says was raised, against the
lead records the changelog gave back (agents/live.py, LivePulse.restore).

A flush writes a partition's state, then its alerts (agents/batching.py). A worker can
die between the two, or a flush can lag behind a publish; the notifications topic is
the ledger that decides. These functions read it so a restart raises each alert
exactly once.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import msgspec

from pulse.schemas.parse import parse_timestamp
from pulse.streams.lead import Lead

if TYPE_CHECKING:
    from .live import PartitionState


def lead_key_of(alert: bytes) -> bytes | None:
    try:
        return msgspec.json.decode(alert)["lead_id"].encode()
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        return None

def unpublished_alerts(outboxes: dict[int, list[bytes]], alerts: list[bytes]) -> list[tuple[int, bytes]]:
    """The alerts of the last outbox of each partition that are not on the topic: the state
    that raised them was written, the worker died before they were (a flush writes the
    state, then the alerts)."""
    if not any(outboxes.values()):
        return []
    published = set()
    for raw in alerts:
        try:
            published.add(msgspec.json.decode(raw)["alert_id"])
        except (msgspec.DecodeError, KeyError, TypeError):
            continue
    out = []
    for p, outbox in outboxes.items():
        for raw in outbox:
            try:
                if msgspec.json.decode(raw)["alert_id"] not in published:
                    out.append((p, raw))
            except (msgspec.DecodeError, KeyError, TypeError):
                continue
    return out

def reconcile_alerts(states: dict[int, PartitionState], alerts: Iterable[bytes]) -> None:
    def find(pipeline: str, lead_id: str) -> Lead | None:
        for state in states.values():
            p = state.engine.pipelines.get(pipeline)
            lead = p.leads.get(lead_id) if p is not None else None
            if lead is not None:
                return lead
        return None

    for state in states.values():
        for p in state.engine.pipelines.values():
            for lead in p.leads.values():
                lead.alert_stage, lead.alert_stay, lead.alert_level = -1, -1, 0
    for raw in alerts:
        try:
            alert = msgspec.json.decode(raw)
            pipeline, lead = alert["pipeline"], find(alert["pipeline"], alert["lead_id"])
        except (msgspec.DecodeError, KeyError, TypeError):
            continue                                # not one of ours (e.g. a pipeline-health alert)
        if lead is None:
            continue
        stage = states[next(iter(states))].engine.pipelines[pipeline].config.stage_index.get(alert.get("stage"))
        since = parse_timestamp(alert.get("since") or "")
        if stage is None or since is None:
            continue
        if alert.get("type") == "lead.stale":
            if (lead.alert_stage, lead.alert_stay) == (stage, since) and lead.alert_level < 0:
                continue                            # resolved already: a late repeat changes nothing
            if (lead.alert_stage, lead.alert_stay) != (stage, since) or alert["level"] > lead.alert_level:
                lead.alert_stage, lead.alert_stay, lead.alert_level = stage, since, alert["level"]
        elif alert.get("type") == "lead.stale_resolved" and (lead.alert_stage, lead.alert_stay) == (stage, since):
            lead.alert_level = -abs(lead.alert_level)  # resolved: never raised nor resolved again
