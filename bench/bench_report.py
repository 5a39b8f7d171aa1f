"""Benchmark `pulse report` on a large synthetic event file.

    python bench/bench_report.py [--leads 180000] [--seed 1] [--messy] [--repeat 3]
    python bench/bench_report.py --file some.jsonl[.gz] [--jobs 1] [--json]

Generates bench/out/events-<leads>-s<seed>[-messy].jsonl when missing (git-ignored),
then runs `pulse report FILE` as a subprocess and measures:

- wall time -> events/s (events = non-blank lines of the file);
- peak memory of the command -> bytes per lead (leads = distinct (pipeline, lead_id)
  in the file). Two figures: the largest single process (`ru_maxrss` from `wait4`)
  and the peak of the summed RSS of the whole process tree (sampled from /proc every
  20 ms; counts all workers of a multi-process report). bytes/lead uses the larger;
- a baseline in the same run: a plain Python loop that reads the file and
  `orjson.loads` every line, and the ratio report events/s / baseline events/s, which
  is what to compare between machines and runs (these machines are noisy).

`--repeat N` keeps the best (shortest) time of N runs for both; memory is the largest
seen over the runs. Exits 2 with a message if `pulse report` is not installed or
does not produce a report document.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT_DIR = HERE / "out"

BASELINE = r"""
import gzip, sys, orjson
path = sys.argv[1]
f = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb", buffering=1 << 20)
loads, n, bad = orjson.loads, 0, 0
for line in f:
    if line.strip():
        n += 1
        try:
            loads(line)
        except orjson.JSONDecodeError:
            bad += 1
print(n, bad)
"""


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------------------
# Measuring a child process
# --------------------------------------------------------------------------------------

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _tree_rss(root: int, include_root: bool = True) -> int:
    """Summed resident memory (bytes) of `root`'s descendants (and `root`), from /proc."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: split after the last ')'
        fields = stat[stat.rfind(b")") + 2:].split()
        parent[int(name)] = int(fields[1])
    members = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in members and pid not in members:
                members.add(pid)
                grew = True
    if not include_root:
        members.discard(root)
    total = 0
    for pid in members:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
    return total


# Runs the command under test and reports its wall time, exit status and ru_maxrss.
# A separate small process, because `ru_maxrss` of a child spawned with vfork (what
# subprocess does on Linux) starts at its parent's high-water mark: measured from this
# (possibly large) process, every child would look as big as the benchmark itself.
LAUNCHER = r"""
import json, os, subprocess, sys, time
out = sys.argv[1]
t0 = time.perf_counter()
try:
    proc = subprocess.Popen(sys.argv[2:])
except OSError as exc:
    with open(out, "w") as f:
        json.dump({"error": str(exc)}, f)
    sys.exit(1)
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - t0
with open(out, "w") as f:
    json.dump({"seconds": seconds, "exit_code": os.waitstatus_to_exitcode(status),
               "maxrss": usage.ru_maxrss * 1024, "child": proc.pid}, f)
"""


class Run:
    __slots__ = ("seconds", "exit_code", "maxrss", "tree_peak", "stdout", "stderr")


def measure(cmd: list[str], poll: float = 0.02) -> Run:
    """Run `cmd`: wall time, exit code, peak memory, stdout and stderr (as bytes).

    `maxrss`: the command's own peak RSS (its largest process, `wait4`); `tree_peak`:
    the largest summed RSS of the command's process tree seen while polling /proc."""
    run = Run()
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        result = os.path.join(tmp, "result.json")
        launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, result] + cmd,
                                    stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            can_poll = os.path.isdir("/proc")
            while can_poll and not done.is_set():
                try:
                    peak[0] = max(peak[0], _tree_rss(launcher.pid, include_root=False))
                except OSError:
                    pass
                done.wait(poll)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        launcher.wait()
        done.set()
        sampler.join()
        out.seek(0)
        err.seek(0)
        run.stdout, run.stderr = out.read(), err.read()
        try:
            with open(result) as f:
                r = json.load(f)
        except (OSError, ValueError):
            tail = run.stderr.decode("utf-8", "replace").strip()[-800:]
            raise BenchError(f"could not run {' '.join(cmd)}" + (f":\n{tail}" if tail else "")) from None
    if "error" in r:
        raise BenchError(f"cannot run {' '.join(cmd)}: {r['error']}")
    run.seconds, run.exit_code, run.maxrss = r["seconds"], r["exit_code"], r["maxrss"]
    run.tree_peak = peak[0]
    return run


