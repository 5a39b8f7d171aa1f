"""`pulse report`: the analytics core fed from files (the imperative shell around PulseEngine)."""
from __future__ import annotations

import contextlib
import gc
import os
import time

from pulse.inputs.files import total_size
from pulse.inputs.parallel import run_sharded
from pulse.schemas.config import Config
from pulse.streams.report import build_document

# Below this much input, forking a second process costs more than it saves.
PARALLEL_MIN_BYTES = 16 * 1024 * 1024
# Processes talk pairwise over pipes (N x (N - 1)): bound N well below the open-files limit.
MAX_JOBS = 16


def default_jobs(paths: list[str]) -> int:
    """Use every core for large regular files; stdin can be read only once."""
    size = total_size(paths)
    if size is None or size < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def run_report(paths: list[str], config: Config, as_of: int | None, *,
               dead_letter_path: str | None = None, progress: bool = False, jobs: int | None = None) -> dict:
    if jobs is None:
        jobs = default_jobs(paths)
    if "-" in paths:
        jobs = 1
    jobs = max(1, min(jobs, MAX_JOBS))
    # The engine's state has no reference cycles; the cyclic GC would only rescan the
    # ever-growing lead state (measured: a large share of run time). Off while ingesting.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with contextlib.ExitStack() as stack:
            on_progress = stack.enter_context(_progress_bar(total_size(paths))) if progress else None
            engine = run_sharded(paths, config, as_of, jobs, dead_letter_path=dead_letter_path,
                                 on_progress=on_progress)
        # SPEC 7: T is --as-of, else the latest valid occurred_at, else now (an input with no valid event)
        return build_document(engine, engine.default_as_of(time.time_ns() // 1000))
    finally:
        if gc_was_enabled:
            gc.enable()


@contextlib.contextmanager
def _progress_bar(total: int | None):
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = [TextColumn("reading events"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("read", total=total)
        yield lambda done: bar.update(task, completed=done)
