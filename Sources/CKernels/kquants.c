// ggml's block formats read in place: dequantisation (bit-exact with ggml's `dequantize_row_*` and gguf-py's
// `gguf.quants.dequantize`) and matrix-vector products, for the K-quants and the 5-bit legacy formats, plus the
// F16 / BF16 / Q8_0 / Q4_0 / Q4_1 rows the prefill GEMM dequantises panel by panel.
//
// Layouts (ggml-common.h; little-endian, `f16` = IEEE binary16; a K-quant super-block holds QK_K = 256 weights):
//
//   Q5_0  { f16 d; u8 qh[4]; u8 qs[16]; }                          22 B / 32: w = d·(q − 16)
//   Q5_1  { f16 d, m; u8 qh[4]; u8 qs[16]; }                       24 B / 32: w = d·q + m
//         q = nibble | bit << 4: element j < 16 is the low nibble of qs[j], j ≥ 16 the high nibble of qs[j − 16];
//         its 5th bit is bit j of the u32 qh.
//   Q2_K  { u8 scales[16]; u8 qs[64]; f16 d, dmin; }               84 B: 16 sub-blocks of 16,
//         w = d·(sc & 15)·q − dmin·(sc >> 4),  q = 2 bits: element 128h + 32s + l is bits 2s of qs[32h + l]
//   Q3_K  { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; }       110 B: 16 sub-blocks of 16, 6-bit signed scales,
//         w = d·(sc − 32)·(q − 4·!hbit), q as in Q2_K, hbit of element 32j + l is bit j of hmask[l]
//   Q4_K  { f16 d, dmin; u8 scales[12]; u8 qs[128]; }              144 B: 8 sub-blocks of 32 with 6-bit scale and
//         min (get_scale_min_k4), w = d·sc·q − dmin·m, element 64c + 32s + l is nibble s of qs[32c + l]
//   Q5_K  { f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }   176 B: Q4_K plus a 5th bit: bit j of qh[l] for
//         element 32j + l
//   Q6_K  { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }         210 B: 16 sub-blocks of 16, w = d·sc·(q − 32),
//         element 128h + e (e < 128): low nibble (e ≥ 64: high nibble) of ql[64h + e mod 64], bits 2·(e / 32) of
//         qh[32h + e mod 32] on top
//
// Bit-exactness: every product and sum is rounded on its own, in ggml's order (this file is compiled without
// floating-point contraction, so `d1 * q - m1` never becomes an FMA), and the f16 conversion is exact.
//
// Kernel paths (cpu_features.c): the block decoders are plain C, compiled three times — portable, AVX2 (+FMA, F16C)
// and AVX-512 (F/BW/VL/DQ) — through per-function target attributes, so the compiler vectorises them for each
// instruction set; every path dequantises bit-identically. The GEMV decodes one block of a row into an L1-resident
// buffer and accumulates its dot product with x in vector registers (8 or 16 lanes, FMA); the quantised bytes are
// read once from memory, which is what a decode step is bound by. The product is accumulated in float, in an order
// that differs between paths (tests compare against a float64 reference with a tolerance).
#include "ckernels.h"
#include <stdint.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define QK_K 256

enum {  // ggml type numbers
    T_F32 = 0, T_F16 = 1, T_Q4_0 = 2, T_Q4_1 = 3, T_Q5_0 = 6, T_Q5_1 = 7, T_Q8_0 = 8,
    T_Q2_K = 10, T_Q3_K = 11, T_Q4_K = 12, T_Q5_K = 13, T_Q6_K = 14, T_BF16 = 30,
};

/// IEEE binary16 → float, exactly (NaNs quieted, as F16C does).
static inline float fp16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
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

#define INLINE static inline __attribute__((always_inline))

// MARK: - Block decoders: one block of `src` → its weights in y (ggml's element order)

INLINE void deq_q4_0(const uint8_t *b, float *y) {
    const float d = fp16(b);
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((b[2 + j] & 0x0F) - 8) * d;
        y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
    }
}

INLINE void deq_q4_1(const uint8_t *b, float *y) {
    const float d = fp16(b), m = fp16(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(b[4 + j] & 0x0F) * d + m;
        y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
    }
}

