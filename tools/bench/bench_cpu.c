// tools/bench/bench_cpu.c - CPU dispatch cost of the engine.
// 1. Square GEMMs 256..2048: et_matmul (validation, output from the caching allocator,
//    dispatch) against calling cblas_sgemm directly on preallocated buffers. The two are
//    interleaved rep by rep and the best time of each is kept.
// 2. The cost of one small op call (ns): et_add on 16-element f32 tensors, with grad mode
//    off and with a tape node recorded.
// Output: one "key value..." line per measurement (tools/bench/bench_cpu.py reads it and
// prints the table next to PyTorch).
#include <cblas.h>
#include <stdio.h>
#include <time.h>

#include "../../core/autograd.h"
#include "../../core/ops.h"
#include "../../core/rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void bench_gemm(int n) {
    int64_t shape[2] = {n, n};
    et_tensor *a = et_empty(ET_F32, 2, shape), *b = et_empty(ET_F32, 2, shape);
    et_tensor *c = et_empty(ET_F32, 2, shape);
    et_randn_(a, 0, 1, 1, 0);
    et_randn_(b, 0, 1, 2, 0);
    double flop = 2.0 * n * n * (double)n;
    int reps = n <= 512 ? 30 : n <= 1024 ? 8 : 4;
    double best_direct = 1e30, best_et = 1e30;
    et_no_grad_begin();
    for (int r = 0; r < reps + 1; r++) {  // first round warms both up
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, et_data(a), n,
                    et_data(b), n, 0.0f, et_data(c), n);
        double t1 = now();
        et_tensor *y = et_matmul(a, b, false, false);
        double t2 = now();
        et_release(y);
        if (r) {
            if (t1 - t0 < best_direct) best_direct = t1 - t0;
            if (t2 - t1 < best_et) best_et = t2 - t1;
        }
    }
    et_no_grad_end();
    printf("gemm %d %.2f %.2f\n", n, flop / best_direct * 1e-9, flop / best_et * 1e-9);
    et_release(a), et_release(b), et_release(c);
}

static void bench_small_op(void) {
    int64_t shape[1] = {16};
    et_tensor *a = et_full(ET_F32, 1, shape, 1.0), *b = et_full(ET_F32, 1, shape, 2.0);
    const int iters = 2000000;
    et_no_grad_begin();
    for (int i = 0; i < 1000; i++) et_release(et_add(a, b));
    double t0 = now();
    for (int i = 0; i < iters; i++) et_release(et_add(a, b));
    double t1 = now();
    et_no_grad_end();
    printf("small_op_nograd %.1f\n", (t1 - t0) / iters * 1e9);
    et_set_requires_grad(a, true);
    const int iters_g = 200000;
    double t2 = now();
    for (int i = 0; i < iters_g; i++) {
        et_release(et_add(a, b));
        if ((i & 1023) == 1023) et_tape_clear();
    }
    et_tape_clear();
    double t3 = now();
    printf("small_op_grad %.1f\n", (t3 - t2) / iters_g * 1e9);
    et_release(a), et_release(b);
}

int main(void) {
    int sizes[] = {256, 512, 1024, 2048};
    for (int i = 0; i < 4; i++) bench_gemm(sizes[i]);
    bench_small_op();
    return 0;
}
