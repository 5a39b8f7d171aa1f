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
from typing import BinaryIO, Callable, Iterator, NamedTuple

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


# --------------------------------------------------------------------------------------
# Byte ranges of plain files (`pulse report --jobs`: each process reads one range)
# --------------------------------------------------------------------------------------

class Piece(NamedTuple):
    """The lines of one file that begin at a byte offset in [start, end)."""

    file_index: int             # position of the file among the inputs
    path: str
    start: int
    end: int


def is_splittable(paths: list[str]) -> bool:
    """Byte ranges need regular, uncompressed files (seekable, and a byte is a byte of the text)."""
    return all(p != "-" and not p.endswith(".gz") and os.path.isfile(p) for p in paths)


def plan_ranges(paths: list[str], parts: int) -> list[list[Piece]]:
    """The inputs, seen as one sequence of bytes, cut into `parts` consecutive ranges of
    (nearly) equal size; each range as its pieces, one per file it touches, in input order.

    A cut may fall inside a line: the line belongs to the range in which it begins
    (`read_piece`), so every line is read exactly once, and the ranges in order read
    the lines in input order.
    """
    sizes = [os.path.getsize(p) for p in paths]
    total = sum(sizes)
    cuts = [total * k // parts for k in range(parts + 1)]
    plan = []
    for k in range(parts):
        pieces, offset = [], 0
        for i, (path, size) in enumerate(zip(paths, sizes)):
            lo, hi = max(cuts[k], offset), min(cuts[k + 1], offset + size)
            if lo < hi:
                pieces.append(Piece(i, path, lo - offset, hi - offset))
            offset += size
        plan.append(pieces)
    return plan


def _first_line_start(f: BinaryIO, start: int) -> int:
    """Offset of the first line that begins at or after `start` (the file positioned there)."""
    if start:
        f.seek(start - 1)
        f.readline()                # the rest of a line that began before `start`, with its newline
    return f.tell()


def read_piece(piece: Piece, on_bytes: Callable[[int], None] | None = None) -> Iterator[tuple[int, list[bytes]]]:
    """(index of the batch's first line among the piece's lines, lines) over the piece's lines.

    Like `read_batches`, blank lines are kept (so indexes count them). `on_bytes(n)` is
    told how much of the piece is read (0 to end - start, never decreasing: for a progress bar).
    """
    size = piece.end - piece.start

    def told(n: int) -> None:
        if on_bytes is not None:
            on_bytes(min(n, size))      # the last line may run past the piece's end

    try:
        with open(piece.path, "rb") as f:
            at = _first_line_start(f, piece.start)   # file offset of `rest`'s first byte
            if at >= piece.end:                     # no line begins in the piece
                told(size)
                return
            first, rest = 0, b""
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    if rest:
                        yield first, [rest]
                    told(size)
                    return
                buf = rest + chunk
                # Our last line is the one holding byte end - 1: it ends at the first
                # newline at or after it. Lines after that begin at `end` or later.
                cut = buf.find(b"\n", max(0, piece.end - 1 - at)) if at + len(buf) >= piece.end else -1
                if cut >= 0:
                    yield first, buf[:cut].split(b"\n")
                    told(size)
                    return
                lines = buf.split(b"\n")
                rest = lines.pop()
                yield first, lines
                first += len(lines)
                at += len(buf) - len(rest)
                told(at - piece.start)
    except OSError as exc:
        raise InputError(f"{piece.path}: cannot be read: {exc}") from exc


def first_line_number(piece: Piece) -> int:
    """The line number (from 1, as in the whole file) of the piece's first line."""
    try:
        with open(piece.path, "rb") as f:
            begin = _first_line_start(f, piece.start)
            f.seek(0)
            count, left = 0, begin
            while left:
                block = f.read(min(CHUNK, left))
                if not block:
                    break
                count += block.count(b"\n")
                left -= len(block)
            return count + 1
    except OSError as exc:
        raise InputError(f"{piece.path}: cannot be read: {exc}") from exc
