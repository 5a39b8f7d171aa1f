"""`pulse slack`: post the alerts of `pipeline.notifications` to Slack (docs/slack.md)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import uuid


log = logging.getLogger("pulse.slack")
_LEVELS = {"crit": logging.CRITICAL, "error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG}


def add_slack_command(sub) -> None:
    from pulse.settings import add_arguments, add_slack_arguments

    slack = sub.add_parser(
        "slack", help="post alerts from the notifications topic to Slack, once each",
        description="Consume pipeline.notifications and post every alert to the Slack channels its routing "
                    "rules (the slack: section of the configuration) give, once each (a Redis ledger, "
                    "--redis, is required); lead.stale_resolved updates the original message and replies in "
                    "its thread. The bot token comes from SLACK_BOT_TOKEN or --slack-token-file.")
    add_arguments(slack)
    add_slack_arguments(slack)
    slack.add_argument("--digest-now", action="store_true",
                       help="send today's digest of open stale leads now (once per group and day) and exit")
    slack.set_defaults(run=cmd_slack)


class RedactSecrets(logging.Filter):
    """Defence in depth: replaces the secrets in every log record that passes the handler."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 8]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            if any(s in message for s in self.secrets):
                for s in self.secrets:
                    message = message.replace(s, "[redacted]")
                record.msg, record.args = message, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text and any(s in record.exc_text for s in self.secrets):
                for s in self.secrets:
                    record.exc_text = record.exc_text.replace(s, "[redacted]")
        return True


def setup_logging(level: str, secrets: list[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS.get(level, logging.INFO))


def cmd_slack(args: argparse.Namespace) -> int:
    from pulse.settings import from_args, start_up, with_config
    from pulse.slack.config import slack_config

    def load():
        settings = with_config(from_args(args))
        return settings, slack_config(settings.config)

    loaded = start_up(load)
    if loaded is None:
        return 2
    settings, cfg = loaded
    if not settings.slack_token and not settings.slack_webhook_url:
        print("pulse: no Slack credentials: set SLACK_BOT_TOKEN (or --slack-token-file FILE), or an "
              "incoming webhook with SLACK_WEBHOOK_URL (or --slack-webhook-file FILE)", file=sys.stderr)
        return 2
    if not settings.redis_url:
        print("pulse: pulse slack needs Redis for its delivery ledger (exactly once): --redis URL or "
              "PULSE_REDIS_URL, e.g. redis://localhost:6379/0", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, [settings.slack_token or "", settings.slack_webhook_url or ""])
    try:
        return asyncio.run(run_slack(settings, cfg, digest_now=args.digest_now))
    except KeyboardInterrupt:
        return 0


def build(settings, cfg, *, registry=None):
    """(notifier, ledger, api) for the settings; the caller closes ledger and api."""
    from pulse.slack.api import WebApi, WebhookApi
    from pulse.slack.ledger import Ledger
    from pulse.slack.metrics import Metrics
    from pulse.slack.notifier import Notifier

    if settings.slack_token:
        api = WebApi(settings.slack_token, settings.slack_api_url, timeout=cfg.request_timeout_s)
    else:
        api = WebhookApi(settings.slack_webhook_url, timeout=cfg.request_timeout_s)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    ledger = Ledger.from_url(settings.redis_url, f"pulse:slack:{settings.topic_prefix}", owner, cfg.ledger_ttl_s)
    return Notifier(cfg, api, ledger, Metrics(registry)), ledger, api


async def run_slack(settings, cfg, *, digest_now: bool = False, stop: asyncio.Event | None = None) -> int:
    from redis.exceptions import RedisError

    from pulse.schemas import topics
    from pulse.kafka.broker import BrokerUnreachable, bootstrap_servers, wait_for_broker
    from pulse.slack.consumer import AlertConsumer
    from pulse.slack.metrics import serve

    notifier, ledger, api = build(settings, cfg)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    runner = None
    try:
        try:
            await ledger.r.ping()
        except (RedisError, OSError) as exc:
            log.error("cannot reach Redis for the delivery ledger (%s)", type(exc).__name__)
            return 1
        if api.can_update:
            try:
                who = await api.auth_test()
                log.info("Slack: connected as %s in %s", who.get("user") or who.get("bot_id") or "?",
                         who.get("team") or "?")
            except Exception as exc:                # noqa: BLE001  logged and counted; deliveries will say more
                error = getattr(exc, "error", None) or getattr(exc, "reason", None) or type(exc).__name__
                notifier.metrics.errors.labels(error=str(error)).inc()
                log.error("Slack auth.test failed: %s; alerts will be retried or counted as errors", error)
        else:
            log.info("Slack: incoming webhook (no routing, no updates, no reconciliation)")
            if cfg.routes:
                log.warning("slack.routes are ignored with an incoming webhook: it posts to its own channel")
        if digest_now:
            sent = await notifier.send_digest()
            log.info("digest: %d message(s)", sent)
            return 0
        try:
            await asyncio.to_thread(wait_for_broker, settings.broker, 10)
            bootstrap = bootstrap_servers(settings.broker)
        except (BrokerUnreachable, ValueError) as exc:
            log.error("%s", exc)
            return 1
        consumer = AlertConsumer(
            notifier, bootstrap=bootstrap, topic=topics.topic_names(settings.topic_prefix)[topics.NOTIFICATIONS],
            group_id=f"{settings.app_id}-slack", session_timeout=settings.session_timeout,
            heartbeat_interval=settings.heartbeat_interval, rebalance_timeout=settings.rebalance_timeout,
            commit_interval=settings.commit_interval)
        if settings.slack_metrics_port:
            runner = await serve(notifier.metrics, settings.web_host, settings.slack_metrics_port,
                                 lambda: consumer.ready)
        digest = asyncio.create_task(notifier.digest_loop())
        try:
            await consumer.run(stop)
        finally:
            digest.cancel()
        return 0
    finally:
        if runner is not None:
            await runner.cleanup()
        await notifier.close()
        await api.close()
        await ledger.close()
