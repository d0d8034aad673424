// kernels/cuda/ops_cuda.c - the CUDA op layer: every op of core/ops.h on ET_CUDA tensors
// (forward, tape node, backward) over the launchers of cuda_kernels.h, the tensor
// primitives (copy, fill, add_into) and the constructor that offers the backend to core.
//
// Precision policy on the GPU: an op computes in f32 and stores in the activation's dtype
// (f32, bf16 or f16; f64 stays on the CPU). Other float inputs (weights) are converted to
// the activation dtype for GEMMs and to f32 for norm weights and sampling points.
// Gradients come out in the activation dtype, except weight gradients that feed f32
// masters (linear/matmul dW, norm weights, embedding tables), which are f32.
// Index inputs may live on the CPU (validated there, then uploaded) or on the GPU (used
// as they are; rows out of range are zero / ignored).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "cuda_kernels.h"
#include "device.h"
#include "ops.h"
#include "status.h"

_Static_assert(ET_F32 == 0 && ET_BF16 == 1 && ET_F16 == 2 && ET_I32 == 3 && ET_U8 == 4,
               "kernels/cuda/cuda_common.cuh dtype codes");

// ---- helpers ----------------------------------------------------------------------------

typedef struct {
    char s[128];
} sbuf;
static sbuf shp(const et_tensor *t) {
    sbuf b;
    if (t)
        et_shape_str(t, b.s, sizeof b.s);
    else
        snprintf(b.s, sizeof b.s, "NULL");
    return b;
}

static void *dp(const et_tensor *t) { return t ? et_data(t) : NULL; }

static et_device use(const et_tensor *t) {
    ET_ASSERT(t->device.type == ET_CUDA, "CUDA op on a tensor of device type %d",
              (int)t->device.type);
    et_cuda_use(t->device.index);
    return t->device;
}

// The device of an op with tensors on several devices: the first CUDA tensor among ts
// (the op layer dispatched here because one exists). CPU inputs are uploaded by the op.
static et_device pick_dev(int n, const et_tensor *const *ts) {
    for (int i = 0; i < n; i++)
        if (ts[i] && ts[i]->device.type == ET_CUDA) {
            et_cuda_use(ts[i]->device.index);
            return ts[i]->device;
        }
    ET_ASSERT(0, "CUDA op without a CUDA tensor");
    return et_cpu();
}
#define PICK(...)                                                                     \
    pick_dev((int)(sizeof((const et_tensor *[]){__VA_ARGS__}) / sizeof(et_tensor *)), \
             (const et_tensor *[]){__VA_ARGS__})

static void check_act(const char *op, const et_tensor *t, const char *what) {
    ET_ASSERT(t, "%s: %s is NULL", op, what);
    ET_ASSERT(t->dtype == ET_F32 || t->dtype == ET_BF16 || t->dtype == ET_F16,
              "%s: %s must be f32, bf16 or f16 on CUDA, got %s", op, what, et_dtype_name(t->dtype));
}

static et_tensor *newt(et_device dev, et_dtype dt, int ndim, const int64_t *shape) {
    return et_empty_on(dev, dt, ndim, shape);
}

// t on dev in dtype dt: t itself (retained) or a converted copy. NULL for NULL.
static et_tensor *as_dt(const et_tensor *t, et_device dev, et_dtype dt) {
    if (!t) return NULL;
    if (t->dtype == dt && t->device.type == dev.type && t->device.index == dev.index)
        return et_retain((et_tensor *)t);
    et_tensor *c = newt(dev, dt, t->ndim, t->shape);
    et_copy_(c, t);
    et_cuda_use(dev.index);
    return c;
}

static et_tensor *node_grad(const et_node *n, int i, et_device dev, et_dtype dt) {
    return n->needs[i] ? newt(dev, dt, n->in_ndim[i], n->in_shape[i]) : NULL;
}

// An i32 index tensor on dev. Host indices are checked against [0, limit) first.
static et_tensor *index_on(const char *op, const et_tensor *idx, int64_t limit, et_device dev) {
    ET_ASSERT(idx, "%s: index is NULL", op);
    ET_ASSERT(idx->dtype == ET_I32 || idx->dtype == ET_U8, "%s: index must be i32 or u8, got %s",
              op, et_dtype_name(idx->dtype));
    if (idx->device.type == ET_CPU && limit >= 0) {
        et_tensor *c = et_empty(ET_I32, idx->ndim, idx->shape);
        et_copy_(c, idx);
        const int32_t *p = et_data(c);
        for (int64_t i = 0; i < c->numel; i++)
            ET_ASSERT(p[i] >= 0 && p[i] < limit, "%s: index %d at position %lld outside [0, %lld)",
                      op, p[i], (long long)i, (long long)limit);
        et_tensor *d = as_dt(c, dev, ET_I32);
        et_release(c);
        return d;
    }
    return as_dt(idx, dev, ET_I32);
}

// A 0/1 mask on dev in dtype dt (u8 or i32); nonzero host values become 1.
static et_tensor *mask_on(const et_tensor *m, et_device dev, et_dtype dt) {
    if (!m) return NULL;
    if (m->device.type == ET_CPU) {
        et_tensor *c = et_empty(dt, m->ndim, m->shape);
        for (int64_t i = 0; i < m->numel; i++) et_set(c, i, et_get(m, i) != 0);
        et_tensor *d = as_dt(c, dev, dt);
        et_release(c);
        return d;
    }
    return as_dt(m, dev, dt);
}

// ---- tensor primitives --------------------------------------------------------------------

static void cuda_copy(et_tensor *dst, const et_tensor *src) {
    size_t n = (size_t)src->numel;
    if (!n) return;
    if (dst->device.type == ET_CUDA && src->device.type == ET_CPU) {
        if (dst->dtype == src->dtype) {
            et_cuda_h2d(dst->device.index, et_data(dst), et_data(src), et_nbytes(src));
        } else {
            et_tensor *h = et_empty(dst->dtype, src->ndim, src->shape);
            et_convert(et_data(h), h->dtype, et_data(src), src->dtype, n);
            et_cuda_h2d(dst->device.index, et_data(dst), et_data(h), et_nbytes(h));
            et_release(h);
        }
    } else if (dst->device.type == ET_CPU && src->device.type == ET_CUDA) {
        if (dst->dtype == src->dtype) {
            et_cuda_d2h(src->device.index, et_data(dst), et_data(src), et_nbytes(src));
        } else {
            et_tensor *h = et_empty(src->dtype, src->ndim, src->shape);
            et_cuda_d2h(src->device.index, et_data(h), et_data(src), et_nbytes(src));
            et_convert(et_data(dst), dst->dtype, et_data(h), h->dtype, n);
            et_release(h);
        }
    } else {  // both on GPUs
        ET_ASSERT(dst->dtype != ET_F64 && src->dtype != ET_F64, "et_copy_: f64 is CPU only");
        if (dst->device.index == src->device.index) {
            et_cuda_use(dst->device.index);
            kc_convert(et_data(dst), dst->dtype, et_data(src), src->dtype, (int64_t)n);
        } else if (dst->dtype == src->dtype) {
            et_cuda_d2d(dst->device.index, et_data(dst), src->device.index, et_data(src),
                        et_nbytes(src));
        } else {
            et_tensor *t = newt(dst->device, src->dtype, src->ndim, src->shape);
            et_cuda_d2d(dst->device.index, et_data(t), src->device.index, et_data(src),
                        et_nbytes(src));
            et_cuda_use(dst->device.index);
            kc_convert(et_data(dst), dst->dtype, et_data(t), t->dtype, (int64_t)n);
            et_release(t);
        }
    }
}

static void cuda_fill(et_tensor *t, double v) {
    use(t);
    kc_fill(et_data(t), t->dtype, v, t->numel);
}

static void cuda_add_into(et_tensor *dst, const et_tensor *src) {
    et_device dev = use(dst);
    et_tensor *s = src->device.type == dev.type && src->device.index == dev.index
                       ? et_retain((et_tensor *)src)
                       : as_dt(src, dev, src->dtype);
    kc_add_into(et_data(dst), dst->dtype, et_data(s), s->dtype, dst->numel);
    et_release(s);
}

static void cuda_adamw(int index, int n, const et_adamw_tensor *ts, double w1, double beta2,
                       double c2, double eps) {
    if (n <= 0) return;
    et_cuda_use(index);
    kc_adamw_tensor *k = malloc(sizeof(*k) * (size_t)n);
    ET_ASSERT(k, "out of host memory");
    for (int i = 0; i < n; i++)
        k[i] = (kc_adamw_tensor){ts[i].w,   ts[i].g, ts[i].m,     ts[i].v,        ts[i].half,
                                 ts[i].hdt, ts[i].n, ts[i].decay, ts[i].neg_step, ts[i].bc2_sqrt};
    kc_adamw_multi(n, k, w1, beta2, c2, eps);
    free(k);
}

static double cuda_sumsq_f32(int index, int n, const float *const *x, const int64_t *numel) {
    et_cuda_use(index);
    et_device dev = {ET_CUDA, index};
    int64_t np = kc_sumsq_partials(n, numel);
    double *part = et_alloc(dev, sizeof(double) * (size_t)(np > 0 ? np : 1));
    double *out = et_alloc(dev, sizeof(double));
    ET_ASSERT(part && out, "out of GPU memory for the gradient-norm scratch");
    kc_sumsq_multi(n, x, numel, part, out);
    double host = 0;
    et_cuda_d2h(index, &host, out, sizeof host);  // the one synchronisation
    et_free(dev, part);
    et_free(dev, out);
    return host;
}

static void cuda_scale_f32(int index, int n, float *const *x, const int64_t *numel, float s) {
    et_cuda_use(index);
    kc_scale_multi(n, x, numel, s);
}

static void cuda_sync(int index) { et_cuda_sync(index); }

// ---- matmul / linear --------------------------------------------------------------------

typedef struct {
    int64_t batch, M, N, K;
    bool shared_b;
} mm_dims;

static mm_dims mm_shape(const et_tensor *a, const et_tensor *b, bool ta, bool tb) {
    ET_ASSERT(a->ndim >= 2 && b->ndim >= 2, "et_matmul: operands need >= 2 dims, got %s and %s",
              shp(a).s, shp(b).s);
    mm_dims d;
    int64_t ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
    int64_t br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
    d.M = ta ? ac : ar;
    d.K = ta ? ar : ac;
    d.N = tb ? br : bc;
    ET_ASSERT(d.K == (tb ? bc : br), "et_matmul: inner dims differ for %s x %s (ta=%d tb=%d)",
              shp(a).s, shp(b).s, ta, tb);
    d.batch = et_shape_numel(a->ndim - 2, a->shape);
    d.shared_b = b->ndim == 2;
    if (!d.shared_b) {
        bool ok = b->ndim == a->ndim;
        for (int i = 0; ok && i < a->ndim - 2; i++) ok = a->shape[i] == b->shape[i];
        ET_ASSERT(ok, "et_matmul: batch dims differ: %s x %s", shp(a).s, shp(b).s);
    }
    return d;
}

