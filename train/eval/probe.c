// train/eval/probe.c - see probe.h
#include "probe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/ops.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/preprocess.h"

// ---- images -------------------------------------------------------------------------

void et_image_set_free(et_image_set *s) {
    for (int64_t i = 0; i < s->n; i++) {
        if (s->labels) free(s->labels[i]);
        if (s->captions) free(s->captions[i]);
    }
    free(s->pixels), free(s->labels), free(s->captions);
    memset(s, 0, sizeof *s);
}

et_status et_image_set_load(const char *path, const char *data_root, int image_size, bool pad,
                            et_image_set *out) {
    memset(out, 0, sizeof *out);
    et_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.data_root = data_root && *data_root ? data_root : NULL;
    et_dataset *ds = NULL;
    ET_TRY(et_dataset_open(path, &o, &ds));
    const int64_t N = et_dataset_size(ds), per = 3 * (int64_t)image_size * image_size;
    out->image_size = image_size;
    out->pixels = malloc(sizeof(float) * (size_t)(N * per));
    out->labels = calloc((size_t)N, sizeof(char *));
    out->captions = calloc((size_t)N, sizeof(char *));
    if (!out->pixels || !out->labels || !out->captions) {
        et_dataset_close(ds);
        et_image_set_free(out);
        return et_err(ET_ERR_NOMEM, "%s: no memory for %lld images", path, (long long)N);
    }
    et_clip_preproc pp;
    et_clip_preproc_default(&pp, image_size);
    pp.pad_square = pad;
    for (int64_t i = 0; i < N; i++) {
        et_sample s;
        et_status st = et_dataset_get(ds, i, &s);
        if (!st && !s.image)
            st = et_err(ET_ERR_MISSING, "%s: sample %lld has no \"image\"", path, (long long)i);
        et_tensor *px = NULL;
        if (!st) st = et_clip_preprocess_file(s.image, &pp, &px);
        if (st) {
            if (!out->n_skipped++)
                snprintf(out->first_error, sizeof out->first_error, "%s", et_status_msg(st));
            et_status_free(st);
            et_sample_free(&s);
            continue;
        }
        memcpy(out->pixels + out->n * per, et_data(px), sizeof(float) * (size_t)per);
        et_release(px);
        out->labels[out->n] = strdup(s.label ? s.label : "");
        const char *cap = et_sample_answer(&s);
        out->captions[out->n] = cap ? strdup(cap) : NULL;
        out->n++;
        et_sample_free(&s);
    }
    et_dataset_close(ds);
    if (!out->n) {
        et_status st =
            et_err(ET_ERR_INVALID, "%s: no sample could be loaded (%lld skipped; first: %s)", path,
                   (long long)out->n_skipped, out->first_error);
        et_image_set_free(out);
        return st;
    }
    return NULL;
}

et_tensor *et_probe_features(et_clip_vision *v, const et_image_set *s, int select_layer,
                             bool patch_mean, const char **kind) {
    const int64_t D = v->cfg.hidden_size, S = s->image_size, per = 3 * S * S;
    const bool pooled = v->post_ln_w != NULL && !patch_mean;
    if (kind) *kind = pooled ? "pooled" : "patch_mean";
    et_tensor *out = et_empty(ET_F32, 2, (int64_t[]){s->n, D});
    float *po = et_data(out);
    et_no_grad_begin();
    for (int64_t i0 = 0; i0 < s->n; i0 += 64) {
        const int64_t B = s->n - i0 < 64 ? s->n - i0 : 64;
        et_tensor *px = et_from_data(ET_F32, 4, (int64_t[]){B, 3, S, S}, s->pixels + i0 * per);
        et_tensor *f;
        if (pooled) {
            f = et_clip_vision_pooled(v, px, NULL);
        } else {
            et_tensor *h = et_clip_vision_forward(v, px, select_layer, ET_CLIP_PATCH);
            f = et_mean_pool(h, NULL);
            et_release(h);
        }
        et_tensor *f32 = et_cast(f, ET_F32);
        memcpy(po + i0 * D, et_data(f32), sizeof(float) * (size_t)(B * D));
        et_release(f32), et_release(f), et_release(px);
    }
    et_no_grad_end();
    return out;
}

