"""`pulse report` as a user runs it: files, stdin, gzip, options, exit codes (SPEC 7)."""
from __future__ import annotations

import gzip
import os
import subprocess
import sys

import orjson
import pytest

from pulse.cli import main

EVENTS = [
    {"type": "lead.created", "event_id": "e1", "lead_id": "L-1", "occurred_at": "2026-03-01T10:00:00Z", "amount": 100},
    {"type": "lead.stage_changed", "event_id": "e2", "lead_id": "L-1", "occurred_at": "2026-03-02T10:00:00Z",
     "to_stage": "qualified"},
    {"type": "deal.closed", "event_id": "e3", "lead_id": "L-1", "occurred_at": "2026-03-03T10:00:00Z", "outcome": "won"},
    {"type": "lead.created", "event_id": "e4", "lead_id": "L-2", "occurred_at": "2026-03-04T10:00:00Z",
     "pipeline": "nope"},
]


def write_events(path, extra_lines=()):
    lines = [orjson.dumps(e) for e in EVENTS] + list(extra_lines)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_report_prints_the_document(tmp_path, capsys):
    code, out, err = run(["report", str(write_events(tmp_path / "e.jsonl"))], capsys)
    assert code == 0
    doc = orjson.loads(out)
    assert doc["as_of"] == "2026-03-03T10:00:00Z"    # e4 is dead-lettered: not a valid event
    assert doc["data_quality"]["events_read"] == 4
    assert doc["data_quality"]["dead_letter_reasons"]["unknown_pipeline"] == 1
    assert doc["pipelines"]["default"]["windows"]["7d"]["won"] == 1


def test_gzip_and_several_files_and_blank_lines(tmp_path, capsys):
    plain = write_events(tmp_path / "a.jsonl", extra_lines=[b"", b"   ", b"\t"])
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(orjson.dumps({**EVENTS[0], "event_id": "e9", "lead_id": "L-9"}) + b"\n"))
    code, out, _ = run(["report", str(plain), str(gz), "--compact"], capsys)
    assert code == 0
    assert orjson.loads(out)["data_quality"]["events_read"] == 5


def test_stdin(tmp_path):
    data = write_events(tmp_path / "e.jsonl").read_bytes()
    done = subprocess.run([sys.executable, "-m", "pulse.cli", "report", "-"], input=data, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["data_quality"]["applied"] == 3


def test_as_of_cuts_later_events(tmp_path, capsys):
    code, out, _ = run(["report", str(write_events(tmp_path / "e.jsonl")), "--as-of", "2026-03-02T12:00:00+02:00"], capsys)
    doc = orjson.loads(out)
    assert doc["as_of"] == "2026-03-02T10:00:00Z"
    assert doc["data_quality"]["after_as_of"] == 1          # e3; e4 is dead-lettered first
    assert doc["data_quality"]["applied"] == 2


def test_dead_letter_output_has_reason_location_and_original_bytes(tmp_path, capsys):
    src = write_events(tmp_path / "e.jsonl", extra_lines=[b"\xff\xfe not utf-8", b"[1, 2]"])
    dl = tmp_path / "dead.jsonl"
    code, _, _ = run(["report", str(src), "--dead-letter", str(dl)], capsys)
    assert code == 0
    records = [orjson.loads(line) for line in dl.read_bytes().splitlines()]
    assert [(r["reason"], r["line"]) for r in records] == [
        ("unknown_pipeline", 4), ("invalid_json", 5), ("invalid_json", 6)]
    assert records[0]["raw"] == orjson.dumps(EVENTS[3]).decode()
    assert "raw_base64" in records[1]
    assert records[2]["raw"] == "[1, 2]"


@pytest.mark.parametrize("argv_tail,needle", [
    (["--as-of", "2026-03-01T00:00:00"], "--as-of"),                 # no offset
    (["--config", "/nonexistent/cfg.yaml"], "/nonexistent/cfg.yaml"),
])
def test_usage_and_config_errors_exit_2_with_nothing_on_stdout(tmp_path, capsys, argv_tail, needle):
    code, out, err = run(["report", str(write_events(tmp_path / "e.jsonl")), *argv_tail], capsys)
    assert code == 2 and out == "" and needle in err


@pytest.mark.parametrize("jobs", ["0", "-1", "two"])
def test_jobs_must_be_a_positive_number(tmp_path, capsys, jobs):
    with pytest.raises(SystemExit) as exited:
        main(["report", str(write_events(tmp_path / "e.jsonl")), "--jobs", jobs])
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == "" and "--jobs" in err


def test_bad_config_names_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("pipelines:\n  default:\n    stages:\n      - {name: new, stale_after: 3 days}\n")
    code, out, err = run(["report", str(write_events(tmp_path / "e.jsonl")), "--config", str(cfg)], capsys)
    assert code == 2 and out == ""
    assert str(cfg) in err and "stale_after" in err


def test_config_from_environment(tmp_path, capsys, monkeypatch):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("windows: [1d]\npipelines:\n  default:\n    stages:\n      - {name: new}\n      - {name: qualified}\n")
    monkeypatch.setenv("PULSE_CONFIG", str(cfg))
    code, out, _ = run(["report", str(write_events(tmp_path / "e.jsonl")), "--compact"], capsys)
    assert code == 0
    assert list(orjson.loads(out)["pipelines"]["default"]["windows"]) == ["1d"]


def test_unreadable_inputs_exit_2(tmp_path, capsys):
    code, out, err = run(["report", str(tmp_path / "missing.jsonl")], capsys)
    assert code == 2 and out == "" and "missing.jsonl" in err
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"this is not gzip")
    code, out, err = run(["report", str(broken)], capsys)
    assert code == 2 and out == "" and "broken.jsonl.gz" in err


