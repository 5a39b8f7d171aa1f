"""Settings of the live commands (SPEC 7.1): one frozen object from options and environment.

Every setting has a command-line option and an environment variable; the option
wins. This is the only module that reads the environment.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from typing import Callable, Mapping, TypeVar

from pulse.config.load import load_config
from pulse.schemas.config import ConfigError
from pulse.schemas.settings import CLOCKS, Settings

DEV_PROFILE = dict(session_timeout=6.0, rebalance_timeout=6.0, heartbeat_interval=1.0, commit_interval=1.0)

# option -> (environment variable, type)
_ENV = {
    "broker": ("PULSE_BROKER", str),
    "config_path": ("PULSE_CONFIG", str),
    "clock": ("PULSE_CLOCK", str),
    "web_port": ("PULSE_WEB_PORT", int),
    "advertised_host": ("PULSE_ADVERTISED_HOST", str),
    "topic_prefix": ("PULSE_TOPIC_PREFIX", str),
    "redis_url": ("PULSE_REDIS_URL", str),
    "app_id": ("PULSE_APP_ID", str),
    "data_dir": ("PULSE_DATA_DIR", str),
    "commit_interval": ("PULSE_COMMIT_INTERVAL", float),
    "log_level": ("PULSE_LOG_LEVEL", str),
    "slack_api_url": ("PULSE_SLACK_API_URL", str),
    "slack_metrics_port": ("PULSE_SLACK_METRICS_PORT", int),
    "gateway_port": ("PULSE_GATEWAY_PORT", int),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The SPEC 7.1 options shared by the live commands."""
    parser.add_argument("--broker", help="Kafka bootstrap servers, Faust URL form (env PULSE_BROKER; "
                                         "default kafka://localhost:9092)")
    parser.add_argument("--config", dest="config_path", help="pipeline configuration (env PULSE_CONFIG)")
    parser.add_argument("--clock", choices=CLOCKS, help="wall: T = now; event: T = latest occurred_at "
                                                        "(env PULSE_CLOCK; default wall)")
    parser.add_argument("--web-port", dest="web_port", type=int, help="HTTP port (env PULSE_WEB_PORT; default 6066)")
    parser.add_argument("--advertised-host", dest="advertised_host",
                        help="host name other workers use to reach this one's HTTP port for the cluster-wide "
                             "/report (env PULSE_ADVERTISED_HOST; default: this machine's host name)")
    parser.add_argument("--topic-prefix", dest="topic_prefix", help="prepended to every topic name "
                                                                    "(env PULSE_TOPIC_PREFIX)")
    parser.add_argument("--redis", dest="redis_url", help="Redis serving layer URL (env PULSE_REDIS_URL)")
    parser.add_argument("--app-id", dest="app_id", help="consumer group / Faust app id (env PULSE_APP_ID)")
    parser.add_argument("--data-dir", dest="data_dir", help="local Faust data directory (env PULSE_DATA_DIR)")
    parser.add_argument("--commit-interval", dest="commit_interval", type=float,
                        help="seconds between offset commits, which make state durable (env PULSE_COMMIT_INTERVAL)")
    parser.add_argument("--profile", choices=("prod", "dev"), default=None,
                        help="dev: short consumer-group timeouts for a local single-broker setup (env PULSE_PROFILE)")
    parser.add_argument("--log-level", dest="log_level", choices=("crit", "error", "warn", "info", "debug"),
                        help="env PULSE_LOG_LEVEL; default info")


def add_slack_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `pulse slack` (SPEC 7.1); from_args reads the secrets only when these exist."""
    parser.add_argument("--slack-token-file", dest="slack_token_file", metavar="FILE",
                        help="file holding the Slack bot token (xoxb-...); default: env SLACK_BOT_TOKEN")
    parser.add_argument("--slack-webhook-file", dest="slack_webhook_file", metavar="FILE",
                        help="file holding an incoming-webhook URL, the simpler alternative to a bot token "
                             "(posts only, to the webhook's channel); default: env SLACK_WEBHOOK_URL")
    parser.add_argument("--slack-api-url", dest="slack_api_url", metavar="URL",
                        help="Slack Web API base (env PULSE_SLACK_API_URL; default https://slack.com/api/)")
    parser.add_argument("--slack-metrics-port", dest="slack_metrics_port", type=int, metavar="PORT",
                        help="port of GET /metrics and /health (env PULSE_SLACK_METRICS_PORT; default 6067; 0: off)")


def environment() -> Mapping[str, str]:
    """The process environment, for components that read named secrets from it
    (the gateway's `secret_env`); this module stays the only reader."""
    return os.environ


def _secret(path: str | None, env: Mapping[str, str], var: str, what: str) -> str | None:
    """A secret from a file (the option) or else the environment; errors never show its value."""
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise SystemExit(f"pulse: cannot read the {what} file {path}: {reason}") from None
        if not value:
            raise SystemExit(f"pulse: the {what} file {path} is empty")
        return value
    return env.get(var, "").strip() or None


def from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
    env = os.environ if environ is None else environ
    values: dict = {}
    for name, (var, kind) in _ENV.items():
        option = getattr(args, name, None)
        if option is not None:
            values[name] = option
        elif env.get(var):
            try:
                values[name] = kind(env[var])
            except ValueError:
                raise SystemExit(f"pulse: {var}={env[var]!r} is not a valid {kind.__name__}") from None
    if values.get("clock", "wall") not in CLOCKS:
        raise SystemExit(f"pulse: clock must be one of {', '.join(CLOCKS)}")
    profile = getattr(args, "profile", None) or env.get("PULSE_PROFILE") or "prod"
    if profile == "dev":
        values = {**DEV_PROFILE, **values}
    if hasattr(args, "slack_token_file"):          # only commands that declared the Slack options
        values["slack_token"] = _secret(args.slack_token_file, env, "SLACK_BOT_TOKEN", "Slack token")
        values["slack_webhook_url"] = _secret(getattr(args, "slack_webhook_file", None), env,
                                              "SLACK_WEBHOOK_URL", "Slack webhook URL")
    values.update(overrides)
    return Settings(**values)


def with_config(settings: Settings) -> Settings:
    """The settings with their pipeline configuration loaded (raises ConfigError)."""
    return replace(settings, config=load_config(settings.config_path))


T = TypeVar("T")


def start_up(load: Callable[[], T]) -> T | None:
    """A live command's start-up (settings, configuration): its result, or None after saying on
    stderr why it cannot start (SPEC 7: a usage or configuration error; the caller exits 2).
    Settings raise SystemExit(message) for bad values, the configuration ConfigError."""
    try:
        return load()
    except SystemExit as exc:
        if not isinstance(exc.code, str):
            raise
        print(exc.code, file=sys.stderr)
    except ConfigError as exc:
        print(f"pulse: configuration error: {exc}", file=sys.stderr)
    return None
