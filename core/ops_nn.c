// core/ops_nn.c - the neural-network ops of ops.h: rmsnorm, layernorm (plain and fused
// with the residual add), rope, softmax, attention, activations, swiglu, cross-entropy.
// Forward and backward on the CPU through kernels/cpu/nn.h.
//
// Pattern of every op: validate, widen bf16/f16 inputs to the compute dtype (f32, or f64
// for f64 activations), run the kernel, round the result back to the activation dtype,
// and record a tape node when some input requires grad. Nodes save the ORIGINAL inputs
// (no extra memory for a widened copy) and widen them again in backward; gradients are
// produced in the compute dtype, only for inputs that need one.
#include <math.h>
#include <string.h>

#include "../kernels/cpu/nn.h"
#include "ops_internal.h"

// ---- helpers ------------------------------------------------------------------------

typedef struct {
    char s[128];
} shape_buf;

static shape_buf shp(const et_tensor *t) {
    shape_buf b;
    if (!t)
        snprintf(b.s, sizeof b.s, "NULL");
    else
        et_shape_str(t, b.s, sizeof b.s);
    return b;
}

static void *dptr(const et_tensor *t) { return t ? et_data(t) : NULL; }

// A new gradient buffer shaped like input i of the node, or NULL when it needs none.
static et_tensor *grad_buf(const et_node *n, int i, et_dtype cdt) {
    return n->needs[i] ? et_new(cdt, n->in_ndim[i], n->in_shape[i]) : NULL;
}

// t widened to cdt, or NULL for NULL.
static et_tensor *as_cdt(const et_tensor *t, et_dtype cdt) {
    return t ? et_as_dtype(t, cdt) : NULL;
}

// Rounds n f32 values in place as a cast to bf16 / f16 and back would.
static void round_row_bf16(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) p[i] = et_bf16_to_f32(et_f32_to_bf16(p[i]));
}
static void round_row_f16(float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) p[i] = et_f16_to_f32(et_f32_to_f16(p[i]));
}
// The rounder of a half dtype, NULL for f32/f64.
static void (*rounder(et_dtype dt))(float *, int64_t) {
    return dt == ET_BF16 ? round_row_bf16 : dt == ET_F16 ? round_row_f16 : NULL;
}

// Rounds an f32 tensor in place as a cast to dt (bf16/f16) and back would.
static void round_through(et_tensor *t, et_dtype dt) {
    void (*r)(float *, int64_t) = rounder(dt);
    if (r) r(et_data(t), t->numel);
}

// Checks that w is NULL or a [D] float vector compatible with activation x.
static void check_vec(const char *op, const et_tensor *x, const et_tensor *w, const char *what,
                      int64_t D) {
    if (!w) return;
    et_check_float(op, w, what);
    et_check_mix(op, x, w);
    ET_ASSERT(w->ndim == 1 && w->shape[0] == D, "%s: %s must be [%lld] for x %s, got %s", op, what,
              (long long)D, shp(x).s, shp(w).s);
}

// ---- rmsnorm ------------------------------------------------------------------------
// saved: 0 x, 1 w (or NULL), 2 rstd [rows] (cdt)

static void rmsnorm_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    et_dtype cdt = et_compute_dtype(n->in_dtype[0]);
    int64_t D = n->in_shape[0][n->in_ndim[0] - 1], rows = n->saved[2]->numel;
    et_tensor *x = et_as_dtype(n->saved[0], cdt), *w = as_cdt(n->saved[1], cdt);
    et_tensor *g = et_as_dtype(gy, cdt);
    et_tensor *dx = grad_buf(n, 0, cdt), *dw = grad_buf(n, 1, cdt);
    ET_KCALL(cdt, k_rmsnorm_bwd, et_data(g), et_data(x), dptr(w), et_data(n->saved[2]), dptr(dx),
             dptr(dw), rows, D);
    et_release(g);
    et_release(x);
    et_release(w);
    gx[0] = dx;
    gx[1] = dw;
}

