// core/optim.c - see optim.h
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"

// Elements per OpenMP chunk: parameters smaller than this run on one thread.
#define PAR_MIN 32768
// Fixed reduction chunk for the gradient norm (determinism for any thread count).
#define NORM_CHUNK 65536

typedef struct {
    et_tensor *p;       // the parameter (retained)
    et_tensor *m, *v;   // exp_avg, exp_avg_sq: f32 (f64 for f64 params)
    et_tensor *master;  // f32 master copy for bf16/f16 params, else NULL
    et_tensor *step;    // f64 [], the per-parameter step count
    int group;
} pstate;

typedef struct {
    char *name;
    double base_lr, wd, cur_lr;
} group_t;

struct et_adamw {
    et_adamw_config cfg;
    group_t *groups;
    int ngroups;
    pstate *ps;
    et_tensor **params;
    int nps;
    char **names;
    et_tensor **tensors;
    int nstate;
    int64_t step;
};

// Scalars of one parameter's update, computed in double as torch does in Python.
typedef struct {
    double decay;      // 1 - lr * wd
    double w1;         // 1 - beta1 (lerp weight)
    double beta2, c2;  // beta2, 1 - beta2
    double neg_step;   // -lr / (1 - beta1^t)
    double bc2_sqrt;   // sqrt(1 - beta2^t)
    double eps;
} consts;

et_adamw_config et_adamw_defaults(void) {
    return (et_adamw_config){
        .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 1e-2};
}

et_status et_adamw_new(const et_adamw_config *cfg, et_adamw **out) {
    *out = NULL;
    if (!(cfg->lr >= 0) || !isfinite(cfg->lr))
        return et_err(ET_ERR_INVALID, "adamw: lr must be a finite number >= 0 (got %g)", cfg->lr);
    if (!(cfg->beta1 >= 0 && cfg->beta1 < 1))
        return et_err(ET_ERR_INVALID, "adamw: beta1 must be in [0, 1) (got %g)", cfg->beta1);
    if (!(cfg->beta2 >= 0 && cfg->beta2 < 1))
        return et_err(ET_ERR_INVALID, "adamw: beta2 must be in [0, 1) (got %g)", cfg->beta2);
    if (!(cfg->eps >= 0) || !isfinite(cfg->eps))
        return et_err(ET_ERR_INVALID, "adamw: eps must be a finite number >= 0 (got %g)", cfg->eps);
    if (!(cfg->weight_decay >= 0) || !isfinite(cfg->weight_decay))
        return et_err(ET_ERR_INVALID, "adamw: weight_decay must be >= 0 (got %g)",
                      cfg->weight_decay);
    et_adamw *opt = calloc(1, sizeof(*opt));
    ET_ASSERT(opt, "out of host memory creating the optimizer");
    opt->cfg = *cfg;
    *out = opt;
    return NULL;
}

void et_adamw_free(et_adamw *opt) {
    if (!opt) return;
    for (int i = 0; i < opt->nps; i++) {
        pstate *s = &opt->ps[i];
        et_release(s->p);
        et_release(s->m);
        et_release(s->v);
        et_release(s->master);
        et_release(s->step);
    }
    for (int i = 0; i < opt->nstate; i++) free(opt->names[i]);
    for (int g = 0; g < opt->ngroups; g++) free(opt->groups[g].name);
    free(opt->groups);
    free(opt->ps);
    free(opt->params);
    free(opt->names);
    free(opt->tensors);
    free(opt);
}

static char *str_printf(const char *fmt, const char *a, const char *b, const char *c) {
    int len = snprintf(NULL, 0, fmt, a, b, c);
    char *s = malloc((size_t)len + 1);
    ET_ASSERT(s, "out of host memory");
    snprintf(s, (size_t)len + 1, fmt, a, b, c);
    return s;
}

static void *grow(void *p, size_t n, size_t elem) {
    void *q = realloc(p, n * elem);
    ET_ASSERT(q || n == 0, "out of host memory growing optimizer tables");
    return q;
}

