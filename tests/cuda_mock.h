// tests/cuda_mock.h - a host-memory stand-in for the CUDA backend, for the device-generic
// engine paths (autograd accumulation through the backend table, the optimizer's per-device
// batching) on machines without a GPU.
// defines: mock_backend_install, gpu_backend_name
//
// Used by tests/test_cuda_autograd.c and tests/test_cuda_optim.c: when a real CUDA backend
// is present (a CUDA build on a GPU machine) they run against it; otherwise they install
// this mock for ET_CUDA, whose storage is host memory and whose primitives (copy, fill,
// add_into, multi-tensor AdamW, sum of squares, scale) do what the CUDA kernels do with the
// arithmetic of core/optim.c. It has no ops: tests that need GPU ops skip without a GPU.
#ifndef ET_TEST_CUDA_MOCK_H
#define ET_TEST_CUDA_MOCK_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/device.h"
#include "../core/dtype.h"
#include "../core/tensor.h"

static void *mock_alloc(int index, size_t bytes) {
    (void)index;
    return aligned_alloc(64, (bytes + 63) / 64 * 64);
}
static void mock_free(int index, void *p) {
    (void)index;
    free(p);
}
static int mock_count(void) { return 1; }
static void mock_sync(int index) { (void)index; }
static void mock_copy(et_tensor *dst, const et_tensor *src) {
    et_convert(et_data(dst), dst->dtype, et_data(src), src->dtype, (size_t)src->numel);
}
static void mock_fill(et_tensor *t, double v) {
    for (int64_t i = 0; i < t->numel; i++)
        et_convert((char *)et_data(t) + (size_t)i * et_dtype_size(t->dtype), t->dtype, &v, ET_F64,
                   1);
}
static void mock_add_into(et_tensor *dst, const et_tensor *src) {
    size_t es = et_dtype_size(dst->dtype), ss = et_dtype_size(src->dtype);
    for (int64_t i = 0; i < dst->numel; i++) {
        float a, b;
        et_convert(&a, ET_F32, (char *)et_data(dst) + (size_t)i * es, dst->dtype, 1);
        et_convert(&b, ET_F32, (const char *)et_data(src) + (size_t)i * ss, src->dtype, 1);
        a += b;
        et_convert((char *)et_data(dst) + (size_t)i * es, dst->dtype, &a, ET_F32, 1);
    }
}
static float mock_fma(float a, float b, float c) { return (float)((double)a + (double)b * c); }
static void mock_adamw(int index, int n, const et_adamw_tensor *ts, double w1d, double beta2,
                       double c2d, double epsd) {
    (void)index;
    const float w1 = (float)w1d, one_m_w1 = 1.0f - w1, b2 = (float)beta2, c2 = (float)c2d;
    const float eps = (float)epsd;
    const int small = fabsf(w1) < 0.5f;
    for (int k = 0; k < n; k++) {
        const et_adamw_tensor *t = &ts[k];
        const float decay = (float)t->decay, neg = (float)t->neg_step, bc2 = (float)t->bc2_sqrt;
        for (int64_t i = 0; i < t->n; i++) {
            float wi = t->w[i] * decay, gi = t->g[i], mi = t->m[i];
            mi = small ? mock_fma(mi, w1, gi - mi) : mock_fma(gi, -(gi - mi), one_m_w1);
            float vi = mock_fma(t->v[i] * b2, c2 * gi, gi);
            float denom = sqrtf(vi) / bc2 + eps;
            wi = wi + (neg * mi) / denom;
            t->m[i] = mi, t->v[i] = vi, t->w[i] = wi;
            if (t->half) et_convert((uint16_t *)t->half + i, t->hdt, &wi, ET_F32, 1);
        }
    }
}
static double mock_sumsq(int index, int n, const float *const *x, const int64_t *numel) {
    (void)index;
    double s = 0;
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < numel[k]; i++) s += (double)x[k][i] * (double)x[k][i];
    return s;
}
static void mock_scale(int index, int n, float *const *x, const int64_t *numel, float s) {
    (void)index;
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < numel[k]; i++) x[k][i] *= s;
}

static const et_backend g_mock_backend = {
    .name = "mock (host memory)",
    .device_count = mock_count,
    .sync = mock_sync,
    .copy = mock_copy,
    .fill = mock_fill,
    .add_into = mock_add_into,
    .adamw = mock_adamw,
    .sumsq_f32 = mock_sumsq,
    .scale_f32 = mock_scale,
};

// Installs the mock for ET_CUDA when no real backend is there. Returns true when the real
// CUDA backend runs the tests.
static inline bool mock_backend_install(void) {
    if (et_backend_get(ET_CUDA)) return true;
    et_alloc_register(ET_CUDA, (et_device_allocator){mock_alloc, mock_free});
    et_backend_register(ET_CUDA, &g_mock_backend);
    return false;
}

static inline const char *gpu_backend_name(void) {
    const et_backend *b = et_backend_get(ET_CUDA);
    return b ? b->name : "none";
}

#endif
