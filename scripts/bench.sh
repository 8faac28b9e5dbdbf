#!/usr/bin/env bash
# The main job: builds the release CLI and runs the benchmarks, printing tables and writing JSON to bench-results/.
#   scripts/bench.sh              # matmul + attention sweeps
#   scripts/bench.sh matmul       # one of: matmul, attention
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[bench] building release" >&2
swift build -c release --product transformer-cli >&2
CLI="$(swift build -c release --show-bin-path)/transformer-cli"
mkdir -p bench-results
which=("$@")
[ ${#which[@]} -gt 0 ] || which=(matmul attention)
for b in "${which[@]}"; do
  echo "[bench] $b" >&2
  "$CLI" bench "$b" --json "bench-results/$b.json"
  echo
done
