// tests/test_simd_paths.c - every SIMD path of the CPU kernels that this CPU runs
// (kernels/cpu/simd.h: scalar, avx2, avx512), each held to a reference: the f32 GEMM to a
// double-precision loop over odd shapes (1 row, 1 column, tails of every tile width, K
// across several KC blocks, N across an NC block, padded leading dimensions, transposes,
// alpha / beta, K = 0), and bit-identical across thread counts; attention (softmax and its
// backward), SwiGLU, exp, RMSNorm and cross-entropy in f32 to their f64 kernels; the
// EMOTUNE_SIMD / EMOTUNE_GEMM words and their messages (the test runs itself with them).
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../kernels/cpu/gemm.h"
#include "../kernels/cpu/nn.h"
#include "../kernels/cpu/simd.h"
#include "test_util.h"

static k_simd_level g_levels[3];
static int g_nlevels;
static char g_self[4096];  // this executable (readlink /proc/self/exe)

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float urand(void) {  // uniform in [-1, 1)
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((double)(g_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static void fill(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++) x[i] = scale * urand();
}
static double *widen(const float *x, int64_t n) {
    double *d = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static k_gemm_path expected_gemm(k_simd_level l) {
    if (l == K_SIMD_AVX512) return k_gemm_zen4() ? K_GEMM_AVX2 : K_GEMM_AVX512;
    return l == K_SIMD_AVX2 ? K_GEMM_AVX2 : K_GEMM_BLAS;
}

// ---- GEMM ---------------------------------------------------------------------------

typedef struct {
    int64_t M, N, K;
} shape;

// One product on the current path against the double loop; C's padding columns must
// keep their sentinel. Returns false (after reporting) on a mismatch.
static bool gemm_case(bool ta, bool tb, shape s, float alpha, float beta, const char *path) {
    const int64_t M = s.M, N = s.N, K = s.K;
    const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 7;
    const int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb, nc = M * ldc;
    float *A = malloc(sizeof(float) * (size_t)(na ? na : 1));
    float *B = malloc(sizeof(float) * (size_t)(nb ? nb : 1));
    float *C = malloc(sizeof(float) * (size_t)nc), *C0 = malloc(sizeof(float) * (size_t)nc);
    fill(A, na, 1), fill(B, nb, 1), fill(C0, nc, 1);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = N; j < ldc; j++) C0[i * ldc + j] = 12345.0f;  // sentinel
    memcpy(C, C0, sizeof(float) * (size_t)nc);
    k_gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    bool ok = true;
    for (int64_t i = 0; i < M && ok; i++) {
        for (int64_t j = 0; j < ldc && ok; j++) {
            double got = C[i * ldc + j];
            if (j >= N) {
                ok = got == 12345.0;
                CHECK(ok, "%s: ta %d tb %d M %lld N %lld K %lld: C[%lld, %lld] padding written",
                      path, ta, tb, (long long)M, (long long)N, (long long)K, (long long)i,
                      (long long)j);
                continue;
            }
            double ref = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                double a = ta ? A[k * lda + i] : A[i * lda + k];
                double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                ref += a * b, mag += fabs(a * b);
            }
            double c0 = C0[i * ldc + j];
            ref = alpha * ref + (beta == 0 ? 0 : beta * c0);
            double tol =
                2.0 * (double)(K + 2) * FLT_EPSILON * (fabs(alpha) * mag + fabs(beta * c0));
            ok = fabs(got - ref) <= tol + 1e-30;
            CHECK(ok,
                  "%s: ta %d tb %d M %lld N %lld K %lld alpha %g beta %g: C[%lld, %lld] = %.9g, "
                  "reference %.9g (tolerance %.3g)",
                  path, ta, tb, (long long)M, (long long)N, (long long)K, alpha, beta, (long long)i,
                  (long long)j, got, ref, tol);
        }
    }
    free(A), free(B), free(C), free(C0);
    return ok;
}

static void test_gemm_paths(void) {
    static const shape shapes[] = {
        {1, 1, 1},     {1, 17, 5},   {7, 1, 300},  {13, 33, 257},  {5, 40, 1},
        {12, 32, 256}, {6, 16, 16},  {73, 31, 64}, {150, 70, 513}, {2, 2100, 3},
        {6, 15, 1000}, {145, 19, 9}, {31, 7, 17},  {1, 300, 600},  {200, 5, 11},
    };
    static const float ab[][2] = {{1, 0}, {0.5f, 1}, {-2, 0.25f}};
    static const char *names[] = {"blas", "avx2", "avx512"};
    const bool env_gemm = getenv("EMOTUNE_GEMM") != NULL;
    for (int l = 0; l < g_nlevels; l++) {  // each level's default GEMM path
        k_simd_level lv = k_simd_set(g_levels[l]);
        if (!env_gemm)
            CHECK(k_gemm_path_now() == expected_gemm(lv), "%s: GEMM path %d", k_simd_name(lv),
                  (int)k_gemm_path_now());
    }
    for (int l = 0; l < g_nlevels; l++) {  // every GEMM path the CPU runs
        k_gemm_path p = k_gemm_set_path((int)g_levels[l]);
        CHECK((int)p == (int)g_levels[l], "GEMM path %d forced, %d runs", (int)g_levels[l], (int)p);
        int fails = 0;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0] && fails < 3; s++)
            for (int t = 0; t < 4; t++)
                for (int c = 0; c < 3; c++)
                    if ((s + (size_t)t + (size_t)c) % 2 == 0 || c == 0)  // a spread of cases
                        fails += !gemm_case(t & 1, t >> 1, shapes[s], ab[c][0], ab[c][1], names[p]);
    }
    k_gemm_set_path(-1);
}

