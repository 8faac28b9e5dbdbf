// Packed single-precision GEMM: the engine's own sgemm, so its speed does not depend on OpenBLAS recognising the CPU.
//
//     C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C        row-major, op = identity or transpose
//
// Structure (GotoBLAS / BLIS five loops, row-major with the vectors along N):
//
//     for jc in N step NC:                          B block  kc × nc   → L3 (shared)
//       for pc in K step KC:   pack op(B)[pc, jc]     into NR-wide panels, each kc × NR, zero-padded at the N edge
//         for ic in M step MC: pack op(A)[ic, pc]     into MR-tall panels, each MR × kc, zero-padded at the M edge
//           for jr in nc step NR:                   one B panel (kc × NR) stays in L1 …
//             for ir in mc step MR:                 … while the A block (mc × kc) streams from L2
//               micro-kernel: an MR × NR tile of C in registers, k rank-1 updates (broadcast A, FMA with B rows)
//
// Micro-kernels, chosen by ck_kernel_path() on every call (tests pin each path the machine supports):
//   AVX-512  MR × NR = 14 × 32: 28 zmm accumulators, 2 B loads + 14 broadcast-FMA pairs per k step
//   AVX2     MR × NR =  6 × 16: 12 ymm accumulators (the classic Haswell shape)
//   portable MR × NR =  4 × 16: plain C that the compiler vectorises for the baseline ISA
// Edges: packed panels are zero-padded, so the kernel always computes a full tile; the store writes only the first
// mr rows and masks the columns past nr (AVX-512 opmasks, AVX2 vmaskmov), so C is never touched outside m × n.
// alpha is applied at the store; beta on the first K block only (later K blocks accumulate), and beta == 0 never
// reads C, so garbage (NaN) in C is overwritten as BLAS requires. alpha == 0 or k == 0 only scales C by beta.
//
// Small shapes: when op(B) = B (rows contiguous) and m fits in a few register tiles, B is not packed: the kernel
// reads its rows in place with masked loads at the N edge (packing would copy every element of B for one use).
//
// Threads: the function runs on the calling thread; Tensor's GEMM splits C into column panels over the engine's pool
// (Sources/Tensor/MatMul.swift), each worker calling this with its own thread-local packing buffers.
#include "ckernels.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef void (*ukernel_fn)(long k, const float *a, const float *b, long ldb, float *c, long ldc, int mr, int nr,
                           float alpha, float beta);

/// One kernel path: register block, cache blocks, and the micro-kernels (B packed with row stride NR, or in place).
typedef struct {
    int mr, nr;
    long mc, kc, nc;
    ukernel_fn packed, direct;
} sgemm_path;

static inline long min_l(long a, long b) { return a < b ? a : b; }

// MARK: - Portable micro-kernel (4 × 16)

#define PMR 4
#define PNR 16

static inline void ukr_portable_body(int direct, long k, const float *a, const float *b, long ldb, float *c, long ldc,
                                     int mr, int nr, float alpha, float beta) {
    float acc[PMR][PNR];
    memset(acc, 0, sizeof acc);
    int width = direct ? nr : PNR;
    for (long p = 0; p < k; p++) {
        float brow[PNR] = {0};
        for (int j = 0; j < width; j++) brow[j] = b[j];
        for (int i = 0; i < PMR; i++)
            for (int j = 0; j < PNR; j++) acc[i][j] += a[i] * brow[j];
        a += PMR;
        b += ldb;
    }
    for (int i = 0; i < mr; i++) {
        float *row = c + i * ldc;
        if (beta == 0)
            for (int j = 0; j < nr; j++) row[j] = alpha * acc[i][j];
        else
            for (int j = 0; j < nr; j++) row[j] = alpha * acc[i][j] + beta * row[j];
    }
}
static void ukr_portable_packed(long k, const float *a, const float *b, long ldb, float *c, long ldc, int mr, int nr,
                                float alpha, float beta) {
    ukr_portable_body(0, k, a, b, ldb, c, ldc, mr, nr, alpha, beta);
}
static void ukr_portable_direct(long k, const float *a, const float *b, long ldb, float *c, long ldc, int mr, int nr,
                                float alpha, float beta) {
    ukr_portable_body(1, k, a, b, ldb, c, ldc, mr, nr, alpha, beta);
}

