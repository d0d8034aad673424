// kernels/cpu/gemm_avx2.c - the AVX2 + FMA kernel set of the packed SGEMM (see
// gemm_kernels.h; the driver is in gemm.c).
//
// Register tile MR x NR = 6 x 16: 12 ymm accumulators, two B vectors and one broadcast of
// A (15 of the 16 ymm registers). A's elements are broadcast straight from op(A), as in
// the AVX-512 kernel. Edge tiles (cols < 16) load B and load/store C with vmaskmovps, which
// never touches masked-off addresses; full tiles use plain loads. Both run the same FMA
// sequence per element, so an element's value does not depend on its tile.
#include <immintrin.h>

#include "gemm_kernels.h"

#define K_AVX2 __attribute__((target("avx2,fma")))

enum { MR = 6, NR = 16 };

// Lane mask for the first n (clamped to 0..8) of 8 floats.
K_AVX2 static inline __m256i lanes8(int n) {
    n = n < 0 ? 0 : n > 8 ? 8 : n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// r[i][j] <- r[j][i] for an 8 x 8 block of floats.
__attribute__((target("avx2,fma"), always_inline)) static inline void transpose8(__m256 r[8]) {
    __m256 t[8], s[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
        s[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        r[j] = _mm256_permute2f128_ps(s[j], s[4 + j], 0x20);
        r[4 + j] = _mm256_permute2f128_ps(s[j], s[4 + j], 0x31);
    }
}

K_AVX2 static void pack_b(const k_gemm_args *g, int64_t k0, int64_t kc, int64_t j0, int64_t n,
                          float *out) {
    const int64_t ldb = g->ldb;
    for (int64_t q = 0; q < n; q += NR) {
        int cols = (int)(n - q < NR ? n - q : NR);
        float *dst = out + q * kc;
        if (!g->tb) {  // B[k, j] at B[k * ldb + j]: rows of the panel are contiguous
            const float *src = g->B + k0 * ldb + j0 + q;
            if (cols == NR) {
                for (int64_t k = 0; k < kc; k++, src += ldb, dst += NR) {
                    _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
                    _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(src + 8));
                }
            } else {
                __m256i m0 = lanes8(cols), m1 = lanes8(cols - 8);
                for (int64_t k = 0; k < kc; k++, src += ldb, dst += NR) {
                    _mm256_storeu_ps(dst, _mm256_maskload_ps(src, m0));
                    _mm256_storeu_ps(dst + 8, _mm256_maskload_ps(src + 8, m1));
                }
            }
        } else {  // B[k, j] at B[j * ldb + k]: 8 x 8 blocks transposed in registers
            for (int h = 0; h < 2 && cols > 8 * h; h++) {
                int last = cols - 8 * h < 8 ? cols - 8 * h - 1 : 7;
                const float *src = g->B + (j0 + q + 8 * h) * ldb + k0;
                for (int64_t kk = 0; kk < kc; kk += 8) {
                    int kn = (int)(kc - kk < 8 ? kc - kk : 8);
                    __m256i km = lanes8(kn);
                    __m256 r[8];
#pragma GCC unroll 8
                    for (int c = 0; c < 8; c++)  // columns past `last` repeat it (unused)
                        r[c] = _mm256_maskload_ps(src + (c < last ? c : last) * ldb + kk, km);
                    transpose8(r);
                    for (int k = 0; k < kn; k++)
                        _mm256_storeu_ps(dst + (kk + k) * NR + 8 * h, r[k]);
                }
            }
        }
    }
}

// See gemm_kernels.h; A[i, k] = ar[i][k * csa]. `full`: cols == NR (plain loads/stores).
__attribute__((target("avx2,fma"), always_inline)) static inline void tile_body(
    int64_t kc, const float *const *ar, int64_t csa, const float *restrict b, int64_t bs, float *c,
    int64_t ldc, int rows, int cols, float alpha, float beta, bool first, bool full) {
    const __m256i m0 = lanes8(cols), m1 = lanes8(cols - 8);
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m256 b0, b1;
        if (full) {
            b0 = _mm256_loadu_ps(b);
            b1 = _mm256_loadu_ps(b + 8);
        } else {
            b0 = _mm256_maskload_ps(b, m0);
            b1 = _mm256_maskload_ps(b + 8, m1);
        }
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            __m256 ai = _mm256_broadcast_ss(ar[i] + k * csa);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        b += bs;
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(first ? beta : 1.0f);
    const bool read_c = !first || beta != 0;
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (i >= rows) break;
        float *cr = c + i * ldc;
        __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
        if (full) {
            if (read_c) {
                r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), r0);
                r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), r1);
            }
            _mm256_storeu_ps(cr, r0);
            _mm256_storeu_ps(cr + 8, r1);
        } else {
            if (read_c) {
                r0 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(cr, m0), r0);
                r1 = _mm256_fmadd_ps(vb, _mm256_maskload_ps(cr + 8, m1), r1);
            }
            _mm256_maskstore_ps(cr, m0, r0);
            _mm256_maskstore_ps(cr + 8, m1, r1);
        }
    }
}

K_AVX2 static void tile_rows(int64_t kc, const float *a, int64_t lda, const float *b, int64_t bs,
                             float *c, int64_t ldc, int rows, int cols, float alpha, float beta,
                             bool first) {
    const float *ar[MR];
    for (int i = 0; i < MR; i++) ar[i] = a + (i < rows ? i : 0) * lda;
    if (cols == NR)
        tile_body(kc, ar, 1, b, bs, c, ldc, rows, cols, alpha, beta, first, true);
    else
        tile_body(kc, ar, 1, b, bs, c, ldc, rows, cols, alpha, beta, first, false);
}

K_AVX2 static void tile_cols(int64_t kc, const float *a, int64_t lda, const float *b, int64_t bs,
                             float *c, int64_t ldc, int rows, int cols, float alpha, float beta,
                             bool first) {
    const float *ar[MR];
    for (int i = 0; i < MR; i++) ar[i] = a + (i < rows ? i : 0);
    if (cols == NR)
        tile_body(kc, ar, lda, b, bs, c, ldc, rows, cols, alpha, beta, first, true);
    else
        tile_body(kc, ar, lda, b, bs, c, ldc, rows, cols, alpha, beta, first, false);
}

const k_gemm_kernel k_gemm_avx2_kernel = {MR, NR, pack_b, tile_rows, tile_cols};
