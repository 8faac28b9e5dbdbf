// OpenBLAS core switch: when a DYNAMIC_ARCH OpenBLAS has not recognised the CPU and fell back to a generic kernel
// table (OpenBLAS 0.3.21 runs "Prescott", SSE3, on a 2024 Xeon, and "Barcelona" on AMD Zen 5), point it at the best
// table the CPU supports, after checking that table's sgemm numerically.
//
// How a DYNAMIC_ARCH build selects its table (driver/others/dynamic.c): at load time it sets the exported pointer
// `gotoblas` to one of the exported tables `gotoblas_HASWELL`, `gotoblas_SKYLAKEX`, … (from OPENBLAS_CORETYPE when
// set, else from the CPU model) and calls that table's `init` member, which fills in its cache-blocking parameters.
// This file does the same after the fact, through dlsym, without linking against OpenBLAS:
//
//   1. Only when OPENBLAS_CORETYPE is NOT set (a set value is the user's or the environment's decision — on AMD
//      Zen 4/5 it is set on purpose — and is never overridden), TRANSFORMER_OPENBLAS_SWITCH is not "0", and the
//      current core is generic (not Haswell / Zen / SkylakeX / Cooperlake / SapphireRapids).
//   2. Candidates by CPU features: Cooperlake (AVX-512 BF16), SkylakeX (AVX-512), Haswell (AVX2 + FMA). On AMD CPUs
//      the AVX-512 tables are skipped: old OpenBLAS AVX-512 kernels computed wrong results on Zen 4, which is why the
//      environment pins Haswell there, and the self-check below covers sgemm only.
//   3. The table's `init` member is found without the struct definition (its layout changes between versions and
//      build options): it is the one pointer slot that, in every table, points into OpenBLAS's code but not at an
//      exported symbol (each table's init is its own static function; kernels are exported), with a different value
//      per table. If not exactly one slot qualifies, nothing is switched.
//   4. init(), then `gotoblas = table`, then a self-check: sgemm on awkward shapes and all four transposes against a
//      float64 product, relative error ≤ 1e-5 of Σ|a·b|. On failure the previous table is restored and the next
//      candidate tried; if none passes, OpenBLAS stays as it was (the engine's own kernels then take the GEMMs).
//
// Call it once, before any other thread uses OpenBLAS (Tensor does, on first BLAS use). It writes one line to
// `message` describing what it did.
#define _GNU_SOURCE
#include "ckernels.h"
#include <stddef.h>
#include <stdlib.h>  // defines __GLIBC__ where it applies
#if defined(__linux__) && defined(__GLIBC__) && defined(__x86_64__)
#include <dlfcn.h>
#include <link.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
typedef char *(*corename_fn)(void);

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

static int is_generic(const char *core) {
    static const char *tuned[] = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"};
    for (size_t i = 0; i < sizeof tuned / sizeof *tuned; i++)
        if (!strcasecmp(core, tuned[i])) return 0;
    return 1;
}

static int is_amd(void) {
#if defined(__x86_64__)
    unsigned a, b, c, d;
    __asm__ __volatile__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0), "c"(0));
    return b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
#else
    return 0;
#endif
}

/// Size in bytes of the data symbol at `p` (0 when unknown).
static size_t symbol_size(const void *p) {
    Dl_info info;
    const ElfW(Sym) *sym = 0;
    if (!dladdr1(p, &info, (void **)&sym, RTLD_DL_SYMENT) || !sym || info.dli_saddr != p) return 0;
    return (size_t)sym->st_size;
}

/// 1 when `v` points into the object whose base is `base` but not at the start of an exported symbol.
static int is_private_code(uintptr_t v, const void *base) {
    if (v < 4096) return 0;
    Dl_info info;
    if (!dladdr((void *)v, &info) || info.dli_fbase != base) return 0;
    return info.dli_saddr != (void *)v;
}

