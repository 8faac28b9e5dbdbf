// Matrix-vector products straight from ggml's quantised blocks (see Sources/Tensor/GGUFQuantization.swift):
//
//     block_q8_0 { f16 d; int8_t qs[32]; }              34 bytes: w = q · d
//     block_q4_0 { f16 d; uint8_t qs[16]; }             18 bytes: w = (q − 8) · d
//     block_q4_1 { f16 d; f16 m; uint8_t qs[16]; }      20 bytes: w = q · d + m
//
// (4-bit: byte j holds element j in its low nibble and element j + 16 in its high nibble.) A decode step reads each
// weight once, so reading 4.5–8.5 bits instead of 32 per weight is what makes it fast.
//
// The portable versions dequantise every weight exactly as ggml does and accumulate w·x in float. The AVX2 versions
// compute the same sum factored per block, in float:
//     Q8_0: d·Σ q·x      Q4_0: d·(Σ q·x − 8·Σ x)      Q4_1: d·Σ q·x + m·Σ x
// (Σ x over the block's 32 inputs is shared by all rows), i.e. the same mathematics in a different rounding order.
// They take four rows at a time, so that each block of x is loaded (and summed) once for four rows of weights and
// the four rows' scales are converted together (F16C). Measured on one core of this project's Zen 4 VM (rows × 576):
// Q4_1 ≈ 22, Q4_0 ≈ 21, Q8_0 ≈ 27 G weights/s (Q8_0 then reads ≈ 29 GB/s, about what one core streams).
#include "ckernels.h"
#include <stdint.h>
#include <string.h>

/// IEEE binary16 → float, exactly (as the F16C instruction does; NaNs quieted).
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0) {
        float f = (float)mantissa * 0x1p-24f;  // zero or subnormal, exact
        memcpy(&bits, &f, sizeof bits);
        bits |= sign;
    } else if (exponent == 0x1F) {
        bits = sign | 0x7F800000u | mantissa << 13 | (mantissa ? 0x400000u : 0);
    } else {
        bits = sign | (exponent + 112) << 23 | mantissa << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t load_u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, sizeof v); return v; }
static inline uint32_t load_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, sizeof v); return v; }

static inline float finish(float acc, float *y, float beta) { return beta == 0 ? acc : beta * *y + acc; }

static void gemv_q8_0_portable(const uint8_t *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows,
                               float beta) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float acc = 0;
        for (ptrdiff_t b = 0; b < k / 32; b++) {
            const uint8_t *blk = w + r * ldw + b * 34;
            float d = half_to_float(load_u16(blk));
            for (int j = 0; j < 32; j++) acc += (float)(int8_t)blk[2 + j] * d * x[32 * b + j];
        }
        y[r] = finish(acc, y + r, beta);
    }
}

static void gemv_q4_0_portable(const uint8_t *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows,
                               float beta) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float acc = 0;
        for (ptrdiff_t b = 0; b < k / 32; b++) {
            const uint8_t *blk = w + r * ldw + b * 18;
            const float *xb = x + 32 * b;
            float d = half_to_float(load_u16(blk));
            for (int j = 0; j < 16; j++) {
                acc += (float)((blk[2 + j] & 0x0F) - 8) * d * xb[j];
                acc += (float)((blk[2 + j] >> 4) - 8) * d * xb[j + 16];
            }
        }
        y[r] = finish(acc, y + r, beta);
    }
}

static void gemv_q4_1_portable(const uint8_t *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows,
                               float beta) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float acc = 0;
        for (ptrdiff_t b = 0; b < k / 32; b++) {
            const uint8_t *blk = w + r * ldw + b * 20;
            const float *xb = x + 32 * b;
            float d = half_to_float(load_u16(blk)), m = half_to_float(load_u16(blk + 2));
            for (int j = 0; j < 16; j++) {
                float lo = (float)(blk[4 + j] & 0x0F) * d, hi = (float)(blk[4 + j] >> 4) * d;
                acc += (lo + m) * xb[j];
                acc += (hi + m) * xb[j + 16];
            }
        }
        y[r] = finish(acc, y + r, beta);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// One block of x (32 floats) and what every row's block needs from it.
typedef struct { __m256 x0, x1, x2, x3, sum; } xblock;