// C[batch] = op(A) op(B) with B possibly shared by the batch.
static void mm_run(et_dtype dt, et_dtype cdt, bool ta, bool tb, mm_dims d, const void *A,
                   const void *B, void *C) {
    if (d.shared_b && !ta) {
        kc_gemm(dt, cdt, ta, tb, 1, d.batch * d.M, d.N, d.K, A, 0, B, 0, 0, C, 0, NULL);
        return;
    }
    kc_gemm(dt, cdt, ta, tb, d.batch, d.M, d.N, d.K, A, d.M * d.K, B, d.shared_b ? 0 : d.K * d.N, 0,
            C, d.M * d.N, NULL);
}

static void matmul_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    bool ta = n->i[0], tb = n->i[1];
    mm_dims d = {n->i[2], n->i[3], n->i[4], n->i[5], n->i[6]};
    et_tensor *a = n->saved[0], *b = n->saved[1];
    et_tensor *ref = a ? a : b;
    et_device dev = use(ref);
    et_dtype dt = ref->dtype;
    et_tensor *gy = as_dt(gy_, dev, dt);
    int64_t sb = d.shared_b ? 0 : d.K * d.N;
    if (n->needs[0]) {
        et_tensor *ga = node_grad(n, 0, dev, dt);
        if (!ta)
            kc_gemm(dt, dt, false, !tb, d.batch, d.M, d.K, d.N, et_data(gy), d.M * d.N, et_data(b),
                    sb, 0, et_data(ga), d.M * d.K, NULL);
        else
            kc_gemm(dt, dt, tb, true, d.batch, d.K, d.M, d.N, et_data(b), sb, et_data(gy),
                    d.M * d.N, 0, et_data(ga), d.M * d.K, NULL);
        gx[0] = ga;
    }
    if (n->needs[1]) {
        et_tensor *gb = node_grad(n, 1, dev, ET_F32);
        if (d.shared_b && !ta) {
            int64_t R = d.batch * d.M;
            if (!tb)
                kc_gemm(dt, ET_F32, true, false, 1, d.K, d.N, R, et_data(a), 0, et_data(gy), 0, 0,
                        et_data(gb), 0, NULL);
            else
                kc_gemm(dt, ET_F32, true, false, 1, d.N, d.K, R, et_data(gy), 0, et_data(a), 0, 0,
                        et_data(gb), 0, NULL);
        } else if (!d.shared_b) {
            if (!tb)
                kc_gemm(dt, ET_F32, !ta, false, d.batch, d.K, d.N, d.M, et_data(a), d.M * d.K,
                        et_data(gy), d.M * d.N, 0, et_data(gb), d.K * d.N, NULL);
            else
                kc_gemm(dt, ET_F32, true, ta, d.batch, d.N, d.K, d.M, et_data(gy), d.M * d.N,
                        et_data(a), d.M * d.K, 0, et_data(gb), d.K * d.N, NULL);
        } else {  // shared B with a transposed A: accumulate over the batch (f32 output)
            size_t es = et_dtype_size(dt);
            for (int64_t bi = 0; bi < d.batch; bi++) {
                const char *ap = (const char *)et_data(a) + (size_t)(bi * d.M * d.K) * es;
                const char *gp = (const char *)et_data(gy) + (size_t)(bi * d.M * d.N) * es;
                float beta = bi > 0 ? 1.f : 0.f;
                if (!tb)
                    kc_gemm(dt, ET_F32, !ta, false, 1, d.K, d.N, d.M, ap, 0, gp, 0, beta,
                            et_data(gb), 0, NULL);
                else
                    kc_gemm(dt, ET_F32, true, ta, 1, d.N, d.K, d.M, gp, 0, ap, 0, beta, et_data(gb),
                            0, NULL);
            }
        }
        gx[1] = gb;
    }
    et_release(gy);
}

static et_tensor *cuda_matmul(et_tensor *a, et_tensor *b, bool ta, bool tb) {
    check_act("et_matmul", a, "a");
    check_act("et_matmul", b, "b");
    et_device dev = PICK(a, b);
    mm_dims d = mm_shape(a, b, ta, tb);
    if (d.shared_b && ta) ET_ASSERT(d.batch >= 1, "et_matmul: empty batch");
    et_tensor *ac = as_dt(a, dev, a->dtype), *bc = as_dt(b, dev, a->dtype);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[a->ndim - 2] = d.M;
    shape[a->ndim - 1] = d.N;
    et_tensor *y = newt(dev, a->dtype, a->ndim, shape);
    if (d.shared_b && ta) {  // per-batch GEMMs (a strided A against one B)
        size_t es = et_dtype_size(a->dtype);
        for (int64_t bi = 0; bi < d.batch; bi++)
            kc_gemm(a->dtype, a->dtype, ta, tb, 1, d.M, d.N, d.K,
                    (const char *)et_data(ac) + (size_t)(bi * d.M * d.K) * es, 0, et_data(bc), 0, 0,
                    (char *)et_data(y) + (size_t)(bi * d.M * d.N) * es, 0, NULL);
    } else {
        mm_run(a->dtype, a->dtype, ta, tb, d, et_data(ac), et_data(bc), et_data(y));
    }
    et_tensor *in[2] = {a, b};
    if (et_should_record(2, in)) {
        et_node *n = et_record("matmul", matmul_backward, y, 2, in);
        if (n->needs[1]) et_node_save(n, 0, ac);
        if (n->needs[0]) et_node_save(n, 1, bc);
        n->i[0] = ta, n->i[1] = tb, n->i[2] = d.batch, n->i[3] = d.M, n->i[4] = d.N, n->i[5] = d.K;
        n->i[6] = d.shared_b;
    }
    et_release(ac);
    et_release(bc);
    return y;
}

static void linear_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_tensor *x = n->saved[0], *w = n->saved[1];
    et_tensor *ref = x ? x : w;
    et_device dev = use(ref);
    et_dtype dt = ref->dtype;
    et_tensor *gy = as_dt(gy_, dev, dt);
    int64_t out = n->in_shape[1][0], in = n->in_shape[1][1], rows = gy->numel / (out ? out : 1);
    if (n->needs[0]) {
        et_tensor *g = node_grad(n, 0, dev, dt);
        kc_gemm(dt, dt, false, false, 1, rows, in, out, et_data(gy), 0, et_data(w), 0, 0,
                et_data(g), 0, NULL);
        gx[0] = g;
    }
    if (n->needs[1]) {  // skipped entirely for frozen weights
        et_tensor *g = node_grad(n, 1, dev, ET_F32);
        kc_gemm(dt, ET_F32, true, false, 1, out, in, rows, et_data(gy), 0, et_data(x), 0, 0,
                et_data(g), 0, NULL);
        gx[1] = g;
    }
    if (n->needs[2]) {
        et_tensor *g32 = as_dt(gy, dev, ET_F32), *g = node_grad(n, 2, dev, ET_F32);
        kc_colsum(ET_F32, et_data(g32), et_data(g), rows, out);
        et_release(g32);
        gx[2] = g;
    }
    et_release(gy);
}

static et_tensor *cuda_linear(et_tensor *x, et_tensor *w, et_tensor *b) {
    check_act("et_linear", x, "x");
    check_act("et_linear", w, "w");
    ET_ASSERT(w->ndim == 2 && x->ndim >= 1 && x->shape[x->ndim - 1] == w->shape[1],
              "et_linear: x %s does not match weight %s", shp(x).s, shp(w).s);
    if (b)
        ET_ASSERT(b->ndim == 1 && b->shape[0] == w->shape[0], "et_linear: bias %s for weight %s",
                  shp(b).s, shp(w).s);
    et_device dev = PICK(x, w, b);
    int64_t out = w->shape[0], in = w->shape[1], rows = et_rows(x);
    et_tensor *xc = as_dt(x, dev, x->dtype);
    et_tensor *wc = as_dt(w, dev, x->dtype), *bc = as_dt(b, dev, x->dtype);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out;
    et_tensor *y = newt(dev, x->dtype, x->ndim, shape);
    kc_gemm(x->dtype, x->dtype, false, true, 1, rows, out, in, et_data(xc), 0, et_data(wc), 0, 0,
            et_data(y), 0, dp(bc));
    et_tensor *ins[3] = {x, w, b};
    if (et_should_record(3, ins)) {
        et_node *n = et_record("linear", linear_backward, y, 3, ins);
        if (n->needs[1]) et_node_save(n, 0, xc);
        if (n->needs[0]) et_node_save(n, 1, wc);
    }
    et_release(xc);
    et_release(wc);
    et_release(bc);
    return y;
}

// ---- fused LoRA linear ------------------------------------------------------------------
// y = x W^T (+ b) + s (xl A^T) B^T as one tape node (train/models/nn.c, the CPU op's GPU twin):
// three cuBLASLt GEMMs, the last accumulating alpha = s, beta = 1 into y, so y is written
// once and no [rows, out] temporaries exist (the composed ops wrote three more and read
// them back in both directions). Backward with gy: gh = s gy B [rows, r]; dB = s gy^T h
// (f32), dA = gh^T xl (f32), dx = gy W (+ gh A, beta 1, when xl is x), dxl = gh A;
// dW / db only for a trainable base. Activations and GEMM inputs in x's dtype (the f32 LoRA
// masters are cast per call, as et_linear does), fp32 accumulation.

enum { LI_X, LI_W, LI_B, LI_A, LI_BB, LI_XL, LI_N };
enum { LS_X, LS_W, LS_A, LS_BB, LS_H, LS_XL };

