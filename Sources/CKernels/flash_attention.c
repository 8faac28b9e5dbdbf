// The fused FlashAttention tile kernel: one key tile against a block of query rows, with the score function, the
// mask and the online-softmax update fused between the two products (the Swift driver in
// Sources/Transformer/Attention/FlashAttention.swift walks the tiles, splits the work and merges partial results).
//
// Per call (R query rows, n keys, head dims D and Dv):
//     pack Kᵀ once into 16-key panels [panel][D][16] (zero-padded)      reused by every row block of the call
//     for each block of 8 query rows (6 on AVX2):
//         S = Q·Kᵀ                      8 × n, register-blocked (8 rows × 32 keys of accumulators), kept in L1
//         score: soft-cap, mask (−inf / 0), then softmax (online: m, l, rescale α) or sigmoid σ(s + b)
//         O = α·O + P·V                 8 × Dv, register-blocked (8 rows × 32 columns), V read in place
//
// Paths: AVX-512 (zmm, masked tails), AVX2 + FMA (ymm), portable C; chosen by ck_kernel_path(). S is multiplied by
// the score scale as it leaves the registers. The row operations (max, exp-and-sum, sigmoid) are the dispatched ones of
// vector_math.c.
#include "ckernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define PANEL 16   // keys per packed panel
#define ROWS 8     // query rows per register block (AVX-512, portable; AVX2 uses 6)

static inline ptrdiff_t padded_keys(ptrdiff_t n) { return (n + PANEL - 1) / PANEL * PANEL; }

size_t ck_flash_scratch_floats(ptrdiff_t keys, ptrdiff_t d) {
    return (size_t)(padded_keys(keys) * d + ROWS * padded_keys(keys) + 64);
}

static void pack_kt(const float *k, ptrdiff_t ldk, ptrdiff_t n, ptrdiff_t d, float *kp) {
    ptrdiff_t np = padded_keys(n);
    for (ptrdiff_t p = 0; p < np; p += PANEL) {
        float *dst = kp + p * d;
        ptrdiff_t w = n - p < PANEL ? n - p : PANEL;
        if (w < PANEL) memset(dst, 0, sizeof(float) * PANEL * d);
        for (ptrdiff_t j = 0; j < w; j++) {
            const float *src = k + (p + j) * ldk;
            for (ptrdiff_t e = 0; e < d; e++) dst[e * PANEL + j] = src[e];
        }
    }
}

// ---- portable products ----------------------------------------------------------------------------------------
static void qk_portable(const float *q, ptrdiff_t ldq, int rb, const float *kp, ptrdiff_t np, ptrdiff_t d, float *s,
                        ptrdiff_t lds, float scale) {
    for (int r = 0; r < rb; r++) {
        for (ptrdiff_t p = 0; p < np; p += PANEL) {
            float total[PANEL] = {0};
            const float *panel = kp + p * d;
            for (ptrdiff_t e0 = 0; e0 < d; e0 += 128) {
                float acc[PANEL] = {0};
                for (ptrdiff_t e = e0; e < d && e < e0 + 128; e++) {
                    float qv = q[r * ldq + e];
                    for (int j = 0; j < PANEL; j++) acc[j] += qv * panel[e * PANEL + j];
                }
                for (int j = 0; j < PANEL; j++) total[j] += acc[j] * scale;
            }
            for (int j = 0; j < PANEL; j++) s[r * lds + p + j] = total[j];
        }
    }
}