// The end of rmsnorm once the kernel ran on x (the norm's input, in its own dtype) with
// w applied only when x is f32/f64: HF order for half x (normalise, cast to x's dtype,
// multiply by w), rounding to x's dtype, the tape node. Consumes wc, y and rstd.
static et_tensor *rmsnorm_finish(et_tensor *x, et_tensor *w, et_tensor *wc, et_tensor *y,
                                 et_tensor *rstd) {
    if (x->dtype != y->dtype) {
        round_through(y, x->dtype);
        if (wc) k_mul_cols_f32(et_data(y), et_data(wc), et_rows(y), et_last(y));
    }
    et_release(wc);
    y = et_finish(y, x->dtype);
    et_tensor *ins[2] = {x, w};
    if (et_should_record(2, ins)) {
        et_node *n = et_record("rmsnorm", rmsnorm_backward, y, 2, ins);
        et_node_save(n, 0, x);
        et_node_save(n, 1, w);
        et_node_save(n, 2, rstd);
    }
    et_release(rstd);
    return y;
}

et_tensor *et_rmsnorm(et_tensor *x, et_tensor *w, double eps) {
    ET_DISPATCH(x, rmsnorm, x, w, eps);
    const char *op = "et_rmsnorm";
    et_check_float(op, x, "x");
    ET_ASSERT(x->ndim >= 1, "et_rmsnorm: x must have at least one dim, got %s", shp(x).s);
    int64_t D = et_last(x), rows = et_rows(x);
    check_vec(op, x, w, "w", D);
    et_dtype cdt = et_compute_dtype(x->dtype);
    bool half = x->dtype != cdt;
    et_tensor *xc = et_as_dtype(x, cdt), *wc = as_cdt(w, cdt);
    et_tensor *y = et_new(cdt, x->ndim, x->shape), *rstd = et_new(cdt, 1, &rows);
    // HF order: normalise in f32, cast to x's dtype, then multiply by w.
    ET_KCALL(cdt, k_rmsnorm_fwd, et_data(xc), half ? NULL : dptr(wc), et_data(y), et_data(rstd),
             rows, D, eps);
    et_release(xc);
    return rmsnorm_finish(x, w, wc, y, rstd);
}

// ---- layernorm ----------------------------------------------------------------------
// saved: 0 x, 1 w (or NULL), 2 mean [rows], 3 rstd [rows] (cdt)

static void layernorm_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    et_dtype cdt = et_compute_dtype(n->in_dtype[0]);
    int64_t D = n->in_shape[0][n->in_ndim[0] - 1], rows = n->saved[2]->numel;
    et_tensor *x = et_as_dtype(n->saved[0], cdt), *w = as_cdt(n->saved[1], cdt);
    et_tensor *g = et_as_dtype(gy, cdt);
    et_tensor *dx = grad_buf(n, 0, cdt), *dw = grad_buf(n, 1, cdt), *db = grad_buf(n, 2, cdt);
    ET_KCALL(cdt, k_layernorm_bwd, et_data(g), et_data(x), dptr(w), et_data(n->saved[2]),
             et_data(n->saved[3]), dptr(dx), dptr(dw), dptr(db), rows, D);
    et_release(g);
    et_release(x);
    et_release(w);
    gx[0] = dx;
    gx[1] = dw;
    gx[2] = db;
}

// The end of layernorm once the kernel ran on x: rounding to x's dtype, the tape node.
// Consumes y, mean and rstd.
static et_tensor *layernorm_finish(et_tensor *x, et_tensor *w, et_tensor *b, et_tensor *y,
                                   et_tensor *mean, et_tensor *rstd) {
    y = et_finish(y, x->dtype);
    et_tensor *ins[3] = {x, w, b};
    if (et_should_record(3, ins)) {
        et_node *n = et_record("layernorm", layernorm_backward, y, 3, ins);
        et_node_save(n, 0, x);
        et_node_save(n, 1, w);
        et_node_save(n, 2, mean);
        et_node_save(n, 3, rstd);
    }
    et_release(mean);
    et_release(rstd);
    return y;
}