AVX2 static inline xblock load_x(const float *xb, float sum_scale) {
    xblock v = {_mm256_loadu_ps(xb), _mm256_loadu_ps(xb + 8), _mm256_loadu_ps(xb + 16), _mm256_loadu_ps(xb + 24),
                _mm256_setzero_ps()};
    if (sum_scale != 0)
        v.sum = _mm256_mul_ps(_mm256_add_ps(_mm256_add_ps(v.x0, v.x1), _mm256_add_ps(v.x2, v.x3)), _mm256_set1_ps(sum_scale));
    return v;
}

/// Σ q·x over one block (lane-wise partial sums) for 16 bytes of nibbles: low nibbles are elements 0–15, high 16–31.
/// Bytes 0–7 and 8–15 are widened to 32 bits once each; the low and high nibble are then one `and` or shift away.
AVX2 static inline __m256 dot_nibbles(const uint8_t *qs, const xblock *v) {
    const __m256i mask = _mm256_set1_epi32(0x0F);
    __m256i b0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)qs));
    __m256i b1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8)));
    __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(b0, mask)), v->x0);
    t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_and_si256(b1, mask)), v->x1, t);
    t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(b0, 4)), v->x2, t);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(b1, 4)), v->x3, t);
}

/// Σ q·x over one block of 32 signed bytes.
AVX2 static inline __m256 dot_bytes(const uint8_t *qs, const xblock *v) {
    __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)qs))), v->x0);
    t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8)))), v->x1, t);
    t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 16)))), v->x2, t);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 24)))), v->x3, t);
}

/// acc + one block's contribution given its scale d (and min m), per format; `blk` is the block's first byte.
/// For Q4_0 `v->sum` is 8·Σx: Σ (q − 8)·x = Σ q·x − 8·Σx. For Q4_1 it is Σx.
AVX2 static inline __m256 block_q8_0(const uint8_t *blk, const xblock *v, __m256 d, __m256 m, __m256 acc) {
    (void)m;
    return _mm256_fmadd_ps(d, dot_bytes(blk + 2, v), acc);
}
AVX2 static inline __m256 block_q4_0(const uint8_t *blk, const xblock *v, __m256 d, __m256 m, __m256 acc) {
    (void)m;
    return _mm256_fmadd_ps(d, _mm256_sub_ps(dot_nibbles(blk + 2, v), v->sum), acc);
}
AVX2 static inline __m256 block_q4_1(const uint8_t *blk, const xblock *v, __m256 d, __m256 m, __m256 acc) {
    return _mm256_fmadd_ps(m, v->sum, _mm256_fmadd_ps(d, dot_nibbles(blk + 4, v), acc));
}

/// The f16 scales (d, and m when `has_min`) of four rows' blocks converted together: s[0..3] = d, s[4..7] = m.
AVX2 static inline void scales4(const uint8_t *b0, const uint8_t *b1, const uint8_t *b2, const uint8_t *b3,
                                int has_min, float *s) {
    if (has_min) {
        __m128i dm = _mm_setr_epi32((int)load_u32(b0), (int)load_u32(b1), (int)load_u32(b2), (int)load_u32(b3));
        // halves d0 m0 d1 m1 d2 m2 d3 m3 → d0 d1 d2 d3 m0 m1 m2 m3
        dm = _mm_shuffle_epi8(dm, _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15));
        _mm256_storeu_ps(s, _mm256_cvtph_ps(dm));
    } else {
        __m128i d = _mm_setr_epi16((short)load_u16(b0), (short)load_u16(b1), (short)load_u16(b2), (short)load_u16(b3),
                                   0, 0, 0, 0);
        _mm_storeu_ps(s, _mm_cvtph_ps(d));
    }
    // Keep the scales in memory: broadcasting from memory is a plain load, while the register shuffles the compiler
    // would otherwise use compete with the nibble unpacking for the vector ports.
    __asm__ __volatile__("" : : "r"(s) : "memory");
}

