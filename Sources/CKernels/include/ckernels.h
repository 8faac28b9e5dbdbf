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
/// out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i].
void ck_silu_mul(const float *gate, const float *up, float *out, ptrdiff_t n);
/// Sum of squares of x[0..n), accumulated in double precision.
double ck_sum_squares(const float *x, ptrdiff_t n);
/// out[i] = x[i] * s * w[i].
void ck_scale_weight(const float *x, const float *w, float s, float *out, ptrdiff_t n);
/// Matrix-vector product y[r] = beta·y[r] + Σ_j w[r·ldw + j]·x[j] for r in [0, rows), streaming w once.
void ck_gemv(const float *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows, float beta);
/// The same product with w in ggml's quantised blocks (Q8_0, Q4_0, Q4_1; 32 weights per block, blocks of a row
/// contiguous): row r starts at byte r·ldw of w and k is a multiple of 32. The sum is accumulated in float.
void ck_gemv_q8_0(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows, float beta);
void ck_gemv_q4_0(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows, float beta);
void ck_gemv_q4_1(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows, float beta);
// ggml block formats read in place (kquants.c): `type` is a ggml type number — F32 0, F16 1, Q4_0 2, Q4_1 3, Q5_0 6,
// Q5_1 7, Q8_0 8, Q2_K 10, Q3_K 11, Q4_K 12, Q5_K 13, Q6_K 14, BF16 30. Functions return 0 for any other type.
/// Elements per block of `type` (1 for F32/F16/BF16, 32, or 256 for the K-quants); 0 if unsupported.
int ck_quant_block_elements(int type);
/// Bytes per block of `type`; 0 if unsupported.
int ck_quant_block_bytes(int type);
/// Decodes `blocks` consecutive blocks at src into dst, bit-exact with ggml's dequantize_row_* on every kernel path.
int ck_quant_dequantize(int type, const void *src, float *dst, ptrdiff_t blocks);
/// Decodes `rows` rows of k elements (row r starts at byte r·ld of src) into dst, row-major [rows, k].
int ck_quant_dequantize_rows(int type, const void *src, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t k, float *dst);
/// y[r] = beta·y[r] + Σ_j W[r, j]·x[j] with W's row r at byte r·ldw of w (k a multiple of the block size), read in
/// place; accumulated in float.
int ck_quant_gemv(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows,
                  float beta);
/// A parallel-for body: runs item `index` on worker `worker` (0 = the calling thread).
typedef void (*ck_task_fn)(void *ctx, long index, int worker);
/// Runs fn(ctx, i, w) for i in [0, count) on up to `workers` threads (the caller and a persistent pool) and returns
/// when all are done. Nested calls (from inside a body) and calls while another job runs execute inline.
void ck_parallel_for(long count, int workers, ck_task_fn fn, void *ctx);
/// 1 on a thread that is running a parallel-for body.
int ck_in_parallel_region(void);
/// 1 when the AVX2 + FMA paths (or wider) are in use.
int ck_uses_avx2(void);

// CPU features (cpu_features.c): detected once, thread-safe.
enum {
    CK_FEATURE_AVX = 1u << 0, CK_FEATURE_AVX2 = 1u << 1, CK_FEATURE_FMA = 1u << 2, CK_FEATURE_F16C = 1u << 3,
    CK_FEATURE_AVX512F = 1u << 4, CK_FEATURE_AVX512BW = 1u << 5, CK_FEATURE_AVX512VL = 1u << 6,
    CK_FEATURE_AVX512DQ = 1u << 7, CK_FEATURE_AVX512BF16 = 1u << 8, CK_FEATURE_AVX512FP16 = 1u << 9,
    CK_FEATURE_AVX512VNNI = 1u << 10, CK_FEATURE_AVXVNNI = 1u << 11, CK_FEATURE_AMX_TILE = 1u << 12,
    CK_FEATURE_AMX_BF16 = 1u << 13,
};
/// Kernel paths, ordered: a path may use every instruction of the paths below it.
enum { CK_PATH_PORTABLE = 0, CK_PATH_AVX2 = 1, CK_PATH_AVX512 = 2 };
/// Bit set of CK_FEATURE_* that the CPU has and the OS enables.
unsigned ck_cpu_features(void);
/// The name of feature bit `bit` ("avx2", "avx512f", …), or NULL past the last one.
const char *ck_feature_name(int bit);
/// The best kernel path the CPU supports.
int ck_best_kernel_path(void);
/// The kernel path in use (the best one, lowered by TRANSFORMER_KERNELS=avx512|avx2|portable or ck_set_kernel_path).
int ck_kernel_path(void);
/// Pins the kernel path (clamped to what the CPU supports); returns the path now in use.
int ck_set_kernel_path(int path);
/// "avx512", "avx2" or "portable".
const char *ck_kernel_path_name(int path);