et_tensor *et_layernorm(et_tensor *x, et_tensor *w, et_tensor *b, double eps) {
    ET_DISPATCH(x, layernorm, x, w, b, eps);
    const char *op = "et_layernorm";
    et_check_float(op, x, "x");
    ET_ASSERT(x->ndim >= 1, "et_layernorm: x must have at least one dim, got %s", shp(x).s);
    int64_t D = et_last(x), rows = et_rows(x);
    check_vec(op, x, w, "w", D);
    check_vec(op, x, b, "b", D);
    et_dtype cdt = et_compute_dtype(x->dtype);
    et_tensor *xc = et_as_dtype(x, cdt), *wc = as_cdt(w, cdt), *bc = as_cdt(b, cdt);
    et_tensor *y = et_new(cdt, x->ndim, x->shape);
    et_tensor *mean = et_new(cdt, 1, &rows), *rstd = et_new(cdt, 1, &rows);
    ET_KCALL(cdt, k_layernorm_fwd, et_data(xc), dptr(wc), dptr(bc), et_data(y), et_data(mean),
             et_data(rstd), rows, D, eps);
    et_release(xc);
    et_release(wc);
    et_release(bc);
    return layernorm_finish(x, w, b, y, mean, rstd);
}

// ---- fused residual add + norm ------------------------------------------------------
// The sum is computed as et_add computes it (both operands widened to the compute dtype,
// added, rounded to x's dtype) and normalised in the same pass over each row
// (k_add_*_fwd). Tape: the "et_add" node of et_add (gradient passes through to x and
// res), then the norm's own node with *sum as its input.

static void add_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    et_tensor *g = et_as_dtype(gy, et_compute_dtype(n->in_dtype[0]));
    for (int k = 0; k < 2; k++)
        if (n->needs[k]) gx[k] = et_retain(g);  // shared; the engine copies before accumulating
    et_release(g);
}

// Checks of et_add on (x, res) plus the norm's; returns x's compute dtype.
static et_dtype add_norm_check(const char *op, const et_tensor *x, const et_tensor *res,
                               et_tensor **sum) {
    ET_ASSERT(sum, "%s: sum (the out-pointer for x + res) is NULL", op);
    et_check_float(op, x, "x");
    et_check_float(op, res, "res");
    et_check_mix(op, x, res);
    et_check_same_shape(op, x, res);
    ET_ASSERT(x->ndim >= 1, "%s: x must have at least one dim, got %s", op, shp(x).s);
    return et_compute_dtype(x->dtype);
}

// s (the compute-dtype sum, consumed) as x's dtype, with the add's tape node.
static et_tensor *add_finish(et_tensor *x, et_tensor *res, et_tensor *s) {
    s = et_finish(s, x->dtype);  // exact for half x: the kernel already rounded s
    et_tensor *ins[2] = {x, res};
    if (et_should_record(2, ins)) et_record("et_add", add_backward, s, 2, ins);
    return s;
}

et_tensor *et_add_rmsnorm(et_tensor *x, et_tensor *res, et_tensor *w, double eps, et_tensor **sum) {
    et_tensor *dev = ET_ON_DEVICE(x, res);
    if (dev) {
        const et_backend *be = et_backend_ops(dev->device.type, "add_rmsnorm");
        if (be->add_rmsnorm) return be->add_rmsnorm(x, res, w, eps, sum);
        ET_ASSERT(sum, "et_add_rmsnorm: sum (the out-pointer for x + res) is NULL");
        *sum = et_add(x, res);
        return et_rmsnorm(*sum, w, eps);
    }
    const char *op = "et_add_rmsnorm";
    et_dtype cdt = add_norm_check(op, x, res, sum);
    int64_t D = et_last(x), rows = et_rows(x);
    check_vec(op, x, w, "w", D);
    bool half = x->dtype != cdt;
    et_tensor *xc = et_as_dtype(x, cdt), *rc = et_as_dtype(res, cdt), *wc = as_cdt(w, cdt);
    et_tensor *s = et_new(cdt, x->ndim, x->shape), *y = et_new(cdt, x->ndim, x->shape);
    et_tensor *rstd = et_new(cdt, 1, &rows);
    if (cdt == ET_F64)
        k_add_rmsnorm_fwd_f64(et_data(xc), et_data(rc), NULL, dptr(wc), et_data(s), et_data(y),
                              et_data(rstd), rows, D, eps);
    else
        k_add_rmsnorm_fwd_f32(et_data(xc), et_data(rc), rounder(x->dtype), half ? NULL : dptr(wc),
                              et_data(s), et_data(y), et_data(rstd), rows, D, eps);
    et_release(xc);
    et_release(rc);
    s = add_finish(x, res, s);
    *sum = s;
    return rmsnorm_finish(s, w, wc, y, rstd);
}

