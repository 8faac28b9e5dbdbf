// exp: Cephes-style range reduction x = n·ln2 + r, |r| <= ln2/2, degree-6 polynomial (about 2 ulp), 2^n from the
// exponent bits. The same constants are used by the scalar fallback and the AVX2 path, so both agree.
#include "ckernels.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define EXP_HI 88.3f
#define EXP_LO -87.3f
static const float LOG2E = 1.44269504088896341f, LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
static const float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f, P3 = 4.1665795894e-2f,
                   P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

static inline float exp_scalar(float input) {
    if (!(input >= EXP_LO)) return input != input ? input : 0.0f;  // NaN stays NaN; underflow and -inf give 0
    float x = input > EXP_HI ? EXP_HI : input;
    float n = nearbyintf(x * LOG2E);
    x = x - n * LN2_HI;
    x = x - n * LN2_LO;
    float p = P0;
    p = p * x + P1; p = p * x + P2; p = p * x + P3; p = p * x + P4; p = p * x + P5;
    p = p * (x * x) + x + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static float exp_shift_sum_portable(float *p, ptrdiff_t n, float shift) {
    float sum = 0;
    for (ptrdiff_t i = 0; i < n; i++) { p[i] = exp_scalar(p[i] - shift); sum += p[i]; }
    return sum;
}
static float max_portable(const float *p, ptrdiff_t n) {
    float m = -INFINITY;
    for (ptrdiff_t i = 0; i < n; i++) m = p[i] > m ? p[i] : m;
    return m;
}
static void scale_portable(float *p, ptrdiff_t n, float s) { for (ptrdiff_t i = 0; i < n; i++) p[i] *= s; }
static void sigmoid_portable(float *p, ptrdiff_t n, float bias) {
    for (ptrdiff_t i = 0; i < n; i++) p[i] = 1.0f / (1.0f + exp_scalar(-(p[i] + bias)));
}

static void silu_mul_portable(const float *g, const float *u, float *o, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) o[i] = g[i] / (1.0f + exp_scalar(-g[i])) * u[i];
}
static double sum_squares_portable(const float *x, ptrdiff_t n) {
    double s = 0;
    for (ptrdiff_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}
static void scale_weight_portable(const float *x, const float *w, float s, float *o, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) o[i] = x[i] * s * w[i];
}
static void gemv_portable(const float *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows, float beta) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *row = w + r * ldw;
        float acc = 0;
        for (ptrdiff_t j = 0; j < k; j++) acc += row[j] * x[j];
        y[r] = beta == 0 ? acc : beta * y[r] + acc;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256 exp8(__m256 input) {
    __m256 x = _mm256_max_ps(_mm256_min_ps(input, _mm256_set1_ps(EXP_HI)), _mm256_set1_ps(EXP_LO));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), x);
    __m256 p = _mm256_set1_ps(P0);
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(P1));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(P2));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(P3));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(P4));
    p = _mm256_fmadd_ps(p, x, _mm256_set1_ps(P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 r = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    // below the range (and -inf) -> 0
    return _mm256_and_ps(r, _mm256_cmp_ps(input, _mm256_set1_ps(EXP_LO), _CMP_GE_OQ));
}

AVX2 static float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static float exp_shift_sum_avx2(float *p, ptrdiff_t n, float shift) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), s = _mm256_set1_ps(shift);
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), s));
        __m256 b = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i + 8), s));
        _mm256_storeu_ps(p + i, a);
        _mm256_storeu_ps(p + i + 8, b);
        acc0 = _mm256_add_ps(acc0, a);
        acc1 = _mm256_add_ps(acc1, b);
    }
    float sum = hsum8(_mm256_add_ps(acc0, acc1));
    return sum + exp_shift_sum_portable(p + i, n - i, shift);
}

AVX2 static float max_avx2(const float *p, ptrdiff_t n) {
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
    ptrdiff_t i = 0;
    for (; i + 16 <= n; i += 16) {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(p + i));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(p + i + 8));
    }
    m0 = _mm256_max_ps(m0, m1);
    __m128 v = _mm_max_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    v = _mm_max_ss(v, _mm_movehdup_ps(v));
    float m = _mm_cvtss_f32(v), t = max_portable(p + i, n - i);
    return t > m ? t : m;
}

AVX2 static void scale_avx2(float *p, ptrdiff_t n, float s) {
    __m256 v = _mm256_set1_ps(s);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, _mm256_mul_ps(_mm256_loadu_ps(p + i), v));
    scale_portable(p + i, n - i, s);
}

AVX2 static void sigmoid_avx2(float *p, ptrdiff_t n, float bias) {
    __m256 b = _mm256_set1_ps(bias), one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp8(_mm256_sub_ps(zero, _mm256_add_ps(_mm256_loadu_ps(p + i), b)));
        _mm256_storeu_ps(p + i, _mm256_div_ps(one, _mm256_add_ps(one, e)));
    }
    sigmoid_portable(p + i, n - i, bias);
}

