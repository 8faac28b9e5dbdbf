// Packed single-precision GEMM: the engine's own sgemm, so its speed does not depend on OpenBLAS recognising the CPU.
//
//     C[m×n] = alpha · op(A)[m×k] · op(B)[k×n] + beta · C        row-major, op = identity or transpose
//
// Structure (GotoBLAS / BLIS five loops, row-major with the vectors along N):
//
//     for jc in N step NC:                          B block  kc × nc   → L3 (shared)
//       for pc in K step KC:   pack op(B)[pc, jc]     into NR-wide panels, each kc × NR, zero-padded at the N edge
//         for ic in M step MC: pack op(A)[ic, pc]     into MR-tall panels, each MR × kc, zero-padded at the M edge
//           for jr in nc step NR:                   one B panel (kc × NR) is reused from L1/L2 …
//             for ir in mc step MR:                 … while the A block (mc × kc) streams from L2
//               micro-kernel: an MR × NR tile of C in registers, k rank-1 updates (broadcast A, FMA with B rows)
//
// Micro-kernels, chosen by ck_kernel_path() on every call (tests pin each path the machine supports):
//   AVX-512  MR × NR = 14 × 32: 28 zmm accumulators, 2 B loads + 14 broadcast-FMA pairs per k step (measured at the
//            FMA peak, ≈ 256 GFLOP/s per Zen 5 core, on in-cache panels)
//   AVX2     MR × NR =  6 × 16: 12 ymm accumulators (the classic Haswell shape); KC 1024, MC 120
//   portable MR × NR =  4 × 16: plain C that the compiler vectorises for the baseline ISA
// A (row-major) and B stored transposed are packed 16 × 16 blocks at a time through an in-register transpose (AVX-512).
// Cache blocks (AVX-512, swept on Zen 5): KC 1024 (K split into equal blocks, so a short last block does not cost a
// pass over C; deep blocks mean few passes over C, and the B panel streams well from L2), MC 168 (A block 672 KiB in
// a 1 MiB L2), NC 1024 (packing buffer ≈ 4.7 MiB per thread).
//
// Edges: packed panels are zero-padded; an edge tile of mr < MR rows runs a copy of the kernel compiled for exactly mr
// rows (AVX-512), and the store masks the columns past nr (AVX-512 opmasks, AVX2 vmaskmov), so C is never touched
// outside m × n. alpha is applied at the store; beta on the first K block only (later K blocks accumulate); beta == 0
// never reads C, so garbage (NaN) in C is overwritten as BLAS requires; alpha == 0 or k == 0 only scales C by beta.
// The C tile is prefetched when the kernel starts, and all its loads are issued before any store: rows a multiple of
// 4 KiB apart (n = 1024, 2048) otherwise make each load wait on the previous row's store (4K aliasing).
//
// Small shapes, no packing (in the spirit of llamafile's tinyBLAS):
//   - op(B) = B and B small (k·n ≤ 64 Ki floats) or m ≤ 2·MR: the kernel reads B's rows in place (masked at the N
//     edge) instead of copying them into panels first;
//   - A·Bᵀ with m ≤ 16 rows (a few tokens through a Linear layer): each C entry is a dot product of two contiguous
//     rows; tiles of 4 rows of A × 6 rows of B accumulate along k in zmm registers and reduce once (AVX-512 path).
//     Packing B there would copy every weight for a handful of uses (measured: faster than packing up to m ≈ 16).
//
// Threads: the function runs on the calling thread; Tensor's GEMM splits C into column panels over the engine's pool
// (Sources/Tensor/MatMul.swift), each worker calling this with its own thread-local packing buffer (freed when the
// thread exits).
#include "ckernels.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

typedef void (*ukernel_fn)(long k, const float *a, const float *b, long ldb, float *c, long ldc, int mr, int nr,
                           float alpha, float beta);

/// One kernel path: register block, cache blocks, and the micro-kernels (B packed with row stride NR, or in place).
typedef void (*pack_fn)(const float *b, long ldb, long p0, long kb, long j0, long cols, float *dst);

typedef void (*pack_a_fn)(const float *a, long lda, long i0, long rows, long p0, long kb, float *dst);

