// train/models/nn.c - see nn.h
#include "nn.h"

#include <math.h>
#include <string.h>

#include "core/autograd.h"
#include "core/device.h"
#include "core/ops.h"
#include "kernels/cpu/basic.h"
#include "kernels/cpu/gemm.h"

// ---- fused LoRA linear (CPU, f32/f64) ---------------------------------------------
//
// y = x W^T (+ b) + s (xl A^T) B^T as one tape node, xl = x or dropout(x). Forward: three
// GEMMs, the branch accumulated into y by the last one (alpha s, beta 1), so y is written
// once and no [rows, out] temporaries exist. Backward with gy: gh = s gy B ([rows, r]);
// dB = s gy^T h, dA = gh^T xl, dx = gy W (+ gh A when xl is x, by a beta-1 GEMM into the
// same buffer), dW / db only for a trainable base. The composed ops (linear, linear,
// scale, add) computed the same sums with two more passes over [rows, out] each way and
// a separate [rows, in] gradient for x that the tape then added.

enum { IN_X, IN_W, IN_B, IN_A, IN_BB, IN_XL, N_IN };
enum { SV_X, SV_W, SV_A, SV_BB, SV_H, SV_XL };

static void gemm(et_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                 const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                 int64_t ldc) {
    if (dt == ET_F64)
        k_gemm_f64(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        k_gemm_f32(ta, tb, M, N, K, (float)alpha, A, lda, B, ldb, (float)beta, C, ldc);
}

// t in dtype dt: t itself (retained) or a converted copy.
static et_tensor *as_dtype(et_tensor *t, et_dtype dt) {
    if (t->dtype == dt) return et_retain(t);
    et_tensor *c = et_empty(dt, t->ndim, t->shape);
    et_copy_(c, t);
    return c;
}

static void lora_linear_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    const et_dtype dt = (et_dtype)n->i[0];
    const int64_t rows = n->i[1], in = n->i[2], out = n->i[3], r = n->i[4];
    const double s = n->f[0];
    et_tensor *gy = as_dtype((et_tensor *)gy_, dt);
    et_tensor *x = n->saved[SV_X], *w = n->saved[SV_W], *a = n->saved[SV_A];
    et_tensor *bb = n->saved[SV_BB], *h = n->saved[SV_H], *xl = n->saved[SV_XL];
    const bool same_x = n->i[5];  // the branch reads x itself (no dropout)
    const bool need_gh = n->needs[IN_A] || n->needs[IN_XL] || (same_x && n->needs[IN_X]);
    et_tensor *gh = NULL;
    if (need_gh) {  // gh = s gy B: [rows, r]
        gh = et_empty(dt, 2, (int64_t[]){rows, r});
        gemm(dt, false, false, rows, r, out, s, et_data(gy), out, et_data(bb), r, 0, et_data(gh),
             r);
    }
    if (n->needs[IN_BB]) {  // dB = s gy^T h: [out, r]
        et_tensor *g = et_empty(dt, 2, (int64_t[]){out, r});
        gemm(dt, true, false, out, r, rows, s, et_data(gy), out, et_data(h), r, 0, et_data(g), r);
        gx[IN_BB] = g;
    }
    if (n->needs[IN_A]) {  // dA = gh^T xl: [r, in]
        et_tensor *g = et_empty(dt, 2, (int64_t[]){r, in});
        gemm(dt, true, false, r, in, rows, 1, et_data(gh), r, et_data(same_x ? x : xl), in, 0,
             et_data(g), in);
        gx[IN_A] = g;
    }
    if (n->needs[IN_X]) {  // dx = gy W (+ gh A)
        et_tensor *g = et_empty(dt, n->in_ndim[IN_X], n->in_shape[IN_X]);
        gemm(dt, false, false, rows, in, out, 1, et_data(gy), out, et_data(w), in, 0, et_data(g),
             in);
        if (same_x)
            gemm(dt, false, false, rows, in, r, 1, et_data(gh), r, et_data(a), in, 1, et_data(g),
                 in);
        gx[IN_X] = g;
    }
    if (n->needs[IN_XL]) {  // dxl = gh A
        et_tensor *g = et_empty(dt, n->in_ndim[IN_XL], n->in_shape[IN_XL]);
        gemm(dt, false, false, rows, in, r, 1, et_data(gh), r, et_data(a), in, 0, et_data(g), in);
        gx[IN_XL] = g;
    }
    if (n->needs[IN_W]) {  // dW = gy^T x: [out, in]
        et_tensor *g = et_empty(dt, 2, (int64_t[]){out, in});
        gemm(dt, true, false, out, in, rows, 1, et_data(gy), out, et_data(x), in, 0, et_data(g),
             in);
        gx[IN_W] = g;
    }
    if (n->needs[IN_B]) {
        et_tensor *g = et_empty(dt, 1, (int64_t[]){out});
        if (dt == ET_F64)
            k_colsum_f64(et_data(gy), et_data(g), rows, out);
        else
            k_colsum_f32(et_data(gy), et_data(g), rows, out);
        gx[IN_B] = g;
    }
    et_release(gh);
    et_release(gy);
}

