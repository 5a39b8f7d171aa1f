"""Benchmark the live worker (`pulse worker`) against raw-consumer, Faust and Quix Streams baselines.

    python bench/bench_worker.py                       # default: ~500k events (--leads 81000)
    python bench/bench_worker.py --leads 8000          # quick check (~50k events)
    python bench/bench_worker.py --events-file F.jsonl [--json] [--py-spy 20]
    python bench/bench_worker.py --workers 1,2,4 --repeat 3 --poll offsets --skip a,b,e   # peers, scaling

One embedded broker (Tansu, memory storage), one event file published ONCE with
`pulse replay` into 4-partition input topics; then, one after another, each consumer
reads those same topics from the beginning with its own consumer group, in its own
fresh process (so each has its own RSS), and only consumption is measured:

  (a) faust-bare   a Faust agent, `async for` over the input topics, orjson.loads
                   of each raw value: the framework's own per-event ceiling here;
  (b) faust-table  the same agent writing `table[lead_id] = raw value` (raw serializers):
                   one changelog message per event, the naive way to keep state;
  (c) pulse worker `pulse worker --clock event --profile dev`: durable state, dead
                   letters and alerts on. Measured from outside by polling GET /report
                   every 0.2 s until data_quality.events_read == total; its peak RSS is
                   VmHWM of /proc/<pid>/status at the end -> bytes per lead;
  (q) quix         Quix Streams (the `bench` extra; `--no-quix` skips it): one
                   StreamingDataFrame over the input topics, one state get + set per
                   valid event (RocksDB, changelog on); self-timed like (a);
  (d) raw          a raw aiokafka consumer (getmany, 10,000-record batches) that only
                   parses: the physical ceiling of a Python consumer on this machine;
  (e) alert latency: a fresh worker on fresh topics; N leads created, other leads' events
                   push event time past the "new" stage's stale_after (3 days) so each gets
                   a lead.stale; then, one lead at a time, a lead.stage_changed moves it out,
                   timed from the producer's flush (acked) to the arrival of its
                   lead.stale_resolved at a consumer already tailing the notifications topic.
                   The same tailer's floor is measured too (a marker message produced
                   straight to the notifications topic: broker round trip).

`--workers 1,2,4` runs (c) once per number of workers sharing the partitions (one
consumer group); `--repeat N` runs (d) (a) (b) (q) (c) N times, interleaved, for medians.

(a), (b), (q), (d) time themselves (first to last event consumed, in the consumer process,
plus its CPU time) and write a JSON result; by default they stop 60 s after their first
event (`--max-seconds`) and report the rate over what they read. (c) always reads
everything and is timed by the poller: events/s = (total - n1)/(t_done - t1) where t1 is
the first /report poll that saw events (n1 of them) and t_done the first that saw them
all; between the two, committed offsets are polled instead (`--poll hybrid`, see
run_pulse_worker). t_done is late by at most the time since the previous poll, so the
figure is a slight underestimate; an upper bound (t_done minus that) is printed too.
A single worker (c) also times itself, first to last applied batch, as (q) does
(worker_bench/timing_hook): that is its rate in the table and in pulse / Quix.
See bench/README.md for the method and its limits.

`--py-spy SECONDS` also profiles a further worker run (own consumer group, same topics)
under load with `py-spy record -f raw` and prints the top self-time functions.

Every child runs in its own session and is killed (its whole process group) when its
phase ends, fails, or on Ctrl-C / SIGTERM; the broker is stopped last.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:           # the parts below, also when this file is loaded by path (tests)
    sys.path.insert(0, str(HERE))

from worker_bench.alert_phase import run_alert_latency                                  # noqa: E402
from worker_bench.children import child_main                                            # noqa: E402
from worker_bench.common import DEFAULT_LEADS, ROOT, BenchError, _log, worker_key        # noqa: E402,F401
# _mid_rate and worker_key are used by tests/bench/test_bench_worker.py through this module
from worker_bench.driver import Children, _mid_rate, count_file, prepare_file, publish, run_consumer  # noqa: E402,F401
from worker_bench.pulse_phase import run_profile, run_pulse_worker                     # noqa: E402
from worker_bench.table import print_table                                              # noqa: E402


# -- orchestration ----------------------------------------------------------------------------

PHASES = ("d", "a", "b", "q", "c", "e")
QUIX_MISSING = ("quixstreams is not installed, so phase (q) (Quix Streams) cannot run: install the bench extra "
                "(pip install -e '.[bench]', or `make bench-worker`), or pass --no-quix to skip it")


def quix_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("quixstreams") is not None


def _loadavg() -> float | None:
    """1-minute load average (this machine may be shared: a hint of other load)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _loadavg3() -> list[float] | None:
    """1, 5 and 15-minute load averages, as `uptime` prints them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run(a) -> dict:
    from pulse.kafka.broker import EmbeddedBroker
    from pulse.schemas.topics import INPUT_TOPICS, topic_names

    path = prepare_file(a)
    total, leads = count_file(path)
    if total == 0:
        raise BenchError(f"{path} has no input lines")
    skip = set(a.skip.split(",")) if a.skip else set()
    res: dict = {"file": str(path), "events": total, "leads": leads, "partitions": a.partitions,
                 "command": " ".join([shlex.quote(x) for x in ["python", "bench/bench_worker.py", *a.argv]]),
                 "cores": os.cpu_count(), "max_seconds": a.max_seconds, "workers": a.workers,
                 "loadavg_start": _loadavg3(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    consume_timeout = a.timeout or (90 + a.max_seconds if a.max_seconds else 90 + total / 300)
    worker_timeout = a.timeout or 120 + total / 300
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    res["workdir"] = str(workdir)
    try:
        with EmbeddedBroker(log_path=str(workdir / "tansu.log")) as broker:
            prefix = f"bench-{uuid.uuid4().hex[:6]}."
            names = topic_names(prefix)
            inputs = [names[t] for t in INPUT_TOPICS]
            _log(f"publishing {total:,} events ({leads:,} leads) from {path} with pulse replay ...")
            res["publish_seconds"] = publish(children, broker, path, prefix, a.partitions, total, workdir)
            _log(f"published in {res['publish_seconds']:.1f} s")
            rounds = res["rounds"] = []
            for r in range(a.repeat):         # rounds interleave the phases: drifting load hits all alike
                got: dict = {}
                rounds.append(got)
                tag = f"round {r + 1}/{a.repeat} " if a.repeat > 1 else ""
                for phase, mode in (("d", "raw"), ("a", "faust-bare"), ("b", "faust-table"), ("q", "quix")):
                    if phase in skip:
                        continue
                    _log(f"{tag}({phase}) {mode} ...")
                    load = _loadavg()
                    got[phase] = run_consumer(children, mode, broker.bootstrap, inputs, total, a.partitions,
                                              workdir, consume_timeout, a.max_seconds)
                    got[phase]["loadavg"] = max(load, _loadavg())
                    _log(f"{tag}({phase}) {got[phase]['events_per_s']:,.0f} events/s")
                for n in (a.workers if "c" not in skip else ()):
                    key = worker_key(n)
                    _log(f"{tag}(c) pulse worker x{n} ...")
                    load = _loadavg()
                    got[key] = run_pulse_worker(children, broker, prefix, inputs, total, leads, a.partitions,
                                                workdir, worker_timeout, a.poll, n_workers=n)
                    got[key]["loadavg"] = max(load, _loadavg())
                    _log(f"{tag}(c) x{n}: {got[key]['events_per_s']:,.0f} events/s")
                got.update(_ratios(got, a.workers))
            res.update(_medians(rounds))
            if "e" not in skip:
                _log(f"(e) alert latency, {a.alert_leads} leads ...")
                res["e"] = run_alert_latency(children, broker, a.partitions, workdir, a.alert_leads, a.alert_gap,
                                             a.seed)
                _log(f"(e) p50 {res['e']['p50_ms']:.0f} ms, p99 {res['e']['p99_ms']:.0f} ms")
            if a.py_spy:
                _log(f"(profile) py-spy on pulse worker for {a.py_spy} s ...")
                res["profile"] = run_profile(children, broker.url, prefix, total, a.partitions, workdir,
                                             a.py_spy, worker_timeout)
    finally:
        children.kill_all()
    res["loadavg_end"] = _loadavg3()
    return res


RATE_FIELDS = ("events_per_s", "events_per_cpu_s", "events_per_s_mid", "events_per_s_offsets")


def _ratios(got: dict, workers: list[int]) -> dict:
    """One round's ratios: pulse (c, one worker) over each other consumer; n workers over one."""
    out: dict = {}
    for suffix, field in (("", "events_per_s"), ("_cpu", "events_per_cpu_s")):
        c_ = got.get("c", {}).get(field)
        for k in "abqd":
            other = got.get(k, {}).get(field)
            out[f"c_over_{k}{suffix}"] = c_ / other if c_ and other else None
    for n in workers:
        if n > 1 and got.get("c") and got.get(worker_key(n)):
            for field in ("events_per_s", "events_per_s_mid"):
                # n workers are timed from outside only: one worker's figure taken the same way
                one = got["c"].get(f"{field}_offsets") or got["c"].get(field)
                many = got[worker_key(n)].get(field)
                got[worker_key(n)][f"{field}_over_one"] = many / one if one and many else None
    return out