et_tensor *et_add_layernorm(et_tensor *x, et_tensor *res, et_tensor *w, et_tensor *b, double eps,
                            et_tensor **sum) {
    et_tensor *dev = ET_ON_DEVICE(x, res);
    if (dev) {
        const et_backend *be = et_backend_ops(dev->device.type, "add_layernorm");
        if (be->add_layernorm) return be->add_layernorm(x, res, w, b, eps, sum);
        ET_ASSERT(sum, "et_add_layernorm: sum (the out-pointer for x + res) is NULL");
        *sum = et_add(x, res);
        return et_layernorm(*sum, w, b, eps);
    }
    const char *op = "et_add_layernorm";
    et_dtype cdt = add_norm_check(op, x, res, sum);
    int64_t D = et_last(x), rows = et_rows(x);
    check_vec(op, x, w, "w", D);
    check_vec(op, x, b, "b", D);
    et_tensor *xc = et_as_dtype(x, cdt), *rc = et_as_dtype(res, cdt);
    et_tensor *wc = as_cdt(w, cdt), *bc = as_cdt(b, cdt);
    et_tensor *s = et_new(cdt, x->ndim, x->shape), *y = et_new(cdt, x->ndim, x->shape);
    et_tensor *mean = et_new(cdt, 1, &rows), *rstd = et_new(cdt, 1, &rows);
    if (cdt == ET_F64)
        k_add_layernorm_fwd_f64(et_data(xc), et_data(rc), NULL, dptr(wc), dptr(bc), et_data(s),
                                et_data(y), et_data(mean), et_data(rstd), rows, D, eps);
    else
        k_add_layernorm_fwd_f32(et_data(xc), et_data(rc), rounder(x->dtype), dptr(wc), dptr(bc),
                                et_data(s), et_data(y), et_data(mean), et_data(rstd), rows, D, eps);
    et_release(xc);
    et_release(rc);
    et_release(wc);
    et_release(bc);
    s = add_finish(x, res, s);
    *sum = s;
    return layernorm_finish(s, w, b, y, mean, rstd);
}

// ---- rotary embedding ---------------------------------------------------------------
// Only x gets a gradient (pos and inv_freq are data). saved: 0 cos, 1 sin [BT, hd/2] (cdt)

static void rope_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    if (!n->needs[0]) return;
    et_dtype cdt = et_compute_dtype(n->in_dtype[0]);
    const int64_t *s = n->in_shape[0];
    et_tensor *g = et_as_dtype(gy, cdt), *dx = grad_buf(n, 0, cdt);
    ET_KCALL(cdt, k_rope, et_data(g), et_data(n->saved[0]), et_data(n->saved[1]), et_data(dx),
             s[0] * s[1], s[2], s[3], -1);
    et_release(g);
    gx[0] = dx;
}

et_tensor *et_rope(et_tensor *x, et_tensor *pos, et_tensor *inv_freq) {
    ET_DISPATCH(x, rope, x, pos, inv_freq);
    const char *op = "et_rope";
    et_check_float(op, x, "x");
    et_check_int(op, pos, "pos");
    et_check_float(op, inv_freq, "inv_freq");
    ET_ASSERT(x->ndim == 4 && x->shape[3] % 2 == 0,
              "et_rope: x must be [B, T, H, hd] with even hd, got %s", shp(x).s);
    int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], hd = x->shape[3], half = hd / 2;
    ET_ASSERT(pos->dtype == ET_I32 && pos->ndim == 2 && pos->shape[0] == B && pos->shape[1] == T,
              "et_rope: pos must be i32 [%lld, %lld] for x %s, got %s", (long long)B, (long long)T,
              shp(x).s, shp(pos).s);
    ET_ASSERT(inv_freq->ndim == 1 && inv_freq->shape[0] == half,
              "et_rope: inv_freq must be [%lld] for x %s, got %s", (long long)half, shp(x).s,
              shp(inv_freq).s);
    et_dtype cdt = et_compute_dtype(x->dtype);
    int64_t BT = B * T;
    // cos/sin in f32, cast to x's dtype (HF), then held in the compute dtype.
    et_tensor *tab[2];
    {
        et_tensor *inv = et_as_dtype(inv_freq, ET_F32);
        et_tensor *c32 = et_new(ET_F32, 2, (int64_t[]){BT, half});
        et_tensor *s32 = et_new(ET_F32, 2, (int64_t[]){BT, half});
        k_rope_table_f32(et_data(pos), et_data(inv), et_data(c32), et_data(s32), BT, half);
        et_tensor *raw[2] = {c32, s32};
        for (int i = 0; i < 2; i++) {
            et_tensor *cast = et_as_dtype(raw[i], x->dtype);
            tab[i] = et_as_dtype(cast, cdt);
            et_release(cast);
            et_release(raw[i]);
        }
        et_release(inv);
    }
    et_tensor *xc = et_as_dtype(x, cdt);
    et_tensor *y = et_new(cdt, 4, x->shape);
    ET_KCALL(cdt, k_rope, et_data(xc), et_data(tab[0]), et_data(tab[1]), et_data(y), BT, H, hd, 1);
    et_release(xc);
    y = et_finish(y, x->dtype);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("rope", rope_backward, y, 1, &x);
        et_node_save(n, 0, tab[0]);
        et_node_save(n, 1, tab[1]);
    }
    et_release(tab[0]);
    et_release(tab[1]);
    return y;
}