INLINE void deq_q5_0(const uint8_t *b, float *y) {
    const float d = fp16(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

INLINE void deq_q5_1(const uint8_t *b, float *y) {
    const float d = fp16(b), m = fp16(b + 2);
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0F) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

INLINE void deq_q8_0(const uint8_t *b, float *y) {
    const float d = fp16(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

INLINE void deq_q2_K(const uint8_t *b, float *y) {
    const uint8_t *sc = b, *qs = b + 16;
    const float d = fp16(b + 80), dmin = fp16(b + 82);
    for (int h = 0; h < 2; h++)
        for (int s = 0; s < 4; s++)
            for (int half = 0; half < 2; half++) {
                const int j = 8 * h + 2 * s + half;  // sub-block of 16
                const float dl = d * (float)(sc[j] & 0xF), ml = dmin * (float)(sc[j] >> 4);
                const uint8_t *q = qs + 32 * h + 16 * half;
                float *out = y + 16 * j;
                for (int l = 0; l < 16; l++) out[l] = dl * (float)((q[l] >> (2 * s)) & 3) - ml;
            }
}

INLINE void deq_q3_K(const uint8_t *b, float *y) {
    const uint8_t *hmask = b, *qs = b + 32, *s = b + 96;
    const float d = fp16(b + 108);
    for (int h = 0; h < 2; h++)
        for (int sh = 0; sh < 4; sh++)
            for (int half = 0; half < 2; half++) {
                const int j = 8 * h + 2 * sh + half;  // sub-block of 16
                const int low = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
                const int high = (s[8 + (j & 3)] >> (2 * (j >> 2))) & 3;
                const float dl = d * (float)((int8_t)(low | high << 4) - 32);
                const int bit = 4 * h + sh;  // hmask bit of this 32-element group
                const uint8_t *q = qs + 32 * h + 16 * half, *hm = hmask + 16 * half;
                float *out = y + 16 * j;
                for (int l = 0; l < 16; l++)
                    out[l] = dl * (float)(((q[l] >> (2 * sh)) & 3) - (((hm[l] >> bit) & 1) ? 0 : 4));
            }
}

/// ggml's get_scale_min_k4: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
INLINE void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

INLINE void deq_q4_K(const uint8_t *b, float *y) {
    const float d = fp16(b), dmin = fp16(b + 2);
    const uint8_t *scales = b + 4, *qs = b + 16;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(j, scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        const uint8_t *q = qs + 32 * (j >> 1);
        const int shift = 4 * (j & 1);
        float *out = y + 32 * j;
        for (int l = 0; l < 32; l++) out[l] = d1 * (float)((q[l] >> shift) & 0xF) - m1;
    }
}

INLINE void deq_q5_K(const uint8_t *b, float *y) {
    const float d = fp16(b), dmin = fp16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + 48;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(j, scales, &sc, &m);
        const float d1 = d * (float)sc, m1 = dmin * (float)m;
        const uint8_t *q = qs + 32 * (j >> 1);
        const int shift = 4 * (j & 1);
        float *out = y + 32 * j;
        for (int l = 0; l < 32; l++)
            out[l] = d1 * (float)(((q[l] >> shift) & 0xF) | ((qh[l] >> j) & 1) << 4) - m1;
    }
}

INLINE void deq_q6_K(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = fp16(b + 208);
    for (int h = 0; h < 2; h++)
        for (int g = 0; g < 4; g++)  // 32-element group within the half
            for (int half = 0; half < 2; half++) {
                const int j = 8 * h + 2 * g + half;  // sub-block of 16
                const float dl = d * (float)sc[j];
                const uint8_t *lo = ql + 64 * h + 32 * (g & 1) + 16 * half, *hi = qh + 32 * h + 16 * half;
                const int lshift = 4 * (g >> 1), hshift = 2 * g;
                float *out = y + 16 * j;
                for (int l = 0; l < 16; l++)
                    out[l] = dl * (float)((int8_t)(((lo[l] >> lshift) & 0xF) | ((hi[l] >> hshift) & 3) << 4) - 32);
            }
}

INLINE void deq_f16(const uint8_t *b, float *y) { y[0] = fp16(b); }

INLINE void deq_bf16(const uint8_t *b, float *y) {
    uint16_t h;
    memcpy(&h, b, 2);
    uint32_t bits = (uint32_t)h << 16;
    memcpy(y, &bits, 4);
}

INLINE void deq_f32(const uint8_t *b, float *y) { memcpy(y, b, 4); }

/// Elements and bytes of one block of ggml type `type`; 0 elements for a type this file does not handle.
static void block_shape(int type, int *elements, int *bytes) {
    int e = 0, n = 0;
    switch (type) {
    case T_F32: e = 1; n = 4; break;
    case T_F16: e = 1; n = 2; break;
    case T_BF16: e = 1; n = 2; break;
    case T_Q4_0: e = 32; n = 18; break;
    case T_Q4_1: e = 32; n = 20; break;
    case T_Q5_0: e = 32; n = 22; break;
    case T_Q5_1: e = 32; n = 24; break;
    case T_Q8_0: e = 32; n = 34; break;
    case T_Q2_K: e = QK_K; n = 84; break;
    case T_Q3_K: e = QK_K; n = 110; break;
    case T_Q4_K: e = QK_K; n = 144; break;
    case T_Q5_K: e = QK_K; n = 176; break;
    case T_Q6_K: e = QK_K; n = 210; break;
    }
    *elements = e;
    *bytes = n;
}

int ck_quant_block_elements(int type) {
    int e, n;
    block_shape(type, &e, &n);
    return e;
}

int ck_quant_block_bytes(int type) {
    int e, n;
    block_shape(type, &e, &n);
    return n;
}

// MARK: - Per-path kernels

/// Decodes `blocks` consecutive blocks (the switch is outside the loop so each loop inlines one decoder).
#define DEQUANTIZE_BODY                                                                                              \
    int e, n;                                                                                                        \
    block_shape(type, &e, &n);                                                                                       \
    const uint8_t *s = (const uint8_t *)src;                                                                         \
    switch (type) {                                                                                                  \
    case T_F32: memcpy(dst, s, (size_t)blocks * 4); return 1;                                                        \
    case T_F16: for (ptrdiff_t i = 0; i < blocks; i++) deq_f16(s + 2 * i, dst + i); return 1;                        \
    case T_BF16: for (ptrdiff_t i = 0; i < blocks; i++) deq_bf16(s + 2 * i, dst + i); return 1;                      \
    case T_Q4_0: for (ptrdiff_t i = 0; i < blocks; i++) deq_q4_0(s + n * i, dst + e * i); return 1;                  \
    case T_Q4_1: for (ptrdiff_t i = 0; i < blocks; i++) deq_q4_1(s + n * i, dst + e * i); return 1;                  \
    case T_Q5_0: for (ptrdiff_t i = 0; i < blocks; i++) deq_q5_0(s + n * i, dst + e * i); return 1;                  \
    case T_Q5_1: for (ptrdiff_t i = 0; i < blocks; i++) deq_q5_1(s + n * i, dst + e * i); return 1;                  \
    case T_Q8_0: for (ptrdiff_t i = 0; i < blocks; i++) deq_q8_0(s + n * i, dst + e * i); return 1;                  \
    case T_Q2_K: for (ptrdiff_t i = 0; i < blocks; i++) deq_q2_K(s + n * i, dst + e * i); return 1;                  \
    case T_Q3_K: for (ptrdiff_t i = 0; i < blocks; i++) deq_q3_K(s + n * i, dst + e * i); return 1;                  \
    case T_Q4_K: for (ptrdiff_t i = 0; i < blocks; i++) deq_q4_K(s + n * i, dst + e * i); return 1;                  \
    case T_Q5_K: for (ptrdiff_t i = 0; i < blocks; i++) deq_q5_K(s + n * i, dst + e * i); return 1;                  \
    case T_Q6_K: for (ptrdiff_t i = 0; i < blocks; i++) deq_q6_K(s + n * i, dst + e * i); return 1;                  \
    }                                                                                                                \
    return 0;

static int dequantize_portable(int type, const void *src, float *dst, ptrdiff_t blocks) { DEQUANTIZE_BODY }

static inline float finish(float acc, const float *y, float beta) { return beta == 0 ? acc : beta * *y + acc; }

/// GEMV for block type DEQ (E elements, N bytes per block): per row, each block is decoded into `buf` and dotted
/// with x by DOT (which accumulates into the path's vector accumulator ACC_T).
#define GEMV_BODY(DEQ, E, N, ACC_T, ACC_ZERO, DOT, HSUM)                                                            \
    float buf[E] __attribute__((aligned(64)));                                                                       \
    const ptrdiff_t nb = k / (E);                                                                                    \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                                           \
        const uint8_t *row = (const uint8_t *)w + r * ldw;                                                           \
        ACC_T acc = ACC_ZERO;                                                                                        \
        for (ptrdiff_t b = 0; b < nb; b++) {                                                                         \
            DEQ(row + (N) * b, buf);                                                                                 \
            acc = DOT(buf, x + (E) * b, E, acc);                                                                     \
        }                                                                                                            \
        y[r] = finish(HSUM(acc), y + r, beta);                                                                       \
    }

/// The GEMV of every block type, for one path.
#define GEMV_SWITCH(ACC_T, ACC_ZERO, DOT, HSUM)                                                                      \
    switch (type) {                                                                                                  \
    case T_Q4_0: { GEMV_BODY(deq_q4_0, 32, 18, ACC_T, ACC_ZERO, DOT, HSUM) return 1; }                               \
    case T_Q4_1: { GEMV_BODY(deq_q4_1, 32, 20, ACC_T, ACC_ZERO, DOT, HSUM) return 1; }                               \
    case T_Q5_0: { GEMV_BODY(deq_q5_0, 32, 22, ACC_T, ACC_ZERO, DOT, HSUM) return 1; }                               \
    case T_Q5_1: { GEMV_BODY(deq_q5_1, 32, 24, ACC_T, ACC_ZERO, DOT, HSUM) return 1; }                               \
    case T_Q8_0: { GEMV_BODY(deq_q8_0, 32, 34, ACC_T, ACC_ZERO, DOT, HSUM) return 1; }                               \
    case T_Q2_K: { GEMV_BODY(deq_q2_K, QK_K, 84, ACC_T, ACC_ZERO, DOT, HSUM) return 1; }                             \
    case T_Q3_K: { GEMV_BODY(deq_q3_K, QK_K, 110, ACC_T, ACC_ZERO, DOT, HSUM) return 1; }                            \
    case T_Q4_K: { GEMV_BODY(deq_q4_K, QK_K, 144, ACC_T, ACC_ZERO, DOT, HSUM) return 1; }                            \
    case T_Q5_K: { GEMV_BODY(deq_q5_K, QK_K, 176, ACC_T, ACC_ZERO, DOT, HSUM) return 1; }                            \
    case T_Q6_K: { GEMV_BODY(deq_q6_K, QK_K, 210, ACC_T, ACC_ZERO, DOT, HSUM) return 1; }                            \
    }                                                                                                                \
    return 0;

/// Multi-input GEMV (a batched decode step: one input per sequence) for block type DEQ: per weight row, each block
/// is decoded into `buf` ONCE and dotted with every input, each input's accumulator taking exactly the operations
/// of GEMV_BODY (the same DOT on the same buf and x, blocks in the same order), so output (i, r) is bit-identical
/// to the one-input GEMV of input i. DOTN(buf, E, xs, ldx, acc) may take a full group of NXB inputs at once (it must
/// perform each input's DOT operations in the same order); a partial group uses DOT input by input.
#define NXB 8
#define ROWS_BODY(DEQ, E, N, ACC_T, ACC_ZERO, DOT, DOTN, HSUM)                                                        \
    float buf[E] __attribute__((aligned(64)));                                                                       \
    const ptrdiff_t nb = k / (E);                                                                                    \
    for (ptrdiff_t i0 = 0; i0 < nx; i0 += NXB) {                                                                     \
        const ptrdiff_t ni = nx - i0 < NXB ? nx - i0 : NXB;                                                          \
        const float *xs = x + i0 * ldx;                                                                              \
        for (ptrdiff_t r = 0; r < rows; r++) {                                                                       \
            const uint8_t *row = (const uint8_t *)w + r * ldw;                                                       \
            ACC_T acc[NXB];                                                                                          \
            for (int i = 0; i < NXB; i++) acc[i] = ACC_ZERO;                                                         \
            for (ptrdiff_t b = 0; b < nb; b++) {                                                                     \
                DEQ(row + (N) * b, buf);                                                                             \
                if (ni == NXB)                                                                                       \
                    DOTN(buf, E, xs + (E) * b, ldx, acc);                                                            \
                else                                                                                                 \
                    for (ptrdiff_t i = 0; i < ni; i++) acc[i] = DOT(buf, xs + i * ldx + (E) * b, E, acc[i]);         \
            }                                                                                                        \
            for (ptrdiff_t i = 0; i < ni; i++) {                                                                     \
                float *yi = y + (i0 + i) * ldy + r;                                                                  \
                *yi = finish(HSUM(acc[i]), yi, beta);                                                                \
            }                                                                                                        \
        }                                                                                                            \
    }

/// The multi-input GEMV of every block type with a one-block decoder, for one path.
#define ROWS_SWITCH(ACC_T, ACC_ZERO, DOT, DOTN, HSUM)                                                                \
    switch (type) {                                                                                                  \
    case T_Q4_0: { ROWS_BODY(deq_q4_0, 32, 18, ACC_T, ACC_ZERO, DOT, DOTN, HSUM) return 1; }                         \
    case T_Q4_1: { ROWS_BODY(deq_q4_1, 32, 20, ACC_T, ACC_ZERO, DOT, DOTN, HSUM) return 1; }                         \
    case T_Q5_0: { ROWS_BODY(deq_q5_0, 32, 22, ACC_T, ACC_ZERO, DOT, DOTN, HSUM) return 1; }                         \
    case T_Q5_1: { ROWS_BODY(deq_q5_1, 32, 24, ACC_T, ACC_ZERO, DOT, DOTN, HSUM) return 1; }                         \
    case T_Q8_0: { ROWS_BODY(deq_q8_0, 32, 34, ACC_T, ACC_ZERO, DOT, DOTN, HSUM) return 1; }                         \
    case T_Q2_K: { ROWS_BODY(deq_q2_K, QK_K, 84, ACC_T, ACC_ZERO, DOT, DOTN, HSUM) return 1; }                       \
    case T_Q3_K: { ROWS_BODY(deq_q3_K, QK_K, 110, ACC_T, ACC_ZERO, DOT, DOTN, HSUM) return 1; }                      \
    case T_Q4_K: { ROWS_BODY(deq_q4_K, QK_K, 144, ACC_T, ACC_ZERO, DOT, DOTN, HSUM) return 1; }                      \
    case T_Q5_K: { ROWS_BODY(deq_q5_K, QK_K, 176, ACC_T, ACC_ZERO, DOT, DOTN, HSUM) return 1; }                      \
    case T_Q6_K: { ROWS_BODY(deq_q6_K, QK_K, 210, ACC_T, ACC_ZERO, DOT, DOTN, HSUM) return 1; }                      \
    }                                                                                                                \
    return 0;

INLINE float dot_portable(const float *a, const float *x, int n, float acc) {
    for (int i = 0; i < n; i++) acc += a[i] * x[i];
    return acc;
}
INLINE float hsum_portable(float acc) { return acc; }

static int gemv_portable(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y,
                         ptrdiff_t rows, float beta) {
    GEMV_SWITCH(float, 0.0f, dot_portable, hsum_portable)
}

/// NXB inputs one after another, each exactly as DOT.
#define DOTN_EACH(DOT)                                                                                               \
    for (int i = 0; i < NXB; i++) acc[i] = DOT(a, xs + i * ldx, n, acc[i]);

INLINE void dotn_portable(const float *a, int n, const float *xs, ptrdiff_t ldx, float *acc) { DOTN_EACH(dot_portable) }

static int rows_portable(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx,
                         ptrdiff_t k, float *y, ptrdiff_t ldy, ptrdiff_t rows, float beta) {
    ROWS_SWITCH(float, 0.0f, dot_portable, dotn_portable, hsum_portable)
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

AVX2 static int dequantize_avx2(int type, const void *src, float *dst, ptrdiff_t blocks) {
    if (type == T_F16) {  // F16C converts eight halves exactly per instruction
        const uint8_t *s = (const uint8_t *)src;
        ptrdiff_t i = 0;
        for (; i + 8 <= blocks; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
        for (; i < blocks; i++) dst[i] = fp16(s + 2 * i);
        return 1;
    }
    DEQUANTIZE_BODY
}

AVX512 static int dequantize_avx512(int type, const void *src, float *dst, ptrdiff_t blocks) {
    if (type == T_F16) {
        const uint8_t *s = (const uint8_t *)src;
        ptrdiff_t i = 0;
        for (; i + 16 <= blocks; i += 16) _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + 2 * i))));
        for (; i < blocks; i++) dst[i] = fp16(s + 2 * i);
        return 1;
    }
    DEQUANTIZE_BODY
}

