// Row kernels for softmax / attention, in C so that x86-64 machines get AVX2 + FMA code through a
// per-function target attribute (Swift code is compiled for the x86-64 baseline, SSE2). Portable fallbacks
// run everywhere else. All functions work on n contiguous floats.
#pragma once
#include <stddef.h>

/// p[i] = exp(p[i] - shift) in place; returns the sum. -inf (and anything below -87.3 after the shift) gives 0.
float ck_exp_shift_sum(float *p, ptrdiff_t n, float shift);
/// Maximum of p[0..n) (-inf for n == 0).
float ck_max(const float *p, ptrdiff_t n);
/// p[i] *= s.
void ck_scale(float *p, ptrdiff_t n, float s);
/// p[i] = 1 / (1 + exp(-(p[i] + bias))).
void ck_sigmoid(float *p, ptrdiff_t n, float bias);
/// 1 when the AVX2 + FMA paths are in use.
int ck_uses_avx2(void);