static void lora_linear_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    const et_dtype dt = (et_dtype)n->i[0];
    const int64_t rows = n->i[1], in = n->i[2], out = n->i[3], r = n->i[4];
    const bool same_x = n->i[5];
    const float s = (float)n->f[0];
    const et_device dev = {ET_CUDA, (int)n->i[6]};
    et_cuda_use(dev.index);
    et_tensor *gy = as_dt(gy_, dev, dt);
    et_tensor *x = n->saved[LS_X], *w = n->saved[LS_W], *a = n->saved[LS_A];
    et_tensor *bb = n->saved[LS_BB], *h = n->saved[LS_H], *xl = n->saved[LS_XL];
    const bool need_gh = n->needs[LI_A] || n->needs[LI_XL] || (same_x && n->needs[LI_X]);
    et_tensor *gh = NULL;
    if (need_gh) {  // gh = s gy B
        gh = newt(dev, dt, 2, (int64_t[]){rows, r});
        kc_gemm_ab(dt, dt, false, false, 1, rows, r, out, s, et_data(gy), 0, et_data(bb), 0, 0,
                   et_data(gh), 0, NULL);
    }
    if (n->needs[LI_BB]) {  // dB = s gy^T h
        et_tensor *g = node_grad(n, LI_BB, dev, ET_F32);
        kc_gemm_ab(dt, ET_F32, true, false, 1, out, r, rows, s, et_data(gy), 0, et_data(h), 0, 0,
                   et_data(g), 0, NULL);
        gx[LI_BB] = g;
    }
    if (n->needs[LI_A]) {  // dA = gh^T xl
        et_tensor *g = node_grad(n, LI_A, dev, ET_F32);
        kc_gemm(dt, ET_F32, true, false, 1, r, in, rows, et_data(gh), 0, et_data(same_x ? x : xl),
                0, 0, et_data(g), 0, NULL);
        gx[LI_A] = g;
    }
    if (n->needs[LI_X]) {  // dx = gy W (+ gh A)
        et_tensor *g = node_grad(n, LI_X, dev, dt);
        kc_gemm(dt, dt, false, false, 1, rows, in, out, et_data(gy), 0, et_data(w), 0, 0,
                et_data(g), 0, NULL);
        if (same_x)
            kc_gemm(dt, dt, false, false, 1, rows, in, r, et_data(gh), 0, et_data(a), 0, 1,
                    et_data(g), 0, NULL);
        gx[LI_X] = g;
    }
    if (n->needs[LI_XL]) {  // dxl = gh A
        et_tensor *g = node_grad(n, LI_XL, dev, dt);
        kc_gemm(dt, dt, false, false, 1, rows, in, r, et_data(gh), 0, et_data(a), 0, 0, et_data(g),
                0, NULL);
        gx[LI_XL] = g;
    }
    if (n->needs[LI_W]) {  // dW = gy^T x
        et_tensor *g = node_grad(n, LI_W, dev, ET_F32);
        kc_gemm(dt, ET_F32, true, false, 1, out, in, rows, et_data(gy), 0, et_data(x), 0, 0,
                et_data(g), 0, NULL);
        gx[LI_W] = g;
    }
    if (n->needs[LI_B]) {
        et_tensor *g32 = as_dt(gy, dev, ET_F32), *g = node_grad(n, LI_B, dev, ET_F32);
        kc_colsum(ET_F32, et_data(g32), et_data(g), rows, out);
        et_release(g32);
        gx[LI_B] = g;
    }
    et_release(gh);
    et_release(gy);
}

static et_tensor *cuda_lora_linear(et_tensor *x, et_tensor *w, et_tensor *b, et_tensor *a,
                                   et_tensor *bb, et_tensor *xl, double scale) {
    const char *op = "lora_linear";
    check_act(op, x, "x");
    check_act(op, w, "weight");
    check_act(op, a, "lora_A");
    check_act(op, bb, "lora_B");
    if (xl) check_act(op, xl, "dropout(x)");
    const int64_t out = w->shape[0], in = w->shape[1], r = a->shape[0];
    ET_ASSERT(w->ndim == 2 && x->ndim >= 1 && x->shape[x->ndim - 1] == in,
              "%s: x %s does not match weight %s", op, shp(x).s, shp(w).s);
    ET_ASSERT(a->ndim == 2 && a->shape[1] == in && bb->ndim == 2 && bb->shape[0] == out &&
                  bb->shape[1] == r,
              "%s: lora_A %s / lora_B %s do not match weight %s", op, shp(a).s, shp(bb).s,
              shp(w).s);
    ET_ASSERT(!b || (b->ndim == 1 && b->shape[0] == out), "%s: bias %s for weight %s", op, shp(b).s,
              shp(w).s);
    ET_ASSERT(!xl || xl->numel == x->numel, "%s: dropout(x) %s does not match x %s", op, shp(xl).s,
              shp(x).s);
    const et_device dev = PICK(x, w, b, a, bb, xl);
    const et_dtype dt = x->dtype;
    const int64_t rows = et_rows(x);
    const float s = (float)scale;
    et_tensor *xc = as_dt(x, dev, dt), *wc = as_dt(w, dev, dt), *bc = as_dt(b, dev, dt);
    et_tensor *ac = as_dt(a, dev, dt), *bbc = as_dt(bb, dev, dt);
    et_tensor *xlc = as_dt(xl, dev, dt);
    et_tensor *h = newt(dev, dt, 2, (int64_t[]){rows, r});  // h = xl A^T
    kc_gemm(dt, dt, false, true, 1, rows, r, in, et_data(xlc ? xlc : xc), 0, et_data(ac), 0, 0,
            et_data(h), 0, NULL);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out;
    et_tensor *y = newt(dev, dt, x->ndim, shape);
    kc_gemm(dt, dt, false, true, 1, rows, out, in, et_data(xc), 0, et_data(wc), 0, 0, et_data(y), 0,
            dp(bc));
    kc_gemm_ab(dt, dt, false, true, 1, rows, out, r, s, et_data(h), 0, et_data(bbc), 0, 1,
               et_data(y), 0, NULL);
    et_tensor *ins[LI_N] = {x, w, b, a, bb, xl};
    if (et_should_record(LI_N, ins)) {
        et_node *n = et_record("lora_linear", lora_linear_backward, y, LI_N, ins);
        const bool need_gh = n->needs[LI_A] || n->needs[LI_XL] || (!xl && n->needs[LI_X]);
        if (n->needs[LI_W] || (!xl && n->needs[LI_A])) et_node_save(n, LS_X, xc);
        if (n->needs[LI_X]) et_node_save(n, LS_W, wc);
        if (n->needs[LI_X] || n->needs[LI_XL]) et_node_save(n, LS_A, ac);
        if (need_gh) et_node_save(n, LS_BB, bbc);
        if (n->needs[LI_BB]) et_node_save(n, LS_H, h);
        if (xl && n->needs[LI_A]) et_node_save(n, LS_XL, xlc);
        n->f[0] = scale;
        n->i[0] = dt, n->i[1] = rows, n->i[2] = in, n->i[3] = out, n->i[4] = r, n->i[5] = !xl;
        n->i[6] = dev.index;
    }
    et_release(xc), et_release(wc), et_release(bc), et_release(ac), et_release(bbc);
    et_release(xlc), et_release(h);
    return y;
}

// ---- elementwise ------------------------------------------------------------------------

static void binary_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    int op = (int)n->i[0];
    et_dtype dt = (et_dtype)n->i[1];
    et_device dev = {ET_CUDA, (int)n->i[2]};
    et_cuda_use(dev.index);
    et_tensor *gy = as_dt(gy_, dev, dt);
    for (int k = 0; k < 2; k++) {
        if (!n->needs[k]) continue;
        et_tensor *g = newt(dev, dt, gy->ndim, gy->shape);
        if (op == KC_MUL)
            kc_binary(KC_MUL, dt, et_data(gy), et_data(n->saved[1 - k]), et_data(g), gy->numel);
        else
            kc_scale(dt, et_data(gy), et_data(g), gy->numel, op == KC_SUB && k == 1 ? -1.f : 1.f);
        gx[k] = g;
    }
    et_release(gy);
}

static et_tensor *binary(const char *name, int op, et_tensor *a, et_tensor *b) {
    check_act(name, a, "a");
    check_act(name, b, "b");
    ET_ASSERT(et_same_shape(a, b), "%s: shapes differ: %s vs %s", name, shp(a).s, shp(b).s);
    et_device dev = PICK(a, b);
    et_tensor *ac = as_dt(a, dev, a->dtype), *bc = as_dt(b, dev, a->dtype);
    et_tensor *y = newt(dev, a->dtype, a->ndim, a->shape);
    kc_binary(op, a->dtype, et_data(ac), et_data(bc), et_data(y), a->numel);
    et_tensor *in[2] = {a, b};
    if (et_should_record(2, in)) {
        et_node *n = et_record(name, binary_backward, y, 2, in);
        n->i[0] = op, n->i[1] = a->dtype, n->i[2] = dev.index;
        if (op == KC_MUL) {
            if (n->needs[1]) et_node_save(n, 0, ac);
            if (n->needs[0]) et_node_save(n, 1, bc);
        }
    }
    et_release(ac);
    et_release(bc);
    return y;
}

static et_tensor *cuda_add(et_tensor *a, et_tensor *b) { return binary("et_add", KC_ADD, a, b); }
static et_tensor *cuda_sub(et_tensor *a, et_tensor *b) { return binary("et_sub", KC_SUB, a, b); }
static et_tensor *cuda_mul(et_tensor *a, et_tensor *b) { return binary("et_mul", KC_MUL, a, b); }

static void scale_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_device dev = {ET_CUDA, (int)n->i[1]};
    et_cuda_use(dev.index);
    et_tensor *gy = as_dt(gy_, dev, (et_dtype)n->i[0]);
    et_tensor *g = newt(dev, gy->dtype, gy->ndim, gy->shape);
    kc_scale(gy->dtype, et_data(gy), et_data(g), gy->numel, (float)n->f[0]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *cuda_scale(et_tensor *a, double s) {
    check_act("et_scale", a, "a");
    et_device dev = use(a);
    et_tensor *y = newt(dev, a->dtype, a->ndim, a->shape);
    kc_scale(a->dtype, et_data(a), et_data(y), a->numel, (float)s);
    if (et_should_record(1, &a)) {
        et_node *n = et_record("scale", scale_backward, y, 1, &a);
        n->f[0] = s, n->i[0] = a->dtype, n->i[1] = dev.index;
    }
    return y;
}

static void add_bcast_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_device dev = {ET_CUDA, (int)n->i[1]};
    et_cuda_use(dev.index);
    et_tensor *gy = as_dt(gy_, dev, (et_dtype)n->i[0]);
    if (n->needs[0]) gx[0] = et_retain(gy);
    if (n->needs[1]) {
        et_tensor *g = node_grad(n, 1, dev, gy->dtype);
        kc_colsum(gy->dtype, et_data(gy), et_data(g), gy->numel / (g->numel ? g->numel : 1),
                  g->numel);
        gx[1] = g;
    }
    et_release(gy);
}

static et_tensor *cuda_add_bcast(et_tensor *a, et_tensor *b) {
    check_act("et_add_bcast", a, "a");
    check_act("et_add_bcast", b, "b");
    bool ok = b->ndim <= a->ndim;
    for (int i = 0; ok && i < b->ndim; i++) ok = b->shape[i] == a->shape[a->ndim - b->ndim + i];
    ET_ASSERT(ok, "et_add_bcast: %s is not the trailing shape of %s", shp(b).s, shp(a).s);
    et_device dev = PICK(a, b);
    et_tensor *ac = as_dt(a, dev, a->dtype), *bc = as_dt(b, dev, a->dtype);
    et_tensor *y = newt(dev, a->dtype, a->ndim, a->shape);
    int64_t nb = b->numel;
    kc_add_bcast(a->dtype, et_data(ac), et_data(bc), et_data(y), nb ? a->numel / nb : 0, nb);
    et_release(ac);
    et_release(bc);
    et_tensor *in[2] = {a, b};
    if (et_should_record(2, in)) {
        et_node *n = et_record("add_bcast", add_bcast_backward, y, 2, in);
        n->i[0] = a->dtype, n->i[1] = dev.index;
    }
    return y;
}

