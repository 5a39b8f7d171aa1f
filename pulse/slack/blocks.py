"""Block Kit messages for alerts (SPEC 6): pure functions from an alert to a chat.postMessage body.

A message is a top-level section (severity emoji + the alert's one-line summary, and
the lead linked to the CRM), then one coloured attachment holding the details (fields,
an "Open in CRM" button, a context line). Slack shows colour only on attachments, so
severity is both an emoji (every client, notifications) and a colour bar.

Every message carries Slack message metadata `{"event_type": "pulse_alert",
"event_payload": {"delivery_id": ...}}`: that is how a restarted notifier finds a
message it posted but did not record (ledger.py, notifier.py).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from .config import SlackConfig

EVENT_TYPE = "pulse_alert"
SEVERITY_STYLE = {          # severity -> (emoji, colour, label)
    "warning": (":large_yellow_circle:", "#ECB22E", "Level 1 · warning"),
    "high": (":large_orange_circle:", "#E8912D", "Level 2 · high"),
    "critical": (":red_circle:", "#E01E5A", "Level 3 · critical"),
}
RESOLVED_STYLE = (":white_check_mark:", "#2EB67D")
_UNKNOWN_STYLE = (":grey_question:", "#868686", "")


def escape(text: Any) -> str:
    """Slack mrkdwn escaping of a value from the CRM (&, <, > are control characters)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def human_days(days: Any) -> str:
    if not isinstance(days, (int, float)):
        return "—"
    if days < 1:
        hours = round(days * 24)
        return f"{hours} hour" + ("" if hours == 1 else "s")
    whole = round(days, 1) if days < 10 else round(days)
    text = f"{whole:g}"
    return f"{text} day" + ("" if text == "1" else "s")


def money(amount: Any, currency: str = "") -> str:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        return "—"
    text = f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.2f}"
    return f"{currency} {text}".strip() if currency and len(currency) > 1 else f"{currency}{text}"


def _style(alert: Mapping[str, Any]) -> tuple[str, str, str]:
    return SEVERITY_STYLE.get(alert.get("severity"), _UNKNOWN_STYLE)


def _lead_ref(alert: Mapping[str, Any], cfg: SlackConfig) -> str:
    lead = escape(alert.get("lead_id", "?"))
    url = cfg.lead_url(alert)
    return f"<{url}|{lead}>" if url else f"*{lead}*"


def _owner(alert: Mapping[str, Any], cfg: SlackConfig) -> str:
    owner = alert.get("owner")
    if not owner:
        return "—"
    return cfg.mention(owner) or escape(owner)


def metadata(delivery_id: str, alert: Mapping[str, Any]) -> dict:
    payload = {"delivery_id": delivery_id}
    for key in ("alert_id", "type", "lead_id", "pipeline", "level"):
        if alert.get(key) is not None:
            payload[key] = alert[key]
    return {"event_type": EVENT_TYPE, "event_payload": payload}


def _fields(alert: Mapping[str, Any], cfg: SlackConfig) -> list[dict]:
    style = _style(alert)
    pairs = [
        ("Lead", _lead_ref(alert, cfg)),
        ("Stage", escape(alert.get("stage") or "—")),
        ("In stage for", human_days(alert.get("age_days"))),
        ("Limit", human_days(alert.get("stale_after_days"))),
        ("Level", style[2] or escape(alert.get("severity") or "—")),
        ("Owner", _owner(alert, cfg)),
        ("Amount", money(alert.get("amount"), cfg.currency)),
        ("Pipeline", escape(alert.get("pipeline") or "—") + (f" · team {escape(alert['team'])}"
                                                              if alert.get("team") else "")),
    ]
    return [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in pairs]


def _details(alert: Mapping[str, Any], cfg: SlackConfig, context: str) -> list[dict]:
    if not alert.get("lead_id"):                # a pipeline-level alert: no lead fields, no CRM link
        return [{"type": "context", "elements": [{"type": "mrkdwn", "text": context}]}]
    blocks: list[dict] = [{"type": "section", "fields": _fields(alert, cfg)}]
    url = cfg.lead_url(alert)
    if url:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open in CRM"}, "url": url,
             "action_id": "open_lead"}]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return blocks


def _stale_headline(alert: Mapping[str, Any], cfg: SlackConfig) -> str:
    return (f"*Stale lead* {_lead_ref(alert, cfg)}: in *{escape(alert.get('stage', '?'))}* for "
            f"*{human_days(alert.get('age_days'))}* (limit {human_days(alert.get('stale_after_days'))})")


def stale_message(alert: Mapping[str, Any], cfg: SlackConfig, delivery_id: str) -> dict:
    """chat.postMessage arguments (without `channel`) for a `lead.stale` or another alert type."""
    emoji, colour, _ = _style(alert)
    if alert.get("type") == "lead.stale":
        headline = _stale_headline(alert, cfg)
    else:
        headline = f"*{escape(alert.get('type', 'alert'))}*: {escape(alert.get('summary', ''))}"
    context = (f"{escape(alert.get('type', 'alert'))} · detected {escape(alert.get('detected_at', '?'))}"
               f" · alert {escape(str(alert.get('alert_id', ''))[:12])}")
    owner = cfg.mention(alert.get("owner"))
    text = f"{emoji} {alert.get('summary') or alert.get('type')}" + (f" · {owner}" if owner else "")
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {headline}"}}],
        "attachments": [{"color": colour, "fallback": text, "blocks": _details(alert, cfg, context)}],
        "metadata": metadata(delivery_id, alert),
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _resolution(resolved: Mapping[str, Any]) -> str:
    if resolved.get("resolved_by") == "closed":
        return f"closed ({escape(resolved.get('outcome', '?'))})"
    return f"moved to *{escape(resolved.get('to_stage') or '?')}*"


