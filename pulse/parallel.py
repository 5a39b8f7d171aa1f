"""`pulse report` on several cores: shard the leads across processes, merge the results.

Every process reads (and mostly decodes, to route it by lead_id) every input line
but fully parses and applies only the lines of its own leads; the accumulators of
the shards then merge (they hold disjoint leads, so merging is plain addition).
Correctness needs one property only: all valid events of one lead_id go to the
same shard, and each line to exactly one.
"""
from __future__ import annotations

import heapq
import multiprocessing
import os
import pickle
import tempfile
import zlib
from typing import Callable

import orjson

from pulse.config import Config
from pulse.inputs import read_batches
from pulse.schemas.parse import decode_fast
from pulse.streams.engine import PulseEngine

_KEY = b'"lead_id"'
_COMPACT = b'"lead_id":"'


def shard_of(raw: bytes, line_no: int, shards: int) -> int:
    """The shard of one input line: a hash of its lead_id's UTF-8 bytes.

    The fast path reads the lead_id straight from the raw bytes when that is
    unambiguous: the key occurs once, is a real key (its opening quote is not
    escaped, a colon follows) and its value is a string without escapes (so its
    raw bytes are exactly its UTF-8 encoding). Anything else is decoded. A line
    with no usable lead_id (invalid anyway) goes by its line number.
    """
    i = raw.find(_COMPACT)
    if i > 0:                                   # the usual compact form: "lead_id":"..."
        j = i + 11
        k = raw.find(b'"', j)
        if (k > 0 and raw[i - 1] != 92 and raw.find(b"\\", j, k) < 0
                and raw.find(_KEY, k) < 0 and raw.find(_KEY, 0, i) < 0):
            return zlib.crc32(raw[j:k]) % shards
    i = raw.find(_KEY)
    if i > 0 and raw[i - 1] != 92 and raw.find(_KEY, i + 9) < 0:   # 92: backslash
        j = i + 9
        while raw[j:j + 1] in (b" ", b"\t"):
            j += 1
        if raw[j:j + 1] == b":":
            j += 1
            while raw[j:j + 1] in (b" ", b"\t"):
                j += 1
            if raw[j:j + 1] == b'"':
                k = raw.find(b'"', j + 1)
                if k > 0 and raw.find(b"\\", j + 1, k) < 0:
                    return zlib.crc32(raw[j + 1:k]) % shards
    try:
        obj = orjson.loads(raw)
        lead_id = obj.get("lead_id") if obj.__class__ is dict else None
        if lead_id.__class__ is str:
            return zlib.crc32(lead_id.encode()) % shards
    except (orjson.JSONDecodeError, UnicodeEncodeError):
        pass
    return line_no % shards


def ingest_shard(engine: PulseEngine, paths: list[str], shard: int, shards: int,
                 on_rejected: Callable | None = None, on_progress: Callable[[int], None] | None = None) -> None:
    reject_class = None
    if on_rejected is not None:
        from pulse.schemas.types import Rejected as reject_class
    if shards == 1:
        ingest = engine.ingest
        for path, first, lines in read_batches(paths, on_progress):
            for k, line in enumerate(lines):
                if not line or line.isspace():
                    continue
                result = ingest(line)
                if result.__class__ is reject_class:
                    on_rejected(path, first + k, line, result)
        return
    # Every line is routed by its lead_id. Most lines decode on the parser's fast path
    # (decode_fast), whose lead_id is the one a valid event of the line has: route by it,
    # and hand the decoding on to the engine (the shard's own lines are not decoded twice).
    # Other lines go by shard_of, which gives a valid event the same shard:
    # crc32 of its lead_id's UTF-8 bytes. A shard skips another's line at ~1 µs either way.
    # (A decoded str encodes: msgspec refuses invalid UTF-8 and unpaired surrogate escapes.)
    ingest_decoded = engine.ingest_decoded
    crc32 = zlib.crc32
    for path, first, lines in read_batches(paths, on_progress):
        for k, line in enumerate(lines):
            decoded = decode_fast(line)
            if decoded is not None:
                if crc32(decoded.lead_id.encode()) % shards != shard:
                    continue
            else:
                if not line or line.isspace():
                    continue
                if shard_of(line, first + k, shards) != shard:
                    continue
            result = ingest_decoded(line, decoded)
            if result.__class__ is reject_class:
                on_rejected(path, first + k, line, result)


def run_sharded(paths: list[str], config: Config, as_of: int | None, shards: int, *,
                dead_letter_path: str | None = None,
                on_progress: Callable[[int], None] | None = None) -> PulseEngine:
    """Shard 0 runs here, shards 1..n-1 in forked processes; returns the merged engine."""
    from pulse.report_command import dead_letter_record

    ctx = multiprocessing.get_context("fork")
    tmpdir = tempfile.mkdtemp(prefix="pulse-report-") if dead_letter_path else None
    file_index = {p: i for i, p in enumerate(paths)}

    def work(shard: int, progress) -> PulseEngine:
        engine = PulseEngine(config, as_of=as_of)
        out = open(os.path.join(tmpdir, f"{shard}.jsonl"), "wb") if tmpdir else None
        try:
            def on_rejected(path, line_no, line, rejected):
                # A sortable prefix lets the shards' files merge back into input order.
                out.write(b"%06d%012d" % (file_index[path], line_no) + dead_letter_record(path, line_no, line, rejected))
            ingest_shard(engine, paths, shard, shards, on_rejected if out else None, progress)
        finally:
            if out:
                out.close()
        return engine.without_history()

    children = []
    for shard in range(1, shards):
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(work, shard, writer), daemon=True)
        proc.start()
        writer.close()
        children.append((proc, reader))
    try:
        engine = work(0, on_progress)
        for proc, reader in children:
            payload = reader.recv_bytes()
            proc.join()
            status, value = pickle.loads(payload)
            if status == "error":
                raise value
            engine.merge(value)
    finally:
        for proc, _ in children:
            if proc.is_alive():
                proc.kill()
    if tmpdir:
        parts = [open(os.path.join(tmpdir, f"{s}.jsonl"), "rb") for s in range(shards)]
        with open(dead_letter_path, "wb") as out:
            for line in heapq.merge(*parts):
                out.write(line[18:])
        for f in parts:
            f.close()
            os.unlink(f.name)
        os.rmdir(tmpdir)
    return engine


def _child(work, shard: int, writer) -> None:
    try:
        result = ("ok", work(shard, None))
    except BaseException as exc:  # report any failure to the parent instead of dying silently
        result = ("error", exc)
    writer.send_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    writer.close()