static void rowsum_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_device dev = {ET_CUDA, (int)n->i[1]};
    et_cuda_use(dev.index);
    et_tensor *gy = as_dt(gy_, dev, (et_dtype)n->i[0]);
    et_tensor *g = node_grad(n, 0, dev, gy->dtype);
    int64_t d = n->in_ndim[0] ? n->in_shape[0][n->in_ndim[0] - 1] : 1;
    kc_rowsum_bwd(gy->dtype, et_data(gy), et_data(g), gy->numel, d, (float)n->f[0]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *rowsum(const char *name, et_tensor *x, bool mean) {
    check_act(name, x, "x");
    ET_ASSERT(x->ndim >= 1, "%s: needs at least one dim", name);
    et_device dev = use(x);
    int64_t d = et_last(x), rows = et_rows(x);
    double scale = mean ? 1.0 / (double)(d ? d : 1) : 1.0;
    et_tensor *y = newt(dev, x->dtype, x->ndim - 1, x->shape);
    kc_rowsum(x->dtype, et_data(x), et_data(y), rows, d, (float)scale);
    if (et_should_record(1, &x)) {
        et_node *n = et_record(name, rowsum_backward, y, 1, &x);
        n->i[0] = x->dtype, n->i[1] = dev.index, n->f[0] = scale;
    }
    return y;
}
static et_tensor *cuda_sum_last(et_tensor *x) { return rowsum("et_sum_last", x, false); }
static et_tensor *cuda_mean_last(et_tensor *x) { return rowsum("et_mean_last", x, true); }

// ---- embedding / gather -----------------------------------------------------------------
// saved: 0 idx (i32, device). Gradient of the table in f32.

static void gather_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_tensor *idx = n->saved[0];
    et_device dev = use(idx);
    et_tensor *gy = as_dt(gy_, dev, ET_F32);
    et_tensor *g = node_grad(n, 0, dev, ET_F32);
    kc_scatter_add_rows(ET_F32, et_data(gy), et_data(idx), et_data(g), idx->numel, g->shape[0],
                        g->shape[1]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *gather_op(const char *name, et_tensor *x, et_tensor *idx, int out_ndim,
                            const int64_t *out_shape) {
    et_device dev = use(x);
    et_tensor *y = newt(dev, x->dtype, out_ndim, out_shape);
    kc_gather_rows(et_dtype_size(x->dtype), et_data(x), et_data(idx), et_data(y), idx->numel,
                   x->shape[0], x->shape[1]);
    if (et_should_record(1, &x)) et_node_save(et_record(name, gather_backward, y, 1, &x), 0, idx);
    return y;
}

static et_tensor *cuda_embedding(et_tensor *w, et_tensor *ids) {
    check_act("et_embedding", w, "weight");
    ET_ASSERT(w->ndim == 2 && ids->ndim < ET_MAX_DIMS, "et_embedding: weight [V, D], got %s",
              shp(w).s);
    et_device dev = use(w);
    et_tensor *ic = index_on("et_embedding", ids, w->shape[0], dev);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
    shape[ids->ndim] = w->shape[1];
    et_tensor *y = gather_op("embedding", w, ic, ids->ndim + 1, shape);
    et_release(ic);
    return y;
}

static et_tensor *cuda_gather_rows(et_tensor *x, et_tensor *idx) {
    check_act("et_gather_rows", x, "x");
    ET_ASSERT(x->ndim == 2 && idx->ndim == 1, "et_gather_rows: x [N, D] and idx [M] expected");
    et_device dev = use(x);
    et_tensor *ic = index_on("et_gather_rows", idx, x->shape[0], dev);
    et_tensor *y = gather_op("gather_rows", x, ic, 2, (int64_t[]){ic->numel, x->shape[1]});
    et_release(ic);
    return y;
}

static void scatter_rows_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_tensor *idx = n->saved[0];
    et_device dev = use(idx);
    et_tensor *gy = as_dt(gy_, dev, (et_dtype)n->i[0]);
    int64_t D = gy->shape[1];
    size_t es = et_dtype_size(gy->dtype);
    if (n->needs[0]) {
        et_tensor *g = et_clone(gy);
        kc_zero_rows(es, et_data(g), et_data(idx), idx->numel, D);
        gx[0] = g;
    }
    if (n->needs[2]) {
        et_tensor *g = newt(dev, gy->dtype, 2, (int64_t[]){idx->numel, D});
        kc_gather_rows(es, et_data(gy), et_data(idx), et_data(g), idx->numel, gy->shape[0], D);
        gx[2] = g;
    }
    et_release(gy);
}

static et_tensor *cuda_scatter_rows(et_tensor *base, et_tensor *idx, et_tensor *src) {
    check_act("et_scatter_rows", base, "base");
    check_act("et_scatter_rows", src, "src");
    ET_ASSERT(base->ndim == 2 && src->ndim == 2 && idx->ndim == 1 &&
                  src->shape[0] == idx->shape[0] && src->shape[1] == base->shape[1] &&
                  src->dtype == base->dtype,
              "et_scatter_rows: base %s, idx [M], src %s expected with src [M, D]", shp(base).s,
              shp(src).s);
    et_device dev = PICK(base, src);
    int64_t N = base->shape[0], D = base->shape[1];
    if (idx->device.type == ET_CPU) {  // distinct rows, checked on the host
        et_tensor *c = et_empty(ET_I32, 1, idx->shape);
        et_copy_(c, idx);
        uint8_t *seen = calloc((size_t)N + 1, 1);
        const int32_t *p = et_data(c);
        for (int64_t i = 0; i < c->numel; i++) {
            ET_ASSERT(p[i] >= 0 && p[i] < N, "et_scatter_rows: index %d outside [0, %lld)", p[i],
                      (long long)N);
            ET_ASSERT(!seen[p[i]], "et_scatter_rows: row %d appears twice in idx", p[i]);
            seen[p[i]] = 1;
        }
        free(seen);
        et_release(c);
    }
    et_tensor *ic = index_on("et_scatter_rows", idx, N, dev);
    et_tensor *sc = as_dt(src, dev, base->dtype);
    et_tensor *y = newt(dev, base->dtype, base->ndim, base->shape);
    et_copy_(y, base);
    et_cuda_use(dev.index);
    kc_scatter_rows(et_dtype_size(base->dtype), et_data(sc), et_data(ic), et_data(y), ic->numel, D);
    et_tensor *in[3] = {base, NULL, src};
    if (et_should_record(3, in)) {
        et_node *n = et_record("scatter_rows", scatter_rows_backward, y, 3, in);
        n->i[0] = base->dtype;
        et_node_save(n, 0, ic);
    }
    et_release(sc);
    et_release(ic);
    return y;
}

// ---- shape ops --------------------------------------------------------------------------

static void split_dims(int ndim, const int64_t *shape, int dim, int64_t *outer, int64_t *inner) {
    *outer = et_shape_numel(dim, shape);
    *inner = et_shape_numel(ndim - dim - 1, shape + dim + 1);
}

static void narrow_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    int dim = (int)n->i[0];
    int64_t start = n->i[1], len = n->i[2], outer, inner, full = n->in_shape[0][dim];
    split_dims(n->in_ndim[0], n->in_shape[0], dim, &outer, &inner);
    et_device dev = {ET_CUDA, (int)n->i[3]};
    et_cuda_use(dev.index);
    et_tensor *g = as_dt(gy, dev, (et_dtype)n->i[4]);
    et_tensor *r = newt(dev, g->dtype, n->in_ndim[0], n->in_shape[0]);
    size_t es = et_dtype_size(g->dtype);
    kc_fill(et_data(r), r->dtype, 0, r->numel);
    et_cuda_copy2d((char *)et_data(r) + (size_t)(start * inner) * es, (size_t)(full * inner) * es,
                   et_data(g), (size_t)(len * inner) * es, (size_t)(len * inner) * es,
                   (size_t)outer);
    et_release(g);
    gx[0] = r;
}

static et_tensor *cuda_narrow(et_tensor *x, int dim, int64_t start, int64_t len) {
    ET_ASSERT(dim >= 0 && dim < x->ndim && start >= 0 && len >= 0 && start + len <= x->shape[dim],
              "et_narrow: [%lld, %lld) of dim %d is outside %s", (long long)start,
              (long long)(start + len), dim, shp(x).s);
    et_device dev = use(x);
    int64_t outer, inner, shape[ET_MAX_DIMS];
    split_dims(x->ndim, x->shape, dim, &outer, &inner);
    memcpy(shape, x->shape, sizeof shape);
    shape[dim] = len;
    et_tensor *y;
    if (outer == 1) {
        y = et_view_raw(x, x->ndim, shape, start * inner);
    } else {
        y = newt(dev, x->dtype, x->ndim, shape);
        size_t es = et_dtype_size(x->dtype);
        et_cuda_copy2d(et_data(y), (size_t)(len * inner) * es,
                       (const char *)et_data(x) + (size_t)(start * inner) * es,
                       (size_t)(x->shape[dim] * inner) * es, (size_t)(len * inner) * es,
                       (size_t)outer);
    }
    if (et_should_record(1, &x)) {
        et_node *n = et_record("narrow", narrow_backward, y, 1, &x);
        n->i[0] = dim, n->i[1] = start, n->i[2] = len, n->i[3] = dev.index, n->i[4] = x->dtype;
    }
    return y;
}

static void permute_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    const int nd = (int)n->i[0];
    int inv[ET_MAX_DIMS];
    for (int i = 0; i < nd; i++) inv[(n->i[1] >> (4 * i)) & 15] = i;
    et_device dev = {ET_CUDA, (int)n->i[2]};
    et_cuda_use(dev.index);
    et_tensor *g = as_dt(gy, dev, (et_dtype)n->i[3]);
    et_no_grad_begin();
    gx[0] = et_permute(g, nd, inv);
    et_no_grad_end();
    et_release(g);
}

static et_tensor *cuda_permute(et_tensor *x, int ndim, const int *perm) {
    et_permute_plan p;
    ET_ASSERT(et_permute_plan_make(x, ndim, perm, &p),
              "et_permute: the permutation is not one of the %d dims of %s", ndim, shp(x).s);
    et_device dev = use(x);
    int64_t shape[ET_MAX_DIMS], packed = 0;
    for (int i = 0; i < ndim; i++)
        shape[i] = x->shape[perm[i]], packed |= (int64_t)perm[i] << (4 * i);
    et_tensor *y = newt(dev, x->dtype, ndim, shape);
    kc_permute(et_dtype_size(x->dtype), et_data(x), et_data(y), p.ndim, p.shape, p.stride,
               y->numel);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("permute", permute_backward, y, 1, &x);
        n->i[0] = ndim, n->i[1] = packed, n->i[2] = dev.index, n->i[3] = x->dtype;
    }
    return y;
}

static void concat_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    int dim = (int)n->i[0];
    et_device dev = {ET_CUDA, (int)n->i[1]};
    et_tensor *g = as_dt(gy, dev, gy->dtype);
    int64_t start = 0;
    for (int k = 0; k < n->n_inputs; k++) {
        int64_t len = n->in_shape[k][dim];
        if (n->needs[k]) {
            et_no_grad_begin();
            gx[k] = cuda_narrow(g, dim, start, len);
            et_no_grad_end();
            if (gx[k]->storage == g->storage) {
                et_tensor *c = et_clone(gx[k]);
                et_release(gx[k]);
                gx[k] = c;
            }
        }
        start += len;
    }
    et_release(g);
}

