#!/usr/bin/env bash
# Starts `transformer-cli serve` on SmolLM2 and drives it with the official `openai` Python client
# (scripts/openai_client_check.py): greedy text equals `transformer-cli generate`, streamed equals non-streamed,
# 8 concurrent streams equal their sequential results, stop sequences hold.
#
#   scripts/test_openai_client.sh [MODEL.gguf]      (PYTHON=/path/to/python with `openai` installed; default /work/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
PYTHON=${PYTHON:-/work/venv/bin/python}
PORT=${PORT:-18080}
[ -f "$MODEL" ] || MODEL=$(scripts/get-model.sh)
"$PYTHON" -c "import openai" 2>/dev/null || "$PYTHON" -m pip install -q openai
swift build -c release --product transformer-cli
CLI=.build/release/transformer-cli
"$CLI" serve --model "$MODEL" --port "$PORT" --parallel 8 --context 1024 --quiet &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.5
done
"$PYTHON" scripts/openai_client_check.py --base-url "http://127.0.0.1:$PORT/v1" --cli "$CLI" --model "$MODEL"
