// tools/bench/bench_llama_cpu.c - CPU LoRA training step of a tiny LLaMA.
// A random f32 LLaMA (4 layers, hidden 256, 8 heads of 32, intermediate 688, vocab 1000)
// with LoRA r 16, alpha 32, dropout 0 on q,k,v,o,gate,up,down (base weights frozen).
// One step = forward on ids [4, 256] + causal LM loss over every token + backward
// (gradients of the LoRA A/B reset before each step; no optimizer). A few warmup steps,
// then the median of N timed steps (wall clock; step_cpu_s: the median process CPU time).
// Usage: bench_llama_cpu [steps] [warmup] [batch] [seq]
// Output: "key value" lines (tools/bench/bench_llama_cpu.py reads them); `simd` and `gemm`
// name the code paths that ran ($EMOTUNE_SIMD / $EMOTUNE_GEMM choose them).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../../core/autograd.h"
#include "../../core/ops.h"
#include "../../kernels/cpu/gemm.h"
#include "../../kernels/cpu/simd.h"
#include "train/models/llama.h"
#include "train/models/lora.h"

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 10;
    int warmup = argc > 2 ? atoi(argv[2]) : 3;
    int64_t B = argc > 3 ? atoll(argv[3]) : 4;
    int64_t T = argc > 4 ? atoll(argv[4]) : 256;
    if (steps < 1 || warmup < 0 || B < 1 || T < 2) {
        fprintf(stderr, "usage: bench_llama_cpu [steps] [warmup] [batch] [seq]\n");
        return 2;
    }

    et_llama_config c = et_llama_config_default();
    c.vocab_size = 1000;
    c.hidden_size = 256;
    c.intermediate_size = 688;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 8;
    c.head_dim = 32;
    c.max_position_embeddings = 512;
    c.rms_norm_eps = 1e-6;
    et_llama *m = et_llama_new_random(&c, ET_F32, 0.02, 1);

    et_lora_config lc = et_lora_config_default();
    lc.r = 16;
    lc.alpha = 32;
    lc.dropout = 0;
    const char *targets[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                             "gate_proj", "up_proj", "down_proj"};
    lc.n_targets = 7;
    for (int i = 0; i < 7; i++) snprintf(lc.targets[i], sizeof lc.targets[i], "%s", targets[i]);
    const int L = (int)c.num_hidden_layers;
    et_linear_layer **lin = malloc(sizeof(*lin) * (size_t)(7 * L));
    for (int l = 0; l < L; l++) {
        et_llama_layer *ly = &m->layers[l];
        et_linear_layer *p[] = {&ly->q_proj,    &ly->k_proj,  &ly->v_proj,   &ly->o_proj,
                                &ly->gate_proj, &ly->up_proj, &ly->down_proj};
        for (int i = 0; i < 7; i++) lin[7 * l + i] = p[i];
    }
    int na = 0;
    et_status s = et_lora_attach(&lc, 7 * L, lin, &na);
    if (s) {
        fprintf(stderr, "lora attach: %s\n", et_status_msg(s));
        return 1;
    }
    int np = et_lora_params(7 * L, lin, NULL);
    et_tensor **params = malloc(sizeof(*params) * (size_t)np);
    et_lora_params(7 * L, lin, params);
    int64_t n_train = 0;
    for (int i = 0; i < np; i++) n_train += params[i]->numel;

    et_tensor *ids = et_empty(ET_I32, 2, (int64_t[]){B, T});
    uint64_t x = 88172645463325252ull;
    for (int64_t i = 0; i < ids->numel; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ET_DATA(int32_t, ids)[i] = (int32_t)(x % (uint64_t)c.vocab_size);
    }

    double *t = malloc(sizeof(double) * (size_t)steps);
    double *tc = malloc(sizeof(double) * (size_t)steps);
    double loss0 = 0;
    for (int it = 0; it < warmup + steps; it++) {
        et_zero_grad(np, params);
        double t0 = now(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        et_tensor *logits = et_llama_forward(m, ids, NULL, NULL, NULL, NULL);
        et_tensor *loss = et_llama_loss(logits, ids);
        et_backward(loss);
        double t1 = now(), c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        if (it == 0) loss0 = et_get(loss, 0);
        et_release(logits), et_release(loss);
        if (it >= warmup) t[it - warmup] = t1 - t0, tc[it - warmup] = c1 - c0;
    }
    qsort(t, (size_t)steps, sizeof(double), cmp_d);
    qsort(tc, (size_t)steps, sizeof(double), cmp_d);
    double med = steps % 2 ? t[steps / 2] : 0.5 * (t[steps / 2 - 1] + t[steps / 2]);
    double medc = steps % 2 ? tc[steps / 2] : 0.5 * (tc[steps / 2 - 1] + tc[steps / 2]);
    static const char *gemm_names[] = {"blas", "avx2", "avx512"};
    printf("simd %s\n", k_simd_name(k_simd()));
    printf("gemm %s\n", gemm_names[k_gemm_path_now()]);
    printf("lora_layers %d\n", na);
    printf("trainable %lld\n", (long long)n_train);
    printf("loss0 %.6f\n", loss0);
    printf("step_s %.6f\n", med);
    printf("step_min_s %.6f\n", t[0]);
    printf("tokens_per_s %.1f\n", (double)(B * T) / med);
    // CPU time of the process per step (all threads): with one thread, the step's time
    // without the periods another process held the core.
    printf("step_cpu_s %.6f\n", medc);

    et_release(ids);
    free(t), free(tc), free(params), free(lin);
    et_llama_free(m);
    return 0;
}
