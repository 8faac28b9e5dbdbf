#!/usr/bin/env bash
# SmolLM2-135M-Instruct re-quantised by llama.cpp into models/ (git-ignored): an F32 copy of the Q4_1 file, then
# Q4_K_M, Q5_K_M, Q6_K and Q8_0 made from it by llama_model_quantize (llama-cpp-python), and HF transformers'
# greedy tokens on each (Tests/TransformerTests/Fixtures/smollm/requant_greedy.json, committed; pass --no-fixture
# to only make the files). Details: scripts/requant_smollm.py.
#
#   scripts/requant-smollm.sh [--no-fixture]
#
# Python: $PYTHON (default /work/venv/bin/python if present, else .venv) with gguf, numpy, torch, transformers and
# llama-cpp-python (built from source when missing: ~10-15 min on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x /work/venv/bin/python ]; then PYTHON=/work/venv/bin/python; else PYTHON=.venv/bin/python; fi
fi
[ -x "$PYTHON" ] || { echo "[requant] $PYTHON not found: set PYTHON to a Python with torch + transformers" >&2; exit 1; }
"$PYTHON" -c "import gguf, numpy" 2>/dev/null || "$PYTHON" -m pip install --quiet gguf numpy
if ! "$PYTHON" -c "import llama_cpp" 2>/dev/null; then
  echo "[requant] building llama-cpp-python from source (~10-15 min on 2 cores)" >&2
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON -DGGML_BLAS=OFF}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    "$PYTHON" -m pip install --quiet llama-cpp-python
fi
MODEL="$(PYTHON="$PYTHON" bash scripts/get-model.sh)"
"$PYTHON" scripts/requant_smollm.py --model "$MODEL" "$@"
