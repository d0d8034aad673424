// kernels/cpu/gemm.h - every CPU matrix product goes through here.
// defines: k_gemm_f32, k_gemm_f64, k_gemm_calls, k_gemm_calls_reset, k_gemm_path,
//          k_gemm_path_now, k_gemm_set_path, k_gemm_zen4
//
// f32 products run on our own packed kernels at the SIMD level in use (kernels/cpu/simd.h:
// AVX-512F, or AVX2 + FMA; OpenBLAS 0.3.21 picks AVX2 kernels on AMD Zen 4/5), on OpenBLAS
// at the "scalar" level or on CPUs without AVX2. On AMD Zen 4 (family 19h, k_gemm_zen4),
// whose AVX-512 unit is 256 bits wide, the AVX-512 level runs the AVX2 GEMM. $EMOTUNE_GEMM (read
// once) overrides the level for GEMMs only: blas (OpenBLAS), avx2, avx512 (our kernel of that
// width, the CPU's best if it lacks it). f64 always runs on OpenBLAS. Either way a product's result
// depends only on its inputs, the machine and the path, never on the thread count. Row-major C[M,N]
// = alpha * op(A) op(B) + beta * C, op = transpose when ta/tb. A is [M,K] (lda >= K) or, with ta,
// [K,M] (lda >= M); B is [K,N] or, with tb, [N,K]. k_gemm_calls counts calls (all threads), so
// tests can prove a GEMM was skipped.
#ifndef ET_K_GEMM_H
#define ET_K_GEMM_H

#include <stdbool.h>
#include <stdint.h>

void k_gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
void k_gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A,
                int64_t lda, const double *B, int64_t ldb, double beta, double *C, int64_t ldc);
uint64_t k_gemm_calls(void);
void k_gemm_calls_reset(void);

typedef enum { K_GEMM_BLAS = 0, K_GEMM_AVX2 = 1, K_GEMM_AVX512 = 2 } k_gemm_path;
// The path the next f32 GEMM takes ($EMOTUNE_GEMM, else the SIMD level, see above).
k_gemm_path k_gemm_path_now(void);
// Tests and benchmarks: forces the GEMM path (-1: back to the SIMD level's), clamped to
// the CPU; between kernel calls only. Returns the path now in use.
k_gemm_path k_gemm_set_path(int path);
// True on AMD family 19h (Zen 3 / Zen 4; only Zen 4 has AVX-512).
bool k_gemm_zen4(void);

#endif