# --------------------------------------------------------------------------------------
# The command under test
# --------------------------------------------------------------------------------------

def pulse_command(option: str | None) -> list[str]:
    """How to run `pulse`: --pulse, else the venv's script, else `python -m pulse.cli`."""
    if option:
        return option.split()
    script = Path(sys.executable).parent / "pulse"
    if script.exists():
        return [str(script)]
    found = shutil.which("pulse")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-c", "import pulse.cli"], capture_output=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "pulse.cli"]
    raise BenchError("`pulse` is not installed: no `pulse` script next to this Python or on PATH, and "
                     "`import pulse.cli` fails. Install the project first: "
                     f"{sys.executable} -m pip install -e {ROOT}")


def check_report(run: Run, what: str) -> dict:
    """The report document printed by a run, or a BenchError saying what went wrong."""
    tail = run.stderr.decode("utf-8", "replace").strip()[-800:]
    if run.exit_code != 0:
        raise BenchError(f"{what} exited with code {run.exit_code}" + (f":\n{tail}" if tail else ""))
    try:
        doc = json.loads(run.stdout)
    except ValueError:
        head = run.stdout[:200].decode("utf-8", "replace")
        raise BenchError(f"{what} did not print a JSON report document (is `pulse report` implemented?); "
                         f"stdout began with: {head!r}" + (f"\nstderr:\n{tail}" if tail else "")) from None
    if not isinstance(doc, dict) or "data_quality" not in doc or "pipelines" not in doc:
        raise BenchError(f"{what} printed JSON that is not a report document (no data_quality/pipelines)")
    return doc


# --------------------------------------------------------------------------------------
# The input file
# --------------------------------------------------------------------------------------

def _load_generator():
    sys.path.insert(0, str(HERE))
    try:
        import generate_events
    finally:
        sys.path.pop(0)
    return generate_events


