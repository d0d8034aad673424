// kernels/cpu/ktemplate.h - how CPU kernels exist in f32 and f64 without two copies.
// defines: KGEMM (inside templates)
//
// A kernel group (e.g. "nn") is written once in kernels/cpu/<group>_impl.inc in terms of
// `real` and KFN(name), and compiled twice by kernels/cpu/<group>.c:
//
//     #include "ktemplate.h"
//     #define real float
//     #define KFN(n) n##_f32
//     #define REAL_IS_F64 0
//     #include "nn_impl.inc"
//     #undef real
//     #undef KFN
//     #undef REAL_IS_F64
//     #define real double
//     #define KFN(n) n##_f64
//     #define REAL_IS_F64 1
//     #include "nn_impl.inc"
//
// kernels/cpu/<group>.h declares both variants with one macro list:
//
//     #define K_NN_DECLS(real, S) void k_silu_fwd_##S(const real *x, real *y, int64_t n);
//     K_NN_DECLS(float, f32)
//     K_NN_DECLS(double, f64)
//
// Static helpers inside an .inc must also be named through KFN to avoid clashes.
// Accumulations use `double` in f64 kernels and `float` (or double where cheap) in f32.
// Kernels take raw pointers, element counts and shape integers; they never allocate
// tensors and never touch autograd. OpenMP parallelises the outer loops.
#ifndef ET_K_TEMPLATE_H
#define ET_K_TEMPLATE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gemm.h"

// ET_PAR_FOR(i, n, body): `for (int64_t i = 0; i < n; i++) body`, parallel only when n is
// large. An OpenMP region costs far more than a small loop even with a false if-clause.
#define ET_PAR_MIN 32768
#define ET_PAR_FOR(i, n, body)                                                      \
    do {                                                                            \
        if ((n) > ET_PAR_MIN) {                                                     \
            _Pragma("omp parallel for simd") for (int64_t i = 0; i < (n); i++) body \
        } else {                                                                    \
            for (int64_t i = 0; i < (n); i++) body                                  \
        }                                                                           \
    } while (0)

// Inside an .inc: KGEMM(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
#define KGEMM_f32 k_gemm_f32
#define KGEMM_f64 k_gemm_f64

#endif
