"""`pulse replay FILE…`: publish JSON Lines inputs to the input topics (SPEC 7.1).

Every input line (SPEC 5: blank lines are not inputs) becomes one Kafka message whose
value is the line's bytes exactly as read (no newline, no re-serialisation), keyed by
its `lead_id` (UTF-8) when the line is a JSON object with a string `lead_id`, on the
topic of its `type`; a line that is not a JSON object with a known `type` goes to
`crm.lead-created`, where the worker dead-letters it. Keys are partitioned by
kafka-python's default partitioner (murmur2, like the Java client), so a lead lands on
the partition a Java CRM producer would pick, and on the same partition number in the
four co-partitioned input topics.

The producer (routing, a tuned idempotent KafkaProducer, Ctrl-C handling) is
pulse/kafka/producer.py, shared with `pulse simulate`.

Throughput measured on the project's machine kind (2 cores, embedded Tansu broker,
4 input partitions, 153,700 synthetic events of ~257 bytes, 39.5 MB):
`pulse replay FILE --broker URL` took 7.4 s end to end, ~21,000 messages/s (publish
loop alone ~24–27k/s); Python CPU is the bound (kafka-python's per-send work), the
broker uses a few %. The `crc32c` package matters: without it kafka-python checksums
record batches in pure Python and the same replay runs at ~12,000 messages/s."""
from __future__ import annotations

import contextlib
import sys
import time

from pulse.kafka.producer import (CONNECT_TIMEOUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, FLUSH_TIMEOUT,
                                  Refused, StopFlag, open_publisher)


def run_replay(paths: list[str], broker: str, prefix: str = "", *, rate: float | None = None,
               progress: bool = False, connect_timeout: float = CONNECT_TIMEOUT,
               err=None) -> int:
    """Publish every input line of `paths`; messages on `err` (default stderr). Returns
    the exit code."""
    from pulse.inputs.files import InputError, check_readable, is_input, read_batches, total_size

    err = err or sys.stderr

    def say(text: str) -> None:
        print(f"pulse replay: {text}", file=err, flush=True)

    if rate is not None and not rate > 0:
        say("--rate must be a positive number of messages per second")
        return EXIT_USAGE
    try:
        check_readable(paths)
    except InputError as exc:
        say(str(exc))
        return EXIT_USAGE
    pub = open_publisher(broker, prefix, say, client_id="pulse-replay", connect_timeout=connect_timeout)
    if pub is None:
        return EXIT_USAGE
    stop = StopFlag()
    code = EXIT_OK
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(stop.installed())
            bar = stack.enter_context(_progress(total_size(paths), err)) if progress else None
            tracker = _Tracker(paths) if bar else None
            start = time.monotonic()
            n = 0
            try:
                for path, first, lines in read_batches(paths, tracker.on_raw if tracker else None):
                    if tracker is not None:
                        tracker.enter(path, first)
                    for k, line in enumerate(lines):
                        if tracker is not None:
                            tracker.consumed += len(line) + 1
                            if rate is not None or not n & 255:
                                tracker.show(bar, pub.total_sent)
                        if not is_input(line):
                            continue
                        if stop.is_set():
                            break
                        if rate is not None:
                            delay = start + n / rate - time.monotonic()
                            if delay > 0.001 and stop.wait(delay):
                                break
                        n += 1
                        try:
                            pub.publish(line)
                        except Refused as exc:
                            pub.refuse(exc.topic, f"line {first + k} of {path}: {exc.error}")
                    if stop.is_set():
                        break
            except InputError as exc:
                say(str(exc))
                code = EXIT_USAGE
            if tracker is not None:
                tracker.show(bar, pub.total_sent, force=True)
            if not pub.flush():
                say(f"the broker did not acknowledge every message within {FLUSH_TIMEOUT:g} s")
                code = code or EXIT_FAILED
        if stop.is_set():
            say("interrupted")
            code = EXIT_INTERRUPTED
        if pub.total_failed and code == EXIT_OK:
            code = EXIT_FAILED
        print(pub.summary(), file=err, flush=True)
        return code
    finally:
        pub.close(timeout=5.0)


class _Tracker:
    """How much of the input was consumed, in the progress bar's unit (bytes on disk):
    counted per line for plain files, from `read_batches`' reports for .gz and stdin."""

    def __init__(self, paths: list[str]):
        import os

        self._size = {p: os.path.getsize(p) for p in paths if p != "-"}
        self._prior = 0          # bytes of the files done
        self._path: str | None = None
        self._plain = False
        self._raw = 0            # read_batches' last report (cumulative, compressed sizes)
        self._next = 0.0
        self.consumed = 0        # line bytes (with newline) of the current file

    def on_raw(self, done: int) -> None:
        self._raw = done

    def enter(self, path: str, first_line: int) -> None:
        if first_line == 1:      # a new file begins
            if self._path is not None and self._path != "-":
                self._prior += self._size[self._path]
            self._path = path
            self._plain = path != "-" and not path.endswith(".gz")
            self.consumed = 0

    def done(self) -> int:
        if self._plain:
            return self._prior + min(self.consumed, self._size[self._path])
        return self._raw

    def show(self, bar, messages: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now >= self._next:
            self._next = now + 0.1
            bar(self.done(), messages)


@contextlib.contextmanager
def _progress(total: int | None, err):
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = [TextColumn("publishing"), BarColumn(), DownloadColumn(),
               TextColumn("{task.fields[messages]:,} messages"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(file=err), transient=True) as bar:
        task = bar.add_task("publish", total=total, messages=0)

        def update(done: int, messages: int) -> None:
            bar.update(task, completed=done, messages=messages)

        yield update
