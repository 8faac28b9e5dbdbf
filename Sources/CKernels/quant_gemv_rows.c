// Several vectors times one block-quantised matrix (batched decode: one input row per sequence), reading the
// weights once for all of them.
//
// ck_gemv_rows_*(w, ldw, x, ldx, nx, k, y, ldy, rows, beta): for i < nx and r < rows,
//     y[i·ldy + r] = beta · y[i·ldy + r] + Σ_j W[r, j] · x[i·ldx + j]
//
// Every (row, input) pair is computed with exactly the operations, in exactly the order, of the one-vector kernels
// in quant_gemv.c (per block: the same lane-wise products and FMAs, the same scale and Σx terms, the same final
// horizontal sum), so row i of the result is bit-identical to ck_gemv_*(…, x + i·ldx, …): a sequence decoded in a
// batch gets the logits it gets alone. What changes is the work per weight: each block is loaded and unpacked to
// floats once, then multiplied with all nx inputs (the Σx of each input block is computed once per call).
#include "ckernels.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline uint16_t rows_load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, sizeof v); return v; }

static void rows_portable(void (*gemv)(const void *, ptrdiff_t, const float *, ptrdiff_t, float *, ptrdiff_t, float),
                          const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k, float *y,
                          ptrdiff_t ldy, ptrdiff_t rows, float beta) {
    for (ptrdiff_t i = 0; i < nx; i++) gemv(w, ldw, x + i * ldx, k, y + i * ldy, rows, beta);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float rows_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Inputs handled per pass over the weights (their accumulators stay in registers / L1).
#define NX_CHUNK 8

/// One input's contribution of one block: the operations of quant_gemv.c's dot_bytes / dot_nibbles and block_*.
#define ROWS_STEP(FORMAT, ACC)                                                                                       \
    {                                                                                                                \
        const float *xb = x + (i0 + i) * ldx + 32 * b;                                                               \
        __m256 t = _mm256_mul_ps(q0, _mm256_loadu_ps(xb));                                                           \
        t = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xb + 8), t);                                                         \
        t = _mm256_fmadd_ps(q2, _mm256_loadu_ps(xb + 16), t);                                                        \
        t = _mm256_fmadd_ps(q3, _mm256_loadu_ps(xb + 24), t);                                                        \
        if (FORMAT == 0)                                                                                             \
            ACC = _mm256_fmadd_ps(d, t, ACC);                                                                        \
        else if (FORMAT == 1)                                                                                        \
            ACC = _mm256_fmadd_ps(d, _mm256_sub_ps(t, sums[(i0 + i) * nb + b]), ACC);                                \
        else                                                                                                         \
            ACC = _mm256_fmadd_ps(m, sums[(i0 + i) * nb + b], _mm256_fmadd_ps(d, t, ACC));                           \
    }

/// The weights of one block unpacked to floats (q0..q3) with its scale d and minimum m, as quant_gemv.c has them.
#define ROWS_UNPACK(FORMAT, BLOCK_BYTES)                                                                                        \
    const uint8_t *blk = w + r * ldw + b * BLOCK_BYTES;                                                              \
    __m256 d = _mm256_set1_ps(_cvtsh_ss(rows_load_u16(blk))), m = d, q0, q1, q2, q3;                                 \
    if (FORMAT == 0) {                                                                                               \
        const uint8_t *qs = blk + 2;                                                                                 \
        q0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)qs)));                         \
        q1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8))));                   \
        q2 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 16))));                  \
        q3 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 24))));                  \
    } else {                                                                                                         \
        const uint8_t *qs = blk + (FORMAT == 2 ? 4 : 2);                                                             \
        if (FORMAT == 2) m = _mm256_set1_ps(_cvtsh_ss(rows_load_u16(blk + 2)));                                      \
        __m256i b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)qs));                                     \
        __m256i b1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8)));                               \
        q0 = _mm256_cvtepi32_ps(_mm256_and_si256(b0, mask));                                                         \
        q1 = _mm256_cvtepi32_ps(_mm256_and_si256(b1, mask));                                                         \
        q2 = _mm256_cvtepi32_ps(_mm256_srli_epi32(b0, 4));                                                           \
        q3 = _mm256_cvtepi32_ps(_mm256_srli_epi32(b1, 4));                                                           \
    }

