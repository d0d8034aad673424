// tests/ridge_probe.h - a linear probe for the synthetic-face tests: one-vs-rest ridge
// regression with a bias over the 7 emotions (normal equations, Gaussian elimination),
// trained on samples 0 .. ntr - 1 of x [n, dim], scored on ntr .. ntr + nte - 1.
#ifndef ET_TESTS_RIDGE_PROBE_H
#define ET_TESTS_RIDGE_PROBE_H

#include <stdlib.h>

#include "../data/synth.h"

// The test accuracy.
static double ridge_classifier(const float *x, const int *y, int ntr, int nte, int dim,
                               double lambda) {
    int D = dim + 1, C = ET_SYNTH_N_EMOTIONS;
    double *A = calloc((size_t)D * D, sizeof(double)), *B = calloc((size_t)D * C, sizeof(double));
    for (int i = 0; i < ntr; i++) {
        const float *xi = x + (size_t)i * dim;
        for (int a = 0; a < D; a++) {
            double xa = a < dim ? xi[a] : 1;
            for (int b = 0; b < D; b++) A[(size_t)a * D + b] += xa * (b < dim ? xi[b] : 1);
            B[(size_t)a * C + y[i]] += xa;
        }
    }
    for (int a = 0; a < dim; a++) A[(size_t)a * D + a] += lambda;
    for (int c = 0; c < D; c++)  // Gaussian elimination (A is symmetric positive definite)
        for (int r = c + 1; r < D; r++) {
            double f = A[(size_t)r * D + c] / A[(size_t)c * D + c];
            for (int k = c; k < D; k++) A[(size_t)r * D + k] -= f * A[(size_t)c * D + k];
            for (int e = 0; e < C; e++) B[(size_t)r * C + e] -= f * B[(size_t)c * C + e];
        }
    for (int c = D - 1; c >= 0; c--)
        for (int e = 0; e < C; e++) {
            double v = B[(size_t)c * C + e];
            for (int k = c + 1; k < D; k++) v -= A[(size_t)c * D + k] * B[(size_t)k * C + e];
            B[(size_t)c * C + e] = v / A[(size_t)c * D + c];
        }
    int ok = 0;
    for (int i = ntr; i < ntr + nte; i++) {
        const float *xi = x + (size_t)i * dim;
        int best = 0;
        double bs = -1e300;
        for (int e = 0; e < C; e++) {
            double v = B[(size_t)dim * C + e];
            for (int a = 0; a < dim; a++) v += xi[a] * B[(size_t)a * C + e];
            if (v > bs) bs = v, best = e;
        }
        ok += best == y[i];
    }
    free(A);
    free(B);
    return (double)ok / nte;
}

#endif