et_tensor *et_rope_inv_freq(int64_t head_dim, double theta) {
    ET_ASSERT(head_dim > 0 && head_dim % 2 == 0,
              "et_rope_inv_freq: head_dim %lld must be even "
              "and positive",
              (long long)head_dim);
    ET_ASSERT(theta > 0, "et_rope_inv_freq: theta %g must be positive", theta);
    int64_t half = head_dim / 2;
    et_tensor *t = et_new(ET_F32, 1, &half);
    float *p = et_data(t);
    float base = (float)theta;
    for (int64_t i = 0; i < half; i++) {
        // HF: 1.0 / (base ** (arange(0, hd, 2).float() / hd)), all in f32
        float e = (float)(2 * i) / (float)head_dim;
        float pw = (float)pow((double)base, (double)e);
        p[i] = 1.0f / pw;
    }
    return t;
}

// ---- softmax ------------------------------------------------------------------------
// saved: 0 y (cdt)

static void softmax_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    if (!n->needs[0]) return;
    et_dtype cdt = et_compute_dtype(n->in_dtype[0]);
    const et_tensor *y = n->saved[0];
    et_tensor *g = et_as_dtype(gy, cdt), *dx = grad_buf(n, 0, cdt);
    ET_KCALL(cdt, k_softmax_bwd, et_data(g), et_data(y), et_data(dx), et_rows(y), et_last(y));
    et_release(g);
    gx[0] = dx;
}

et_tensor *et_softmax(et_tensor *x) {
    ET_DISPATCH(x, softmax, x);
    et_check_float("et_softmax", x, "x");
    ET_ASSERT(x->ndim >= 1, "et_softmax: x must have at least one dim, got %s", shp(x).s);
    et_dtype cdt = et_compute_dtype(x->dtype);
    et_tensor *xc = et_as_dtype(x, cdt);
    et_tensor *yc = et_new(cdt, x->ndim, x->shape);
    ET_KCALL(cdt, k_softmax_fwd, et_data(xc), et_data(yc), et_rows(x), et_last(x));
    et_release(xc);
    et_tensor *y = et_finish(et_retain(yc), x->dtype);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("softmax", softmax_backward, y, 1, &x);
        et_node_save(n, 0, yc);
    }
    et_release(yc);
    return y;
}

// ---- attention ----------------------------------------------------------------------
// saved: 0 q, 1 k, 2 v, 3 lse [B, Hq, T] (cdt), 4 key mask u8 [B, S] or NULL, 5 the
// probabilities [B, Hq, T, S] (cdt) when at most ATTN_KEEP_PROBS elements, else NULL
// (backward recomputes them). Keeping them saves a score GEMM and an exp pass per block
// (1-6% of the CPU LoRA step of tools/bench/bench_llama_cpu, BENCHMARKS.md).
enum { ATTN_KEEP_PROBS = 1 << 22 };
// f[0] scale, i[0] causal.