// ---- logistic regression --------------------------------------------------------------

typedef struct {
    const double *X;  // standardised [n, d]
    const int *y;
    int64_t n;
    int d, K;
    double l2;
    double *z;  // scratch [K]
} lr_prob;

// Objective and gradient at theta = [W (K d), b (K)].
static double lr_eval(const lr_prob *p, const double *th, double *g) {
    const int d = p->d, K = p->K;
    const double *W = th, *b = th + (size_t)K * d;
    const size_t P = (size_t)K * d + K;
    memset(g, 0, sizeof(double) * P);
    double loss = 0;
    for (int64_t i = 0; i < p->n; i++) {
        const double *x = p->X + i * d;
        double mx = -INFINITY;
        for (int k = 0; k < K; k++) {
            double z = b[k];
            for (int j = 0; j < d; j++) z += W[(size_t)k * d + j] * x[j];
            p->z[k] = z;
            if (z > mx) mx = z;
        }
        double se = 0;
        for (int k = 0; k < K; k++) se += exp(p->z[k] - mx);
        const double lse = mx + log(se);
        loss += lse - p->z[p->y[i]];
        for (int k = 0; k < K; k++) {
            const double r = exp(p->z[k] - lse) - (k == p->y[i]);
            for (int j = 0; j < d; j++) g[(size_t)k * d + j] += r * x[j];
            g[(size_t)K * d + k] += r;
        }
    }
    const double inv = 1.0 / (double)p->n;
    double reg = 0;
    for (size_t t = 0; t < P; t++) g[t] *= inv;
    for (size_t t = 0; t < (size_t)K * d; t++) {
        reg += th[t] * th[t];
        g[t] += p->l2 * th[t];
    }
    return loss * inv + 0.5 * p->l2 * reg;
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
static double maxabs(const double *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

void et_logreg_free(et_logreg *m) {
    free(m->mean), free(m->std), free(m->W), free(m->b);
    memset(m, 0, sizeof *m);
}

et_status et_logreg_fit(const float *X, const int *y, int64_t n, int d, int K, double l2,
                        int max_iter, et_logreg *out) {
    memset(out, 0, sizeof *out);
    if (n < 1 || d < 1 || K < 2 || !(l2 >= 0))
        return et_err(ET_ERR_INVALID,
                      "logistic regression: %lld samples, %d features, %d classes, l2 %g (need "
                      "samples, features, two classes and l2 >= 0)",
                      (long long)n, d, K, l2);
    for (int64_t i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= K)
            return et_err(ET_ERR_INVALID,
                          "logistic regression: label %d of row %lld outside [0, %d)", y[i],
                          (long long)i, K);
    out->d = d, out->K = K;
    out->mean = calloc((size_t)d, sizeof(double));
    out->std = calloc((size_t)d, sizeof(double));
    double *Xs = malloc(sizeof(double) * (size_t)(n * d));
    for (int j = 0; j < d; j++) {
        double s = 0, ss = 0;
        for (int64_t i = 0; i < n; i++) s += X[i * d + j];
        const double mu = s / (double)n;
        for (int64_t i = 0; i < n; i++) ss += (X[i * d + j] - mu) * (X[i * d + j] - mu);
        const double sd = sqrt(ss / (double)n);
        out->mean[j] = mu, out->std[j] = sd > 1e-12 ? sd : 1.0;
        for (int64_t i = 0; i < n; i++) Xs[i * d + j] = (X[i * d + j] - mu) / out->std[j];
    }
    enum { M = 10 };
    const size_t P = (size_t)K * d + K;
    double *th = calloc(P, sizeof(double)), *g = malloc(sizeof(double) * P);
    double *th2 = malloc(sizeof(double) * P), *g2 = malloc(sizeof(double) * P);
    double *dir = malloc(sizeof(double) * P), *S = malloc(sizeof(double) * P * M);
    double *Y = malloc(sizeof(double) * P * M), rho[M], alpha[M];
    double *z = malloc(sizeof(double) * (size_t)K);
    lr_prob pr = {Xs, y, n, d, K, l2, z};
    double f = lr_eval(&pr, th, g);
    int mem = 0, head = 0, it = 0;
    for (; it < max_iter && maxabs(g, P) >= 1e-6; it++) {
        // two-loop recursion: dir = -H g
        for (size_t t = 0; t < P; t++) dir[t] = -g[t];
        for (int k = 0; k < mem; k++) {
            int idx = (head - 1 - k + M) % M;
            alpha[idx] = rho[idx] * dot(S + (size_t)idx * P, dir, P);
            for (size_t t = 0; t < P; t++) dir[t] -= alpha[idx] * Y[(size_t)idx * P + t];
        }
        double gamma = 1.0;
        if (mem) {
            int last = (head - 1 + M) % M;
            gamma = dot(S + (size_t)last * P, Y + (size_t)last * P, P) /
                    dot(Y + (size_t)last * P, Y + (size_t)last * P, P);
        }
        for (size_t t = 0; t < P; t++) dir[t] *= gamma;
        for (int k = mem - 1; k >= 0; k--) {
            int idx = (head - 1 - k + M) % M;
            double beta = rho[idx] * dot(Y + (size_t)idx * P, dir, P);
            for (size_t t = 0; t < P; t++) dir[t] += (alpha[idx] - beta) * S[(size_t)idx * P + t];
        }
        double gd = dot(g, dir, P);
        if (gd >= 0) {  // not a descent direction: restart from steepest descent
            for (size_t t = 0; t < P; t++) dir[t] = -g[t];
            gd = dot(g, dir, P);
            mem = 0;
        }
        double step = mem || it ? 1.0 : 1.0 / fmax(1.0, sqrt(dot(g, g, P)));
        double f2 = f;
        int tries = 0;
        for (; tries < 60; tries++, step *= 0.5) {
            for (size_t t = 0; t < P; t++) th2[t] = th[t] + step * dir[t];
            f2 = lr_eval(&pr, th2, g2);
            if (f2 <= f + 1e-4 * step * gd) break;
        }
        if (tries == 60) break;  // no decrease possible in double: converged
        double *s = S + (size_t)head * P, *yv = Y + (size_t)head * P;
        for (size_t t = 0; t < P; t++) s[t] = th2[t] - th[t], yv[t] = g2[t] - g[t];
        const double sy = dot(s, yv, P);
        if (sy > 1e-12) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % M;
            if (mem < M) mem++;
        }
        memcpy(th, th2, sizeof(double) * P), memcpy(g, g2, sizeof(double) * P);
        f = f2;
    }
    out->W = malloc(sizeof(double) * (size_t)K * d);
    out->b = malloc(sizeof(double) * (size_t)K);
    memcpy(out->W, th, sizeof(double) * (size_t)K * d);
    memcpy(out->b, th + (size_t)K * d, sizeof(double) * (size_t)K);
    out->iters = it, out->loss = f, out->grad_norm = maxabs(g, P);
    free(th), free(g), free(th2), free(g2), free(dir), free(S), free(Y), free(z), free(Xs);
    return NULL;
}

int et_logreg_predict(const et_logreg *m, const float *x) {
    int best = 0;
    double bz = -INFINITY;
    for (int k = 0; k < m->K; k++) {
        double z = m->b[k];
        for (int j = 0; j < m->d; j++)
            z += m->W[(size_t)k * m->d + j] * (x[j] - m->mean[j]) / m->std[j];
        if (z > bz) bz = z, best = k;
    }
    return best;
}

// ---- the probe ------------------------------------------------------------------------

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int class_of(char **classes, int K, const char *label) {
    for (int k = 0; k < K; k++)
        if (!strcmp(classes[k], label)) return k;
    return -1;
}

// 5-fold cross-validation of the penalty on the train rows (contiguous folds).
void et_logreg_cv(const float *X, const int *y, int64_t n, int d, int K, double *l2, double *acc) {
    static const double grid[] = {1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1};
    enum { FOLDS = 5 };
    float *Xf = malloc(sizeof(float) * (size_t)(n * d));
    int *yf = malloc(sizeof(int) * (size_t)n);
    double best = -1;
    *l2 = 1e-3;
    for (size_t g = 0; g < sizeof grid / sizeof *grid; g++) {
        int64_t ok = 0, seen = 0;
        for (int f = 0; f < FOLDS; f++) {
            const int64_t lo = n * f / FOLDS, hi = n * (f + 1) / FOLDS;
            int64_t m = 0;
            for (int64_t i = 0; i < n; i++)
                if (i < lo || i >= hi) {
                    memcpy(Xf + m * d, X + i * d, sizeof(float) * (size_t)d);
                    yf[m++] = y[i];
                }
            et_logreg lr;
            et_status st = et_logreg_fit(Xf, yf, m, d, K, grid[g], 1000, &lr);
            if (st) {  // a fold without two classes: skip it
                et_status_free(st);
                continue;
            }
            for (int64_t i = lo; i < hi; i++) ok += et_logreg_predict(&lr, X + i * d) == y[i];
            seen += hi - lo;
            et_logreg_free(&lr);
        }
        const double a = seen ? (double)ok / (double)seen : 0;
        if (a >= best) best = a, *l2 = grid[g];
    }
    *acc = best;
    free(Xf), free(yf);
}

et_status et_probe_run(et_clip_vision *v, const et_image_set *train, const et_image_set *test,
                       int select_layer, bool patch_mean, double l2, et_probe_result *res) {
    memset(res, 0, sizeof *res);
    char **classes = malloc(sizeof(char *) * (size_t)train->n);
    int K = 0;
    for (int64_t i = 0; i < train->n; i++)
        if (train->labels[i][0] && class_of(classes, K, train->labels[i]) < 0)
            classes[K++] = train->labels[i];
    qsort(classes, (size_t)K, sizeof *classes, cmp_str);
    if (K < 2) {
        free(classes);
        return et_err(ET_ERR_INVALID,
                      "linear probe: the train split has %d distinct \"label\" value(s); it needs "
                      "two or more",
                      K);
    }
    et_tensor *ftr = et_probe_features(v, train, select_layer, patch_mean, &res->feature_kind);
    et_tensor *fte = et_probe_features(v, test, select_layer, patch_mean, NULL);
    const int d = (int)ftr->shape[1];
    float *X = calloc((size_t)(train->n * d), sizeof(float));
    int *y = malloc(sizeof(int) * (size_t)train->n);
    int64_t n = 0;
    for (int64_t i = 0; i < train->n; i++) {
        int k = class_of(classes, K, train->labels[i]);
        if (k < 0) continue;
        memcpy(X + n * d, (float *)et_data(ftr) + i * d, sizeof(float) * (size_t)d);
        y[n++] = k;
    }
    res->cv_acc = NAN;
    if (l2 < 0) et_logreg_cv(X, y, n, d, K, &l2, &res->cv_acc);
    res->l2 = l2;
    et_logreg lr;
    et_status st = et_logreg_fit(X, y, n, d, K, l2, 1000, &lr);
    if (!st) {
        int64_t ok = 0;
        for (int64_t i = 0; i < n; i++) ok += et_logreg_predict(&lr, X + i * d) == y[i];
        res->train_acc = (double)ok / (double)n;
        res->n_train = n;
        ok = 0;
        int64_t nt = 0;
        for (int64_t i = 0; i < test->n; i++) {
            if (!test->labels[i][0]) continue;
            int k = class_of(classes, K, test->labels[i]);
            nt++;
            ok += k >= 0 && et_logreg_predict(&lr, (float *)et_data(fte) + i * d) == k;
        }
        res->n_test = nt;
        res->test_acc = nt ? (double)ok / (double)nt : 0;
        res->n_classes = K;
        res->iters = lr.iters;
        et_logreg_free(&lr);
    }
    free(X), free(y), free(classes);
    et_release(ftr), et_release(fte);
    return st;
}
