// tools/bench/bench_cuda_step.c - one LoRA training step of a LLaVA-1.5-7B-shaped model on
// the GPU: CLIP ViT-L/14-336 tower (frozen, bf16, feature layer -2, 576 patch tokens),
// mlp2x_gelu projector (trainable), Vicuna-7B decoder shape (frozen bf16 base) with LoRA
// r 128 / alpha 256 / dropout 0.05 on all 7 Linears of every layer; random weights;
// sequences of 2048 tokens (576 image tokens + 1472 text, the first 64 text labels
// ignored); block recompute on every decoder layer (the tower runs without grad, so it
// keeps no activations to recompute); AdamW (fused, device) with clipping at 1.0.
//   bench_cuda_step [--batch 8,16] [--steps 5] [--seq 2048]
//   bench_cuda_step --reduced     the same code path at a small shape, checked against the
//                                 CPU backend: loss and every LoRA/projector grad within
//                                 2e-2 relative (bf16); exit 1 on a mismatch
//                                 (EMOTUNE_BENCH_HOST=1 without a GPU: both sides on the CPU,
//                                 a check of the harness itself)
// Output (read by tools/bench/bench_cuda_step.py):
//   ceiling bf16_gemm_tflops <x>                       (8192^3 bf16 GEMM, best of 10)
//   step mb <B> seq <T> step_s <s> tokens_per_s <x> model_tflop <x> mfu <x> peak_gib <x> loss <x>
// MFU counts model FLOPs only (recompute excluded): decoder Linears + lm_head 4 N T
// (forward and dx; frozen base, no dW), LoRA 6 r (in + out) T per adapted Linear,
// causal attention 3 x 2 B S^2 H L, tower forward 2 N_vit B 577 + its attention,
// projector 6 N_proj B 576. Step time: median of --steps timed steps after 2 warm-ups,
// device-synchronised. Peak: the CUDA caching allocator's bytes_peak over the timed steps.
// Needs the CUDA build and a GPU (prints "skipped", exits 77 otherwise).
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../core/autograd.h"
#include "../../core/device.h"
#include "../../core/ops.h"
#include "../../core/optim.h"
#include "../../core/rng.h"
#include "train/models/clip.h"
#include "train/io/device_move.h"
#include "train/models/llama.h"
#include "train/models/lora.h"
#include "train/models/mllm.h"
#include "train/models/projector.h"

#ifndef EMOTUNE_HAVE_CUDA
int main(void) {
    printf("skipped: CUDA backend not built\n");
    return 77;
}
#else

static et_device GPU = {ET_CUDA, 0};  // the CPU for --reduced with EMOTUNE_BENCH_HOST=1

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(et_status s, const char *what) {
    if (!s) return;
    fprintf(stderr, "bench_cuda_step: %s: %s\n", what, et_status_msg(s));
    exit(2);
}

typedef struct {
    int64_t V, H, I, L, nh;           // decoder
    int64_t vD, vI, vL, vH, img, ps;  // tower
    int r;
    double alpha, dropout;
    int64_t seq, ignore_text;
} shape;

static const shape k_7b = {32000, 4096, 11008, 32,  32,  1024, 4096, 24,
                           16,    336,  14,    128, 256, 0.05, 2048, 64};
static const shape k_small = {1000, 256, 688, 2, 4, 128, 512, 3, 4, 56, 14, 16, 32, 0, 64, 8};

typedef struct {
    et_llama *llm;
    et_clip_vision vision;
    et_projector proj;
    et_mllm mllm;
    int n_train;
    et_tensor **train;  // LoRA A, B of every Linear, then the projector's 4
    const char **names;
} model;

static et_dtype g_wdt = ET_BF16;

static void cast_slot(et_tensor **t, et_dtype dt) {
    if (!*t || (*t)->dtype == dt) return;
    et_tensor *c = et_empty_on((*t)->device, dt, (*t)->ndim, (*t)->shape);
    et_copy_(c, *t);
    et_release(*t);
    *t = c;
}