/// Two independent accumulators hide the FMA latency.
typedef struct { __m256 a, b; } acc256;
AVX2 static inline acc256 dot_avx2(const float *a, const float *x, int n, acc256 acc) {
    for (int i = 0; i < n; i += 16) {
        acc.a = _mm256_fmadd_ps(_mm256_load_ps(a + i), _mm256_loadu_ps(x + i), acc.a);
        acc.b = _mm256_fmadd_ps(_mm256_load_ps(a + i + 8), _mm256_loadu_ps(x + i + 8), acc.b);
    }
    return acc;
}
AVX2 static inline float hsum_avx2(acc256 acc) {
    __m256 v = _mm256_add_ps(acc.a, acc.b);
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
AVX2 static int gemv_avx2(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y,
                          ptrdiff_t rows, float beta) {
    const acc256 zero = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    GEMV_SWITCH(acc256, zero, dot_avx2, hsum_avx2)
}
/// Eight inputs' accumulators would fill all sixteen ymm registers: DOT input by input (buf stays in L1).
AVX2 static inline void dotn_avx2(const float *a, int n, const float *xs, ptrdiff_t ldx, acc256 *acc) { DOTN_EACH(dot_avx2) }
AVX2 static int rows_avx2(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx,
                          ptrdiff_t k, float *y, ptrdiff_t ldy, ptrdiff_t rows, float beta) {
    const acc256 zero = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    ROWS_SWITCH(acc256, zero, dot_avx2, dotn_avx2, hsum_avx2)
}

typedef struct { __m512 a, b; } acc512;
AVX512 static inline acc512 dot_avx512(const float *a, const float *x, int n, acc512 acc) {
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        acc.a = _mm512_fmadd_ps(_mm512_load_ps(a + i), _mm512_loadu_ps(x + i), acc.a);
        acc.b = _mm512_fmadd_ps(_mm512_load_ps(a + i + 16), _mm512_loadu_ps(x + i + 16), acc.b);
    }
    return acc;
}
AVX512 static inline float hsum_avx512(acc512 acc) { return _mm512_reduce_add_ps(_mm512_add_ps(acc.a, acc.b)); }
/// dot_avx512 for NXB inputs at once: each 32-weight step of buf is loaded once into two registers and multiplied
/// with every input; input i's accumulators see the FMAs of dot_avx512(a, xs + i·ldx, n, acc[i]) in the same order.
AVX512 static inline void dotn_avx512(const float *a, int n, const float *xs, ptrdiff_t ldx, acc512 *acc) {
    acc512 c0 = acc[0], c1 = acc[1], c2 = acc[2], c3 = acc[3], c4 = acc[4], c5 = acc[5], c6 = acc[6], c7 = acc[7];
    for (int i = 0; i + 32 <= n; i += 32) {
        const __m512 w0 = _mm512_load_ps(a + i), w1 = _mm512_load_ps(a + i + 16);
#define DOTN_STEP(C, J)                                                                                              \
    C.a = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xs + (J) * ldx + i), C.a);                                             \
    C.b = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xs + (J) * ldx + i + 16), C.b);
        DOTN_STEP(c0, 0) DOTN_STEP(c1, 1) DOTN_STEP(c2, 2) DOTN_STEP(c3, 3)
        DOTN_STEP(c4, 4) DOTN_STEP(c5, 5) DOTN_STEP(c6, 6) DOTN_STEP(c7, 7)
