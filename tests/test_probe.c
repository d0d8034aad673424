// tests/test_probe.c - the linear probe's logistic regression (train/eval/probe.h) on data with
// known answers: separable classes, a non-separable 1-D case whose optimum is ln 3, the
// regularised optimum's stationarity, determinism and bad arguments.
#include <stdlib.h>
#include <string.h>

#include "../train/eval/probe.h"
#include "test_util.h"

// Three Gaussian blobs in 4-D, well apart: every point is classified right.
static void test_separable(void) {
    enum { N = 300, D = 4, K = 3 };
    float *X = malloc(sizeof(float) * N * D);
    int y[N];
    for (int i = 0; i < N; i++) {
        y[i] = i % K;
        for (int j = 0; j < D; j++)
            X[i * D + j] = (float)(0.3 * test_randn() + (j == y[i] ? 3.0 : 0.0) + 10.0 * (j == 3));
    }
    et_logreg m;
    CHECK(!et_logreg_fit(X, y, N, D, K, 1e-3, 500, &m));
    int ok = 0;
    for (int i = 0; i < N; i++) ok += et_logreg_predict(&m, X + i * D) == y[i];
    CHECK(ok == N, "%d of %d right", ok, N);
    CHECK(m.grad_norm < 1e-6, "converged: gradient %g after %d iterations", m.grad_norm, m.iters);
    CHECK_CLOSE(m.mean[3], 10.0, 1e-2);  // standardisation kept the feature's mean
    // deterministic: a second fit gives the same weights bit for bit
    et_logreg m2;
    CHECK(!et_logreg_fit(X, y, N, D, K, 1e-3, 500, &m2));
    CHECK(!memcmp(m.W, m2.W, sizeof(double) * K * D), "two fits differ");
    et_logreg_free(&m), et_logreg_free(&m2);
    free(X);
}

// x = +1: three of class 1, one of class 0; x = -1 the mirror image. Standardised x is +-1;
// without a penalty the optimum has P(class 1 | x = 1) = 3/4, i.e. the logit difference
// (w1 - w0) x + (b1 - b0) = ln 3 at x = 1 and b1 = b0 by symmetry; accuracy 75 %.
static void test_non_separable(void) {
    const float X[8] = {1, 1, 1, 1, -1, -1, -1, -1};
    const int y[8] = {1, 1, 1, 0, 0, 0, 0, 1};
    et_logreg m;
    CHECK(!et_logreg_fit(X, y, 8, 1, 2, 0.0, 200, &m));
    CHECK_CLOSE(m.W[1] - m.W[0], log(3.0), 1e-6);
    CHECK_CLOSE(m.b[1] - m.b[0], 0.0, 1e-6);
    CHECK_CLOSE(m.loss, -(0.75 * log(0.75) + 0.25 * log(0.25)), 1e-9);
    int ok = 0;
    for (int i = 0; i < 8; i++) ok += et_logreg_predict(&m, X + i) == y[i];
    CHECK(ok == 6, "%d of 8", ok);
    et_logreg_free(&m);
    // with l2 = 0.5 the optimum shrinks: by symmetry w1 = -w0 = w, and d/dw1 of
    // mean CE + l2/2 (w0^2 + w1^2) = 0 reads 0.75 - sigmoid(2w) - l2 w = 0; solve it by
    // bisection and compare
    double lo = 0, hi = 2;
    for (int it = 0; it < 200; it++) {
        double w = 0.5 * (lo + hi), f = 0.75 - 1 / (1 + exp(-2 * w)) - 0.5 * w;
        if (f > 0)
            lo = w;
        else
            hi = w;
    }
    CHECK(!et_logreg_fit(X, y, 8, 1, 2, 0.5, 200, &m));
    CHECK_CLOSE(m.W[1], 0.5 * (lo + hi), 1e-6);
    CHECK_CLOSE(m.W[0], -0.5 * (lo + hi), 1e-6);
    et_logreg_free(&m);
}

static void test_bad_args(void) {
    const float X[2] = {1, 2};
    const int y[2] = {0, 5};
    et_logreg m;
    et_status st = et_logreg_fit(X, y, 2, 1, 2, 0.0, 10, &m);
    CHECK(st && strstr(et_status_msg(st), "label 5 of row 1 outside [0, 2)"), "%s",
          st ? et_status_msg(st) : "(no error)");
    et_status_free(st);
    st = et_logreg_fit(X, y, 2, 1, 1, 0.0, 10, &m);
    CHECK(st && strstr(et_status_msg(st), "two classes"), "%s", st ? et_status_msg(st) : "-");
    et_status_free(st);
}

// Cross-validation: deterministic, a penalty from the grid, an honest held-out estimate on a
// noisy problem (40 of 41 features are noise), ties broken towards the larger penalty.
static void test_cv(void) {
    enum { N = 60, D = 41 };
    static float X[N * D];
    static int y[N];
    uint64_t s = 12345;
    for (int i = 0; i < N; i++) {
        y[i] = i % 2;
        for (int j = 0; j < D; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            const float u = (float)((s >> 33) % 20001) / 10000.0f - 1.0f;  // [-1, 1]
            X[i * D + j] = j == 0 ? (y[i] ? 0.3f : -0.3f) + u : u;
        }
    }
    double l2a, acca, l2b, accb;
    et_logreg_cv(X, y, N, D, 2, &l2a, &acca);
    et_logreg_cv(X, y, N, D, 2, &l2b, &accb);
    CHECK(l2a == l2b && acca == accb, "deterministic");
    CHECK(l2a >= 1e-4 && l2a <= 0.1 && acca > 0.3 && acca < 0.8,
          "noisy: l2 %g from the grid, held-out fold accuracy %.3f (no leak: well below 1)", l2a,
          acca);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            X[i * D + j] = (y[i] ? 1.0f : -1.0f) * (1.0f + 0.01f * (float)j);
    et_logreg_cv(X, y, N, D, 2, &l2b, &accb);
    CHECK(accb == 1.0 && l2b == 0.1, "separable: fold accuracy %.3f, l2 %g (ties: the largest)",
          accb, l2b);
}

int main(void) {
    RUN(test_separable);
    RUN(test_non_separable);
    RUN(test_bad_args);
    RUN(test_cv);
    return test_summary();
}