#define ROWS_STORE(I, ACC)                                                                                           \
    {                                                                                                                \
        float *yi = y + (i0 + (I)) * ldy + r, s = rows_hsum8(ACC);                                                   \
        *yi = beta == 0 ? s : beta * *yi + s;                                                                        \
    }

/// FORMAT: 0 = Q8_0 (34-byte blocks), 1 = Q4_0 (18), 2 = Q4_1 (20).
#define ROWS_AVX2(NAME, FORMAT, BLOCK_BYTES, SUM_SCALE)                                                              \
    AVX2 __attribute__((noinline)) static void NAME##_8(const uint8_t *w, ptrdiff_t ldw, const float *x,            \
                                                        ptrdiff_t ldx, ptrdiff_t nb, const __m256 *sums, float *y,   \
                                                        ptrdiff_t ldy, ptrdiff_t rows, float beta, ptrdiff_t i0) {   \
        const __m256i mask = _mm256_set1_epi32(0x0F);                                                                \
        for (ptrdiff_t r = 0; r < rows; r++) {                                                                       \
            __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;          \
            for (ptrdiff_t b = 0; b < nb; b++) {                                                                     \
                ROWS_UNPACK(FORMAT, BLOCK_BYTES)                                                                     \
                ptrdiff_t i;                                                                                         \
                i = 0; ROWS_STEP(FORMAT, c0) i = 1; ROWS_STEP(FORMAT, c1)                                            \
                i = 2; ROWS_STEP(FORMAT, c2) i = 3; ROWS_STEP(FORMAT, c3)                                            \
                i = 4; ROWS_STEP(FORMAT, c4) i = 5; ROWS_STEP(FORMAT, c5)                                            \
                i = 6; ROWS_STEP(FORMAT, c6) i = 7; ROWS_STEP(FORMAT, c7)                                            \
            }                                                                                                        \
            ROWS_STORE(0, c0) ROWS_STORE(1, c1) ROWS_STORE(2, c2) ROWS_STORE(3, c3)                                  \
            ROWS_STORE(4, c4) ROWS_STORE(5, c5) ROWS_STORE(6, c6) ROWS_STORE(7, c7)                                  \
        }                                                                                                            \
    }                                                                                                                \
    AVX2 __attribute__((always_inline)) static inline void NAME##_n(                                                 \
        const uint8_t *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nb, const __m256 *sums, float *y,  \
        ptrdiff_t ldy, ptrdiff_t rows, float beta, ptrdiff_t i0, int ni) {                                           \
        const __m256i mask = _mm256_set1_epi32(0x0F);                                                                \
        for (ptrdiff_t r = 0; r < rows; r++) {                                                                       \
            __m256 acc[NX_CHUNK];                                                                                    \
            for (int i = 0; i < ni; i++) acc[i] = _mm256_setzero_ps();                                               \
            for (ptrdiff_t b = 0; b < nb; b++) {                                                                     \
                ROWS_UNPACK(FORMAT, BLOCK_BYTES)                                                                     \
                for (ptrdiff_t i = 0; i < ni; i++) ROWS_STEP(FORMAT, acc[i])                                         \
            }                                                                                                        \
            for (ptrdiff_t i = 0; i < ni; i++) {                                                                     \
                float *yi = y + (i0 + i) * ldy + r, s = rows_hsum8(acc[i]);                                          \
                *yi = beta == 0 ? s : beta * *yi + s;                                                                \
            }                                                                                                        \
        }                                                                                                            \
    }                                                                                                                \
    AVX2 static void NAME(const uint8_t *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k, \
                          float *y, ptrdiff_t ldy, ptrdiff_t rows, float beta) {                                     \
        ptrdiff_t nb = k / 32;                                                                                       \
        __m256 *sums = NULL;                                                                                         \
        if (FORMAT != 0) {                                                                                           \
            sums = aligned_alloc(32, (size_t)(nb * nx) * sizeof(__m256) + 32);                                       \
            if (!sums) { /* out of memory: fall back to one input at a time */                                       \
                rows_portable(FORMAT == 1 ? ck_gemv_q4_0 : ck_gemv_q4_1, w, ldw, x, ldx, nx, k, y, ldy, rows, beta); \
                return;                                                                                              \
            }                                                                                                        \
            for (ptrdiff_t i = 0; i < nx; i++)                                                                       \
                for (ptrdiff_t b = 0; b < nb; b++) {                                                                 \
                    const float *xb = x + i * ldx + 32 * b;                                                          \
                    __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8), x2 = _mm256_loadu_ps(xb + 16),    \
                           x3 = _mm256_loadu_ps(xb + 24);                                                            \
                    sums[i * nb + b] = _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3)),    \
                                                     _mm256_set1_ps(SUM_SCALE));                                     \
                }                                                                                                    \
        }                                                                                                            \
        ptrdiff_t i0 = 0;                                                                                            \
        /* Full chunks of 8 inputs: a separate function with eight named accumulators, kept in registers. */       \
        for (; i0 + 8 <= nx; i0 += 8) NAME##_8(w, ldw, x, ldx, nb, sums, y, ldy, rows, beta, i0);                    \
        /* The rest (1–7 inputs): the same steps with a constant count, so the accumulators stay in registers. */   \
        switch (nx - i0) {                                                                                           \
        case 1: NAME##_n(w, ldw, x, ldx, nb, sums, y, ldy, rows, beta, i0, 1); break;                                \
        case 2: NAME##_n(w, ldw, x, ldx, nb, sums, y, ldy, rows, beta, i0, 2); break;                                \
        case 3: NAME##_n(w, ldw, x, ldx, nb, sums, y, ldy, rows, beta, i0, 3); break;                                \
        case 4: NAME##_n(w, ldw, x, ldx, nb, sums, y, ldy, rows, beta, i0, 4); break;                                \
        case 5: NAME##_n(w, ldw, x, ldx, nb, sums, y, ldy, rows, beta, i0, 5); break;                                \
        case 6: NAME##_n(w, ldw, x, ldx, nb, sums, y, ldy, rows, beta, i0, 6); break;                                \
        case 7: NAME##_n(w, ldw, x, ldx, nb, sums, y, ldy, rows, beta, i0, 7); break;                                \
        }                                                                                                            \
        free(sums);                                                                                                  \
    }

