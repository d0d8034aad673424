// kernels/cpu/gemm.c - see gemm.h
//
// f32: a packed GEMM of our own runs every product on CPUs with AVX2 + FMA (kernel set in
// gemm_avx2.c) or AVX-512F (below); OpenBLAS runs it on older CPUs, on the "scalar" SIMD
// level and with EMOTUNE_GEMM=blas. f64 is always OpenBLAS.
// Why our own: OpenBLAS 0.3.21 (Debian 12) picks its AVX2 "Haswell" kernels on AMD Zen 4/5,
// which leaves half of the FMA width unused, and its skinny products (a LoRA rank of 16 on
// one side) run at half the rate of a kernel that reads op(A) in place (BENCHMARKS.md);
// the step of a small LLaMA spends ~2/3 of its time in SGEMM.
//
// The driver: C is cut into column blocks of NC, K into blocks of KC and rows into blocks
// of MC; B's KC x NC block is packed into NR-wide column panels, and an MR x NR register
// tile runs over k, broadcasting A's elements straight from op(A) (packing A measured
// slower here: a panel of A is only reused across N / NR column panels, and the broadcasts
// hit L1 either way). AVX-512: 12 x 32 tiles (24 zmm accumulators), edge tiles stored with
// masks; AVX2: 6 x 16 (gemm_avx2.c). Threads (outside an OpenMP region only) each take a
// contiguous range of whole row panels (or column panels when N is the longer side) and run
// the serial algorithm on it; every C element is computed by the same instruction sequence
// in the same k order whatever the thread count or partition, so results are bit-identical
// from run to run and across thread counts (on one path).
#include "gemm.h"

#include <cblas.h>
#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_kernels.h"
#include "simd.h"

static atomic_uint_fast64_t g_calls;

uint64_t k_gemm_calls(void) { return atomic_load(&g_calls); }
void k_gemm_calls_reset(void) { atomic_store(&g_calls, 0); }

// ---- packed AVX-512 SGEMM ----------------------------------------------------------

enum {
    MR = 12,
    NR = 32,
    KC = K_GEMM_KC,
    MC = K_GEMM_MC,
    NC = K_GEMM_NC,
    DIRECT_B_M = K_GEMM_DIRECT_B_M
};
typedef k_gemm_args gemm_args;

// Per-thread packing buffer for a KC x NC block of B (64-byte aligned),
// allocated on a thread's first GEMM and freed when the thread exits (a pthread key
// destructor): every GEMM would otherwise allocate ~2 MB.
static _Thread_local float *t_buf;
static pthread_key_t g_buf_key;
static pthread_once_t g_buf_once = PTHREAD_ONCE_INIT;

static void buf_key_init(void) {
    if (pthread_key_create(&g_buf_key, free)) abort();
}

static float *pack_buffers(void) {
    if (!t_buf) {
        pthread_once(&g_buf_once, buf_key_init);
        t_buf = aligned_alloc(64, sizeof(float) * (size_t)KC * NC);
        if (!t_buf) abort();
        pthread_setspecific(g_buf_key, t_buf);
    }
    return t_buf;
}

// r[i][j] <- r[j][i] for a 16 x 16 block of floats.
__attribute__((target("avx512f"), always_inline)) static inline void transpose16(__m512 r[16]) {
    __m512 t[16], u[16], v[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            v[8 * i + j] = _mm512_shuffle_f32x4(u[8 * i + j], u[8 * i + 4 + j], 0x88);
            v[8 * i + 4 + j] = _mm512_shuffle_f32x4(u[8 * i + j], u[8 * i + 4 + j], 0xDD);
        }
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(v[j], v[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(v[j], v[8 + j], 0xDD);
    }
}

// Packs k [k0, k0 + kc) x columns [j0, j0 + n) of op(B) into NR-wide panels: panel q
// holds, for each k, NR consecutive values. Columns past n hold anything: the kernel's
// loads mask them off.
__attribute__((target("avx512f"))) static void pack_b(const gemm_args *g, int64_t k0, int64_t kc,
                                                      int64_t j0, int64_t n, float *out) {
    const int64_t ldb = g->ldb;
    for (int64_t q = 0; q < n; q += NR) {
        int cols = (int)(n - q < NR ? n - q : NR);
        __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
        __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
        float *dst = out + q * kc;
        if (!g->tb) {  // B[k, j] at B[k * ldb + j]: rows of the panel are contiguous
            const float *src = g->B + k0 * ldb + j0 + q;
            for (int64_t k = 0; k < kc; k++, src += ldb, dst += NR) {
                _mm512_store_ps(dst, _mm512_maskz_loadu_ps(m0, src));
                if (m1) _mm512_store_ps(dst + 16, _mm512_maskz_loadu_ps(m1, src + 16));
            }
        } else {  // B[k, j] at B[j * ldb + k]: 16 x 16 blocks transposed in registers
            for (int h = 0; h < 2 && cols > 16 * h; h++) {
                int last = cols - 16 * h < 16 ? cols - 16 * h - 1 : 15;
                const float *src = g->B + (j0 + q + 16 * h) * ldb + k0;
                for (int64_t kk = 0; kk < kc; kk += 16) {
                    int kn = (int)(kc - kk < 16 ? kc - kk : 16);
                    __mmask16 km = kn >= 16 ? 0xFFFF : (__mmask16)((1u << kn) - 1);
                    __m512 r[16];
#pragma GCC unroll 16
                    for (int c = 0; c < 16; c++)  // columns past `last` repeat it (masked later)
                        r[c] = _mm512_maskz_loadu_ps(km, src + (c < last ? c : last) * ldb + kk);
                    transpose16(r);
                    for (int k = 0; k < kn; k++)
                        _mm512_store_ps(dst + (kk + k) * NR + 16 * h, r[k]);
                }
            }
        }
    }
}

// C tile (rows x cols valid) = alpha * sum_k A[i, k] B[k, :] + (first ? beta * C : C), with
// A[i, k] = ar[i][k * csa], op(A) read in place (csa = 1, or lda when transposed), and
// B[k, j] = b[k * bs + j]: a packed panel (bs = NR) or B itself (bs = ldb; columns past
// `cols` are never loaded). Rows past `rows` point at a valid row (computed, never stored).
__attribute__((target("avx512f"), always_inline)) static inline void ukernel_body(
    int64_t kc, const float *const *ar, int64_t csa, const float *restrict b, int64_t bs, float *c,
    int64_t ldc, int rows, int cols, float alpha, float beta, bool first) {
    __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    __mmask16 m1 = cols >= 32 ? 0xFFFF : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1);
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(ar[i][k * csa]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        b += bs;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(first ? beta : 1.0f);
    bool read_c = !first || beta != 0;
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        if (i >= rows) break;
        float *cr = c + i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
        if (read_c) {
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), r1);
        }
        _mm512_mask_storeu_ps(cr, m0, r0);
        _mm512_mask_storeu_ps(cr + 16, m1, r1);
    }
}