static void pv_portable(const float *p, ptrdiff_t lds, int rb, ptrdiff_t n, const float *v, ptrdiff_t ldv, ptrdiff_t dv,
                        const float *alpha, float *o) {
    for (int r = 0; r < rb; r++) {
        float *orow = o + r * dv;
        if (alpha[r] != 1) for (ptrdiff_t c = 0; c < dv; c++) orow[c] *= alpha[r];
        for (ptrdiff_t j = 0; j < n; j++) {
            float w = p[r * lds + j];
            if (w == 0) continue;
            const float *vrow = v + j * ldv;
            for (ptrdiff_t c = 0; c < dv; c++) orow[c] += w * vrow[c];
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE inline __attribute__((always_inline))

// ---- AVX-512 ----------------------------------------------------------------------------------------------------
// S[rb × 32] for two panels (or [rb × 16] for one), scaled. The head dim is summed in chunks of DCHUNK, each
// chunk's partial sum added to S (blocked summation keeps fp32 error low for wide heads such as MLA's 576).
#define DCHUNK 128
#define QK512(RB)                                                                                                      \
    AVX512 static void qk512_##RB(const float *q, ptrdiff_t ldq, const float *kp, ptrdiff_t np, ptrdiff_t d,           \
                                   float *s, ptrdiff_t lds, float scale) {                                             \
        const __m512 sc = _mm512_set1_ps(scale);                                                                       \
        for (ptrdiff_t p = 0; p < np; p += 2 * PANEL) {                                                                \
            const int two = p + 2 * PANEL <= np;                                                                       \
            const float *k0 = kp + p * d, *k1 = two ? k0 + PANEL * d : k0;                                             \
            for (ptrdiff_t e0 = 0; e0 < d; e0 += DCHUNK) {                                                             \
                const ptrdiff_t e1 = e0 + DCHUNK < d ? e0 + DCHUNK : d;                                                \
                __m512 a0[RB], a1[RB];                                                                                 \
                for (int r = 0; r < RB; r++) { a0[r] = _mm512_setzero_ps(); a1[r] = _mm512_setzero_ps(); }            \
                if (two) {                                                                                             \
                    for (ptrdiff_t e = e0; e < e1; e++) {                                                              \
                        __m512 x0 = _mm512_loadu_ps(k0 + e * PANEL), x1 = _mm512_loadu_ps(k1 + e * PANEL);             \
                        for (int r = 0; r < RB; r++) {                                                                 \
                            __m512 qv = _mm512_set1_ps(q[r * ldq + e]);                                                \
                            a0[r] = _mm512_fmadd_ps(qv, x0, a0[r]);                                                    \
                            a1[r] = _mm512_fmadd_ps(qv, x1, a1[r]);                                                    \
                        }                                                                                              \
                    }                                                                                                  \
                } else {                                                                                               \
                    for (ptrdiff_t e = e0; e < e1; e++) {                                                              \
                        __m512 x0 = _mm512_loadu_ps(k0 + e * PANEL);                                                   \
                        for (int r = 0; r < RB; r++) a0[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r * ldq + e]), x0, a0[r]); \
                    }                                                                                                  \
                }                                                                                                      \
                for (int r = 0; r < RB; r++) {                                                                         \
                    float *out = s + r * lds + p;                                                                      \
                    __m512 v0 = _mm512_mul_ps(sc, a0[r]), v1 = _mm512_mul_ps(sc, a1[r]);                               \
                    if (e0 > 0) {                                                                                      \
                        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(out));                                                  \
                        if (two) v1 = _mm512_add_ps(v1, _mm512_loadu_ps(out + PANEL));                                 \
                    }                                                                                                  \
                    _mm512_storeu_ps(out, v0);                                                                         \
                    if (two) _mm512_storeu_ps(out + PANEL, v1);                                                        \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

// O[rb × Dv] = α·O + P[rb × n]·V[n × Dv], 32 columns at a time (masked tail).
#define PV512(RB)                                                                                                      \
    AVX512 static void pv512_##RB(const float *pm, ptrdiff_t lds, ptrdiff_t n, const float *v, ptrdiff_t ldv,          \
                                   ptrdiff_t dv, const float *alpha, float *o) {                                       \
        for (ptrdiff_t c = 0; c < dv; c += 32) {                                                                       \
            ptrdiff_t w = dv - c < 32 ? dv - c : 32;                                                                   \
            __mmask16 m0 = w >= 16 ? 0xffff : (__mmask16)((1u << w) - 1);                                              \
            __mmask16 m1 = w >= 32 ? 0xffff : w > 16 ? (__mmask16)((1u << (w - 16)) - 1) : 0;                          \
            __m512 a0[RB], a1[RB];                                                                                     \
            for (int r = 0; r < RB; r++) {                                                                             \
                __m512 al = _mm512_set1_ps(alpha[r]);                                                                  \
                a0[r] = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m0, o + r * dv + c));                                  \
                a1[r] = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m1, o + r * dv + c + 16));                             \
            }                                                                                                          \
            for (ptrdiff_t j = 0; j < n; j++) {                                                                        \
                const float *vr = v + j * ldv + c;                                                                     \
                __m512 x0 = _mm512_maskz_loadu_ps(m0, vr), x1 = _mm512_maskz_loadu_ps(m1, vr + 16);                    \
                for (int r = 0; r < RB; r++) {                                                                         \
                    __m512 pv = _mm512_set1_ps(pm[r * lds + j]);                                                       \
                    a0[r] = _mm512_fmadd_ps(pv, x0, a0[r]);                                                            \
                    a1[r] = _mm512_fmadd_ps(pv, x1, a1[r]);                                                            \
                }                                                                                                      \
            }                                                                                                          \
            for (int r = 0; r < RB; r++) {                                                                             \
                _mm512_mask_storeu_ps(o + r * dv + c, m0, a0[r]);                                                      \
                _mm512_mask_storeu_ps(o + r * dv + c + 16, m1, a1[r]);                                                 \
            }                                                                                                          \
        }                                                                                                              \
    }