et_status et_adamw_add_group(et_adamw *opt, const et_param_group *group, int n,
                             et_tensor *const *params, const char *const *names, int *index) {
    int k = opt->ngroups;
    double base_lr = group->lr_mult > 0 ? group->lr_mult * opt->cfg.lr : group->lr;
    char gname_buf[32];
    const char *gname = group->name;
    if (!gname) {
        snprintf(gname_buf, sizeof gname_buf, "group%d", k);
        gname = gname_buf;
    }
    if (!(base_lr >= 0) || !isfinite(base_lr))
        return et_err(ET_ERR_INVALID, "adamw group %s: lr must be a finite number >= 0 (got %g)",
                      gname, base_lr);
    if (!(group->weight_decay >= 0) || !isfinite(group->weight_decay))
        return et_err(ET_ERR_INVALID, "adamw group %s: weight_decay must be >= 0 (got %g)", gname,
                      group->weight_decay);
    if (n < 0) return et_err(ET_ERR_INVALID, "adamw group %s: %d parameters", gname, n);
    for (int g = 0; g < opt->ngroups; g++)
        if (!strcmp(opt->groups[g].name, gname))
            return et_err(ET_ERR_INVALID, "adamw: two parameter groups named %s", gname);
    for (int i = 0; i < n; i++) {
        const et_tensor *p = params[i];
        char pb[24];
        if (!names) snprintf(pb, sizeof pb, "%d", i);
        const char *pn = names ? names[i] : pb;
        if (!p) return et_err(ET_ERR_INVALID, "adamw group %s: parameter %s is NULL", gname, pn);
        if (!et_dtype_is_float(p->dtype))
            return et_err(ET_ERR_INVALID, "adamw group %s: parameter %s has dtype %s (float only)",
                          gname, pn, et_dtype_name(p->dtype));
        if (p->device.type != ET_CPU && !et_backend_get(p->device.type))
            return et_err(ET_ERR_UNSUPPORTED,
                          "adamw group %s: parameter %s is on device type %d, which this build "
                          "cannot drive",
                          gname, pn, (int)p->device.type);
        if (p->device.type != ET_CPU && p->dtype == ET_F64)
            return et_err(ET_ERR_UNSUPPORTED,
                          "adamw group %s: parameter %s is f64 on a device (f64 is CPU only)",
                          gname, pn);
        for (int j = 0; j < opt->nps; j++)
            if (opt->params[j] == p)
                return et_err(ET_ERR_INVALID, "adamw group %s: parameter %s is already in group %s",
                              gname, pn, opt->groups[opt->ps[j].group].name);
        for (int j = 0; j < i; j++)
            if (params[j] == p)
                return et_err(ET_ERR_INVALID, "adamw group %s: parameter %s appears twice", gname,
                              pn);
        if (names)
            for (int j = 0; j < i; j++)
                if (!strcmp(names[j], pn))
                    return et_err(ET_ERR_INVALID, "adamw group %s: two parameters named %s", gname,
                                  pn);
    }

    opt->groups = grow(opt->groups, (size_t)k + 1, sizeof(group_t));
    opt->groups[k] = (group_t){
        .name = strdup(gname), .base_lr = base_lr, .wd = group->weight_decay, .cur_lr = base_lr};
    ET_ASSERT(opt->groups[k].name, "out of host memory");
    opt->ngroups = k + 1;
    int np = opt->nps + n;
    opt->ps = grow(opt->ps, (size_t)np, sizeof(pstate));
    opt->params = grow(opt->params, (size_t)np, sizeof(et_tensor *));
    int ns_max = opt->nstate + 4 * n;
    opt->names = grow(opt->names, (size_t)ns_max, sizeof(char *));
    opt->tensors = grow(opt->tensors, (size_t)ns_max, sizeof(et_tensor *));
    for (int i = 0; i < n; i++) {
        et_tensor *p = params[i];
        bool half = p->dtype == ET_BF16 || p->dtype == ET_F16;
        et_dtype sdt = p->dtype == ET_F64 ? ET_F64 : ET_F32;
        pstate *s = &opt->ps[opt->nps];
        s->p = et_retain(p);
        s->m = et_empty_on(p->device, sdt, p->ndim, p->shape);
        s->v = et_empty_on(p->device, sdt, p->ndim, p->shape);
        et_fill_(s->m, 0);
        et_fill_(s->v, 0);
        s->master = NULL;
        if (half) {
            s->master = et_empty_on(p->device, ET_F32, p->ndim, p->shape);
            et_copy_(s->master, p);
        }
        s->step = et_zeros(ET_F64, 0, NULL);
        s->group = k;
        opt->params[opt->nps++] = p;

        char pb[24];
        if (!names) snprintf(pb, sizeof pb, "%d", i);
        const char *pn = names ? names[i] : pb;
        const char *suffix[4] = {"exp_avg", "exp_avg_sq", "step", "master"};
        et_tensor *ts[4] = {s->m, s->v, s->step, s->master};
        for (int j = 0; j < 4; j++) {
            if (!ts[j]) continue;
            opt->names[opt->nstate] = str_printf("%s.%s.%s", gname, pn, suffix[j]);
            opt->tensors[opt->nstate] = ts[j];
            opt->nstate++;
        }
    }
    if (index) *index = k;
    return NULL;
}