__attribute__((target("avx512f"))) static void ukernel_rows(int64_t kc, const float *a, int64_t lda,
                                                            const float *b, int64_t bs, float *c,
                                                            int64_t ldc, int rows, int cols,
                                                            float alpha, float beta, bool first) {
    const float *ar[MR];
    for (int i = 0; i < MR; i++) ar[i] = a + (i < rows ? i : 0) * lda;
    ukernel_body(kc, ar, 1, b, bs, c, ldc, rows, cols, alpha, beta, first);
}

__attribute__((target("avx512f"))) static void ukernel_cols(int64_t kc, const float *a, int64_t lda,
                                                            const float *b, int64_t bs, float *c,
                                                            int64_t ldc, int rows, int cols,
                                                            float alpha, float beta, bool first) {
    const float *ar[MR];
    for (int i = 0; i < MR; i++) ar[i] = a + (i < rows ? i : 0);
    ukernel_body(kc, ar, lda, b, bs, c, ldc, rows, cols, alpha, beta, first);
}

static const k_gemm_kernel k_gemm_avx512_kernel = {MR, NR, pack_b, ukernel_rows, ukernel_cols};

// Serial packed GEMM of the sub-matrix rows [i0, i0 + M) x columns [j0, j0 + N) of C.
static void gemm_serial(const k_gemm_kernel *kn, const gemm_args *g, int64_t i0, int64_t M,
                        int64_t j0, int64_t N) {
    float *pb = pack_buffers();
    const int mr = kn->mr, nr = kn->nr;
    // A KC x NR panel of B serves M / MR register tiles: with few rows, packing it costs
    // more than it saves, so a non-transposed B is read in place.
    const bool direct_b = !g->tb && M <= DIRECT_B_M;
    for (int64_t jc = 0; jc < N; jc += NC) {
        int64_t nc = N - jc < NC ? N - jc : NC;
        for (int64_t pc = 0; pc < g->K; pc += KC) {
            int64_t kc = g->K - pc < KC ? g->K - pc : KC;
            bool first = pc == 0;
            if (!direct_b) kn->pack_b(g, pc, kc, j0 + jc, nc, pb);
            for (int64_t ic = 0; ic < M; ic += MC) {
                int64_t mc = M - ic < MC ? M - ic : MC;
                for (int64_t jr = 0; jr < nc; jr += nr) {
                    int cols = (int)(nc - jr < nr ? nc - jr : nr);
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        int rows = (int)(mc - ir < mr ? mc - ir : mr);
                        int64_t i = i0 + ic + ir;
                        float *c = g->C + i * g->ldc + j0 + jc + jr;
                        const float *b =
                            direct_b ? g->B + pc * g->ldb + j0 + jc + jr : pb + jr * kc;
                        int64_t bs = direct_b ? g->ldb : nr;
                        if (!g->ta)
                            kn->tile_rows(kc, g->A + i * g->lda + pc, g->lda, b, bs, c, g->ldc,
                                          rows, cols, g->alpha, g->beta, first);
                        else
                            kn->tile_cols(kc, g->A + pc * g->lda + i, g->lda, b, bs, c, g->ldc,
                                          rows, cols, g->alpha, g->beta, first);
                    }
                }
            }
        }
    }
}

