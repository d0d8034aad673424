// tests/test_cuda_model.c - the whole tiny LLaVA-style model (configs/tiny-random.json: a
// 3-layer CLIP-style tower, mlp2x_gelu projector, landmark expert, 2-layer LLaMA decoder
// with LoRA r 16 on its Linears) on the GPU against the same model on the CPU: one
// forward/backward on a padded batch of two samples (image placeholder, prior token,
// ignored labels), then the loss and the gradient of every trainable (LoRA A and B of
// every layer, projector, expert), then two AdamW steps and the updated trainables.
// LoRA B starts random (not PEFT's zeros) so every A gets a gradient.
// Tolerances (max-norm relative, per tensor): f32 1e-4; bf16 weights/activations 3e-2 (both
// sides round at different points: the CPU composes LoRA from bf16 linears, the GPU fuses
// it; measured on the emulator, the CPU's bf16 gradients are up to 1.5% and the GPU's up to
// 2.6% off the f32 model's, and 2.4% apart from each other at the third iteration).
// Runs with block recompute off and on (train.recompute), which must not change anything.
// Failures name the tensor (HF/PEFT name) and the error. Exits 77 without a GPU, unless
// EMOTUNE_TEST_HOST=1: then the "device" side runs on the CPU too (a check of this harness
// on machines without a GPU; the comparison is then exact up to recompute).
#include "../core/device.h"
#include "../core/optim.h"
#include "../core/rng.h"
#include "../train/runconfig.h"
#include "test_util.h"
#include "train/emo_model.h"
#include "train/io/device_move.h"

static et_device GPU = {ET_CUDA, 0};  // the device side (the CPU with EMOTUNE_TEST_HOST=1)

static bool build(const char *wdt, bool recompute, et_emo_model *m) {
    char o1[64], o2[64];
    snprintf(o1, sizeof o1, "model.weight_dtype=%s", wdt);
    snprintf(o2, sizeof o2, "train.recompute=%s", recompute ? "true" : "false");
    const char *ov[] = {o1, o2, "model.tokenizer=", "lora.dropout=0"};
    et_run_config cfg;
    et_status s = et_run_config_load("configs/tiny-random.json", 4, ov, &cfg);
    CHECK(s == NULL, "config: %s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return false;
    }
    s = et_emo_model_build(&cfg, m);
    CHECK(s == NULL, "build: %s", et_status_msg(s));
    et_run_config_free(&cfg);
    if (s) {
        et_status_free(s);
        return false;
    }
    // LoRA B random (same values in every build) so that A's gradients are not zero.
    const char *names[512];
    et_tensor *ps[512];
    int n = et_emo_model_trainables(m, NULL, NULL);
    ET_ASSERT(n <= 512, "too many trainables");
    et_emo_model_trainables(m, names, ps);
    for (int i = 0; i < n; i++)
        if (strstr(names[i], "lora_B"))
            et_rng_uniform(et_data(ps[i]), ps[i]->numel, 77, (uint64_t)i * 1000003, -0.05f, 0.05f);
    return true;
}

typedef struct {
    et_tensor *ids[2], *labels[2], *pixels, *landmarks;
} batch;

static void make_batch(const et_emo_model *m, batch *b) {
    const int64_t len[2] = {20, 13};
    const int64_t V = m->llm->cfg.vocab_size;
    for (int s = 0; s < 2; s++) {
        b->ids[s] = et_empty(ET_I32, 1, &len[s]);
        b->labels[s] = et_empty(ET_I32, 1, &len[s]);
        int32_t *id = et_data(b->ids[s]), *lb = et_data(b->labels[s]);
        for (int64_t t = 0; t < len[s]; t++) {
            id[t] = 3 + (int32_t)(et_rng_u32(5, (uint64_t)(s * 100 + t)) % (uint32_t)(V - 3));
            lb[t] = t < 4 ? ET_MLLM_IGNORE : id[t];
        }
        id[2] = m->mllm.image_token;  // the image (and the prior token after it) goes here
        lb[2] = ET_MLLM_IGNORE;
    }
    const int64_t S = m->image_size;
    b->pixels = et_empty(ET_F32, 4, (int64_t[]){2, 3, S, S});
    et_rng_uniform(et_data(b->pixels), b->pixels->numel, 6, 0, -1, 1);
    b->landmarks = et_empty(ET_F32, 2, (int64_t[]){2, m->prior.landmark_dim});
    et_rng_uniform(et_data(b->landmarks), b->landmarks->numel, 8, 0, -1, 1);
}

