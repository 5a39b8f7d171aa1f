"""(c): the pulse worker timed from outside, its changelog, and py-spy under load."""
from __future__ import annotations

import collections
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from .children import _vm
from .common import END_WINDOW_S, POLL_S, ROOT, BenchError, _tail
from .driver import (Children, CommittedOffsets, _cpu_seconds, _cpu_sum, _events_read, _mid_rate, _vm_sum,
                     count_changelog, fresh_output_topics, launch_worker, stop_worker)


IDLE_SETTLE_S = 3.0      # a healthy worker with nothing to read, before its RSS is taken


def idle_worker_rss(children: Children, broker, partitions: int, workdir: Path, timeout: float = 120) -> int | None:
    """VmRSS of a `pulse worker` like (c)'s on topics that hold nothing, once healthy: the
    process before any state. (c)'s own "idle" RSS is taken when its committed offsets are
    still 0, but commits lag about a second behind consumption, so it may already hold tens
    of thousands of leads and the fetcher's buffers (measured: 113-181 MiB over 6 runs of one
    tree), which moved its bytes per lead by +-300."""
    from pulse.kafka.broker import create_topics
    from pulse.schemas.topics import topic_names

    prefix = f"idle{uuid.uuid4().hex[:6]}."
    create_topics(broker.bootstrap, list(topic_names(prefix).values()), partitions)
    w = launch_worker(children, broker.url, prefix, workdir, partitions, "idle")
    try:
        deadline = time.monotonic() + timeout
        while w.status("/health") != 200:
            if w.proc.poll() is not None or time.monotonic() > deadline:
                return None
            time.sleep(0.3)
        time.sleep(IDLE_SETTLE_S)
        return _vm(w.proc.pid).get("VmRSS")
    finally:
        stop_worker(children, w)