@pytest.mark.parametrize("layout", ["one file", "three files", "gzip"])
def test_sharded_run_equals_single_process(tmp_path, layout):
    """--jobs N shards leads over N processes; the merged report and the dead-letter file
    must be identical to one process's. Plain files are cut into byte ranges (cuts fall
    inside files and between them); gzip input is read whole by every process."""
    from pulse.synth import generate

    lines = list(generate(leads=400, seed=3, duplicates=0.05, late=0.1, implicit=0.05, invalid=0.05, offsets=0.2))
    if layout == "one file":
        (tmp_path / "e.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        srcs = [tmp_path / "e.jsonl"]
    elif layout == "three files":      # uneven, one without a final newline, blank lines
        srcs = [tmp_path / f"e{i}.jsonl" for i in range(3)]
        srcs[0].write_bytes(b"\n".join(lines[:100]) + b"\n\n")
        srcs[1].write_bytes(b"\n".join(lines[100:1500]))
        srcs[2].write_bytes(b"  \n" + b"\n".join(lines[1500:]) + b"\n")
    else:
        srcs = [tmp_path / "e.jsonl.gz"]
        srcs[0].write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    outs = []
    for jobs in ("1", "2", "3"):
        dl = tmp_path / f"dl{jobs}.jsonl"
        done = subprocess.run([sys.executable, "-m", "pulse.cli", "report", *map(str, srcs), "--jobs", jobs,
                               "--dead-letter", str(dl)], capture_output=True)
        assert done.returncode == 0, done.stderr
        outs.append((done.stdout, dl.read_bytes()))
    assert outs[0] == outs[1] == outs[2]
    assert orjson.loads(outs[0][0])["data_quality"]["dead_lettered"] > 0


def test_sharded_run_keeps_input_order_for_duplicates_that_differ(tmp_path):
    """SPEC 1: of two events with one event_id, the first read is applied. With --jobs the
    copies may be read by different processes; the earlier one must still win."""
    def event(event_id, lead, day, stage):
        return orjson.dumps({"type": "lead.stage_changed", "event_id": event_id, "lead_id": lead,
                             "occurred_at": f"2026-03-{day:02d}T10:00:00Z", "to_stage": stage})
    def filler(n):
        return [orjson.dumps({"type": "lead.created", "event_id": f"c{n}-{i}", "lead_id": f"F{n}-{i}",
                              "occurred_at": "2026-03-01T09:00:00Z"}) for i in range(150)]
    # Copies that differ in each third of the file (with --jobs 3 each process reads one
    # third): leads L have a copy in every third, leads M in the last two only.
    lines = [event("dup", f"L{i}", 2, "qualified") for i in range(20)] + filler(1) \
        + [event("dup", f"{x}{i}", 3, "proposal") for i in range(20) for x in "LM"] + filler(2) \
        + [event("dup", f"{x}{i}", 4, "contacted") for i in range(20) for x in "LM"]
    src = tmp_path / "e.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    outs = [subprocess.run([sys.executable, "-m", "pulse.cli", "report", str(src), "--jobs", jobs],
                           capture_output=True, check=True).stdout for jobs in ("1", "2", "3")]
    assert outs[0] == outs[1] == outs[2]
    assert orjson.loads(outs[0])["data_quality"]["duplicates"] == 60


