"""Two ranks against one process on the shapes world with its zero-shot set on: image decodes per distinct
image (across every process: ranks and their DataLoader workers), the wall time of the zero-shot retention
measurement, and the accuracy matrix.

Each run is ``segp-hf train`` (recipes/shapes.yaml, toy CLIP) shortened to ``--num_tasks`` tasks of one epoch,
imported from a snapshot of the package (``git archive`` of ``--ref``, or the working tree), with
tests/decode_counter.py installed as ``sitecustomize`` in every process: it logs each real decode at PIL's
``ImageFile.load``. Two ranks: ``accelerate launch --multi_gpu --num_processes 2`` with ``use_cpu`` (DDP over gloo),
``OMP_NUM_THREADS=1`` per rank; one process: ``OMP_NUM_THREADS=1`` too, so "2 ranks vs 1" is 2 cores vs 1.

    python benchmarks/ranks.py                       # the working tree, 1 process and 2 ranks
    python benchmarks/ranks.py --ref 5ec3ab0 --ranks 1   # an older commit, one process (before issue 24)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(HERE))
import decode_counter  # noqa: E402
from _common import machine, write_json  # noqa: E402
from bitcheck import snapshot  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_run(package: Path, scratch: Path, ranks: int, overrides: list[str]) -> dict:
    """One ``segp-hf train`` on ``ranks`` processes: its results, decodes and wall time."""
    out, log = scratch / f"out-{ranks}", scratch / f"decodes-{ranks}.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(package)}
    env.update(decode_counter.sitecustomize_dir(scratch / f"site-{ranks}", log))
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(package)])
    train = ["-m", "segp_hf", "train", "--output_dir", str(out), "--use_cpu", "true", *overrides]
    if ranks == 1:
        command = [sys.executable, *train]
    else:
        accelerate = shutil.which("accelerate") or str(Path(sys.executable).parent / "accelerate")
        command = [accelerate, "launch", "--multi_gpu", "--num_processes", str(ranks), "--num_machines", "1",
                   "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
                   *train]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=package, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the {ranks}-process run failed:\n{(done.stdout + done.stderr)[-3000:]}")
    results = json.loads((out / "results.json").read_text())
    decodes = decode_counter.read(log)
    per_rank = {}
    for rank, _ in decodes:
        per_rank[rank] = per_rank.get(rank, 0) + 1
    return {
        "ranks": ranks, "wall_s": round(seconds, 1), "decodes": len(decodes),
        "distinct_images": len({key for _, key in decodes}),
        "decodes_per_image": round(decode_counter.decodes_per_image(decodes), 4), "decodes_per_rank": per_rank,
        "retention_s": results.get("zero_shot_seconds"), "zero_shot_retention": results.get("zero_shot_retention"),
        "acc_matrix": results["acc_matrix"], "last": results.get("last"),
    }


def table(runs: list[dict]) -> str:
    lines = ["| processes | decodes per distinct image | distinct images | retention before (s) | retention after (s) "
             "| Last | wall (s) |", "|---|---|---|---|---|---|---|"]
    for run in runs:
        seconds = run["retention_s"] or {}
        lines.append(f"| {run['ranks']} | {run['decodes_per_image']:.3f} | {run['distinct_images']} | "
                     f"{seconds.get('before', 'n/a')} | {seconds.get('after', 'n/a')} | {run['last']:.2f} | "
                     f"{run['wall_s']} |")
    if len(runs) == 2:
        a, b = runs[0]["acc_matrix"], runs[1]["acc_matrix"]
        worst = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb) if x is not None and y is not None)
        lines.append(f"\nlargest difference between the two accuracy matrices: {worst:.2f} points")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", help="a git commit to snapshot (default: the working tree)")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--num_tasks", type=int, default=2)
    parser.add_argument("--out", default=str(HERE / "results" / "ranks.json"))
    args = parser.parse_args(argv)
    # the recipe's batch of 64 images per step on any number of ranks (32 per rank on 2)
    overrides = ["--num_tasks", str(args.num_tasks), "--num_train_epochs", "1", "--save_strategy", "no",
                 "--global_train_batch_size", "64",
                 "--disable_tqdm", "true"]
    with tempfile.TemporaryDirectory(prefix="ranks-") as scratch:
        package = snapshot(args.ref, Path(scratch) / "snapshot")
        runs = [one_run(package, Path(scratch), ranks, overrides) for ranks in args.ranks]
    report = {"machine": machine(), "ref": args.ref or "working tree", "overrides": overrides, "runs": runs}
    write_json(args.out, report)
    print(table(runs))


if __name__ == "__main__":
    main()
