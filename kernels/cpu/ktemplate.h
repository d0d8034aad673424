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
#include "simd.h"

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

// k_expf_sub(x, n, c): x[i] = expf(x[i] - c) in place, to about 2 ulp (Cephes polynomial,
// Cody-Waite reduction), four lanes at a time with GCC vector extensions (branch-free, no
// libm call). Results below FLT_MIN flush to 0 (argument < -87.33654); above 88.72283
// gives +inf; NaN stays NaN. The exponent comes from the bits of a round-to-nearest magic
// sum, so no float-to-int conversion happens.
typedef float k_v4f __attribute__((vector_size(16)));
typedef int32_t k_v4i __attribute__((vector_size(16)));
typedef uint32_t k_v4u __attribute__((vector_size(16)));

// One definition of the lane-wise select and exp for every vector width N (4: SSE, 8: AVX2,
// 16: AVX-512), each compiled with ATTR (its target attribute, or nothing): same range
// reduction and polynomial on every width.
#define K_DEFINE_EXPF(ATTR, N)                                                               \
    ATTR static inline k_v##N##f k_sel##N(k_v##N##i m, k_v##N##f a, k_v##N##f b) {           \
        return (k_v##N##f)(((k_v##N##i)a & m) | ((k_v##N##i)b & ~m)); /* m ? a : b */        \
    }                                                                                        \
    ATTR static inline k_v##N##f k_expf##N(k_v##N##f x) {                                    \
        const k_v##N##f z = {0};                                                             \
        const k_v##N##f lo = z - 87.33654f, hi = z + 88.72283f;                              \
        const k_v##N##f magic = z + 12582912.0f; /* 1.5 * 2^23 */                            \
        const k_v##N##f inf = z + INFINITY;                                                  \
        k_v##N##i under = x<lo, over = x> hi;                                                \
        k_v##N##f xc = k_sel##N(under, lo, k_sel##N(over, hi, x));                           \
        k_v##N##f t = xc * 1.44269504088896341f + magic;                                     \
        k_v##N##f n = t - magic;                                                             \
        k_v##N##i ni = (k_v##N##i)t - (k_v##N##i)magic; /* n in [-126, 128] */               \
        k_v##N##i n1 = ni >> 1, n2 = ni - n1;           /* 2^n = 2^n1 * 2^n2, both normal */ \
        k_v##N##f s1 = (k_v##N##f)((k_v##N##u)(n1 + 127) << 23);                             \
        k_v##N##f s2 = (k_v##N##f)((k_v##N##u)(n2 + 127) << 23);                             \
        k_v##N##f r = xc - n * 0.693359375f;                                                 \
        r = r - n * -2.12194440e-4f;                                                         \
        k_v##N##f p = r * 1.9875691500e-4f + 1.3981999507e-3f;                               \
        p = p * r + 8.3334519073e-3f;                                                        \
        p = p * r + 4.1665795894e-2f;                                                        \
        p = p * r + 1.6666665459e-1f;                                                        \
        p = p * r + 5.0000001201e-1f;                                                        \
        p = p * r * r + r + 1.0f;                                                            \
        k_v##N##f y = p * s1 * s2;                                                           \
        return k_sel##N(over, inf, k_sel##N(under, z, y));                                   \
    }

K_DEFINE_EXPF(, 4)

static inline void k_expf_sub(float *x, int64_t n, float c) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        k_v4f v;
        memcpy(&v, x + i, sizeof v);
        v = k_expf4(v - c);
        memcpy(x + i, &v, sizeof v);
    }
    if (i < n) {
        k_v4f v = {0, 0, 0, 0};
        for (int64_t j = i; j < n; j++) v[j - i] = x[j];
        v = k_expf4(v - c);
        for (int64_t j = i; j < n; j++) x[j] = v[j - i];
    }
}

// ---- AVX-512 variants (f32) ------------------------------------------------------
// The library is built for x86-64-v2; functions marked K_AVX512 are compiled for
// AVX-512F and may only run when k_simd() == K_SIMD_AVX512 (kernels/cpu/simd.h). k_expf16 is
// k_expf4 on 16 lanes (same reduction and polynomial; FMA contraction may move the last
// bit). Results on one machine are deterministic either way.
#define K_AVX512 __attribute__((target("avx512f")))
typedef float k_v16f __attribute__((vector_size(64)));
typedef int32_t k_v16i __attribute__((vector_size(64)));
typedef uint32_t k_v16u __attribute__((vector_size(64)));

K_DEFINE_EXPF(K_AVX512, 16)

// ---- AVX2 + FMA variants (f32) ---------------------------------------------------
// K_AVX2 functions may only run when k_simd() >= K_SIMD_AVX2. k_expf8 is k_expf4 on 8
// lanes (same reduction and polynomial; FMA contraction may move the last bit).
#define K_AVX2 __attribute__((target("avx2,fma")))
typedef float k_v8f __attribute__((vector_size(32)));
typedef int32_t k_v8i __attribute__((vector_size(32)));
typedef uint32_t k_v8u __attribute__((vector_size(32)));

K_DEFINE_EXPF(K_AVX2, 8)

#endif
