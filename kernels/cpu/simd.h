// kernels/cpu/simd.h - which SIMD code path the CPU kernels run.
// defines: k_simd_level, K_SIMD_*, k_simd, k_simd_cpu, k_simd_set, k_simd_name
//
// The library is built for x86-64-v2 (SSE4.2); the kernels that matter (GEMM, attention
// softmax, SwiGLU, exp, RMSNorm) also exist for AVX2 + FMA and for AVX-512F, compiled per
// function (target attributes) and chosen at run time:
//   - k_simd_cpu(): the best level this CPU runs (cpuid, once);
//   - k_simd(): the level in use: k_simd_cpu(), lowered by $EMOTUNE_SIMD=avx512|avx2|scalar
//     (read once; a level above the CPU's, or another word, is reported on stderr and the
//     CPU's level is used), or set by k_simd_set.
// "scalar" runs the portable C kernels (GCC vector extensions on SSE registers) and sends
// f32 GEMMs to OpenBLAS. The GEMM path can also be chosen on its own: kernels/cpu/gemm.h.
// Paths differ in the last bits of a result (summation order, FMA contraction; tests hold
// each path to the scalar reference); on one machine and path, results are deterministic
// and independent of the thread count.
// Thread safety: k_simd and k_simd_cpu may be called from any thread. k_simd_set is for
// tests and benchmarks, between kernel calls, never while another thread runs kernels.
#ifndef ET_K_SIMD_H
#define ET_K_SIMD_H

typedef enum { K_SIMD_SCALAR = 0, K_SIMD_AVX2 = 1, K_SIMD_AVX512 = 2 } k_simd_level;

k_simd_level k_simd_cpu(void);
k_simd_level k_simd(void);
// Forces a level for the following kernel calls; a level above k_simd_cpu() is clamped to
// it. Returns the level now in use.
k_simd_level k_simd_set(k_simd_level level);
// "scalar", "avx2", "avx512".
const char *k_simd_name(k_simd_level level);

#endif
