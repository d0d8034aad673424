// tests/test_optim.c - AdamW, parameter groups, master weights, clipping, schedules and
// optimizer state export/import (core/optim.h).
//
// References are computed here in double with torch.optim.AdamW's formulas; schedule
// values were worked out by hand from HF transformers' lr lambdas (shown in comments).
#include <math.h>

#include "../core/optim.h"
#include "../core/status.h"
#include "test_util.h"

// Reference AdamW state for one parameter, in double.
typedef struct {
    double p[64], m[64], v[64];
    int n, t;
} ref_adamw;

static void ref_step(ref_adamw *r, const double *g, double lr, double wd, double b1, double b2,
                     double eps) {
    r->t++;
    double bc1 = 1 - pow(b1, r->t), bc2 = 1 - pow(b2, r->t);
    for (int i = 0; i < r->n; i++) {
        r->p[i] *= 1 - lr * wd;
        r->m[i] = b1 * r->m[i] + (1 - b1) * g[i];
        r->v[i] = b2 * r->v[i] + (1 - b2) * g[i] * g[i];
        double denom = sqrt(r->v[i]) / sqrt(bc2) + eps;
        r->p[i] -= lr / bc1 * r->m[i] / denom;
    }
}

static et_tensor *vec_f32(int n, const double *x) {
    et_tensor *t = et_empty(ET_F32, 1, (int64_t[]){n});
    for (int i = 0; i < n; i++) et_set(t, i, x[i]);
    return t;
}

static void set_grad(et_tensor *p, const double *g) {
    et_release(p->grad);
    p->grad = et_empty(p->dtype == ET_F64 ? ET_F64 : ET_F32, p->ndim, p->shape);
    for (int64_t i = 0; i < p->numel; i++) et_set(p->grad, i, g[i]);
}

static et_adamw *new_opt(double lr, double wd) {
    et_adamw_config cfg = et_adamw_defaults();
    cfg.lr = lr;
    cfg.weight_decay = wd;
    et_adamw *opt = NULL;
    et_status st = et_adamw_new(&cfg, &opt);
    CHECK(!st, "%s", et_status_msg(st));
    return opt;
}

static void add_group(et_adamw *opt, const char *name, double lr, double wd, int n,
                      et_tensor *const *ps) {
    et_param_group g = {.name = name, .lr = lr, .weight_decay = wd};
    et_status st = et_adamw_add_group(opt, &g, n, ps, NULL, NULL);
    CHECK(!st, "%s", et_status_msg(st));
}

// Max relative error of t against r->p, element-wise relative to max(|ref|, 1e-3).
static double err_vs_ref(const et_tensor *t, const ref_adamw *r) {
    double e = 0;
    for (int i = 0; i < r->n; i++) {
        double d = fabs(et_get(t, i) - r->p[i]) / fmax(fabs(r->p[i]), 1e-3);
        if (!(d <= e)) e = d;
    }
    return e;
}

// Three AdamW steps on hand-picked values against the double reference; also f64.
static void test_adamw_matches_reference(void) {
    const double p0[6] = {0.5, -1.25, 2.0, 0.0, -0.03125, 3.5};
    const double gs[3][6] = {{0.1, -0.2, 0.3, 1e-3, -5.0, 0.0},
                             {0.2, 0.1, -0.3, 2e-3, -4.0, 1e-4},
                             {-0.1, 0.05, 0.25, -1e-3, 3.0, -1e-4}};
    const double lr = 1e-2, wd = 0.1;
    for (int pass = 0; pass < 2; pass++) {
        et_dtype dt = pass ? ET_F64 : ET_F32;
        et_tensor *p = et_empty(dt, 1, (int64_t[]){6});
        for (int i = 0; i < 6; i++) et_set(p, i, p0[i]);
        et_set_requires_grad(p, true);
        et_adamw *opt = new_opt(lr, wd);
        add_group(opt, NULL, lr, wd, 1, &p);
        ref_adamw r = {.n = 6};
        for (int i = 0; i < 6; i++) r.p[i] = dt == ET_F32 ? (double)(float)p0[i] : p0[i];
        for (int s = 0; s < 3; s++) {
            set_grad(p, gs[s]);
            et_adamw_step(opt, 1.0);
            ref_step(&r, gs[s], lr, wd, 0.9, 0.999, 1e-8);
            double e = err_vs_ref(p, &r);
            CHECK(e < (dt == ET_F32 ? 1e-6 : 1e-13), "%s step %d: rel err %.3g", et_dtype_name(dt),
                  s + 1, e);
        }
        CHECK(et_adamw_get_step(opt) == 3);
        // Step 1 by hand for element 0: m = 0.01, v = 1e-5, m_hat = 0.1, sqrt(v_hat) = 0.1,
        // p = 0.5 * (1 - 1e-3) - 1e-2 * 0.1 / (0.1 + 1e-8) = 0.4895000001 (approximately).
        et_tensor *q = et_full(dt, 1, (int64_t[]){1}, 0.5);
        et_set_requires_grad(q, true);
        et_adamw *o2 = new_opt(lr, wd);
        add_group(o2, NULL, lr, wd, 1, &q);
        set_grad(q, (double[]){0.1});
        et_adamw_step(o2, 1.0);
        CHECK_CLOSE(et_get(q, 0), 0.5 * (1 - 1e-3) - 1e-2 * 0.1 / (0.1 + 1e-8),
                    dt == ET_F32 ? 1e-7 : 1e-15);
        et_adamw_free(o2);
        et_release(q);
        et_adamw_free(opt);
        et_release(p);
    }
}

