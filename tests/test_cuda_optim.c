// tests/test_cuda_optim.c - AdamW, clipping and the finiteness check on device parameters
// against the CPU optimizer: two parameter groups (absolute lr with weight decay, lr_mult
// without), f32 and bf16 parameters (f32 masters), a parameter larger than one kernel block
// chunk, a parameter whose grad is missing in one step, a schedule factor, global-norm
// clipping that triggers in some steps; 6 steps, then every weight, master and moment.
// Tolerance: relative 1e-6 of the max-norm (the arithmetic is the same single-rounding
// f32 sequence on both sides; the GPU's f64 norm sums in another order). bf16 parameters
// must round to the same bf16 values except where the masters differ by 1 ulp.
// With a real GPU the CUDA backend runs (kernels/cuda/optim.cu); without one the host mock
// of tests/cuda_mock.h checks core/optim.c's device batching and dispatch.
#include "../core/optim.h"
#include "../core/rng.h"
#include "cuda_mock.h"
#include "test_util.h"

static const et_device GPU = {ET_CUDA, 0};

#define NP 5
static const int64_t k_sizes[NP] = {300, 5000, 70001, 33, 4096};
static const et_dtype k_dt[NP] = {ET_F32, ET_BF16, ET_F32, ET_F32, ET_BF16};
static const int k_group[NP] = {0, 0, 1, 1, 0};

static et_tensor *host(const et_tensor *t) {
    et_tensor *h = et_empty(t->dtype == ET_F64 ? ET_F64 : ET_F32, t->ndim, t->shape);
    et_copy_(h, t);
    return h;
}

static double rel_diff(const et_tensor *dev, const et_tensor *cpu) {
    et_tensor *a = host(dev), *b = host(cpu);
    double r = tensor_rel_err(a, b);
    et_release(a), et_release(b);
    return r;
}

static void build(et_adamw **opt, et_tensor **ps) {
    et_adamw_config cfg = et_adamw_defaults();
    cfg.lr = 3e-3;
    CHECK(et_adamw_new(&cfg, opt) == NULL, "adamw_new");
    et_param_group ga = {.name = "lora", .lr = 1e-2, .weight_decay = 0.1};
    et_param_group gb = {.name = "proj", .lr_mult = 2.0, .weight_decay = 0.0};
    et_tensor *a[NP], *b[NP];
    const char *na[NP], *nb[NP];
    int n_a = 0, n_b = 0;
    static const char *names[NP] = {"p0", "p1", "p2", "p3", "p4"};
    for (int i = 0; i < NP; i++) {
        if (k_group[i] == 0)
            a[n_a] = ps[i], na[n_a++] = names[i];
        else
            b[n_b] = ps[i], nb[n_b++] = names[i];
    }
    et_status s = et_adamw_add_group(*opt, &ga, n_a, a, na, NULL);
    CHECK(s == NULL, "group a: %s", s ? et_status_msg(s) : "");
    et_status_free(s);
    s = et_adamw_add_group(*opt, &gb, n_b, b, nb, NULL);
    CHECK(s == NULL, "group b: %s", s ? et_status_msg(s) : "");
    et_status_free(s);
}