#undef DOTN_STEP
    }
    acc[0] = c0, acc[1] = c1, acc[2] = c2, acc[3] = c3, acc[4] = c4, acc[5] = c5, acc[6] = c6, acc[7] = c7;
}
/// The 32-weight formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) without the buffer: per block the 32 quants are widened to
/// two 16-lane float registers (Q5: nibbles with the fifth bit OR-ed in under the block's qh bit mask) and turned
/// into the weights exactly as ggml dequantises them — (q − o)·d, or q·d + m rounded after the product (scales
/// converted by F16C) — which are then multiplied into x by two chained FMAs per block (elements 0–15, then 16–31)
/// into one 16-lane accumulator per row. Weights are decoded once per block whatever the number of inputs: b32_gemv (one input,
/// four rows per pass sharing x) and b32_rows (up to NXB inputs per pass) perform the same operations per input, so
/// their outputs are bit-identical.
INLINE int b32_has_min(int type) { return type == T_Q4_1 || type == T_Q5_1; }
INLINE int b32_bytes(int type) {
    return type == T_Q8_0 ? 34 : type == T_Q4_0 ? 18 : type == T_Q4_1 ? 20 : type == T_Q5_0 ? 22 : 24;
}
/// The block's 32 weights (w0 = elements 0–15, w1 = 16–31) given its scale d and minimum m as broadcast vectors.
AVX512 INLINE void b32_weights(int type, const uint8_t *blk, __m512 d, __m512 m, __m512 *w0, __m512 *w1) {
    const __m512i low4 = _mm512_set1_epi32(0x0F);
    __m512i lo, hi;
    if (type == T_Q8_0) {
        lo = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
        hi = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18)));
    } else {
        const __m512i q = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + b32_bytes(type) - 16)));
        lo = _mm512_and_si512(q, low4), hi = _mm512_srli_epi32(q, 4);
        if (type == T_Q5_0 || type == T_Q5_1) {
            const __m512i bit5 = _mm512_set1_epi32(16);
            uint32_t qh;
            memcpy(&qh, blk + (type == T_Q5_1 ? 4 : 2), 4);
            lo = _mm512_mask_or_epi32(lo, (__mmask16)(qh & 0xFFFF), lo, bit5);
            hi = _mm512_mask_or_epi32(hi, (__mmask16)(qh >> 16), hi, bit5);
        }
        if (type == T_Q4_0 || type == T_Q5_0) {
            const __m512i off = _mm512_set1_epi32(type == T_Q4_0 ? 8 : 16);
            lo = _mm512_sub_epi32(lo, off), hi = _mm512_sub_epi32(hi, off);
        }
    }
    *w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d);
    *w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d);
    if (b32_has_min(type)) *w0 = _mm512_add_ps(*w0, m), *w1 = _mm512_add_ps(*w1, m);
}
/// d and m of one block as broadcast vectors.
AVX512 INLINE void b32_scales(int type, const uint8_t *blk, __m512 *d, __m512 *m) {
    uint16_t d16, m16 = 0;
    memcpy(&d16, blk, 2);
    if (b32_has_min(type)) memcpy(&m16, blk + 2, 2);
    *d = _mm512_set1_ps(_cvtsh_ss(d16)), *m = _mm512_set1_ps(_cvtsh_ss(m16));
}

