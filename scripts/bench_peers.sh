#!/usr/bin/env bash
# Peers, in a venv (.venv, created when missing):
#   attention: our attention benchmark, then PyTorch on the same shapes (torch + matplotlib);
#   model:     `transformer-cli bench model` and llama.cpp (llama-cpp-python, built from source on the first run:
#              ~10-15 min on 2 cores) on SmolLM2-135M Q4_1, an F32 copy of it and, when scripts/requant-smollm.sh
#              has made them, its Q4_K_M / Q5_K_M / Q6_K / Q8_0 re-quantisations (scripts/bench_peers_llamacpp.py;
#              --files Q4_K_M,Q6_K picks some).
#   serve:     the same concurrent load (1 and 8 clients, /v1/completions) on `transformer-cli serve` and on
#              llama.cpp's server from `llama-cpp-python[server]` (scripts/bench_serve_peers.py), SmolLM2 Q4_1.
#   scripts/bench_peers.sh [attention|model|serve|all] [--threads 2] [--repeats 3]     (default: all)
# Options after the mode go to the Python script(s). REUSE=1 reuses bench-results/attention.json.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=all
case "${1:-}" in
  attention|model|serve|all) MODE="$1"; shift ;;
  -h|--help) sed -n 2,9p "$0"; exit 0 ;;
  ""|-*) ;;
  *) echo "[peers] unknown mode '$1' (attention|model|serve|all)" >&2; exit 2 ;;
esac
bash scripts/setup.sh
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[peers] creating $VENV" >&2
  python3 -m venv "$VENV"
fi
swift build -c release --product transformer-cli >&2
CLI="$(swift build -c release --show-bin-path)/transformer-cli"
mkdir -p bench-results

if [ "$MODE" = attention ] || [ "$MODE" = all ]; then
  echo "[peers] attention: ours vs PyTorch" >&2
  "$VENV/bin/python" -c "import torch, matplotlib" 2>/dev/null || {
    echo "[peers] installing torch + matplotlib into $VENV (large download, a few minutes)" >&2
    "$VENV/bin/pip" install --quiet torch matplotlib numpy
  }
  [ -f bench-results/attention.json ] && [ "${REUSE:-0}" = 1 ] || "$CLI" bench attention --json bench-results/attention.json
  "$VENV/bin/python" scripts/bench_peers.py "$@"
fi

if [ "$MODE" = model ] || [ "$MODE" = all ]; then
  echo "[peers] model: ours vs llama.cpp" >&2
  "$VENV/bin/python" -c "import gguf, numpy" 2>/dev/null || "$VENV/bin/pip" install --quiet gguf numpy
  if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
    # Plain CPU build of llama.cpp from the sdist (no BLAS); -march=native like our release build.
    echo "[peers] building llama-cpp-python from source (~10-15 min on 2 cores)" >&2
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DGGML_BLAS=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "$VENV/bin/pip" install --quiet --no-cache-dir llama-cpp-python
  fi
  MODEL="$(PYTHON="$VENV/bin/python" bash scripts/get-model.sh)"
  "$VENV/bin/python" scripts/bench_peers_llamacpp.py --cli "$CLI" --model "$MODEL" "$@"
fi

if [ "$MODE" = serve ] || [ "$MODE" = all ]; then
  echo "[peers] serve: ours vs llama.cpp's server, same load" >&2
  if ! "$VENV/bin/python" -c "import llama_cpp.server.app" 2>/dev/null; then
    echo "[peers] installing llama-cpp-python[server] (builds llama.cpp from source when missing: ~10-15 min)" >&2
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DGGML_BLAS=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
      "$VENV/bin/pip" install --quiet "llama-cpp-python[server]"
  fi
  MODEL="$(PYTHON="$VENV/bin/python" bash scripts/get-model.sh)"
  "$VENV/bin/python" scripts/bench_serve_peers.py --cli "$CLI" --model "$MODEL"
fi
