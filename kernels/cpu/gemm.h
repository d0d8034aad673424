// kernels/cpu/gemm.h - every CPU matrix product goes through here (OpenBLAS).
// defines: k_gemm_f32, k_gemm_f64, k_gemm_calls, k_gemm_calls_reset
//
// Row-major C[M,N] = alpha * op(A) op(B) + beta * C, op = transpose when ta/tb.
// A is [M,K] (lda >= K) or, with ta, [K,M] (lda >= M); B is [K,N] or, with tb, [N,K].
// k_gemm_calls counts calls (all threads), so tests can prove a GEMM was skipped.
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

#endif
