// kernels/cpu/gemm_kernels.h - internal to kernels/cpu/gemm*.c: what the packed SGEMM
// driver (gemm.c) needs from one SIMD width.
// defines: k_gemm_args, k_gemm_kernel, k_gemm_avx2_kernel, K_GEMM_KC/MC/NC/DIRECT_B_M
//
// The driver cuts C into column blocks of NC, K into blocks of KC and rows into blocks of
// MC (a multiple of every kernel's mr); a kernel set supplies:
//   - pack_b: k [k0, k0 + kc) x columns [j0, j0 + n) of op(B) into nr-wide column panels
//     (panel q holds, for each k, nr consecutive values; columns past n hold anything);
//   - tile_rows / tile_cols: the mr x nr register tile C[rows, cols] = alpha * sum_k
//     A[i, k] B[k, :] + (first ? beta * C : C), with A read in place (rows: A row-major,
//     tile_cols: op(A) = A^T), B a packed panel (bs = nr) or B itself (bs = ldb; columns
//     past `cols` never read). rows <= mr, cols <= nr; only C[rows, cols] is written.
// A C element's value must not depend on where its tile sits (edge or not): the same
// instruction sequence over k in the same order, so results are independent of the
// thread partition.
#ifndef ET_K_GEMM_KERNELS_H
#define ET_K_GEMM_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

enum { K_GEMM_KC = 256, K_GEMM_MC = 144, K_GEMM_NC = 2048, K_GEMM_DIRECT_B_M = 72 };

typedef struct {
    bool ta, tb;
    const float *A, *B;
    int64_t lda, ldb, K;
    float alpha, beta;
    float *C;
    int64_t ldc;
} k_gemm_args;

typedef struct {
    int mr, nr;
    void (*pack_b)(const k_gemm_args *g, int64_t k0, int64_t kc, int64_t j0, int64_t n, float *out);
    void (*tile_rows)(int64_t kc, const float *a, int64_t lda, const float *b, int64_t bs, float *c,
                      int64_t ldc, int rows, int cols, float alpha, float beta, bool first);
    void (*tile_cols)(int64_t kc, const float *a, int64_t lda, const float *b, int64_t bs, float *c,
                      int64_t ldc, int rows, int cols, float alpha, float beta, bool first);
} k_gemm_kernel;

// AVX2 + FMA (gemm_avx2.c): 6 x 16 tiles; run only when the CPU has both.
extern const k_gemm_kernel k_gemm_avx2_kernel;

#endif
