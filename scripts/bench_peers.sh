#!/usr/bin/env bash
# Peers: runs our attention benchmark, then PyTorch on the same shapes (venv with torch + matplotlib in .venv).
#   scripts/bench_peers.sh [--threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[peers] creating $VENV with torch (large download, a few minutes)" >&2
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -c "import torch, matplotlib" 2>/dev/null || "$VENV/bin/pip" install --quiet torch matplotlib numpy
swift build -c release --product transformer-cli >&2
CLI="$(swift build -c release --show-bin-path)/transformer-cli"
mkdir -p bench-results
[ -f bench-results/attention.json ] && [ "${REUSE:-0}" = 1 ] || "$CLI" bench attention --json bench-results/attention.json
"$VENV/bin/python" scripts/bench_peers.py "$@"
