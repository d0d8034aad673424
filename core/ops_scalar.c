// core/ops_scalar.c - et_mul_exp: a tensor times exp of a learned scalar (CLIP's temperature).
// Contract in ops.h. CPU only (no backend op): a device input is a programmer error.
#include <math.h>

#include "ops_internal.h"

static void mul_exp_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = et_as_dtype(gy_, cdt);
    const double e = n->f[0];
    const int64_t N = gy->numel;
    if (n->needs[0]) {
        et_tensor *g = et_new(cdt, gy->ndim, gy->shape);
        if (cdt == ET_F64) {
            const double *a = et_data(gy);
            double *o = et_data(g);
            for (int64_t i = 0; i < N; i++) o[i] = a[i] * e;
        } else {
            const float *a = et_data(gy);
            float *o = et_data(g);
            const float ef = (float)e;
            for (int64_t i = 0; i < N; i++) o[i] = a[i] * ef;
        }
        gx[0] = g;
    }
    if (n->needs[1]) {  // d/ds sum(gy * x * e^s) = e^s sum(gy * x), summed in double
        const et_tensor *x = n->saved[0];
        double acc = 0;
        if (cdt == ET_F64) {
            const double *a = et_data(gy), *b = et_data(x);
            for (int64_t i = 0; i < N; i++) acc += a[i] * b[i];
        } else {
            const float *a = et_data(gy), *b = et_data(x);
            for (int64_t i = 0; i < N; i++) acc += (double)a[i] * (double)b[i];
        }
        et_tensor *g = et_new(cdt, n->in_ndim[1], n->in_shape[1]);
        et_set(g, 0, acc * e);
        gx[1] = g;
    }
    et_release(gy);
}

et_tensor *et_mul_exp(et_tensor *x, et_tensor *s) {
    et_check_float("et_mul_exp", x, "x");
    et_check_float("et_mul_exp", s, "s");
    et_check_mix("et_mul_exp", x, s);
    ET_ASSERT(s->numel == 1, "et_mul_exp: s must hold one element, got %lld", (long long)s->numel);
    ET_ASSERT(x->device.type == ET_CPU && s->device.type == ET_CPU,
              "et_mul_exp: CPU only (no device kernel)");
    et_dtype cdt = et_compute_dtype(x->dtype);
    et_tensor *xc = et_as_dtype(x, cdt);
    const double e = exp(et_get(s, 0));
    et_tensor *y = et_new(cdt, x->ndim, x->shape);
    const int64_t N = x->numel;
    if (cdt == ET_F64) {
        const double *a = et_data(xc);
        double *o = et_data(y);
        for (int64_t i = 0; i < N; i++) o[i] = a[i] * e;
    } else {
        const float *a = et_data(xc);
        float *o = et_data(y);
        const float ef = (float)e;
        for (int64_t i = 0; i < N; i++) o[i] = a[i] * ef;
    }
    y = et_finish(y, x->dtype);
    et_tensor *in[2] = {x, s};
    if (et_should_record(2, in)) {
        et_node *n = et_record("mul_exp", mul_exp_backward, y, 2, in);
        n->i[0] = cdt;
        n->f[0] = e;
        if (n->needs[1]) et_node_save(n, 0, xc);
    }
    et_release(xc);
    return y;
}
