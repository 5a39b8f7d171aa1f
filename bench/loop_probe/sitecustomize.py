"""Where a worker's event loop spends its long turns: a probe loaded into `pulse worker` only.

    PYTHONPATH=$PWD/bench/loop_probe PULSE_LOOPPROBE=/tmp/probe.json python bench/bench_reads.py --window 3 --start 0.3
    python bench/loop_probe/analyse.py /tmp/probe.json [--last 30] [--beyond-ms 12]

Python imports `sitecustomize` at start-up from the path; this one does nothing unless
PULSE_LOOPPROBE names a file and the process is a worker (the bench's own process and its
other children inherit the path too). It records, every 3 s into that file (JSON):
- `turns`: each turn of an event loop (BaseEventLoop._run_once) over 2 ms: start, seconds,
  thread (Faust's consumer runs its own loop in a second thread);
- `handles`: each callback over 4 ms: start, seconds, thread and what ran (for a task's
  step, its coroutine chain down to where it suspended: the end of the work it did);
- `gc`: each collection: start, generation, seconds, and the seconds of CPU of the thread that
  ran it (gc.callbacks; wall well above CPU: the thread was preempted meanwhile);
- with PULSE_LOOPPROBE_GCTYPES=1, every 8th middle collection: what its objects are
  (type, and the element types of tuples and lists): what survived the young generation;
- with PULSE_LOOPPROBE_YOUNG=1, each young collection over 5 ms: how many objects it found,
  the largest containers among them and their types (in `gc_types` too; the list of them
  taken at its start keeps them alive through it, a small distortion).

The timer around every callback costs ~1 us each: compare runs made with the probe only
with each other.
"""
import os
import sys

_OUT = os.environ.get("PULSE_LOOPPROBE")
if _OUT and "worker" in " ".join(sys.argv):
    import asyncio.base_events
    import asyncio.events
    import collections
    import gc
    import json
    import threading
    import time

    _pc = time.perf_counter
    _turns, _gcs, _handles, _types = [], [], [], []

    _run_once = asyncio.base_events.BaseEventLoop._run_once

    def _timed_run_once(self):
        t = _pc()
        _run_once(self)
        d = _pc() - t
        if d > 0.002:
            _turns.append((t, d, threading.current_thread().name))
    asyncio.base_events.BaseEventLoop._run_once = _timed_run_once

    _handle_run = asyncio.events.Handle._run

    def _what(cb) -> str:
        name = getattr(cb, "__qualname__", None) or repr(cb)[:120]
        owner = getattr(cb, "__self__", None)
        if hasattr(owner, "get_coro"):
            co, chain = owner.get_coro(), []
            while co is not None and len(chain) < 12:
                chain.append(getattr(co, "__qualname__", type(co).__name__))
                co = getattr(co, "cr_await", None) or getattr(co, "gi_yieldfrom", None)
            name += " " + ">".join(chain)
        protocol = getattr(owner, "_protocol", None)        # a transport's callback: for which protocol
        if protocol is not None:
            name += " " + type(protocol).__qualname__
        return name

    def _timed_handle_run(self):
        t = _pc()
        _handle_run(self)
        d = _pc() - t
        if d > 0.004:
            try:
                what = _what(self._callback)
            except Exception as exc:        # noqa: BLE001 - a probe never breaks the worker
                what = "?" + repr(exc)
            _handles.append((t, d, threading.current_thread().name, what))
    asyncio.events.Handle._run = _timed_handle_run

    _started = [0.0]
    _started_cpu = [0.0]
    _middle = [0]

    def _shape(o) -> str:
        if type(o) is tuple:
            return "tuple(" + ",".join(type(x).__name__ for x in o[:8]) + ")"
        if type(o) is list:
            return "list[%s]" % (type(o[0]).__name__ if o else "-")
        return type(o).__qualname__

    _young_seen: list = []

    def _on_gc(phase, info):
        if phase == "start" and info["generation"] == 0 and os.environ.get("PULSE_LOOPPROBE_YOUNG"):
            _young_seen[:] = [gc.get_objects(0)]
        if phase == "stop" and _young_seen and _pc() - _started[0] > 0.005:
            young = _young_seen[0]
            sized = sorted(((len(o), _shape(o)) for o in young if hasattr(o, "__len__") and not isinstance(o, type)),
                           key=lambda x: -x[0])[:6]
            _types.append((_pc(), [("young:" + str(len(young)), 0)] + [(f"{shape} len {n}", 1) for n, shape in sized]
                           + collections.Counter(_shape(o) for o in young).most_common(8)))
        if phase == "stop":
            _young_seen.clear()
        if phase == "start":
            if info["generation"] == 1 and os.environ.get("PULSE_LOOPPROBE_GCTYPES"):
                _middle[0] += 1
                if _middle[0] % 8 == 0:
                    young = gc.get_objects(1)
                    _types.append((_pc(), collections.Counter(_shape(o) for o in young).most_common(20)))
                    del young
            _started[0] = _pc()
            _started_cpu[0] = time.thread_time()
        else:
            # wall and this thread's CPU: a collection much longer than its CPU was preempted
            _gcs.append((_started[0], info["generation"], _pc() - _started[0], time.thread_time() - _started_cpu[0]))
    gc.callbacks.append(_on_gc)

    def _dump():
        while True:
            time.sleep(3)
            try:
                doc = {"pid": os.getpid(), "now": _pc(), "turns": list(_turns), "gc": list(_gcs),
                       "handles": list(_handles), "gc_types": list(_types)}
                with open(_OUT + ".tmp", "w") as f:
                    json.dump(doc, f)
                os.replace(_OUT + ".tmp", _OUT)     # a reader never sees half a file
            except Exception as exc:        # noqa: BLE001
                print(f"loop probe: {exc!r}", file=sys.stderr)
    threading.Thread(target=_dump, name="loop-probe", daemon=True).start()