// With a zero gradient only the decoupled decay acts: p = p * (1 - lr * wd), m = v = 0.
static void test_weight_decay_decoupled(void) {
    const double p0[3] = {1.0, -2.0, 0.75};
    et_tensor *p = vec_f32(3, p0);
    et_set_requires_grad(p, true);
    et_adamw *opt = new_opt(0.1, 0.5);
    add_group(opt, NULL, 0.1, 0.5, 1, &p);
    set_grad(p, (double[]){0, 0, 0});
    et_adamw_step(opt, 1.0);
    for (int i = 0; i < 3; i++) CHECK(et_get(p, i) == (float)p0[i] * (float)(1 - 0.1 * 0.5));
    int n;
    const char *const *names;
    et_tensor *const *ts;
    et_adamw_state_tensors(opt, &n, &names, &ts);
    CHECK(n == 3, "n = %d", n);  // exp_avg, exp_avg_sq, step
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++) CHECK(et_get(ts[k], i) == 0.0, "%s[%d]", names[k], i);
    // The decay is not part of the gradient: same grad, wd 0 vs wd 0.5 differ only by
    // the multiplicative factor applied before the Adam update.
    et_tensor *a = vec_f32(3, p0), *b = vec_f32(3, p0);
    et_set_requires_grad(a, true);
    et_set_requires_grad(b, true);
    et_adamw *oa = new_opt(0.1, 0), *ob = new_opt(0.1, 0.5);
    add_group(oa, NULL, 0.1, 0.0, 1, &a);
    add_group(ob, NULL, 0.1, 0.5, 1, &b);
    set_grad(a, (double[]){0.3, 0.3, 0.3});
    set_grad(b, (double[]){0.3, 0.3, 0.3});
    et_adamw_step(oa, 1.0);
    et_adamw_step(ob, 1.0);
    for (int i = 0; i < 3; i++) {
        double upd_a = et_get(a, i) - p0[i];               // -lr * sign(g)
        double upd_b = et_get(b, i) - p0[i] * (1 - 0.05);  // same Adam update
        CHECK_CLOSE(upd_a, -0.1, 1e-6);
        CHECK_CLOSE(upd_b, -0.1, 1e-6);
    }
    et_adamw_free(oa);
    et_adamw_free(ob);
    et_adamw_free(opt);
    et_release(a);
    et_release(b);
    et_release(p);
}

// Bias correction: the first step moves every element by lr * sign(g) whatever |g| is;
// the second step with the same g does too (m_hat = g, v_hat = g^2).
static void test_bias_correction(void) {
    const double g[4] = {1e-3, -10.0, 0.5, -2e-2};
    et_tensor *p = et_zeros(ET_F32, 1, (int64_t[]){4});
    et_set_requires_grad(p, true);
    et_adamw *opt = new_opt(1e-2, 0);
    add_group(opt, NULL, 1e-2, 0.0, 1, &p);
    for (int s = 1; s <= 2; s++) {
        set_grad(p, g);
        et_adamw_step(opt, 1.0);
        for (int i = 0; i < 4; i++) {
            double expect = -s * 1e-2 * (g[i] > 0 ? 1 : -1) * fabs(g[i]) / (fabs(g[i]) + 1e-8);
            CHECK_CLOSE(et_get(p, i), expect, 2e-6);
        }
    }
    et_adamw_free(opt);
    et_release(p);
}

