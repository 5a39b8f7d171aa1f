"""`pulse slack` without a network: the slack: configuration section, routing, Block Kit
messages and the settings that carry the token."""
from __future__ import annotations

import argparse
import textwrap

import pytest

from pulse.cli import main
from pulse.config import ConfigError, load_config
from pulse.settings import add_arguments, add_slack_arguments, from_args
from pulse.slack import blocks
from pulse.slack.config import slack_config

PIPELINES = """
pipelines:
  default:
    stages:
      - {name: new, stale_after: 3d}
      - {name: proposal, stale_after: 21d}
  enterprise:
    stages:
      - {name: new, stale_after: 5d}
"""

SLACK = """
slack:
  default_channel: C0SALES
  crm_url: https://crm.example.com/leads/{lead_id}?p={pipeline}
  currency: EUR
  users:
    alice@example.com: U0ALICE
  routes:
    - match: {level: 3}
      channel: C0MANAGERS
      continue: true
    - match: {pipeline: enterprise}
      channels: [C0ENTERPRISE]
    - match: {team: emea, level: [2, 3]}
      channel: C0EMEA
  resolve: both
  digest: {at: "08:30", by: team, channels: {emea: C0EMEA}}
"""


def cfg_from(tmp_path, slack: str = SLACK):
    path = tmp_path / "pulse.yaml"
    path.write_text(PIPELINES + textwrap.dedent(slack))
    return slack_config(load_config(path))


def alert(**over) -> dict:
    base = {"alert_id": "a" * 32, "type": "lead.stale", "severity": "high", "level": 2,
            "detected_at": "2026-03-31T12:00:00Z", "pipeline": "default", "lead_id": "L-17", "stage": "proposal",
            "since": "2026-02-01T09:00:00Z", "age_days": 58.1, "stale_after_days": 21.0,
            "owner": "alice@example.com", "team": "dach", "amount": 12500.0,
            "summary": "Lead L-17 has been in proposal for 58 days (limit 21 days)"}
    return {**base, **over}


def test_routing_first_match_continue_and_default(tmp_path):
    cfg = cfg_from(tmp_path)
    assert cfg.route(alert()) == ["C0SALES"]                                        # no rule: default
    assert cfg.route(alert(level=3, severity="critical")) == ["C0MANAGERS", "C0SALES"]  # continue, then default
    assert cfg.route(alert(pipeline="enterprise")) == ["C0ENTERPRISE"]
    assert cfg.route(alert(pipeline="enterprise", level=3)) == ["C0MANAGERS", "C0ENTERPRISE"]
    assert cfg.route(alert(team="emea", level=1)) == ["C0SALES"]
    assert cfg.route(alert(team="emea", level=2)) == ["C0EMEA"]
    # a resolution goes wherever any level up to its own went
    assert cfg.resolve_channels(alert(type="lead.stale_resolved", level=3)) == ["C0SALES", "C0MANAGERS"]
    assert cfg.resolve_channels(alert(type="lead.stale_resolved", team="emea", level=3)) == \
        ["C0SALES", "C0EMEA", "C0MANAGERS"]
    assert cfg.digest.at == "08:30" and cfg.digest.by == "team"


@pytest.mark.parametrize("slack, key, words", [
    ("slack: {default_chanel: C0X}", "slack.default_chanel", 'did you mean "default_channel"'),
    ("slack: {crm_url: 'https://x/{lead_id}'}", "slack.default_channel", "missing"),
    ("slack: {default_channel: C0X, users: {bob: bob}}", "slack.users.bob", "not a Slack user ID"),
    ("slack: {default_channel: C0X, users: [bob]}", "slack.users",
     "must be a mapping of CRM owner to Slack user ID, got a list"),
    ("slack: {default_channel: C0X, crm_url: 'https://x/{id}'}", "slack.crm_url", "unknown placeholder {id}"),
    ("slack: {default_channel: C0X, crm_url: 'https://x/leads'}", "slack.crm_url", "must contain {lead_id}"),
    ("slack: {default_channel: C0X, routes: [{match: {levl: 3}, channel: C0M}]}",
     "slack.routes[0].match.levl", 'did you mean "level"'),
    ("slack: {default_channel: C0X, routes: [{match: {level: 4}, channel: C0M}]}",
     "slack.routes[0].match.level", "not a level"),
    ("slack: {default_channel: C0X, routes: [{match: {level: 3}}]}", "slack.routes[0]", "exactly one of"),
    ("slack: {default_channel: C0X, resolve: edit}", "slack.resolve", "not one of update, reply, both"),
    ("slack: {default_channel: C0X, digest: {at: '25:00'}}", "slack.digest.at", "not a time of day"),
    ("slack: {default_channel: C0X, retry: {initial: 10s, max: 1s}}", "slack.retry.max", "not be shorter"),
    ("slack: {default_channel: 'sales team'}", "slack.default_channel", "not a channel"),
])
def test_config_errors_name_file_key_and_problem(tmp_path, slack, key, words):
    with pytest.raises(ConfigError) as info:
        cfg_from(tmp_path, slack)
    assert info.value.key == key and words in info.value.problem, str(info.value)
    assert info.value.file.endswith("pulse.yaml")


def test_missing_section_and_cli_exit_2(tmp_path, capsys, monkeypatch):
    path = tmp_path / "pulse.yaml"
    path.write_text(PIPELINES)
    with pytest.raises(ConfigError, match="slack: missing"):
        slack_config(load_config(path))
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-never-printed-123456")
    assert main(["slack", "--config", str(path), "--redis", "redis://127.0.0.1:1"]) == 2
    err = capsys.readouterr()
    assert "configuration error" in err.err and "slack" in err.err and err.out == ""
    assert "xoxb-never-printed" not in err.err
    # no credentials at all: exit 2 too
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    path.write_text(PIPELINES + "slack: {default_channel: C0X}\n")
    assert main(["slack", "--config", str(path), "--redis", "redis://127.0.0.1:1"]) == 2
    assert "no Slack credentials" in capsys.readouterr().err