static void test_adamw_parity(void) {
    et_tensor *pc[NP], *pg[NP];
    for (int i = 0; i < NP; i++) {
        et_tensor *f = et_empty(ET_F32, 1, &k_sizes[i]);
        et_rng_uniform(et_data(f), f->numel, 7, (uint64_t)i * 100000, -1, 1);
        pc[i] = et_empty(k_dt[i], 1, &k_sizes[i]);
        et_copy_(pc[i], f);
        et_release(f);
        pg[i] = et_to_device(pc[i], GPU);
        et_set_requires_grad(pc[i], true);
        et_set_requires_grad(pg[i], true);
    }
    et_adamw *oc, *og;
    build(&oc, pc);
    build(&og, pg);
    int n_clipped = 0;
    for (int step = 0; step < 6; step++) {
        for (int i = 0; i < NP; i++) {
            et_zero_grad(1, &pc[i]);
            et_zero_grad(1, &pg[i]);
            if (i == 3 && step == 2) continue;  // no grad: skipped, its step count stays
            et_tensor *g = et_empty(ET_F32, 1, &k_sizes[i]);
            float scale = step == 4 ? 1e-3f : 1.0f;  // one step below the clip threshold
            et_rng_uniform(et_data(g), g->numel, 11, (uint64_t)(step * 10 + i) * 100000, -scale,
                           scale);
            pc[i]->grad = g;
            pg[i]->grad = et_to_device(g, GPU);
        }
        CHECK(et_grads_finite(NP, pc) && et_grads_finite(NP, pg), "finite grads reported bad");
        double max_norm = 100.0;
        double tc = et_clip_grad_norm(NP, pc, max_norm), tg = et_clip_grad_norm(NP, pg, max_norm);
        CHECK(fabs(tc - tg) <= 1e-12 * tc, "step %d: grad norm %.17g (device) vs %.17g (CPU)", step,
              tg, tc);
        n_clipped += tc > max_norm;
        for (int i = 0; i < NP; i++) {
            if (!pc[i]->grad) continue;
            double r = rel_diff(pg[i]->grad, pc[i]->grad);
            CHECK(r <= 1e-7, "step %d: clipped grad of p%d differs (rel %.3g)", step, i, r);
        }
        double factor = 1.0 - 0.1 * step;
        et_adamw_step(oc, factor);
        et_adamw_step(og, factor);
    }
    CHECK(n_clipped >= 3 && n_clipped < 6, "clipping triggered in %d of 6 steps", n_clipped);
    double worst = 0;
    for (int i = 0; i < NP; i++) {
        double r = rel_diff(pg[i], pc[i]);
        if (k_dt[i] == ET_F32) worst = fmax(worst, r);
        CHECK(r <= (k_dt[i] == ET_BF16 ? 8e-3 : 1e-6), "p%d (%s): relative error %.3g", i,
              et_dtype_name(k_dt[i]), r);
    }
    int nsc, nsg;
    const char *const *namec, *const *nameg;
    et_tensor *const *tsc, *const *tsg;
    et_adamw_state_tensors(oc, &nsc, &namec, &tsc);
    et_adamw_state_tensors(og, &nsg, &nameg, &tsg);
    CHECK(nsc == nsg && nsc == 3 * NP + 2, "state tensors: %d vs %d", nsg, nsc);
    for (int k = 0; k < nsc && k < nsg; k++) {
        CHECK(!strcmp(namec[k], nameg[k]), "state name %s vs %s", nameg[k], namec[k]);
        bool on_dev = strstr(nameg[k], ".step") == NULL;
        CHECK(tsg[k]->device.type == (on_dev ? ET_CUDA : ET_CPU), "%s on device type %d", nameg[k],
              (int)tsg[k]->device.type);
        double r = rel_diff(tsg[k], tsc[k]);
        worst = fmax(worst, r);
        CHECK(r <= 1e-6, "%s: relative error %.3g", nameg[k], r);
    }
    printf(
        "  adamw parity: worst relative error (f32 params, moments, masters) %.3g over 6 steps\n",
        worst);
    for (int k = 0; k < nsg; k++)
        if (!strcmp(nameg[k], "proj.p3.step"))
            CHECK(et_get(tsg[k], 0) == 5.0, "p3 step count %g (one step had no grad)",
                  et_get(tsg[k], 0));
    et_adamw_free(oc), et_adamw_free(og);
    for (int i = 0; i < NP; i++) {
        et_zero_grad(1, &pc[i]), et_zero_grad(1, &pg[i]);
        et_release(pc[i]), et_release(pg[i]);
    }
}

static void test_nonfinite_and_errors(void) {
    et_tensor *p = et_empty_on(GPU, ET_F32, 1, (int64_t[]){9000});
    et_fill_(p, 0.5);
    et_set_requires_grad(p, true);
    p->grad = et_empty_on(GPU, ET_F32, 1, (int64_t[]){9000});
    et_fill_(p->grad, 0.25);
    CHECK(et_grads_finite(1, &p), "finite grad reported bad");
    CHECK_CLOSE(et_grad_norm(1, &p), 0.25 * sqrt(9000.0), 1e-12);
    et_set(p->grad, 8765, NAN);
    CHECK(!et_grads_finite(1, &p), "a NaN grad was not found");
    double t = et_clip_grad_norm(1, &p, 1.0);
    CHECK(!isfinite(t), "clip of a NaN grad returned %g", t);
    CHECK(et_get(p->grad, 0) == 0.25, "a non-finite total must leave the grads alone");
    et_set(p->grad, 8765, INFINITY);
    CHECK(!et_grads_finite(1, &p), "an Inf grad was not found");

    et_adamw *opt;
    et_adamw_config cfg = et_adamw_defaults();
    CHECK(et_adamw_new(&cfg, &opt) == NULL, "adamw_new");
    et_tensor *q = et_empty_on(GPU, ET_F64, 1, (int64_t[]){4});
    et_param_group g = {.lr = 1e-3};
    et_status s = et_adamw_add_group(opt, &g, 1, &q, NULL, NULL);
    CHECK(s && strstr(et_status_msg(s), "f64"), "f64 device parameter: %s",
          s ? et_status_msg(s) : "accepted");
    et_status_free(s);
    et_adamw_free(opt);
    et_release(q);
    et_zero_grad(1, &p);
    et_release(p);
}

int main(void) {
    bool real = mock_backend_install();
    printf("backend for ET_CUDA: %s\n", gpu_backend_name());
    if (!real) printf("(no GPU: the host mock checks the device paths of core/optim.c)\n");
    RUN(test_adamw_parity);
    RUN(test_nonfinite_and_errors);
    return test_summary();
}
