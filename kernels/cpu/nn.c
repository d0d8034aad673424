// kernels/cpu/nn.c - instantiates kernels/cpu/nn_impl.inc for f32 and f64 (see
// ktemplate.h) and holds the f32-only rotary table kernel.
#include "nn.h"

#include <immintrin.h>
#include <omp.h>

#include "ktemplate.h"

static inline int k_nn_thread(void) { return omp_get_thread_num(); }

int64_t k_attention_slots(int64_t units) {
    int64_t n = omp_get_max_threads();
    if (units < n) n = units;
    return n < 1 ? 1 : n;
}

// ---- AVX-512 row kernels (f32; used by nn_impl.inc when k_simd() == K_SIMD_AVX512) --

K_AVX512 static inline __mmask16 k_tail16(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

// x[i] = exp(x[i] - c), i < n.
K_AVX512 static void k_expf_sub_avx512(float *x, int64_t n, float c) {
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = k_tail16(n - i);
        k_v16f v = (k_v16f)_mm512_maskz_loadu_ps(m, x + i);
        _mm512_mask_storeu_ps(x + i, m, (__m512)k_expf16(v - c));
    }
}

// Softmax of row[0, n) in place; *mx = the row's max (NaN ignored), *sum = sum of exps.
// Returns false, leaving the row untouched, when the max is -inf.
K_AVX512 static bool k_softmax_row_avx512(float *row, int64_t n, float *mx, float *sum) {
    __m512 vm = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16)  // max(v, vm) keeps vm where v is NaN
        vm = _mm512_max_ps(_mm512_mask_loadu_ps(vm, k_tail16(n - i), row + i), vm);
    const float m = _mm512_reduce_max_ps(vm);
    if (m == -INFINITY) return false;
    __m512 vs = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = k_tail16(n - i);
        __m512 e = (__m512)k_expf16((k_v16f)_mm512_maskz_loadu_ps(k, row + i) - m);
        _mm512_mask_storeu_ps(row + i, k, e);
        vs = _mm512_mask_add_ps(vs, k, vs, e);
    }
    const float s = _mm512_reduce_add_ps(vs);
    const __m512 inv = _mm512_set1_ps(1 / s);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = k_tail16(n - i);
        _mm512_mask_storeu_ps(row + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + i), inv));
    }
    *mx = m;
    *sum = s;
    return true;
}

// Softmax backward on one row: d[i] = p[i] (d[i] - sum_j p[j] d[j]), i < n.
K_AVX512 static void k_dsoftmax_row_avx512(const float *p, float *d, int64_t n) {
    __m512 vd = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = k_tail16(n - i);
        vd = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, p + i), _mm512_maskz_loadu_ps(k, d + i), vd);
    }
    const __m512 dot = _mm512_set1_ps(_mm512_reduce_add_ps(vd));
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = k_tail16(n - i);
        __m512 pv = _mm512_maskz_loadu_ps(k, p + i), dv = _mm512_maskz_loadu_ps(k, d + i);
        _mm512_mask_storeu_ps(d + i, k, _mm512_mul_ps(pv, _mm512_sub_ps(dv, dot)));
    }
}

#define K_SWIGLU_BLOCK 1024  // elements per OpenMP iteration

// y = silu(g) u; silu(g) = g / (1 + exp(-g)). The OpenMP loop lives outside the
// AVX-512 functions (clang outlines a parallel region without the target attribute).
K_AVX512 static void k_swiglu_fwd_block(const float *g, const float *u, float *y, int64_t i0,
                                        int64_t end) {
    for (int64_t i = i0; i < end; i += 16) {
        __mmask16 k = k_tail16(end - i);
        k_v16f gv = (k_v16f)_mm512_maskz_loadu_ps(k, g + i);
        k_v16f uv = (k_v16f)_mm512_maskz_loadu_ps(k, u + i);
        k_v16f sv = 1.0f / (1.0f + k_expf16(-gv));
        _mm512_mask_storeu_ps(y + i, k, (__m512)(gv * sv * uv));
    }
}