// Single-rounding a + b * c for floats, computed in double: the product of two floats is
// exact in double, so this equals fmaf (up to a double-rounding case of ~2^-29 odds) and
// matches torch's FMA-vectorised lerp / addcmul on CPUs without FMA instructions.
static inline float fma_f(float a, float b, float c) {
    return (float)((double)a + (double)b * (double)c);
}

// Updates w (the parameter, or the master copy) in place; when half is not NULL the result
// is also rounded into it (dtype hdt).
static void adamw_f32(float *w, const float *g, float *m, float *v, void *half, et_dtype hdt,
                      int64_t n, const consts *c) {
    const float decay = (float)c->decay, w1 = (float)c->w1, one_m_w1 = 1.0f - w1;
    const bool small = fabsf(w1) < 0.5f;
    const float b2 = (float)c->beta2, c2 = (float)c->c2, neg_step = (float)c->neg_step;
    const float bc2 = (float)c->bc2_sqrt, eps = (float)c->eps;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float wi = w[i] * decay;
        float gi = g[i], mi = m[i];
        // torch lerp: small weight -> m + w (g - m), else g - (g - m) (1 - w)
        mi = small ? fma_f(mi, w1, gi - mi) : fma_f(gi, -(gi - mi), one_m_w1);
        float vi = fma_f(v[i] * b2, c2 * gi, gi);
        float denom = sqrtf(vi) / bc2 + eps;
        wi = wi + (neg_step * mi) / denom;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi;
        if (half) {
            if (hdt == ET_BF16)
                ((uint16_t *)half)[i] = et_f32_to_bf16(wi);
            else
                ((uint16_t *)half)[i] = et_f32_to_f16(wi);
        }
    }
}

static void adamw_f64(double *w, const double *g, double *m, double *v, int64_t n,
                      const consts *c) {
    const double w1 = c->w1, one_m_w1 = 1.0 - w1;
    const bool small = fabs(w1) < 0.5;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        double wi = w[i] * c->decay;
        double gi = g[i], mi = m[i];
        mi = small ? mi + w1 * (gi - mi) : gi - (gi - mi) * one_m_w1;
        double vi = v[i] * c->beta2 + (c->c2 * gi) * gi;
        double denom = sqrt(vi) / c->bc2_sqrt + c->eps;
        w[i] = wi + (c->neg_step * mi) / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

static bool same_dev(et_device a, et_device b) { return a.type == b.type && a.index == b.index; }

// Device parameters of one step, batched per device for the backend's multi-tensor AdamW.
typedef struct {
    et_device dev;
    et_adamw_tensor *ts;
    int n, cap;
} dev_batch;

static void batch_push(dev_batch **bs, int *nb, et_device dev, et_adamw_tensor t) {
    int k = 0;
    while (k < *nb && !same_dev((*bs)[k].dev, dev)) k++;
    if (k == *nb) {
        *bs = grow(*bs, (size_t)*nb + 1, sizeof(dev_batch));
        (*bs)[k] = (dev_batch){.dev = dev};
        (*nb)++;
    }
    dev_batch *b = &(*bs)[k];
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->ts = grow(b->ts, (size_t)b->cap, sizeof(et_adamw_tensor));
    }
    b->ts[b->n++] = t;
}

