"""Compare `pulse report` of this tree against another commit, in one run, turn by turn.

    python bench/compare_report.py --ref 612d587 [--jobs 2] [--rounds 4] [--file F.jsonl]

These machines are shared and noisy: the same command can take 30 % longer from one
minute to the next. So the two versions run alternately (ref, this tree, ref, ...), each
as a fresh process on the same file, and the figures to trust are the ratios of the two
within the run. The ref's code comes from `git worktree add` (bench/out/ref-<sha>/,
git-ignored) and runs on this tree's virtual environment. Both reports must be
byte-identical, or the comparison is void (exit 1). `--common-keys` compares them only on
the keys both have, for a ref from before the document gained fields (e.g. SPEC v2's
segments and forecast): the figures both versions compute must still agree exactly.
For a fair speed comparison the file must hold only events both versions accept (a
file made by the ref's own generator: `--generate-with-ref LEADS`).

Prints, per version: best and median wall seconds, best CPU seconds (user + sys of the
process tree), events/s at the best wall time; then this tree's wall and CPU as a
fraction of the ref's.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT_DIR = HERE / "out"
DEFAULT_FILE = OUT_DIR / "events-180000-s1.jsonl"

# Runs `pulse report` from a source tree: its top-level packages assembled as `pulse`,
# ahead of this tree's editable install.
_RUN_TREE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv.pop(1))
from pulse.cli import main
sys.argv[0] = "pulse"
sys.exit(main())
"""


# Runs a tree's bench/generate_events.py with that tree's `pulse` (argv: package folder, script, its args).
_RUN_GENERATOR = """
import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, sys.argv.pop(1))
sys.argv.pop(0)
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def ref_tree(ref: str) -> Path:
    """A checkout of `ref` (git worktree), as a package folder."""
    sha = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    tree = OUT_DIR / f"ref-{sha}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True,
                       capture_output=True)
    return package_dir(tree, tree / "_pkg")


def run_once(argv: list[str]) -> tuple[float, float, bytes]:
    """(wall seconds, CPU seconds of the process tree, stdout)."""
    before = os.times()
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True)
    wall = time.perf_counter() - start
    after = os.times()
    if done.returncode != 0:
        raise SystemExit(f"compare_report: a report failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    # Children's times include their own waited-for children: the report's forked shards.
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, done.stdout


def common_keys(doc, ref):
    """`doc` without the object keys `ref` does not have (recursively)."""
    if isinstance(doc, dict) and isinstance(ref, dict):
        return {k: common_keys(v, ref[k]) for k, v in doc.items() if k in ref}
    if isinstance(doc, list) and isinstance(ref, list) and len(doc) == len(ref):
        return [common_keys(a, b) for a, b in zip(doc, ref)]
    return doc


def package_dir(tree: Path, into: Path) -> Path:
    """A folder holding `tree`'s sources as the `pulse` package (as pyproject's package-dir maps them)."""
    shim = into / "pulse"
    shim.mkdir(parents=True, exist_ok=True)
    links = {entry.name: entry for entry in (tree / "pulse").iterdir()}
    links.update({top: tree / top for top in ("streams", "schemas", "agents")})
    for name, target in links.items():         # refreshed each run: the tree may have gained modules
        if not (shim / name).is_symlink():
            (shim / name).symlink_to(target)
    return into


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", required=True, help="the commit to compare against")
    ap.add_argument("--file", default=str(DEFAULT_FILE), help=f"events file (default {DEFAULT_FILE.name})")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--common-keys", action="store_true",
                    help="compare the reports on the keys both have (a ref from before the document gained fields)")
    ap.add_argument("--generate-with-ref", type=int, metavar="LEADS",
                    help="first write --file with the ref's own generator (LEADS leads, seed 1)")
    args = ap.parse_args()
    if args.generate_with_ref:
        pkg = ref_tree(args.ref)
        subprocess.run([sys.executable, "-c", _RUN_GENERATOR, str(pkg), str(pkg.parent / "bench" / "generate_events.py"),
                        args.file, "--leads", str(args.generate_with_ref), "--seed", "1"], check=True)
    if not Path(args.file).exists():
        print(f"compare_report: {args.file}: no such file (bench/bench_report.py generates it)", file=sys.stderr)
        return 2
    events = sum(1 for line in open(args.file, "rb") if line.strip())
    tail = ["report", args.file, "--jobs", str(args.jobs), "--no-progress"]
    commands = {   # both the same way: the sources ahead of the editable install
        "ref": [sys.executable, "-c", _RUN_TREE, str(ref_tree(args.ref)), *tail],
        "this": [sys.executable, "-c", _RUN_TREE, str(package_dir(ROOT, OUT_DIR / "this")), *tail],
    }
    seen: dict[str, list[tuple[float, float]]] = {"ref": [], "this": []}
    digests: dict[str, set[str]] = {"ref": set(), "this": set()}
    first: dict[str, bytes] = {}
    for r in range(args.rounds):
        for name, argv in commands.items():
            wall, cpu, out = run_once(argv)
            seen[name].append((wall, cpu))
            digests[name].add(hashlib.sha256(out).hexdigest())
            first.setdefault(name, out)
            print(f"  round {r + 1}/{args.rounds} {name:4s}: {wall:6.2f} s wall, {cpu:6.2f} s CPU", flush=True)
    if args.common_keys:
        ref_doc = json.loads(first["ref"])
        same = len(digests["ref"]) == len(digests["this"]) == 1 and \
            common_keys(json.loads(first["this"]), ref_doc) == ref_doc
    else:
        same = len(digests["ref"] | digests["this"]) == 1
    if not same:
        print("compare_report: the two versions printed different reports", file=sys.stderr)
        return 1
    print(f"file {args.file}: {events:,} events, --jobs {args.jobs}, {args.rounds} rounds")
    best = {}
    for name, runs in seen.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        best[name] = (min(walls), min(cpus))
        print(f"  {name:4s}: wall best {min(walls):.2f} s, median {statistics.median(walls):.2f} s; "
              f"CPU best {min(cpus):.2f} s; {events / min(walls):,.0f} events/s at best")
    print(f"  this / ref: wall {best['this'][0] / best['ref'][0]:.3f}, CPU {best['this'][1] / best['ref'][1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
