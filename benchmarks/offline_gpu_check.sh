#!/usr/bin/env bash
# The GPU check on a GPU node with no network, in one command (docs/performance.md, "Checking an offline GPU node"):
# installs the carried wheels of what the node lacks (benchmarks/wheels.txt, fetched beforehand into .whl/ by
# benchmarks/fetch_wheels.sh) into a scratch folder, checks them against the node's packages, then runs
# benchmarks/gpu_check.py within a time budget and writes its JSON, its table and the logs into OUT_DIR.
#
#   bash benchmarks/offline_gpu_check.sh OUT_DIR [gpu_check.py arguments, e.g. --budget_s 420]
#
# Environment: PYTHON (default python3: the node's interpreter with torch), WHEELS (default .whl),
# SCRATCH (default a fresh mktemp -d folder). Exit 2: the wheels are missing or do not fit the node.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash benchmarks/offline_gpu_check.sh OUT_DIR [gpu_check.py arguments]" >&2; exit 2; }
out=$1; shift
mkdir -p "$out"
python=${PYTHON:-python3}
wheels=${WHEELS:-.whl}
scratch=${SCRATCH:-$(mktemp -d /tmp/segp-wheels-XXXXXX)}
count=$(ls "$wheels"/*.whl 2>/dev/null | wc -l)
expected=$(grep -cv '^\s*#\|^\s*$' benchmarks/wheels.txt)
if [ "$count" -ne "$expected" ]; then
    echo "$wheels holds $count wheels, benchmarks/wheels.txt pins $expected: run bash benchmarks/fetch_wheels.sh where the registry is reachable and carry $wheels" >&2
    exit 2
fi
start=$(date +%s)
"$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$scratch" \
    "$wheels"/*.whl > "$out/install.log" 2>&1 || { cat "$out/install.log" >&2; echo "installing $wheels into $scratch failed (log: $out/install.log)" >&2; exit 2; }
export PYTHONPATH="$scratch:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
# Every requirement of the carried distributions met by what the node has (pip --no-deps checked none).
"$python" benchmarks/wheel_preflight.py "$scratch" benchmarks/wheels.txt --out "$out/preflight.json" || exit 2
echo "wheels installed and checked in $(( $(date +%s) - start )) s ($scratch)"
"$python" benchmarks/gpu_check.py --out "$out/gpu_check.json" "$@" 2>&1 | tee "$out/gpu_check.log"
status=${PIPESTATUS[0]}
echo "whole check: $(( $(date +%s) - start )) s, exit $status; results in $out (gpu_check.json, gpu_check.txt)"
exit "$status"