// Two groups with their own lr and weight decay; the schedule factor scales both.
static void test_param_groups(void) {
    const double p0[4] = {0.25, -0.5, 1.0, 2.0};
    const double g1[4] = {0.5, -0.25, 0.125, 1.0};
    const double g2[4] = {-1.0, 0.75, 0.0, 3.0};
    et_tensor *lora = vec_f32(4, p0), *proj = vec_f32(4, p0);
    et_set_requires_grad(lora, true);
    et_set_requires_grad(proj, true);
    et_adamw *opt = new_opt(1e-4, 0.01);
    et_param_group gl = {.name = "lora", .lr = 1e-4, .weight_decay = 0.0};
    et_param_group gp = {.name = "projector", .lr_mult = 0.2, .weight_decay = 0.05};
    int il = -1, ip = -1;
    et_status st = et_adamw_add_group(opt, &gl, 1, &lora, (const char *[]){"A"}, &il);
    CHECK(!st, "%s", et_status_msg(st));
    st = et_adamw_add_group(opt, &gp, 1, &proj, (const char *[]){"w"}, &ip);
    CHECK(!st, "%s", et_status_msg(st));
    CHECK(il == 0 && ip == 1 && et_adamw_num_groups(opt) == 2);
    ref_adamw rl = {.n = 4}, rp = {.n = 4};
    for (int i = 0; i < 4; i++) rl.p[i] = rp.p[i] = p0[i];
    const double factors[3] = {0.5, 1.0, 0.25};
    for (int s = 0; s < 3; s++) {
        set_grad(lora, s % 2 ? g2 : g1);
        set_grad(proj, s % 2 ? g1 : g2);
        et_adamw_step(opt, factors[s]);
        ref_step(&rl, s % 2 ? g2 : g1, 1e-4 * factors[s], 0.0, 0.9, 0.999, 1e-8);
        ref_step(&rp, s % 2 ? g1 : g2, 2e-5 * factors[s], 0.05, 0.9, 0.999, 1e-8);
        CHECK(err_vs_ref(lora, &rl) < 1e-6, "lora step %d: %.3g", s, err_vs_ref(lora, &rl));
        CHECK(err_vs_ref(proj, &rp) < 1e-6, "proj step %d: %.3g", s, err_vs_ref(proj, &rp));
        CHECK_CLOSE(et_adamw_group_lr(opt, 0), 1e-4 * factors[s], 1e-15);
        CHECK_CLOSE(et_adamw_group_lr(opt, 1), 2e-5 * factors[s], 1e-15);
    }
    int n;
    const char *const *names;
    et_tensor *const *ts;
    et_adamw_state_tensors(opt, &n, &names, &ts);
    CHECK(n == 6 && !strcmp(names[0], "lora.A.exp_avg") && !strcmp(names[1], "lora.A.exp_avg_sq") &&
          !strcmp(names[2], "lora.A.step") && !strcmp(names[3], "projector.w.exp_avg"));
    CHECK(et_get(ts[2], 0) == 3.0);
    // Config errors come back as a status.
    et_tensor *dup[1] = {lora};
    st =
        et_adamw_add_group(opt, &(et_param_group){.name = "again", .lr = 1e-3}, 1, dup, NULL, NULL);
    CHECK(st && et_status_code(st) == ET_ERR_INVALID);
    et_status_free(st);
    st =
        et_adamw_add_group(opt, &(et_param_group){.name = "lora", .lr = 1e-3}, 0, NULL, NULL, NULL);
    CHECK(st != NULL);
    et_status_free(st);
    st = et_adamw_add_group(opt, &(et_param_group){.lr = -1}, 0, NULL, NULL, NULL);
    CHECK(st != NULL);
    et_status_free(st);
    et_adamw *bad = NULL;
    et_adamw_config cfg = et_adamw_defaults();
    cfg.beta2 = 1.0;
    st = et_adamw_new(&cfg, &bad);
    CHECK(st && !bad);
    et_status_free(st);
    et_adamw_free(opt);
    et_release(lora);
    et_release(proj);
}

