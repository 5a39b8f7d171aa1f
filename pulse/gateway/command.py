"""`pulse gateway` (SPEC 7, 7.1, 8): argparse wiring and the service's lifetime."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Mapping


log = logging.getLogger("pulse.gateway")
_LEVELS = {"crit": logging.CRITICAL, "error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG}


def add_gateway_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gateway", help="the CRM gateway: receive CRM webhooks over HTTP, publish section 1 events",
                       description="Receive HubSpot, Pipedrive, Close and pulse-kind webhooks on "
                                   "POST /ingest/{kind}/{source}, check that they are authentic, map them to "
                                   "section 1 events and publish them to the input topics (SPEC 8). Sources are "
                                   "configured in the pipeline configuration's `sources` section (docs/crm.md).")
    p.add_argument("--broker", help="Kafka bootstrap servers, Faust URL form (env PULSE_BROKER; "
                                    "default kafka://localhost:9092)")
    p.add_argument("--config", dest="config_path", help="pipeline configuration with a sources section "
                                                        "(env PULSE_CONFIG)")
    p.add_argument("--topic-prefix", dest="topic_prefix", help="prepended to every topic name (env PULSE_TOPIC_PREFIX)")
    p.add_argument("--gateway-port", dest="gateway_port", type=int,
                   help="HTTP port (env PULSE_GATEWAY_PORT; default 8088; 0: a free one)")
    p.add_argument("--log-level", dest="log_level", choices=tuple(_LEVELS), help="env PULSE_LOG_LEVEL; default info")
    p.set_defaults(run=cmd_gateway)


def load(args: argparse.Namespace, environ: Mapping[str, str] | None = None):
    """(settings, sources); raises SystemExit(message) or ConfigError (pulse.settings.start_up)."""
    from pulse.gateway.sources import gateway_sources
    from pulse.settings import environment, from_args, with_config

    settings = with_config(from_args(args, environ))
    return settings, gateway_sources(settings.config, environ if environ is not None else environment())


def cmd_gateway(args: argparse.Namespace) -> int:
    from pulse.settings import start_up

    loaded = start_up(lambda: load(args))
    if loaded is None:
        return 2
    settings, sources = loaded
    logging.basicConfig(level=_LEVELS.get(settings.log_level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run_gateway(settings, sources))
    except KeyboardInterrupt:
        return 0


async def run_gateway(settings, sources, *, host: str = "0.0.0.0", stop: asyncio.Event | None = None,
                      on_ready=None) -> int:
    """Serve until `stop` is set (or SIGINT/SIGTERM). `on_ready(port)` once listening."""
    from pulse.gateway.publisher import Publisher
    from pulse.gateway.server import Gateway, bound_port, serve

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):   # not the main thread
            pass
    publisher = Publisher(settings.broker, settings.topic_prefix)
    connecting = asyncio.create_task(publisher.connect_forever())
    try:
        runner = await serve(Gateway(sources, publisher), host, settings.gateway_port)
    except OSError as exc:
        connecting.cancel()
        print(f"pulse: cannot listen on port {settings.gateway_port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    port = bound_port(runner)
    log.info("gateway listening on port %d: %s", port,
             ", ".join(f"/ingest/{s.kind}/{s.name}" for s in sources.values()))
    if on_ready is not None:
        on_ready(port)
    try:
        await stop.wait()
    finally:
        connecting.cancel()
        await runner.cleanup()
        await publisher.close()
    return 0