def run_pulse_worker(children: Children, broker, prefix: str, inputs: list[str], total: int, leads: int,
                     partitions: int, workdir: Path, timeout: float, poll_mode: str, n_workers: int = 1) -> dict:
    """(c). `n_workers` workers in one consumer group share the partitions (all spawned at
    once; GET /report of the first merges every worker's share).
    Poll GET /report every POLL_S s (start to start) until events_read > 0 (t1, n1).
    `poll_mode` "report": keep polling /report every POLL_S s to the end. "hybrid": in
    between, poll the group's committed offsets instead (every POLL_S s; the worker
    commits every 1 s in the dev profile), and go back to /report every POLL_S s once the
    committed count is within END_WINDOW_S seconds' worth of events of the total, so
    the worker is not slowed down by building reports of tens of thousands of leads
    five times a second in the middle of the run. "offsets": committed offsets only,
    from the first poll above 0 to the first at the total, and one GET /report at the
    end to check the count."""
    idle = idle_worker_rss(children, broker, partitions, workdir) if n_workers == 1 else None
    fresh_output_topics(broker.bootstrap, prefix, partitions)
    group = f"bench-worker{n_workers}-{uuid.uuid4().hex[:8]}"
    ws = [launch_worker(children, broker.url, prefix, workdir, partitions, f"worker{n_workers}-{i}", app_id=group,
                        timed_total=total if n_workers == 1 else None)
          for i in range(n_workers)]
    w = ws[0]
    offsets = CommittedOffsets(broker.bootstrap, group, inputs, partitions) if poll_mode != "report" else None
    pids = [x.proc.pid for x in ws]
    broker_pid = broker.pid                               # the embedded broker's CPU over the same span
    bcpu0 = bcpu1 = None
    try:
        spawn = time.monotonic()
        deadline = spawn + timeout
        polls = []                   # /report polls: (events_read, request start, response end)
        commits = []                 # (time, committed)
        baseline = {}
        first = done = None
        cpu0 = cpu1 = None
        mode = "offsets" if poll_mode == "offsets" else "report"
        while time.monotonic() < deadline:
            tick = time.monotonic()
            for x in ws:
                if x.proc.poll() is not None:
                    raise BenchError(f"(c) pulse worker exited with {x.proc.returncode}:\n{x.log_tail()}")
            if mode == "report":
                n, t0, t1 = _events_read(w)
                if n is not None:
                    polls.append((n, t0, t1))
                    if n == 0:
                        baseline = _vm_sum(pids)              # the idle workers, just before the first event
                    elif first is None:
                        first = (n, t0, t1)
                        cpu0, bcpu0 = _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)
                        if offsets is not None:
                            mode = "offsets"
                    if n >= total:
                        done = (n, t0, t1)
                        cpu1, bcpu1 = _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)
                        break
            else:
                c = offsets()
                now = time.monotonic()
                if c is not None and poll_mode == "offsets":       # never GET /report while timing
                    commits.append((now, c, _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)))
                    if c == 0:                  # (consumption may have begun: commits lag ~1 s)
                        baseline = _vm_sum(pids)
                    elif first is None:
                        first = (c, now, now)
                        cpu0, bcpu0 = _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)
                    if c >= total:
                        done = (c, now, now)
                        cpu1, bcpu1 = _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)
                        break
                elif c is not None:
                    commits.append((now, c, _cpu_sum(pids), broker_pid and _cpu_seconds(broker_pid)))
                    old = [x for x in commits if x[0] <= now - 3.0]
                    rate = (c - old[-1][1]) / (now - old[-1][0]) if old else 0.0
                    if c >= total or (rate > 0 and total - c <= rate * END_WINDOW_S):
                        mode = "report"
            time.sleep(max(0.0, POLL_S - (time.monotonic() - tick)))
        if done is None:
            got = polls[-1][0] if polls else None
            raise BenchError(f"(c) pulse worker read {got} of {total} events within {timeout:.0f} s:\n"
                             f"{w.log_tail()}")
        if poll_mode == "offsets":                   # committed == total: the report must agree
            n, _, _ = _events_read(w, timeout=60)
            if n != total:
                raise BenchError(f"(c) committed offsets reached {total} but GET /report counts {n} events")
        if done[0] != total:
            raise BenchError(f"(c) pulse worker read {done[0]} events, expected {total}")
        peak = _vm_sum(pids)
        peaks = [_vm(pid).get("VmHWM") for pid in pids]
        n1 = first[0]
        mid = lambda p: (p[1] + p[2]) / 2                      # noqa: E731
        seconds = mid(done) - mid(first)
        # The last event came between the last /report poll that had not seen it and the
        # one that had: t_done is late by at most end_gap.
        before = [p for p in polls if p[0] < total]
        end_gap = mid(done) - mid(before[-1]) if before and poll_mode != "offsets" else None
        latencies = [p[2] - p[1] for p in polls if p[0] > 0]
        busy = sum(latencies) / (done[2] - first[1]) if done[2] > first[1] and latencies else None
        result = {
            "events": total, "events_counted": total - n1, "seconds": seconds,
            "events_per_s": (total - n1) / seconds if seconds > 0 else None,
            "events_per_s_upper": ((total - n1) / (seconds - end_gap)
                                   if end_gap is not None and seconds > end_gap else None),
            "end_uncertainty_s": end_gap,
            "cpu_seconds": cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None,
            "events_per_cpu_s": ((total - n1) / (cpu1 - cpu0)
                                 if cpu0 is not None and cpu1 is not None and cpu1 > cpu0 else None),
            "poll_mode": poll_mode, "poll_interval_s": POLL_S, "report_polls": len(polls),
            "report_polls_after_first_event": len(latencies), "offset_polls": len(commits),
            "report_call_ms_mean": 1000 * statistics.fmean(latencies) if latencies else None,
            "report_call_ms_max": 1000 * max(latencies) if latencies else None,
            "report_busy_fraction": busy,
            "first_seen_after_spawn_s": first[1] - spawn,
            "workers": n_workers, "worker_peak_rss": peaks,
            # cores busy on average over the timed span: the workers together, the broker
            "worker_cores": ((cpu1 - cpu0) / seconds if cpu0 is not None and cpu1 is not None and seconds > 0
                             else None),
            "broker_cores": (bcpu1 - bcpu0) / seconds if bcpu0 is not None and bcpu1 is not None and seconds > 0
                            else None,
            **_mid_rate(commits, total),
            "peak_rss": peak.get("VmHWM"), "idle_rss": baseline.get("VmRSS"),
            "bytes_per_lead": peak["VmHWM"] / leads if peak.get("VmHWM") and leads else None,
            "bytes_per_lead_above_idle": ((peak["VmHWM"] - baseline["VmRSS"]) / leads
                                          if peak.get("VmHWM") and baseline.get("VmRSS") and leads else None),
            # against a fresh idle worker (idle_worker_rss): at the peak, and once the backlog is
            # consumed (the buffers drained; CPython keeps much of what they freed)
            "idle_worker_rss": idle, "end_rss": peak.get("VmRSS"),
            "bytes_per_lead_peak_above_idle_worker": ((peak["VmHWM"] - idle) / leads
                                                      if peak.get("VmHWM") and idle and leads else None),
            "bytes_per_lead_end_above_idle_worker": ((peak["VmRSS"] - idle) / leads
                                                     if peak.get("VmRSS") and idle and leads else None),
        }
        result.update(_inside_timing(w, total, result))
        for x in ws:
            stop_worker(children, x)
        result.update(count_changelog(children, broker.bootstrap, group, workdir, total))
        return result
    finally:
        if offsets is not None:
            offsets.close()
        for x in ws:
            stop_worker(children, x)


