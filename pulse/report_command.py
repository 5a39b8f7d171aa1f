"""`pulse report`: the analytics core fed from files (the imperative shell around PulseEngine)."""
from __future__ import annotations

import base64
import contextlib
from typing import IO

import orjson

from pulse.config import Config
from pulse.inputs import read_lines, total_size
from pulse.schemas.types import Rejected
from pulse.streams.engine import PulseEngine


def dead_letter_record(path: str, line_no: int, raw: bytes, rejected: Rejected) -> bytes:
    """One --dead-letter line: where the input was, why it was rejected, and its original bytes."""
    record = {"reason": rejected.reason, "detail": rejected.detail, "file": path, "line": line_no}
    try:
        record["raw"] = raw.decode("utf-8")
        out = orjson.dumps(record)
    except (UnicodeDecodeError, orjson.JSONEncodeError):  # not UTF-8: keep the bytes exactly
        record.pop("raw", None)
        record["raw_base64"] = base64.b64encode(raw).decode("ascii")
        out = orjson.dumps(record)
    return out + b"\n"


def run_report(paths: list[str], config: Config, as_of: int | None, *,
               dead_letter_path: str | None = None, progress: bool = False) -> dict:
    engine = PulseEngine(config, as_of=as_of)
    with contextlib.ExitStack() as stack:
        dead_out: IO[bytes] | None = None
        if dead_letter_path is not None:
            dead_out = stack.enter_context(open(dead_letter_path, "wb"))
        on_progress = stack.enter_context(_progress_bar(total_size(paths))) if progress else None
        ingest = engine.ingest
        for path, line_no, line in read_lines(paths, on_progress):
            result = ingest(line)
            if dead_out is not None and result.__class__ is Rejected:
                dead_out.write(dead_letter_record(path, line_no, line, result))
    return engine.report()


@contextlib.contextmanager
def _progress_bar(total: int | None):
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = [TextColumn("reading events"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
               TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("read", total=total)
        yield lambda done: bar.update(task, completed=done)