/// acc + w0·x0 + w1·x1 as two chained FMAs (one accumulator per row and input).
AVX512 INLINE __m512 b32_fma2(__m512 acc, __m512 w0, __m512 w1, __m512 x0, __m512 x1) {
    return _mm512_fmadd_ps(w1, x1, _mm512_fmadd_ps(w0, x0, acc));
}

/// The f16 scales of four rows' blocks converted together (F16C): s[0..3] = d, s[4..7] = m (when the format has one).
AVX512 INLINE void b32_scales4(int type, const uint8_t *b0, const uint8_t *b1, const uint8_t *b2, const uint8_t *b3,
                               float *s) {
    uint32_t v[4];
    memcpy(v, b0, 4), memcpy(v + 1, b1, 4), memcpy(v + 2, b2, 4), memcpy(v + 3, b3, 4);
    __m128i dm = _mm_loadu_si128((const __m128i *)v);
    if (b32_has_min(type))  // halves d0 m0 d1 m1 d2 m2 d3 m3 → d0 d1 d2 d3 m0 m1 m2 m3
        dm = _mm_shuffle_epi8(dm, _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15));
    else
        dm = _mm_shuffle_epi8(dm, _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1));
    _mm256_storeu_ps(s, _mm256_cvtph_ps(dm));
    // Kept in memory: a broadcast from memory is a plain load, the register shuffles otherwise used compete with
    // the unpacking for the vector ports.
    __asm__ __volatile__("" : : "r"(s) : "memory");
}