/// Offset of the `init` member shared by `tables`, or -1 when it cannot be identified unambiguously.
static long find_init_slot(void *const *tables, int count, size_t size, const void *base) {
    long found = -1;
    for (size_t off = 0; off + sizeof(void *) <= size; off += sizeof(void *)) {
        int ok = 1;
        for (int t = 0; t < count && ok; t++) {
            uintptr_t v;
            memcpy(&v, (const char *)tables[t] + off, sizeof v);
            if (!is_private_code(v, base)) ok = 0;
            for (int u = 0; u < t && ok; u++) {
                uintptr_t w;
                memcpy(&w, (const char *)tables[u] + off, sizeof w);
                if (w == v) ok = 0;
            }
        }
        if (ok) {
            if (found >= 0) return -1;  // ambiguous
            found = (long)off;
        }
    }
    return found;
}

/// sgemm through `sgemm` on a few awkward shapes and all transposes against a float64 product.
static double self_check(sgemm_fn sgemm) {
    static const int shapes[][3] = {{37, 29, 53}, {64, 64, 64}, {5, 130, 70}, {130, 17, 300}, {1, 33, 9}, {96, 96, 1}};
    double worst = 0;
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int t = 0; t < 4; t++) {
            int ta = t & 1, tb = (t >> 1) & 1;
            float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(k * n));
            float *c = malloc(sizeof(float) * (size_t)(m * n));
            if (!a || !b || !c) { free(a); free(b); free(c); return INFINITY; }
            for (int i = 0; i < m * k; i++) { state = state * 6364136223846793005ull + 1442695040888963407ull; a[i] = (float)((state >> 40) / 16777216.0 - 0.5); }
            for (int i = 0; i < k * n; i++) { state = state * 6364136223846793005ull + 1442695040888963407ull; b[i] = (float)((state >> 40) / 16777216.0 - 0.5); }
            for (int i = 0; i < m * n; i++) c[i] = NAN;  // beta = 0 must overwrite
            int lda = ta ? m : k, ldb = tb ? k : n;
            sgemm(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS, tb ? CBLAS_TRANS : CBLAS_NO_TRANS, m, n, k, 1.0f,
                  a, lda, b, ldb, 0.0f, c, n);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double sum = 0, mag = 0;
                    for (int p = 0; p < k; p++) {
                        double x = ta ? a[p * lda + i] : a[i * lda + p], y = tb ? b[j * ldb + p] : b[p * ldb + j];
                        sum += x * y;
                        mag += fabs(x * y);
                    }
                    double e = fabs(c[i * n + j] - sum) / (mag + 1e-30);
                    if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
                }
            free(a); free(b); free(c);
        }
    }
    return worst;
}

#define CK_CORE_SWITCH 1
#endif