void et_adamw_step(et_adamw *opt, double lr_factor) {
    ET_ASSERT(isfinite(lr_factor) && lr_factor >= 0, "et_adamw_step: lr factor %g", lr_factor);
    for (int g = 0; g < opt->ngroups; g++)
        opt->groups[g].cur_lr = opt->groups[g].base_lr * lr_factor;
    const et_adamw_config *cfg = &opt->cfg;
    dev_batch *batches = NULL;
    int nbatches = 0;
    for (int i = 0; i < opt->nps; i++) {
        pstate *s = &opt->ps[i];
        et_tensor *p = s->p, *grad = p->grad;
        if (!grad) continue;
        const group_t *gr = &opt->groups[s->group];
        char sp[128], sg[128];
        ET_ASSERT(grad->numel == p->numel && same_dev(grad->device, p->device),
                  "et_adamw_step: %s.%d: grad %s (device type %d) for parameter %s (device type "
                  "%d)",
                  gr->name, i, et_shape_str(grad, sg, sizeof sg), (int)grad->device.type,
                  et_shape_str(p, sp, sizeof sp), (int)p->device.type);
        double *stepp = et_data(s->step);
        if (*stepp == 0 && s->master) et_copy_(s->master, p);  // first step: take the weights
        double t = *stepp + 1;
        *stepp = t;
        double lr = gr->cur_lr;
        consts c = {
            .decay = 1 - lr * gr->wd,
            .w1 = 1 - cfg->beta1,
            .beta2 = cfg->beta2,
            .c2 = 1 - cfg->beta2,
            .neg_step = -(lr / (1 - pow(cfg->beta1, t))),
            .bc2_sqrt = sqrt(1 - pow(cfg->beta2, t)),
            .eps = cfg->eps,
        };
        if (p->dtype == ET_F64) {
            ET_ASSERT(grad->dtype == ET_F64, "et_adamw_step: f64 parameter with a %s grad",
                      et_dtype_name(grad->dtype));
            adamw_f64(et_data(p), et_data(grad), et_data(s->m), et_data(s->v), p->numel, &c);
            continue;
        }
        ET_ASSERT(grad->dtype == ET_F32,
                  "et_adamw_step: %s parameter with a %s grad (f32 "
                  "expected)",
                  et_dtype_name(p->dtype), et_dtype_name(grad->dtype));
        float *w = et_data(s->master ? s->master : p);
        void *half = s->master ? et_data(p) : NULL;
        if (p->device.type == ET_CPU) {
            adamw_f32(w, et_data(grad), et_data(s->m), et_data(s->v), half, p->dtype, p->numel, &c);
        } else {
            et_adamw_tensor at = {.w = w,
                                  .g = et_data(grad),
                                  .m = et_data(s->m),
                                  .v = et_data(s->v),
                                  .half = half,
                                  .hdt = p->dtype,
                                  .n = p->numel,
                                  .decay = c.decay,
                                  .neg_step = c.neg_step,
                                  .bc2_sqrt = c.bc2_sqrt};
            batch_push(&batches, &nbatches, p->device, at);
        }
    }
    for (int k = 0; k < nbatches; k++) {  // one multi-tensor AdamW per device
        dev_batch *b = &batches[k];
        et_backend_ops(b->dev.type, "et_adamw_step")
            ->adamw(b->dev.index, b->n, b->ts, 1 - cfg->beta1, cfg->beta2, 1 - cfg->beta2,
                    cfg->eps);
        free(b->ts);
    }
    free(batches);
    opt->step++;
}

int et_adamw_num_groups(const et_adamw *opt) { return opt->ngroups; }

double et_adamw_group_lr(const et_adamw *opt, int group) {
    ET_ASSERT(group >= 0 && group < opt->ngroups, "et_adamw_group_lr: group %d of %d", group,
              opt->ngroups);
    return opt->groups[group].cur_lr;
}

et_tensor *const *et_adamw_params(const et_adamw *opt, int *n) {
    *n = opt->nps;
    return opt->params;
}

void et_adamw_state_tensors(et_adamw *opt, int *n, const char *const **names,
                            et_tensor *const **tensors) {
    *n = opt->nstate;
    *names = (const char *const *)opt->names;
    *tensors = opt->tensors;
}

int64_t et_adamw_get_step(const et_adamw *opt) { return opt->step; }
void et_adamw_set_step(et_adamw *opt, int64_t step) {
    ET_ASSERT(step >= 0, "et_adamw_set_step: negative step %lld", (long long)step);
    opt->step = step;
}

// ---- gradients ------------------------------------------------------------------