static bool on_cpu(const et_tensor *t) { return !t || t->device.type == ET_CPU; }

// The fused op applies to CPU tensors with an f32 or f64 activation (weights of another
// float dtype are widened per call, as et_linear does; f64 is never mixed).
static bool fusable(const et_linear_layer *l, const et_tensor *x) {
    if (!on_cpu(x) || !on_cpu(l->weight) || !on_cpu(l->bias) || !on_cpu(l->lora_a) ||
        !on_cpu(l->lora_b))
        return false;
    if (x->dtype != ET_F32 && x->dtype != ET_F64) return false;
    const et_tensor *ts[] = {l->weight, l->bias, l->lora_a, l->lora_b};
    for (int i = 0; i < 4; i++)
        if (ts[i] && (ts[i]->dtype == ET_F64) != (x->dtype == ET_F64)) return false;
    return x->ndim >= 1 && l->weight->ndim == 2 && x->shape[x->ndim - 1] == l->weight->shape[1] &&
           l->lora_a->ndim == 2 && l->lora_b->ndim == 2 &&
           l->lora_a->shape[1] == l->weight->shape[1] &&
           l->lora_b->shape[0] == l->weight->shape[0] &&
           l->lora_b->shape[1] == l->lora_a->shape[0] &&
           (!l->bias || (l->bias->ndim == 1 && l->bias->shape[0] == l->weight->shape[0]));
}

static et_tensor *lora_linear(et_linear_layer *l, et_tensor *x, et_tensor *xl) {
    const et_dtype dt = x->dtype;
    const int64_t rows = et_rows(x), in = l->weight->shape[1], out = l->weight->shape[0];
    const int64_t r = l->lora_a->shape[0];
    const double s = l->lora_scale;
    et_tensor *w = as_dtype(l->weight, dt), *a = as_dtype(l->lora_a, dt);
    et_tensor *bb = as_dtype(l->lora_b, dt), *xlc = xl ? as_dtype(xl, dt) : NULL;
    et_tensor *h = et_empty(dt, 2, (int64_t[]){rows, r});  // h = xl A^T
    gemm(dt, false, true, rows, r, in, 1, et_data(xlc ? xlc : x), in, et_data(a), in, 0, et_data(h),
         r);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out;
    et_tensor *y = et_empty(dt, x->ndim, shape);
    gemm(dt, false, true, rows, out, in, 1, et_data(x), in, et_data(w), in, 0, et_data(y), out);
    if (l->bias) {
        et_tensor *bc = as_dtype(l->bias, dt);
        if (dt == ET_F64)
            k_add_bcast_f64(et_data(y), et_data(bc), et_data(y), rows, out);
        else
            k_add_bcast_f32(et_data(y), et_data(bc), et_data(y), rows, out);
        et_release(bc);
    }
    gemm(dt, false, true, rows, out, r, s, et_data(h), r, et_data(bb), r, 1, et_data(y), out);
    et_tensor *ins[N_IN] = {x, l->weight, l->bias, l->lora_a, l->lora_b, xl};
    if (et_should_record(N_IN, ins)) {
        et_node *n = et_record("lora_linear", lora_linear_backward, y, N_IN, ins);
        bool need_gh = n->needs[IN_A] || n->needs[IN_XL] || (!xl && n->needs[IN_X]);
        if (n->needs[IN_W] || (!xl && n->needs[IN_A])) et_node_save(n, SV_X, x);
        if (n->needs[IN_X]) et_node_save(n, SV_W, w);
        if (n->needs[IN_X] || n->needs[IN_XL]) et_node_save(n, SV_A, a);
        if (need_gh) et_node_save(n, SV_BB, bb);
        if (n->needs[IN_BB]) et_node_save(n, SV_H, h);
        if (xl && n->needs[IN_A]) et_node_save(n, SV_XL, xlc);
        n->f[0] = s;
        n->i[0] = dt, n->i[1] = rows, n->i[2] = in, n->i[3] = out, n->i[4] = r, n->i[5] = !xl;
    }
    et_release(w), et_release(a), et_release(bb), et_release(xlc), et_release(h);
    return y;
}

