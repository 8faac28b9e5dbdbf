#!/usr/bin/env bash
# Hand-run check of the OpenBLAS core switch (Sources/CKernels/openblas_core.c); not part of CI, because it runs the
# CLI with OPENBLAS_CORETYPE removed from ITS OWN child environment (the engine never sets or changes the variable).
#
#   scripts/openblas_core_switch.sh [path/to/transformer-cli]      (default .build/release/transformer-cli)
#
# Cases: (1) the environment as it is (OPENBLAS_CORETYPE set on this machine) → left alone, no switch line;
# (2) variable removed → OpenBLAS picks its own core; switched only if that core is generic; (3) variable removed and a
# fallback to Prescott simulated (TRANSFORMER_OPENBLAS_SIMULATE_FALLBACK, testing only) → one "switched it to …" line
# on stderr, and the GEMMs after it must still be right (the bench prints a warning above 1e-5 relative error);
# (4) OPENBLAS_CORETYPE=Prescott set explicitly → left alone, and Tensor's GEMMs route to the engine's own kernels.
set -euo pipefail
CLI=${1:-.build/release/transformer-cli}
run() { "$@" bench matmul --sizes 96 256 --threads 1 --rounds 1 --gemm-only --no-llm-shapes --baseline-core none 2>&1 \
        | grep -E "transformer:|OpenBLAS core|warning|^[0-9]" || true; }
echo "== 1. environment as is (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-unset})"; run "$CLI"
echo "== 2. OPENBLAS_CORETYPE removed"; run env -u OPENBLAS_CORETYPE "$CLI"
echo "== 3. removed, fallback to Prescott simulated"; run env -u OPENBLAS_CORETYPE TRANSFORMER_OPENBLAS_SIMULATE_FALLBACK=Prescott "$CLI"
echo "== 4. OPENBLAS_CORETYPE=Prescott set by the user"; run env OPENBLAS_CORETYPE=Prescott "$CLI"