QK512(1) QK512(2) QK512(3) QK512(4) QK512(5) QK512(6) QK512(7) QK512(8)
PV512(1) PV512(2) PV512(3) PV512(4) PV512(5) PV512(6) PV512(7) PV512(8)

AVX512 static void qk512(int rb, const float *q, ptrdiff_t ldq, const float *kp, ptrdiff_t np, ptrdiff_t d, float *s,
                         ptrdiff_t lds, float scale) {
    switch (rb) {
    case 1: qk512_1(q, ldq, kp, np, d, s, lds, scale); break;
    case 2: qk512_2(q, ldq, kp, np, d, s, lds, scale); break;
    case 3: qk512_3(q, ldq, kp, np, d, s, lds, scale); break;
    case 4: qk512_4(q, ldq, kp, np, d, s, lds, scale); break;
    case 5: qk512_5(q, ldq, kp, np, d, s, lds, scale); break;
    case 6: qk512_6(q, ldq, kp, np, d, s, lds, scale); break;
    case 7: qk512_7(q, ldq, kp, np, d, s, lds, scale); break;
    default: qk512_8(q, ldq, kp, np, d, s, lds, scale); break;
    }
}
AVX512 static void pv512(int rb, const float *p, ptrdiff_t lds, ptrdiff_t n, const float *v, ptrdiff_t ldv, ptrdiff_t dv,
                         const float *alpha, float *o) {
    switch (rb) {
    case 1: pv512_1(p, lds, n, v, ldv, dv, alpha, o); break;
    case 2: pv512_2(p, lds, n, v, ldv, dv, alpha, o); break;
    case 3: pv512_3(p, lds, n, v, ldv, dv, alpha, o); break;
    case 4: pv512_4(p, lds, n, v, ldv, dv, alpha, o); break;
    case 5: pv512_5(p, lds, n, v, ldv, dv, alpha, o); break;
    case 6: pv512_6(p, lds, n, v, ldv, dv, alpha, o); break;
    case 7: pv512_7(p, lds, n, v, ldv, dv, alpha, o); break;
    default: pv512_8(p, lds, n, v, ldv, dv, alpha, o); break;
    }
}

