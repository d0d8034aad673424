// tests/test_golden_mlp.c - 20 training steps of a 2-layer MLP against PyTorch.
//
// tests/golden/mlp_adamw.safetensors comes from tools/golden/gen_mlp.py: x [16, 8] ->
// Linear(8, 32) -> GELU (erf) -> Linear(32, 5) -> cross_entropy(ignore_index -100), AdamW
// (lr 1e-2, betas (0.9, 0.999), eps 1e-8, wd 0.01), clip_grad_norm_(1.0) and HF's cosine
// schedule with warmup 3 of 20 steps, all in float32. This test runs the same loop with
// et_linear / et_gelu / et_cross_entropy, et_clip_grad_norm, et_lr_factor and et_adamw and
// checks the losses, the pre-clip grad norms and the final weights (max-norm relative
// error <= 1e-5). A second test checkpoints the optimizer state to a safetensors file at
// step 10, rebuilds everything from that file and checks the resumed run ends bit-identical
// to the uninterrupted one. GOLDEN_VERBOSE=1 prints every measured error.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../core/ops.h"
#include "../core/optim.h"
#include "../core/safetensors.h"
#include "../core/status.h"
#include "test_util.h"

#define FIXTURE "tests/golden/mlp_adamw.safetensors"
#define STEPS 20
#define WARMUP 3
#define NPARAM 4

static const char *const k_pnames[NPARAM] = {"w1", "b1", "w2", "b2"};

typedef struct {
    et_tensor *x, *targets, *losses, *norms;
    et_tensor *init[NPARAM], *final[NPARAM];
} fixture;

static bool verbose(void) {
    const char *v = getenv("GOLDEN_VERBOSE");
    return v && *v && *v != '0';
}

static et_tensor *load(et_st_file *f, const char *name) {
    et_tensor *t = NULL;
    et_status st = et_st_load(f, name, &t);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    return t;
}

static bool fixture_load(fixture *fx) {
    memset(fx, 0, sizeof(*fx));
    et_st_file *f = NULL;
    et_status st = et_st_open(FIXTURE, &f);
    if (st) {
        CHECK(0, "%s (run from the repository root)", et_status_msg(st));
        et_status_free(st);
        return false;
    }
    fx->x = load(f, "x");
    fx->targets = load(f, "targets");
    fx->losses = load(f, "losses");
    fx->norms = load(f, "grad_norms");
    for (int i = 0; i < NPARAM; i++) {
        char name[32];
        fx->init[i] = load(f, k_pnames[i]);
        snprintf(name, sizeof name, "final_%s", k_pnames[i]);
        fx->final[i] = load(f, name);
    }
    et_st_close(f);
    bool ok = fx->x && fx->targets && fx->losses && fx->norms;
    for (int i = 0; i < NPARAM; i++) ok = ok && fx->init[i] && fx->final[i];
    return ok;
}

static void fixture_free(fixture *fx) {
    et_release(fx->x);
    et_release(fx->targets);
    et_release(fx->losses);
    et_release(fx->norms);
    for (int i = 0; i < NPARAM; i++) {
        et_release(fx->init[i]);
        et_release(fx->final[i]);
    }
}

static et_adamw *make_opt(et_tensor *const *params) {
    et_adamw_config cfg = et_adamw_defaults();
    cfg.lr = 1e-2;
    cfg.weight_decay = 0.01;
    et_adamw *opt = NULL;
    et_status st = et_adamw_new(&cfg, &opt);
    CHECK(!st, "%s", et_status_msg(st));
    et_param_group g = {.name = "mlp", .lr_mult = 1.0, .weight_decay = 0.01};
    st = et_adamw_add_group(opt, &g, NPARAM, params, k_pnames, NULL);
    CHECK(!st, "%s", et_status_msg(st));
    return opt;
}