def _three_files(tmp_path):
    from pulse.synth import generate

    lines = list(generate(leads=200, seed=4))
    paths = []
    for i, part in enumerate((lines[:50], lines[50:700], lines[700:])):
        (tmp_path / f"p{i}.jsonl").write_bytes(b"\n".join(part) + b"\n")
        paths.append(str(tmp_path / f"p{i}.jsonl"))
    return paths


def test_sharded_progress_counts_every_byte_once(tmp_path):
    from pulse.config import load_config
    from pulse.parallel import run_sharded

    paths = _three_files(tmp_path)
    seen = []
    run_sharded(paths, load_config(None), None, 3, on_progress=seen.append)
    assert seen == sorted(seen)
    assert seen[-1] == sum(os.path.getsize(p) for p in paths)


def test_a_failing_shard_reports_its_own_error(tmp_path, monkeypatch):
    """A child's error (here: an unreadable input) reaches the caller as that error, not as
    the broken stream it leaves behind in the other processes."""
    import pulse.parallel as parallel
    from pulse.config import load_config
    from pulse.inputs import InputError

    paths = _three_files(tmp_path)
    real = parallel.read_piece

    def read_piece(piece, on_bytes=None):
        if piece.file_index == 2:                      # only the last range reads the last file
            raise InputError(f"{piece.path}: cannot be read: test")
        return real(piece, on_bytes)

    monkeypatch.setattr(parallel, "read_piece", read_piece)    # forked children inherit it
    with pytest.raises(InputError, match="p2.jsonl"):
        parallel.run_sharded(paths, load_config(None), None, 3)


@pytest.mark.parametrize("line,reason", [
    (b'{"type": "lead.created", "event_id": "x", NaN}', "invalid_json"),
    (b'{"type": "lead.created", "event_id": "x", "lead_id": "L", "occurred_at": "2026-03-01T10:00:00"}',
     "invalid_event"),
    (b'{"type": "lead.created", "event_id": "x", "lead_id": "L", "occurred_at": "2026-03-01T10:00:00Z", '
     b'"pipeline": "elsewhere"}', "unknown_pipeline"),
    (b'{"type": "lead.stage_changed", "event_id": "x", "lead_id": "L", "occurred_at": "2026-03-01T10:00:00Z", '
     b'"to_stage": "Qualified"}', "unknown_stage"),
])
def test_every_dead_letter_reason_round_trips_with_original_bytes(tmp_path, capsys, line, reason):
    src = tmp_path / "e.jsonl"
    src.write_bytes(line + b"\n")
    dl = tmp_path / "dead.jsonl"
    code, out, _ = run(["report", str(src), "--dead-letter", str(dl)], capsys)
    assert code == 0
    dq = orjson.loads(out)["data_quality"]
    assert dq["dead_lettered"] == 1 and dq["dead_letter_reasons"][reason] == 1 and dq["applied"] == 0
    (record,) = [orjson.loads(x) for x in dl.read_bytes().splitlines()]
    assert record["reason"] == reason
    assert record["raw"].encode() == line
    assert "L" not in record["detail"].split()          # the detail never echoes values