static void attention_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    et_dtype cdt = et_compute_dtype(n->in_dtype[0]);
    const int64_t *qs = n->in_shape[0], *ks = n->in_shape[1];
    int64_t B = qs[0], T = qs[1], Hq = qs[2], hd = qs[3], S = ks[1], Hkv = ks[2];
    et_tensor *q = et_as_dtype(n->saved[0], cdt), *k = et_as_dtype(n->saved[1], cdt);
    et_tensor *v = et_as_dtype(n->saved[2], cdt), *g = et_as_dtype(gy, cdt);
    et_tensor *dq = grad_buf(n, 0, cdt), *dk = grad_buf(n, 1, cdt), *dv = grad_buf(n, 2, cdt);
    int64_t slots = k_attention_slots(B * Hkv);
    et_tensor *scratch = et_new(cdt, 4, (int64_t[]){slots, 2, T, S});
    ET_KCALL(cdt, k_attention_bwd, et_data(q), et_data(k), et_data(v), dptr(n->saved[4]),
             et_data(n->saved[3]), dptr(n->saved[5]), et_data(g), dptr(dq), dptr(dk), dptr(dv),
             et_data(scratch), slots, B, T, S, Hq, Hkv, hd, n->i[0] != 0, n->f[0]);
    et_release(scratch);
    et_release(q);
    et_release(k);
    et_release(v);
    et_release(g);
    gx[0] = dq;
    gx[1] = dk;
    gx[2] = dv;
}

et_tensor *et_attention(et_tensor *q, et_tensor *k, et_tensor *v, et_tensor *key_mask, bool causal,
                        double scale) {
    ET_DISPATCH(q, attention, q, k, v, key_mask, causal, scale);
    const char *op = "et_attention";
    et_check_float(op, q, "q");
    et_check_float(op, k, "k");
    et_check_float(op, v, "v");
    et_check_mix(op, q, k);
    et_check_mix(op, q, v);
    ET_ASSERT(q->ndim == 4 && k->ndim == 4 && v->ndim == 4,
              "et_attention: q, k, v must be [B, T|S, H, hd], got q %s, k %s, v %s", shp(q).s,
              shp(k).s, shp(v).s);
    int64_t B = q->shape[0], T = q->shape[1], Hq = q->shape[2], hd = q->shape[3];
    int64_t S = k->shape[1], Hkv = k->shape[2];
    ET_ASSERT(hd > 0 && k->shape[0] == B && k->shape[3] == hd && Hkv > 0 && Hq % Hkv == 0,
              "et_attention: k %s does not fit q %s (same B and hd > 0, Hq %% Hkv == 0)", shp(k).s,
              shp(q).s);
    et_check_same_shape(op, k, v);
    if (key_mask) {
        et_check_int(op, key_mask, "key_mask");
        ET_ASSERT(key_mask->ndim == 2 && key_mask->shape[0] == B && key_mask->shape[1] == S,
                  "et_attention: key_mask must be [%lld, %lld], got %s", (long long)B, (long long)S,
                  shp(key_mask).s);
    }
    et_dtype cdt = et_compute_dtype(q->dtype);
    et_tensor *km = NULL;
    if (key_mask) {  // normalise to u8 0/1
        km = et_new(ET_U8, 2, (int64_t[]){B, S});
        uint8_t *m = et_data(km);
        if (key_mask->dtype == ET_I32) {
            const int32_t *src = et_data(key_mask);
            for (int64_t i = 0; i < B * S; i++) m[i] = src[i] != 0;
        } else {
            const uint8_t *src = et_data(key_mask);
            for (int64_t i = 0; i < B * S; i++) m[i] = src[i] != 0;
        }
    }
    et_tensor *qc = et_as_dtype(q, cdt), *kc = et_as_dtype(k, cdt), *vc = et_as_dtype(v, cdt);
    et_tensor *o = et_new(cdt, 4, q->shape);
    et_tensor *lse = et_new(cdt, 3, (int64_t[]){B, Hq, T});
    int64_t slots = k_attention_slots(B * Hkv);
    et_tensor *scratch = et_new(cdt, 3, (int64_t[]){slots, T, S});
    et_tensor *ins[3] = {q, k, v};
    const bool record = et_should_record(3, ins);
    et_tensor *probs = record && (double)B * Hq * T * S <= ATTN_KEEP_PROBS
                           ? et_new(cdt, 4, (int64_t[]){B, Hq, T, S})
                           : NULL;
    ET_KCALL(cdt, k_attention_fwd, et_data(qc), et_data(kc), et_data(vc), dptr(km), et_data(o),
             et_data(lse), dptr(probs), et_data(scratch), slots, B, T, S, Hq, Hkv, hd, causal,
             scale);
    et_release(scratch);
    et_release(qc);
    et_release(kc);
    et_release(vc);
    o = et_finish(o, q->dtype);
    if (record) {
        et_node *n = et_record("attention", attention_backward, o, 3, ins);
        et_node_save(n, 0, q);
        et_node_save(n, 1, k);
        et_node_save(n, 2, v);
        et_node_save(n, 3, lse);
        et_node_save(n, 4, km);
        et_node_save(n, 5, probs);
        n->f[0] = scale;
        n->i[0] = causal;
    }
    et_release(probs);
    et_release(lse);
    et_release(km);
    return o;
}

