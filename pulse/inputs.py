"""Reading JSON Lines inputs for `pulse report` and `pulse replay` (SPEC 5, 7).

A file's lines are split on b"\\n"; blank (whitespace-only) lines are not inputs.
`-` is standard input; a name ending in `.gz` is read through gzip.

Files are read in large chunks split by bytes.split (C speed): at ~10 µs of work
per event, a per-line Python read loop would be a noticeable share.
"""
from __future__ import annotations

import gzip
import os
import sys
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator

CHUNK = 4 * 1024 * 1024


class InputError(Exception):
    """An input file that cannot be read (exit code 2)."""


def check_readable(paths: list[str]) -> None:
    """Fail before any work when a named file is missing or unreadable."""
    for path in paths:
        if path == "-":
            continue
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such file")
        if not os.access(path, os.R_OK):
            raise InputError(f"{path}: permission denied")


def total_size(paths: list[str]) -> int | None:
    """Bytes on disk of all inputs (compressed size for .gz), or None when stdin is among them."""
    if "-" in paths:
        return None
    return sum(os.path.getsize(p) for p in paths)


@contextmanager
def _open(path: str) -> Iterator[tuple[BinaryIO, Callable[[], int]]]:
    """The file as a binary stream, and a function telling how many raw bytes were read."""
    if path == "-":
        yield sys.stdin.buffer, lambda: 0
        return
    raw = open(path, "rb")
    try:
        if path.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as gz:
                yield gz, raw.tell
        else:
            yield raw, raw.tell
    finally:
        raw.close()


def read_batches(paths: list[str], on_progress: Callable[[int], None] | None = None
                 ) -> Iterator[tuple[str, int, list[bytes]]]:
    """(path, number of the batch's first line, lines) over all files, in order.

    Lines keep blank ones (the caller skips them with `is_input`), so that line
    numbers stay countable: line k of the batch is line first + k of the file.
    """
    done = 0
    for path in paths:
        try:
            with _open(path) as (f, position):
                first = 1
                rest = b""
                while True:
                    chunk = f.read(CHUNK)
                    if not chunk:
                        break
                    lines = (rest + chunk).split(b"\n")
                    rest = lines.pop()
                    yield path, first, lines
                    first += len(lines)
                    if on_progress is not None:
                        on_progress(done + position())
                if rest:
                    yield path, first, [rest]
            if path != "-":
                done += os.path.getsize(path)
            if on_progress is not None:
                on_progress(done)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputError(f"{path}: cannot be read: {exc}") from exc


def is_input(line: bytes) -> bool:
    """SPEC 5: lines that are empty or only whitespace are not inputs."""
    return bool(line) and not line.isspace()


def read_lines(paths: list[str], on_progress: Callable[[int], None] | None = None
               ) -> Iterator[tuple[str, int, bytes]]:
    """(path, line number, line) for every input line of every file, blank lines skipped."""
    for path, first, lines in read_batches(paths, on_progress):
        for k, line in enumerate(lines):
            if line and not line.isspace():
                yield path, first + k, line