static void free_batch(batch *b) {
    for (int s = 0; s < 2; s++) et_release(b->ids[s]), et_release(b->labels[s]);
    et_release(b->pixels), et_release(b->landmarks);
}

// Loss of one forward/backward; pixels and landmarks on the model's device, ids and labels
// on the CPU (as the trainer hands them over).
static et_tensor *step(et_emo_model *m, const batch *b, et_device dev) {
    et_tensor *px = et_to_device(b->pixels, dev), *lm = et_to_device(b->landmarks, dev);
    et_tensor *prior = et_face_prior_forward(&m->prior, lm, NULL, NULL);
    et_mllm_input in = {
        .batch = 2, .ids = b->ids, .labels = b->labels, .pixels = px, .prior = prior};
    et_tensor *loss = NULL;
    et_status s = et_mllm_loss(&m->mllm, &in, NULL, &loss, NULL);
    CHECK(s == NULL, "et_mllm_loss: %s", et_status_msg(s));
    et_status_free(s);
    if (loss) et_backward(loss);
    et_release(prior), et_release(px), et_release(lm);
    return loss;
}

static et_tensor *host32(const et_tensor *t) {
    et_tensor *h = et_empty(ET_F32, t->ndim, t->shape);
    et_copy_(h, t);
    return h;
}

static double compare_trainables(const char *what, et_emo_model *mc, et_emo_model *mg, bool grads,
                                 double tol) {
    const char *nc[512], *ng[512];
    et_tensor *pc[512], *pg[512];
    int n = et_emo_model_trainables(mc, nc, pc);
    int n2 = et_emo_model_trainables(mg, ng, pg);
    CHECK(n == n2 && n > 0, "%s: %d vs %d trainables", what, n2, n);
    double worst = 0;
    int n_lora = 0;
    for (int i = 0; i < n && i < n2; i++) {
        CHECK(!strcmp(nc[i], ng[i]), "%s: trainable %d named %s vs %s", what, i, ng[i], nc[i]);
        CHECK(pg[i]->device.type == GPU.type, "%s: %s is not on the GPU", what, ng[i]);
        const et_tensor *a = grads ? pg[i]->grad : pg[i], *b = grads ? pc[i]->grad : pc[i];
        if (!a || !b) {
            CHECK(!a && !b, "%s: %s has a gradient on one side only (gpu %p, cpu %p)", what, ng[i],
                  (const void *)a, (const void *)b);
            continue;
        }
        CHECK(a->device.type == GPU.type, "%s: grad of %s is not on the GPU", what, ng[i]);
        et_tensor *ha = host32(a), *hb = host32(b);
        double r = tensor_rel_err(ha, hb);
        if (r > worst) worst = r;
        n_lora += strstr(ng[i], "lora_") != NULL;
        CHECK(r <= tol, "%s: %s %s relative error %.3g > %.3g", what, ng[i],
              grads ? "grad" : "value", r, tol);
        et_release(ha), et_release(hb);
    }
    CHECK(n_lora >= 2 * 7 * 2, "%s: only %d LoRA tensors compared", what, n_lora);
    return worst;
}

static et_adamw *make_opt(et_emo_model *m) {
    et_adamw_config cfg = et_adamw_defaults();
    cfg.lr = 1e-3;
    et_adamw *opt = NULL;
    CHECK(et_adamw_new(&cfg, &opt) == NULL, "adamw");
    for (int g = 0; g < m->n_groups; g++) {
        et_param_group pg = {.name = m->groups[g].name, .lr = m->groups[g].lr, .weight_decay = 0};
        et_status s = et_adamw_add_group(opt, &pg, m->groups[g].n, m->groups[g].params,
                                         m->groups[g].names, NULL);
        CHECK(s == NULL, "group %s: %s", m->groups[g].name, et_status_msg(s));
        et_status_free(s);
    }
    return opt;
}

