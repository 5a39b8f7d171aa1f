"""`pulse report` on several cores: shard the leads across processes, merge the results.

A lead's events must all be applied by one process (its state is there), in input
order (the first copy of a duplicate wins, and in-order events need no re-fold), and
the shards' accumulators then merge by plain addition (they hold disjoint leads).

Plain files are cut into byte ranges, one per process (`ingest_range`): a process
parses the lines of its range only, applies the events of its own leads, and sends
the others' events, parsed, to their processes. Parsing is most of the cost of a line
that is not one's own, so no line is parsed twice. To keep input order, a process
applies its leads' events range by range: the events earlier ranges send it, as they
arrive, then its own range's (held back until then), then the later ranges'. What
waits meanwhile is kept as MessagePack (~60 bytes an event): a range's own events until
the earlier ranges' are in, and the events for earlier shards until those take them
(about (N - 1) / 2N of all events; some 12 % of the input's size).

Compressed files and standard input cannot be cut: there every process reads every
line and applies those of its own leads (`ingest_shard`), routing a line by its lead_id.
"""
from __future__ import annotations

import heapq
import multiprocessing
import os
import pickle
import queue
import sys
import tempfile
import threading
import zlib
from multiprocessing.connection import Connection
from typing import Callable

import msgspec
import orjson

from pulse.inputs.files import (Piece, dead_letter_record, first_line_number, is_splittable, plan_ranges, read_batches,
                                read_piece)
from pulse.schemas.config import Config
from pulse.schemas.fast_path import decode_fast
from pulse.schemas.types import LEAD_ID, Event, Rejected
from pulse.streams.engine import PulseEngine
from pulse.streams.partial import dump_partial, load_partial

_KEY = b'"lead_id"'
_COMPACT = b'"lead_id":"'

# Events between processes: MessagePack batches, decoded straight into Events (~0.6 µs
# an event both ways, against ~2.5 µs to parse its line again).
_encode_events = msgspec.msgpack.Encoder().encode
_decode_events = msgspec.msgpack.Decoder(list[Event]).decode


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
        accept, apply = engine.accept_line, engine.ingest_event
        for path, first, lines in read_batches(paths, on_progress):
            for k, line in enumerate(lines):
                ev = accept(line)
                if ev.__class__ is Rejected:
                    if on_rejected is not None:
                        on_rejected(path, first + k, line, ev)
                elif ev is not None:                # None: a blank line
                    apply(ev)
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


class PeerStopped(RuntimeError):
    """Another process of the report ended before its stream of events did."""


class _Outbox:
    """Events for another process, sent by a thread of their own.

    The receiver may not read them for a long while (it first takes the events of
    earlier ranges): a blocking send in the reading loop could deadlock two processes
    that wait for each other. Batches wait here instead (~60 bytes an event).
    """

    def __init__(self, conn: Connection):
        self._conn = conn
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._send, name="pulse-outbox", daemon=True)
        self._thread.start()

    def put(self, events: list[Event]) -> None:
        self._queue.put(_encode_events(events))

    def close(self) -> None:
        """No more events: the receiver gets an empty message, the end of this stream."""
        self._queue.put(None)

    def join(self) -> None:
        self._thread.join()

    def _send(self) -> None:
        try:
            while (data := self._queue.get()) is not None:
                self._conn.send_bytes(data)
            self._conn.send_bytes(b"")
        except OSError:     # the receiver is gone: its process failed, which the parent reports
            pass
        finally:
            self._conn.close()


def ingest_range(engine: PulseEngine, pieces: list[Piece], shard: int, shards: int,
                 inbound: dict[int, Connection], outbound: dict[int, Connection],
                 on_rejected: Callable | None = None, on_read: Callable[[int], None] | None = None,
                 on_received: Callable[[], None] | None = None) -> None:
    """Process `shard` of a report over byte ranges: parse the lines of `pieces` (range
    `shard`), apply the events of this shard's leads, send the others' to their shards
    (`outbound[j]`), and apply what the other ranges send here (`inbound[j]`), in
    range order.

    A lead's shard is `hash(lead_id) % shards`: str hashes differ between interpreters
    (PYTHONHASHSEED), but processes forked from one parent share theirs.
    """
    accept, apply = engine.accept_line, engine.ingest_event
    outboxes = {j: _Outbox(conn) for j, conn in outbound.items()}
    pending: list[list[Event]] = [[] for _ in range(shards)]
    held: list[bytes] = []      # this range's events for this shard, until the earlier ranges' are in
    first_open = 0              # the first range whose events for this shard are not all applied

    def take(j: int, wait: bool) -> bool:
        """Apply what range j has sent; True once its stream has ended."""
        conn = inbound[j]
        while wait or conn.poll():
            try:
                data = conn.recv_bytes()
            except EOFError:
                raise PeerStopped(f"report process {j} stopped before sending all its events") from None
            if not data:
                return True
            for ev in _decode_events(data):
                apply(ev)
            if on_received is not None:
                on_received()
        return False

    def catch_up(wait: bool) -> None:
        nonlocal first_open
        while first_open < shard:
            if not take(first_open, wait):
                return
            first_open += 1
        for data in held:           # every earlier range is in: this range's events are next
            for ev in _decode_events(data):
                apply(ev)
        held.clear()

    read_before = 0             # bytes of the pieces already read

    def report_read(n: int) -> None:
        if on_read is not None:
            on_read(read_before + n)

    for piece in pieces:
        base = first_line_number(piece) if on_rejected is not None else 1
        for first, lines in read_piece(piece, report_read):
            own_range_is_next = first_open == shard
            for k, line in enumerate(lines):
                ev = accept(line)
                if ev.__class__ is Rejected:
                    if on_rejected is not None:
                        on_rejected(piece.path, base + first + k, line, ev)
                    continue
                if ev is None:                      # a blank line
                    continue
                s = hash(ev[LEAD_ID]) % shards
                if s == shard and own_range_is_next:
                    apply(ev)
                else:
                    pending[s].append(ev)
            for j, box in outboxes.items():
                if pending[j]:
                    box.put(pending[j])
                    pending[j] = []
            if pending[shard]:          # encoded: ~60 bytes an event, not ~350 as objects
                held.append(_encode_events(pending[shard]))
                pending[shard] = []
            if first_open < shard:
                catch_up(wait=False)
        read_before += piece.end - piece.start
        report_read(0)
    for box in outboxes.values():
        box.close()
    catch_up(wait=True)
    for j in range(shard + 1, shards):
        take(j, wait=True)
    if on_received is not None:     # every range is read now (a stream ends after its reading)
        on_received()
    for box in outboxes.values():
        box.join()