// bf16 parameter: the f32 master accumulates 1e-4 updates that bf16 alone would lose
// (bf16 spacing just below 1.0 is 2^-8 = 0.0039).
static void test_bf16_master(void) {
    et_tensor *p = et_full(ET_BF16, 1, (int64_t[]){3}, 1.0);
    et_set_requires_grad(p, true);
    et_adamw *opt = new_opt(1e-4, 0);
    add_group(opt, NULL, 1e-4, 0.0, 1, &p);
    for (int s = 0; s < 100; s++) {
        set_grad(p, (double[]){1.0, -1.0, 0.0});
        CHECK(p->grad->dtype == ET_F32);
        et_adamw_step(opt, 1.0);
    }
    int n;
    const char *const *names;
    et_tensor *const *ts;
    et_adamw_state_tensors(opt, &n, &names, &ts);
    CHECK(n == 4 && !strcmp(names[3], "group0.0.master"), "n = %d", n);
    et_tensor *master = ts[3];
    CHECK(master->dtype == ET_F32 && p->dtype == ET_BF16);
    CHECK_CLOSE(et_get(master, 0), 1.0 - 100 * 1e-4, 1e-5);
    CHECK_CLOSE(et_get(master, 1), 1.0 + 100 * 1e-4, 1e-5);
    CHECK(et_get(master, 2) == 1.0);
    for (int i = 0; i < 3; i++) {
        uint16_t want = et_f32_to_bf16((float)et_get(master, i));
        CHECK(ET_DATA(uint16_t, p)[i] == want, "param %d is not the rounded master", i);
    }
    CHECK(et_get(p, 0) < 1.0 && et_get(p, 1) > 1.0, "p = %g %g", et_get(p, 0), et_get(p, 1));
    // A single 1e-4 update on a bare bf16 value would round back to 1.0.
    CHECK(et_bf16_to_f32(et_f32_to_bf16(1.0f - 1e-4f)) == 1.0f);
    et_adamw_free(opt);
    et_release(p);
}

// The master is taken from the parameter at its first step, so weights loaded after
// et_adamw_add_group are used.
static void test_master_taken_at_first_step(void) {
    et_tensor *p = et_zeros(ET_F16, 1, (int64_t[]){2});
    et_set_requires_grad(p, true);
    et_adamw *opt = new_opt(1e-3, 0);
    add_group(opt, NULL, 1e-3, 0.0, 1, &p);
    et_set(p, 0, 0.5);
    et_set(p, 1, -0.25);
    set_grad(p, (double[]){1.0, 1.0});
    et_adamw_step(opt, 1.0);
    CHECK_CLOSE(et_get(p, 0), 0.499, 1e-3);
    CHECK_CLOSE(et_get(p, 1), -0.251, 1e-3);
    et_adamw_free(opt);
    et_release(p);
}

// A parameter whose grad is NULL is skipped: unchanged, step count not advanced.
static void test_null_grad_skipped(void) {
    et_tensor *a = vec_f32(2, (double[]){1.0, 2.0}), *b = vec_f32(2, (double[]){3.0, 4.0});
    et_set_requires_grad(a, true);
    et_set_requires_grad(b, true);
    et_tensor *ps[2] = {a, b};
    et_adamw *opt = new_opt(1e-2, 0.1);
    add_group(opt, NULL, 1e-2, 0.1, 2, ps);
    set_grad(b, (double[]){0.5, 0.5});
    et_adamw_step(opt, 1.0);
    CHECK(et_get(a, 0) == 1.0f && et_get(a, 1) == 2.0f);
    CHECK(et_get(b, 0) < 3.0 && et_get(b, 1) < 4.0);
    int n;
    const char *const *names;
    et_tensor *const *ts;
    et_adamw_state_tensors(opt, &n, &names, &ts);
    CHECK(!strcmp(names[2], "group0.0.step") && et_get(ts[2], 0) == 0.0);
    CHECK(!strcmp(names[5], "group0.1.step") && et_get(ts[5], 0) == 1.0);
    // a's first real step gets the t = 1 bias correction: a full lr-sized move.
    et_zero_grad(2, ps);
    set_grad(a, (double[]){1e-3, -1e-3});
    et_adamw_step(opt, 1.0);
    CHECK_CLOSE(et_get(a, 0), 1.0 * (1 - 1e-3) - 1e-2, 1e-6);
    CHECK_CLOSE(et_get(a, 1), 2.0 * (1 - 1e-3) + 1e-2, 1e-6);
    et_adamw_free(opt);
    et_release(a);
    et_release(b);
}

