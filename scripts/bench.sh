#!/usr/bin/env bash
# The main job: builds the release CLI and runs the benchmarks, printing tables and writing JSON to bench-results/.
#   scripts/bench.sh                 # matmul, attention, decode, model and serve (SmolLM2-135M, fetched on first use)
#   scripts/bench.sh attention       # any of: matmul attention decode model serve
# Peers (PyTorch SDPA, llama.cpp) are measured by scripts/bench_peers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[bench] building release" >&2
swift build -c release --product transformer-cli >&2
CLI="$(swift build -c release --show-bin-path)/transformer-cli"
mkdir -p bench-results
which=("$@")
[ ${#which[@]} -gt 0 ] || which=(matmul attention decode model serve)
for b in "${which[@]}"; do
  case "$b" in
    matmul|attention|decode) args=() ;;
    model|serve) args=(--model "$(bash scripts/get-model.sh)") ;;
    *) echo "[bench] unknown benchmark '$b' (matmul attention decode model serve)" >&2; exit 2 ;;
  esac
  echo "[bench] $b" >&2
  "$CLI" bench "$b" "${args[@]}" --json "bench-results/$b.json"
  echo
done