AVX2 static void silu_mul_avx2(const float *g, const float *u, float *o, ptrdiff_t n) {
    __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 e = exp8(_mm256_sub_ps(zero, gv));
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    silu_mul_portable(g + i, u + i, o + i, n - i);
}

AVX2 static double sum_squares_avx2(const float *x, ptrdiff_t n) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        a0 = _mm256_fmadd_pd(lo, lo, a0);
        a1 = _mm256_fmadd_pd(hi, hi, a1);
    }
    __m256d a = _mm256_add_pd(a0, a1);
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
    return _mm_cvtsd_f64(s) + sum_squares_portable(x + i, n - i);
}

AVX2 static void scale_weight_avx2(const float *x, const float *w, float s, float *o, ptrdiff_t n) {
    __m256 sv = _mm256_set1_ps(s);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), sv), _mm256_loadu_ps(w + i)));
    scale_weight_portable(x + i, w + i, s, o + i, n - i);
}

/// Four rows at a time, two accumulators each, so loads of w stream while FMAs overlap.
AVX2 static void gemv_avx2(const float *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows, float beta) {
    ptrdiff_t r = 0;
    ptrdiff_t k16 = k & ~(ptrdiff_t)15;
    for (; r + 4 <= rows; r += 4) {
        const float *w0 = w + r * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (ptrdiff_t j = 0; j < k16; j += 16) {
            __m256 x0 = _mm256_loadu_ps(x + j), x1 = _mm256_loadu_ps(x + j + 8);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + j), x0, a0);
            b0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + j + 8), x1, b0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + j), x0, a1);
            b1 = _mm256_fmadd_ps(_mm256_loadu_ps(w1 + j + 8), x1, b1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + j), x0, a2);
            b2 = _mm256_fmadd_ps(_mm256_loadu_ps(w2 + j + 8), x1, b2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + j), x0, a3);
            b3 = _mm256_fmadd_ps(_mm256_loadu_ps(w3 + j + 8), x1, b3);
        }
        float t[4] = {hsum8(_mm256_add_ps(a0, b0)), hsum8(_mm256_add_ps(a1, b1)), hsum8(_mm256_add_ps(a2, b2)),
                      hsum8(_mm256_add_ps(a3, b3))};
        for (ptrdiff_t j = k16; j < k; j++) {
            t[0] += w0[j] * x[j]; t[1] += w1[j] * x[j]; t[2] += w2[j] * x[j]; t[3] += w3[j] * x[j];
        }
        for (int q = 0; q < 4; q++) y[r + q] = beta == 0 ? t[q] : beta * y[r + q] + t[q];
    }
    gemv_portable(w + r * ldw, ldw, x, k, y + r, rows - r, beta);
}

static int detect_avx2(void) { return ck_kernel_path() >= CK_PATH_AVX2; }
#define DISPATCH(fast, slow) (detect_avx2() ? (fast) : (slow))
#define DISPATCH_VOID(fast, slow) do { if (detect_avx2()) { fast; } else { slow; } } while (0)
#else
static int detect_avx2(void) { return 0; }
#define DISPATCH(fast, slow) (slow)
#define DISPATCH_VOID(fast, slow) do { slow; } while (0)
#endif

float ck_exp_shift_sum(float *p, ptrdiff_t n, float shift) {
    return DISPATCH(exp_shift_sum_avx2(p, n, shift), exp_shift_sum_portable(p, n, shift));
}
float ck_max(const float *p, ptrdiff_t n) { return DISPATCH(max_avx2(p, n), max_portable(p, n)); }
void ck_scale(float *p, ptrdiff_t n, float s) { DISPATCH_VOID(scale_avx2(p, n, s), scale_portable(p, n, s)); }
void ck_sigmoid(float *p, ptrdiff_t n, float bias) { DISPATCH_VOID(sigmoid_avx2(p, n, bias), sigmoid_portable(p, n, bias)); }
void ck_silu_mul(const float *g, const float *u, float *o, ptrdiff_t n) {
    DISPATCH_VOID(silu_mul_avx2(g, u, o, n), silu_mul_portable(g, u, o, n));
}
double ck_sum_squares(const float *x, ptrdiff_t n) { return DISPATCH(sum_squares_avx2(x, n), sum_squares_portable(x, n)); }
void ck_scale_weight(const float *x, const float *w, float s, float *o, ptrdiff_t n) {
    DISPATCH_VOID(scale_weight_avx2(x, w, s, o, n), scale_weight_portable(x, w, s, o, n));
}
void ck_gemv(const float *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows, float beta) {
    DISPATCH_VOID(gemv_avx2(w, ldw, x, k, y, rows, beta), gemv_portable(w, ldw, x, k, y, rows, beta));
}
int ck_uses_avx2(void) { return detect_avx2(); }