def test_stale_message_block_kit(tmp_path):
    cfg = cfg_from(tmp_path)
    body = blocks.stale_message(alert(lead_id="L-17 <&>"), cfg, "a" * 32)
    head = body["blocks"][0]["text"]["text"]
    assert head.startswith(":large_orange_circle: *Stale lead* <https://crm.example.com/leads/L-17%20%3C%26%3E?p=default|")
    assert "L-17 &lt;&amp;&gt;>" in head and "*proposal*" in head and "*58 days*" in head and "limit 21 days" in head
    attachment = body["attachments"][0]
    assert attachment["color"] == "#E8912D"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in attachment["blocks"][0]["fields"]}
    assert fields["*Owner*"] == "<@U0ALICE>"
    assert fields["*Amount*"] == "EUR 12,500"
    assert fields["*Level*"] == "Level 2 · high"
    assert fields["*In stage for*"] == "58 days" and fields["*Limit*"] == "21 days"
    button = attachment["blocks"][1]["elements"][0]
    assert button["url"].startswith("https://crm.example.com/leads/L-17") and button["text"]["text"] == "Open in CRM"
    assert body["metadata"] == {"event_type": "pulse_alert", "event_payload": {
        "delivery_id": "a" * 32, "alert_id": "a" * 32, "type": "lead.stale", "lead_id": "L-17 <&>",
        "pipeline": "default", "level": 2}}
    assert "<@U0ALICE>" in body["text"]                              # the notification mentions the owner
    # severities: emoji and colour
    for severity, (emoji, colour, _) in blocks.SEVERITY_STYLE.items():
        b = blocks.stale_message(alert(severity=severity, owner="nobody"), cfg, "x")
        assert b["blocks"][0]["text"]["text"].startswith(emoji) and b["attachments"][0]["color"] == colour
        assert "nobody" in str(b["attachments"][0]["blocks"][0]["fields"])


def test_resolved_and_digest_messages(tmp_path):
    cfg = cfg_from(tmp_path)
    resolved = alert(type="lead.stale_resolved", alert_id="r" * 32, resolved_by="stage_changed",
                     to_stage="negotiation", age_days=60.0, summary="Lead L-17 moved from proposal to negotiation")
    update = blocks.resolved_update(alert(), resolved, cfg, "a" * 32)
    assert update["attachments"][0]["color"] == "#2EB67D"
    assert "*resolved*, moved to *negotiation* after 60 days" in update["blocks"][0]["text"]["text"]
    assert update["metadata"]["event_payload"]["delivery_id"] == "a" * 32
    reply = blocks.resolved_reply({**resolved, "resolved_by": "closed", "outcome": "won"}, cfg, "r" * 32)
    assert "closed (won)" in reply["blocks"][0]["text"]["text"]
    many = [alert(lead_id=f"L-{i}", level=1 + i % 3, severity=("warning", "high", "critical")[i % 3])
            for i in range(45)]
    digest = blocks.digest_message("team", "dach", many, cfg, "2026-03-31", "digest-x")
    text = "\n".join(b["text"]["text"] for b in digest["blocks"] if b["type"] == "section")
    assert "Stale leads for team *dach*" in text and "45 open" in text and "EUR 562,500" in text
    assert "… and 5 more" in text and text.index(":red_circle:") < text.index(":large_yellow_circle:")


def test_settings_token_from_env_or_file_never_in_repr(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    add_slack_arguments(parser)
    s = from_args(parser.parse_args([]), {"SLACK_BOT_TOKEN": "xoxb-env-token-1234",
                                          "PULSE_SLACK_API_URL": "http://127.0.0.1:9/api/"})
    assert s.slack_token == "xoxb-env-token-1234" and s.slack_api_url == "http://127.0.0.1:9/api/"
    assert "xoxb" not in repr(s)
    token_file = tmp_path / "token"
    token_file.write_text("xoxb-file-token-5678\n")
    s = from_args(parser.parse_args(["--slack-token-file", str(token_file), "--slack-api-url", "http://x/"]),
                  {"SLACK_BOT_TOKEN": "xoxb-env-token-1234"})
    assert s.slack_token == "xoxb-file-token-5678" and s.slack_api_url == "http://x/"    # the option wins
    with pytest.raises(SystemExit, match="cannot read the Slack token file"):
        from_args(parser.parse_args(["--slack-token-file", str(tmp_path / "missing")]), {})
    # commands without the Slack options never read the token
    plain = argparse.ArgumentParser()
    add_arguments(plain)
    assert from_args(plain.parse_args([]), {"SLACK_BOT_TOKEN": "xoxb-env-token-1234"}).slack_token is None


def test_pipeline_level_alert_has_no_lead_fields(tmp_path):
    cfg = cfg_from(tmp_path)
    body = blocks.stale_message({"alert_id": "p" * 32, "type": "pipeline.backlog", "severity": "critical",
                                 "pipeline": "default", "summary": "Intake stalled"}, cfg, "p" * 32)
    assert body["blocks"][0]["text"]["text"] == ":red_circle: *pipeline.backlog*: Intake stalled"
    assert [b["type"] for b in body["attachments"][0]["blocks"]] == ["context"]
    assert cfg.route({"type": "pipeline.backlog", "severity": "critical"}) == ["C0SALES"]