static void k_swiglu_fwd_avx512(const float *g, const float *u, float *y, int64_t n) {
    int64_t nb = (n + K_SWIGLU_BLOCK - 1) / K_SWIGLU_BLOCK;
#pragma omp parallel for if (n > ET_PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        int64_t end = (b + 1) * K_SWIGLU_BLOCK < n ? (b + 1) * K_SWIGLU_BLOCK : n;
        k_swiglu_fwd_block(g, u, y, b * K_SWIGLU_BLOCK, end);
    }
}

// dg = dy u s (1 + g (1 - s)), du = dy g s with s = sigmoid(g); dg or du may be NULL.
K_AVX512 static void k_swiglu_bwd_block(const float *dy, const float *g, const float *u, float *dg,
                                        float *du, int64_t i0, int64_t end) {
    for (int64_t i = i0; i < end; i += 16) {
        __mmask16 k = k_tail16(end - i);
        k_v16f gv = (k_v16f)_mm512_maskz_loadu_ps(k, g + i);
        k_v16f dv = (k_v16f)_mm512_maskz_loadu_ps(k, dy + i);
        k_v16f sv = 1.0f / (1.0f + k_expf16(-gv));
        if (dg) {
            k_v16f uv = (k_v16f)_mm512_maskz_loadu_ps(k, u + i);
            _mm512_mask_storeu_ps(dg + i, k, (__m512)(dv * uv * sv * (1.0f + gv * (1.0f - sv))));
        }
        if (du) _mm512_mask_storeu_ps(du + i, k, (__m512)(dv * gv * sv));
    }
}

static void k_swiglu_bwd_avx512(const float *dy, const float *g, const float *u, float *dg,
                                float *du, int64_t n) {
    int64_t nb = (n + K_SWIGLU_BLOCK - 1) / K_SWIGLU_BLOCK;
#pragma omp parallel for if (n > ET_PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        int64_t end = (b + 1) * K_SWIGLU_BLOCK < n ? (b + 1) * K_SWIGLU_BLOCK : n;
        k_swiglu_bwd_block(dy, g, u, dg, du, b * K_SWIGLU_BLOCK, end);
    }
}

// ---- AVX2 + FMA row kernels (f32; used by nn_impl.inc when k_simd() == K_SIMD_AVX2) ---
// The same contracts as the AVX-512 kernels above, 8 lanes; a row's tail is read with
// vmaskmovps (masked-off lanes load 0 and are never touched in memory).

K_AVX2 static inline __m256i k_tail8(int64_t n) {
    int m = n >= 8 ? 8 : (int)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

K_AVX2 static inline float k_hmax8(__m256 v) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
}

K_AVX2 static inline float k_hsum8(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

// x[i] = exp(x[i] - c), i < n.
K_AVX2 static void k_expf_sub_avx2(float *x, int64_t n, float c) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, (__m256)k_expf8((k_v8f)_mm256_loadu_ps(x + i) - c));
    if (i < n) {
        __m256i k = k_tail8(n - i);
        k_v8f v = (k_v8f)_mm256_maskload_ps(x + i, k);
        _mm256_maskstore_ps(x + i, k, (__m256)k_expf8(v - c));
    }
}