#if defined(__x86_64__)

// MARK: - AVX2 + FMA micro-kernel (6 × 16)

#define AVX2_FN __attribute__((target("avx2,fma")))
#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#define AMR 6

static const int32_t mask_source[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/// Lane mask for the first `n` (0…8) of 8 floats.
AVX2_INLINE __m256i lane_mask8(int n) {
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_loadu_si256((const __m256i *)(mask_source + 8 - n));
}

AVX2_INLINE void ukr_avx2_body(int direct, long k, const float *a, const float *b, long ldb, float *c, long ldc,
                               int mr, int nr, float alpha, float beta) {
    __m256 acc0[AMR], acc1[AMR];
#pragma clang loop unroll(full)
    for (int i = 0; i < AMR; i++) acc0[i] = acc1[i] = _mm256_setzero_ps();
    __m256i m0 = lane_mask8(nr), m1 = lane_mask8(nr - 8);
    for (long p = 0; p < k; p++) {
        __m256 b0, b1;
        if (direct) {
            b0 = _mm256_maskload_ps(b, m0);
            b1 = _mm256_maskload_ps(b + 8, m1);
        } else {
            b0 = _mm256_loadu_ps(b);
            b1 = _mm256_loadu_ps(b + 8);
        }
#pragma clang loop unroll(full)
        for (int i = 0; i < AMR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
        }
        a += AMR;
        b += ldb;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    if (nr == 16) {
#pragma clang loop unroll(full)
        for (int i = 0; i < AMR; i++) {
            if (i >= mr) break;
            float *row = c + i * ldc;
            __m256 x0 = _mm256_mul_ps(va, acc0[i]), x1 = _mm256_mul_ps(va, acc1[i]);
            if (beta != 0) {
                x0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), x0);
                x1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), x1);
            }
            _mm256_storeu_ps(row, x0);
            _mm256_storeu_ps(row + 8, x1);
        }
    } else {
#pragma clang loop unroll(full)
        for (int i = 0; i < AMR; i++) {
            if (i >= mr) break;
            float *row = c + i * ldc;
            __m256 x0 = _mm256_mul_ps(va, acc0[i]), x1 = _mm256_mul_ps(va, acc1[i]);
            if (beta != 0) {
                x0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row, m0), x0);
                x1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(row + 8, m1), x1);
            }
            _mm256_maskstore_ps(row, m0, x0);
            _mm256_maskstore_ps(row + 8, m1, x1);
        }
    }
}
AVX2_FN static void ukr_avx2_packed(long k, const float *a, const float *b, long ldb, float *c, long ldc, int mr,
                                    int nr, float alpha, float beta) {
    ukr_avx2_body(0, k, a, b, ldb, c, ldc, mr, nr, alpha, beta);
}
AVX2_FN static void ukr_avx2_direct(long k, const float *a, const float *b, long ldb, float *c, long ldc, int mr,
                                    int nr, float alpha, float beta) {
    ukr_avx2_body(1, k, a, b, ldb, c, ldc, mr, nr, alpha, beta);
}

// MARK: - AVX-512 micro-kernel (14 × 32)

#define AVX512_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"), always_inline)) static inline
#define ZMR 14

/// Opmask for the first `n` of 16 lanes (n clamped to 0…16).
AVX512_INLINE __mmask16 lane_mask16(int n) {
    return n <= 0 ? 0 : n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}

AVX512_INLINE void ukr_avx512_body(int direct, long k, const float *a, const float *b, long ldb, float *c, long ldc,
                                   int mr, int nr, float alpha, float beta) {
    __m512 acc0[ZMR], acc1[ZMR];
#pragma clang loop unroll(full)
    for (int i = 0; i < ZMR; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    __mmask16 m0 = lane_mask16(nr), m1 = lane_mask16(nr - 16);
#ifdef ZPREFC
#pragma clang loop unroll(full)
    for (int i = 0; i < ZMR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), ZPREFC);
        _mm_prefetch((const char *)(c + i * ldc + 16), ZPREFC);
    }