def _median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _medians(rounds: list[dict]) -> dict:
    """The figures of several rounds: each phase's result is its last round's, with every
    rate, scaling factor and ratio replaced by the median over the rounds (the single
    runs' values are kept under `<field>_runs`). Ratios are medians of each round's
    ratio, not ratios of medians."""
    if len(rounds) == 1:
        return dict(rounds[0])
    out: dict = {}
    for key in dict.fromkeys(k for r in rounds for k in r):
        values = [r.get(key) for r in rounds]
        if any(isinstance(v, dict) for v in values):
            phase = dict(next(v for v in reversed(values) if isinstance(v, dict)))
            for field in (*RATE_FIELDS, "events_per_s_over_one", "events_per_s_mid_over_one", "worker_cores",
                          "broker_cores", "worker_cores_mid", "broker_cores_mid", "events_per_cpu_s_mid"):
                runs = [v.get(field) if isinstance(v, dict) else None for v in values]
                if any(x is not None for x in runs):
                    phase[field] = _median(runs)
                    phase[f"{field}_runs"] = runs
            phase["loadavg_runs"] = [v.get("loadavg") if isinstance(v, dict) else None for v in values]
            out[key] = phase
        else:
            out[key] = _median(values)
            out[f"{key}_runs"] = values
    return out