static et_tensor *cuda_concat(int n, et_tensor *const *ts, int dim) {
    ET_ASSERT(n >= 1 && n <= ET_NODE_MAX_INPUTS, "et_concat: 1..%d tensors, got %d",
              ET_NODE_MAX_INPUTS, n);
    const et_tensor *t0 = ts[0];
    ET_ASSERT(dim >= 0 && dim < t0->ndim, "et_concat: dim %d of a %d-dim tensor", dim, t0->ndim);
    et_device dev = pick_dev(n, (const et_tensor *const *)ts);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, t0->shape, sizeof shape);
    shape[dim] = 0;
    et_tensor *tc[ET_NODE_MAX_INPUTS];
    for (int k = 0; k < n; k++) {
        bool ok = ts[k]->ndim == t0->ndim && ts[k]->dtype == t0->dtype;
        for (int i = 0; ok && i < t0->ndim; i++) ok = i == dim || ts[k]->shape[i] == t0->shape[i];
        ET_ASSERT(ok, "et_concat: %s does not match %s along dims other than %d (same dtype)",
                  shp(ts[k]).s, shp(t0).s, dim);
        shape[dim] += ts[k]->shape[dim];
        tc[k] = as_dt(ts[k], dev, t0->dtype);  // CPU (or other-GPU) parts are copied here
    }
    et_cuda_use(dev.index);
    et_tensor *y = newt(dev, t0->dtype, t0->ndim, shape);
    int64_t outer, inner;
    split_dims(t0->ndim, shape, dim, &outer, &inner);
    size_t es = et_dtype_size(t0->dtype);
    int64_t off = 0;
    for (int k = 0; k < n; k++) {
        int64_t len = ts[k]->shape[dim];
        et_cuda_copy2d((char *)et_data(y) + (size_t)(off * inner) * es,
                       (size_t)(shape[dim] * inner) * es, et_data(tc[k]),
                       (size_t)(len * inner) * es, (size_t)(len * inner) * es, (size_t)outer);
        off += len;
    }
    for (int k = 0; k < n; k++) et_release(tc[k]);
    if (et_should_record(n, ts)) {
        et_node *nd = et_record("concat", concat_backward, y, n, ts);
        nd->i[0] = dim, nd->i[1] = dev.index;
    }
    return y;
}

// ---- pooling / vision ---------------------------------------------------------------------

static void mean_pool_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_device dev = {ET_CUDA, (int)n->i[1]};
    et_cuda_use(dev.index);
    et_tensor *gy = as_dt(gy_, dev, (et_dtype)n->i[0]);
    et_tensor *g = node_grad(n, 0, dev, gy->dtype);
    kc_mean_pool_bwd(gy->dtype, et_data(gy), dp(n->saved[0]), et_data(g), g->shape[0], g->shape[1],
                     g->shape[2]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *cuda_mean_pool(et_tensor *x, et_tensor *mask) {
    check_act("et_mean_pool", x, "x");
    ET_ASSERT(x->ndim == 3, "et_mean_pool: x must be [B, T, D], got %s", shp(x).s);
    if (mask)
        ET_ASSERT(mask->ndim == 2 && mask->shape[0] == x->shape[0] && mask->shape[1] == x->shape[1],
                  "et_mean_pool: mask must be [B, T] for x %s", shp(x).s);
    et_device dev = use(x);
    et_tensor *mc = mask_on(mask, dev, ET_I32);
    et_tensor *y = newt(dev, x->dtype, 2, (int64_t[]){x->shape[0], x->shape[2]});
    kc_mean_pool_fwd(x->dtype, et_data(x), dp(mc), et_data(y), x->shape[0], x->shape[1],
                     x->shape[2]);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("mean_pool", mean_pool_backward, y, 1, &x);
        n->i[0] = x->dtype, n->i[1] = dev.index;
        if (mc) et_node_save(n, 0, mc);
    }
    et_release(mc);
    return y;
}

static void avg_pool2d_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_device dev = {ET_CUDA, (int)n->i[3]};
    et_cuda_use(dev.index);
    et_tensor *gy = as_dt(gy_, dev, (et_dtype)n->i[0]);
    const int64_t *s = n->in_shape[0];
    et_tensor *g = node_grad(n, 0, dev, gy->dtype);
    kc_avg_pool2d_bwd(gy->dtype, et_data(gy), et_data(g), s[0], s[1], s[2], s[3], (int)n->i[1],
                      (int)n->i[2]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *cuda_avg_pool2d(et_tensor *x, int k, int stride) {
    check_act("et_avg_pool2d", x, "x");
    ET_ASSERT(x->ndim == 4 && k >= 1 && stride >= 1 && x->shape[1] >= k && x->shape[2] >= k,
              "et_avg_pool2d: x [B, H, W, C] with H, W >= k expected, got %s", shp(x).s);
    et_device dev = use(x);
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    et_tensor *y = newt(dev, x->dtype, 4, (int64_t[]){B, Ho, Wo, C});
    kc_avg_pool2d_fwd(x->dtype, et_data(x), et_data(y), B, H, W, C, k, stride);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("avg_pool2d", avg_pool2d_backward, y, 1, &x);
        n->i[0] = x->dtype, n->i[1] = k, n->i[2] = stride, n->i[3] = dev.index;
    }
    return y;
}

static void resize_bilinear_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_device dev = {ET_CUDA, (int)n->i[1]};
    et_cuda_use(dev.index);
    et_tensor *gy = as_dt(gy_, dev, (et_dtype)n->i[0]);
    const int64_t *s = n->in_shape[0];
    et_tensor *g = node_grad(n, 0, dev, gy->dtype);
    kc_resize_bilinear_bwd(gy->dtype, et_data(gy), et_data(g), s[0], s[1], s[2], s[3], gy->shape[1],
                           gy->shape[2]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *cuda_resize_bilinear(et_tensor *x, int64_t Ho, int64_t Wo) {
    check_act("et_resize_bilinear", x, "x");
    ET_ASSERT(x->ndim == 4 && x->shape[1] >= 1 && x->shape[2] >= 1 && Ho >= 1 && Wo >= 1,
              "et_resize_bilinear: x [B, H, W, C] with H, W >= 1 and an output of at least "
              "1 x 1 expected, got %s -> %lld x %lld",
              shp(x).s, (long long)Ho, (long long)Wo);
    et_device dev = use(x);
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    et_tensor *y = newt(dev, x->dtype, 4, (int64_t[]){B, Ho, Wo, C});
    kc_resize_bilinear_fwd(x->dtype, et_data(x), et_data(y), B, H, W, C, Ho, Wo);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("resize_bilinear", resize_bilinear_backward, y, 1, &x);
        n->i[0] = x->dtype, n->i[1] = dev.index;
    }
    return y;
}

static void im2col_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_device dev = {ET_CUDA, (int)n->i[2]};
    et_cuda_use(dev.index);
    et_tensor *gy = as_dt(gy_, dev, (et_dtype)n->i[0]);
    const int64_t *is = n->in_shape[0];
    et_tensor *g = node_grad(n, 0, dev, gy->dtype);
    kc_col2im(gy->dtype, et_data(gy), et_data(g), is[0], is[1], is[2], is[3], (int)n->i[1]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *cuda_patch_embed(et_tensor *img, et_tensor *w, et_tensor *b) {
    check_act("et_patch_embed", img, "img");
    check_act("et_patch_embed", w, "w");
    ET_ASSERT(img->ndim == 4 && w->ndim == 4 && w->shape[1] == img->shape[1] &&
                  w->shape[2] == w->shape[3] && w->shape[2] > 0 &&
                  img->shape[2] % w->shape[2] == 0 && img->shape[3] % w->shape[2] == 0,
              "et_patch_embed: img [B, C, H, W] and w [D, C, p, p] with p dividing H and W "
              "expected, got %s and %s",
              shp(img).s, shp(w).s);
    et_device dev = PICK(img, w, b);
    int p = (int)w->shape[2];
    int64_t B = img->shape[0], C = img->shape[1], H = img->shape[2], W = img->shape[3];
    et_tensor *imgc = as_dt(img, dev, img->dtype);
    et_tensor *cols = newt(dev, img->dtype, 3, (int64_t[]){B, (H / p) * (W / p), C * p * p});
    kc_im2col(img->dtype, et_data(imgc), et_data(cols), B, C, H, W, p);
    et_release(imgc);
    if (et_should_record(1, &img)) {
        et_node *n = et_record("im2col", im2col_backward, cols, 1, &img);
        n->i[0] = img->dtype, n->i[1] = p, n->i[2] = dev.index;
    }
    et_tensor *w2 = et_reshape(w, 2, (int64_t[]){w->shape[0], cols->shape[2]});
    et_tensor *y = et_linear(cols, w2, b);
    et_release(cols);
    et_release(w2);
    return y;
}

static void bilinear_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_tensor *pts = n->saved[0];
    et_device dev = use(pts);
    et_tensor *gy = as_dt(gy_, dev, (et_dtype)n->i[0]);
    const int64_t *s = n->in_shape[0];
    et_tensor *g = node_grad(n, 0, dev, ET_F32);
    kc_bilinear_bwd(gy->dtype, et_data(gy), et_data(pts), et_data(g), s[0], s[1], s[2], s[3],
                    pts->shape[1]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *cuda_bilinear_sample(et_tensor *feat, et_tensor *pts) {
    check_act("et_bilinear_sample", feat, "feat");
    ET_ASSERT(
        feat->ndim == 4 && pts->ndim == 3 && pts->shape[0] == feat->shape[0] && pts->shape[2] == 2,
        "et_bilinear_sample: feat [B, H, W, C] and pts [B, P, 2] expected, got %s and %s",
        shp(feat).s, shp(pts).s);
    et_device dev = use(feat);
    int64_t B = feat->shape[0], H = feat->shape[1], W = feat->shape[2], C = feat->shape[3];
    int64_t P = pts->shape[1];
    et_tensor *pc = as_dt(pts, dev, ET_F32);
    et_tensor *y = newt(dev, feat->dtype, 3, (int64_t[]){B, P, C});
    kc_bilinear_fwd(feat->dtype, et_data(feat), et_data(pc), et_data(y), B, H, W, C, P);
    if (et_should_record(1, &feat)) {
        et_node *n = et_record("bilinear_sample", bilinear_backward, y, 1, &feat);
        n->i[0] = feat->dtype;
        et_node_save(n, 0, pc);
    }
    et_release(pc);
    return y;
}

// ---- dropout / cast -----------------------------------------------------------------------

static void dropout_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_tensor *keep = n->saved[0];
    et_device dev = use(keep);
    et_tensor *gy = as_dt(gy_, dev, (et_dtype)n->i[0]);
    et_tensor *g = newt(dev, gy->dtype, gy->ndim, gy->shape);
    kc_masked_scale(gy->dtype, et_data(gy), et_data(keep), et_data(g), gy->numel, (float)n->f[0]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *cuda_dropout(et_tensor *x, double p, uint64_t seed, uint64_t offset) {
    check_act("et_dropout", x, "x");
    ET_ASSERT(p >= 0 && p <= 1, "et_dropout: p = %g outside [0, 1]", p);
    if (p == 0) return cuda_scale(x, 1.0);
    et_device dev = use(x);
    double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
    et_tensor *keep = newt(dev, ET_U8, x->ndim, x->shape);
    et_tensor *y = newt(dev, x->dtype, x->ndim, x->shape);
    kc_dropout(x->dtype, et_data(x), et_data(y), et_data(keep), x->numel, (float)p, (float)scale,
               seed, offset);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("dropout", dropout_backward, y, 1, &x);
        n->i[0] = x->dtype;
        n->f[0] = scale;
        et_node_save(n, 0, keep);
    }
    et_release(keep);
    return y;
}

static void cast_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    et_device dev = {ET_CUDA, (int)n->i[0]};
    gx[0] = as_dt(gy, dev, ET_F32);  // the CPU rule: gradients of float inputs in f32
}

static et_tensor *cuda_cast(et_tensor *x, et_dtype dt) {
    check_act("et_cast", x, "x");
    ET_ASSERT(dt == ET_F32 || dt == ET_BF16 || dt == ET_F16,
              "et_cast: target %s (f32, bf16, f16 on CUDA; f64 only on the CPU)",
              et_dtype_name(dt));
    et_device dev = use(x);
    et_tensor *y = newt(dev, dt, x->ndim, x->shape);
    kc_convert(et_data(y), dt, et_data(x), x->dtype, x->numel);
    if (et_should_record(1, &x)) et_record("cast", cast_backward, y, 1, &x)->i[0] = dev.index;
    return y;
}

// ---- norms ------------------------------------------------------------------------------

static void check_vec(const char *op, const et_tensor *w, const char *what, int64_t D) {
    if (!w) return;
    check_act(op, w, what);
    ET_ASSERT(w->ndim == 1 && w->shape[0] == D, "%s: %s must be [%lld], got %s", op, what,
              (long long)D, shp(w).s);
}

// saved: 0 x, 1 w (f32 or NULL), 2 rstd
static void rmsnorm_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_tensor *x = n->saved[0], *w = n->saved[1], *rstd = n->saved[2];
    et_device dev = use(x);
    int64_t D = et_last(x), rows = et_rows(x);
    et_tensor *gy = as_dt(gy_, dev, x->dtype);
    et_tensor *dx = node_grad(n, 0, dev, x->dtype), *dw = node_grad(n, 1, dev, ET_F32);
    kc_rmsnorm_bwd(x->dtype, et_data(gy), et_data(x), dp(w), et_data(rstd), dp(dx), dp(dw), rows,
                   D);
    et_release(gy);
    gx[0] = dx;
    gx[1] = dw;
}

