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
/// One call of the fused FlashAttention tile kernel (flash_attention.c): `rows` query rows against `keys` keys.
typedef struct {
    const float *q;             ///< rows × d, row stride ldq
    ptrdiff_t ldq;
    float scale;                ///< score multiplier: S = scale·Q·Kᵀ
    const float *k;             ///< key j at k + j·ldk (d floats)
    ptrdiff_t ldk;
    const float *v;             ///< value j at v + j·ldv (dv floats)
    ptrdiff_t ldv;
    int rows, d, dv, keys;
    const int *lo, *hi;         ///< per-row allowed key interval [lo, hi) in tile coordinates, or NULL (all allowed)
    const unsigned char *allowed; ///< rows × keys bytes (non-zero = allowed), or NULL
    int sigmoid;                ///< 0: online softmax; 1: σ(s + bias), no normalisation
    float bias;                 ///< sigmoid bias
    float softcap;              ///< > 0: s ← softcap·tanh(s / softcap) before the mask (Gemma 2); 0: off
    float *m, *l;               ///< per-row running max and sum (softmax), updated
    float *o;                   ///< rows × dv accumulator (row stride dv), updated: o = α·o + P·V
    float *scratch;             ///< at least ck_flash_scratch_floats(keys, d) floats, 64-byte aligned preferred
} ck_flash_tile_args;
void ck_flash_tile(const ck_flash_tile_args *args);
/// Scratch floats ck_flash_tile needs for a tile of `keys` keys and head dim `d`.
size_t ck_flash_scratch_floats(ptrdiff_t keys, ptrdiff_t d);
/// The same products for nx vectors at once (x rows ldx apart, y rows ldy apart), each row of y bit-identical to the
/// one-vector kernel's (quant_gemv_rows.c).
void ck_gemv_rows_q8_0(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k, float *y,
                       ptrdiff_t ldy, ptrdiff_t rows, float beta);
void ck_gemv_rows_q4_0(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k, float *y,
                       ptrdiff_t ldy, ptrdiff_t rows, float beta);
void ck_gemv_rows_q4_1(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k, float *y,
                       ptrdiff_t ldy, ptrdiff_t rows, float beta);
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
/// The same product for nx inputs at once (input i at x + i·ldx, output i at y + i·ldy): each block is decoded once
/// for all of them, and output i is bit-identical to ck_quant_gemv on input i (a batched decode step).
int ck_quant_gemv_rows(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k,
                       float *y, ptrdiff_t ldy, ptrdiff_t rows, float beta);
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
/// 1 when the C kernels were compiled with optimisation (release builds, or debug with `-Xcc -O2`); 0 at -O0.
int ck_kernels_optimized(void);
/// "avx512", "avx2" or "portable".
const char *ck_kernel_path_name(int path);

// Packed sgemm (sgemm.c): the engine's own GEMM micro-kernels, dispatched on ck_kernel_path().
/// Row-major C[m×n] = alpha·op(A)·op(B) + beta·C on the calling thread; op(A) is A[m×k] (transA = 0) or the transpose
/// of A[k×m], op(B) is B[k×n] or the transpose of B[n×k]; lda, ldb, ldc are row strides in floats. beta == 0 never
/// reads C. Returns 0, or -1 when the packing buffer could not be allocated (C untouched).
int ck_sgemm(int transA, int transB, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a,
             ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc);
/// Columns (NR) and rows (MR) of the register tile of the current kernel path: split C on multiples of these.
int ck_sgemm_block_width(void);
int ck_sgemm_block_height(void);

// OpenBLAS core switch (openblas_core.c).
/// When OPENBLAS_CORETYPE is not set and a DYNAMIC_ARCH OpenBLAS fell back to a generic kernel table, switches it to
/// the best table the CPU supports that passes an sgemm self-check. Returns 1 when switched, 0 when nothing needed
/// doing (or OpenBLAS is not DYNAMIC_ARCH), -1 when it tried and kept the generic table; `message` (may be NULL) gets
/// one line saying what was done (empty when 0). Call once, before other threads use OpenBLAS.
int ck_openblas_adopt_best_core(char *message, size_t capacity);