#endif
#ifdef ZUNROLL
#pragma clang loop unroll_count(ZUNROLL)
#endif
    for (long p = 0; p < k; p++) {
        __m512 b0, b1;
        if (direct) {
            b0 = _mm512_maskz_loadu_ps(m0, b);
            b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        } else {
            b0 = _mm512_loadu_ps(b);
            b1 = _mm512_loadu_ps(b + 16);
        }
#pragma clang loop unroll(full)
        for (int i = 0; i < ZMR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
        }
        a += ZMR;
        b += ldb;
    }
    // All loads of C before any store: rows of C that are a multiple of 4 KiB apart would otherwise make every load
    // wait on the previous row's store (4K aliasing), which costs a third of the time at n = 1024 and 2048.
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma clang loop unroll(full)
    for (int i = 0; i < ZMR; i++) {
        acc0[i] = _mm512_mul_ps(va, acc0[i]);
        acc1[i] = _mm512_mul_ps(va, acc1[i]);
    }
    if (beta != 0) {
#pragma clang loop unroll(full)
        for (int i = 0; i < ZMR; i++) {
            if (i < mr) {
                acc0[i] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c + i * ldc), acc0[i]);
                acc1[i] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + i * ldc + 16), acc1[i]);
            }
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < ZMR; i++) {
        if (i < mr) {
            _mm512_mask_storeu_ps(c + i * ldc, m0, acc0[i]);
            _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc1[i]);
        }
    }
}
AVX512_FN static void ukr_avx512_packed(long k, const float *a, const float *b, long ldb, float *c, long ldc, int mr,
                                        int nr, float alpha, float beta) {
    ukr_avx512_body(0, k, a, b, ldb, c, ldc, mr, nr, alpha, beta);
}
AVX512_FN static void ukr_avx512_direct(long k, const float *a, const float *b, long ldb, float *c, long ldc, int mr,
                                        int nr, float alpha, float beta) {
    ukr_avx512_body(1, k, a, b, ldb, c, ldc, mr, nr, alpha, beta);
}
#endif

// MARK: - Paths and their cache blocks

static const sgemm_path path_portable = {PMR, PNR, 128, 256, 2048, ukr_portable_packed, ukr_portable_direct};
#if defined(__x86_64__)
static const sgemm_path path_avx2 = {AMR, 16, 144, 256, 4096, ukr_avx2_packed, ukr_avx2_direct};
#ifndef ZMC
#define ZMC 336
#define ZKC 256
#define ZNC 4096
#endif
static const sgemm_path path_avx512 = {ZMR, 32, ZMC, ZKC, ZNC, ukr_avx512_packed, ukr_avx512_direct};
#endif

static const sgemm_path *current_path(void) {
#if defined(__x86_64__)
    switch (ck_kernel_path()) {
    case CK_PATH_AVX512: return &path_avx512;
    case CK_PATH_AVX2: return &path_avx2;
    default: break;
    }
#endif
    return &path_portable;
}

// MARK: - Packing

/// op(A)[i0 ..< i0+rows, p0 ..< p0+kb] into MR-tall panels: panel q holds rows q·MR… as dst[q·MR·kb + p·MR + i].
static void pack_a(int transA, const float *a, long lda, long i0, long rows, long p0, long kb, int MR, float *dst) {
    for (long ir = 0; ir < rows; ir += MR) {
        int mr = (int)min_l(MR, rows - ir);
        float *panel = dst + ir * kb;
        if (!transA) {
            for (int i = 0; i < mr; i++) {
                const float *src = a + (i0 + ir + i) * lda + p0;
                for (long p = 0; p < kb; p++) panel[p * MR + i] = src[p];
            }
        } else {
            for (long p = 0; p < kb; p++) {
                const float *src = a + (p0 + p) * lda + i0 + ir;
                for (int i = 0; i < mr; i++) panel[p * MR + i] = src[i];
            }
        }
        if (mr < MR)
            for (long p = 0; p < kb; p++)
                for (int i = mr; i < MR; i++) panel[p * MR + i] = 0;
    }
}