static void build(const shape *s, model *m) {
    memset(m, 0, sizeof *m);
    char js[1024];
    snprintf(js, sizeof js,
             "{\"vocab_size\": %lld, \"hidden_size\": %lld, \"intermediate_size\": %lld, "
             "\"num_hidden_layers\": %lld, \"num_attention_heads\": %lld, "
             "\"num_key_value_heads\": %lld, \"max_position_embeddings\": 4096, "
             "\"rms_norm_eps\": 1e-5, \"rope_theta\": 10000.0, \"tie_word_embeddings\": false}",
             (long long)s->V, (long long)s->H, (long long)s->I, (long long)s->L, (long long)s->nh,
             (long long)s->nh);
    et_llama_config lc;
    die(et_llama_config_parse(js, "bench decoder", &lc), "decoder config");
    m->llm = et_llama_new_random(&lc, g_wdt, 0.02, 1);
    for (int64_t l = 0; l < s->L; l++) m->llm->layers[l].recompute = true;
    snprintf(js, sizeof js,
             "{\"hidden_size\": %lld, \"intermediate_size\": %lld, \"num_hidden_layers\": %lld, "
             "\"num_attention_heads\": %lld, \"num_channels\": 3, \"image_size\": %lld, "
             "\"patch_size\": %lld, \"layer_norm_eps\": 1e-5, \"hidden_act\": \"quick_gelu\"}",
             (long long)s->vD, (long long)s->vI, (long long)s->vL, (long long)s->vH,
             (long long)s->img, (long long)s->ps);
    et_clip_config cc;
    die(et_clip_config_from_json(js, "bench tower", &cc), "tower config");
    die(et_clip_vision_new_random(&cc, 0.02, 2, &m->vision), "tower");
    // The tower in the weight dtype (a bf16 checkpoint), norms and embeddings included.
    et_linear_layer *vl[6 * 64];
    int nvl = et_clip_vision_linears(&m->vision, vl);
    for (int i = 0; i < nvl; i++) cast_slot(&vl[i]->weight, g_wdt), cast_slot(&vl[i]->bias, g_wdt);
    cast_slot(&m->vision.patch_weight, g_wdt);
    et_projector_init(&m->proj, ET_PROJ_MLP2X_GELU, s->vD, s->H, ET_PROJ_NAMES_LLAVA, 3, 0);
    m->mllm = (et_mllm){.vision = &m->vision,
                        .proj = &m->proj,
                        .llm = m->llm,
                        .select_layer = -2,
                        .feature = ET_CLIP_PATCH,
                        .image_token = ET_LLAVA_IMAGE_TOKEN};
    et_lora_config lo = et_lora_config_default();
    lo.r = s->r, lo.alpha = s->alpha, lo.dropout = s->dropout, lo.seed = 4;
    const char *tg[7] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                         "gate_proj", "up_proj", "down_proj"};
    lo.n_targets = 7;
    for (int i = 0; i < 7; i++) snprintf(lo.targets[i], sizeof lo.targets[i], "%s", tg[i]);
    int n_att = 0;
    die(et_mllm_attach_lora(&m->mllm, &lo, &n_att), "lora");
}

// The trainables after the model reached its device (pointers change in the move).
static void collect(model *m) {
    int nl = et_mllm_decoder_linears(m->llm, NULL);
    int np = et_projector_params(&m->proj, NULL, NULL);
    m->train = malloc(sizeof(et_tensor *) * (size_t)(2 * nl + np));
    m->names = malloc(sizeof(char *) * (size_t)(2 * nl + np));
    m->n_train = 0;
    for (int64_t l = 0; l < m->llm->cfg.num_hidden_layers; l++) {
        et_llama_layer *L = &m->llm->layers[l];
        et_linear_layer *xs[7] = {&L->q_proj,    &L->k_proj,  &L->v_proj,   &L->o_proj,
                                  &L->gate_proj, &L->up_proj, &L->down_proj};
        for (int k = 0; k < 7; k++) {
            if (!xs[k]->lora_a) continue;
            m->names[m->n_train] = xs[k]->name;
            m->train[m->n_train++] = xs[k]->lora_a;
            m->names[m->n_train] = xs[k]->name;
            m->train[m->n_train++] = xs[k]->lora_b;
        }
    }
    m->n_train += et_projector_params(&m->proj, m->names + m->n_train, m->train + m->n_train);
}