static double sumsq(const et_tensor *g) {
    int64_t n = g->numel;
    int64_t nch = (n + NORM_CHUNK - 1) / NORM_CHUNK;
    if (nch <= 1) {
        double s = 0;
        if (g->dtype == ET_F64) {
            const double *d = et_data(g);
            for (int64_t i = 0; i < n; i++) s += d[i] * d[i];
        } else {
            const float *d = et_data(g);
            for (int64_t i = 0; i < n; i++) s += (double)d[i] * (double)d[i];
        }
        return s;
    }
    double *part = malloc((size_t)nch * sizeof(double));
    ET_ASSERT(part, "out of host memory");
    const bool f64 = g->dtype == ET_F64;
    const void *data = et_data(g);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nch; c++) {
        int64_t lo = c * NORM_CHUNK, hi = lo + NORM_CHUNK < n ? lo + NORM_CHUNK : n;
        double s = 0;
        if (f64) {
            const double *d = data;
            for (int64_t i = lo; i < hi; i++) s += d[i] * d[i];
        } else {
            const float *d = data;
            for (int64_t i = lo; i < hi; i++) s += (double)d[i] * (double)d[i];
        }
        part[c] = s;
    }
    double s = 0;
    for (int64_t c = 0; c < nch; c++) s += part[c];
    free(part);
    return s;
}

static void check_grad(const et_tensor *p) {
    const et_tensor *g = p->grad;
    ET_ASSERT(g->dtype == ET_F32 || g->dtype == ET_F64, "gradient of dtype %s (f32/f64 expected)",
              et_dtype_name(g->dtype));
    ET_ASSERT(g->device.type == ET_CPU || g->dtype == ET_F32,
              "gradient of dtype %s on a device (f32 expected)", et_dtype_name(g->dtype));
}

// The grads of params on one non-CPU device (n of them), for the backend's multi-tensor
// primitives.
typedef struct {
    et_device dev;
    float **x;
    int64_t *numel;
    int n;
} dev_grads;

// Groups the non-CPU grads by device; returns the number of devices (arrays freed with
// dev_grads_free).
static int dev_grads_collect(int n, et_tensor *const *params, dev_grads **out) {
    dev_grads *ds = NULL;
    int nd = 0;
    for (int i = 0; i < n; i++) {
        et_tensor *g = params[i]->grad;
        if (!g || g->device.type == ET_CPU) continue;
        check_grad(params[i]);
        int k = 0;
        while (k < nd && !same_dev(ds[k].dev, g->device)) k++;
        if (k == nd) {
            ds = grow(ds, (size_t)nd + 1, sizeof(dev_grads));
            ds[k] = (dev_grads){.dev = g->device,
                                .x = grow(NULL, (size_t)n, sizeof(float *)),
                                .numel = grow(NULL, (size_t)n, sizeof(int64_t))};
            nd++;
        }
        ds[k].x[ds[k].n] = et_data(g);
        ds[k].numel[ds[k].n++] = g->numel;
    }
    *out = ds;
    return nd;
}

static void dev_grads_free(dev_grads *ds, int nd) {
    for (int k = 0; k < nd; k++) free(ds[k].x), free(ds[k].numel);
    free(ds);
}

// Sum of squares of every grad: CPU grads here, each device's grads in one backend
// reduction (one host synchronisation per device, none per tensor).
static double total_sumsq(int n, et_tensor *const *params) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        if (!params[i]->grad || params[i]->grad->device.type != ET_CPU) continue;
        check_grad(params[i]);
        total += sumsq(params[i]->grad);
    }
    dev_grads *ds;
    int nd = dev_grads_collect(n, params, &ds);
    for (int k = 0; k < nd; k++)
        total +=
            et_backend_ops(ds[k].dev.type, "et_grad_norm")
                ->sumsq_f32(ds[k].dev.index, ds[k].n, (const float *const *)ds[k].x, ds[k].numel);
    dev_grads_free(ds, nd);
    return total;
}

double et_grad_norm(int n, et_tensor *const *params) { return sqrt(total_sumsq(n, params)); }