// y = rmsnorm(in) recorded with `in` as its input. Plain: in = x, res = NULL. Fused: the
// kernel forms in = x + res (x, res on dev in in's dtype) and writes it into in's buffer.
static et_tensor *rmsnorm_run(et_device dev, et_tensor *in, const et_tensor *x,
                              const et_tensor *res, et_tensor *w, double eps) {
    int64_t D = et_last(in), rows = et_rows(in);
    et_tensor *wc = as_dt(w, dev, ET_F32);
    et_tensor *y = newt(dev, in->dtype, in->ndim, in->shape), *rstd = newt(dev, ET_F32, 1, &rows);
    kc_rmsnorm_fwd(in->dtype, et_data(x), dp(res), res ? et_data(in) : NULL, dp(wc), et_data(y),
                   et_data(rstd), rows, D, (float)eps);
    et_tensor *ins[2] = {in, w};
    if (et_should_record(2, ins)) {
        et_node *n = et_record("rmsnorm", rmsnorm_backward, y, 2, ins);
        et_node_save(n, 0, in);
        et_node_save(n, 1, wc);
        et_node_save(n, 2, rstd);
    }
    et_release(wc);
    et_release(rstd);
    return y;
}

static et_tensor *cuda_rmsnorm(et_tensor *x, et_tensor *w, double eps) {
    check_act("et_rmsnorm", x, "x");
    ET_ASSERT(x->ndim >= 1, "et_rmsnorm: x needs a dim, got %s", shp(x).s);
    check_vec("et_rmsnorm", w, "w", et_last(x));
    return rmsnorm_run(use(x), x, x, NULL, w, eps);
}

// saved: 0 x, 1 w (f32 or NULL), 2 mean, 3 rstd
static void layernorm_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_tensor *x = n->saved[0], *w = n->saved[1];
    et_device dev = use(x);
    int64_t D = et_last(x), rows = et_rows(x);
    et_tensor *gy = as_dt(gy_, dev, x->dtype);
    et_tensor *dx = node_grad(n, 0, dev, x->dtype), *dw = node_grad(n, 1, dev, ET_F32);
    et_tensor *db = node_grad(n, 2, dev, ET_F32);
    kc_layernorm_bwd(x->dtype, et_data(gy), et_data(x), dp(w), et_data(n->saved[2]),
                     et_data(n->saved[3]), dp(dx), dp(dw), dp(db), rows, D);
    et_release(gy);
    gx[0] = dx;
    gx[1] = dw;
    gx[2] = db;
}

// layernorm's twin of rmsnorm_run.
static et_tensor *layernorm_run(et_device dev, et_tensor *in, const et_tensor *x,
                                const et_tensor *res, et_tensor *w, et_tensor *b, double eps) {
    int64_t D = et_last(in), rows = et_rows(in);
    et_tensor *wc = as_dt(w, dev, ET_F32), *bc = as_dt(b, dev, ET_F32);
    et_tensor *y = newt(dev, in->dtype, in->ndim, in->shape);
    et_tensor *mean = newt(dev, ET_F32, 1, &rows), *rstd = newt(dev, ET_F32, 1, &rows);
    kc_layernorm_fwd(in->dtype, et_data(x), dp(res), res ? et_data(in) : NULL, dp(wc), dp(bc),
                     et_data(y), et_data(mean), et_data(rstd), rows, D, (float)eps);
    et_tensor *ins[3] = {in, w, b};
    if (et_should_record(3, ins)) {
        et_node *n = et_record("layernorm", layernorm_backward, y, 3, ins);
        et_node_save(n, 0, in);
        et_node_save(n, 1, wc);
        et_node_save(n, 2, mean);
        et_node_save(n, 3, rstd);
    }
    et_release(wc);
    et_release(bc);
    et_release(mean);
    et_release(rstd);
    return y;
}

static et_tensor *cuda_layernorm(et_tensor *x, et_tensor *w, et_tensor *b, double eps) {
    check_act("et_layernorm", x, "x");
    ET_ASSERT(x->ndim >= 1, "et_layernorm: x needs a dim, got %s", shp(x).s);
    check_vec("et_layernorm", w, "w", et_last(x));
    check_vec("et_layernorm", b, "b", et_last(x));
    return layernorm_run(use(x), x, x, NULL, w, b, eps);
}

// ---- fused residual add + norm (et_add_rmsnorm / et_add_layernorm) ----------------------
// One kernel forms x + res (res converted to x's dtype first, as cuda_add does), writes it
// to *sum and normalises it. The tape gets what the two plain ops record: cuda_add's node
// for the sum, then the norm's node with the sum as its input.

// The operands of a fused op on its device (res in x's dtype) and the sum's buffer.
static et_device add_norm_prep(const char *op, et_tensor *x, et_tensor *res, et_tensor **sum,
                               et_tensor **xc, et_tensor **rc, et_tensor **s) {
    ET_ASSERT(sum, "%s: sum (the out-pointer for x + res) is NULL", op);
    check_act(op, x, "x");
    check_act(op, res, "res");
    ET_ASSERT(et_same_shape(x, res), "%s: shapes differ: %s vs %s", op, shp(x).s, shp(res).s);
    ET_ASSERT(x->ndim >= 1, "%s: x needs a dim, got %s", op, shp(x).s);
    et_device dev = PICK(x, res);
    *xc = as_dt(x, dev, x->dtype);
    *rc = as_dt(res, dev, x->dtype);
    *s = newt(dev, x->dtype, x->ndim, x->shape);
    return dev;
}

// cuda_add's tape node for s = x + res.
static void add_norm_record_sum(et_tensor *x, et_tensor *res, et_tensor *s, et_device dev) {
    et_tensor *in[2] = {x, res};
    if (!et_should_record(2, in)) return;
    et_node *n = et_record("et_add", binary_backward, s, 2, in);
    n->i[0] = KC_ADD, n->i[1] = x->dtype, n->i[2] = dev.index;
}

static et_tensor *cuda_add_rmsnorm(et_tensor *x, et_tensor *res, et_tensor *w, double eps,
                                   et_tensor **sum) {
    et_tensor *xc, *rc, *s;
    et_device dev = add_norm_prep("et_add_rmsnorm", x, res, sum, &xc, &rc, &s);
    check_vec("et_add_rmsnorm", w, "w", et_last(x));
    add_norm_record_sum(x, res, s, dev);
    et_tensor *y = rmsnorm_run(dev, s, xc, rc, w, eps);
    et_release(xc);
    et_release(rc);
    *sum = s;
    return y;
}

static et_tensor *cuda_add_layernorm(et_tensor *x, et_tensor *res, et_tensor *w, et_tensor *b,
                                     double eps, et_tensor **sum) {
    et_tensor *xc, *rc, *s;
    et_device dev = add_norm_prep("et_add_layernorm", x, res, sum, &xc, &rc, &s);
    check_vec("et_add_layernorm", w, "w", et_last(x));
    check_vec("et_add_layernorm", b, "b", et_last(x));
    add_norm_record_sum(x, res, s, dev);
    et_tensor *y = layernorm_run(dev, s, xc, rc, w, b, eps);
    et_release(xc);
    et_release(rc);
    *sum = s;
    return y;
}

// ---- rope / softmax / attention -----------------------------------------------------------

// saved: 0 cos, 1 sin (f32 [BT, hd/2])
static void rope_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    if (!n->needs[0]) return;
    et_tensor *c = n->saved[0], *s = n->saved[1];
    et_device dev = use(c);
    const int64_t *sh = n->in_shape[0];
    et_tensor *gy = as_dt(gy_, dev, n->in_dtype[0]);
    et_tensor *dx = node_grad(n, 0, dev, gy->dtype);
    kc_rope(gy->dtype, et_data(gy), et_data(c), et_data(s), et_data(dx), sh[0] * sh[1], sh[2],
            sh[3], -1);
    et_release(gy);
    gx[0] = dx;
}