/// Rows of one input: four at a time (x loaded once per block for all four, their scales converted together, the
/// rows PF_ROWS4 ahead prefetched — the hardware prefetcher alone is late on these short rows), then one by one.
#define PF_ROWS4 8
AVX512 INLINE void b32_gemv(int type, const uint8_t *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y,
                            ptrdiff_t rows, float beta) {
    const ptrdiff_t nb = k / 32, bytes = b32_bytes(type);
    ptrdiff_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint8_t *w0 = w + r * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (ptrdiff_t b = 0; b < nb; b++) {
            const ptrdiff_t o = b * bytes;
            const char *pf = (const char *)w0 + PF_ROWS4 * ldw + 4 * o;  // may lie past w: prefetches never fault
            _mm_prefetch(pf, _MM_HINT_T0);
            _mm_prefetch(pf + 64, _MM_HINT_T0);
            if (4 * bytes > 128) _mm_prefetch(pf + 128, _MM_HINT_T0);
            const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
            float s[8];
            b32_scales4(type, w0 + o, w1 + o, w2 + o, w3 + o, s);
#define B32_ROW(W, I, A)                                                                                             \
    {                                                                                                                \
        __m512 q0, q1;                                                                                               \
        b32_weights(type, W + o, _mm512_set1_ps(s[I]), _mm512_set1_ps(s[4 + I]), &q0, &q1);                          \
        A = b32_fma2(A, q0, q1, x0, x1);                                                                             \
    }
            B32_ROW(w0, 0, a0) B32_ROW(w1, 1, a1) B32_ROW(w2, 2, a2) B32_ROW(w3, 3, a3)
#undef B32_ROW
        }
        y[r] = finish(_mm512_reduce_add_ps(a0), y + r, beta);
        y[r + 1] = finish(_mm512_reduce_add_ps(a1), y + r + 1, beta);
        y[r + 2] = finish(_mm512_reduce_add_ps(a2), y + r + 2, beta);
        y[r + 3] = finish(_mm512_reduce_add_ps(a3), y + r + 3, beta);
    }
    for (; r < rows; r++) {
        const uint8_t *row = w + r * ldw;
        __m512 a = _mm512_setzero_ps();
        for (ptrdiff_t b = 0; b < nb; b++) {
            __m512 d, m, q0, q1;
            b32_scales(type, row + b * bytes, &d, &m);
            b32_weights(type, row + b * bytes, d, m, &q0, &q1);
            a = b32_fma2(a, q0, q1, _mm512_loadu_ps(x + 32 * b), _mm512_loadu_ps(x + 32 * b + 16));
        }
        y[r] = finish(_mm512_reduce_add_ps(a), y + r, beta);
    }
}

/// NI inputs (a compile-time count) of NR rows (1 or 2): each block decoded once, then two FMAs per row and input;
/// two rows share every load of x.
AVX512 INLINE void b32_rows_inputs(int type, int nr, int ni, const uint8_t *row, ptrdiff_t ldw, ptrdiff_t nb,
                                   const float *xs, ptrdiff_t ldx, float *y, ptrdiff_t ldy, float beta) {
    const ptrdiff_t bytes = b32_bytes(type);
    __m512 acc[2][NXB];
    for (int j = 0; j < nr; j++)
        for (int i = 0; i < ni; i++) acc[j][i] = _mm512_setzero_ps();
    for (ptrdiff_t b = 0; b < nb; b++) {
        __m512 q[2][2];
        for (int j = 0; j < nr; j++) {
            __m512 d, m;
            b32_scales(type, row + j * ldw + b * bytes, &d, &m);
            b32_weights(type, row + j * ldw + b * bytes, d, m, &q[j][0], &q[j][1]);
        }
        for (int i = 0; i < ni; i++) {
            const __m512 x0 = _mm512_loadu_ps(xs + i * ldx + 32 * b), x1 = _mm512_loadu_ps(xs + i * ldx + 32 * b + 16);
            for (int j = 0; j < nr; j++) acc[j][i] = b32_fma2(acc[j][i], q[j][0], q[j][1], x0, x1);
        }
    }
    for (int j = 0; j < nr; j++)
        for (int i = 0; i < ni; i++) y[i * ldy + j] = finish(_mm512_reduce_add_ps(acc[j][i]), y + i * ldy + j, beta);
}