// Softmax of row[0, n) in place; *mx = the row's max (NaN ignored), *sum = sum of exps.
// Returns false, leaving the row untouched, when the max is -inf.
K_AVX2 static bool k_softmax_row_avx2(float *row, int64_t n, float *mx, float *sum) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    __m256 vm = ninf;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)  // max(v, vm) keeps vm where v is NaN
        vm = _mm256_max_ps(_mm256_loadu_ps(row + i), vm);
    const __m256i kt = k_tail8(n - i);
    const __m256 ktf = _mm256_castsi256_ps(kt);
    if (i < n) vm = _mm256_max_ps(_mm256_blendv_ps(ninf, _mm256_maskload_ps(row + i, kt), ktf), vm);
    const float m = k_hmax8(vm);
    if (m == -INFINITY) return false;
    __m256 vs = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = (__m256)k_expf8((k_v8f)_mm256_loadu_ps(row + i) - m);
        _mm256_storeu_ps(row + i, e);
        vs = _mm256_add_ps(vs, e);
    }
    if (i < n) {
        __m256 e = _mm256_and_ps((__m256)k_expf8((k_v8f)_mm256_maskload_ps(row + i, kt) - m), ktf);
        _mm256_maskstore_ps(row + i, kt, e);
        vs = _mm256_add_ps(vs, e);
    }
    const float s = k_hsum8(vs);
    const __m256 inv = _mm256_set1_ps(1 / s);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inv));
    if (i < n)
        _mm256_maskstore_ps(row + i, kt, _mm256_mul_ps(_mm256_maskload_ps(row + i, kt), inv));
    *mx = m;
    *sum = s;
    return true;
}

// Softmax backward on one row: d[i] = p[i] (d[i] - sum_j p[j] d[j]), i < n.
K_AVX2 static void k_dsoftmax_row_avx2(const float *p, float *d, int64_t n) {
    __m256 vd = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        vd = _mm256_fmadd_ps(_mm256_loadu_ps(p + i), _mm256_loadu_ps(d + i), vd);
    const __m256i kt = k_tail8(n - i);
    if (i < n)
        vd = _mm256_fmadd_ps(_mm256_maskload_ps(p + i, kt), _mm256_maskload_ps(d + i, kt), vd);
    const __m256 dot = _mm256_set1_ps(k_hsum8(vd));
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 pv = _mm256_loadu_ps(p + i), dv = _mm256_loadu_ps(d + i);
        _mm256_storeu_ps(d + i, _mm256_mul_ps(pv, _mm256_sub_ps(dv, dot)));
    }
    if (i < n) {
        __m256 pv = _mm256_maskload_ps(p + i, kt), dv = _mm256_maskload_ps(d + i, kt);
        _mm256_maskstore_ps(d + i, kt, _mm256_mul_ps(pv, _mm256_sub_ps(dv, dot)));
    }
}

// y = silu(g) u over [i0, end).
K_AVX2 static void k_swiglu_fwd_block_avx2(const float *g, const float *u, float *y, int64_t i0,
                                           int64_t end) {
    for (int64_t i = i0; i < end; i += 8) {
        __m256i k = k_tail8(end - i);
        bool full = end - i >= 8;
        k_v8f gv = (k_v8f)(full ? _mm256_loadu_ps(g + i) : _mm256_maskload_ps(g + i, k));
        k_v8f uv = (k_v8f)(full ? _mm256_loadu_ps(u + i) : _mm256_maskload_ps(u + i, k));
        k_v8f sv = 1.0f / (1.0f + k_expf8(-gv));
        __m256 yv = (__m256)(gv * sv * uv);
        if (full)
            _mm256_storeu_ps(y + i, yv);
        else
            _mm256_maskstore_ps(y + i, k, yv);
    }
}

static void k_swiglu_fwd_avx2(const float *g, const float *u, float *y, int64_t n) {
    int64_t nb = (n + K_SWIGLU_BLOCK - 1) / K_SWIGLU_BLOCK;
#pragma omp parallel for if (n > ET_PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        int64_t end = (b + 1) * K_SWIGLU_BLOCK < n ? (b + 1) * K_SWIGLU_BLOCK : n;
        k_swiglu_fwd_block_avx2(g, u, y, b * K_SWIGLU_BLOCK, end);
    }
}

