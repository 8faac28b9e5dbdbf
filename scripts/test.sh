#!/usr/bin/env bash
# Runs the whole test suite (debug build). Installs OpenBLAS/LAPACKE first when missing.
#   scripts/test.sh [extra `swift test` arguments, e.g. --filter AttentionTests]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] swift test (debug)" >&2
swift test "$@"
