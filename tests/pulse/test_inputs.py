"""Reading inputs in byte ranges (`pulse report --jobs` on plain files): every line of
every file is read by exactly one range, in input order, with its true line number."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulse import inputs
from pulse.inputs import first_line_number, is_splittable, plan_ranges, read_batches, read_piece

# Lines of any length, blank ones and a last line without a newline included.
files = st.lists(st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"x")), max_size=12)
                 .map(lambda lines: b"\n".join(lines)), min_size=1, max_size=3)


def _ranges(paths, parts):
    """(file index, line number, line) of every line the ranges read, ranges in order."""
    got = []
    for pieces in plan_ranges(paths, parts):
        for piece in pieces:
            base = first_line_number(piece)
            for first, lines in read_piece(piece):
                got += [(piece.file_index, base + first + k, line) for k, line in enumerate(lines)]
    return got


@settings(max_examples=200, deadline=None)
@given(files, st.integers(1, 7), st.sampled_from([3, 5, 1 << 20]))
def test_ranges_read_every_line_once_in_order(tmp_path_factory, contents, parts, chunk):
    folder = tmp_path_factory.mktemp("ranges")
    paths = []
    for i, data in enumerate(contents):
        (folder / f"{i}.jsonl").write_bytes(data)
        paths.append(str(folder / f"{i}.jsonl"))
    whole = [(paths.index(path), first + k, line)
             for path, first, lines in read_batches(paths) for k, line in enumerate(lines)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inputs, "CHUNK", chunk)               # small chunks: cuts across chunk borders
        assert _ranges(paths, parts) == whole


def test_a_range_that_holds_no_line_start_reads_nothing(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(b"a-single-long-line\n")
    plan = plan_ranges([str(path)], 4)
    assert [[line for piece in pieces for _, lines in read_piece(piece) for line in lines] for pieces in plan] \
        == [[b"a-single-long-line"], [], [], []]


def test_only_plain_files_are_split(tmp_path):
    plain, packed = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"
    plain.write_bytes(b"x\n")
    packed.write_bytes(b"")
    assert is_splittable([str(plain)])
    assert not is_splittable([str(plain), str(packed)])
    assert not is_splittable(["-"])


def test_a_file_that_vanishes_is_an_input_error(tmp_path):
    path = tmp_path / "gone.jsonl"
    path.write_bytes(b"x\n")
    (pieces,) = plan_ranges([str(path)], 1)
    path.unlink()
    with pytest.raises(inputs.InputError, match="gone.jsonl"):
        list(read_piece(pieces[0]))
