"""`pulse simulate`: live synthetic CRM traffic from `pulse.dev.synth`, paced in real time.

Event time starts now and runs `speed` times faster than the wall clock: with
`--speed 3600` one hour of CRM activity is published per second, so stage dwell times
of hours to weeks pass in seconds to minutes. Each event's `occurred_at` is its
(compressed) event time; a message is published when the wall clock reaches
`start + (arrival - start) / speed`, where `arrival` is the event time at which the
CRM would send it (= `occurred_at`, later for `--messy` late events and re-sends).

Consequence for a worker: with `speed` > 1, event times run ahead of the wall clock,
so a worker on `--clock wall` sees them as in the future; use `--clock event` with a
sped-up simulation (at `--speed 1` both clocks agree).

Lead numbers start at a per-run base derived from the start second (`first_lead_number`,
e.g. `L-84282000000001`), so two runs against the same worker do not collide on
(pipeline, lead_id, event_id) (the synthetic event ids restart at `evt-1` in every run).

Stops after `--duration` wall seconds, or on Ctrl-C / SIGTERM, flushing what was sent
and printing the counts on stderr.
"""
from __future__ import annotations

import contextlib
import random
import sys
import time

from pulse.kafka.producer import (CONNECT_TIMEOUT, EXIT_FAILED, EXIT_OK, EXIT_USAGE, FLUSH_TIMEOUT, Refused, StopFlag,
                                  open_publisher)

DEFAULT_LEADS_PER_HOUR = 100.0
DEFAULT_SPEED = 1.0
_STATUS_EVERY = 0.25      # seconds between status-line refreshes (terminal only)


def first_lead_number(start: int) -> int:
    """Lead numbers of a run start at (start second mod 10^8) * 10^6 + 1, so runs started
    at different seconds get disjoint lead ids (up to a million leads each)."""
    return (start % 10**8) * 10**6 + 1


def synthetic_feed(seed: int, start: int, leads_per_hour: float, messy: bool, first_lead: int = 1):
    """The `Emitted` stream (arrival order) of an unbounded simulation from `start`."""
    from pulse.dev import synth

    events = synth.event_stream(seed, synth.poisson_arrivals(seed, start, rate_per_day=leads_per_hour * 24.0),
                                first_lead=first_lead)
    knobs = synth.MESSY if messy else {}
    return synth.arrival_stream(events, seed=seed, **knobs)


def run_simulate(broker: str, prefix: str = "", *, leads_per_hour: float = DEFAULT_LEADS_PER_HOUR,
                 speed: float = DEFAULT_SPEED, seed: int | None = None, duration: float | None = None,
                 messy: bool = False, progress: bool = False, connect_timeout: float = CONNECT_TIMEOUT,
                 err=None, publisher=None) -> int:
    """Publish synthetic traffic until `duration` wall seconds pass or a stop signal.
    Messages on `err` (default stderr). Returns the exit code."""
    from pulse.dev.synth import format_ts

    err = err or sys.stderr

    def say(text: str) -> None:
        print(f"pulse simulate: {text}", file=err, flush=True)

    for name, value in (("--leads-per-hour", leads_per_hour), ("--speed", speed)):
        if not value > 0 or value == float("inf"):
            say(f"{name} must be a positive number")
            return EXIT_USAGE
    if duration is not None and not duration > 0:
        say("--duration must be a positive number of seconds")
        return EXIT_USAGE
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 31)
    # `publisher`: another sink with the same surface (pulse.gateway.sender: through the CRM gateway)
    pub = publisher or open_publisher(broker, prefix, say, client_id="pulse-simulate",
                                      connect_timeout=connect_timeout, linger_ms=5)
    if pub is None:
        return EXIT_USAGE
    stop = StopFlag()
    code = EXIT_OK
    try:
        wall0 = time.time()
        mono0 = time.monotonic()
        start = int(wall0)
        feed = synthetic_feed(seed, start, leads_per_hour, messy, first_lead=first_lead_number(start))
        deadline = mono0 + duration if duration is not None else None
        behind = 0.0
        event_now = float(start)

        def event_time(mono: float) -> float:
            return wall0 + (mono - mono0) * speed

        with contextlib.ExitStack() as stack:
            stack.enter_context(stop.installed())
            status = stack.enter_context(_status(err)) if progress else None
            next_status = 0.0
            for emitted in feed:
                target = mono0 + (emitted.arrival - wall0) / speed
                if deadline is not None and target > deadline:
                    target = deadline           # nothing more to send: wait out the duration
                while True:
                    now = time.monotonic()
                    if status and now >= next_status:
                        status(format_ts(int(event_time(now))), pub.total_sent)
                        next_status = now + _STATUS_EVERY
                    delay = target - now
                    if delay <= 0:
                        break
                    if stop.wait(min(delay, _STATUS_EVERY) if status else delay):
                        break
                if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    break
                behind = max(behind, -delay)
                try:
                    pub.publish(emitted.line)
                except Refused as exc:
                    pub.refuse(exc.topic, exc.error)
            end = time.monotonic()
            event_now = event_time(end)
            if status:
                status(format_ts(int(event_now)), pub.total_sent)
            if not pub.flush(FLUSH_TIMEOUT):
                say("not every message was delivered (counts below)" if publisher is not None else
                    f"the broker did not acknowledge every message within {FLUSH_TIMEOUT:g} s")
                code = EXIT_FAILED
        if pub.total_failed:
            code = EXIT_FAILED
        if stop.is_set():
            say("stopped")
        if behind > 1.0:
            say(f"warning: publishing fell up to {behind:.1f} s behind the requested pace "
                "(lower --speed or --leads-per-hour)")
        hours = (event_now - wall0) / 3600.0
        print(f"simulated {hours:,.1f} h of CRM activity in {end - mono0:.1f} s "
              f"({format_ts(start)} to {format_ts(int(event_now))}, seed {seed}); {pub.summary()}",
              file=err, flush=True)
        return code
    finally:
        pub.close(timeout=5.0)


@contextlib.contextmanager
def _status(err):
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("simulating: event time {task.fields[event_time]}"),
               TextColumn("{task.fields[messages]:,} messages"), TimeElapsedColumn()]
    with Progress(*columns, console=Console(file=err), transient=True) as bar:
        task = bar.add_task("simulate", total=None, event_time="", messages=0)
        yield lambda event_time, messages: bar.update(task, event_time=event_time, messages=messages)