#ifndef CK_CORE_SWITCH
// Only glibc on x86-64 has the DYNAMIC_ARCH tables this switches between (and dladdr1 to size them).
int ck_openblas_adopt_best_core(char *message, size_t capacity) {
    if (message && capacity) message[0] = 0;
    return 0;
}
#else
int ck_openblas_adopt_best_core(char *message, size_t capacity) {
#define SAY(...) (message && capacity ? snprintf(message, capacity, __VA_ARGS__) : 0)
    if (message && capacity) message[0] = 0;
    if (getenv("OPENBLAS_CORETYPE")) return 0;  // set: the user's (or the environment's) choice, never overridden
    const char *opt = getenv("TRANSFORMER_OPENBLAS_SWITCH");
    if (opt && !strcmp(opt, "0")) return 0;
    void **current = dlsym(RTLD_DEFAULT, "gotoblas");
    corename_fn corename = (corename_fn)dlsym(RTLD_DEFAULT, "openblas_get_corename");
    sgemm_fn sgemm = (sgemm_fn)dlsym(RTLD_DEFAULT, "cblas_sgemm");
    if (!current || !corename || !sgemm || !*current) return 0;  // not a DYNAMIC_ARCH OpenBLAS
    // Hand-run testing only (run the CLI by hand without OPENBLAS_CORETYPE): start from this generic table, as if OpenBLAS had
    // fallen back to it, so the switch can be exercised on a CPU that OpenBLAS recognises.
    const char *simulate = getenv("TRANSFORMER_OPENBLAS_SIMULATE_FALLBACK");
    if (!simulate || !*simulate || !is_generic(simulate)) simulate = 0;
    char before[64];
    snprintf(before, sizeof before, "%s", corename());
    if (!simulate && !is_generic(before)) return 0;

    unsigned f = ck_cpu_features();
    const unsigned avx2 = CK_FEATURE_AVX | CK_FEATURE_AVX2 | CK_FEATURE_FMA;
    const unsigned avx512 = avx2 | CK_FEATURE_AVX512F | CK_FEATURE_AVX512BW | CK_FEATURE_AVX512VL | CK_FEATURE_AVX512DQ;
    const char *names[3];
    int count = 0;
    if ((f & avx512) == avx512 && !is_amd()) {
        if (f & CK_FEATURE_AVX512BF16) names[count++] = "COOPERLAKE";
        names[count++] = "SKYLAKEX";
    }
    if ((f & avx2) == avx2) names[count++] = "HASWELL";
    if (!count) return 0;

    // Every table this build exports that we know of, to find the init slot they all share.
    static const char *all[] = {"PRESCOTT", "NEHALEM", "CORE2", "SANDYBRIDGE", "BARCELONA", "HASWELL", "ZEN",
                                "SKYLAKEX", "COOPERLAKE"};
    void *tables[16];
    int ntables = 0;
    size_t size = 0;
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        char sym[64];
        snprintf(sym, sizeof sym, "gotoblas_%s", all[i]);
        void *t = dlsym(RTLD_DEFAULT, sym);
        if (!t) continue;
        size_t s = symbol_size(t);
        if (!s || (size && s != size)) {
            SAY("OpenBLAS core %s kept: its kernel tables have no consistent size", before);
            return -1;
        }
        size = s;
        tables[ntables++] = t;
    }
    Dl_info info;
    if (ntables < 3 || !dladdr((void *)current, &info)) {
        SAY("OpenBLAS core %s kept: kernel tables not found", before);
        return -1;
    }
    long slot = find_init_slot(tables, ntables, size, info.dli_fbase);
    if (slot < 0) {
        SAY("OpenBLAS core %s kept: the tables' init member could not be identified", before);
        return -1;
    }

    if (simulate) {
        char sym[64];
        snprintf(sym, sizeof sym, "gotoblas_%s", simulate);
        for (char *q = sym + 9; *q; q++) *q = (char)(*q >= 'a' && *q <= 'z' ? *q - 32 : *q);
        void *table = dlsym(RTLD_DEFAULT, sym);
        if (!table) {
            SAY("no table %s to simulate a fallback to", sym);
            return -1;
        }
        void (*init)(void);
        memcpy(&init, (char *)table + slot, sizeof init);
        init();
        *current = table;
        snprintf(before, sizeof before, "%s (simulated)", corename());
    }

    void *previous = *current;
    char tried[160] = "";
    for (int i = 0; i < count; i++) {
        char sym[64];
        snprintf(sym, sizeof sym, "gotoblas_%s", names[i]);
        void *table = dlsym(RTLD_DEFAULT, sym);
        if (!table) continue;
        void (*init)(void);
        memcpy(&init, (char *)table + slot, sizeof init);
        init();
        *current = table;
        double error = self_check(sgemm);
        if (error <= 1e-5) {
            SAY("OpenBLAS fell back to the generic core %s on this CPU; switched it to %s (sgemm self-check: max "
                "relative error %.1e). Set OPENBLAS_CORETYPE to choose a core yourself.", before, corename(), error);
            return 1;
        }
        *current = previous;
        size_t used = strlen(tried);
        snprintf(tried + used, sizeof tried - used, "%s%s (error %.1e)", used ? ", " : "", names[i], error);
    }
    SAY("OpenBLAS fell back to the generic core %s on this CPU; no better table passed the sgemm self-check (%s), "
        "so it is kept and the engine's own GEMM kernels run instead.", before, tried);
    return -1;
#undef SAY
}
#endif