// Steps [from, to): loss, backward, clip, AdamW step with the cosine factor, zero grads.
// losses/norms (f32 [STEPS]) receive the values of those steps.
static void train(const fixture *fx, et_adamw *opt, et_tensor *const *p, int from, int to,
                  et_tensor *losses, et_tensor *norms) {
    for (int k = from; k < to; k++) {
        et_tensor *z = et_linear(fx->x, p[0], p[1]);
        et_tensor *h = et_gelu(z);
        et_tensor *logits = et_linear(h, p[2], p[3]);
        et_tensor *loss = et_cross_entropy(logits, fx->targets, -100);
        et_set(losses, k, et_get(loss, 0));
        et_backward(loss);
        CHECK(et_grads_finite(NPARAM, p), "step %d: non-finite grads", k);
        et_set(norms, k, et_clip_grad_norm(NPARAM, p, 1.0));
        et_adamw_step(opt, et_lr_factor(ET_SCHED_COSINE, et_adamw_get_step(opt), STEPS, WARMUP));
        et_zero_grad(NPARAM, p);
        et_release(z);
        et_release(h);
        et_release(logits);
        et_release(loss);
    }
}

static void new_params(const fixture *fx, et_tensor **p) {
    for (int i = 0; i < NPARAM; i++) {
        p[i] = et_clone(fx->init[i]);
        et_set_requires_grad(p[i], true);
    }
}

static void test_mlp_adamw_matches_torch(void) {
    fixture fx;
    if (!fixture_load(&fx)) {
        fixture_free(&fx);
        return;
    }
    CHECK(fx.targets->dtype == ET_I32 && fx.losses->numel == STEPS);
    et_tensor *p[NPARAM];
    new_params(&fx, p);
    et_adamw *opt = make_opt(p);
    et_tensor *losses = et_zeros(ET_F32, 1, (int64_t[]){STEPS});
    et_tensor *norms = et_zeros(ET_F32, 1, (int64_t[]){STEPS});
    train(&fx, opt, p, 0, STEPS, losses, norms);
    CHECK(et_adamw_get_step(opt) == STEPS);

    double e_loss = tensor_rel_err(losses, fx.losses);
    double e_norm = tensor_rel_err(norms, fx.norms);
    CHECK(e_loss <= 1e-5, "losses: relative error %.3g", e_loss);
    CHECK(e_norm <= 1e-5, "grad norms: relative error %.3g", e_norm);
    double e_w[NPARAM];
    for (int i = 0; i < NPARAM; i++) {
        e_w[i] = tensor_rel_err(p[i], fx.final[i]);
        CHECK(e_w[i] <= 1e-5, "final %s: relative error %.3g", k_pnames[i], e_w[i]);
    }
    // The run really trained: the loss fell and the first steps were clipped.
    CHECK(et_get(losses, STEPS - 1) < 0.75 * et_get(losses, 0));
    CHECK(et_get(norms, 0) > 1.0 && et_get(norms, STEPS - 1) < 1.0);
    if (verbose() || g_test_cur_failed) {
        printf("  losses rel err %.3g, grad norms rel err %.3g\n", e_loss, e_norm);
        for (int i = 0; i < NPARAM; i++) printf("  final %s rel err %.3g\n", k_pnames[i], e_w[i]);
        for (int k = 0; k < STEPS; k++)
            printf("  step %2d loss %.7f (torch %.7f) norm %.7f (torch %.7f)\n", k,
                   et_get(losses, k), et_get(fx.losses, k), et_get(norms, k), et_get(fx.norms, k));
    }
    et_adamw_free(opt);
    for (int i = 0; i < NPARAM; i++) et_release(p[i]);
    et_release(losses);
    et_release(norms);
    fixture_free(&fx);
}