et_tensor *et_linear_layer_forward(et_linear_layer *l, et_tensor *x, et_rng_stream *rng) {
    if (!l->lora_a || l->merged) return et_linear(x, l->weight, l->bias);
    const bool drop = rng && l->lora_dropout > 0;
    et_tensor *xd = NULL;
    if (drop) {
        xd = et_dropout(x, l->lora_dropout, rng->seed, rng->offset);
        rng->offset += (uint64_t)x->numel;
    }
    et_tensor *dev = ET_ON_DEVICE(x, l->weight, l->bias, l->lora_a, l->lora_b);
    const et_backend *be = dev ? et_backend_get(dev->device.type) : NULL;
    if (be && be->lora_linear) {  // the backend's fused op (kernels/cuda/ops_cuda.c)
        et_tensor *y =
            be->lora_linear(x, l->weight, l->bias, l->lora_a, l->lora_b, xd, l->lora_scale);
        et_release(xd);
        return y;
    }
    if (fusable(l, x) && (!xd || xd->dtype == x->dtype)) {
        et_tensor *y = lora_linear(l, x, xd);
        et_release(xd);
        return y;
    }
    et_tensor *y = et_linear(x, l->weight, l->bias);
    et_tensor *xin = xd ? xd : et_retain(x);
    et_tensor *h = et_linear(xin, l->lora_a, NULL);
    et_tensor *d = et_linear(h, l->lora_b, NULL);
    et_tensor *ds = et_scale(d, l->lora_scale);
    et_tensor *out = et_add(y, ds);
    et_release(xin), et_release(h), et_release(d), et_release(ds), et_release(y);
    return out;
}

void et_linear_layer_free(et_linear_layer *l) {
    et_release(l->weight), et_release(l->bias), et_release(l->lora_a), et_release(l->lora_b);
    l->weight = l->bias = l->lora_a = l->lora_b = NULL;
}

static et_tensor *heads_view(et_tensor *x, int64_t B, int64_t T, int64_t heads) {
    et_tensor *y = et_reshape(x, 4, (int64_t[]){B, T, heads, x->shape[2] / heads});
    et_release(x);
    return y;
}

et_tensor *et_mha(et_linear_layer *q, et_linear_layer *k, et_linear_layer *v, et_linear_layer *o,
                  int64_t heads, et_tensor *xq, et_tensor *xk, et_tensor *xv) {
    const int64_t B = xq->shape[0], Tq = xq->shape[1], Tk = xk->shape[1];
    const int64_t I = q->weight->shape[0], hd = I / heads;
    et_tensor *qp = heads_view(et_linear_layer_forward(q, xq, NULL), B, Tq, heads);
    et_tensor *kp = heads_view(et_linear_layer_forward(k, xk, NULL), B, Tk, heads);
    et_tensor *vp = heads_view(et_linear_layer_forward(v, xv, NULL), B, Tk, heads);
    et_tensor *a = et_attention(qp, kp, vp, NULL, false, 1.0 / sqrt((double)hd));
    et_release(qp), et_release(kp), et_release(vp);
    et_tensor *a3 = et_reshape(a, 3, (int64_t[]){B, Tq, I});
    et_release(a);
    et_tensor *y = et_linear_layer_forward(o, a3, NULL);
    et_release(a3);
    return y;
}
