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

static int detect_avx2(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
}
#define DISPATCH(fast, slow) (detect_avx2() ? (fast) : (slow))
#else
static int detect_avx2(void) { return 0; }
#define DISPATCH(fast, slow) (slow)
#endif

float ck_exp_shift_sum(float *p, ptrdiff_t n, float shift) {
    return DISPATCH(exp_shift_sum_avx2(p, n, shift), exp_shift_sum_portable(p, n, shift));
}
float ck_max(const float *p, ptrdiff_t n) { return DISPATCH(max_avx2(p, n), max_portable(p, n)); }
void ck_scale(float *p, ptrdiff_t n, float s) {
    if (detect_avx2()) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        scale_avx2(p, n, s);
        return;
#endif
    }
    scale_portable(p, n, s);
}
void ck_sigmoid(float *p, ptrdiff_t n, float bias) {
    if (detect_avx2()) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        sigmoid_avx2(p, n, bias);
        return;
#endif
    }
    sigmoid_portable(p, n, bias);
}
int ck_uses_avx2(void) { return detect_avx2(); }