def _inside_timing(w, total: int, outside: dict) -> dict:
    """A single worker's own timing (timing_hook/sitecustomize.py), like (q)'s and (a)'s: from
    its first applied batch to the batch that completed `total`. The poller's figure stays as
    events_per_s_offsets (its ends are late by up to ~1.2 s each: +-8 % on a 15 s run), and is
    what the scaling factors compare (n workers are timed from outside only)."""
    if getattr(w, "timing_file", None) is None:
        return {}
    deadline = time.monotonic() + 10
    while not w.timing_file.exists():
        if time.monotonic() > deadline:
            raise BenchError(f"(c) the worker wrote no timing ({w.timing_file})")
        time.sleep(POLL_S)
    t = json.loads(w.timing_file.read_text())
    counted, seconds = total - t["first_n"], t["last"] - t["first"]
    return {"timed_by": "worker", "seconds": seconds, "events_counted": counted,
            "events_per_s": counted / seconds if seconds > 0 else None,
            "events_per_cpu_s": counted / t["cpu"] if t["cpu"] > 0 else None,
            "events_per_s_offsets": outside.get("events_per_s"), "seconds_offsets": outside.get("seconds"),
            "events_per_cpu_s_offsets": outside.get("events_per_cpu_s"),
            "timeline": [(round(a - t["first"], 3), n, round(c - t["cpu0"], 3)) for a, n, c in t["timeline"]]}


# -- py-spy under load ---------------------------------------------------------------------

def run_profile(children: Children, broker_url: str, prefix: str, total: int, partitions: int,
                workdir: Path, seconds: int, timeout: float) -> dict:
    import shutil

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise BenchError("py-spy not found")
    out = workdir / "pyspy.raw"
    w = launch_worker(children, broker_url, prefix, workdir, partitions, "profile")
    try:
        deadline = time.monotonic() + timeout
        while True:                                   # wait until it is consuming
            if w.proc.poll() is not None:
                raise BenchError(f"(profile) pulse worker exited:\n{w.log_tail()}")
            n, _, _ = _events_read(w)
            if n and n > 2000:
                break
            if time.monotonic() > deadline:
                raise BenchError("(profile) the worker did not start consuming")
            time.sleep(POLL_S)
        log = workdir / "pyspy.log"
        with open(log, "wb") as err:
            spy_proc = children.spawn([spy, "record", "--pid", str(w.proc.pid), "-d", str(seconds), "-f", "raw",
                                       "-r", "100", "-o", str(out)], stdout=err, stderr=subprocess.STDOUT)
            try:
                spy_proc.wait(seconds + 60)
            finally:
                Children.kill(spy_proc)
        n_end, _, _ = _events_read(w)
        if not out.exists():
            raise BenchError(f"py-spy wrote nothing:\n{_tail(log)}")
        prof = summarize_profile(out)
        prof["events_read_at_end"] = n_end
        prof["still_consuming_at_end"] = bool(n_end is not None and n_end < total)
        prof["raw_file"] = str(out)
        return prof
    finally:
        stop_worker(children, w)


def summarize_profile(path: Path, top: int = 15) -> dict:
    """Self time (leaf frame) and inclusive time per function from py-spy's raw output."""
    self_t: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    # this project's code: frames whose file starts with one of the checkout's package folders
    ours = {p.name for p in ROOT.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [_short(f) for f in stack.split(";")]
        if frames:
            self_t[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    pct = lambda c: round(100.0 * c / total, 1) if total else 0.0     # noqa: E731
    project = [(f, c) for f, c in incl.most_common()       # entry points (~all samples) left out
               if f.rpartition(" (")[2].split("/")[0] in ours and c < 0.8 * total]
    return {"samples": total,
            "top_self": [(f, pct(c)) for f, c in self_t.most_common(top)],
            "top_inclusive": [(f, pct(c)) for f, c in incl.most_common(top + 10)],
            "project_inclusive": [(f, pct(c)) for f, c in project[:top + 5]]}


def _short(frame: str) -> str:
    """'func (path/to/module.py:123)' -> 'func (path/to/module.py)' (line numbers split
    samples); py-spy already shortens library paths (faust/streams.py, asyncio/...)."""
    name, sep, where = frame.partition(" (")
    if not sep:
        return frame
    file = where.rstrip(")").rsplit(":", 1)[0]
    if file.startswith("/"):
        parts = file.split("/")
        if "site-packages" in parts:
            file = "/".join(parts[parts.index("site-packages") + 1:])
        elif ROOT.name in parts:
            file = "/".join(parts[len(parts) - parts[::-1].index(ROOT.name):])
    return f"{name} ({file})"