// K = 0: C = beta C (beta 0 writes zeros without reading C, so NaN there goes away).
static void test_gemm_k0(void) {
    for (int l = 0; l < g_nlevels; l++) {
        const char *path = k_simd_name((k_simd_level)k_gemm_set_path((int)g_levels[l]));
        float A[1] = {0}, B[1] = {0}, C[6] = {1, 2, 3, NAN, 5, 6};
        k_gemm_f32(false, false, 2, 3, 0, 1, A, 1, B, 3, 0.5f, C, 3);
        CHECK(C[0] == 0.5f && C[2] == 1.5f && isnan(C[3]) && C[5] == 3, "%s: beta 0.5", path);
        k_gemm_f32(false, false, 2, 3, 0, 1, A, 1, B, 3, 0, C, 3);
        bool zero = true;
        for (int i = 0; i < 6; i++) zero = zero && C[i] == 0;
        CHECK(zero, "%s: beta 0 leaves %g %g %g %g %g %g", path, C[0], C[1], C[2], C[3], C[4],
              C[5]);
    }
    k_gemm_set_path(-1);
}

// Products big enough to be split over threads give the same bits on 1 and 2 threads.
static void test_gemm_threads_bitwise(void) {
    const int64_t M = 203, N = 301, K = 130;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
    fill(A, M * K, 1), fill(B, K * N, 1);
    int nt = omp_get_max_threads();
    for (int l = 0; l < g_nlevels; l++) {
        k_simd_level lv = (k_simd_level)k_gemm_set_path((int)g_levels[l]);
        if (lv == K_SIMD_SCALAR) continue;  // OpenBLAS promises nothing across threads
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t >> 1;
            omp_set_num_threads(1);
            k_gemm_f32(ta, tb, M, N, K, 1, A, ta ? M : K, B, tb ? K : N, 0, C1, N);
            omp_set_num_threads(2);
            k_gemm_f32(ta, tb, M, N, K, 1, A, ta ? M : K, B, tb ? K : N, 0, C2, N);
            CHECK(!memcmp(C1, C2, sizeof(float) * M * N), "%s: ta %d tb %d: 1 vs 2 threads differ",
                  k_simd_name(lv), ta, tb);
        }
    }
    omp_set_num_threads(nt);
    k_gemm_set_path(-1);
    free(A), free(B), free(C1), free(C2);
}

// ---- row kernels ----------------------------------------------------------------------

