// tools/bench/bench_cuda_attention.c - attention forward and forward+backward of the CUDA
// backend: batch 4, seq 2048 (argv[1]), 32 heads, head dim 128, causal, bf16 ([B, T, H, hd]),
// for each implementation of the op's switch (cuda_kernels.h): "mma" (bf16 tensor cores,
// the default), "cudnn" (cuDNN fused attention, when available and the plans build) and
// "ref" (f32-math flash kernels). Median of 10 timed reps after 2 warm-ups,
// device-synchronised wall time. FLOPs counted as FlashAttention does: fwd 4 B H T^2 hd / 2
// (causal), bwd 2.5x fwd.
// Output: "attn shape B T H hd", then per implementation "attn <impl> fwd <ms> <TFLOP/s>"
// and "attn <impl> fwdbwd <ms> <TFLOP/s>"
// (tools/bench/bench_cuda_attention.py runs it next to PyTorch SDPA flash and cuDNN).
// Needs the CUDA build and a GPU (prints "skipped" and exits 77 otherwise).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../../core/autograd.h"
#include "../../core/device.h"
#include "../../core/ops.h"
#include "../../core/rng.h"

#ifndef EMOTUNE_HAVE_CUDA
int main(void) {
    printf("skipped: CUDA backend not built\n");
    return 77;
}
#else

#include "cuda_kernels.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const et_device GPU = {ET_CUDA, 0};

static et_tensor *rnd(int64_t B, int64_t T, int64_t H, int64_t hd, uint64_t seed) {
    int64_t s[4] = {B, T, H, hd};
    et_tensor *h = et_empty(ET_F32, 4, s);
    et_randn_(h, 0, 1, seed, 0);
    et_tensor *b = et_empty(ET_BF16, 4, s);
    et_copy_(b, h);
    et_tensor *g = et_to_device(b, GPU);
    et_release(h), et_release(b);
    return g;
}

int main(int argc, char **argv) {
    if (et_device_count(ET_CUDA) < 1) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    int64_t B = 4, T = 2048, H = 32, hd = 128;
    if (argc > 1) T = atoll(argv[1]);
    et_tensor *q = rnd(B, T, H, hd, 1), *k = rnd(B, T, H, hd, 2), *v = rnd(B, T, H, hd, 3);
    et_tensor *gy = rnd(B, T, H, hd, 4);
    double scale = 1.0 / sqrt((double)hd), flop = 4.0 * B * H * (double)T * T * hd / 2;
    printf("attn shape %lld %lld %lld %lld\n", (long long)B, (long long)T, (long long)H,
           (long long)hd);
    const char *names[3] = {"mma", "cudnn", "ref"};
    int impls[3] = {KC_ATTN_MMA, KC_ATTN_CUDNN, KC_ATTN_REF};
    for (int m = 0; m < 3; m++) {
        if (impls[m] == KC_ATTN_CUDNN) {
            int64_t a = kc_cudnn_attn_prepare(true, B, T, T, H, H, hd, true, false);
            int64_t b = a < 0 ? -1 : kc_cudnn_attn_prepare(false, B, T, T, H, H, hd, true, false);
            if (a < 0 || b < 0) {
                printf("attn cudnn unavailable: %s\n", kc_cudnn_attn_why());
                continue;
            }
        }
        kc_attention_set_impl(impls[m]);
        double tf[10], tb[10];
        for (int r = 0; r < 12; r++) {  // forward only
            et_no_grad_begin();
            et_device_sync(GPU);
            double t0 = now();
            et_tensor *o = et_attention(q, k, v, NULL, true, scale);
            et_device_sync(GPU);
            if (r >= 2) tf[r - 2] = now() - t0;
            et_release(o);
            et_no_grad_end();
        }
        et_set_requires_grad(q, true), et_set_requires_grad(k, true);
        et_set_requires_grad(v, true);
        for (int r = 0; r < 12; r++) {  // forward + backward
            et_device_sync(GPU);
            double t0 = now();
            et_tensor *o = et_attention(q, k, v, NULL, true, scale);
            et_backward_grads(1, &o, &gy);
            et_device_sync(GPU);
            if (r >= 2) tb[r - 2] = now() - t0;
            et_release(o);
            et_tensor *ps[3] = {q, k, v};
            et_zero_grad(3, ps);
        }
        et_set_requires_grad(q, false), et_set_requires_grad(k, false);
        et_set_requires_grad(v, false);
        qsort(tf, 10, sizeof(double), cmp);
        qsort(tb, 10, sizeof(double), cmp);
        printf("attn %s fwd %.3f %.1f\n", names[m], tf[5] * 1e3, flop / tf[5] * 1e-12);
        printf("attn %s fwdbwd %.3f %.1f\n", names[m], tb[5] * 1e3, 3.5 * flop / tb[5] * 1e-12);
        fflush(stdout);
    }
    kc_attention_set_impl(KC_ATTN_AUTO);
    et_release(q), et_release(k), et_release(v), et_release(gy);
    return 0;
}
#endif
