#!/usr/bin/env bash
# Regenerates the committed test fixtures with PyTorch in a private venv (.venv, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet torch transformers safetensors numpy gguf accelerate jinja2 sentencepiece protobuf
fi
"$VENV/bin/python" scripts/make_fixtures.py "$@"