/// b32_gemv for nx inputs, NXB at a time, two rows per pass (the rows PF_ROWS4 ahead prefetched).
AVX512 INLINE void b32_rows(int type, const uint8_t *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx,
                            ptrdiff_t k, float *y, ptrdiff_t ldy, ptrdiff_t rows, float beta) {
    const ptrdiff_t nb = k / 32;
    for (ptrdiff_t i0 = 0; i0 < nx; i0 += NXB) {
        const int ni = (int)(nx - i0 < NXB ? nx - i0 : NXB);
        const float *xs = x + i0 * ldx;
        for (ptrdiff_t r = 0; r < rows;) {
            const int nr = rows - r >= 2 ? 2 : 1;
            const uint8_t *row = w + r * ldw;
            const char *pf = (const char *)row + PF_ROWS4 * ldw;
            for (ptrdiff_t o = 0; o < nr * ldw; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0);
            float *yr = y + i0 * ldy + r;
#define B32_NI(NR)                                                                                                   \
    switch (ni) { /* a constant input count: the accumulators stay in registers */                                   \
    case 1: b32_rows_inputs(type, NR, 1, row, ldw, nb, xs, ldx, yr, ldy, beta); break;                               \
    case 2: b32_rows_inputs(type, NR, 2, row, ldw, nb, xs, ldx, yr, ldy, beta); break;                               \
    case 3: b32_rows_inputs(type, NR, 3, row, ldw, nb, xs, ldx, yr, ldy, beta); break;                               \
    case 4: b32_rows_inputs(type, NR, 4, row, ldw, nb, xs, ldx, yr, ldy, beta); break;                               \
    case 5: b32_rows_inputs(type, NR, 5, row, ldw, nb, xs, ldx, yr, ldy, beta); break;                               \
    case 6: b32_rows_inputs(type, NR, 6, row, ldw, nb, xs, ldx, yr, ldy, beta); break;                               \
    case 7: b32_rows_inputs(type, NR, 7, row, ldw, nb, xs, ldx, yr, ldy, beta); break;                               \
    default: b32_rows_inputs(type, NR, NXB, row, ldw, nb, xs, ldx, yr, ldy, beta); break;                            \
    }
            if (nr == 2) { B32_NI(2) } else { B32_NI(1) }
#undef B32_NI
            r += nr;
        }
    }
}

/// One specialised copy of each kernel per 32-weight format (the type is a constant inside).
#define B32_SPECIALISE(NAME, T)                                                                                      \
    AVX512 static void NAME##_gemv(const uint8_t *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y,           \
                                   ptrdiff_t rows, float beta) { b32_gemv(T, w, ldw, x, k, y, rows, beta); }         \
    AVX512 static void NAME##_rows(const uint8_t *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx,     \
                                   ptrdiff_t k, float *y, ptrdiff_t ldy, ptrdiff_t rows, float beta) {               \
        b32_rows(T, w, ldw, x, ldx, nx, k, y, ldy, rows, beta);                                                      \
    }
B32_SPECIALISE(b32_q8_0, T_Q8_0)
B32_SPECIALISE(b32_q4_0, T_Q4_0)
B32_SPECIALISE(b32_q4_1, T_Q4_1)
B32_SPECIALISE(b32_q5_0, T_Q5_0)
B32_SPECIALISE(b32_q5_1, T_Q5_1)

AVX512 static int rows_avx512(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx,
                              ptrdiff_t k, float *y, ptrdiff_t ldy, ptrdiff_t rows, float beta) {
    const uint8_t *b = (const uint8_t *)w;
    switch (type) {
    case T_Q8_0: b32_q8_0_rows(b, ldw, x, ldx, nx, k, y, ldy, rows, beta); return 1;
    case T_Q4_0: b32_q4_0_rows(b, ldw, x, ldx, nx, k, y, ldy, rows, beta); return 1;
    case T_Q4_1: b32_q4_1_rows(b, ldw, x, ldx, nx, k, y, ldy, rows, beta); return 1;
    case T_Q5_0: b32_q5_0_rows(b, ldw, x, ldx, nx, k, y, ldy, rows, beta); return 1;
    case T_Q5_1: b32_q5_1_rows(b, ldw, x, ldx, nx, k, y, ldy, rows, beta); return 1;
    }
    const acc512 zero = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    ROWS_SWITCH(acc512, zero, dot_avx512, dotn_avx512, hsum_avx512)
}

AVX512 static int gemv_avx512(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y,
                              ptrdiff_t rows, float beta) {
    const uint8_t *b = (const uint8_t *)w;
    switch (type) {
    case T_Q8_0: b32_q8_0_gemv(b, ldw, x, k, y, rows, beta); return 1;
    case T_Q4_0: b32_q4_0_gemv(b, ldw, x, k, y, rows, beta); return 1;
    case T_Q4_1: b32_q4_1_gemv(b, ldw, x, k, y, rows, beta); return 1;
    case T_Q5_0: b32_q5_0_gemv(b, ldw, x, k, y, rows, beta); return 1;
    case T_Q5_1: b32_q5_1_gemv(b, ldw, x, k, y, rows, beta); return 1;
    }
    const acc512 zero = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    GEMV_SWITCH(acc512, zero, dot_avx512, hsum_avx512)
}
#endif

// MARK: - Entry points

int ck_quant_dequantize(int type, const void *src, float *dst, ptrdiff_t blocks) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    int path = ck_kernel_path();
    if (path >= CK_PATH_AVX512) return dequantize_avx512(type, src, dst, blocks);
    if (path >= CK_PATH_AVX2) return dequantize_avx2(type, src, dst, blocks);
#endif
    return dequantize_portable(type, src, dst, blocks);
}

int ck_quant_dequantize_rows(int type, const void *src, ptrdiff_t ld, ptrdiff_t rows, ptrdiff_t k, float *dst) {
    int e = ck_quant_block_elements(type);
    if (e == 0 || k % e != 0) return 0;
    for (ptrdiff_t r = 0; r < rows; r++)
        if (!ck_quant_dequantize(type, (const uint8_t *)src + r * ld, dst + r * k, k / e)) return 0;
    return 1;
}