double et_clip_grad_norm(int n, et_tensor *const *params, double max_norm) {
    double total = et_grad_norm(n, params);
    if (!isfinite(total)) return total;
    // torch: clip_coef = max_norm / (total + 1e-6) as f32 tensor ops (1/x, then * max_norm)
    float coef32 = (1.0f / ((float)total + 1e-6f)) * (float)max_norm;
    double coef64 = max_norm / (total + 1e-6);
    for (int i = 0; i < n; i++) {
        et_tensor *g = params[i]->grad;
        if (!g || g->device.type != ET_CPU) continue;
        int64_t m = g->numel;
        if (g->dtype == ET_F64) {
            if (!(coef64 < 1.0)) continue;
            double *d = et_data(g);
#pragma omp parallel for schedule(static) if (m >= PAR_MIN)
            for (int64_t j = 0; j < m; j++) d[j] *= coef64;
        } else {
            if (!(coef32 < 1.0f)) continue;
            float *d = et_data(g);
#pragma omp parallel for schedule(static) if (m >= PAR_MIN)
            for (int64_t j = 0; j < m; j++) d[j] *= coef32;
        }
    }
    if (coef32 < 1.0f) {
        dev_grads *ds;
        int nd = dev_grads_collect(n, params, &ds);
        for (int k = 0; k < nd; k++)
            et_backend_ops(ds[k].dev.type, "et_clip_grad_norm")
                ->scale_f32(ds[k].dev.index, ds[k].n, ds[k].x, ds[k].numel, coef32);
        dev_grads_free(ds, nd);
    }
    return total;
}

bool et_grads_finite(int n, et_tensor *const *params) {
    for (int i = 0; i < n; i++) {
        const et_tensor *g = params[i]->grad;
        if (!g || g->device.type != ET_CPU) continue;
        check_grad(params[i]);
        int64_t m = g->numel;
        int bad = 0;
        if (g->dtype == ET_F64) {
            const double *d = et_data(g);
#pragma omp parallel for schedule(static) reduction(| : bad) if (m >= PAR_MIN)
            for (int64_t j = 0; j < m; j++) bad |= !isfinite(d[j]);
        } else {
            const float *d = et_data(g);
#pragma omp parallel for schedule(static) reduction(| : bad) if (m >= PAR_MIN)
            for (int64_t j = 0; j < m; j++) bad |= !isfinite(d[j]);
        }
        if (bad) return false;
    }
    // Device grads: their f64 sum of squares is finite exactly when every element is (a
    // finite f32 squared is < 2^256, far from f64 overflow), so one reduction per device.
    dev_grads *ds;
    int nd = dev_grads_collect(n, params, &ds);
    bool ok = true;
    for (int k = 0; ok && k < nd; k++)
        ok = isfinite(
            et_backend_ops(ds[k].dev.type, "et_grads_finite")
                ->sumsq_f32(ds[k].dev.index, ds[k].n, (const float *const *)ds[k].x, ds[k].numel));
    dev_grads_free(ds, nd);
    return ok;
}

// ---- schedules ------------------------------------------------------------------

static const char *const k_sched_names[] = {"constant", "constant_with_warmup", "linear", "cosine"};

int et_schedule_from_name(const char *name) {
    for (int i = 0; i < (int)(sizeof k_sched_names / sizeof *k_sched_names); i++)
        if (!strcmp(name, k_sched_names[i])) return i;
    return -1;
}

const char *et_schedule_name(et_schedule s) {
    ET_ASSERT((unsigned)s < sizeof k_sched_names / sizeof *k_sched_names, "unknown schedule %d",
              (int)s);
    return k_sched_names[s];
}

static double max1(int64_t x) { return (double)(x > 1 ? x : 1); }

double et_lr_factor(et_schedule s, int64_t step, int64_t total_steps, int64_t warmup_steps) {
    if (s == ET_SCHED_CONSTANT) return 1.0;
    if (step < warmup_steps) return (double)step / max1(warmup_steps);
    switch (s) {
        case ET_SCHED_CONSTANT_WARMUP:
            return 1.0;
        case ET_SCHED_LINEAR: {
            double f = (double)(total_steps - step) / max1(total_steps - warmup_steps);
            return f > 0.0 ? f : 0.0;
        }
        case ET_SCHED_COSINE: {
            const double num_cycles = 0.5;
            double progress = (double)(step - warmup_steps) / max1(total_steps - warmup_steps);
            double f = 0.5 * (1.0 + cos(M_PI * num_cycles * 2.0 * progress));
            return f > 0.0 ? f : 0.0;
        }
        default:
            ET_ASSERT(0, "et_lr_factor: unknown schedule %d", (int)s);
    }
    return 0;
}

int64_t et_warmup_steps(int64_t total_steps, int64_t warmup_steps, double warmup_ratio) {
    if (warmup_steps > 0) return warmup_steps;
    return (int64_t)ceil((double)total_steps * warmup_ratio);
}