// ---- activations --------------------------------------------------------------------
// saved: 0 x

enum { ACT_SILU, ACT_GELU, ACT_QUICK_GELU, ACT_RELU };

static void act_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    if (!n->needs[0]) return;
    et_dtype cdt = et_compute_dtype(n->in_dtype[0]);
    et_tensor *x = et_as_dtype(n->saved[0], cdt), *g = et_as_dtype(gy, cdt);
    et_tensor *dx = grad_buf(n, 0, cdt);
    void *pg = et_data(g), *px = et_data(x), *pd = et_data(dx);
    int64_t cnt = x->numel;
    switch (n->i[0]) {
        case ACT_SILU:
            ET_KCALL(cdt, k_silu_bwd, pg, px, pd, cnt);
            break;
        case ACT_GELU:
            ET_KCALL(cdt, k_gelu_bwd, pg, px, pd, cnt);
            break;
        case ACT_RELU:
            ET_KCALL(cdt, k_relu_bwd, pg, px, pd, cnt);
            break;
        default:
            ET_KCALL(cdt, k_quick_gelu_bwd, pg, px, pd, cnt);
            break;
    }
    et_release(x);
    et_release(g);
    gx[0] = dx;
}

static et_tensor *act_forward(const char *op, const char *name, int kind, et_tensor *x) {
    et_check_float(op, x, "x");
    et_dtype cdt = et_compute_dtype(x->dtype);
    et_tensor *xc = et_as_dtype(x, cdt);
    et_tensor *y = et_new(cdt, x->ndim, x->shape);
    void *px = et_data(xc), *py = et_data(y);
    switch (kind) {
        case ACT_SILU:
            ET_KCALL(cdt, k_silu_fwd, px, py, x->numel);
            break;
        case ACT_GELU:
            ET_KCALL(cdt, k_gelu_fwd, px, py, x->numel);
            break;
        case ACT_RELU:
            ET_KCALL(cdt, k_relu_fwd, px, py, x->numel);
            break;
        default:
            ET_KCALL(cdt, k_quick_gelu_fwd, px, py, x->numel);
            break;
    }
    et_release(xc);
    y = et_finish(y, x->dtype);
    if (et_should_record(1, &x)) {
        et_node *n = et_record(name, act_backward, y, 1, &x);
        et_node_save(n, 0, x);
        n->i[0] = kind;
    }
    return y;
}

et_tensor *et_silu(et_tensor *x) {
    ET_DISPATCH(x, silu, x);
    return act_forward("et_silu", "silu", ACT_SILU, x);
}
et_tensor *et_gelu(et_tensor *x) {
    ET_DISPATCH(x, gelu, x);
    return act_forward("et_gelu", "gelu", ACT_GELU, x);
}
et_tensor *et_quick_gelu(et_tensor *x) {
    ET_DISPATCH(x, quick_gelu, x);
    return act_forward("et_quick_gelu", "quick_gelu", ACT_QUICK_GELU, x);
}
et_tensor *et_relu(et_tensor *x) {
    ET_DISPATCH(x, relu, x);
    return act_forward("et_relu", "relu", ACT_RELU, x);
}

// ---- swiglu -------------------------------------------------------------------------
// saved: 0 gate, 1 up

static void swiglu_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    et_dtype cdt = et_compute_dtype(n->in_dtype[0]);
    et_tensor *ga = et_as_dtype(n->saved[0], cdt), *up = et_as_dtype(n->saved[1], cdt);
    et_tensor *g = et_as_dtype(gy, cdt);
    et_tensor *dg = grad_buf(n, 0, cdt), *du = grad_buf(n, 1, cdt);
    ET_KCALL(cdt, k_swiglu_bwd, et_data(g), et_data(ga), et_data(up), dptr(dg), dptr(du),
             ga->numel);
    et_release(ga);
    et_release(up);
    et_release(g);
    gx[0] = dg;
    gx[1] = du;
}

