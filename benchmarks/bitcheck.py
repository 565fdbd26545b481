"""Is the default run still bit-identical? Run ``segp-hf train`` (the shapes default) from a snapshot copy of the
package and compare its ``results.json`` with a reference, timing aside.

The snapshot is taken first (``git archive`` of a commit, or a copy of the working tree), so files being edited
while the run goes on cannot leak into it, and the run imports the snapshot, never the checkout.

    python benchmarks/bitcheck.py --ref HEAD --save /tmp/bit/before.json          # the reference
    python benchmarks/bitcheck.py --worktree --against /tmp/bit/before.json       # after a refactor
    python benchmarks/bitcheck.py --ref abc123 --against /tmp/bit/before.json

Exit 0 when every key but timing is equal (floats compared bit for bit through their JSON text), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMING_KEYS = ("timing", "seconds", "wall")  # keys whose values are clock readings


def snapshot(ref: str | None, into: Path) -> Path:
    """A copy of the repository at ``ref`` (or of the working tree when ``ref`` is None) under ``into``."""
    into.mkdir(parents=True)
    if ref is None:
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                               capture_output=True).stdout.decode().split("\0")
        for name in filter(None, files):
            source = REPO / name
            if source.is_file():
                (into / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, into / name)
    else:
        archive = subprocess.run(["git", "archive", "--format=tar", ref], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def default_run(snapshot_dir: Path, output_dir: Path) -> dict:
    """``segp-hf train`` (the default recipe) imported from ``snapshot_dir``; its results.json."""
    env = dict(os.environ, PYTHONPATH=str(snapshot_dir), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1")
    code = ("import sys, segp_hf; assert segp_hf.__file__.startswith(sys.argv[1]), segp_hf.__file__; "
            "from segp_hf.cli import main; sys.exit(main(['train', '--output_dir', sys.argv[2]]))")
    subprocess.run([sys.executable, "-c", code, str(snapshot_dir), str(output_dir)], cwd=snapshot_dir,
                   env=env, check=True)
    return json.loads((output_dir / "results.json").read_text())


def without_timing(value):
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if not any(t in k for t in TIMING_KEYS)}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


def differences(before, after, path="") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = [f"{path}/{k}: only in one" for k in sorted(set(before) ^ set(after))]
        for key in sorted(set(before) & set(after)):
            found += differences(before[key], after[key], f"{path}/{key}")
        return found
    if json.dumps(before) != json.dumps(after):
        return [f"{path}: {json.dumps(before)[:80]} != {json.dumps(after)[:80]}"]
    return []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--ref", help="a git commit to snapshot")
    which.add_argument("--worktree", action="store_true", help="snapshot the working tree as it is now")
    parser.add_argument("--save", type=Path, help="write the run's results (timing aside) here")
    parser.add_argument("--against", type=Path, help="compare with results saved by --save")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bitcheck-") as scratch:
        package = snapshot(None if args.worktree else args.ref, Path(scratch) / "snapshot")
        results = without_timing(default_run(package, Path(scratch) / "out"))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(results, indent=1, sort_keys=True))
    if args.against:
        found = differences(json.loads(args.against.read_text()), results)
        print("bit-identical (timing aside)" if not found else "DIFFERENT:\n  " + "\n  ".join(found))
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