// dg = dy u s (1 + g (1 - s)), du = dy g s with s = sigmoid(g); dg or du may be NULL.
K_AVX2 static void k_swiglu_bwd_block_avx2(const float *dy, const float *g, const float *u,
                                           float *dg, float *du, int64_t i0, int64_t end) {
    for (int64_t i = i0; i < end; i += 8) {
        __m256i k = k_tail8(end - i);
        bool full = end - i >= 8;
        k_v8f gv = (k_v8f)(full ? _mm256_loadu_ps(g + i) : _mm256_maskload_ps(g + i, k));
        k_v8f dv = (k_v8f)(full ? _mm256_loadu_ps(dy + i) : _mm256_maskload_ps(dy + i, k));
        k_v8f sv = 1.0f / (1.0f + k_expf8(-gv));
        if (dg) {
            k_v8f uv = (k_v8f)(full ? _mm256_loadu_ps(u + i) : _mm256_maskload_ps(u + i, k));
            __m256 r = (__m256)(dv * uv * sv * (1.0f + gv * (1.0f - sv)));
            if (full)
                _mm256_storeu_ps(dg + i, r);
            else
                _mm256_maskstore_ps(dg + i, k, r);
        }
        if (du) {
            __m256 r = (__m256)(dv * gv * sv);
            if (full)
                _mm256_storeu_ps(du + i, r);
            else
                _mm256_maskstore_ps(du + i, k, r);
        }
    }
}

static void k_swiglu_bwd_avx2(const float *dy, const float *g, const float *u, float *dg, float *du,
                              int64_t n) {
    int64_t nb = (n + K_SWIGLU_BLOCK - 1) / K_SWIGLU_BLOCK;
#pragma omp parallel for if (n > ET_PAR_MIN)
    for (int64_t b = 0; b < nb; b++) {
        int64_t end = (b + 1) * K_SWIGLU_BLOCK < n ? (b + 1) * K_SWIGLU_BLOCK : n;
        k_swiglu_bwd_block_avx2(dy, g, u, dg, du, b * K_SWIGLU_BLOCK, end);
    }
}

// ---- RMSNorm rows (f32) ----------------------------------------------------------------
// Sums in double as the scalar kernels (only the order of the additions differs: 8 or 16
// double lanes, then across lanes); the elementwise parts round exactly as the scalar
// code (x * rs, then * w; no FMA), so y and dx match it up to the rstd each row gets.
// k_add_sumsq_* accumulates exactly as k_sumsq_* does, so the fused add + norm equals the
// norm of the stored sum bit for bit on every path.

K_AVX2 static inline __m256d k_sq_acc_avx2(__m256 v, __m256d a, __m256d *b) {
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    *b = _mm256_fmadd_pd(hi, hi, *b);
    return _mm256_fmadd_pd(lo, lo, a);
}

K_AVX2 static inline double k_hsum4d(__m256d a, __m256d b) {
    __m256d s = _mm256_add_pd(a, b);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

K_AVX2 static double k_sumsq_avx2(const float *x, int64_t n) {
    __m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) a = k_sq_acc_avx2(_mm256_loadu_ps(x + i), a, &b);
    if (i < n) a = k_sq_acc_avx2(_mm256_maskload_ps(x + i, k_tail8(n - i)), a, &b);
    return k_hsum4d(a, b);
}

// s = x + r on n elements; returns sum(s^2) as k_sumsq_avx2(s) would.
K_AVX2 static double k_add_sumsq_avx2(const float *x, const float *r, float *s, int64_t n) {
    __m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_add_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(r + i));
        _mm256_storeu_ps(s + i, v);
        a = k_sq_acc_avx2(v, a, &b);
    }
    if (i < n) {
        __m256i k = k_tail8(n - i);
        __m256 v = _mm256_add_ps(_mm256_maskload_ps(x + i, k), _mm256_maskload_ps(r + i, k));
        _mm256_maskstore_ps(s + i, k, v);
        a = k_sq_acc_avx2(v, a, &b);
    }
    return k_hsum4d(a, b);
}

// y = (x * rs) * w, or x * rs without w.
K_AVX2 static void k_scale_row_avx2(const float *x, const float *w, float rs, float *y, int64_t n) {
    const __m256 vr = _mm256_set1_ps(rs);
    for (int64_t i = 0; i < n; i += 8) {
        __m256i k = k_tail8(n - i);
        __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, k), vr);
        if (w) v = _mm256_mul_ps(v, _mm256_maskload_ps(w + i, k));
        _mm256_maskstore_ps(y + i, k, v);
    }
}

