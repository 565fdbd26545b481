#!/usr/bin/env bash
# Download the wheels an offline GPU node lacks (benchmarks/wheels.txt) into an ignored folder, one version each,
# for that node's Python (default 3.12, the image's; any x86-64 glibc Linux). Run where the registry is reachable.
#   bash benchmarks/fetch_wheels.sh                      # -> .whl/ for Python 3.12
#   bash benchmarks/fetch_wheels.sh .whl-py311 3.11      # the same set for another Python (the local install test)
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.whl}
python_version=${2:-3.12}
mkdir -p "$dest"
grep -v '^\s*#' benchmarks/wheels.txt | grep -v '^\s*$' | while read -r pinned; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dest" "$pinned"
done
count=$(ls "$dest"/*.whl | wc -l)
expected=$(grep -cv '^\s*#\|^\s*$' benchmarks/wheels.txt)
[ "$count" -eq "$expected" ] || { echo "$dest holds $count wheels, benchmarks/wheels.txt pins $expected: empty $dest and rerun" >&2; exit 2; }
ls -l "$dest"