static et_tensor *cuda_rope(et_tensor *x, et_tensor *pos, et_tensor *inv_freq) {
    check_act("et_rope", x, "x");
    ET_ASSERT(x->ndim == 4 && x->shape[3] % 2 == 0,
              "et_rope: x must be [B, T, H, hd] with even hd, got %s", shp(x).s);
    int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], hd = x->shape[3], half = hd / 2;
    ET_ASSERT(pos->dtype == ET_I32 && pos->ndim == 2 && pos->shape[0] == B && pos->shape[1] == T,
              "et_rope: pos must be i32 [%lld, %lld], got %s", (long long)B, (long long)T,
              shp(pos).s);
    ET_ASSERT(inv_freq->ndim == 1 && inv_freq->shape[0] == half,
              "et_rope: inv_freq must be [%lld], got %s", (long long)half, shp(inv_freq).s);
    et_device dev = use(x);
    et_tensor *pc = index_on("et_rope", pos, -1, dev), *ic = as_dt(inv_freq, dev, ET_F32);
    int64_t BT = B * T;
    et_tensor *c = newt(dev, ET_F32, 2, (int64_t[]){BT, half});
    et_tensor *s = newt(dev, ET_F32, 2, (int64_t[]){BT, half});
    kc_rope_table(x->dtype, et_data(pc), et_data(ic), et_data(c), et_data(s), BT, half);
    et_tensor *y = newt(dev, x->dtype, 4, x->shape);
    kc_rope(x->dtype, et_data(x), et_data(c), et_data(s), et_data(y), BT, H, hd, 1);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("rope", rope_backward, y, 1, &x);
        et_node_save(n, 0, c);
        et_node_save(n, 1, s);
    }
    et_release(pc);
    et_release(ic);
    et_release(c);
    et_release(s);
    return y;
}

static void softmax_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    if (!n->needs[0]) return;
    et_tensor *y = n->saved[0];
    et_device dev = use(y);
    et_tensor *gy = as_dt(gy_, dev, y->dtype), *dx = node_grad(n, 0, dev, y->dtype);
    kc_softmax_bwd(y->dtype, et_data(gy), et_data(y), et_data(dx), et_rows(y), et_last(y));
    et_release(gy);
    gx[0] = dx;
}

static et_tensor *cuda_softmax(et_tensor *x) {
    check_act("et_softmax", x, "x");
    ET_ASSERT(x->ndim >= 1, "et_softmax: x needs a dim, got %s", shp(x).s);
    et_device dev = use(x);
    et_tensor *y = newt(dev, x->dtype, x->ndim, x->shape);
    kc_softmax_fwd(x->dtype, et_data(x), et_data(y), et_rows(x), et_last(x));
    if (et_should_record(1, &x))
        et_node_save(et_record("softmax", softmax_backward, y, 1, &x), 0, y);
    return y;
}

// Attention implementation switch (cuda_kernels.h KC_ATTN_*); EMOTUNE_ATTN is read once.
static int g_attn_impl = -1;

int kc_attention_impl(void) {
    if (g_attn_impl < 0) {
        const char *e = getenv("EMOTUNE_ATTN");
        int v = KC_ATTN_AUTO;
        if (e && *e) {
            if (!strcmp(e, "ref"))
                v = KC_ATTN_REF;
            else if (!strcmp(e, "mma"))
                v = KC_ATTN_MMA;
            else if (!strcmp(e, "cudnn"))
                v = KC_ATTN_CUDNN;
            else if (strcmp(e, "auto"))
                fprintf(stderr,
                        "emotune: EMOTUNE_ATTN=%s unknown (auto | ref | mma | cudnn): auto\n", e);
        }
        g_attn_impl = v;
    }
    return g_attn_impl;
}

void kc_attention_set_impl(int impl) { g_attn_impl = impl; }

// What one attention call ran (node->i[1]); the backward uses the same family.
enum { ATT_REF = 0, ATT_MMA = 1, ATT_CUDNN = 2 };

// Per-sample key lengths when every row of the (B, S) mask keeps a non-empty prefix (what
// cuDNN's padding mask expresses); false otherwise. lens: host i32 [2 B] = T..., lengths.
static bool mask_prefix_lengths(const et_tensor *m, int64_t B, int64_t T, int64_t S,
                                int32_t *lens) {
    et_tensor *h = NULL;
    const et_tensor *c = m;
    if (m->device.type != ET_CPU) {
        h = et_empty(m->dtype, m->ndim, m->shape);
        et_copy_(h, m);
        c = h;
    }
    bool ok = true;
    for (int64_t b = 0; b < B && ok; b++) {
        int64_t n = 0;
        while (n < S && et_get(c, b * S + n) != 0) n++;
        for (int64_t s = n; s < S && ok; s++) ok = et_get(c, b * S + s) == 0;
        ok = ok && n > 0;
        lens[b] = (int32_t)T;
        lens[B + b] = (int32_t)n;
    }
    et_release(h);
    return ok;
}

// The mma and cuDNN paths load rows with 16-byte copies.
static bool aligned16(int n, const et_tensor *const *ts) {
    for (int i = 0; i < n; i++)
        if (ts[i] && ((uintptr_t)et_data(ts[i]) & 15)) return false;
    return true;
}

// Picks the implementation; for cuDNN with a mask, *seqlens gets the device lengths.
static int attn_choose(et_dtype dt, const et_tensor *mask, int64_t B, int64_t T, int64_t S,
                       int64_t Hq, int64_t Hkv, int64_t hd, bool causal, double scale,
                       bool need_bwd, et_device dev, bool aligned, et_tensor **seqlens) {
    static int notes;
    int impl = kc_attention_impl();
    *seqlens = NULL;
    if (!aligned) return ATT_REF;
    if (impl == KC_ATTN_CUDNN && dt == ET_BF16 && scale > 0 && B * T * S > 0) {
        const char *why = NULL;
        et_tensor *hl = NULL;
        if (mask) {
            hl = et_empty(ET_I32, 1, (int64_t[]){2 * B});
            if (!mask_prefix_lengths(mask, B, T, S, et_data(hl)))
                why = "the key mask is not a non-empty prefix per sample";
        }
        if (!why && (kc_cudnn_attn_prepare(true, B, T, S, Hq, Hkv, hd, causal, mask != NULL) < 0 ||
                     (need_bwd && kc_cudnn_attn_prepare(false, B, T, S, Hq, Hkv, hd, causal,
                                                        mask != NULL) < 0)))
            why = kc_cudnn_attn_why();
        if (!why) {
            *seqlens = hl ? as_dt(hl, dev, ET_I32) : NULL;
            et_release(hl);
            return ATT_CUDNN;
        }
        et_release(hl);
        if (notes < 8) {
            notes++;
            fprintf(stderr,
                    "emotune: cuDNN attention not used for B %lld T %lld S %lld Hq %lld Hkv %lld "
                    "hd %lld causal %d mask %d: %s; using the flash kernels\n",
                    (long long)B, (long long)T, (long long)S, (long long)Hq, (long long)Hkv,
                    (long long)hd, causal, mask != NULL, why);
        }
    }
    if (impl != KC_ATTN_REF && scale > 0 && kc_flash_mma_supported(dt, hd)) return ATT_MMA;
    return ATT_REF;
}

// saved: 0 q, 1 k, 2 v (q's dtype), 3 o, 4 lse f32 [B, Hq, T], 5 mask u8 or NULL,
// 6 cuDNN sequence lengths i32 [2 B] or NULL. i[0] causal, i[1] ATT_*, f[0] scale.
static void attention_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_tensor *q = n->saved[0], *k = n->saved[1], *v = n->saved[2];
    et_device dev = use(q);
    int64_t B = q->shape[0], T = q->shape[1], Hq = q->shape[2], hd = q->shape[3];
    int64_t S = k->shape[1], Hkv = k->shape[2];
    bool causal = n->i[0] != 0;
    float scale = (float)n->f[0];
    et_tensor *gy = as_dt(gy_, dev, q->dtype);
    et_tensor *dq = n->needs[0] ? newt(dev, q->dtype, 4, q->shape) : NULL;
    et_tensor *dk = n->needs[1] ? newt(dev, q->dtype, 4, k->shape) : NULL;
    et_tensor *dv = n->needs[2] ? newt(dev, q->dtype, 4, v->shape) : NULL;
    const et_tensor *gyv[1] = {gy};
    int impl = aligned16(1, gyv) ? (int)n->i[1] : ATT_REF;  // lse is shared by all three
    if (impl == ATT_CUDNN) {                                // cuDNN writes all three gradients
        et_tensor *sl = n->saved[6];
        int64_t ws = kc_cudnn_attn_prepare(false, B, T, S, Hq, Hkv, hd, causal, sl != NULL);
        ET_ASSERT(ws >= 0, "et_attention backward: cuDNN plan lost: %s", kc_cudnn_attn_why());
        et_tensor *w = newt(dev, ET_U8, 1, (int64_t[]){ws > 256 ? ws : 256});
        et_tensor *tq = dq ? et_retain(dq) : newt(dev, q->dtype, 4, q->shape);
        et_tensor *tk = dk ? et_retain(dk) : newt(dev, q->dtype, 4, k->shape);
        et_tensor *tv = dv ? et_retain(dv) : newt(dev, q->dtype, 4, v->shape);
        kc_cudnn_attn_bwd(et_data(q), et_data(k), et_data(v), et_data(n->saved[3]),
                          et_data(n->saved[4]), et_data(gy), et_data(tq), et_data(tk), et_data(tv),
                          dp(sl), et_data(w), B, T, S, Hq, Hkv, hd, causal, scale);
        et_release(tq), et_release(tk), et_release(tv), et_release(w);
    } else {
        et_tensor *delta = newt(dev, ET_F32, 3, (int64_t[]){B, Hq, T});
        if (impl == ATT_MMA)
            kc_flash_mma_bwd(et_data(q), et_data(k), et_data(v), dp(n->saved[5]),
                             et_data(n->saved[3]), et_data(n->saved[4]), et_data(gy), dp(dq),
                             dp(dk), dp(dv), et_data(delta), B, T, S, Hq, Hkv, hd, causal, scale);
        else
            kc_flash_bwd(q->dtype, et_data(q), et_data(k), et_data(v), dp(n->saved[5]),
                         et_data(n->saved[3]), et_data(n->saved[4]), et_data(gy), dp(dq), dp(dk),
                         dp(dv), et_data(delta), B, T, S, Hq, Hkv, hd, causal, scale);
        et_release(delta);
    }
    et_release(gy);
    gx[0] = dq;
    gx[1] = dk;
    gx[2] = dv;
}