static void gemm_packed(const k_gemm_kernel *kn, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                        float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float beta, float *C, int64_t ldc) {
    if (K == 0) {  // C = beta C (beta 0: zeros, never reading C)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = beta == 0 ? 0 : beta * C[i * ldc + j];
        return;
    }
    gemm_args g = {ta, tb, A, B, lda, ldb, K, alpha, beta, C, ldc};
    const int mr = kn->mr, nr = kn->nr;
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if ((double)M * (double)N * (double)K < 4e6) nt = 1;
    // Split the longer side of C in whole panels.
    bool by_rows = (M + mr - 1) / mr >= (N + nr - 1) / nr;
    int64_t units = by_rows ? (M + mr - 1) / mr : (N + nr - 1) / nr;
    if (nt > units) nt = (int)units;
    if (nt <= 1) {
        gemm_serial(kn, &g, 0, M, 0, N);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t u0 = units * t / n, u1 = units * (t + 1) / n;
        if (by_rows) {
            int64_t r0 = u0 * mr, r1 = u1 * mr < M ? u1 * mr : M;
            if (r1 > r0) gemm_serial(kn, &g, r0, r1 - r0, 0, N);
        } else {
            int64_t c0 = u0 * nr, c1 = u1 * nr < N ? u1 * nr : N;
            if (c1 > c0) gemm_serial(kn, &g, 0, M, c0, c1 - c0);
        }
    }
}

// $EMOTUNE_GEMM: -1 = unset (follow k_simd()), else a k_gemm_path; read once (or set by
// k_gemm_set_path).
static atomic_int g_gemm_mode = -2;
static int gemm_env(void) {
    atomic_int *const mode = &g_gemm_mode;
    int m = atomic_load(mode);
    if (m == -2) {
        const char *e = getenv("EMOTUNE_GEMM");
        m = -1;
        if (e && *e) {
            if (!strcmp(e, "blas"))
                m = K_GEMM_BLAS;
            else if (!strcmp(e, "avx2"))
                m = K_GEMM_AVX2;
            else if (!strcmp(e, "avx512"))
                m = K_GEMM_AVX512;
            int expect = -2;
            if (atomic_compare_exchange_strong(mode, &expect, m) && m < 0)
                fprintf(stderr,
                        "emotune: EMOTUNE_GEMM=%s is not a GEMM path: use blas, avx2 or avx512 "
                        "(running the SIMD level's own)\n",
                        e);
        }
        int expect = -2;
        atomic_compare_exchange_strong(mode, &expect, m);
        m = atomic_load(mode);
    }
    return m;
}

_Static_assert((int)K_GEMM_AVX2 == (int)K_SIMD_AVX2 && (int)K_GEMM_AVX512 == (int)K_SIMD_AVX512,
               "GEMM paths and SIMD levels share their numbers");

k_gemm_path k_gemm_set_path(int path) {
    if (path > (int)k_simd_cpu()) path = (int)k_simd_cpu();
    atomic_store(&g_gemm_mode, path < 0 ? -1 : path);
    return k_gemm_path_now();
}

// AMD family 19h with AVX-512 (Zen 4) runs 512-bit FMAs as two 256-bit halves: the 6 x 16
// AVX2 tiles reach the same FLOP rate with less edge waste, and measured 15-18% faster
// on the LLaMA step (BENCHMARKS.md); its AVX-512 level then keeps AVX-512 elsewhere.
bool k_gemm_zen4(void) {
    static atomic_int zen4 = -1;
    int z = atomic_load(&zen4);
    if (z < 0) {
        unsigned a, b, c, d;
        z = 0;
        if (__builtin_cpu_is("amd") && __get_cpuid(1, &a, &b, &c, &d))
            z = ((a >> 8) & 0xF) + ((a >> 20) & 0xFF) == 0x19;
        atomic_store(&zen4, z);
    }
    return z;
}

k_gemm_path k_gemm_path_now(void) {
    int m = gemm_env();
    k_simd_level l = k_simd();
    if (m == K_GEMM_BLAS) return K_GEMM_BLAS;
    if (m > 0) return (int)k_simd_cpu() < m ? (k_gemm_path)k_simd_cpu() : (k_gemm_path)m;
    if (l == K_SIMD_AVX512) return k_gemm_zen4() ? K_GEMM_AVX2 : K_GEMM_AVX512;
    return l == K_SIMD_AVX2 ? K_GEMM_AVX2 : K_GEMM_BLAS;
}

void k_gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    atomic_fetch_add(&g_calls, 1);
    if (M == 0 || N == 0) return;
    k_gemm_path p = k_gemm_path_now();
    if (p != K_GEMM_BLAS) {
        gemm_packed(p == K_GEMM_AVX512 ? &k_gemm_avx512_kernel : &k_gemm_avx2_kernel, ta, tb, M, N,
                    K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void k_gemm_f64(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double *A,
                int64_t lda, const double *B, int64_t ldb, double beta, double *C, int64_t ldc) {
    atomic_fetch_add(&g_calls, 1);
    if (M == 0 || N == 0) return;
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}
