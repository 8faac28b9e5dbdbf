// CPU features, detected once (CPUID + XGETBV), and the kernel path every dispatched C kernel follows.
//
// A feature counts only when the CPU reports it AND the OS saves the registers it needs (XGETBV: XMM|YMM for AVX,
// plus opmask|ZMM_Hi256|Hi16_ZMM for AVX-512, plus XTILECFG|XTILEDATA for AMX). Detection runs under pthread_once,
// so parallel workers that reach a kernel first never race on a lazily filled cache.
//
// The kernel path (CK_PATH_AVX512 > CK_PATH_AVX2 > CK_PATH_PORTABLE) starts at the best the CPU supports, lowered by
// the environment variable TRANSFORMER_KERNELS=avx512|avx2|portable, and can be pinned by ck_set_kernel_path (tests
// force each path the machine supports). A request above what the CPU has is clamped to the best available.
#include "ckernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static unsigned features = 0;
static int best_path = CK_PATH_PORTABLE;
static _Atomic int current_path = CK_PATH_PORTABLE;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

static void detect(void) {
    unsigned f = 0;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
        unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
        int ymm_os = (xcr0 & 0x6) == 0x6;
        int zmm_os = ymm_os && (xcr0 & 0xe0) == 0xe0;
        int amx_os = (xcr0 & 0x60000) == 0x60000;
        if (avx && ymm_os) f |= CK_FEATURE_AVX;
        if (fma && ymm_os) f |= CK_FEATURE_FMA;
        if (f16c && ymm_os) f |= CK_FEATURE_F16C;
        unsigned max_leaf = __get_cpuid_max(0, 0);
        if (max_leaf >= 7) {
            __cpuid_count(7, 0, a, b, c, d);
            unsigned subleaves = a;
            if (((b >> 5) & 1) && ymm_os) f |= CK_FEATURE_AVX2;
            if (zmm_os) {
                if ((b >> 16) & 1) f |= CK_FEATURE_AVX512F;
                if ((b >> 17) & 1) f |= CK_FEATURE_AVX512DQ;
                if ((b >> 30) & 1) f |= CK_FEATURE_AVX512BW;
                if ((b >> 31) & 1) f |= CK_FEATURE_AVX512VL;
                if ((c >> 11) & 1) f |= CK_FEATURE_AVX512VNNI;
                if ((d >> 23) & 1) f |= CK_FEATURE_AVX512FP16;
            }
            if (amx_os) {
                if ((d >> 24) & 1) f |= CK_FEATURE_AMX_TILE;
                if ((d >> 22) & 1) f |= CK_FEATURE_AMX_BF16;
            }
            if (subleaves >= 1) {
                __cpuid_count(7, 1, a, b, c, d);
                if (((a >> 4) & 1) && ymm_os) f |= CK_FEATURE_AVXVNNI;
                if (((a >> 5) & 1) && zmm_os) f |= CK_FEATURE_AVX512BF16;
            }
        }
    }
#endif
    features = f;
    const unsigned avx2 = CK_FEATURE_AVX | CK_FEATURE_AVX2 | CK_FEATURE_FMA | CK_FEATURE_F16C;
    const unsigned avx512 = avx2 | CK_FEATURE_AVX512F | CK_FEATURE_AVX512BW | CK_FEATURE_AVX512VL | CK_FEATURE_AVX512DQ;
    best_path = (f & avx512) == avx512 ? CK_PATH_AVX512 : (f & avx2) == avx2 ? CK_PATH_AVX2 : CK_PATH_PORTABLE;
    int path = best_path;
    const char *env = getenv("TRANSFORMER_KERNELS");
    if (env && *env) {
        int want = !strcmp(env, "avx512") ? CK_PATH_AVX512 : !strcmp(env, "avx2") ? CK_PATH_AVX2
                 : !strcmp(env, "portable") ? CK_PATH_PORTABLE : -1;
        if (want >= 0 && want < path) path = want;
    }
    atomic_store(&current_path, path);
}

unsigned ck_cpu_features(void) {
    pthread_once(&once, detect);
    return features;
}

int ck_best_kernel_path(void) {
    pthread_once(&once, detect);
    return best_path;
}

int ck_kernel_path(void) {
    pthread_once(&once, detect);
    return atomic_load_explicit(&current_path, memory_order_relaxed);
}

int ck_set_kernel_path(int path) {
    pthread_once(&once, detect);
    if (path > best_path) path = best_path;
    if (path < CK_PATH_PORTABLE) path = CK_PATH_PORTABLE;
    atomic_store(&current_path, path);
    return path;
}

const char *ck_feature_name(int bit) {
    static const char *names[] = {"avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq",
                                  "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16"};
    return bit >= 0 && bit < (int)(sizeof names / sizeof *names) ? names[bit] : 0;
}

const char *ck_kernel_path_name(int path) {
    switch (path) {
    case CK_PATH_AVX512: return "avx512";
    case CK_PATH_AVX2: return "avx2";
    default: return "portable";
    }
}

int ck_kernels_optimized(void) {
#if defined(__OPTIMIZE__)
    return 1;
#else
    return 0;
#endif
}
