"""bench/bench_worker.py's pure parts: the steady-state rate of (c) and its options.

The phases themselves print figures (they are measurements, not tests); these check
the arithmetic and the refusals that keep a run from measuring the wrong thing."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.support import ROOT

BENCH = ROOT / "bench" / "bench_worker.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_worker_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_mid_rate_uses_the_first_polls_past_20_and_80_percent(bench):
    # (time, committed): 1,000 events committed per second after a 3 s group join
    commits = [(3.0 + i, 1000 * i) for i in range(0, 11)]
    got = bench._mid_rate(commits, total=10_000)
    # first >= 2,000 at t=5, first >= 8,000 at t=11: 6,000 events in 6 s
    assert got == {"events_per_s_mid": 1000.0, "mid_seconds": 6.0}


def test_mid_rate_ignores_a_slow_start(bench):
    # a rebalance stalls the start (100 events in 10 s), then 500 events/s
    commits = [(0.0, 0), (10.0, 100)] + [(11.0 + k, 1000 + 500 * k) for k in range(19)]
    got = bench._mid_rate(commits, total=10_000)
    # first >= 2,000 at t=13, first >= 8,000 at t=25
    assert got == {"events_per_s_mid": 500.0, "mid_seconds": 12.0}


def test_mid_rate_gives_nothing_for_a_short_or_unfinished_span(bench):
    assert bench._mid_rate([(0.0, 2000), (1.0, 9000)], total=10_000) == {"events_per_s_mid": None}
    assert bench._mid_rate([(0.0, 2000), (30.0, 5000)], total=10_000) == {"events_per_s_mid": None}
    assert bench._mid_rate([], total=10_000) == {"events_per_s_mid": None}


def test_worker_keys(bench):
    assert [bench.worker_key(n) for n in (1, 2, 4)] == ["c", "c2", "c4"]


def test_more_workers_than_partitions_is_refused(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--workers", "1,8", "--partitions", "4"])
    assert exc.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_missing_quixstreams_stops_the_run_before_it_starts(bench, monkeypatch, capsys):
    monkeypatch.setattr(bench, "quix_available", lambda: False)
    monkeypatch.setattr(bench, "run", lambda a: pytest.fail("the run started"))
    assert bench.main(["--leads", "10"]) == 2
    err = capsys.readouterr().err
    assert "quixstreams is not installed" in err and "--no-quix" in err and ".[bench]" in err


def test_no_quix_skips_the_phase_without_needing_quixstreams(bench, monkeypatch):
    monkeypatch.setattr(bench, "quix_available", lambda: False)
    seen = {}

    def fake_run(a):
        seen["skip"] = a.skip
        raise bench.BenchError("stop here")

    monkeypatch.setattr(bench, "run", fake_run)
    assert bench.main(["--no-quix", "--skip", "e", "--workers", "2,1"]) == 1
    assert set(seen["skip"].split(",")) == {"e", "q"}


def test_medians_of_rounds_take_each_rounds_ratio(bench):
    rounds = []
    for c, q, c2 in ((10.0, 20.0, 15.0), (30.0, 20.0, 45.0), (12.0, 10.0, 12.0)):
        got = {"c": {"events_per_s": c, "events_per_cpu_s": c}, "q": {"events_per_s": q, "events_per_cpu_s": q},
               "c2": {"events_per_s": c2, "events_per_cpu_s": c2}}
        got.update(bench._ratios(got, [1, 2]))
        rounds.append(got)
    res = bench._medians(rounds)
    assert res["c"]["events_per_s"] == 12.0 and res["c"]["events_per_s_runs"] == [10.0, 30.0, 12.0]
    # per-round ratios 0.5, 1.5, 1.2: median 1.2 (the ratio of the medians would be 12 / 20 = 0.6)
    assert res["c_over_q"] == 1.2 and res["c_over_q_runs"] == [0.5, 1.5, 1.2]
    assert res["c2"]["events_per_s_over_one"] == 1.5            # 1.5, 1.5, 1.0
    assert res["c_over_d"] is None                              # no (d) in any round
    assert bench._medians(rounds[:1]) == rounds[0]


def test_mid_rate_with_cpu_times_gives_cores_busy(bench):
    # (time, committed, workers' CPU s, broker's CPU s): 1.5 cores of workers, 0.1 of broker
    commits = [(float(t), 1000 * t, 1.5 * t, 0.1 * t) for t in range(11)]
    got = bench._mid_rate(commits, total=10_000)
    assert got["events_per_s_mid"] == 1000.0 and got["mid_seconds"] == 6.0
    assert got["worker_cores_mid"] == pytest.approx(1.5) and got["broker_cores_mid"] == pytest.approx(0.1)
    assert got["events_per_cpu_s_mid"] == pytest.approx(1000 / 1.5)


HOOK_SCRIPT = """
import json, os
from pulse.agents.batching import DurableAcks
async def noop(*a): pass
acks = DurableAcks(take_state=dict, write_outputs=noop, write_state=noop, ack=lambda b: None, generation=lambda: 0)
acks.processed(["m1", "m2"], 0)
print(os.path.exists(os.environ["PULSE_BENCH_TIMING"]))     # 2 of 3: not written yet
acks.processed(["m3"], 0)
acks.processed(["m4"], 0)                                    # past the total: written once, not again
print(json.dumps(json.load(open(os.environ["PULSE_BENCH_TIMING"]))))
"""


def test_timing_hook_writes_the_first_and_the_total_completing_batch(tmp_path):
    """The (c) worker's own timing (bench/worker_bench/timing_hook) in a real interpreter start."""
    import json
    import os
    import subprocess

    out = tmp_path / "timing.json"
    hook = ROOT / "bench" / "worker_bench" / "timing_hook"
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}", "PULSE_BENCH_TIMING": str(out),
           "PULSE_BENCH_TOTAL": "3"}
    lines = subprocess.run([sys.executable, "-c", HOOK_SCRIPT], env=env, cwd=tmp_path, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    assert lines[0] == "False"
    got = json.loads(lines[1])
    assert (got["n"], got["first_n"]) == (3, 2)
    assert got["first"] <= got["last"] and got["cpu"] >= 0
    # without the variables the interpreter starts unpatched
    plain = {k: v for k, v in env.items() if not k.startswith("PULSE_BENCH")}
    name = subprocess.run([sys.executable, "-c", "from pulse.agents.batching import DurableAcks; "
                           "print(DurableAcks.processed.__module__)"], env=plain, cwd=tmp_path,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert name == "pulse.agents.batching"
