// tests/test_cuda_autograd.c - autograd on a device: leaf gradients accumulate through the
// backend table (add_into) on the leaf's device, half-precision leaves get f32 grads there,
// a gradient arriving on another device is moved to the leaf's; with a GPU also ops mixing
// CPU and GPU operands (a CPU zeros tensor or input batch next to GPU weights: the op runs
// on the GPU, the CPU operand's gradient comes back to the CPU) against the CPU-only run.
// Without a GPU the host mock (tests/cuda_mock.h) checks the engine side; the op cases
// need the real backend and are skipped (reported) then.
#include "../core/ops.h"
#include "../core/rng.h"
#include "cuda_mock.h"
#include "test_util.h"

static const et_device GPU = {ET_CUDA, 0};
static bool g_real;

static et_tensor *host32(const et_tensor *t) {
    et_tensor *h = et_empty(ET_F32, t->ndim, t->shape);
    et_copy_(h, t);
    return h;
}

static et_tensor *rnd(et_dtype dt, int64_t n, uint64_t off) {
    et_tensor *f = et_empty(ET_F32, 1, &n);
    et_rng_uniform(et_data(f), n, 3, off, -1, 1);
    et_tensor *t = et_empty(dt, 1, &n);
    et_copy_(t, f);
    et_release(f);
    return t;
}

static et_tensor *rnd2(int64_t r, int64_t c, uint64_t off) {
    et_tensor *t = rnd(ET_F32, r * c, off), *v = et_reshape(t, 2, (int64_t[]){r, c});
    et_release(t);
    return v;
}

static void test_leaf_accumulation(void) {
    const et_dtype dts[2] = {ET_F32, ET_BF16};
    for (int d = 0; d < 2; d++) {
        et_tensor *leaf = et_empty_on(GPU, dts[d], 1, (int64_t[]){5000});
        et_fill_(leaf, 1.0);
        et_set_requires_grad(leaf, true);
        et_tensor *g1 = rnd(ET_F32, 5000, 100), *g2 = rnd(dts[d], 5000, 200);
        et_tensor *g1d = et_to_device(g1, GPU), *g2d = et_to_device(g2, GPU);
        et_backward_grads(1, &leaf, &g1d);  // device grad
        et_backward_grads(1, &leaf, &g2d);  // device grad, leaf dtype
        et_backward_grads(1, &leaf, &g1);   // a CPU grad for a device leaf
        CHECK(leaf->grad && leaf->grad->device.type == ET_CUDA, "%s leaf: grad not on the device",
              et_dtype_name(dts[d]));
        CHECK(leaf->grad->dtype == ET_F32, "%s leaf: grad dtype %s (f32 expected)",
              et_dtype_name(dts[d]), et_dtype_name(leaf->grad->dtype));
        et_tensor *want = et_empty(ET_F32, 1, (int64_t[]){5000});
        for (int64_t i = 0; i < 5000; i++)
            ET_DATA(float, want)[i] = (float)(et_get(g1, i) * 2 + et_get(g2, i));
        et_tensor *got = host32(leaf->grad);
        CHECK_TENSOR_CLOSE(got, want, 1e-6, "accumulated device grad");
        et_release(got), et_release(want);

        et_tensor *acc = NULL;  // et_accumulate: first copy, then adds on the device
        et_accumulate(&acc, g1d);
        et_accumulate(&acc, g1d);
        CHECK(acc->device.type == ET_CUDA && acc->storage != g1d->storage,
              "et_accumulate must copy into a device buffer");
        CHECK_CLOSE(et_get(acc, 4321), 2 * et_get(g1, 4321), 1e-6);
        et_release(acc);
        et_zero_grad(1, &leaf);
        et_release(leaf), et_release(g1), et_release(g2), et_release(g1d), et_release(g2d);
    }
}

static void test_cpu_leaf_device_grad(void) {
    et_tensor *leaf = rnd(ET_F32, 300, 7);
    et_set_requires_grad(leaf, true);
    et_tensor *g = rnd(ET_F32, 300, 9), *gd = et_to_device(g, GPU);
    et_backward_grads(1, &leaf, &gd);
    CHECK(leaf->grad && leaf->grad->device.type == ET_CPU, "CPU leaf got a device grad");
    CHECK_TENSOR_CLOSE(leaf->grad, g, 0, "CPU leaf grad from the device");
    et_zero_grad(1, &leaf);
    et_release(leaf), et_release(g), et_release(gd);
}

// y = sum(linear(concat(zeros_cpu, x_cpu) + b, W)) with W, b on the GPU: the zeros and x
// stay on the CPU as the model code builds them; x's grad must come back to the CPU.
static et_tensor *mixed_forward(et_tensor *x, et_tensor *w, et_tensor *b) {
    et_tensor *z = et_zeros(ET_F32, 2, (int64_t[]){3, 16});
    et_tensor *parts[2] = {z, x};
    et_tensor *c = et_concat(2, parts, 0);  // [7, 16]
    et_tensor *cb = et_add_bcast(c, b);
    et_tensor *y = et_linear(cb, w, NULL);  // [7, 8]
    et_tensor *s = et_sum_last(y), *m = et_mean_last(s);
    et_release(z), et_release(c), et_release(cb), et_release(y), et_release(s);
    return m;
}

static void test_mixed_device_ops(void) {
    if (!g_real) {
        printf("  (skipped: needs the CUDA backend's ops)\n");
        return;
    }
    et_tensor *x = rnd2(4, 16, 1), *w = rnd2(8, 16, 2);
    et_tensor *b = rnd(ET_F32, 16, 3);
    et_tensor *wg = et_to_device(w, GPU), *bg = et_to_device(b, GPU);
    et_tensor *xs[2] = {x, et_clone(x)};
    for (int k = 0; k < 2; k++) et_set_requires_grad(xs[k], true);
    et_set_requires_grad(w, true), et_set_requires_grad(wg, true);
    et_set_requires_grad(b, true), et_set_requires_grad(bg, true);
    // one forward + backward at a time: a backward runs (and frees) the whole tape
    et_tensor *lc = mixed_forward(xs[0], w, b);
    et_backward(lc);
    et_tensor *lg = mixed_forward(xs[1], wg, bg);
    CHECK(lg->device.type == ET_CUDA, "mixed op did not run on the GPU");
    CHECK_CLOSE(et_get(lg, 0), et_get(lc, 0), 1e-5);
    et_backward(lg);
    CHECK(xs[1]->grad && xs[1]->grad->device.type == ET_CPU, "x grad not on the CPU");
    CHECK(wg->grad && wg->grad->device.type == ET_CUDA, "W grad not on the GPU");
    if (xs[1]->grad) CHECK_TENSOR_CLOSE(xs[1]->grad, xs[0]->grad, 1e-5, "x grad");
    et_tensor *h = host32(wg->grad), *hb = host32(bg->grad);
    CHECK_TENSOR_CLOSE(h, w->grad, 1e-5, "W grad");
    CHECK_TENSOR_CLOSE(hb, b->grad, 1e-5, "b grad");
    et_release(h), et_release(hb), et_release(lc), et_release(lg);
    et_tensor *all[6] = {xs[0], xs[1], w, wg, b, bg};
    et_zero_grad(6, all);
    for (int k = 0; k < 6; k++) et_release(all[k]);
}

int main(void) {
    g_real = mock_backend_install();
    printf("backend for ET_CUDA: %s\n", gpu_backend_name());
    RUN(test_leaf_accumulation);
    RUN(test_cpu_leaf_device_grad);
    RUN(test_mixed_device_ops);
    return test_summary();
}