def count_file(path: Path) -> tuple[int, int]:
    """(events, leads): non-blank lines, and distinct (pipeline, lead_id) of JSON objects."""
    import orjson

    opener = gzip.open if path.suffix == ".gz" else open
    events = 0
    leads: set[tuple[str, str]] = set()
    loads = orjson.loads
    with opener(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            events += 1
            try:
                d = loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(d, dict):
                lead = d.get("lead_id")
                pipeline = d.get("pipeline")
                if isinstance(lead, str):
                    leads.add((pipeline if isinstance(pipeline, str) else "default", lead))
    return events, len(leads)


def file_counts(path: Path) -> tuple[int, int]:
    """`count_file`; cached next to files in bench/out/ (keyed by size and mtime)."""
    if path.resolve().parent != OUT_DIR.resolve():
        return count_file(path)
    st = path.stat()
    cache = path.with_name(path.name + ".counts.json")
    key = [st.st_size, st.st_mtime_ns]
    try:
        c = json.loads(cache.read_text())
        if c["key"] == key:
            return c["events"], c["leads"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    events, leads = count_file(path)
    try:
        cache.write_text(json.dumps({"key": key, "events": events, "leads": leads}))
    except OSError:
        pass
    return events, leads


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def bench(a: argparse.Namespace) -> dict:
    pulse = pulse_command(a.pulse)
    # smoke test on a tiny file first: fail fast and clearly when `pulse report` is missing
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny.jsonl"
        tiny.write_bytes(b'{"type":"lead.created","event_id":"e1","lead_id":"L-1",'
                         b'"occurred_at":"2026-01-01T00:00:00Z"}\n')
        smoke = measure(pulse + ["report", str(tiny)])
        check_report(smoke, f"`{' '.join(pulse)} report` on a one-event file")

    if a.file:
        path = Path(a.file)
        if not path.is_file():
            raise BenchError(f"{path}: no such file")
    else:
        gen = _load_generator()
        leads = a.leads if a.leads is not None else gen.DEFAULT_LEADS
        path = OUT_DIR / f"events-{leads}-s{a.seed}{'-messy' if a.messy else ''}.jsonl"
        if not path.exists():
            print(f"generating {path} ...", file=sys.stderr, flush=True)
            knobs = dict(gen.synth.MESSY) if a.messy else {}
            c = gen.write_events(path, leads=leads, seed=a.seed, **knobs)
            print(f"  {c['lines']:,} lines in {c['seconds']:.1f} s", file=sys.stderr, flush=True)

    events, leads = file_counts(path)
    if events == 0:
        raise BenchError(f"{path}: no events")
    cmd = pulse + ["report", str(path)]
    if a.as_of:
        cmd += ["--as-of", a.as_of]
    if a.jobs is not None:
        cmd += ["--jobs", str(a.jobs)]
    base_cmd = [sys.executable, "-c", BASELINE, str(path)]

    best_report = best_base = None
    mem_report = mem_proc = mem_base = 0
    events_read = None
    for i in range(a.repeat):
        r = measure(cmd)
        doc = check_report(r, f"`{' '.join(cmd)}`")
        events_read = doc["data_quality"].get("events_read")
        b = measure(base_cmd)
        if b.exit_code != 0:
            raise BenchError("the baseline failed:\n" + b.stderr.decode("utf-8", "replace")[-800:])
        best_report = r.seconds if best_report is None else min(best_report, r.seconds)
        best_base = b.seconds if best_base is None else min(best_base, b.seconds)
        mem_report = max(mem_report, r.tree_peak, r.maxrss)
        mem_proc = max(mem_proc, r.maxrss)
        mem_base = max(mem_base, b.tree_peak, b.maxrss)
        if a.repeat > 1:
            print(f"  run {i + 1}/{a.repeat}: report {r.seconds:.2f} s, baseline {b.seconds:.2f} s",
                  file=sys.stderr, flush=True)
    if events_read is not None and events_read != events:
        print(f"warning: the report read {events_read:,} events, the file has {events:,} non-blank lines",
              file=sys.stderr)
    eps = events / best_report
    base_eps = events / best_base
    return {
        "file": str(path), "command": " ".join(cmd), "repeat": a.repeat,
        "events": events, "leads": leads,
        "seconds": best_report, "events_per_s": eps,
        "peak_rss_bytes": mem_report, "max_process_rss_bytes": mem_proc,
        "bytes_per_lead": mem_report / leads if leads else None,
        "baseline_seconds": best_base, "baseline_events_per_s": base_eps, "baseline_peak_rss_bytes": mem_base,
        "ratio": eps / base_eps,
    }


def print_table(res: dict) -> None:
    rows = [
        ("file", res["file"]),
        ("events", f"{res['events']:,}"),
        ("leads", f"{res['leads']:,}"),
        ("seconds (best of %d)" % res["repeat"], f"{res['seconds']:.2f}"),
        ("events/s", f"{res['events_per_s']:,.0f}"),
        ("peak RSS MB (process tree)", f"{res['peak_rss_bytes'] / 2**20:,.1f}"),
        ("max single-process RSS MB", f"{res['max_process_rss_bytes'] / 2**20:,.1f}"),
        ("bytes/lead", f"{res['bytes_per_lead']:,.0f}" if res["bytes_per_lead"] else "-"),
        ("baseline events/s (read + orjson.loads)", f"{res['baseline_events_per_s']:,.0f}"),
        ("ratio report/baseline (events/s)", f"{res['ratio']:.3f}"),
    ]
    w = max(len(k) for k, _ in rows)
    print(f"command: {res['command']}")
    for k, v in rows:
        print(f"  {k:<{w}}  {v:>14}" if k != "file" else f"  {k:<{w}}  {v}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--file", help="benchmark this JSON Lines file instead of a generated one")
    ap.add_argument("--leads", type=int, default=None, help="leads of the generated file (default: generator's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--messy", action="store_true", help="generate with realistic noise")
    ap.add_argument("--repeat", type=int, default=1, help="runs; the best time counts (default 1)")
    ap.add_argument("--as-of", dest="as_of", help="passed to pulse report")
    ap.add_argument("--jobs", type=int, default=None, help="passed to pulse report (default: its own)")
    ap.add_argument("--pulse", help="the command to run instead of `pulse` (e.g. 'python -m pulse.cli')")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON object")
    a = ap.parse_args(argv)
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    try:
        res = bench(a)
    except BenchError as exc:
        print(f"bench_report: {exc}", file=sys.stderr)
        return 2
    if a.json:
        print(json.dumps(res))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