static void free_model(model *m) {
    et_llama_free(m->llm);
    et_clip_vision_free(&m->vision);
    et_projector_free(&m->proj);
    free(m->train);
    free(m->names);
}

static void to_gpu(model *m) {
    et_device_mover mv;
    et_mover_init(&mv, GPU);
    et_mover_llama(&mv, m->llm);
    et_mover_clip(&mv, &m->vision);
    et_mover_projector(&mv, &m->proj);
    fprintf(stderr, "moved %.2f GiB to the GPU\n", (double)mv.bytes_moved / (1 << 30));
    et_mover_free(&mv);
}

typedef struct {
    int B;
    et_tensor **ids, **labels, *pixels;
} batch;

static void make_batch(const shape *s, int B, et_device dev, batch *b) {
    const int64_t np = (s->img / s->ps) * (s->img / s->ps), n = s->seq - np + 1;
    b->B = B;
    b->ids = calloc((size_t)B, sizeof(et_tensor *));
    b->labels = calloc((size_t)B, sizeof(et_tensor *));
    for (int i = 0; i < B; i++) {
        b->ids[i] = et_empty(ET_I32, 1, &n);
        b->labels[i] = et_empty(ET_I32, 1, &n);
        int32_t *id = et_data(b->ids[i]), *lb = et_data(b->labels[i]);
        for (int64_t t = 0; t < n; t++) {
            id[t] = 3 + (int32_t)(et_rng_u32(9, (uint64_t)(i * n + t)) % (uint32_t)(s->V - 3));
            lb[t] = t < 1 + s->ignore_text ? ET_MLLM_IGNORE : id[t];
        }
        id[1] = ET_LLAVA_IMAGE_TOKEN;  // <s> <image> text...
    }
    et_tensor *px = et_empty(ET_F32, 4, (int64_t[]){B, 3, s->img, s->img});
    et_rng_uniform(et_data(px), px->numel, 10, 0, -1.8f, 2.1f);
    et_tensor *pc = et_empty(g_wdt, 4, px->shape);
    et_copy_(pc, px);
    b->pixels = et_to_device(pc, dev);
    et_release(px), et_release(pc);
}

static void free_batch(batch *b) {
    for (int i = 0; i < b->B; i++) et_release(b->ids[i]), et_release(b->labels[i]);
    free(b->ids), free(b->labels);
    et_release(b->pixels);
}

// forward + backward; returns the loss value (the grads stay in the trainables).
static double fwd_bwd(model *m, const batch *b, uint64_t step) {
    et_rng_stream rng = {.seed = 5, .offset = step << 40};
    et_mllm_input in = {.batch = b->B, .ids = b->ids, .labels = b->labels, .pixels = b->pixels};
    et_tensor *loss = NULL;
    die(et_mllm_loss(&m->mllm, &in, &rng, &loss, NULL), "forward");
    et_backward(loss);
    double v = et_get(loss, 0);
    et_release(loss);
    return v;
}

static double model_flops(const shape *s, int B) {
    const double T = (double)B * (double)s->seq, H = (double)s->H, I = (double)s->I;
    const double L = (double)s->L, r = (double)s->r;
    double lin = L * (4 * H * H + 3 * H * I) + H * (double)s->V;
    double lora = L * r * (4 * (H + H) + 2 * (H + I) + (I + H));
    double f = 4 * lin * T + 6 * lora * T + 3 * 2 * (double)B * (double)s->seq * s->seq * H * L;
    const double np = (double)((s->img / s->ps) * (s->img / s->ps)), nt = np + 1;
    const double vD = (double)s->vD, vI = (double)s->vI, vL = (double)(s->vL - 1);  // layer -2
    f += (double)B * (2 * vL * (4 * vD * vD + 2 * vD * vI) * nt + 4 * nt * nt * vD * vL);
    f += 6 * (double)B * np * (vD * H + H * H);
    return f;
}

