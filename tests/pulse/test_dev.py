"""`pulse dev`, the newcomer's command: the whole stack comes up, alerts flow, Ctrl-C-style stop is clean.

With Slack credentials in the environment it also runs `pulse slack` (here against the fake Slack API).
"""
from __future__ import annotations

import os
import subprocess
import sys

from pulse.broker import free_port
from tests.support.fake_slack import FakeSlack


def test_pulse_dev_runs_everything_and_alerts_reach_slack():
    port = free_port()
    with FakeSlack(channels={"C0DEV": "dev-alerts"}) as slack:
        env = {**os.environ, "SLACK_BOT_TOKEN": slack.token, "PULSE_SLACK_API_URL": slack.url}
        done = subprocess.run(
            [sys.executable, "-m", "pulse.cli", "dev", "--duration", "40", "--speed", "36000",
             "--web-port", str(port), "--gateway-port", str(free_port()), "--slack-channel", "C0DEV"],
            env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        alerts = [line for line in done.stdout.splitlines() if "lead.stale" in line]
        assert alerts, done.stderr[-3000:]                       # printed in the console ...
        posted = slack.messages.get("C0DEV", [])
        assert posted, [r.method for r in slack.requests][:20]   # ... and posted to Slack
        assert slack.token not in done.stderr + done.stdout      # the token is never logged
        assert "stopped." in done.stderr
        where = done.stderr.split("Where to look:\n", 1)[1].splitlines()
        assert where[0].split()[:2] == ["dashboard", f"http://localhost:{port}/"]   # the first place to look
