"""Preflight of the offline GPU check (benchmarks/offline_gpu_check.sh): the wheels installed with ``--no-deps`` into a
scratch folder are the pinned ones, every requirement they declare (Requires-Dist, extras left out) is met by the
node's packages or by another carried wheel, and ``segp_hf`` with what gpu_check.py imports loads from there.

    python benchmarks/wheel_preflight.py SCRATCH benchmarks/wheels.txt [--out preflight.json]

Exit 2 with one line per problem (what to add to benchmarks/wheels.txt or which version clashes).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as metadata
import json
import sys
from pathlib import Path

IMPORTS = ["datasets", "evaluate", "segp_hf.run.continual", "segp_hf.evaluation.metrics", "segp_hf.modeling.student"]


def pinned(wheels_txt: Path) -> dict[str, str]:
    """name -> version of every ``name==version`` line of wheels.txt."""
    lines = [line.split("#")[0].strip() for line in wheels_txt.read_text().splitlines()]
    return dict(line.split("==", 1) for line in lines if line)


def unmet_requirements(names) -> list[str]:
    """Each Requires-Dist of the named installed distributions that no installed version satisfies."""
    from packaging.requirements import Requirement

    problems = []
    for name in names:
        for text in metadata.distribution(name).requires or []:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue  # an extra's requirement, or one for another Python
            try:
                have = metadata.version(requirement.name)
            except metadata.PackageNotFoundError:
                problems.append(f"{name} needs {requirement}, not installed: add it to benchmarks/wheels.txt")
                continue
            if requirement.specifier and not requirement.specifier.contains(have, prereleases=True):
                problems.append(f"{name} needs {requirement}, the node has {requirement.name} {have}: "
                                f"pin a {name} that accepts it, or carry {requirement.name} too")
    return problems


def check(scratch: Path, wheels_txt: Path, imports=IMPORTS) -> dict:
    wanted = pinned(wheels_txt)
    report = {"python": sys.version.split()[0], "scratch": str(scratch), "carried": {}, "problems": []}
    for name, version in wanted.items():
        found = metadata.distribution(name)
        where = Path(found.locate_file("")).resolve()
        report["carried"][name] = {"version": found.version, "from": str(where)}
        if found.version != version or where != scratch.resolve():
            report["problems"].append(f"{name}: {found.version} from {where} is found first, "
                                      f"not {version} from {scratch}")
    report["problems"] += unmet_requirements(wanted)
    report["node"] = {name: _version(name) for name in ("torch", "transformers", "peft", "accelerate", "tokenizers",
                                                        "huggingface-hub", "pyarrow", "pandas", "fsspec", "numpy")}
    for module in imports:
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001 - reported, the check does not start
            report["problems"].append(f"import {module} failed: {type(error).__name__}: {error}")
    return report


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scratch", type=Path)
    parser.add_argument("wheels_txt", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--imports", nargs="*", default=IMPORTS, help="Modules that must import (default: "
                        "datasets, evaluate and the segp_hf modules gpu_check.py needs).")
    args = parser.parse_args(argv)
    report = check(args.scratch, args.wheels_txt, args.imports)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    for problem in report["problems"]:
        print(f"preflight: {problem}", file=sys.stderr)
    print("preflight: " + ", ".join(f"{k} {v['version']}" for k, v in report["carried"].items())
          + " | node: " + ", ".join(f"{k} {v}" for k, v in report["node"].items()))
    return 2 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