// max |a - b| / max(|b|, floor) over n values; NaN where b is finite counts as inf.
static double max_rel(const float *a, const double *b, int64_t n, double floor) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isinf(b[i]) && a[i] == b[i]) continue;
        double d = fabs((double)a[i] - b[i]) / fmax(fabs(b[i]), floor);
        if (isnan(d)) return INFINITY;
        if (d > e) e = d;
    }
    return e;
}

static void attention_case(int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv, int64_t hd,
                           bool causal) {
    const int64_t nq = B * T * Hq * hd, nk = B * S * Hkv * hd, nl = B * Hq * T;
    const int64_t slots = k_attention_slots(B * Hkv);
    const double scale = 1.0 / sqrt((double)hd);
    float *q = malloc(sizeof(float) * nq), *k = malloc(sizeof(float) * nk);
    float *v = malloc(sizeof(float) * nk), *dout = malloc(sizeof(float) * nq);
    fill(q, nq, 2), fill(k, nk, 2), fill(v, nk, 1), fill(dout, nq, 1);
    double *qd = widen(q, nq), *kd = widen(k, nk), *vd = widen(v, nk), *dod = widen(dout, nq);
    double *od = malloc(sizeof(double) * nq), *lsed = malloc(sizeof(double) * nl);
    double *dqd = malloc(sizeof(double) * nq), *dkd = malloc(sizeof(double) * nk);
    double *dvd = malloc(sizeof(double) * nk);
    double *scd = malloc(sizeof(double) * (size_t)(slots * 2 * T * S + 1));
    k_attention_fwd_f64(qd, kd, vd, NULL, od, lsed, NULL, scd, slots, B, T, S, Hq, Hkv, hd, causal,
                        scale);
    k_attention_bwd_f64(qd, kd, vd, NULL, lsed, NULL, dod, dqd, dkd, dvd, scd, slots, B, T, S, Hq,
                        Hkv, hd, causal, scale);
    float *o = malloc(sizeof(float) * nq), *lse = malloc(sizeof(float) * nl);
    float *dq = malloc(sizeof(float) * nq), *dk = malloc(sizeof(float) * nk);
    float *dv = malloc(sizeof(float) * nk);
    float *sc = malloc(sizeof(float) * (size_t)(slots * 2 * T * S + 1));
    float *probs = malloc(sizeof(float) * (size_t)(B * Hq * T * S + 1));
    // every level, with the probabilities recomputed (keep 0) or kept from the forward
    for (int run = 0; run < 2 * g_nlevels; run++) {
        const int l = run / 2, keep = run % 2;
        const char *path = k_simd_name(k_simd_set(g_levels[l]));
        float *pk = keep ? probs : NULL;
        k_attention_fwd_f32(q, k, v, NULL, o, lse, pk, sc, slots, B, T, S, Hq, Hkv, hd, causal,
                            scale);
        k_attention_bwd_f32(q, k, v, NULL, lse, pk, dout, dq, dk, dv, sc, slots, B, T, S, Hq, Hkv,
                            hd, causal, scale);
        double eo = max_rel(o, od, nq, 1), el = max_rel(lse, lsed, nl, 1);
        double eq = max_rel(dq, dqd, nq, 1), ek = max_rel(dk, dkd, nk, 1);
        double ev = max_rel(dv, dvd, nk, 1);
        CHECK(eo < 2e-6 && el < 2e-6 && eq < 2e-5 && ek < 2e-5 && ev < 2e-5,
              "%s (probs kept %d): B %lld T %lld S %lld hd %lld causal %d: error o %.3g lse %.3g "
              "dq %.3g dk %.3g dv %.3g",
              path, keep, (long long)B, (long long)T, (long long)S, (long long)hd, causal, eo, el,
              eq, ek, ev);
    }
    free(q), free(k), free(v), free(dout), free(qd), free(kd), free(vd), free(dod), free(od);
    free(lsed), free(dqd), free(dkd), free(dvd), free(scd), free(o), free(lse), free(dq), free(dk);
    free(dv), free(sc), free(probs);
}

