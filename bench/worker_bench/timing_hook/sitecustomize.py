"""Bench-only: times a `pulse worker` from inside, as (q) and (a) time themselves.

bench_worker's (c) puts this folder first on a single worker's PYTHONPATH with
PULSE_BENCH_TIMING=<file> and PULSE_BENCH_TOTAL=<events>. It wraps
`DurableAcks.processed` (called once per batch of applied input messages, not per
message) and writes to <file>, as JSON, when the worker has applied `total` messages:
the time.monotonic() of its first batch and of that last one, how many messages the
first batch held, the process CPU between them, and (time, messages applied, process
CPU) every 0.25 s. CLOCK_MONOTONIC is the machine's, so the bench can compare it with
its own. Without the variables nothing is patched. Not part of the product.
"""
import os

_path, _total = os.environ.get("PULSE_BENCH_TIMING"), os.environ.get("PULSE_BENCH_TOTAL")

if _path and _total:
    import json
    import time

    from pulse.agents.batching import DurableAcks

    _processed = DurableAcks.processed
    _state = {"n": 0, "first": None, "first_n": 0, "cpu0": None, "timeline": []}
    _target = int(_total)

    def processed(self, messages, generation_id):
        batch = _processed(self, messages, generation_id)
        now = time.monotonic()
        _state["n"] += len(messages)
        if _state["first"] is None:
            _state["first"], _state["first_n"], _state["cpu0"] = now, len(messages), time.process_time()
        timeline = _state["timeline"]
        if not timeline or now - timeline[-1][0] >= 0.25:
            timeline.append((now, _state["n"], time.process_time()))
        if _state["n"] >= _target and "last" not in _state:
            _state["last"], _state["cpu"] = now, time.process_time() - _state["cpu0"]
            with open(_path, "w") as f:
                json.dump(_state, f)
        return batch

    DurableAcks.processed = processed
