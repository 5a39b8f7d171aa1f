"""A simulated year of traffic through the live worker's state (LivePulse, event clock, no
broker): what it holds and its RSS over simulated time, with and without housekeeping.

    python bench/bench_housekeeping.py                       # 100 leads/day for 365 days, both runs
    python bench/bench_housekeeping.py --leads-per-day 300 --days 540 --every 30
    python bench/bench_housekeeping.py --only on              # one run (in this process)
    python bench/bench_housekeeping.py --worker --leads-per-day 200 --days 730   # a real `pulse worker` instead

`--worker`: the year is written to a file, published with `pulse replay` to an embedded
broker (one partition), and consumed by a real `pulse worker --clock event` in its own
process; every `--poll` seconds the bench reads its `/report` (as_of = simulated time,
events read), its `pulse_leads_in_state` gauge and its RSS. (The worker has no switch to turn
housekeeping off: the in-process runs show the difference.)

Traffic: pulse/steady_traffic.py (every lead closes within ~2 months; 2 % late, 1 % re-sent).
The worker's timer is played once per simulated day (`tick`: alerts, then housekeeping) and
its flush after it (`take_dirty`, records counted and thrown away). Each run is its own
process, so their RSS do not mix. Columns: simulated day, events fed, leads held, open
leads, day buckets (stage flow + deals, all pipelines), changelog records written so far
(tombstones among them), RSS in MiB; at the end, how long the housekeeping runs took (each
blocks the worker's event loop: a walk over the partition's leads) (VmRSS; CPython rarely gives freed memory back to the
system, so RSS shows the peak, not the live size: the counts are the structure).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from pulse.agents.live import LivePulse
from pulse.config import load_config
from pulse.steady_traffic import by_day, steady_traffic
from pulse.streams.housekeeping import held_sizes

TYPES = ("lead.created", "lead.updated", "lead.stage_changed", "deal.closed")


def rss_mib(pid: str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return float("nan")


def run(mode: str, days: int, per_day: int, every: int, seed: int) -> None:
    config = load_config(None)
    live = LivePulse(config, type_of_topic={t: t for t in TYPES}, clock="event", send=lambda *a: None,
                     now_us=lambda: 0)
    live.restore([0], [])
    sweeps: list[float] = []
    if mode == "off":
        live.housekeep = lambda: 0          # the worker as it was: holds every lead and day
    else:
        housekeep = live.housekeep

        def timed() -> int:
            t = time.perf_counter()
            n = housekeep()
            sweeps.append(time.perf_counter() - t)
            return n
        live.housekeep = timed
    traffic = steady_traffic(days=days, leads_per_day=per_day, seed=seed)
    offsets: dict[str, int] = {}
    fed = records = tombstones = 0
    started = time.perf_counter()
    print(f"housekeeping {mode}: {len(traffic):,} events, {per_day} leads/day over {days} days")
    print(f"{'day':>5} {'events':>9} {'leads':>8} {'open':>6} {'days':>6} {'records':>9} {'tombst.':>8} {'RSS MiB':>8}")
    for day, batch in by_day(traffic):
        for line in batch:
            offset = offsets[line.type] = offsets.get(line.type, -1) + 1
            live.on_message(line.type, 0, offset, None, line.line)
        fed += len(batch)
        live.tick()
        for written in live.take_dirty().values():
            records += len(written)
            tombstones += sum(1 for _, value in written if value is None)
        if day % every == 0 or day == days - 1:
            held = held_sizes(live.partitions[0].engine)
            print(f"{day:>5} {fed:>9,} {held['leads']:>8,} {held['open_leads']:>6,} "
                  f"{held['flow_days'] + held['deal_days']:>6} {records:>9,} {tombstones:>8,} {rss_mib():>8.1f}")
    print(f"({time.perf_counter() - started:.1f} s" + (f"; housekeeping: {len(sweeps)} timer calls, the longest {max(sweeps) * 1e3:.1f} ms, "
                                                    f"total {sum(sweeps):.2f} s)" if sweeps else ")"))


def run_worker(days: int, per_day: int, seed: int, poll_s: float) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.live_harness import WorkerProcess

    from pulse.broker import EmbeddedBroker, create_topics
    from pulse.topics import topic_names

    tmp = Path(tempfile.mkdtemp(prefix="bench-housekeeping-"))
    traffic = steady_traffic(days=days, leads_per_day=per_day, seed=seed)
    (tmp / "year.jsonl").write_bytes(b"\n".join(e.line for e in traffic) + b"\n")
    print(f"pulse worker: {len(traffic):,} events, {per_day} leads/day over {days} days")
    with EmbeddedBroker() as broker:
        create_topics(broker.bootstrap, list(topic_names("hk.").values()), 1)
        subprocess.run([sys.executable, "-m", "pulse.cli", "replay", str(tmp / "year.jsonl"), "--broker", broker.url,
                        "--topic-prefix", "hk."], check=True, capture_output=True)
        worker = WorkerProcess(broker.url, "hk.", "bench-housekeeping", tmp, partitions=1).start(timeout=120)
        try:
            print(f"{'simulated':>10} {'events':>9} {'leads':>8} {'RSS MiB':>8}")
            while True:
                metrics = urllib.request.urlopen(worker.url("/metrics"), timeout=10).read().decode()
                leads = sum(float(v) for v in re.findall(r"^pulse_leads_in_state\{[^}]*\} (\S+)", metrics, re.M))
                doc = worker.report()
                read = doc["data_quality"]["events_read"]
                print(f"{doc['as_of'][:10]:>10} {read:>9,} {int(leads):>8,} {rss_mib(str(worker.proc.pid)):>8.1f}",
                      flush=True)
                if read >= len(traffic):
                    return
                time.sleep(poll_s)
        finally:
            worker.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--leads-per-day", type=int, default=100)
    ap.add_argument("--every", type=int, default=30, help="print a row every N simulated days")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=("on", "off"), help="one run, in this process")
    ap.add_argument("--worker", action="store_true", help="feed a real pulse worker (embedded broker) instead")
    ap.add_argument("--poll", type=float, default=5.0, help="--worker: seconds between reads of the worker")
    args = ap.parse_args()
    if args.worker:
        run_worker(args.days, args.leads_per_day, args.seed, args.poll)
        return 0
    if args.only:
        run(args.only, args.days, args.leads_per_day, args.every, args.seed)
        return 0
    for mode in ("on", "off"):
        subprocess.run([sys.executable, __file__, "--only", mode, "--days", str(args.days), "--leads-per-day",
                        str(args.leads_per_day), "--every", str(args.every), "--seed", str(args.seed)], check=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