// Checkpoint at step 10 through a safetensors file (parameters + optimizer state, step in
// the metadata), restore into fresh tensors and a fresh optimizer, finish the run, and
// compare bit for bit with the uninterrupted run.
static void test_mlp_resume_bit_identical(void) {
    fixture fx;
    if (!fixture_load(&fx)) {
        fixture_free(&fx);
        return;
    }
    et_tensor *losses = et_zeros(ET_F32, 1, (int64_t[]){STEPS});
    et_tensor *norms = et_zeros(ET_F32, 1, (int64_t[]){STEPS});
    et_tensor *ref[NPARAM], *p[NPARAM], *q[NPARAM];
    new_params(&fx, ref);
    et_adamw *oref = make_opt(ref);
    train(&fx, oref, ref, 0, STEPS, losses, norms);
    et_tensor *ref_losses = et_clone(losses);

    new_params(&fx, p);
    et_adamw *o1 = make_opt(p);
    train(&fx, o1, p, 0, STEPS / 2, losses, norms);
    // Save: parameters under their names, optimizer state under "optim/<state name>".
    int ns;
    const char *const *snames;
    et_tensor *const *stens;
    et_adamw_state_tensors(o1, &ns, &snames, &stens);
    int n = NPARAM + ns;
    const char **names = calloc((size_t)n, sizeof(*names));
    char **owned = calloc((size_t)ns, sizeof(*owned));
    et_tensor **ts = calloc((size_t)n, sizeof(*ts));
    for (int i = 0; i < NPARAM; i++) {
        names[i] = k_pnames[i];
        ts[i] = p[i];
    }
    for (int i = 0; i < ns; i++) {
        owned[i] = malloc(strlen(snames[i]) + 8);
        sprintf(owned[i], "optim/%s", snames[i]);
        names[NPARAM + i] = owned[i];
        ts[NPARAM + i] = stens[i];
    }
    char path[128], stepbuf[32];
    snprintf(path, sizeof path, "/tmp/emotune_test_golden_mlp_%d.safetensors", (int)getpid());
    snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)et_adamw_get_step(o1));
    const char *meta[2] = {"optimizer_step", stepbuf};
    et_status st = et_st_save(path, n, names, ts, 1, meta);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    et_adamw_free(o1);  // the first half's objects are gone from here on
    for (int i = 0; i < NPARAM; i++) et_release(p[i]);

    // Restore.
    et_st_file *f = NULL;
    st = et_st_open(path, &f);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    if (f) {
        for (int i = 0; i < NPARAM; i++) {
            et_tensor *t = load(f, k_pnames[i]);
            q[i] = et_clone(t);
            et_release(t);
            et_set_requires_grad(q[i], true);
        }
        et_adamw *o2 = make_opt(q);
        int ns2;
        const char *const *snames2;
        et_tensor *const *stens2;
        et_adamw_state_tensors(o2, &ns2, &snames2, &stens2);
        CHECK(ns2 == ns);
        for (int i = 0; i < ns2; i++) {
            char name[256];
            snprintf(name, sizeof name, "optim/%s", snames2[i]);
            et_tensor *t = load(f, name);
            if (t) et_copy_(stens2[i], t);
            et_release(t);
        }
        const char *sv = et_st_metadata(f, "optimizer_step");
        CHECK(sv != NULL);
        et_adamw_set_step(o2, sv ? atoll(sv) : 0);
        et_st_close(f);
        train(&fx, o2, q, STEPS / 2, STEPS, losses, norms);
        CHECK(!memcmp(et_data(losses), et_data(ref_losses), et_nbytes(losses)),
              "losses differ after resume");
        for (int i = 0; i < NPARAM; i++) {
            CHECK(!memcmp(et_data(q[i]), et_data(ref[i]), et_nbytes(ref[i])),
                  "%s differs after resume", k_pnames[i]);
            et_release(q[i]);
        }
        et_adamw_free(o2);
    }
    unlink(path);
    for (int i = 0; i < ns; i++) free(owned[i]);
    free(owned);
    free(names);
    free(ts);
    et_adamw_free(oref);
    for (int i = 0; i < NPARAM; i++) et_release(ref[i]);
    et_release(ref_losses);
    et_release(losses);
    et_release(norms);
    fixture_free(&fx);
}

int main(void) {
    RUN(test_mlp_adamw_matches_torch);
    RUN(test_mlp_resume_bit_identical);
    return test_summary();
}