// dx = rs (dn - (x rs) m), dn = dy w (or dy), m = sum_j dn (x rs) / D (sum in double).
K_AVX2 static void k_rms_bwd_row_avx2(const float *dy, const float *x, const float *w, float rs,
                                      float *dx, int64_t D) {
    const __m256 vr = _mm256_set1_ps(rs);
    __m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
    for (int64_t i = 0; i < D; i += 8) {
        __m256i k = k_tail8(D - i);
        __m256 dn = _mm256_maskload_ps(dy + i, k);
        if (w) dn = _mm256_mul_ps(dn, _mm256_maskload_ps(w + i, k));
        __m256 xn = _mm256_mul_ps(_mm256_maskload_ps(x + i, k), vr);
        a = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(dn)),
                            _mm256_cvtps_pd(_mm256_castps256_ps128(xn)), a);
        b = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(dn, 1)),
                            _mm256_cvtps_pd(_mm256_extractf128_ps(xn, 1)), b);
    }
    const __m256 vm = _mm256_set1_ps((float)(k_hsum4d(a, b) / (double)D));
    for (int64_t i = 0; i < D; i += 8) {
        __m256i k = k_tail8(D - i);
        __m256 dn = _mm256_maskload_ps(dy + i, k);
        if (w) dn = _mm256_mul_ps(dn, _mm256_maskload_ps(w + i, k));
        __m256 xm = _mm256_mul_ps(_mm256_mul_ps(_mm256_maskload_ps(x + i, k), vr), vm);
        _mm256_maskstore_ps(dx + i, k, _mm256_mul_ps(vr, _mm256_sub_ps(dn, xm)));
    }
}

K_AVX512 static inline __m512d k_sq_acc_avx512(__m512 v, __m512d a, __m512d *b) {
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    *b = _mm512_fmadd_pd(hi, hi, *b);
    return _mm512_fmadd_pd(lo, lo, a);
}

K_AVX512 static double k_sumsq_avx512(const float *x, int64_t n) {
    __m512d a = _mm512_setzero_pd(), b = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16)
        a = k_sq_acc_avx512(_mm512_maskz_loadu_ps(k_tail16(n - i), x + i), a, &b);
    return _mm512_reduce_add_pd(_mm512_add_pd(a, b));
}

K_AVX512 static double k_add_sumsq_avx512(const float *x, const float *r, float *s, int64_t n) {
    __m512d a = _mm512_setzero_pd(), b = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = k_tail16(n - i);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(k, x + i), _mm512_maskz_loadu_ps(k, r + i));
        _mm512_mask_storeu_ps(s + i, k, v);
        a = k_sq_acc_avx512(v, a, &b);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a, b));
}

K_AVX512 static void k_scale_row_avx512(const float *x, const float *w, float rs, float *y,
                                        int64_t n) {
    const __m512 vr = _mm512_set1_ps(rs);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = k_tail16(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vr);
        if (w) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, w + i));
        _mm512_mask_storeu_ps(y + i, k, v);
    }
}

K_AVX512 static void k_rms_bwd_row_avx512(const float *dy, const float *x, const float *w, float rs,
                                          float *dx, int64_t D) {
    const __m512 vr = _mm512_set1_ps(rs);
    __m512d a = _mm512_setzero_pd(), b = _mm512_setzero_pd();
    for (int64_t i = 0; i < D; i += 16) {
        __mmask16 k = k_tail16(D - i);
        __m512 dn = _mm512_maskz_loadu_ps(k, dy + i);
        if (w) dn = _mm512_mul_ps(dn, _mm512_maskz_loadu_ps(k, w + i));
        __m512 xn = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vr);
        a = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(dn)),
                            _mm512_cvtps_pd(_mm512_castps512_ps256(xn)), a);
        b = _mm512_fmadd_pd(
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(dn), 1))),
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xn), 1))), b);
    }
    const __m512 vm =
        _mm512_set1_ps((float)(_mm512_reduce_add_pd(_mm512_add_pd(a, b)) / (double)D));
    for (int64_t i = 0; i < D; i += 16) {
        __mmask16 k = k_tail16(D - i);
        __m512 dn = _mm512_maskz_loadu_ps(k, dy + i);
        if (w) dn = _mm512_mul_ps(dn, _mm512_maskz_loadu_ps(k, w + i));
        __m512 xm = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vr), vm);
        _mm512_mask_storeu_ps(dx + i, k, _mm512_mul_ps(vr, _mm512_sub_ps(dn, xm)));
    }
}