// clip_grad_norm_: total = 13 for grads (3, 4) and (12); coefficient only when < 1.
static void test_clip_grad_norm(void) {
    et_tensor *a = vec_f32(2, (double[]){0, 0}), *b = vec_f32(1, (double[]){0});
    et_tensor *c = vec_f32(1, (double[]){0});  // no grad
    et_tensor *ps[3] = {a, b, c};
    set_grad(a, (double[]){3, 4});
    set_grad(b, (double[]){12});
    CHECK(et_grad_norm(3, ps) == 13.0);
    double tot = et_clip_grad_norm(3, ps, 26.0);  // coef ~ 2: untouched
    CHECK(tot == 13.0);
    CHECK(et_get(a->grad, 0) == 3.0 && et_get(a->grad, 1) == 4.0 && et_get(b->grad, 0) == 12.0);
    tot = et_clip_grad_norm(3, ps, 13.0);  // coef = 13 / (13 + 1e-6) < 1: applied
    CHECK(tot == 13.0);
    float coef = (1.0f / (13.0f + 1e-6f)) * 13.0f;
    CHECK(et_get(a->grad, 1) == 4.0f * coef);
    tot = et_clip_grad_norm(3, ps, 6.5);
    CHECK_CLOSE(tot, 13.0, 1e-6);
    CHECK_CLOSE(et_get(a->grad, 0), 1.5, 1e-6);
    CHECK_CLOSE(et_get(a->grad, 1), 2.0, 1e-6);
    CHECK_CLOSE(et_get(b->grad, 0), 6.0, 1e-6);
    CHECK_CLOSE(et_grad_norm(3, ps), 6.5, 1e-6);
    CHECK(c->grad == NULL);
    // f64 grads, and a large tensor through the chunked parallel path.
    et_tensor *d = et_zeros(ET_F64, 1, (int64_t[]){2});
    set_grad(d, (double[]){6, 8});
    CHECK(et_clip_grad_norm(1, &d, 5.0) == 10.0);
    CHECK(et_get(d->grad, 0) == 6.0 * (5.0 / (10.0 + 1e-6)));
    et_tensor *big = et_zeros(ET_F32, 1, (int64_t[]){300001});
    big->grad = test_rand_tensor(ET_F32, 1, big->shape, 1.0);
    double s = 0;
    for (int64_t i = 0; i < big->numel; i++) s += et_get(big->grad, i) * et_get(big->grad, i);
    CHECK_CLOSE(et_grad_norm(1, &big), sqrt(s), 1e-12);
    // Finite checks.
    et_tensor *all[4] = {a, b, c, big};
    CHECK(et_grads_finite(4, all));
    ET_DATA(float, big->grad)[123456] = NAN;
    CHECK(!et_grads_finite(4, all));
    CHECK(isnan(et_clip_grad_norm(4, all, 1.0)));
    ET_DATA(float, big->grad)[123456] = 0;
    ET_DATA(float, a->grad)[1] = -INFINITY;
    CHECK(!et_grads_finite(4, all));
    ET_DATA(double, d->grad)[0] = NAN;
    CHECK(!et_grads_finite(1, &d));
    et_release(a);
    et_release(b);
    et_release(c);
    et_release(d);
    et_release(big);
}