def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_consume"]:
        child_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events-file", help="publish this JSON Lines file instead of a generated one")
    ap.add_argument("--leads", type=int, default=DEFAULT_LEADS,
                    help=f"leads of the generated file (default {DEFAULT_LEADS:,}: ~500k events)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--alert-leads", type=int, default=100, help="leads timed in (e), one at a time (default 100)")
    ap.add_argument("--poll", choices=("hybrid", "report", "offsets"), default="hybrid",
                    help="(c): hybrid (default): GET /report every 0.2 s at the start and the end, committed "
                         "offsets in between; report: GET /report every 0.2 s throughout; offsets: the "
                         "group's committed offsets only (first > 0 to == total; the worker commits every "
                         "1 s, so both ends are late by up to ~1.2 s), GET /report once at the end to check")
    ap.add_argument("--alert-gap", type=float, default=1.5, metavar="SECONDS",
                    help="(e): random pause U(0, SECONDS) before each stage change (default 1.5: "
                         "Faust's fetch max wait), so publishes fall at random phases of the fetch cycle")
    ap.add_argument("--skip", default="", help="comma-separated phases to skip, of a,b,q,c,d,e")
    ap.add_argument("--no-quix", action="store_true",
                    help="skip (q), Quix Streams (needed when quixstreams, the bench extra, is not installed)")
    ap.add_argument("--workers", default="1", metavar="N[,N...]",
                    help="(c) with each of these numbers of pulse workers sharing the partitions in one "
                         "consumer group, one after another (default 1; e.g. 1,2,4)")
    ap.add_argument("--py-spy", type=int, default=0, metavar="SECONDS",
                    help="also profile pulse worker under load for SECONDS with py-spy (0: off)")
    ap.add_argument("--max-seconds", type=float, default=60.0, metavar="S",
                    help="(a), (b), (q), (d) stop S seconds after their first event unless done: their rate over "
                         "the first events of the same topics (default 60; 0: read everything). (c) always "
                         "reads everything")
    ap.add_argument("--timeout", type=float, default=None, help="per-phase failsafe timeout in seconds "
                                                                  "(default 90 + max-seconds; (c) 120 + events/300)")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="N rounds of (d), (a), (b), (q), (c) on the same published topics (interleaved: "
                         "d a b q c.. d a b q c..); the table shows medians of rates and of each round's "
                         "ratios (default 1)")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    ap.add_argument("--save", metavar="FILE", help="also write the results (JSON) to FILE")
    a = ap.parse_args(argv)
    a.argv = argv
    if a.skip and not set(a.skip.split(",")) <= set(PHASES):
        ap.error(f"--skip takes phases of {','.join(PHASES)}")
    try:
        a.workers = sorted({int(x) for x in a.workers.split(",")})
    except ValueError:
        ap.error("--workers takes numbers, e.g. 1,2,4")
    if a.workers[0] < 1 or a.workers[-1] > a.partitions:
        ap.error(f"--workers: each between 1 and --partitions ({a.partitions}); more would stand idle")
    if a.repeat < 1:
        ap.error("--repeat takes a number >= 1")
    if a.no_quix:
        a.skip = ",".join(filter(None, [a.skip, "q"]))
    elif "q" not in a.skip.split(",") and not quix_available():
        print(f"bench_worker: {QUIX_MISSING}", file=sys.stderr)
        return 2

    def on_term(signum, frame):          # SIGTERM: unwind like Ctrl-C, so every phase cleans up
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)     # also when started with SIGINT ignored
    try:
        res = run(a)
    except BenchError as exc:
        print(f"bench_worker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_worker: interrupted", file=sys.stderr)
        return 130
    if a.save:
        Path(a.save).write_text(json.dumps(res, indent=1))
    if a.json:
        print(json.dumps(res))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    if str(ROOT) not in sys.path:
        sys.path.insert(1, str(ROOT))
    sys.exit(main())