/// F32 / F16 / BF16 rows: converted 256 elements at a time, dotted with eight partial sums.
static int gemv_plain(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows,
                      float beta) {
    if (type == T_F32) {
        ck_gemv((const float *)w, ldw / 4, x, k, y, rows, beta);
        return 1;
    }
    int e, n;
    block_shape(type, &e, &n);
    float buf[256] __attribute__((aligned(64)));
    for (ptrdiff_t r = 0; r < rows; r++) {
        const uint8_t *row = (const uint8_t *)w + r * ldw;
        float acc[8] = {0};
        for (ptrdiff_t c = 0; c < k; c += 256) {
            ptrdiff_t len = k - c < 256 ? k - c : 256;
            ck_quant_dequantize(type, row + c * n, buf, len);
            ptrdiff_t i = 0;
            for (; i + 8 <= len; i += 8)
                for (int j = 0; j < 8; j++) acc[j] += buf[i + j] * x[c + i + j];
            for (; i < len; i++) acc[0] += buf[i] * x[c + i];
        }
        float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        y[r] = finish(sum, y + r, beta);
    }
    return 1;
}

/// gemv_plain for nx inputs (F16 / BF16): each 256-element chunk of a row is converted once and dotted with every
/// input with gemv_plain's operations (eight partial sums per input), so the outputs are bit-identical to it.
static void rows_plain(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k,
                       float *y, ptrdiff_t ldy, ptrdiff_t rows, float beta) {
    int e, n;
    block_shape(type, &e, &n);
    float buf[256] __attribute__((aligned(64)));
    for (ptrdiff_t i0 = 0; i0 < nx; i0 += NXB) {
        const ptrdiff_t ni = nx - i0 < NXB ? nx - i0 : NXB;
        for (ptrdiff_t r = 0; r < rows; r++) {
            const uint8_t *row = (const uint8_t *)w + r * ldw;
            float acc[NXB][8] = {{0}};
            for (ptrdiff_t c = 0; c < k; c += 256) {
                ptrdiff_t len = k - c < 256 ? k - c : 256;
                ck_quant_dequantize(type, row + c * n, buf, len);
                for (ptrdiff_t in = 0; in < ni; in++) {
                    const float *xi = x + (i0 + in) * ldx + c;
                    ptrdiff_t i = 0;
                    for (; i + 8 <= len; i += 8)
                        for (int j = 0; j < 8; j++) acc[in][j] += buf[i + j] * xi[i + j];
                    for (; i < len; i++) acc[in][0] += buf[i] * xi[i];
                }
            }
            for (ptrdiff_t in = 0; in < ni; in++) {
                const float *a = acc[in];
                float sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
                float *yi = y + (i0 + in) * ldy + r;
                *yi = finish(sum, yi, beta);
            }
        }
    }
}

int ck_quant_gemv(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t k, float *y, ptrdiff_t rows,
                  float beta) {
    int e = ck_quant_block_elements(type);
    if (e == 0 || k % e != 0) return 0;
    if (e == 1) return gemv_plain(type, w, ldw, x, k, y, rows, beta);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    int path = ck_kernel_path();
    if (path >= CK_PATH_AVX512) return gemv_avx512(type, w, ldw, x, k, y, rows, beta);
#endif
    // Below AVX-512, Q8_0 / Q4_0 / Q4_1 take their four-row kernels (quant_gemv.c).
    switch (type) {
    case T_Q8_0: ck_gemv_q8_0(w, ldw, x, k, y, rows, beta); return 1;
    case T_Q4_0: ck_gemv_q4_0(w, ldw, x, k, y, rows, beta); return 1;
    case T_Q4_1: ck_gemv_q4_1(w, ldw, x, k, y, rows, beta); return 1;
    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (path >= CK_PATH_AVX2) return gemv_avx2(type, w, ldw, x, k, y, rows, beta);
#endif
    return gemv_portable(type, w, ldw, x, k, y, rows, beta);
}

int ck_quant_gemv_rows(int type, const void *w, ptrdiff_t ldw, const float *x, ptrdiff_t ldx, ptrdiff_t nx, ptrdiff_t k,
                       float *y, ptrdiff_t ldy, ptrdiff_t rows, float beta) {
    int e = ck_quant_block_elements(type);
    if (e == 0 || k % e != 0) return 0;
    if (e == 1) {
        if (type == T_F32) {  // float rows: the one-input product (ck_gemv) per input
            for (ptrdiff_t i = 0; i < nx; i++) gemv_plain(type, w, ldw, x + i * ldx, k, y + i * ldy, rows, beta);
        } else {
            rows_plain(type, w, ldw, x, ldx, nx, k, y, ldy, rows, beta);
        }
        return 1;
    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    int path = ck_kernel_path();
    if (path >= CK_PATH_AVX512) return rows_avx512(type, w, ldw, x, ldx, nx, k, y, ldy, rows, beta);
#endif
    // Below AVX-512, Q8_0 / Q4_0 / Q4_1 take the multi-input forms of their four-row kernels (quant_gemv_rows.c).
    switch (type) {
    case T_Q8_0: ck_gemv_rows_q8_0(w, ldw, x, ldx, nx, k, y, ldy, rows, beta); return 1;
    case T_Q4_0: ck_gemv_rows_q4_0(w, ldw, x, ldx, nx, k, y, ldy, rows, beta); return 1;
    case T_Q4_1: ck_gemv_rows_q4_1(w, ldw, x, ldx, nx, k, y, ldy, rows, beta); return 1;
    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (path >= CK_PATH_AVX2) return rows_avx2(type, w, ldw, x, ldx, nx, k, y, ldy, rows, beta);
#endif
    return rows_portable(type, w, ldw, x, ldx, nx, k, y, ldy, rows, beta);
}
