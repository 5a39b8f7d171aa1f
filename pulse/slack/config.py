"""The `slack:` section of the pipeline configuration: types, validation, routing.

`pulse.config.load_config` keeps top-level sections it does not know in
`Config.extra`; this module validates `extra["slack"]` and raises
`ConfigError(file, key, problem)` (exit code 2) like the rest of the configuration.

    slack:
      default_channel: C0SALES            # required: where an alert goes when no rule matches
      crm_url: https://crm.example.com/leads/{lead_id}
      users: {alice@example.com: U0ALICE} # owner (as in the CRM) -> Slack user ID, for mentions
      routes:                             # in order; the first match wins; `continue: true`: also
        - match: {level: 3}
          channel: C0MANAGERS
          continue: true
        - match: {pipeline: enterprise, level: [2, 3]}
          channels: [C0ENTERPRISE]
      resolve: both                       # update | reply | both
      digest: {at: "08:00", by: owner}
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any, Mapping

from pulse.config import Config, ConfigChecker, ConfigError, kind_of, show_value  # one validator style for the whole file

MATCH_KEYS = ("pipeline", "team", "owner", "level", "severity", "type")
SECTION_KEYS = ("default_channel", "crm_url", "users", "routes", "resolve", "digest", "currency",
                "ledger_ttl", "claim_lease", "retry", "request_timeout")
ROUTE_KEYS = ("match", "channel", "channels", "continue")
DIGEST_KEYS = ("at", "by", "channel", "channels")
RETRY_KEYS = ("initial", "max")
RESOLVE_MODES = ("update", "reply", "both")
URL_FIELDS = ("lead_id", "pipeline", "stage", "owner", "team")
_USER_RE = re.compile(r"[UW][A-Z0-9]{2,}")
_TIME_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True)
class Route:
    match: Mapping[str, tuple]          # key -> accepted values (any of)
    channels: tuple[str, ...]
    cont: bool = False

    def matches(self, alert: Mapping[str, Any]) -> bool:
        for key, accepted in self.match.items():
            value = alert.get(key)
            if key == "level":
                if value not in accepted:
                    return False
            elif value is None or str(value) not in accepted:
                return False
        return True


@dataclass(frozen=True)
class Digest:
    at_minute: int                      # minutes after 00:00 UTC
    by: str                             # "owner" | "team"
    channel: str | None = None          # where groups without a DM or team channel go
    channels: Mapping[str, str] = field(default_factory=dict)   # team -> channel (by: team)

    @property
    def at(self) -> str:
        return f"{self.at_minute // 60:02d}:{self.at_minute % 60:02d}"


@dataclass(frozen=True)
class SlackConfig:
    default_channel: str
    crm_url: str | None = None
    users: Mapping[str, str] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    resolve: str = "both"
    digest: Digest | None = None
    currency: str = ""
    ledger_ttl_s: int = 90 * 86400
    claim_lease_s: float = 30.0
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    request_timeout_s: float = 10.0
    source: str = "<config>"

    def route(self, alert: Mapping[str, Any]) -> list[str]:
        """The channels of an alert. Rules are tried in order; a matching rule adds its
        channels and ends the search, unless it has `continue: true` ("also send to").
        When the search reaches the end (no rule, or only `continue` rules, matched),
        the default channel is added."""
        out: list[str] = []
        for rule in self.routes:
            if rule.matches(alert):
                out.extend(c for c in rule.channels if c not in out)
                if not rule.cont:
                    return out
        if self.default_channel not in out:
            out.append(self.default_channel)
        return out

    def resolve_channels(self, alert: Mapping[str, Any]) -> list[str]:
        """Where a `lead.stale_resolved` may have something to update: the channels any
        `lead.stale` level of the same stay up to its level was routed to."""
        level = alert.get("level") if isinstance(alert.get("level"), int) else 1
        out: list[str] = []
        for lvl in range(1, max(1, level) + 1):
            probe = {**alert, "type": "lead.stale", "level": lvl,
                     "severity": {1: "warning", 2: "high", 3: "critical"}.get(lvl, alert.get("severity"))}
            out.extend(c for c in self.route(probe) if c not in out)
        return out

    def lead_url(self, alert: Mapping[str, Any]) -> str | None:
        if not self.crm_url:
            return None
        from urllib.parse import quote

        values = {k: quote(str(alert.get(k) or ""), safe="") for k in URL_FIELDS}
        return self.crm_url.format(**values)

    def mention(self, owner: Any) -> str | None:
        user = self.users.get(owner) if isinstance(owner, str) else None
        return f"<@{user}>" if user else None


def slack_config(config: Config) -> SlackConfig:
    """Validate `config.extra["slack"]` (ConfigError when missing or invalid)."""
    check = _SlackChecker(config.source)
    if "slack" not in config.extra:
        raise check.fail(("slack",), "missing: `pulse slack` needs a slack section with at least "
                                     "default_channel (see docs/slack.md)")
    return check.section(config.extra["slack"])


class _SlackChecker(ConfigChecker):
    def mapping(self, path: tuple, value: Any, allowed: tuple[str, ...], where: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"{where} must be a mapping, got {kind_of(value)}")
        for key in value:
            if key not in allowed:
                raise self.unknown_key(path, key, allowed, where)
        return value

    def channel(self, path: tuple, value: Any) -> str:
        name = self.name(path, value, "a channel")
        if name.strip() != name or " " in name:
            raise self.fail(path, f"{show_value(value)} is not a channel: use a channel ID like C0123ABCD "
                                  "or a name like #sales")
        return name

    def seconds(self, path: tuple, value: Any, default: float) -> float:
        if value is None:
            return default
        seconds = self.duration(path, value)
        if seconds <= 0:
            raise self.fail(path, f"{show_value(value)} must be longer than zero")
        return float(seconds)

    def section(self, body: Any) -> SlackConfig:
        path = ("slack",)
        body = self.mapping(path, body, SECTION_KEYS, "the slack section")
        if "default_channel" not in body:
            raise self.fail(path + ("default_channel",), "missing: the channel for alerts no route matches")
        default_channel = self.channel(path + ("default_channel",), body["default_channel"])
        crm_url = body.get("crm_url")
        if crm_url is not None:
            crm_url = self.url_template(path + ("crm_url",), crm_url)
        users = self.users(path + ("users",), body.get("users"))
        routes = self.routes(path + ("routes",), body.get("routes"))
        resolve = body.get("resolve", "both")
        if resolve not in RESOLVE_MODES:
            raise self.fail(path + ("resolve",), f"{show_value(resolve)} is not one of {', '.join(RESOLVE_MODES)}")
        digest = None if body.get("digest") is None else self.digest(path + ("digest",), body["digest"])
        currency = body.get("currency", "")
        if not isinstance(currency, str):
            raise self.fail(path + ("currency",), f"must be a string like EUR or $, got {kind_of(currency)}")
        retry = self.mapping(path + ("retry",), body.get("retry") or {}, RETRY_KEYS, "retry")
        initial = self.seconds(path + ("retry", "initial"), retry.get("initial"), 1.0)
        maximum = self.seconds(path + ("retry", "max"), retry.get("max"), 60.0)
        if maximum < initial:
            raise self.fail(path + ("retry", "max"), f"must not be shorter than retry.initial ({initial:g}s)")
        return SlackConfig(
            default_channel=default_channel, crm_url=crm_url, users=users, routes=routes, resolve=resolve,
            digest=digest, currency=currency,
            ledger_ttl_s=int(self.seconds(path + ("ledger_ttl",), body.get("ledger_ttl"), 90 * 86400)),
            claim_lease_s=self.seconds(path + ("claim_lease",), body.get("claim_lease"), 30.0),
            retry_initial_s=initial, retry_max_s=maximum,
            request_timeout_s=self.seconds(path + ("request_timeout",), body.get("request_timeout"), 10.0),
            source=self.source)

    def url_template(self, path: tuple, value: Any) -> str:
        text = self.name(path, value, "the CRM URL template")
        if not re.match(r"https?://", text):
            raise self.fail(path, f"{show_value(text)} must start with http:// or https://")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        except ValueError as e:
            raise self.fail(path, f"{show_value(text)} is not a valid template ({e}); write literal braces as {{{{ }}}}")
        for name in fields:
            if name not in URL_FIELDS:
                raise self.fail(path, f"unknown placeholder {{{name}}} (allowed: "
                                      f"{', '.join('{' + f + '}' for f in URL_FIELDS)})")
        if "lead_id" not in fields:
            raise self.fail(path, "the template must contain {lead_id}, e.g. https://crm.example.com/leads/{lead_id}")
        return text

    def users(self, path: tuple, value: Any) -> dict[str, str]:
        out = {}
        for owner, user in self.optional_mapping(path, value, "a mapping of CRM owner to Slack user ID").items():
            key = path + (str(owner),)
            if not isinstance(owner, str) or not owner:
                raise self.fail(key, f"an owner must be a non-empty string, got {show_value(owner)}")
            if not isinstance(user, str) or not _USER_RE.fullmatch(user):
                raise self.fail(key, f"{show_value(user)} is not a Slack user ID (like U0123ABCD; find it in the "
                                     "user's profile, \u22ee \u2192 Copy member ID)")
            out[owner] = user
        return out

    def routes(self, path: tuple, value: Any) -> tuple[Route, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list of rules like {{match: {{level: 3}}, channel: C0MGRS}}, "
                                  f"got {kind_of(value)}")
        return tuple(self.route(path + (i,), rule) for i, rule in enumerate(value))

    def route(self, path: tuple, rule: Any) -> Route:
        rule = self.mapping(path, rule, ROUTE_KEYS, "a route")
        match = self.mapping(path + ("match",), rule.get("match") or {}, MATCH_KEYS, "match")
        accepted: dict[str, tuple] = {}
        for key, want in match.items():
            values = want if isinstance(want, list) else [want]
            if not values:
                raise self.fail(path + ("match", key), "an empty list matches nothing")
            if key == "level":
                for v in values:
                    if isinstance(v, bool) or v not in (1, 2, 3):
                        raise self.fail(path + ("match", key), f"{show_value(v)} is not a level (1, 2 or 3)")
            elif key == "severity":
                for v in values:
                    if v not in ("warning", "high", "critical"):
                        raise self.fail(path + ("match", key), f"{show_value(v)} is not a severity "
                                                               "(warning, high or critical)")
            else:
                values = [self.name(path + ("match", key), v, f"a {key}") for v in values]
            accepted[key] = tuple(values)
        if ("channel" in rule) == ("channels" in rule):
            raise self.fail(path, "a route needs exactly one of channel or channels")
        if "channel" in rule:
            channels = (self.channel(path + ("channel",), rule["channel"]),)
        else:
            raw = rule["channels"]
            if not isinstance(raw, list) or not raw:
                raise self.fail(path + ("channels",), f"must be a non-empty list of channels, got {kind_of(raw)}")
            channels = tuple(self.channel(path + ("channels", i), c) for i, c in enumerate(raw))
        cont = rule.get("continue", False)
        if not isinstance(cont, bool):
            raise self.fail(path + ("continue",), f"must be true or false, got {show_value(cont)}")
        return Route(match=accepted, channels=channels, cont=cont)

    def digest(self, path: tuple, value: Any) -> Digest:
        body = self.mapping(path, value, DIGEST_KEYS, "digest")
        at = body.get("at", "08:00")
        m = _TIME_RE.fullmatch(at) if isinstance(at, str) else None
        if not m:
            raise self.fail(path + ("at",), f'{show_value(at)} is not a time of day like "08:00" (UTC, quoted)')
        by = body.get("by", "owner")
        if by not in ("owner", "team"):
            raise self.fail(path + ("by",), f"{show_value(by)} is not one of owner, team")
        channel = None if body.get("channel") is None else self.channel(path + ("channel",), body["channel"])
        channels = body.get("channels") or {}
        if not isinstance(channels, dict):
            raise self.fail(path + ("channels",), f"must be a mapping of team to channel, got {kind_of(channels)}")
        teams = {str(t): self.channel(path + ("channels", str(t)), c) for t, c in channels.items()}
        return Digest(at_minute=int(m.group(1)) * 60 + int(m.group(2)), by=by, channel=channel, channels=teams)


__all__ = ["SlackConfig", "Route", "Digest", "slack_config", "ConfigError"]