/// The row loop shared by the three formats: four rows at a time (x loaded once per block for all four, their
/// scales converted together), then one. Prefetches the rows PF_ROWS ahead, which the hardware prefetcher alone
/// fetches too late for Q8_0.
#define PF_ROWS 8
#define GEMV_AVX2(NAME, BLOCK_BYTES, BLOCK, HAS_MIN, SUM_SCALE)                                                       \
    AVX2 static void NAME(const uint8_t *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows,     \
                          float beta) {                                                                               \
        ptrdiff_t nb = k / 32, r = 0;                                                                                 \
        for (; r + 4 <= rows; r += 4) {                                                                               \
            const uint8_t *w0 = w + r * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;                          \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                               \
            for (ptrdiff_t b = 0; b < nb; b++) {                                                                      \
                ptrdiff_t o = b * BLOCK_BYTES;                                                                        \
                const char *pf = (const char *)w0 + PF_ROWS * ldw + 4 * o; /* may lie past w: prefetches never fault */\
                _mm_prefetch(pf, _MM_HINT_T0);                                                                        \
                _mm_prefetch(pf + 64, _MM_HINT_T0);                                                                   \
                if (4 * BLOCK_BYTES > 128) _mm_prefetch(pf + 128, _MM_HINT_T0);                                       \
                xblock v = load_x(x + 32 * b, SUM_SCALE);                                                             \
                float s[8];                                                                                           \
                scales4(w0 + o, w1 + o, w2 + o, w3 + o, HAS_MIN, s);                                                  \
                a0 = BLOCK(w0 + o, &v, _mm256_broadcast_ss(s), _mm256_broadcast_ss(s + 4), a0);                       \
                a1 = BLOCK(w1 + o, &v, _mm256_broadcast_ss(s + 1), _mm256_broadcast_ss(s + 5), a1);                   \
                a2 = BLOCK(w2 + o, &v, _mm256_broadcast_ss(s + 2), _mm256_broadcast_ss(s + 6), a2);                   \
                a3 = BLOCK(w3 + o, &v, _mm256_broadcast_ss(s + 3), _mm256_broadcast_ss(s + 7), a3);                   \
            }                                                                                                         \
            y[r] = finish(hsum8(a0), y + r, beta);                                                                    \
            y[r + 1] = finish(hsum8(a1), y + r + 1, beta);                                                            \
            y[r + 2] = finish(hsum8(a2), y + r + 2, beta);                                                            \
            y[r + 3] = finish(hsum8(a3), y + r + 3, beta);                                                            \
        }                                                                                                             \
        for (; r < rows; r++) {                                                                                       \
            __m256 a = _mm256_setzero_ps();                                                                           \
            for (ptrdiff_t b = 0; b < nb; b++) {                                                                      \
                const uint8_t *blk = w + r * ldw + b * BLOCK_BYTES;                                                   \
                xblock v = load_x(x + 32 * b, SUM_SCALE);                                                             \
                __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(blk)));                                                  \
                __m256 m = HAS_MIN ? _mm256_set1_ps(_cvtsh_ss(load_u16(blk + 2))) : d;                                \
                a = BLOCK(blk, &v, d, m, a);                                                                          \
            }                                                                                                         \
            y[r] = finish(hsum8(a), y + r, beta);                                                                     \
        }                                                                                                             \
    }

GEMV_AVX2(gemv_q8_0_avx2, 34, block_q8_0, 0, 0.0f)
GEMV_AVX2(gemv_q4_0_avx2, 18, block_q4_0, 0, 8.0f)
GEMV_AVX2(gemv_q4_1_avx2, 20, block_q4_1, 1, 1.0f)

static int detect_avx2_f16c(void) { return ck_kernel_path() >= CK_PATH_AVX2; }
#define DISPATCH_VOID(fast, slow) do { if (detect_avx2_f16c()) { fast; } else { slow; } } while (0)
#else
#define DISPATCH_VOID(fast, slow) do { slow; } while (0)
#endif

void ck_gemv_q8_0(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows, float beta) {
    DISPATCH_VOID(gemv_q8_0_avx2(w, ldw, x, k, y, rows, beta), gemv_q8_0_portable(w, ldw, x, k, y, rows, beta));
}
void ck_gemv_q4_0(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows, float beta) {
    DISPATCH_VOID(gemv_q4_0_avx2(w, ldw, x, k, y, rows, beta), gemv_q4_0_portable(w, ldw, x, k, y, rows, beta));
}
void ck_gemv_q4_1(const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows, float beta) {
    DISPATCH_VOID(gemv_q4_1_avx2(w, ldw, x, k, y, rows, beta), gemv_q4_1_portable(w, ldw, x, k, y, rows, beta));
}