static et_tensor *cuda_attention(et_tensor *q, et_tensor *k, et_tensor *v, et_tensor *key_mask,
                                 bool causal, double scale) {
    const char *op = "et_attention";
    check_act(op, q, "q");
    check_act(op, k, "k");
    check_act(op, v, "v");
    ET_ASSERT(q->ndim == 4 && k->ndim == 4 && v->ndim == 4 && et_same_shape(k, v),
              "et_attention: q, k, v must be [B, T|S, H, hd] (k, v alike), got q %s, k %s, v %s",
              shp(q).s, shp(k).s, shp(v).s);
    int64_t B = q->shape[0], T = q->shape[1], Hq = q->shape[2], hd = q->shape[3];
    int64_t S = k->shape[1], Hkv = k->shape[2];
    ET_ASSERT(
        hd > 0 && hd <= 128 && k->shape[0] == B && k->shape[3] == hd && Hkv > 0 && Hq % Hkv == 0,
        "et_attention: k %s does not fit q %s (same B, hd in 1..128 on CUDA, Hq %% Hkv == 0)",
        shp(k).s, shp(q).s);
    if (key_mask)
        ET_ASSERT(key_mask->ndim == 2 && key_mask->shape[0] == B && key_mask->shape[1] == S,
                  "et_attention: key_mask must be [%lld, %lld], got %s", (long long)B, (long long)S,
                  shp(key_mask).s);
    et_device dev = use(q);
    et_tensor *ins[3] = {q, k, v};
    bool record = et_should_record(3, ins);
    et_tensor *kc = as_dt(k, dev, q->dtype), *vc = as_dt(v, dev, q->dtype);
    et_tensor *km = mask_on(key_mask, dev, ET_U8), *sl = NULL;
    et_tensor *o = newt(dev, q->dtype, 4, q->shape);
    et_tensor *lse = newt(dev, ET_F32, 3, (int64_t[]){B, Hq, T});
    const et_tensor *qkv[3] = {q, kc, vc};
    int impl = attn_choose(q->dtype, key_mask, B, T, S, Hq, Hkv, hd, causal, scale, record, dev,
                           aligned16(3, qkv), &sl);
    if (impl == ATT_CUDNN) {
        int64_t ws = kc_cudnn_attn_prepare(true, B, T, S, Hq, Hkv, hd, causal, sl != NULL);
        et_tensor *w = newt(dev, ET_U8, 1, (int64_t[]){ws > 256 ? ws : 256});
        kc_cudnn_attn_fwd(et_data(q), et_data(kc), et_data(vc), et_data(o), et_data(lse), dp(sl),
                          et_data(w), B, T, S, Hq, Hkv, hd, causal, (float)scale);
        et_release(w);
    } else if (impl == ATT_MMA) {
        kc_flash_mma_fwd(et_data(q), et_data(kc), et_data(vc), dp(km), et_data(o), et_data(lse), B,
                         T, S, Hq, Hkv, hd, causal, (float)scale);
    } else {
        kc_flash_fwd(q->dtype, et_data(q), et_data(kc), et_data(vc), dp(km), et_data(o),
                     et_data(lse), B, T, S, Hq, Hkv, hd, causal, (float)scale);
    }
    if (record) {
        et_node *n = et_record("attention", attention_backward, o, 3, ins);
        et_node_save(n, 0, q);
        et_node_save(n, 1, kc);
        et_node_save(n, 2, vc);
        et_node_save(n, 3, o);  // the output itself (a retained reference, no copy)
        et_node_save(n, 4, lse);
        et_node_save(n, 5, km);
        et_node_save(n, 6, sl);
        n->f[0] = scale;
        n->i[0] = causal;
        n->i[1] = impl;
    }
    et_release(kc);
    et_release(vc);
    et_release(km);
    et_release(sl);
    et_release(lse);
    return o;
}

// ---- activations / swiglu -----------------------------------------------------------------

static void act_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    if (!n->needs[0]) return;
    et_tensor *x = n->saved[0];
    et_device dev = use(x);
    et_tensor *gy = as_dt(gy_, dev, x->dtype), *dx = node_grad(n, 0, dev, x->dtype);
    kc_act_bwd((int)n->i[0], x->dtype, et_data(gy), et_data(x), et_data(dx), x->numel);
    et_release(gy);
    gx[0] = dx;
}

static et_tensor *act(const char *op, const char *name, int kind, et_tensor *x) {
    check_act(op, x, "x");
    et_device dev = use(x);
    et_tensor *y = newt(dev, x->dtype, x->ndim, x->shape);
    kc_act_fwd(kind, x->dtype, et_data(x), et_data(y), x->numel);
    if (et_should_record(1, &x)) {
        et_node *n = et_record(name, act_backward, y, 1, &x);
        et_node_save(n, 0, x);
        n->i[0] = kind;
    }
    return y;
}
static et_tensor *cuda_silu(et_tensor *x) { return act("et_silu", "silu", KC_SILU, x); }
static et_tensor *cuda_gelu(et_tensor *x) { return act("et_gelu", "gelu", KC_GELU, x); }
static et_tensor *cuda_relu(et_tensor *x) { return act("et_relu", "relu", KC_RELU, x); }
static et_tensor *cuda_quick_gelu(et_tensor *x) {
    return act("et_quick_gelu", "quick_gelu", KC_QUICK_GELU, x);
}

static void swiglu_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_tensor *g = n->saved[0], *u = n->saved[1];
    et_device dev = use(g);
    et_tensor *gy = as_dt(gy_, dev, g->dtype);
    et_tensor *dg = node_grad(n, 0, dev, g->dtype), *du = node_grad(n, 1, dev, g->dtype);
    kc_swiglu_bwd(g->dtype, et_data(gy), et_data(g), et_data(u), dp(dg), dp(du), g->numel);
    et_release(gy);
    gx[0] = dg;
    gx[1] = du;
}

static et_tensor *cuda_swiglu(et_tensor *gate, et_tensor *up) {
    check_act("et_swiglu", gate, "gate");
    check_act("et_swiglu", up, "up");
    ET_ASSERT(et_same_shape(gate, up), "et_swiglu: shapes differ: %s vs %s", shp(gate).s,
              shp(up).s);
    et_device dev = use(gate);
    et_tensor *uc = as_dt(up, dev, gate->dtype);
    et_tensor *y = newt(dev, gate->dtype, gate->ndim, gate->shape);
    kc_swiglu_fwd(gate->dtype, et_data(gate), et_data(uc), et_data(y), gate->numel);
    et_tensor *ins[2] = {gate, up};
    if (et_should_record(2, ins)) {
        et_node *n = et_record("swiglu", swiglu_backward, y, 2, ins);
        et_node_save(n, 0, gate);
        et_node_save(n, 1, uc);
    }
    et_release(uc);
    return y;
}

// ---- cross-entropy --------------------------------------------------------------------------
// saved: 0 logits, 1 targets (i32, device), 2 lse f32 [N], 3 count i32 [1]. i[0] ignore.

static void cross_entropy_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    if (!n->needs[0]) return;
    et_tensor *l = n->saved[0], *tg = n->saved[1];
    et_device dev = use(l);
    et_tensor *gy = as_dt(gy_, dev, ET_F32), *dl = node_grad(n, 0, dev, l->dtype);
    kc_cross_entropy_bwd(l->dtype, et_data(l), et_data(tg), et_data(n->saved[2]), et_data(gy),
                         et_data(n->saved[3]), et_data(dl), l->shape[0], l->shape[1], (int)n->i[0]);
    et_release(gy);
    gx[0] = dl;
}

static et_tensor *cuda_cross_entropy(et_tensor *logits, et_tensor *targets, int ignore_index) {
    check_act("et_cross_entropy", logits, "logits");
    ET_ASSERT(logits->ndim == 2, "et_cross_entropy: logits must be [N, V], got %s", shp(logits).s);
    int64_t N = logits->shape[0], V = logits->shape[1];
    ET_ASSERT(targets->dtype == ET_I32 && targets->ndim == 1 && targets->shape[0] == N,
              "et_cross_entropy: targets must be i32 [%lld], got %s", (long long)N, shp(targets).s);
    et_device dev = use(logits);
    if (targets->device.type == ET_CPU) {
        const int32_t *tg = et_data(targets);
        for (int64_t r = 0; r < N; r++)
            ET_ASSERT(tg[r] == ignore_index || (tg[r] >= 0 && tg[r] < V),
                      "et_cross_entropy: target[%lld] = %d outside [0, %lld) (ignore_index %d)",
                      (long long)r, tg[r], (long long)V, ignore_index);
    }
    et_tensor *tc = as_dt(targets, dev, ET_I32);
    et_tensor *lse = newt(dev, ET_F32, 1, &N), *rl = newt(dev, ET_F32, 1, &N);
    et_tensor *loss = newt(dev, ET_F32, 0, NULL);
    et_tensor *cnt = newt(dev, ET_I32, 1, (int64_t[]){1});
    kc_cross_entropy_fwd(logits->dtype, et_data(logits), et_data(tc), et_data(lse), et_data(rl),
                         et_data(loss), et_data(cnt), N, V, ignore_index);
    if (et_should_record(1, &logits)) {
        et_node *n = et_record("cross_entropy", cross_entropy_backward, loss, 1, &logits);
        et_node_save(n, 0, logits);
        et_node_save(n, 1, tc);
        et_node_save(n, 2, lse);
        et_node_save(n, 3, cnt);
        n->i[0] = ignore_index;
    }
    et_release(tc);
    et_release(lse);
    et_release(rl);
    et_release(cnt);
    return loss;
}

// ---- registration ---------------------------------------------------------------------------

static const et_backend g_cuda = {
    .name = "cuda",
    .device_count = et_cuda_device_count,
    .sync = cuda_sync,
    .copy = cuda_copy,
    .fill = cuda_fill,
    .add_into = cuda_add_into,
    .adamw = cuda_adamw,
    .sumsq_f32 = cuda_sumsq_f32,
    .scale_f32 = cuda_scale_f32,
    .matmul = cuda_matmul,
    .linear = cuda_linear,
    .add = cuda_add,
    .sub = cuda_sub,
    .mul = cuda_mul,
    .scale = cuda_scale,
    .add_bcast = cuda_add_bcast,
    .sum_last = cuda_sum_last,
    .mean_last = cuda_mean_last,
    .embedding = cuda_embedding,
    .rmsnorm = cuda_rmsnorm,
    .layernorm = cuda_layernorm,
    .rope = cuda_rope,
    .softmax = cuda_softmax,
    .attention = cuda_attention,
    .silu = cuda_silu,
    .gelu = cuda_gelu,
    .quick_gelu = cuda_quick_gelu,
    .relu = cuda_relu,
    .swiglu = cuda_swiglu,
    .cross_entropy = cuda_cross_entropy,
    .concat = cuda_concat,
    .narrow = cuda_narrow,
    .permute = cuda_permute,
    .gather_rows = cuda_gather_rows,
    .scatter_rows = cuda_scatter_rows,
    .mean_pool = cuda_mean_pool,
    .avg_pool2d = cuda_avg_pool2d,
    .resize_bilinear = cuda_resize_bilinear,
    .patch_embed = cuda_patch_embed,
    .bilinear_sample = cuda_bilinear_sample,
    .dropout = cuda_dropout,
    .cast = cuda_cast,
    .add_rmsnorm = cuda_add_rmsnorm,
    .add_layernorm = cuda_add_layernorm,
    .lora_linear = cuda_lora_linear,
};

// Run by core once, on the first et_backend_get (through et_backend_provide below).
static void et_cuda_register(void) {
    if (et_cuda_device_count() == 0) return;  // no driver or no GPU: no backend
    et_alloc_register(ET_CUDA, (et_device_allocator){et_cuda_raw_alloc, et_cuda_raw_free});
    et_backend_register(ET_CUDA, &g_cuda);
}

// The backend offers itself to core from above: core/ never names kernels/cuda. The
// constructor only stores a function pointer (no CUDA call before main). Nothing else
// refers to this object file, so CMakeLists.txt links every program with
// --undefined=et_cuda_backend_anchor to pull it out of libemotune.a.
const int et_cuda_backend_anchor = 1;
__attribute__((constructor)) static void et_cuda_offer_backend(void) {
    et_backend_provide(ET_CUDA, et_cuda_register);
}
