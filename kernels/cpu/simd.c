// kernels/cpu/simd.c - see simd.h
#include "simd.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

k_simd_level k_simd_cpu(void) {
    static atomic_int have = -1;
    int h = atomic_load(&have);
    if (h < 0) {
        __builtin_cpu_init();
        h = K_SIMD_SCALAR;
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) h = K_SIMD_AVX2;
        if (h == K_SIMD_AVX2 && __builtin_cpu_supports("avx512f")) h = K_SIMD_AVX512;
        atomic_store(&have, h);
    }
    return (k_simd_level)h;
}

const char *k_simd_name(k_simd_level level) {
    return level == K_SIMD_AVX512 ? "avx512" : level == K_SIMD_AVX2 ? "avx2" : "scalar";
}

static atomic_int g_level = -1;

// The level $EMOTUNE_SIMD asks for (the CPU's without it); *bad = 1 when the word is not a
// level, 2 when the CPU lacks the level.
static int level_from_env(const char *e, int *bad) {
    int cpu = (int)k_simd_cpu(), want = -1;
    *bad = 0;
    if (!e || !*e) return cpu;
    for (int l = K_SIMD_SCALAR; l <= K_SIMD_AVX512; l++)
        if (!strcmp(e, k_simd_name((k_simd_level)l))) want = l;
    if (want < 0 || want > cpu) {
        *bad = want < 0 ? 1 : 2;
        return cpu;
    }
    return want;
}

k_simd_level k_simd(void) {
    int l = atomic_load_explicit(&g_level, memory_order_relaxed);
    if (l < 0) {
        const char *e = getenv("EMOTUNE_SIMD");
        int bad, want = level_from_env(e, &bad), expect = -1;
        if (atomic_compare_exchange_strong(&g_level, &expect, want) && bad) {
            const char *run = k_simd_name((k_simd_level)want);
            if (bad == 1)
                fprintf(stderr,
                        "emotune: EMOTUNE_SIMD=%s is not a SIMD path: use avx512, avx2 or scalar "
                        "(running %s, the best this CPU has)\n",
                        e, run);
            else
                fprintf(stderr, "emotune: EMOTUNE_SIMD=%s: this CPU has no %s; running %s\n", e, e,
                        run);
        }
        l = atomic_load(&g_level);
    }
    return (k_simd_level)l;
}

k_simd_level k_simd_set(k_simd_level level) {
    if (level > k_simd_cpu()) level = k_simd_cpu();
    if (level < K_SIMD_SCALAR) level = K_SIMD_SCALAR;
    atomic_store(&g_level, (int)level);
    return level;
}
