"""bench/bench_worker.py, in parts: what the driver and the child consumers share."""
from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent   # bench/
ROOT = HERE.parent
OUT_DIR = HERE / "out"
SCRIPT = HERE / "bench_worker.py"   # the children run as `bench_worker.py _consume MODE ...`
DEFAULT_LEADS = 81_000          # 501,817 events with --seed 1
POLL_S = 0.2
END_WINDOW_S = 4.0      # hybrid polling: back to /report this many seconds of events before the end
DEV_TIMEOUTS = dict(broker_session_timeout=6, broker_rebalance_timeout=6, broker_heartbeat_interval=1)


class BenchError(Exception):
    pass


def _log(text: str) -> None:
    print(f"[bench_worker {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_bytes()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


def worker_key(n: int) -> str:
    """Result key of (c) with n workers sharing the partitions: "c", "c2", "c4"."""
    return "c" if n == 1 else f"c{n}"