static double gemm_ceiling(void) {
    const int64_t n = 8192;
    et_tensor *a = et_empty_on(GPU, ET_BF16, 2, (int64_t[]){n, n});
    et_tensor *b = et_empty_on(GPU, ET_BF16, 2, (int64_t[]){n, n});
    et_fill_(a, 0.01), et_fill_(b, 0.02);
    double best = 1e30;
    for (int i = 0; i < 13; i++) {
        et_device_sync(GPU);
        double t0 = now();
        et_tensor *c = et_matmul(a, b, false, true);
        et_device_sync(GPU);
        double dt = now() - t0;
        et_release(c);
        if (i >= 3 && dt < best) best = dt;
    }
    et_release(a), et_release(b);
    return 2.0 * (double)n * n * n / best * 1e-12;
}

static int run_full(const int *batches, int nb, int steps, int64_t seq) {
    shape s = k_7b;
    s.seq = seq;
    double ceil_tf = gemm_ceiling();
    printf("ceiling bf16_gemm_tflops %.1f\n", ceil_tf);
    fflush(stdout);
    model m;
    double t0 = now();
    build(&s, &m);
    fprintf(stderr, "built the 7B-shaped model on the host in %.1f s\n", now() - t0);
    to_gpu(&m);
    collect(&m);
    et_adamw_config oc = et_adamw_defaults();
    oc.lr = 2e-4, oc.weight_decay = 0;
    et_adamw *opt;
    die(et_adamw_new(&oc, &opt), "adamw");
    et_param_group g = {.name = "trainables", .lr_mult = 1.0};
    die(et_adamw_add_group(opt, &g, m.n_train, m.train, NULL, NULL), "adamw group");
    for (int k = 0; k < nb; k++) {
        batch b;
        make_batch(&s, batches[k], GPU, &b);
        double *ts = calloc((size_t)steps, sizeof(double)), loss = 0;
        for (int i = 0; i < steps + 2; i++) {
            if (i == 2) {
                et_device_sync(GPU);
                et_alloc_reset_peak(GPU);
            }
            et_device_sync(GPU);
            double a = now();
            loss = fwd_bwd(&m, &b, (uint64_t)i);
            et_clip_grad_norm(m.n_train, m.train, 1.0);
            et_adamw_step(opt, 1.0);
            et_zero_grad(m.n_train, m.train);
            et_device_sync(GPU);
            if (i >= 2) ts[i - 2] = now() - a;
        }
        qsort(ts, (size_t)steps, sizeof(double), cmp);
        double st = ts[steps / 2], fl = model_flops(&s, batches[k]);
        et_alloc_stats_t as = et_alloc_stats(GPU);
        printf(
            "step mb %d seq %lld step_s %.4f tokens_per_s %.1f model_tflop %.2f mfu %.4f "
            "peak_gib %.2f loss %.5f\n",
            batches[k], (long long)s.seq, st, (double)batches[k] * (double)s.seq / st, fl * 1e-12,
            fl / st * 1e-12 / ceil_tf, (double)as.bytes_peak / (1 << 30), loss);
        fflush(stdout);
        free(ts);
        free_batch(&b);
    }
    et_adamw_free(opt);
    free_model(&m);
    return 0;
}

static et_tensor *host32(const et_tensor *t) {
    et_tensor *h = et_empty(ET_F32, t->ndim, t->shape);
    et_copy_(h, t);
    return h;
}

static double rel_err(const et_tensor *a, const et_tensor *b) {
    et_tensor *x = host32(a), *y = host32(b);
    double num = 0, den = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        double d = fabs((double)ET_DATA(float, x)[i] - ET_DATA(float, y)[i]);
        if (isnan(d)) d = INFINITY;
        if (d > num) num = d;
        if (fabs(ET_DATA(float, y)[i]) > den) den = fabs(ET_DATA(float, y)[i]);
    }
    et_release(x), et_release(y);
    return num / (den > 1e-30 ? den : 1e-30);
}