/// op(B)[p0 ..< p0+kb, j0 ..< j0+cols] into NR-wide panels: panel q holds columns q·NR… as dst[q·NR·kb + p·NR + j].
static void pack_b(int transB, const float *b, long ldb, long p0, long kb, long j0, long cols, int NR, float *dst) {
    for (long jr = 0; jr < cols; jr += NR) {
        int nr = (int)min_l(NR, cols - jr);
        float *panel = dst + jr * kb;
        if (!transB) {
            for (long p = 0; p < kb; p++) {
                const float *src = b + (p0 + p) * ldb + j0 + jr;
                float *out = panel + p * NR;
                for (int j = 0; j < nr; j++) out[j] = src[j];
                for (int j = nr; j < NR; j++) out[j] = 0;
            }
        } else {
            for (int j = 0; j < nr; j++) {
                const float *src = b + (j0 + jr + j) * ldb + p0;
                for (long p = 0; p < kb; p++) panel[p * NR + j] = src[p];
            }
            if (nr < NR)
                for (long p = 0; p < kb; p++)
                    for (int j = nr; j < NR; j++) panel[p * NR + j] = 0;
        }
    }
}

// MARK: - Driver

static _Thread_local float *scratch = 0;
static _Thread_local size_t scratch_floats = 0;

/// This thread's packing buffer of at least `floats` floats (64-byte aligned), or NULL when allocation fails.
static float *scratch_buffer(size_t floats) {
    if (floats <= scratch_floats) return scratch;
    free(scratch);
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    scratch = aligned_alloc(64, bytes);
    scratch_floats = scratch ? floats : 0;
    return scratch;
}

static void scale_c(long m, long n, float beta, float *c, long ldc) {
    for (long i = 0; i < m; i++) {
        float *row = c + i * ldc;
        if (beta == 0)
            memset(row, 0, (size_t)n * sizeof(float));
        else if (beta != 1)
            for (long j = 0; j < n; j++) row[j] *= beta;
    }
}

int ck_sgemm(int transA, int transB, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, float alpha, const float *a,
             ptrdiff_t lda, const float *b, ptrdiff_t ldb, float beta, float *c, ptrdiff_t ldc) {
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0 || alpha == 0) {
        scale_c(m, n, beta, c, ldc);
        return 0;
    }
    const sgemm_path *P = current_path();
    const int MR = P->mr, NR = P->nr;
    // B in place: rows of B are contiguous and each B element would be used by only a few register tiles.
    const int direct = !transB && m <= 2 * MR;
    const long kc = min_l(P->kc, k), mc = min_l(P->mc, (m + MR - 1) / MR * MR);
    const long nc = min_l(P->nc, (n + NR - 1) / NR * NR);
    float *bufA = scratch_buffer((size_t)(mc * kc + (direct ? 0 : kc * nc)));
    if (!bufA) return -1;
    float *bufB = bufA + mc * kc;
    ukernel_fn kernel = direct ? P->direct : P->packed;
    for (long jc = 0; jc < n; jc += nc) {
        long nb = min_l(nc, n - jc);
        for (long pc = 0; pc < k; pc += kc) {
            long kb = min_l(kc, k - pc);
            float bet = pc == 0 ? beta : 1.0f;
            if (!direct) pack_b(transB, b, ldb, pc, kb, jc, nb, NR, bufB);
            for (long ic = 0; ic < m; ic += mc) {
                long mb = min_l(mc, m - ic);
                pack_a(transA, a, lda, ic, mb, pc, kb, MR, bufA);
                for (long jr = 0; jr < nb; jr += NR) {
                    int nr = (int)min_l(NR, nb - jr);
                    const float *bp = direct ? b + pc * ldb + jc + jr : bufB + jr * kb;
                    long bstride = direct ? ldb : NR;
                    for (long ir = 0; ir < mb; ir += MR) {
                        int mr = (int)min_l(MR, mb - ir);
                        kernel(kb, bufA + ir * kb, bp, bstride, c + (ic + ir) * ldc + jc + jr, ldc, mr, nr, alpha, bet);
                    }
                }
            }
        }
    }
    return 0;
}

int ck_sgemm_block_width(void) { return current_path()->nr; }
int ck_sgemm_block_height(void) { return current_path()->mr; }