def original_of(resolved: Mapping[str, Any], message: Mapping[str, Any]) -> dict:
    """The `lead.stale` a stay's message showed, for its resolved version: the ledger keeps
    only its id and level (ledger.py); the stay's fields come from the resolution, which
    describes the same stay. (A ledger entry written before that kept the whole alert.)"""
    if isinstance(message.get("alert"), Mapping):
        return dict(message["alert"])
    level = message.get("level") if message.get("level") in (1, 2, 3) else resolved.get("level")
    severity = {1: "warning", 2: "high", 3: "critical"}.get(level, resolved.get("severity"))
    return {**{k: v for k, v in resolved.items() if k not in ("resolved_by", "to_stage", "outcome", "summary")},
            "type": "lead.stale", "alert_id": message.get("alert_id"), "level": level, "severity": severity}


def resolved_update(original: Mapping[str, Any], resolved: Mapping[str, Any], cfg: SlackConfig,
                    delivery_id: str) -> dict:
    """chat.update arguments (without channel/ts): the original alert shown as resolved.

    `delivery_id` stays the original message's, so its metadata still identifies it."""
    emoji, colour = RESOLVED_STYLE
    headline = (f"~Stale lead~ {_lead_ref(original, cfg)}: *resolved*, {_resolution(resolved)} after "
                f"{human_days(resolved.get('age_days'))} in {escape(original.get('stage', '?'))}")
    context = (f"was {escape(original.get('severity', '?'))} · resolved "
               f"{escape(resolved.get('detected_at', '?'))} · alert {escape(str(original.get('alert_id', ''))[:12])}")
    text = f"{emoji} Resolved: {resolved.get('summary') or original.get('summary')}"
    return {
        "text": text,
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {headline}"}}],
        "attachments": [{"color": colour, "fallback": text, "blocks": _details(original, cfg, context)}],
        "metadata": metadata(delivery_id, original),
    }


def resolved_reply(resolved: Mapping[str, Any], cfg: SlackConfig, delivery_id: str) -> dict:
    """chat.postMessage arguments (without channel/thread_ts): the thread reply on resolution,
    or the stand-alone message when there is no original message to reply to."""
    emoji, colour = RESOLVED_STYLE
    text = (f"{emoji} Resolved: lead {_lead_ref(resolved, cfg)} {_resolution(resolved)} after "
            f"{human_days(resolved.get('age_days'))} in {escape(resolved.get('stage', '?'))}")
    owner = cfg.mention(resolved.get("owner"))
    return {
        "text": f"{emoji} {resolved.get('summary', 'resolved')}",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text + (f" · {owner}" if owner else "")}}],
        "metadata": metadata(delivery_id, resolved),
        "unfurl_links": False,
    }


MAX_DIGEST_LINES = 40


def digest_message(group_by: str, group: str, alerts: list[Mapping[str, Any]], cfg: SlackConfig, day: str,
                   delivery_id: str) -> dict:
    """One message summarising a group's (owner's or team's) open stale leads."""
    who = (cfg.mention(group) or escape(group)) if group_by == "owner" else f"team *{escape(group)}*"
    alerts = sorted(alerts, key=lambda a: (-(a.get("level") or 0), -(a.get("age_days") or 0), str(a.get("lead_id"))))
    total = sum(a.get("amount") or 0 for a in alerts if isinstance(a.get("amount"), (int, float)))
    header = (f":clipboard: *Stale leads for {who}* on {day}: {len(alerts)} open "
              f"({money(total, cfg.currency)} in play)")
    lines = []
    for a in alerts[:MAX_DIGEST_LINES]:
        emoji = _style(a)[0]
        lines.append(f"{emoji} {_lead_ref(a, cfg)} · {escape(a.get('stage', '?'))} for "
                     f"{human_days(a.get('age_days'))} (limit {human_days(a.get('stale_after_days'))})"
                     f" · {money(a.get('amount'), cfg.currency)}")
    if len(alerts) > MAX_DIGEST_LINES:
        lines.append(f"… and {len(alerts) - MAX_DIGEST_LINES} more")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
    for i in range(0, len(lines), 10):            # a section's text is limited to 3,000 characters
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines[i:i + 10])}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                   "Ages as of each lead's latest alert; from the alerts this notifier has seen."}]})
    text = f"Stale leads for {group}: {len(alerts)} open"
    return {"text": text, "blocks": blocks,
            "metadata": {"event_type": EVENT_TYPE, "event_payload": {"delivery_id": delivery_id, "digest": day}},
            "unfurl_links": False}


def parse_time(text: Any) -> float | None:
    """An RFC 3339 timestamp as epoch seconds (None when absent or malformed)."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