ROWS_AVX2(rows_q8_0_avx2, 0, 34, 0.0f)
ROWS_AVX2(rows_q4_0_avx2, 1, 18, 8.0f)
ROWS_AVX2(rows_q4_1_avx2, 2, 20, 1.0f)
#define HAVE_ROWS_AVX2 1
#endif

void ck_gemv_rows_q8_0(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k, float *y,
                       ptrdiff_t ldy, ptrdiff_t rows, float beta) {
#ifdef HAVE_ROWS_AVX2
    if (ck_kernel_path() >= CK_PATH_AVX2) { rows_q8_0_avx2(w, ldw, x, ldx, nx, k, y, ldy, rows, beta); return; }
#endif
    rows_portable(ck_gemv_q8_0, w, ldw, x, ldx, nx, k, y, ldy, rows, beta);
}

void ck_gemv_rows_q4_0(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k, float *y,
                       ptrdiff_t ldy, ptrdiff_t rows, float beta) {
#ifdef HAVE_ROWS_AVX2
    if (ck_kernel_path() >= CK_PATH_AVX2) { rows_q4_0_avx2(w, ldw, x, ldx, nx, k, y, ldy, rows, beta); return; }
#endif
    rows_portable(ck_gemv_q4_0, w, ldw, x, ldx, nx, k, y, ldy, rows, beta);
}

void ck_gemv_rows_q4_1(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k, float *y,
                       ptrdiff_t ldy, ptrdiff_t rows, float beta) {
#ifdef HAVE_ROWS_AVX2
    if (ck_kernel_path() >= CK_PATH_AVX2) { rows_q4_1_avx2(w, ldw, x, ldx, nx, k, y, ldy, rows, beta); return; }
#endif
    rows_portable(ck_gemv_q4_1, w, ldw, x, ldx, nx, k, y, ldy, rows, beta);
}