static void run_case(const char *wdt, bool recompute, double tol) {
    et_emo_model mc, mg;
    memset(&mc, 0, sizeof mc), memset(&mg, 0, sizeof mg);
    if (!build(wdt, recompute, &mc) || !build(wdt, recompute, &mg)) return;
    size_t bytes = 0;
    et_status s = et_emo_model_to_device(&mg, GPU, &bytes);
    CHECK(s == NULL, "to device: %s", et_status_msg(s));
    et_status_free(s);
    batch b;
    make_batch(&mc, &b);
    char what[96];
    for (int it = 0; it < 3; it++) {
        et_tensor *lc = step(&mc, &b, et_cpu()), *lg = step(&mg, &b, GPU);
        if (!lc || !lg) {
            et_release(lc), et_release(lg);
            break;
        }
        CHECK(lg->device.type == GPU.type, "loss not on the GPU");
        double vc = et_get(lc, 0), vg = et_get(lg, 0);
        snprintf(what, sizeof what, "%s recompute=%d iteration %d", wdt, recompute, it);
        CHECK(fabs(vg - vc) <= tol * fabs(vc), "%s: loss %.8g (gpu) vs %.8g (cpu)", what, vg, vc);
        double wg = compare_trainables(what, &mc, &mg, true, tol);
        printf("  %s: loss cpu %.6f gpu %.6f; worst grad rel err %.3g; %.1f MiB moved\n", what, vc,
               vg, wg, (double)bytes / (1 << 20));
        et_release(lc), et_release(lg);
        if (it == 2) break;
        // Both optimizers step from the CPU's gradients: AdamW's first step is about
        // -lr g / (|g| + eps), so an element whose gradient is ~eps (cancellation noise,
        // e.g. 7.1e-9 vs 6.5e-9 next to a max of 1.4e-2) moves by a different fraction of
        // lr on either side however close the gradients are, and the two models would
        // drift apart. The gradients were compared above; this compares the steps.
        {
            int nt = et_emo_model_trainables(&mc, NULL, NULL);
            et_tensor *tc[512], *tg[512];
            et_emo_model_trainables(&mc, NULL, tc);
            et_emo_model_trainables(&mg, NULL, tg);
            for (int i = 0; i < nt; i++)
                if (tc[i]->grad && tg[i]->grad) et_copy_(tg[i]->grad, tc[i]->grad);
        }
        et_adamw *oc = make_opt(&mc), *og = make_opt(&mg);  // one step, fresh state each time
        et_adamw_step(oc, 1.0);
        et_adamw_step(og, 1.0);
        double wv = compare_trainables(what, &mc, &mg, false, tol);
        printf("  %s: after AdamW worst value rel err %.3g\n", what, wv);
        et_adamw_free(oc), et_adamw_free(og);
        int n = et_emo_model_trainables(&mc, NULL, NULL);
        et_tensor *pc[512], *pg[512];
        et_emo_model_trainables(&mc, NULL, pc);
        et_emo_model_trainables(&mg, NULL, pg);
        et_zero_grad(n, pc);
        et_zero_grad(n, pg);
    }
    int n = et_emo_model_trainables(&mc, NULL, NULL);
    et_tensor *pc[512], *pg[512];
    et_emo_model_trainables(&mc, NULL, pc);
    et_emo_model_trainables(&mg, NULL, pg);
    et_zero_grad(n, pc);
    et_zero_grad(n, pg);
    free_batch(&b);
    et_emo_model_free(&mc);
    et_emo_model_free(&mg);
}

static void test_f32(void) { run_case("f32", false, 1e-4); }
static void test_f32_recompute(void) { run_case("f32", true, 1e-4); }
static void test_bf16(void) { run_case("bf16", false, 3e-2); }
static void test_bf16_recompute(void) { run_case("bf16", true, 3e-2); }

int main(void) {
    if (et_device_count(ET_CUDA) < 1) {
        const char *h = getenv("EMOTUNE_TEST_HOST");
        if (!h || strcmp(h, "1")) {
            printf("no CUDA device: skipped\n");
            return 77;
        }
        GPU = et_cpu();
        printf("no CUDA device: EMOTUNE_TEST_HOST=1 runs both sides on the CPU\n");
    }
    RUN(test_f32);
    RUN(test_f32_recompute);
    RUN(test_bf16);
    RUN(test_bf16_recompute);
    return test_summary();
}
