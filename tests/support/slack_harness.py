"""Shared by the `pulse slack` tests (tests/pulse/slack/): the test configuration, a running
notifier against the fake Slack Web API and a real Redis, and alert builders."""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid

from pulse.slack.api import WebApi
from pulse.slack.ledger import Ledger
from pulse.slack.metrics import Metrics
from pulse.slack.notifier import Notifier

CONFIG = """
pipelines:
  default:
    stages:
      - {name: new, stale_after: 3d}
      - {name: proposal, stale_after: 21d}
      - {name: negotiation, stale_after: 14d}
slack:
  default_channel: C0SALES
  crm_url: https://crm.example.com/leads/{lead_id}
  users: {alice@example.com: U0ALICE}
  routes:
    - match: {level: 3}
      channel: C0MANAGERS
      continue: true
    - match: {team: emea}
      channel: "#emea"
    - match: {team: ghost}
      channel: C0GHOST
  digest: {at: "08:00", by: owner, channel: C0DIGEST}
"""


@contextlib.asynccontextmanager
async def running(cfg, slack, redis_url, prefix, *, token=None, owner=None):
    api = WebApi(token or slack.token, slack.url, timeout=cfg.request_timeout_s)
    ledger = Ledger.from_url(redis_url, prefix, owner or f"test-{uuid.uuid4().hex[:6]}", cfg.ledger_ttl_s)
    notifier = Notifier(cfg, api, ledger, Metrics())
    try:
        yield notifier
    finally:
        await notifier.close()
        await api.close()
        await ledger.close()


def stale(lead: str, level: int = 1, *, stage: str = "proposal", since: str = "2026-02-01T09:00:00Z",
          owner: str = "bob@example.com", team: str = "dach", amount=12500.0, age: float | None = None) -> dict:
    alert_id = hashlib.sha256(f"stale|{lead}|{stage}|{since}|{level}".encode()).hexdigest()[:32]
    severity = {1: "warning", 2: "high", 3: "critical"}[level]
    age = age if age is not None else 21.0 * level + 1
    return {"alert_id": alert_id, "type": "lead.stale", "severity": severity,
            "detected_at": "2026-03-31T12:00:00Z", "pipeline": "default", "lead_id": lead, "stage": stage,
            "since": since, "age_days": age, "stale_after_days": 21.0, "level": level, "owner": owner,
            "team": team, "amount": amount,
            "summary": f"Lead {lead} has been in {stage} for {age:.0f} days (limit 21 days)"}


def resolved(alert: dict, to_stage: str = "negotiation") -> dict:
    alert_id = hashlib.sha256(f"resolved|{alert['lead_id']}|{alert['stage']}|{alert['since']}".encode()).hexdigest()[:32]
    return {**alert, "alert_id": alert_id, "type": "lead.stale_resolved", "detected_at": "2026-04-02T10:00:00Z",
            "age_days": alert["age_days"] + 2, "resolved_by": "stage_changed", "to_stage": to_stage,
            "summary": f"Lead {alert['lead_id']} moved from {alert['stage']} to {to_stage}"}


def leads_in(messages) -> list[str]:
    return [m["metadata"]["event_payload"]["lead_id"] for m in messages]


def run(coro):
    return asyncio.run(coro)