// ---- AVX2 (6-row register blocks: 12 of the 16 ymm registers accumulate) -------------------------------------------------------------
#define QK256(RB)                                                                                                      \
    AVX2 static void qk256_##RB(const float *q, ptrdiff_t ldq, const float *kp, ptrdiff_t np, ptrdiff_t d, float *s,   \
                                 ptrdiff_t lds, float scale) {                                                         \
        const __m256 sc = _mm256_set1_ps(scale);                                                                       \
        for (ptrdiff_t p = 0; p < np; p += PANEL) {                                                                    \
            const float *k0 = kp + p * d;                                                                              \
            for (ptrdiff_t e0 = 0; e0 < d; e0 += DCHUNK) {                                                             \
                const ptrdiff_t e1 = e0 + DCHUNK < d ? e0 + DCHUNK : d;                                                \
                __m256 a0[RB], a1[RB];                                                                                 \
                for (int r = 0; r < RB; r++) { a0[r] = _mm256_setzero_ps(); a1[r] = _mm256_setzero_ps(); }            \
                for (ptrdiff_t e = e0; e < e1; e++) {                                                                  \
                    __m256 x0 = _mm256_loadu_ps(k0 + e * PANEL), x1 = _mm256_loadu_ps(k0 + e * PANEL + 8);             \
                    for (int r = 0; r < RB; r++) {                                                                     \
                        __m256 qv = _mm256_broadcast_ss(q + r * ldq + e);                                              \
                        a0[r] = _mm256_fmadd_ps(qv, x0, a0[r]);                                                        \
                        a1[r] = _mm256_fmadd_ps(qv, x1, a1[r]);                                                        \
                    }                                                                                                  \
                }                                                                                                      \
                for (int r = 0; r < RB; r++) {                                                                         \
                    float *out = s + r * lds + p;                                                                      \
                    __m256 v0 = _mm256_mul_ps(sc, a0[r]), v1 = _mm256_mul_ps(sc, a1[r]);                               \
                    if (e0 > 0) {                                                                                      \
                        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(out));                                                  \
                        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(out + 8));                                              \
                    }                                                                                                  \
                    _mm256_storeu_ps(out, v0);                                                                         \
                    _mm256_storeu_ps(out + 8, v1);                                                                     \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

#define PV256(RB)                                                                                                      \
    AVX2 static void pv256_##RB(const float *pm, ptrdiff_t lds, ptrdiff_t n, const float *v, ptrdiff_t ldv,            \
                                 ptrdiff_t dv, const float *alpha, float *o) {                                         \
        ptrdiff_t c = 0;                                                                                               \
        for (; c + 16 <= dv; c += 16) {                                                                                \
            __m256 a0[RB], a1[RB];                                                                                     \
            for (int r = 0; r < RB; r++) {                                                                             \
                __m256 al = _mm256_set1_ps(alpha[r]);                                                                  \
                a0[r] = _mm256_mul_ps(al, _mm256_loadu_ps(o + r * dv + c));                                            \
                a1[r] = _mm256_mul_ps(al, _mm256_loadu_ps(o + r * dv + c + 8));                                        \
            }                                                                                                          \
            for (ptrdiff_t j = 0; j < n; j++) {                                                                        \
                const float *vr = v + j * ldv + c;                                                                     \
                __m256 x0 = _mm256_loadu_ps(vr), x1 = _mm256_loadu_ps(vr + 8);                                         \
                for (int r = 0; r < RB; r++) {                                                                         \
                    __m256 pv = _mm256_broadcast_ss(pm + r * lds + j);                                                 \
                    a0[r] = _mm256_fmadd_ps(pv, x0, a0[r]);                                                            \
                    a1[r] = _mm256_fmadd_ps(pv, x1, a1[r]);                                                            \
                }                                                                                                      \
            }                                                                                                          \
            for (int r = 0; r < RB; r++) {                                                                             \
                _mm256_storeu_ps(o + r * dv + c, a0[r]);                                                               \
                _mm256_storeu_ps(o + r * dv + c + 8, a1[r]);                                                           \
            }                                                                                                          \
        }                                                                                                              \
        if (c < dv) { /* column tail: scalar */                                                                        \
            for (int r = 0; r < RB; r++) {                                                                             \
                float *orow = o + r * dv;                                                                              \
                for (ptrdiff_t cc = c; cc < dv; cc++) orow[cc] *= alpha[r];                                            \
                for (ptrdiff_t j = 0; j < n; j++) {                                                                    \
                    float w = pm[r * lds + j];                                                                         \
                    const float *vr = v + j * ldv;                                                                     \
                    for (ptrdiff_t cc = c; cc < dv; cc++) orow[cc] += w * vr[cc];                                      \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
    }

QK256(1) QK256(2) QK256(3) QK256(4) QK256(5) QK256(6)
PV256(1) PV256(2) PV256(3) PV256(4) PV256(5) PV256(6)

AVX2 static void qk256(int rb, const float *q, ptrdiff_t ldq, const float *kp, ptrdiff_t np, ptrdiff_t d, float *s,
                       ptrdiff_t lds, float scale) {
    switch (rb) {
    case 1: qk256_1(q, ldq, kp, np, d, s, lds, scale); break;
    case 2: qk256_2(q, ldq, kp, np, d, s, lds, scale); break;
    case 3: qk256_3(q, ldq, kp, np, d, s, lds, scale); break;
    case 4: qk256_4(q, ldq, kp, np, d, s, lds, scale); break;
    case 5: qk256_5(q, ldq, kp, np, d, s, lds, scale); break;
    default: qk256_6(q, ldq, kp, np, d, s, lds, scale); break;
    }
}
AVX2 static void pv256(int rb, const float *p, ptrdiff_t lds, ptrdiff_t n, const float *v, ptrdiff_t ldv, ptrdiff_t dv,
                       const float *alpha, float *o) {
    switch (rb) {
    case 1: pv256_1(p, lds, n, v, ldv, dv, alpha, o); break;
    case 2: pv256_2(p, lds, n, v, ldv, dv, alpha, o); break;
    case 3: pv256_3(p, lds, n, v, ldv, dv, alpha, o); break;
    case 4: pv256_4(p, lds, n, v, ldv, dv, alpha, o); break;
    case 5: pv256_5(p, lds, n, v, ldv, dv, alpha, o); break;
    default: pv256_6(p, lds, n, v, ldv, dv, alpha, o); break;
    }
}
#endif

static void qk(int path, int rb, const float *q, ptrdiff_t ldq, const float *kp, ptrdiff_t np, ptrdiff_t d, float *s,
               ptrdiff_t lds, float scale) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (path >= CK_PATH_AVX512) { qk512(rb, q, ldq, kp, np, d, s, lds, scale); return; }
    if (path >= CK_PATH_AVX2) { qk256(rb, q, ldq, kp, np, d, s, lds, scale); return; }
#endif
    (void)path;
    qk_portable(q, ldq, rb, kp, np, d, s, lds, scale);
}

static void pv(int path, int rb, const float *p, ptrdiff_t lds, ptrdiff_t n, const float *v, ptrdiff_t ldv, ptrdiff_t dv,
               const float *alpha, float *o) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (path >= CK_PATH_AVX512) { pv512(rb, p, lds, n, v, ldv, dv, alpha, o); return; }
    if (path >= CK_PATH_AVX2) { pv256(rb, p, lds, n, v, ldv, dv, alpha, o); return; }
#endif
    (void)path;
    pv_portable(p, lds, rb, n, v, ldv, dv, alpha, o);
}

void ck_flash_tile(const ck_flash_tile_args *a) {
    const int path = ck_kernel_path();
    const ptrdiff_t n = a->keys, d = a->d, dv = a->dv, np = padded_keys(n);
    float *kp = a->scratch, *s = kp + np * d;
    pack_kt(a->k, a->ldk, n, d, kp);
    const float masked = a->sigmoid ? 0.0f : -INFINITY;
    const int block = path == CK_PATH_AVX2 ? 6 : ROWS;  // register-block rows of the path
    for (int r0 = 0; r0 < a->rows; r0 += block) {
        const int rb = a->rows - r0 < block ? a->rows - r0 : block;
        qk(path, rb, a->q + r0 * a->ldq, a->ldq, kp, np, d, s, np, a->scale);
        float alpha[ROWS];
        int any = 0;
        for (int i = 0; i < rb; i++) {
            const int r = r0 + i;
            float *row = s + i * np;
            if (a->softcap > 0) {
                const float c = a->softcap, inv = 1.0f / c;
                for (ptrdiff_t j = 0; j < n; j++) row[j] = c * tanhf(row[j] * inv);
            }
            if (a->sigmoid) ck_sigmoid(row, n, a->bias);
            if (a->lo) {
                ptrdiff_t lo = a->lo[r] < 0 ? 0 : a->lo[r] > n ? n : a->lo[r];
                ptrdiff_t hi = a->hi[r] < lo ? lo : a->hi[r] > n ? n : a->hi[r];
                for (ptrdiff_t j = 0; j < lo; j++) row[j] = masked;
                for (ptrdiff_t j = hi; j < n; j++) row[j] = masked;
            }
            if (a->allowed) {
                const unsigned char *ok = a->allowed + (ptrdiff_t)r * n;
                for (ptrdiff_t j = 0; j < n; j++) if (!ok[j]) row[j] = masked;
            }
            alpha[i] = 1;
            if (a->sigmoid) { any = 1; continue; }
            float m = a->m[r], tmax = ck_max(row, n), nm = m > tmax ? m : tmax;
            if (nm == -INFINITY) { memset(row, 0, sizeof(float) * n); continue; }  // nothing visible yet
            any = 1;
            float sum = ck_exp_shift_sum(row, n, nm);
            if (m != nm) {
                alpha[i] = m == -INFINITY ? 0.0f : expf(m - nm);
                a->l[r] = a->l[r] * alpha[i] + sum;
                a->m[r] = nm;
            } else {
                a->l[r] += sum;
            }
        }
        if (any) pv(path, rb, s, np, n, a->v, a->ldv, dv, alpha, a->o + (ptrdiff_t)r0 * dv);
    }
}