// HF lambdas, total 10, warmup 2 (factor(k) is used by optimizer step k, 0-based):
//   warmup k < 2: k / 2 -> 0, 0.5
//   constant_with_warmup: 1 from k = 2
//   linear: max(0, (10 - k) / 8) -> k=2: 1, k=6: 0.5, k=9: 0.125, k=10: 0, k=11: 0
//   cosine: p = (k - 2) / 8, max(0, 0.5 (1 + cos(pi p))) -> k=2: 1, k=4: 0.853553390593,
//           k=6: 0.5, k=10: 0, k=12 (p 1.25): 0.146446609407 (HF does not clamp the
//           cycle, only negatives)
static void test_schedules(void) {
    const double tol = 1e-12;
    for (int s = ET_SCHED_CONSTANT_WARMUP; s <= ET_SCHED_COSINE; s++) {
        CHECK(et_lr_factor(s, 0, 10, 2) == 0.0);
        CHECK(et_lr_factor(s, 1, 10, 2) == 0.5);
        CHECK_CLOSE(et_lr_factor(s, 2, 10, 2), 1.0, tol);
    }
    CHECK(et_lr_factor(ET_SCHED_CONSTANT, 0, 10, 2) == 1.0);
    CHECK(et_lr_factor(ET_SCHED_CONSTANT_WARMUP, 9, 10, 2) == 1.0);
    CHECK(et_lr_factor(ET_SCHED_CONSTANT_WARMUP, 50, 10, 2) == 1.0);
    CHECK_CLOSE(et_lr_factor(ET_SCHED_LINEAR, 6, 10, 2), 0.5, tol);
    CHECK_CLOSE(et_lr_factor(ET_SCHED_LINEAR, 9, 10, 2), 0.125, tol);
    CHECK(et_lr_factor(ET_SCHED_LINEAR, 10, 10, 2) == 0.0);
    CHECK(et_lr_factor(ET_SCHED_LINEAR, 11, 10, 2) == 0.0);
    CHECK_CLOSE(et_lr_factor(ET_SCHED_COSINE, 4, 10, 2), 0.853553390593, 1e-11);
    CHECK_CLOSE(et_lr_factor(ET_SCHED_COSINE, 6, 10, 2), 0.5, tol);
    CHECK_CLOSE(et_lr_factor(ET_SCHED_COSINE, 10, 10, 2), 0.0, tol);
    CHECK_CLOSE(et_lr_factor(ET_SCHED_COSINE, 12, 10, 2), 0.146446609407, 1e-11);
    // No warmup: linear k=0 -> 10/10 = 1, cosine k=5 of 10 -> 0.5.
    CHECK(et_lr_factor(ET_SCHED_LINEAR, 0, 10, 0) == 1.0);
    CHECK_CLOSE(et_lr_factor(ET_SCHED_COSINE, 5, 10, 0), 0.5, tol);
    // Warmup 1: max(1, 1) -> k=0: 0 then the decay starts at k=1 with 1.
    CHECK(et_lr_factor(ET_SCHED_LINEAR, 0, 5, 1) == 0.0);
    CHECK(et_lr_factor(ET_SCHED_LINEAR, 1, 5, 1) == 1.0);
    // Golden MLP schedule (cosine, warmup 3, total 20): k=3 -> 1, k=19 -> p=16/17:
    // 0.5 (1 + cos(pi 16/17)) = 0.00426055...
    CHECK_CLOSE(et_lr_factor(ET_SCHED_COSINE, 19, 20, 3), 0.5 * (1 + cos(M_PI * 16.0 / 17.0)), tol);
    // Warmup from a ratio: ceil(total * ratio) in double, like TrainingArguments:
    // 1000 * 0.03 = 30 -> 30; 7 * 0.1 = 0.7000000000000001 -> 1; 100 * 0.07 =
    // 7.000000000000001 -> 8 (Python gives the same); steps win when > 0.
    CHECK(et_warmup_steps(1000, 0, 0.03) == 30);
    CHECK(et_warmup_steps(7, 0, 0.1) == 1);
    CHECK(et_warmup_steps(100, 0, 0.07) == 8);
    CHECK(et_warmup_steps(100, 0, 0.0) == 0);
    CHECK(et_warmup_steps(100, 5, 0.5) == 5);
    int64_t w = et_warmup_steps(20, 0, 0.1);  // 2
    CHECK(w == 2);
    CHECK(et_lr_factor(ET_SCHED_COSINE, 1, 20, w) == 0.5);
    CHECK(et_schedule_from_name("cosine") == ET_SCHED_COSINE);
    CHECK(et_schedule_from_name("constant_with_warmup") == ET_SCHED_CONSTANT_WARMUP);
    CHECK(et_schedule_from_name("linear") == ET_SCHED_LINEAR);
    CHECK(et_schedule_from_name("polynomial") == -1);
    CHECK(!strcmp(et_schedule_name(ET_SCHED_CONSTANT), "constant"));
}

