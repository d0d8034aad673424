// tests/synth_test_util.h - helpers of the synthetic-face tests (test_synth, test_synth_degrade):
// rendering that must succeed, a JSON string field, contact-sheet tiles, removing the test
// directory, and a linear probe: one-vs-rest ridge
// regression with a bias over the 7 emotions (normal equations, Gaussian elimination),
// trained on samples 0 .. ntr - 1 of x [n, dim], scored on ntr .. ntr + nte - 1; and the
// pose normalisation of 68-point landmarks that its landmark features use.
#ifndef ET_TESTS_SYNTH_TEST_UTIL_H
#define ET_TESTS_SYNTH_TEST_UTIL_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/fileio.h"
#include "../core/status.h"
#include "../data/image.h"
#include "../data/synth.h"

static inline void render_ok(const et_synth_face *f, int size, et_image *img) {
    et_status st = et_synth_render(f, size, img);
    ET_ASSERT(!st, "render: %s", et_status_msg(st));
}

static inline const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// Copies img (RGB) into sheet with its top-left corner at (x, y).
static inline void paste_tile(et_image *sheet, const et_image *img, int x, int y) {
    for (int yy = 0; yy < img->height; yy++)
        memcpy(sheet->data + ((size_t)(y + yy) * sheet->width + (size_t)x) * 3,
               img->data + (size_t)yy * img->width * 3, (size_t)img->width * 3);
}

static inline void remove_dir(const char *dir) {
    et_status st = et_remove_tree(dir);
    if (st) fprintf(stderr, "cleanup: %s\n", et_status_msg(st));
    et_status_free(st);
}

// The test accuracy.
static inline double ridge_classifier(const float *x, const int *y, int ntr, int nte, int dim,
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

// Landmarks with the pose removed: centred, rotated so the eyes are level, scaled by the
// distance between the eyes.
static inline void pose_normalise(const float *lm, float *out) {
    float lx = 0, ly = 0, rx = 0, ry = 0, mx = 0, my = 0;
    for (int i = 0; i < 6; i++) {
        lx += lm[2 * (36 + i)] / 6, ly += lm[2 * (36 + i) + 1] / 6;
        rx += lm[2 * (42 + i)] / 6, ry += lm[2 * (42 + i) + 1] / 6;
    }
    for (int i = 0; i < ET_SYNTH_N_LANDMARKS; i++) mx += lm[2 * i] / 68, my += lm[2 * i + 1] / 68;
    float dx = rx - lx, dy = ry - ly, d = sqrtf(dx * dx + dy * dy);
    float c = dx / d, s = dy / d;
    for (int i = 0; i < ET_SYNTH_N_LANDMARKS; i++) {
        float x = lm[2 * i] - mx, y = lm[2 * i + 1] - my;
        out[2 * i] = (c * x + s * y) / d;
        out[2 * i + 1] = (-s * x + c * y) / d;
    }
}

#endif