// Row lengths 1, 7, 9, 17, 70 (a causal block of 64 plus a tail), T > S (rows that see no
// key: zeros and lse -inf on every path).
static void test_attention_paths(void) {
    attention_case(1, 1, 1, 2, 1, 8, true);
    attention_case(2, 7, 7, 4, 2, 8, true);
    attention_case(1, 9, 17, 2, 2, 5, false);
    attention_case(2, 70, 70, 2, 1, 16, true);
    attention_case(1, 33, 65, 3, 3, 12, false);
    attention_case(1, 5, 3, 2, 2, 4, true);
}

static void test_swiglu_paths(void) {
    static const int64_t ns[] = {1, 7, 8, 9, 17, 1023, 1025, 40001};
    for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++) {
        int64_t n = ns[c];
        float *g = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n);
        float *dy = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
        float *dg = malloc(sizeof(float) * n), *du = malloc(sizeof(float) * n);
        fill(g, n, 8), fill(u, n, 1), fill(dy, n, 1);
        g[0] = -100;  // exp(-g) overflows: silu -> -0
        double *gd = widen(g, n), *ud = widen(u, n), *dyd = widen(dy, n);
        double *yd = malloc(sizeof(double) * n), *dgd = malloc(sizeof(double) * n);
        double *dud = malloc(sizeof(double) * n);
        k_swiglu_fwd_f64(gd, ud, yd, n);
        k_swiglu_bwd_f64(dyd, gd, ud, dgd, dud, n);
        for (int l = 0; l < g_nlevels; l++) {
            const char *path = k_simd_name(k_simd_set(g_levels[l]));
            k_swiglu_fwd_f32(g, u, y, n);
            k_swiglu_bwd_f32(dy, g, u, dg, du, n);
            double ey = max_rel(y, yd, n, 1e-3), eg = max_rel(dg, dgd, n, 1e-3);
            double eu = max_rel(du, dud, n, 1e-3);
            CHECK(ey < 1e-5 && eg < 1e-5 && eu < 1e-5, "%s: n %lld: error y %.3g dg %.3g du %.3g",
                  path, (long long)n, ey, eg, eu);
            memset(du, 0x7f, sizeof(float) * n);  // dg only: du untouched
            k_swiglu_bwd_f32(dy, g, u, dg, NULL, n);
            CHECK(max_rel(dg, dgd, n, 1e-3) < 1e-5 && du[n - 1] == du[0], "%s: n %lld: dg only",
                  path, (long long)n);
        }
        free(g), free(u), free(dy), free(y), free(dg), free(du), free(gd), free(ud), free(dyd);
        free(yd), free(dgd), free(dud);
    }
}

// exp to <= 2 ulp (plus the float rounding of x - c) in range; 0 below, inf above; NaN.
static void test_exp_paths(void) {
    enum { N = 300 };
    float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -95.0f + 190.0f * (float)i / (N - 1) + 0.01f * urand();
    x[3] = -INFINITY, x[5] = NAN, x[8] = 0;
    for (int l = 0; l < g_nlevels; l++) {
        const char *path = k_simd_name(k_simd_set(g_levels[l]));
        for (int n = 1; n <= N; n += (n < 40 ? 1 : 37)) {
            memcpy(y, x, sizeof y);
            y[n < N ? n : N - 1] = 7.0f;  // past the end: untouched
            k_exp_sub_f32(y, n, 0.5f);
            int bad = -1;
            for (int i = 0; i < n && bad < 0; i++) {
                float a = x[i] - 0.5f;
                double r = exp((double)a);
                bool ok;
                if (isnan(a))
                    ok = isnan(y[i]);
                else if (a < -87.33654f)
                    ok = y[i] == 0;
                else if (a > 88.72283f)
                    ok = isinf(y[i]);
                else
                    ok = fabs(y[i] - r) <= 2.5 * r * FLT_EPSILON;
                if (!ok) bad = i;
            }
            CHECK(bad < 0, "%s: n %d: exp(%.9g) = %.9g", path, n, bad < 0 ? 0 : x[bad] - 0.5,
                  bad < 0 ? 0 : y[bad]);
            if (n < N) CHECK(y[n] == 7.0f, "%s: n %d: wrote past the end", path, n);
        }
    }
}