et_tensor *et_swiglu(et_tensor *gate, et_tensor *up) {
    ET_DISPATCH(gate, swiglu, gate, up);
    const char *op = "et_swiglu";
    et_check_float(op, gate, "gate");
    et_check_float(op, up, "up");
    et_check_mix(op, gate, up);
    et_check_same_shape(op, gate, up);
    et_dtype cdt = et_compute_dtype(gate->dtype);
    et_tensor *gc = et_as_dtype(gate, cdt), *uc = et_as_dtype(up, cdt);
    et_tensor *y = et_new(cdt, gate->ndim, gate->shape);
    ET_KCALL(cdt, k_swiglu_fwd, et_data(gc), et_data(uc), et_data(y), gate->numel);
    et_release(gc);
    et_release(uc);
    y = et_finish(y, gate->dtype);
    et_tensor *ins[2] = {gate, up};
    if (et_should_record(2, ins)) {
        et_node *n = et_record("swiglu", swiglu_backward, y, 2, ins);
        et_node_save(n, 0, gate);
        et_node_save(n, 1, up);
    }
    return y;
}

// ---- cross-entropy ------------------------------------------------------------------
// saved: 0 logits, 1 targets, 2 lse [N] (cdt). i[0] counted rows, i[1] ignore_index.

static void cross_entropy_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    if (!n->needs[0]) return;
    et_dtype cdt = et_compute_dtype(n->in_dtype[0]);
    int64_t N = n->in_shape[0][0], V = n->in_shape[0][1], cnt = n->i[0];
    et_tensor *dl = grad_buf(n, 0, cdt);
    if (cnt == 0) {
        memset(et_data(dl), 0, et_nbytes(dl));
    } else {
        et_tensor *l = et_as_dtype(n->saved[0], cdt);
        double g = et_get(gy, 0) / (double)cnt;
        ET_KCALL(cdt, k_cross_entropy_bwd, et_data(l), et_data(n->saved[1]), et_data(n->saved[2]),
                 et_data(dl), N, V, (int)n->i[1], g);
        et_release(l);
    }
    gx[0] = dl;
}

et_tensor *et_cross_entropy(et_tensor *logits, et_tensor *targets, int ignore_index) {
    ET_DISPATCH(logits, cross_entropy, logits, targets, ignore_index);
    const char *op = "et_cross_entropy";
    et_check_float(op, logits, "logits");
    et_check_int(op, targets, "targets");
    ET_ASSERT(logits->ndim == 2, "et_cross_entropy: logits must be [N, V], got %s", shp(logits).s);
    int64_t N = logits->shape[0], V = logits->shape[1];
    ET_ASSERT(targets->dtype == ET_I32 && targets->ndim == 1 && targets->shape[0] == N,
              "et_cross_entropy: targets must be i32 [%lld] for logits %s, got %s", (long long)N,
              shp(logits).s, shp(targets).s);
    const int32_t *tg = et_data(targets);
    for (int64_t r = 0; r < N; r++)
        ET_ASSERT(tg[r] == ignore_index || (tg[r] >= 0 && tg[r] < V),
                  "et_cross_entropy: target[%lld] = %d outside [0, %lld) (ignore_index %d)",
                  (long long)r, tg[r], (long long)V, ignore_index);
    et_dtype cdt = et_compute_dtype(logits->dtype);
    et_tensor *lc = et_as_dtype(logits, cdt);
    et_tensor *lse = et_new(cdt, 1, &N);
    int64_t cnt = 0;
    double total =
        ET_KCALL(cdt, k_cross_entropy_fwd, et_data(lc), tg, et_data(lse), N, V, ignore_index, &cnt);
    et_release(lc);
    et_tensor *loss = et_new(cdt, 0, NULL);
    et_set(loss, 0, cnt ? total / (double)cnt : 0.0);
    if (et_should_record(1, &logits)) {
        et_node *n = et_record("cross_entropy", cross_entropy_backward, loss, 1, &logits);
        et_node_save(n, 0, logits);
        et_node_save(n, 1, targets);
        et_node_save(n, 2, lse);
        n->i[0] = cnt;
        n->i[1] = ignore_index;
    }
    et_release(lse);
    return loss;
}