def run_sharded(paths: list[str], config: Config, as_of: int | None, shards: int, *,
                dead_letter_path: str | None = None,
                on_progress: Callable[[int], None] | None = None) -> PulseEngine:
    """Shard 0 runs here, shards 1..n-1 in forked processes; returns the merged engine."""
    ctx = multiprocessing.get_context("fork")
    tmpdir = tempfile.mkdtemp(prefix="pulse-report-") if dead_letter_path else None
    file_index = {p: i for i, p in enumerate(paths)}

    if shards > 1 and is_splittable(paths):
        plan = plan_ranges(paths, shards)
        pipes = {(i, j): _pipe(ctx) for i in range(shards) for j in range(shards) if i != j}
        done = ctx.Array("q", shards, lock=False)     # bytes read by each shard, for the progress bar

        def ingest(engine: PulseEngine, shard: int, on_rejected, progress) -> None:
            def read(n: int) -> None:
                done[shard] = n                 # this shard's bytes read so far
                if progress is not None:
                    progress(sum(done))
            for (i, j), (reader, writer) in pipes.items():     # keep only this shard's ends: a
                if j != shard:                                   # stream then ends (EOFError) if
                    reader.close()                               # its sender dies
                if i != shard:
                    writer.close()
            inbound = {i: pipes[i, shard][0] for i in range(shards) if i != shard}
            outbound = {j: pipes[shard, j][1] for j in range(shards) if j != shard}
            ingest_range(engine, plan[shard], shard, shards, inbound, outbound, on_rejected, read,
                         (lambda: progress(sum(done))) if progress is not None else None)
    else:
        def ingest(engine: PulseEngine, shard: int, on_rejected, progress) -> None:
            ingest_shard(engine, paths, shard, shards, on_rejected, progress)

    def work(shard: int, progress) -> PulseEngine:
        engine = PulseEngine(config, as_of=as_of)
        out = open(os.path.join(tmpdir, f"{shard}.jsonl"), "wb") if tmpdir else None
        try:
            def on_rejected(path, line_no, line, rejected):
                # A sortable prefix lets the shards' files merge back into input order.
                out.write(b"%06d%012d" % (file_index[path], line_no) + dead_letter_record(path, line_no, line, rejected))
            ingest(engine, shard, on_rejected if out else None, progress)
        finally:
            if out:
                out.close()
        return engine    # only the report's part of it leaves the process (dump_partial)

    children = []
    for shard in range(1, shards):
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(work, shard, writer), daemon=True)
        proc.start()
        writer.close()
        children.append((proc, reader))
    try:
        try:
            engine = work(0, on_progress)
        except PeerStopped:
            raise _failure_of(children) or sys.exc_info()[1] from None
        for proc, reader in children:
            try:
                payload = reader.recv_bytes()
            except EOFError:
                raise RuntimeError(f"a report process died (exit code {proc.exitcode})") from None
            proc.join()
            status, value = pickle.loads(payload)
            if status == "error":
                raise value
            engine.merge(load_partial(config, value))
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


def _failure_of(children: list) -> BaseException | None:
    """After a stream ended early: the error a child reported (its own, rather than the
    PeerStopped of a child that lost a peer), or which child died; None if none is known."""
    found: list[BaseException] = []
    for shard, (proc, reader) in enumerate(children, start=1):
        proc.join(timeout=0.5)              # a failed child reports, then exits at once
        if proc.exitcode is None:
            continue                        # still running (waiting for this process, say)
        try:
            status, value = pickle.loads(reader.recv_bytes()) if reader.poll(0) else (None, None)
        except (EOFError, OSError):
            status, value = None, None
        if status == "error":
            found.append(value)
        elif proc.exitcode != 0:
            found.append(RuntimeError(f"report process {shard} died (exit code {proc.exitcode})"))
    found.sort(key=lambda exc: isinstance(exc, PeerStopped))
    return found[0] if found else None


def _pipe(ctx) -> tuple[Connection, Connection]:
    """A one-way pipe; on Linux with a 256 KiB buffer (with the default 64 KiB, a batch of
    events takes many writes, each waking the reader; there are N x (N - 1) pipes)."""
    reader, writer = ctx.Pipe(duplex=False)
    try:
        import fcntl
        fcntl.fcntl(writer.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 18)
    except (ImportError, OSError):   # not Linux, or above /proc/sys/fs/pipe-max-size: keep the default
        pass
    return reader, writer


def _child(work, shard: int, writer) -> None:
    try:
        # What a report needs of the shard, as MessagePack: ~3x faster both ways than a pickle.
        result = ("ok", dump_partial(work(shard, None)))
    except BaseException as exc:  # report any failure to the parent instead of dying silently
        result = ("error", exc)
    writer.send_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    writer.close()