static void test_rmsnorm_paths(void) {
    static const int64_t Ds[] = {1, 7, 8, 9, 17, 256, 1001};
    const int64_t rows = 5;
    for (size_t c = 0; c < sizeof Ds / sizeof Ds[0]; c++) {
        const int64_t D = Ds[c], n = rows * D;
        float *x = malloc(sizeof(float) * n), *res = malloc(sizeof(float) * n);
        float *w = malloc(sizeof(float) * D), *dy = malloc(sizeof(float) * n);
        float *y = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
        float *s = malloc(sizeof(float) * n), *dx = malloc(sizeof(float) * n);
        float rstd[5], rstd2[5];
        fill(x, n, 3), fill(res, n, 1), fill(w, D, 2), fill(dy, n, 1);
        double *xd = widen(x, n), *wd = widen(w, D), *dyd = widen(dy, n);
        double *yd = malloc(sizeof(double) * n), *dxd = malloc(sizeof(double) * n), rd[5];
        for (int hw = 0; hw < 2; hw++) {
            const float *wf = hw ? w : NULL;
            const double *wdd = hw ? wd : NULL;
            k_rmsnorm_fwd_f64(xd, wdd, yd, rd, rows, D, 1e-6);
            k_rmsnorm_bwd_f64(dyd, xd, wdd, rd, dxd, NULL, rows, D);
            for (int l = 0; l < g_nlevels; l++) {
                const char *path = k_simd_name(k_simd_set(g_levels[l]));
                k_rmsnorm_fwd_f32(x, wf, y, rstd, rows, D, 1e-6);
                k_rmsnorm_bwd_f32(dy, x, wf, rstd, dx, NULL, rows, D);
                double ey = max_rel(y, yd, n, 1), ex = max_rel(dx, dxd, n, 1);
                CHECK(ey < 1e-6 && ex < 1e-5, "%s: D %lld w %d: error y %.3g dx %.3g", path,
                      (long long)D, hw, ey, ex);
                // fused add: s = x + res, then the same norm of s, bit for bit
                k_add_rmsnorm_fwd_f32(x, res, NULL, wf, s, y2, rstd2, rows, D, 1e-6);
                k_rmsnorm_fwd_f32(s, wf, y, rstd, rows, D, 1e-6);
                bool same = !memcmp(y, y2, sizeof(float) * n) && !memcmp(rstd, rstd2, sizeof rstd);
                for (int64_t i = 0; i < n && same; i++) same = s[i] == x[i] + res[i];
                CHECK(same, "%s: D %lld w %d: add+rmsnorm differs from rmsnorm of the sum", path,
                      (long long)D, hw);
            }
        }
        free(x), free(res), free(w), free(dy), free(y), free(y2), free(s), free(dx), free(xd);
        free(wd), free(dyd), free(yd), free(dxd);
    }
}

static void test_cross_entropy_paths(void) {
    static const int64_t Vs[] = {1, 9, 1000};
    const int64_t N = 6;
    for (size_t c = 0; c < sizeof Vs / sizeof Vs[0]; c++) {
        const int64_t V = Vs[c];
        float *lg = malloc(sizeof(float) * N * V), *d = malloc(sizeof(float) * N * V), lse[6];
        int32_t tg[6];
        for (int64_t r = 0; r < N; r++) tg[r] = r == 2 ? -100 : (int32_t)(r * 7 % V);
        fill(lg, N * V, 10);
        double *lgd = widen(lg, N * V), *dd = malloc(sizeof(double) * N * V), lsed[6];
        int64_t cnt64, cnt;
        double ref = k_cross_entropy_fwd_f64(lgd, tg, lsed, N, V, -100, &cnt64);
        k_cross_entropy_bwd_f64(lgd, tg, lsed, dd, N, V, -100, 0.2);
        for (int l = 0; l < g_nlevels; l++) {
            const char *path = k_simd_name(k_simd_set(g_levels[l]));
            double got = k_cross_entropy_fwd_f32(lg, tg, lse, N, V, -100, &cnt);
            k_cross_entropy_bwd_f32(lg, tg, lse, d, N, V, -100, 0.2);
            double ed = max_rel(d, dd, N * V, 1e-2);
            CHECK(cnt == cnt64 && fabs(got - ref) <= 1e-5 * fmax(1, fabs(ref)) && ed < 1e-5,
                  "%s: V %lld: loss %.9g vs %.9g, count %lld, dlogits error %.3g", path,
                  (long long)V, got, ref, (long long)cnt, ed);
        }
        free(lg), free(d), free(lgd), free(dd);
    }
}