// The reduced shape through the same builder, batch and step code, GPU against CPU.
static int run_reduced(void) {
    const shape s = k_small;
    const double tol = 2e-2;
    model mc, mg;
    build(&s, &mc);
    build(&s, &mg);
    to_gpu(&mg);
    collect(&mc);
    collect(&mg);
    for (int i = 0; i < mc.n_train; i++)  // LoRA B random so that every A gets a gradient
        if (i % 2 == 1 && i < mc.n_train - 4) {
            et_tensor *h = et_empty(ET_F32, mc.train[i]->ndim, mc.train[i]->shape);
            et_rng_uniform(et_data(h), h->numel, 12, (uint64_t)i << 24, -0.05f, 0.05f);
            et_copy_(mc.train[i], h);
            et_copy_(mg.train[i], h);
            et_release(h);
        }
    batch bc, bg;
    make_batch(&s, 2, et_cpu(), &bc);
    make_batch(&s, 2, GPU, &bg);
    double lc = fwd_bwd(&mc, &bc, 0), lg = fwd_bwd(&mg, &bg, 0);
    int bad = 0;
    double worst = 0;
    printf("reduced loss cpu %.6f gpu %.6f rel %.3g\n", lc, lg, fabs(lg - lc) / fabs(lc));
    if (!(fabs(lg - lc) <= tol * fabs(lc))) bad++, printf("MISMATCH loss\n");
    for (int i = 0; i < mc.n_train; i++) {
        const et_tensor *a = mg.train[i]->grad, *b = mc.train[i]->grad;
        if (!a || !b) {
            printf("MISMATCH %s: grad missing (gpu %p cpu %p)\n", mc.names[i], (const void *)a,
                   (const void *)b);
            bad++;
            continue;
        }
        double r = rel_err(a, b);
        if (r > worst) worst = r;
        if (!(r <= tol))
            bad++, printf("MISMATCH %s (trainable %d) grad rel %.3g\n", mc.names[i], i, r);
    }
    printf("reduced grads: %d trainables, worst rel %.3g, %d mismatches (tol %.0e)\n", mc.n_train,
           worst, bad, tol);
    et_zero_grad(mc.n_train, mc.train);
    et_zero_grad(mg.n_train, mg.train);
    free_batch(&bc), free_batch(&bg);
    free_model(&mc), free_model(&mg);
    return bad ? 1 : 0;
}

int main(int argc, char **argv) {
    int batches[8] = {8, 16}, nb = 2, steps = 5;
    int64_t seq = 2048;
    bool reduced = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reduced")) {
            reduced = true;
        } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seq") && i + 1 < argc) {
            seq = atoll(argv[++i]);
        } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
            nb = 0;
            for (char *p = strtok(argv[++i], ","); p && nb < 8; p = strtok(NULL, ","))
                batches[nb++] = atoi(p);
        } else {
            fprintf(stderr, "usage: %s [--reduced] [--batch 8,16] [--steps 5] [--seq 2048]\n",
                    argv[0]);
            return 2;
        }
    }
    if (steps < 1 || nb < 1 || seq < 600) {
        fprintf(stderr, "bench_cuda_step: --steps >= 1, --batch, --seq >= 600 expected\n");
        return 2;
    }
    if (et_device_count(ET_CUDA) < 1) {
        const char *h = getenv("EMOTUNE_BENCH_HOST");
        if (!reduced || !h || strcmp(h, "1")) {
            printf("skipped: no CUDA device\n");
            return 77;
        }
        GPU = et_cpu();  // a check of this harness: both sides on the CPU
        printf("no CUDA device: EMOTUNE_BENCH_HOST=1 runs both sides of --reduced on the CPU\n");
    }
    return reduced ? run_reduced() : run_full(batches, nb, steps, seq);
}
#endif
