// tests/test_util.h - a tiny test harness shared by the test executables.
// defines: CHECK, CHECK_CLOSE, CHECK_TENSOR_CLOSE, RUN, test_summary, test_randn,
//          test_rand_tensor, tensor_rel_err
//
// Each test executable calls RUN(fn) for its tests and returns test_summary(), which
// prints "N passed, N failed" and exits non-zero on any failure. A failing CHECK prints
// file:line, the expression and what differed, and the test goes on.
#ifndef ET_TEST_UTIL_H
#define ET_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/autograd.h"
#include "../core/tensor.h"

static int g_test_pass, g_test_fail, g_test_cur_failed;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "  FAIL %s:%d: (%s) ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, " " __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                             \
            g_test_cur_failed = 1;                                             \
        }                                                                      \
    } while (0)

#define CHECK_CLOSE(a, b, tol)                                                                  \
    do {                                                                                        \
        double ca_ = (double)(a), cb_ = (double)(b);                                            \
        CHECK(fabs(ca_ - cb_) <= (tol)*fmax(1.0, fabs(cb_)), "%s = %.10g, %s = %.10g", #a, ca_, \
              #b, cb_);                                                                         \
    } while (0)

// Max-norm relative error: max_i |a_i - b_i| / max(max_i |b_i|, 1e-30). NaN -> inf.
static inline double tensor_rel_err(const et_tensor *a, const et_tensor *b) {
    if (a->numel != b->numel) return INFINITY;
    double num = 0, den = 0;
    for (int64_t i = 0; i < a->numel; i++) {
        double x = et_get(a, i), y = et_get(b, i);
        double d = fabs(x - y);
        if (isnan(d)) return INFINITY;
        if (d > num) num = d;
        if (fabs(y) > den) den = fabs(y);
    }
    return num / fmax(den, 1e-30);
}

#define CHECK_TENSOR_CLOSE(a, b, tol, what)                                                \
    do {                                                                                   \
        double re_ = tensor_rel_err((a), (b));                                             \
        CHECK(re_ <= (tol), "%s: relative error %.3g > %.3g", (what), re_, (double)(tol)); \
    } while (0)

static inline void run_test(const char *name, void (*fn)(void)) {
    g_test_cur_failed = 0;
    fn();
    if (et_tape_size() != 0) {
        fprintf(stderr, "  FAIL %s left %lld nodes on the tape\n", name, (long long)et_tape_size());
        et_tape_clear();
        g_test_cur_failed = 1;
    }
    if (g_test_cur_failed) {
        g_test_fail++;
        printf("FAIL %s\n", name);
    } else {
        g_test_pass++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}
#define RUN(fn) run_test(#fn, fn)

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", g_test_pass, g_test_fail);
    return g_test_fail ? 1 : 0;
}

// Deterministic test randomness (independent of the engine's RNG).
static uint64_t g_test_rng = 0x9e3779b97f4a7c15ull;
static inline double test_uniform(void) {
    g_test_rng ^= g_test_rng << 13;
    g_test_rng ^= g_test_rng >> 7;
    g_test_rng ^= g_test_rng << 17;
    return ((g_test_rng >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static inline double test_randn(void) {
    return sqrt(-2.0 * log(test_uniform())) * cos(6.283185307179586 * test_uniform());
}
// A tensor of normal values * scale (any float dtype).
static inline et_tensor *test_rand_tensor(et_dtype dt, int ndim, const int64_t *shape,
                                          double scale) {
    et_tensor *t = et_empty(dt, ndim, shape);
    for (int64_t i = 0; i < t->numel; i++) et_set(t, i, test_randn() * scale);
    return t;
}

#endif
