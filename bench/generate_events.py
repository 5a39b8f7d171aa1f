"""Write synthetic CRM events (SPEC section 1) to a JSON Lines file, and print counts.

    python bench/generate_events.py OUT.jsonl[.gz] [--leads 180000] [--seed 1] [--messy]

The default size gives over 1,000,000 events for 180,000 leads over 120 days. `--messy`
adds realistic noise (1 % re-sent duplicates, 2 % late events, 0.5 % missing
`lead.created`, 0.5 % invalid lines of every dead-letter kind, 3 % timestamps with a
non-`Z` offset); each knob can also be set on its own (`--late 0.1`, ...).

The committed demo sample is regenerated with:

    python bench/generate_events.py pulse/samples/demo.jsonl --leads 300 --seed 4 --messy --invalid 0.01

Output is deterministic: same arguments, same bytes (see pulse/dev/synth/).
"""
from __future__ import annotations

import argparse
import collections
import gc
import gzip
import io
import sys
import time
from pathlib import Path
from typing import Any

try:
    from pulse.dev import synth
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from pulse.dev import synth

DEFAULT_LEADS = 180_000
_LEAD_KEY = b'"lead_id":"L-'


def _write(opener: Any, tmp: Path, kwargs: dict[str, Any], tags: collections.Counter, seen: bytearray) -> int:
    """Write the lines, count them by tag and mark the leads seen; return the bytes written.

    Lead ids are `L-<number>`, unique across pipelines: `seen[number]` marks a lead
    with at least one valid event in the file (no per-lead objects kept)."""
    nbytes = 0
    key, skip = _LEAD_KEY, len(_LEAD_KEY)
    with opener(tmp) as raw, io.BufferedWriter(raw, 1 << 20) as f:
        # one write per line into a large buffer: holding a batch of lines instead
        # pins memory arenas shared with the generator's garbage (measured: 2x peak RSS)
        write = f.write
        for e in synth.generate_tagged(**kwargs):
            tag = e.tag
            tags[tag] += 1
            line = e.line
            if tag == "event" or tag == "late":
                i = line.find(key) + skip
                seen[int(line[i:line.find(b'"', i)])] = 1
            write(line)
            write(b"\n")
            nbytes += len(line) + 1
    return nbytes


def write_events(path: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Write `synth.generate(**kwargs)` to `path` (gzip if it ends in `.gz`); return counts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tags: collections.Counter[str] = collections.Counter()
    seen = bytearray(kwargs["leads"] + 1)
    t0 = time.perf_counter()
    opener = (lambda p: gzip.open(p, "wb", compresslevel=5)) if path.suffix == ".gz" else (lambda p: open(p, "wb"))
    tmp = path.with_name(path.name + ".part")
    # The generator makes no reference cycles; the cyclic GC would only rescan the
    # growing set of live journeys (~20 % of the run time). Off while writing.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        nbytes = _write(opener, tmp, kwargs, tags, seen)
    finally:
        if gc_was_enabled:
            gc.enable()
    tmp.replace(path)
    lines = sum(tags.values())
    return {
        "path": str(path),
        "lines": lines,
        "events": tags["event"] + tags["late"],           # distinct valid events
        "late": tags["late"],
        "duplicates": tags["duplicate"],
        "invalid": {k.split(":", 1)[1]: v for k, v in sorted(tags.items()) if k.startswith("invalid:")},
        "leads_created": kwargs.get("leads"),
        "leads_in_file": seen.count(1),
        "bytes_uncompressed": nbytes,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output file (.jsonl, or .jsonl.gz for gzip)")
    ap.add_argument("--leads", type=int, default=DEFAULT_LEADS, help=f"leads created (default {DEFAULT_LEADS})")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=120, help="length of the period (default 120)")
    ap.add_argument("--start", default="2026-01-01T00:00:00Z", help="start of the period (RFC 3339)")
    ap.add_argument("--pipelines", default="default", help="comma-separated pipeline names (default: default)")
    ap.add_argument("--messy", action="store_true", help="realistic noise: " + ", ".join(
        f"{k} {v:g}" for k, v in synth.MESSY.items()))
    for k in synth.MESSY:
        ap.add_argument(f"--{k}", type=float, default=None, help=f"fraction (overrides --messy)")
    a = ap.parse_args(argv)
    knobs = dict(synth.MESSY) if a.messy else {k: 0.0 for k in synth.MESSY}
    for k in synth.MESSY:
        if getattr(a, k) is not None:
            knobs[k] = getattr(a, k)
    try:
        counts = write_events(a.out, leads=a.leads, seed=a.seed, start=a.start, days=a.days,
                              pipelines=tuple(p for p in a.pipelines.split(",") if p), **knobs)
    except (ValueError, OSError) as exc:
        print(f"generate_events: {exc}", file=sys.stderr)
        return 2
    secs = counts["seconds"]
    print(f"{counts['path']}: {counts['lines']:,} lines in {secs:.1f} s ({counts['lines'] / max(secs, 1e-9):,.0f} lines/s)")
    print(f"  events {counts['events']:,} (late {counts['late']:,}), duplicates {counts['duplicates']:,}, "
          f"invalid {sum(counts['invalid'].values()):,} {counts['invalid'] or ''}")
    print(f"  leads created {a.leads:,}, leads with events in the file {counts['leads_in_file']:,}, "
          f"{counts['bytes_uncompressed'] / 1e6:,.1f} MB uncompressed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