// ---- the environment words --------------------------------------------------------

// Runs this test with `env` and --print-paths; returns its stdout + stderr.
static char *run_self(const char *env) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "env -u EMOTUNE_SIMD -u EMOTUNE_GEMM %s '%s' --print-paths 2>&1", env,
             g_self);
    FILE *p = popen(cmd, "r");
    static char buf[4096];
    size_t n = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
    buf[n] = 0;
    if (p) pclose(p);
    return buf;
}

static void test_env_words(void) {
    const char *best = k_simd_name(k_simd_cpu());
    char want[256];
    char *out = run_self("EMOTUNE_SIMD=sse9");
    CHECK(strstr(out, "emotune: EMOTUNE_SIMD=sse9 is not a SIMD path: use avx512, avx2 or scalar"),
          "message: %s", out);
    snprintf(want, sizeof want, "simd %s gemm", best);
    CHECK(strstr(out, want), "bad word falls back to the CPU's best: %s", out);
    out = run_self("EMOTUNE_SIMD=scalar");
    CHECK(strstr(out, "simd scalar gemm blas"), "scalar: %s", out);
    out = run_self("EMOTUNE_GEMM=blas");
    snprintf(want, sizeof want, "simd %s gemm blas", best);
    CHECK(strstr(out, want), "EMOTUNE_GEMM=blas: %s", out);
    out = run_self("EMOTUNE_GEMM=fast");
    CHECK(strstr(out, "emotune: EMOTUNE_GEMM=fast is not a GEMM path: use blas, avx2 or avx512"),
          "message: %s", out);
    if (k_simd_cpu() >= K_SIMD_AVX2) {
        out = run_self("EMOTUNE_SIMD=avx2");
        CHECK(strstr(out, "simd avx2 gemm avx2") && !strstr(out, "emotune:"), "avx2: %s", out);
        out = run_self("EMOTUNE_SIMD=scalar EMOTUNE_GEMM=avx2");
        CHECK(strstr(out, "simd scalar gemm avx2"), "GEMM alone on avx2: %s", out);
    }
    if (k_simd_cpu() < K_SIMD_AVX512) {
        out = run_self("EMOTUNE_SIMD=avx512");
        snprintf(want, sizeof want,
                 "emotune: EMOTUNE_SIMD=avx512: this CPU has no avx512; running %s", best);
        CHECK(strstr(out, want), "avx512 on a CPU without it: %s", out);
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--print-paths")) {
        static const char *gemm[] = {"blas", "avx2", "avx512"};
        printf("simd %s gemm %s\n", k_simd_name(k_simd()), gemm[k_gemm_path_now()]);
        return 0;
    }
    ssize_t len = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
    if (len <= 0) snprintf(g_self, sizeof g_self, "%s", argv[0]);
    for (int l = K_SIMD_SCALAR; l <= (int)k_simd_cpu(); l++) g_levels[g_nlevels++] = l;
    printf("CPU SIMD level: %s; testing", k_simd_name(k_simd_cpu()));
    for (int l = 0; l < g_nlevels; l++) printf(" %s", k_simd_name(g_levels[l]));
    printf("\n");
    RUN(test_gemm_paths);
    RUN(test_gemm_k0);
    RUN(test_gemm_threads_bitwise);
    RUN(test_attention_paths);
    RUN(test_swiglu_paths);
    RUN(test_exp_paths);
    RUN(test_rmsnorm_paths);
    RUN(test_cross_entropy_paths);
    RUN(test_env_words);
    return test_summary();
}
