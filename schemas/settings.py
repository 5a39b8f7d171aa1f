"""Settings of the live commands (SPEC 7.1): the one frozen object the worker, gateway and
Slack notifier run on. Built from options and environment by `pulse.settings`."""
from __future__ import annotations

from dataclasses import dataclass, field

from .config import Config

CLOCKS = ("wall", "event")


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://localhost:9092"
    config_path: str | None = None          # None: the shipped default
    clock: str = "wall"
    web_port: int = 6066
    web_host: str = "0.0.0.0"
    advertised_host: str = ""               # how other workers reach this one; default: the host name
    topic_prefix: str = ""
    redis_url: str | None = None
    app_id: str = "pipeline-pulse"
    partitions: int = 4                     # when the worker has to create topics (dev, tests)
    data_dir: str = "/tmp/pipeline-pulse"
    # Consumer-group timing (NOTES: Faust's defaults make the first join take ~30 s and
    # restarts stall on Tansu; these are the dev/test profile, `--profile dev`).
    session_timeout: float = 45.0
    rebalance_timeout: float = 60.0
    heartbeat_interval: float = 3.0
    commit_interval: float = 2.8            # durable state is flushed at each commit
    alert_interval: float = 1.0             # how often due stale alerts are checked
    log_level: str = "info"
    # `pulse slack` (SPEC 7.1). The secrets are read only by from_args (SLACK_BOT_TOKEN or
    # --slack-token-file; SLACK_WEBHOOK_URL or --slack-webhook-file) and never shown.
    slack_token: str | None = field(default=None, repr=False, compare=False)
    slack_webhook_url: str | None = field(default=None, repr=False, compare=False)
    slack_api_url: str = "https://slack.com/api/"
    slack_metrics_port: int = 6067          # GET /metrics and /health of `pulse slack`; 0: off
    gateway_port: int = 8088                # `pulse gateway` (SPEC 7.1)
    config: Config | None = field(default=None, compare=False, repr=False)

    @property
    def canonical_url(self) -> str:
        import socket

        return f"http://{self.advertised_host or socket.gethostname()}:{self.web_port}"

    @property
    def bootstrap_servers(self) -> list[str]:
        """Faust's URL form `kafka://h1:9092;h2:9092` as a host:port list."""
        return broker_list(self.broker)


def broker_list(url: str) -> list[str]:
    hosts = []
    for part in url.replace(",", ";").split(";"):
        part = part.strip()
        if "://" in part:
            part = part.split("://", 1)[1]
        if part:
            hosts.append(part)
    return hosts
