#!/usr/bin/env bash
# Fuzzing: hostile inputs must end in an error message, never in a crash.
#   scripts/fuzz.sh [N] [SEED]      N mutated inputs (default 5000), seed (default 20261130)
#
# 1. In-process: FuzzTests with TRANSFORMER_FUZZ_CASES=N (debug build, the one scripts/test.sh uses): every mutated
#    GGUF / HF directory / safetensors / tokenizer.json goes through the public loaders and a 2-token forward pass.
#    A crash kills the test process; the last "fuzz case" line printed names the input.
# 2. Command line (release build): the same N inputs are written to disk (TRANSFORMER_FUZZ_CORPUS) and each is run
#    through `transformer-cli info` and `transformer-cli logits --tokens 0,1`, plus hostile arguments (--tokens,
#    --max-new-tokens, --context, sampling flags) on the valid bases. An exit status ≥ 128 (a signal: trap, abort,
#    segfault) is a crash; 124 is a timeout (a hang). Crashing inputs are kept under fuzz-crashes/ (git-ignored)
#    with the command and its stderr.
# Set TRANSFORMER_CLI=path to run step 2 with another binary (e.g. an older build, to count crashes before a fix),
# FUZZ_SKIP_INPROCESS=1 to skip step 1, FUZZ_CRASHES=DIR to keep crashing inputs elsewhere.
set -uo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
SEED=${2:-20261130}
WORK=$(mktemp -d /tmp/transformer-fuzz.XXXXXX)
CRASHES=${FUZZ_CRASHES:-fuzz-crashes}
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$CRASHES"

echo "[fuzz] 1/2 in-process: $N cases, seed $SEED (debug build)" >&2
swift build --build-tests >/dev/null || exit 1
if [ -n "${FUZZ_SKIP_INPROCESS:-}" ]; then
    INPROCESS=skipped
elif TRANSFORMER_FUZZ_CASES=$N TRANSFORMER_FUZZ_SEED=$SEED TRANSFORMER_FUZZ_VERBOSE=1 \
    swift test --skip-build --filter FuzzTests.testHostileInputsAreErrorsNeverCrashes >"$WORK/inprocess.log" 2>&1; then
    grep '^fuzz:' "$WORK/inprocess.log"
    INPROCESS=ok
else
    echo "[fuzz] in-process run CRASHED or failed; last case and output:" >&2
    grep '^fuzz case' "$WORK/inprocess.log" | tail -1
    tail -20 "$WORK/inprocess.log"
    cp "$WORK/inprocess.log" "$CRASHES/inprocess-seed$SEED.log"
    INPROCESS=crashed
fi

echo "[fuzz] 2/2 command line: writing the $N inputs, running transformer-cli on each (release build)" >&2
TRANSFORMER_FUZZ_CASES=$N TRANSFORMER_FUZZ_SEED=$SEED TRANSFORMER_FUZZ_CORPUS="$WORK/corpus" \
    swift test --skip-build --filter FuzzTests.testHostileInputsAreErrorsNeverCrashes >/dev/null 2>&1 || exit 1
if [ -z "${TRANSFORMER_CLI:-}" ]; then
    swift build -c release --product transformer-cli >/dev/null || exit 1
    CLI=.build/release/transformer-cli
else
    CLI=$TRANSFORMER_CLI
fi
runs=0; crashes=0; timeouts=0; errors=0; oks=0
run_one() {  # name, then the CLI arguments
    local name=$1; shift
    timeout 60 "$CLI" "$@" >"$WORK/out" 2>"$WORK/err" <"${STDIN_FILE:-/dev/null}"
    local rc=$?
    runs=$((runs + 1))
    if [ $rc -eq 0 ]; then oks=$((oks + 1))
    elif [ $rc -eq 124 ]; then timeouts=$((timeouts + 1)); echo "[fuzz] TIMEOUT $name: $*" >&2
    elif [ $rc -ge 128 ]; then
        crashes=$((crashes + 1))
        local keep="$CRASHES/seed$SEED-$name"
        mkdir -p "$keep"
        { printf '%q ' "$CLI" "$@"; echo; echo "exit status $rc"; } >"$keep/command.txt"
        cp "$WORK/err" "$keep/stderr.txt"
        echo "[fuzz] CRASH ($rc) $name: $(grep -m1 -E 'Fatal error|error:|Illegal|Segmentation|Trace' "$WORK/err" | cut -c1-200)" >&2
    else errors=$((errors + 1)); fi
}
while IFS=$'\t' read -r id kind path description; do
    run_one "$id-info" info --model "$path"
    run_one "$id-logits" logits --model "$path" --tokens 0,1 --output "$WORK/logits.safetensors"
    if [ -e "$CRASHES/seed$SEED-$id-info" ] || [ -e "$CRASHES/seed$SEED-$id-logits" ]; then
        cp -r "$path" "$CRASHES/seed$SEED-$id-input" 2>/dev/null; echo "$description" >"$CRASHES/seed$SEED-$id-input.txt"
    fi
done <"$WORK/corpus/cases.tsv"
# Hostile command-line arguments on the valid bases.
k=0
for base in "$WORK/corpus/base.gguf" "$WORK/corpus/base-hf"; do
    b=$(basename "$base")
    for tokens in 0,1 -1 99999999999999999999 9223372036854775807 1,,2 "" x 1e3 "$(seq -s, 0 300)"; do
        k=$((k + 1))
        run_one "args-$b-tokens$k" logits --model "$base" --tokens "$tokens" --output "$WORK/logits.safetensors"
        k=$((k + 1))
        run_one "args-$b-gen-tokens$k" generate --model "$base" --tokens "$tokens" -n 2
    done
    for n in 0 -1 1 300 4611686018427387904 9223372036854775807 99999999999999999999; do
        k=$((k + 1))
        run_one "args-$b-n$k" generate --model "$base" --tokens 1,2 --max-new-tokens "$n"
        k=$((k + 1))
        run_one "args-$b-p$k" generate --model "$base" -p "ab c" -n "$n"
    done
    printf 'hello\nab c\n\n' >"$WORK/chat.txt"
    for ctx in 0 -1 1 2 9223372036854775807; do
        k=$((k + 1))
        STDIN_FILE="$WORK/chat.txt" run_one "args-$b-context$k" chat --model "$base" --context "$ctx" -n 4
    done
    for flags in "--temperature nan" "--temperature -1" "--temperature inf" "--top-k 0" "--top-k 9223372036854775807" \
                 "--top-p nan" "--top-p 0" "--top-p 2" "--seed 18446744073709551615 --temperature 1"; do
        k=$((k + 1))
        # shellcheck disable=SC2086
        run_one "args-$b-sampling$k" generate --model "$base" --tokens 1,2 -n 2 $flags
    done
    run_one "args-$b-output" logits --model "$base" --tokens 1 --output /nonexistent-dir/x.safetensors
done
echo "fuzz: in-process $N cases: $INPROCESS; command line: $runs runs: $oks ok, $errors errors, $crashes crashes, $timeouts timeouts (seed $SEED, crashing inputs in $CRASHES/)"
[ "$INPROCESS" != crashed ] && [ $crashes -eq 0 ] && [ $timeouts -eq 0 ]