typedef struct {
    int mr, nr;
    long mc, kc, nc;
    ukernel_fn packed, direct;
    pack_fn pack_bt;     // packs a transposed B into NR-wide panels (NULL: the scalar pack_b)
    pack_a_fn pack_an;   // packs a row-major A into MR-tall panels (NULL: the scalar pack_a)
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
    // As in the AVX-512 kernel: every load of C before any store (4K aliasing between rows of C).
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
#pragma clang loop unroll(full)
    for (int i = 0; i < AMR; i++) {
        acc0[i] = _mm256_mul_ps(va, acc0[i]);
        acc1[i] = _mm256_mul_ps(va, acc1[i]);
    }
    if (beta != 0) {
#pragma clang loop unroll(full)
        for (int i = 0; i < AMR; i++) {
            if (i < mr) {
                acc0[i] = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + i * ldc, m0), acc0[i]);
                acc1[i] = _mm256_fmadd_ps(vb, _mm256_maskload_ps(c + i * ldc + 8, m1), acc1[i]);
            }
        }
    }
    if (nr == 16) {
#pragma clang loop unroll(full)
        for (int i = 0; i < AMR; i++) {
            if (i < mr) {
                _mm256_storeu_ps(c + i * ldc, acc0[i]);
                _mm256_storeu_ps(c + i * ldc + 8, acc1[i]);
            }
        }
    } else {
#pragma clang loop unroll(full)
        for (int i = 0; i < AMR; i++) {
            if (i < mr) {
                _mm256_maskstore_ps(c + i * ldc, m0, acc0[i]);
                _mm256_maskstore_ps(c + i * ldc + 8, m1, acc1[i]);
            }
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

/// The tile body for the first R (compile-time) of the 14 rows: an edge tile of mr < 14 rows runs the R = mr copy,
/// so the zero rows of the padded A panel cost nothing.
AVX512_INLINE void ukr_avx512_rows(const int R, int direct, long k, const float *a, const float *b, long ldb, float *c,
                                   long ldc, int nr, float alpha, float beta) {
    __m512 acc0[ZMR], acc1[ZMR];
#pragma clang loop unroll(full)
    for (int i = 0; i < ZMR; i++) acc0[i] = acc1[i] = _mm512_setzero_ps();
    __mmask16 m0 = lane_mask16(nr), m1 = lane_mask16(nr - 16);
    // Fetch the C tile while the k loop runs (its rows are ldc apart and may be far out of cache).
#pragma clang loop unroll(full)
    for (int i = 0; i < ZMR; i++) {
        if (i < R) {
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
        }
    }
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
            if (i < R) {
                __m512 ai = _mm512_set1_ps(a[i]);
                acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
                acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
            }
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
            if (i < R) {
                acc0[i] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, c + i * ldc), acc0[i]);
                acc1[i] = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, c + i * ldc + 16), acc1[i]);
            }
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < ZMR; i++) {
        if (i < R) {
            _mm512_mask_storeu_ps(c + i * ldc, m0, acc0[i]);
            _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc1[i]);
        }
    }
}
AVX512_INLINE void ukr_avx512_body(int direct, long k, const float *a, const float *b, long ldb, float *c, long ldc,
                                   int mr, int nr, float alpha, float beta) {
    switch (mr) {
    case ZMR: ukr_avx512_rows(ZMR, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 13: ukr_avx512_rows(13, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 12: ukr_avx512_rows(12, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 11: ukr_avx512_rows(11, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 10: ukr_avx512_rows(10, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 9: ukr_avx512_rows(9, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 8: ukr_avx512_rows(8, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 7: ukr_avx512_rows(7, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 6: ukr_avx512_rows(6, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 5: ukr_avx512_rows(5, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 4: ukr_avx512_rows(4, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 3: ukr_avx512_rows(3, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 2: ukr_avx512_rows(2, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    case 1: ukr_avx512_rows(1, direct, k, a, b, ldb, c, ldc, nr, alpha, beta); break;
    default: break;
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

/// Transposes 16 rows of 16 floats in registers (r[i] becomes column i).
AVX512_INLINE void transpose16x16(__m512 r[16]) {
    __m512 t[16], u[16];
#pragma clang loop unroll(full)
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // u[4g + c], 128-bit lane L: rows 4g…4g+3 of column 4L + c.
#pragma clang loop unroll(full)
    for (int g = 0; g < 4; g++) {
        __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
        __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
#pragma clang loop unroll(full)
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88), w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
        r[4 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
    }
}

/// pack_b for a transposed B (stored [n, k]) into 32-wide panels, 16 × 16 blocks at a time through registers.
AVX512_FN static void pack_bt_avx512(const float *b, long ldb, long p0, long kb, long j0, long cols, float *dst) {
    for (long jr = 0; jr < cols; jr += 32) {
        float *panel = dst + jr * kb;
        for (int half = 0; half < 2; half++) {
            long j = jr + half * 16;
            int rows = (int)(cols - j < 0 ? 0 : cols - j < 16 ? cols - j : 16);
            for (long p = 0; p < kb; p += 16) {
                int width = (int)min_l(16, kb - p);
                __mmask16 mask = lane_mask16(width);
                __m512 r[16];
#pragma clang loop unroll(full)
                for (int i = 0; i < 16; i++)
                    r[i] = i < rows ? _mm512_maskz_loadu_ps(mask, b + (j0 + j + i) * ldb + p0 + p) : _mm512_setzero_ps();
                transpose16x16(r);
                float *out = panel + p * 32 + half * 16;
                if (width == 16) {
#pragma clang loop unroll(full)
                    for (int q = 0; q < 16; q++) _mm512_storeu_ps(out + q * 32, r[q]);
                } else {
                    for (int q = 0; q < width; q++) _mm512_storeu_ps(out + q * 32, r[q]);
                }
            }
        }
    }
}

/// pack_a for a row-major A (not transposed) into 14-tall panels, 16 columns at a time through the same transpose.
/// Each column of 14 is written with a full 16-float store whose last 2 floats the next column overwrites; the very
/// last store runs 2 floats past the block, which the caller leaves as slack.
AVX512_FN static void pack_a_avx512(const float *a, long lda, long i0, long rows, long p0, long kb, float *dst) {
    for (long ir = 0; ir < rows; ir += ZMR) {
        int mr = (int)min_l(ZMR, rows - ir);
        float *panel = dst + ir * kb;
        for (long p = 0; p < kb; p += 16) {
            int width = (int)min_l(16, kb - p);
            __mmask16 mask = lane_mask16(width);
            __m512 r[16];
#pragma clang loop unroll(full)
            for (int i = 0; i < 16; i++)
                r[i] = i < mr ? _mm512_maskz_loadu_ps(mask, a + (i0 + ir + i) * lda + p0 + p) : _mm512_setzero_ps();
            transpose16x16(r);
            float *out = panel + p * ZMR;
            if (width == 16) {
#pragma clang loop unroll(full)
                for (int q = 0; q < 16; q++) _mm512_storeu_ps(out + q * ZMR, r[q]);
            } else {
                for (int q = 0; q < width; q++) _mm512_storeu_ps(out + q * ZMR, r[q]);
            }
        }
    }
}

// MARK: - AVX-512 unpacked kernel for few rows times a transposed B (tinyBLAS style)

// C = alpha·A·Bᵀ + beta·C with A [m, k] and B [n, k] both contiguous along k: each C entry is a dot product of two
// rows. A tile of DR rows of A × DN rows of B keeps DR·DN zmm accumulators of 16 partial sums along k, read straight
// from the operands (no packing: with a few rows of A each B element is used only a few times, so copying B into
// panels first would cost as much as the product), then reduces each accumulator horizontally once per tile.
#define DN 6

AVX512_INLINE void dot_tile_avx512(const int DR, long k, const float *a, long lda, const float *b, long ldb, int rn,
                                   float *c, long ldc, float alpha, float beta) {
    __m512 acc[4][DN];
#pragma clang loop unroll(full)
    for (int r = 0; r < 4; r++)
#pragma clang loop unroll(full)
        for (int s = 0; s < DN; s++) acc[r][s] = _mm512_setzero_ps();
    const float *bs[DN];
#pragma clang loop unroll(full)
    for (int s = 0; s < DN; s++) bs[s] = b + (s < rn ? s : rn - 1) * ldb;  // past the N edge: repeat the last row
    long p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512 av[4];
#pragma clang loop unroll(full)
        for (int r = 0; r < 4; r++)
            if (r < DR) av[r] = _mm512_loadu_ps(a + r * lda + p);
#pragma clang loop unroll(full)
        for (int s = 0; s < DN; s++) {
            __m512 bv = _mm512_loadu_ps(bs[s] + p);
#pragma clang loop unroll(full)
            for (int r = 0; r < 4; r++)
                if (r < DR) acc[r][s] = _mm512_fmadd_ps(av[r], bv, acc[r][s]);
        }
    }
    if (p < k) {
        __mmask16 tail = lane_mask16((int)(k - p));
        __m512 av[4];
#pragma clang loop unroll(full)
        for (int r = 0; r < 4; r++)
            if (r < DR) av[r] = _mm512_maskz_loadu_ps(tail, a + r * lda + p);
#pragma clang loop unroll(full)
        for (int s = 0; s < DN; s++) {
            __m512 bv = _mm512_maskz_loadu_ps(tail, bs[s] + p);
#pragma clang loop unroll(full)
            for (int r = 0; r < 4; r++)
                if (r < DR) acc[r][s] = _mm512_fmadd_ps(av[r], bv, acc[r][s]);
        }
    }
#pragma clang loop unroll(full)
    for (int r = 0; r < 4; r++) {
        if (r < DR) {
            float *row = c + r * ldc;
#pragma clang loop unroll(full)
            for (int s = 0; s < DN; s++) {
                if (s < rn) {
                    float v = alpha * _mm512_reduce_add_ps(acc[r][s]);
                    row[s] = beta == 0 ? v : v + beta * row[s];
                }
            }
        }
    }
}

AVX512_FN static void dot_rows_avx512(long m, long n, long k, float alpha, const float *a, long lda, const float *b,
                                      long ldb, float beta, float *c, long ldc) {
    for (long i = 0; i < m; i += 4) {
        long dr = min_l(4, m - i);
        const float *ai = a + i * lda;
        float *ci = c + i * ldc;
        for (long j = 0; j < n; j += DN) {
            int rn = (int)min_l(DN, n - j);
            switch (dr) {
            case 4: dot_tile_avx512(4, k, ai, lda, b + j * ldb, ldb, rn, ci + j, ldc, alpha, beta); break;
            case 3: dot_tile_avx512(3, k, ai, lda, b + j * ldb, ldb, rn, ci + j, ldc, alpha, beta); break;
            case 2: dot_tile_avx512(2, k, ai, lda, b + j * ldb, ldb, rn, ci + j, ldc, alpha, beta); break;
            default: dot_tile_avx512(1, k, ai, lda, b + j * ldb, ldb, rn, ci + j, ldc, alpha, beta); break;
            }
        }
    }
}
#endif

// MARK: - Paths and their cache blocks (each #ifndef can be overridden with -D for tuning sweeps)

static const sgemm_path path_portable = {PMR, PNR, 128, 256, 2048, ukr_portable_packed, ukr_portable_direct, 0, 0};
#if defined(__x86_64__)
#ifndef AMC
#define AMC 120
#define AKC 1024
#endif
static const sgemm_path path_avx2 = {AMR, 16, AMC, AKC, 1024, ukr_avx2_packed, ukr_avx2_direct, 0, 0};
#ifndef ZMC
#define ZMC 168
#define ZKC 1024
#define ZNC 1024
#endif
static const sgemm_path path_avx512 = {ZMR, 32, ZMC, ZKC, ZNC, ukr_avx512_packed, ukr_avx512_direct, pack_bt_avx512,
                                        pack_a_avx512};
#endif

#ifndef DIRECT_B_FLOATS
#define DIRECT_B_FLOATS 65536
#endif
#ifndef DOT_MAX_ROWS
#define DOT_MAX_ROWS 16
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
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void make_scratch_key(void) { pthread_key_create(&scratch_key, free); }

/// This thread's packing buffer of at least `floats` floats (64-byte aligned), or NULL when allocation fails. The
/// buffer is registered with a thread-specific key whose destructor frees it when the thread exits.
static float *scratch_buffer(size_t floats) {
    if (floats <= scratch_floats) return scratch;
    pthread_once(&scratch_once, make_scratch_key);
    free(scratch);
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    scratch = aligned_alloc(64, bytes);
    scratch_floats = scratch ? floats : 0;
    pthread_setspecific(scratch_key, scratch);
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
#if defined(__x86_64__)
    if (P == &path_avx512 && transB && !transA && m <= DOT_MAX_ROWS) {
        dot_rows_avx512(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return 0;
    }
#endif
    // B in place: rows of B are contiguous and each B element would be used by only a few register tiles.
    const int direct = !transB && (m <= 2 * MR || k * n <= DIRECT_B_FLOATS);
    // Equal K blocks (k = 1100 with a 1024 cap runs as 2 × 550, not 1024 + 76: a short block costs a full C pass).
    const long kblocks = (k + P->kc - 1) / P->kc, kc = (k + kblocks - 1) / kblocks;
    const long mc = min_l(P->mc, (m + MR - 1) / MR * MR);
    const long nc = min_l(P->nc, (n + NR - 1) / NR * NR);
    const long slack = 16;  // vector packing may store up to 16 floats past the A block
    float *bufA = scratch_buffer((size_t)(mc * kc + slack + (direct ? 0 : kc * nc)));
    if (!bufA) return -1;
    float *bufB = bufA + mc * kc + slack;
    ukernel_fn kernel = direct ? P->direct : P->packed;
    for (long jc = 0; jc < n; jc += nc) {
        long nb = min_l(nc, n - jc);
        for (long pc = 0; pc < k; pc += kc) {
            long kb = min_l(kc, k - pc);
            float bet = pc == 0 ? beta : 1.0f;
            if (!direct) {
                if (transB && P->pack_bt)
                    P->pack_bt(b, ldb, pc, kb, jc, nb, bufB);
                else
                    pack_b(transB, b, ldb, pc, kb, jc, nb, NR, bufB);
            }
            for (long ic = 0; ic < m; ic += mc) {
                long mb = min_l(mc, m - ic);
                if (!transA && P->pack_an)
                    P->pack_an(a, lda, ic, mb, pc, kb, bufA);
                else
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