// Export the state after 3 steps, rebuild a second optimizer from copies, and check that
// 3 more steps are bit-identical in both.
static void test_state_roundtrip(void) {
    const int64_t shp[2] = {3, 50000};  // large enough for the OpenMP path
    et_tensor *w = test_rand_tensor(ET_F32, 2, shp, 0.5);
    et_tensor *h = test_rand_tensor(ET_BF16, 1, (int64_t[]){7}, 0.5);
    et_tensor *ps[2] = {w, h};
    et_set_requires_grad(w, true);
    et_set_requires_grad(h, true);
    et_adamw *opt = new_opt(1e-2, 0.01);
    et_param_group g = {.name = "all", .lr = 1e-2, .weight_decay = 0.01};
    et_status st = et_adamw_add_group(opt, &g, 2, ps, (const char *[]){"w", "h"}, NULL);
    CHECK(!st, "%s", et_status_msg(st));
    et_tensor *grads[6][2];
    for (int s = 0; s < 6; s++) {
        grads[s][0] = test_rand_tensor(ET_F32, 2, shp, 0.1);
        grads[s][1] = test_rand_tensor(ET_F32, 1, (int64_t[]){7}, 0.1);
    }
    for (int s = 0; s < 3; s++) {
        for (int k = 0; k < 2; k++) {
            et_release(ps[k]->grad);
            ps[k]->grad = et_clone(grads[s][k]);
        }
        et_adamw_step(opt, et_lr_factor(ET_SCHED_COSINE, s, 6, 1));
    }
    // "Save": copies of the state and the parameters.
    int n;
    const char *const *names;
    et_tensor *const *ts;
    et_adamw_state_tensors(opt, &n, &names, &ts);
    CHECK(n == 7, "n = %d", n);
    et_tensor *saved[8];
    for (int i = 0; i < n; i++) saved[i] = et_clone(ts[i]);
    et_tensor *w2 = et_clone(w), *h2 = et_clone(h);
    et_tensor *ps2[2] = {w2, h2};
    int64_t step = et_adamw_get_step(opt);
    // "Restore" into a fresh optimizer built the same way.
    et_adamw *opt2 = new_opt(1e-2, 0.01);
    st = et_adamw_add_group(opt2, &g, 2, ps2, (const char *[]){"w", "h"}, NULL);
    CHECK(!st, "%s", et_status_msg(st));
    int n2;
    const char *const *names2;
    et_tensor *const *ts2;
    et_adamw_state_tensors(opt2, &n2, &names2, &ts2);
    CHECK(n2 == n);
    for (int i = 0; i < n2 && i < n; i++) {
        CHECK(!strcmp(names[i], names2[i]));
        et_copy_(ts2[i], saved[i]);
    }
    CHECK(!strcmp(names2[6], "all.h.master") && !strcmp(names2[2], "all.w.step"));
    et_adamw_set_step(opt2, step);
    for (int s = 3; s < 6; s++) {
        for (int k = 0; k < 2; k++) {
            et_release(ps[k]->grad);
            ps[k]->grad = et_clone(grads[s][k]);
            et_release(ps2[k]->grad);
            ps2[k]->grad = et_clone(grads[s][k]);
        }
        double f = et_lr_factor(ET_SCHED_COSINE, et_adamw_get_step(opt), 6, 1);
        et_adamw_step(opt, f);
        et_adamw_step(opt2, et_lr_factor(ET_SCHED_COSINE, et_adamw_get_step(opt2), 6, 1));
    }
    CHECK(et_adamw_get_step(opt2) == 6);
    CHECK(!memcmp(et_data(w), et_data(w2), et_nbytes(w)), "f32 param differs after resume");
    CHECK(!memcmp(et_data(h), et_data(h2), et_nbytes(h)), "bf16 param differs after resume");
    for (int i = 0; i < n; i++)
        CHECK(!memcmp(et_data(ts[i]), et_data(ts2[i]), et_nbytes(ts[i])), "%s differs", names[i]);
    for (int i = 0; i < n; i++) et_release(saved[i]);
    for (int s = 0; s < 6; s++) {
        et_release(grads[s][0]);
        et_release(grads[s][1]);
    }
    et_adamw_free(opt);
    et_adamw_free(opt2);
    et_release(w);
    et_release(h);
    et_release(w2);
    et_release(h2);
}

int main(void) {
    RUN(test_adamw_matches_reference);
    RUN(test_weight_decay_decoupled);
    RUN(test_bias_correction);
    RUN(test_param_groups);
    RUN(test_bf16_master);
    RUN(test_master_taken_at_first_step);
    RUN(test_null_grad_skipped);
    RUN(test_clip_grad_norm);
    RUN(test_schedules);
    RUN(test_state_roundtrip);
    return test_summary();
}