// The dispatchers nn_impl.inc calls (f32; scalar loops as the f64 kernels).
static double k_sumsq_f32(const float *x, int64_t n) {
    k_simd_level l = k_simd();
    if (l == K_SIMD_AVX512) return k_sumsq_avx512(x, n);
    if (l == K_SIMD_AVX2) return k_sumsq_avx2(x, n);
    double ss = 0;
    for (int64_t j = 0; j < n; j++) ss += (double)x[j] * (double)x[j];
    return ss;
}

static double k_add_sumsq_f32(const float *x, const float *r, float *s, int64_t n) {
    k_simd_level l = k_simd();
    if (l == K_SIMD_AVX512) return k_add_sumsq_avx512(x, r, s, n);
    if (l == K_SIMD_AVX2) return k_add_sumsq_avx2(x, r, s, n);
    double ss = 0;
    for (int64_t j = 0; j < n; j++) {
        float v = x[j] + r[j];
        s[j] = v;
        ss += (double)v * (double)v;
    }
    return ss;
}

// Returns false on the scalar level (the caller runs its own loop).
static bool k_scale_row_f32(const float *x, const float *w, float rs, float *y, int64_t n) {
    k_simd_level l = k_simd();
    if (l == K_SIMD_AVX512) k_scale_row_avx512(x, w, rs, y, n);
    if (l == K_SIMD_AVX2) k_scale_row_avx2(x, w, rs, y, n);
    return l != K_SIMD_SCALAR;
}

static bool k_rms_bwd_row_f32(const float *dy, const float *x, const float *w, float rs, float *dx,
                              int64_t D) {
    k_simd_level l = k_simd();
    if (l == K_SIMD_AVX512) k_rms_bwd_row_avx512(dy, x, w, rs, dx, D);
    if (l == K_SIMD_AVX2) k_rms_bwd_row_avx2(dy, x, w, rs, dx, D);
    return l != K_SIMD_SCALAR;
}

// x[i] = exp(x[i] - c): the SIMD level's exp (see nn.h).
void k_exp_sub_f32(float *x, int64_t n, float c) {
    k_simd_level l = k_simd();
    if (l == K_SIMD_AVX512)
        k_expf_sub_avx512(x, n, c);
    else if (l == K_SIMD_AVX2)
        k_expf_sub_avx2(x, n, c);
    else
        k_expf_sub(x, n, c);
}

#define real float
#define KFN(n) n##_f32
#define REAL_IS_F64 0
#include "nn_impl.inc"
#undef real
#undef KFN
#undef REAL_IS_F64

#define real double
#define KFN(n) n##_f64
#define REAL_IS_F64 1
#include "nn_impl.inc"
#undef real
#undef KFN
#undef REAL_IS_F64

void k_rope_table_f32(const int32_t *pos, const float *inv_freq, float *cos, float *sin, int64_t BT,
                      int64_t half) {
#pragma omp parallel for if (BT * half > 32768)
    for (int64_t bt = 0; bt < BT; bt++) {
        float p = (float)pos[bt];
        for (int64_t i = 0; i < half; i++) {
            float a = p * inv_freq[i];
            cos[bt * half + i] = cosf(a);
            sin[bt * half + i] = sinf(a);
        }
    }
}
