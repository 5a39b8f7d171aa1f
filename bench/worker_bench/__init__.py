"""bench/bench_worker.py's parts (run it as `python bench/bench_worker.py`; see its docstring)."""
