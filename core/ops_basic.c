// core/ops_basic.c - matmul, linear, elementwise, reductions, embedding, shape ops, row
// gather/scatter, pooling, patch embedding, bilinear sampling, dropout, cast.
// Contracts in ops.h; precision policy in ops_internal.h.
#include <stdlib.h>
#include <string.h>

#include "../kernels/cpu/basic.h"
#include "ops_internal.h"
#include "rng.h"

// Gradient in the compute dtype (gy may arrive in another float dtype).
static et_tensor *grad_in(const et_tensor *gy, et_dtype cdt) { return et_as_dtype(gy, cdt); }

// ---- matmul -------------------------------------------------------------------------

typedef struct {
    int64_t batch, M, N, K;
    bool shared_b;
} mm_dims;

static mm_dims mm_shape(const et_tensor *a, const et_tensor *b, bool ta, bool tb) {
    char sa[128], sb[128];
    ET_ASSERT(a->ndim >= 2 && b->ndim >= 2, "et_matmul: operands need >= 2 dims, got %s and %s",
              et_shape_str(a, sa, sizeof sa), et_shape_str(b, sb, sizeof sb));
    mm_dims d;
    int64_t ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
    int64_t br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
    d.M = ta ? ac : ar;
    d.K = ta ? ar : ac;
    d.N = tb ? br : bc;
    int64_t kb = tb ? bc : br;
    ET_ASSERT(d.K == kb, "et_matmul: inner dims differ (%lld vs %lld) for %s x %s (ta=%d tb=%d)",
              (long long)d.K, (long long)kb, et_shape_str(a, sa, sizeof sa),
              et_shape_str(b, sb, sizeof sb), ta, tb);
    d.batch = a->numel / (ar * ac > 0 ? ar * ac : 1);
    if (ar * ac == 0) d.batch = et_shape_numel(a->ndim - 2, a->shape);
    d.shared_b = b->ndim == 2;
    if (!d.shared_b) {
        ET_ASSERT(b->ndim == a->ndim, "et_matmul: batch dims differ: %s x %s",
                  et_shape_str(a, sa, sizeof sa), et_shape_str(b, sb, sizeof sb));
        for (int i = 0; i < a->ndim - 2; i++)
            ET_ASSERT(a->shape[i] == b->shape[i], "et_matmul: batch dims differ: %s x %s",
                      et_shape_str(a, sa, sizeof sa), et_shape_str(b, sb, sizeof sb));
    }
    return d;
}

// C[batch] = op(A) op(B) with B possibly shared; folds the batch into M when it can.
static void mm_run(et_dtype cdt, bool ta, bool tb, mm_dims d, const void *A, const void *B, void *C,
                   double beta) {
    if (d.shared_b && !ta) {
        mm_dims f = d;
        f.M = d.batch * d.M;
        ET_KCALL(cdt, k_bmm, ta, tb, 1, f.M, f.N, f.K, A, 0, B, 0, beta, C, 0);
        return;
    }
    ET_KCALL(cdt, k_bmm, ta, tb, d.batch, d.M, d.N, d.K, A, d.M * d.K, B,
             d.shared_b ? 0 : d.K * d.N, beta, C, d.M * d.N);
}

static void matmul_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    bool ta = n->i[0], tb = n->i[1];
    mm_dims d = {n->i[2], n->i[3], n->i[4], n->i[5], n->i[6]};
    et_tensor *a = n->saved[0], *b = n->saved[1];
    et_dtype cdt = a ? a->dtype : b->dtype;
    et_tensor *gy = grad_in(gy_, cdt);
    if (n->needs[0]) {  // dA = dC op(B)^T  (or its transpose when ta)
        et_tensor *ga = et_node_input_zeros(n, 0, cdt);
        mm_dims e = {d.batch, ta ? d.K : d.M, ta ? d.M : d.K, d.N, d.shared_b};
        int64_t sb = d.shared_b ? 0 : d.K * d.N;
        if (!ta)  // ga[M,K] = gy[M,N] * op(B)^T
            ET_KCALL(cdt, k_bmm, false, !tb, e.batch, e.M, e.N, e.K, et_data(gy), d.M * d.N,
                     et_data(b), sb, 0, et_data(ga), d.M * d.K);
        else  // ga[K,M] = op(B) * gy^T
            ET_KCALL(cdt, k_bmm, tb, true, e.batch, e.M, e.N, e.K, et_data(b), sb, et_data(gy),
                     d.M * d.N, 0, et_data(ga), d.M * d.K);
        gx[0] = ga;
    }
    if (n->needs[1]) {
        et_tensor *gb = et_node_input_zeros(n, 1, cdt);
        if (d.shared_b && !ta) {  // fold the batch: one GEMM over batch*M rows
            int64_t R = d.batch * d.M;
            if (!tb)  // gb[K,N] = A^T gy
                ET_KCALL(cdt, k_bmm, true, false, 1, d.K, d.N, R, et_data(a), 0, et_data(gy), 0, 0,
                         et_data(gb), 0);
            else  // gb[N,K] = gy^T A
                ET_KCALL(cdt, k_bmm, true, false, 1, d.N, d.K, R, et_data(gy), 0, et_data(a), 0, 0,
                         et_data(gb), 0);
        } else {
            int64_t sgb = d.shared_b ? 0 : d.K * d.N;
            for (int64_t bi = 0; bi < d.batch; bi++) {
                size_t es = et_dtype_size(cdt);
                const void *ap = (const char *)et_data(a) + (size_t)(bi * d.M * d.K) * es;
                const void *gp = (const char *)et_data(gy) + (size_t)(bi * d.M * d.N) * es;
                void *op = (char *)et_data(gb) + (size_t)(bi * sgb) * es;
                double beta = d.shared_b && bi > 0 ? 1 : 0;
                if (!tb)  // gb[K,N] = op(A)^T gy
                    ET_KCALL(cdt, k_bmm, !ta, false, 1, d.K, d.N, d.M, ap, 0, gp, 0, beta, op, 0);
                else  // gb[N,K] = gy^T op(A)
                    ET_KCALL(cdt, k_bmm, true, ta, 1, d.N, d.K, d.M, gp, 0, ap, 0, beta, op, 0);
            }
        }
        gx[1] = gb;
    }
    et_release(gy);
}

et_tensor *et_matmul(et_tensor *a, et_tensor *b, bool ta, bool tb) {
    ET_DISPATCH(ET_ON_DEVICE(a, b), matmul, a, b, ta, tb);
    et_check_float("et_matmul", a, "a");
    et_check_float("et_matmul", b, "b");
    et_check_mix("et_matmul", a, b);
    mm_dims d = mm_shape(a, b, ta, tb);
    et_dtype cdt = et_compute_dtype(a->dtype);
    et_tensor *ac = et_as_dtype(a, cdt), *bc = et_as_dtype(b, cdt);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, a->shape, sizeof(shape));
    shape[a->ndim - 2] = d.M;
    shape[a->ndim - 1] = d.N;
    et_tensor *y = et_new(cdt, a->ndim, shape);
    mm_run(cdt, ta, tb, d, et_data(ac), et_data(bc), et_data(y), 0);
    y = et_finish(y, a->dtype);
    et_tensor *in[2] = {a, b};
    if (et_should_record(2, in)) {
        et_node *n = et_record("matmul", matmul_backward, y, 2, in);
        if (n->needs[1]) et_node_save(n, 0, ac);  // dB needs A
        if (n->needs[0]) et_node_save(n, 1, bc);  // dA needs B
        n->i[0] = ta, n->i[1] = tb, n->i[2] = d.batch, n->i[3] = d.M, n->i[4] = d.N, n->i[5] = d.K;
        n->i[6] = d.shared_b;
    }
    et_release(ac);
    et_release(bc);
    return y;
}

// ---- linear -------------------------------------------------------------------------

static void linear_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_tensor *x = n->saved[0], *w = n->saved[1];
    et_dtype cdt = x ? x->dtype : w->dtype;
    et_tensor *gy = grad_in(gy_, cdt);
    int64_t out = n->in_shape[1][0], in = n->in_shape[1][1], rows = gy->numel / (out ? out : 1);
    if (n->needs[0]) {  // dx (rows, in) = gy (rows, out) W (out, in)
        et_tensor *g = et_new(cdt, n->in_ndim[0], n->in_shape[0]);
        ET_KCALL(cdt, k_bmm, false, false, 1, rows, in, out, et_data(gy), 0, et_data(w), 0, 0,
                 et_data(g), 0);
        gx[0] = g;
    }
    if (n->needs[1]) {  // dW (out, in) = gy^T (out, rows) x (rows, in); skipped when frozen
        et_tensor *g = et_new(cdt, 2, n->in_shape[1]);
        ET_KCALL(cdt, k_bmm, true, false, 1, out, in, rows, et_data(gy), 0, et_data(x), 0, 0,
                 et_data(g), 0);
        gx[1] = g;
    }
    if (n->needs[2]) {
        et_tensor *g = et_new(cdt, 1, n->in_shape[2]);
        ET_KCALL(cdt, k_colsum, et_data(gy), et_data(g), rows, out);
        gx[2] = g;
    }
    et_release(gy);
}

et_tensor *et_linear(et_tensor *x, et_tensor *w, et_tensor *b) {
    ET_DISPATCH(ET_ON_DEVICE(x, w, b), linear, x, w, b);
    char sx[128], sw[128];
    et_check_float("et_linear", x, "x");
    et_check_float("et_linear", w, "w");
    et_check_mix("et_linear", x, w);
    ET_ASSERT(
        w->ndim == 2 && x->ndim >= 1 && x->shape[x->ndim - 1] == w->shape[1],
        "et_linear: x %s does not match weight %s (expected [out, in] with in = x's last dim)",
        et_shape_str(x, sx, sizeof sx), et_shape_str(w, sw, sizeof sw));
    if (b) {
        et_check_float("et_linear", b, "b");
        et_check_mix("et_linear", x, b);
        ET_ASSERT(b->ndim == 1 && b->shape[0] == w->shape[0], "et_linear: bias %s for weight %s",
                  et_shape_str(b, sx, sizeof sx), et_shape_str(w, sw, sizeof sw));
    }
    et_dtype cdt = et_compute_dtype(x->dtype);
    int64_t out = w->shape[0], in = w->shape[1], rows = et_rows(x);
    et_tensor *xc = et_as_dtype(x, cdt), *wc = et_as_dtype(w, cdt);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(shape));
    shape[x->ndim - 1] = out;
    et_tensor *y = et_new(cdt, x->ndim, shape);
    ET_KCALL(cdt, k_bmm, false, true, 1, rows, out, in, et_data(xc), 0, et_data(wc), 0, 0,
             et_data(y), 0);
    if (b) {
        et_tensor *bc = et_as_dtype(b, cdt);
        ET_KCALL(cdt, k_add_bcast, et_data(y), et_data(bc), et_data(y), rows, out);
        et_release(bc);
    }
    y = et_finish(y, x->dtype);
    et_tensor *ins[3] = {x, w, b};
    if (et_should_record(3, ins)) {
        et_node *n = et_record("linear", linear_backward, y, 3, ins);
        if (n->needs[1]) et_node_save(n, 0, xc);  // only dW needs x
        if (n->needs[0]) et_node_save(n, 1, wc);  // only dx needs W
    }
    et_release(xc);
    et_release(wc);
    return y;
}

// ---- elementwise --------------------------------------------------------------------

static void binary_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    k_binop op = (k_binop)n->i[0];
    et_dtype cdt = (et_dtype)n->i[1];
    et_tensor *gy = grad_in(gy_, cdt);
    for (int k = 0; k < 2; k++) {
        if (!n->needs[k]) continue;
        if (op == K_MUL) {  // d(a*b)/da = b
            et_tensor *g = et_new(cdt, gy->ndim, gy->shape);
            ET_KCALL(cdt, k_binary, K_MUL, et_data(gy), et_data(n->saved[1 - k]), et_data(g),
                     gy->numel);
            gx[k] = g;
        } else if (op == K_SUB && k == 1) {
            et_tensor *g = et_new(cdt, gy->ndim, gy->shape);
            ET_KCALL(cdt, k_scale, et_data(gy), et_data(g), gy->numel, -1);
            gx[k] = g;
        } else {
            gx[k] = et_retain(gy);  // shared; the engine copies before accumulating in place
        }
    }
    et_release(gy);
}

static et_tensor *binary(const char *name, k_binop op, et_tensor *a, et_tensor *b) {
    et_check_float(name, a, "a");
    et_check_float(name, b, "b");
    et_check_mix(name, a, b);
    et_check_same_shape(name, a, b);
    et_dtype cdt = et_compute_dtype(a->dtype);
    et_tensor *ac = et_as_dtype(a, cdt), *bc = et_as_dtype(b, cdt);
    et_tensor *y = et_new(cdt, a->ndim, a->shape);
    ET_KCALL(cdt, k_binary, op, et_data(ac), et_data(bc), et_data(y), a->numel);
    y = et_finish(y, a->dtype);
    et_tensor *in[2] = {a, b};
    if (et_should_record(2, in)) {
        et_node *n = et_record(name, binary_backward, y, 2, in);
        n->i[0] = op;
        n->i[1] = cdt;
        if (op == K_MUL) {
            if (n->needs[1]) et_node_save(n, 0, ac);
            if (n->needs[0]) et_node_save(n, 1, bc);
        }
    }
    et_release(ac);
    et_release(bc);
    return y;
}

et_tensor *et_add(et_tensor *a, et_tensor *b) {
    ET_DISPATCH(ET_ON_DEVICE(a, b), add, a, b);
    return binary("et_add", K_ADD, a, b);
}
et_tensor *et_sub(et_tensor *a, et_tensor *b) {
    ET_DISPATCH(ET_ON_DEVICE(a, b), sub, a, b);
    return binary("et_sub", K_SUB, a, b);
}
et_tensor *et_mul(et_tensor *a, et_tensor *b) {
    ET_DISPATCH(ET_ON_DEVICE(a, b), mul, a, b);
    return binary("et_mul", K_MUL, a, b);
}

static void scale_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt);
    et_tensor *g = et_new(cdt, gy->ndim, gy->shape);
    ET_KCALL(cdt, k_scale, et_data(gy), et_data(g), gy->numel, n->f[0]);
    gx[0] = g;
    et_release(gy);
}

et_tensor *et_scale(et_tensor *a, double s) {
    ET_DISPATCH(a, scale, a, s);
    et_check_float("et_scale", a, "a");
    et_dtype cdt = et_compute_dtype(a->dtype);
    et_tensor *ac = et_as_dtype(a, cdt);
    et_tensor *y = et_new(cdt, a->ndim, a->shape);
    ET_KCALL(cdt, k_scale, et_data(ac), et_data(y), a->numel, s);
    et_release(ac);
    y = et_finish(y, a->dtype);
    if (et_should_record(1, &a)) {
        et_node *n = et_record("scale", scale_backward, y, 1, &a);
        n->f[0] = s;
        n->i[0] = cdt;
    }
    return y;
}

static void add_bcast_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt);
    if (n->needs[0]) gx[0] = et_retain(gy);
    if (n->needs[1]) {
        et_tensor *g = et_new(cdt, n->in_ndim[1], n->in_shape[1]);
        ET_KCALL(cdt, k_colsum, et_data(gy), et_data(g), gy->numel / g->numel, g->numel);
        gx[1] = g;
    }
    et_release(gy);
}

et_tensor *et_add_bcast(et_tensor *a, et_tensor *b) {
    ET_DISPATCH(ET_ON_DEVICE(a, b), add_bcast, a, b);
    char sa[128], sb[128];
    et_check_float("et_add_bcast", a, "a");
    et_check_float("et_add_bcast", b, "b");
    et_check_mix("et_add_bcast", a, b);
    bool ok = b->ndim <= a->ndim;
    for (int i = 0; ok && i < b->ndim; i++) ok = b->shape[i] == a->shape[a->ndim - b->ndim + i];
    ET_ASSERT(ok, "et_add_bcast: %s is not the trailing shape of %s",
              et_shape_str(b, sb, sizeof sb), et_shape_str(a, sa, sizeof sa));
    et_dtype cdt = et_compute_dtype(a->dtype);
    et_tensor *ac = et_as_dtype(a, cdt), *bc = et_as_dtype(b, cdt);
    et_tensor *y = et_new(cdt, a->ndim, a->shape);
    int64_t nb = b->numel;
    ET_KCALL(cdt, k_add_bcast, et_data(ac), et_data(bc), et_data(y), nb ? a->numel / nb : 0, nb);
    et_release(ac);
    et_release(bc);
    y = et_finish(y, a->dtype);
    et_tensor *in[2] = {a, b};
    if (et_should_record(2, in)) et_record("add_bcast", add_bcast_backward, y, 2, in)->i[0] = cdt;
    return y;
}

// ---- reductions over the last dim ---------------------------------------------------

static void rowsum_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt);
    et_tensor *g = et_new(cdt, n->in_ndim[0], n->in_shape[0]);
    int64_t d = n->in_ndim[0] ? n->in_shape[0][n->in_ndim[0] - 1] : 1;
    ET_KCALL(cdt, k_rowsum_bwd, et_data(gy), et_data(g), gy->numel, d, n->f[0]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *rowsum(const char *name, et_tensor *x, bool mean) {
    et_check_float(name, x, "x");
    ET_ASSERT(x->ndim >= 1, "%s: needs at least one dim", name);
    et_dtype cdt = et_compute_dtype(x->dtype);
    int64_t d = et_last(x), rows = et_rows(x);
    double scale = mean ? 1.0 / (double)(d ? d : 1) : 1.0;
    et_tensor *xc = et_as_dtype(x, cdt);
    et_tensor *y = et_new(cdt, x->ndim - 1, x->shape);
    ET_KCALL(cdt, k_rowsum, et_data(xc), et_data(y), rows, d, scale);
    et_release(xc);
    y = et_finish(y, x->dtype);
    if (et_should_record(1, &x)) {
        et_node *n = et_record(name, rowsum_backward, y, 1, &x);
        n->i[0] = cdt;
        n->f[0] = scale;
    }
    return y;
}

et_tensor *et_sum_last(et_tensor *x) {
    ET_DISPATCH(x, sum_last, x);
    return rowsum("et_sum_last", x, false);
}
et_tensor *et_mean_last(et_tensor *x) {
    ET_DISPATCH(x, mean_last, x);
    return rowsum("et_mean_last", x, true);
}

// ---- index validation ---------------------------------------------------------------

// A new i32 copy of an i32/u8 index tensor, every value checked against [0, limit).
static et_tensor *checked_index(const char *op, const et_tensor *idx, int64_t limit) {
    et_check_int(op, idx, "index");
    et_tensor *c = et_as_dtype(idx, ET_I32);
    const int32_t *p = et_data(c);
    for (int64_t i = 0; i < c->numel; i++)
        ET_ASSERT(p[i] >= 0 && p[i] < limit, "%s: index %d at position %lld outside [0, %lld)", op,
                  p[i], (long long)i, (long long)limit);
    return c;
}

// ---- embedding and row gather (one gather, one scatter-add backward) ---------------

static void gather_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt), *idx = n->saved[0];
    et_tensor *g = et_node_input_zeros(n, 0, cdt);
    ET_KCALL(cdt, k_scatter_add_rows, et_data(gy), et_data(idx), et_data(g), idx->numel,
             g->shape[1]);
    gx[0] = g;
    et_release(gy);
}

// y (out_shape, numel = M * D) = rows idx (checked i32 [M]) of x [N, D], copied in x's
// dtype (a bf16 table is not widened).
static et_tensor *gather_op(const char *name, et_tensor *x, et_tensor *idx, int out_ndim,
                            const int64_t *out_shape) {
    et_tensor *y = et_empty(x->dtype, out_ndim, out_shape);
    size_t rb = (size_t)x->shape[1] * et_dtype_size(x->dtype);
    const int32_t *p = et_data(idx);
    for (int64_t i = 0; i < idx->numel; i++)
        memcpy((char *)et_data(y) + (size_t)i * rb, (const char *)et_data(x) + (size_t)p[i] * rb,
               rb);
    if (et_should_record(1, &x)) {
        et_node *n = et_record(name, gather_backward, y, 1, &x);
        n->i[0] = et_compute_dtype(x->dtype);
        et_node_save(n, 0, idx);
    }
    return y;
}

et_tensor *et_embedding(et_tensor *w, et_tensor *ids) {
    ET_DISPATCH(w, embedding, w, ids);
    et_check_float("et_embedding", w, "weight");
    ET_ASSERT(w->ndim == 2, "et_embedding: weight must be [V, D]");
    ET_ASSERT(ids->ndim < ET_MAX_DIMS, "et_embedding: ids have too many dims");
    et_tensor *idc = checked_index("et_embedding", ids, w->shape[0]);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
    shape[ids->ndim] = w->shape[1];
    et_tensor *y = gather_op("embedding", w, idc, ids->ndim + 1, shape);
    et_release(idc);
    return y;
}

et_tensor *et_gather_rows(et_tensor *x, et_tensor *idx) {
    ET_DISPATCH(x, gather_rows, x, idx);
    et_check_float("et_gather_rows", x, "x");
    ET_ASSERT(x->ndim == 2 && idx->ndim == 1, "et_gather_rows: x [N, D] and idx [M] expected");
    et_tensor *ic = checked_index("et_gather_rows", idx, x->shape[0]);
    et_tensor *y = gather_op("gather_rows", x, ic, 2, (int64_t[]){ic->numel, x->shape[1]});
    et_release(ic);
    return y;
}

// ---- shape ops ----------------------------------------------------------------------

static void reshape_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    gx[0] = et_view_raw(gy, n->in_ndim[0], n->in_shape[0], 0);
}

et_tensor *et_reshape(et_tensor *x, int ndim, const int64_t *shape_in) {
    ET_ASSERT(ndim >= 0 && ndim <= ET_MAX_DIMS, "et_reshape: %d dims", ndim);
    int64_t shape[ET_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        shape[i] = shape_in[i];
        if (shape[i] == -1) {
            ET_ASSERT(infer < 0, "et_reshape: more than one -1");
            infer = i;
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) shape[infer] = known ? x->numel / known : 0;
    char sx[128];
    ET_ASSERT(et_shape_numel(ndim, shape) == x->numel,
              "et_reshape: %s cannot become %d dims of "
              "%lld elements",
              et_shape_str(x, sx, sizeof sx), ndim, (long long)et_shape_numel(ndim, shape));
    et_tensor *y = et_view_raw(x, ndim, shape, 0);
    if (et_should_record(1, &x)) et_record("reshape", reshape_backward, y, 1, &x);
    return y;
}

// outer = prod(shape[:dim]), inner = prod(shape[dim+1:]).
static void split_dims(int ndim, const int64_t *shape, int dim, int64_t *outer, int64_t *inner) {
    *outer = et_shape_numel(dim, shape);
    *inner = et_shape_numel(ndim - dim - 1, shape + dim + 1);
}

static void narrow_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    int dim = (int)n->i[0];
    int64_t start = n->i[1], len = n->i[2], outer, inner;
    split_dims(n->in_ndim[0], n->in_shape[0], dim, &outer, &inner);
    et_tensor *g = et_zeros(gy->dtype, n->in_ndim[0], n->in_shape[0]);
    size_t es = et_dtype_size(gy->dtype);
    int64_t full = n->in_shape[0][dim];
    for (int64_t o = 0; o < outer; o++)
        memcpy((char *)et_data(g) + (size_t)((o * full + start) * inner) * es,
               (const char *)et_data(gy) + (size_t)(o * len * inner) * es,
               (size_t)(len * inner) * es);
    gx[0] = g;
}

et_tensor *et_narrow(et_tensor *x, int dim, int64_t start, int64_t len) {
    ET_DISPATCH(x, narrow, x, dim, start, len);
    char sx[128];
    ET_ASSERT(dim >= 0 && dim < x->ndim && start >= 0 && len >= 0 && start + len <= x->shape[dim],
              "et_narrow: [%lld, %lld) of dim %d is outside %s", (long long)start,
              (long long)(start + len), dim, et_shape_str(x, sx, sizeof sx));
    int64_t outer, inner, shape[ET_MAX_DIMS];
    split_dims(x->ndim, x->shape, dim, &outer, &inner);
    memcpy(shape, x->shape, sizeof(shape));
    shape[dim] = len;
    et_tensor *y;
    if (outer == 1) {  // contiguous: a view
        y = et_view_raw(x, x->ndim, shape, start * inner);
    } else {
        y = et_empty(x->dtype, x->ndim, shape);
        size_t es = et_dtype_size(x->dtype);
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)et_data(y) + (size_t)(o * len * inner) * es,
                   (const char *)et_data(x) + (size_t)((o * x->shape[dim] + start) * inner) * es,
                   (size_t)(len * inner) * es);
    }
    if (et_should_record(1, &x)) {
        et_node *n = et_record("narrow", narrow_backward, y, 1, &x);
        n->i[0] = dim, n->i[1] = start, n->i[2] = len;
    }
    return y;
}

// ---- permute --------------------------------------------------------------------

// Copies x into y (y's layout = the plan's shape) as a strided gather; runs along a
// contiguous last dim are memcpy'd.
static void permute_copy(const et_tensor *x, et_tensor *y, const et_permute_plan *p) {
    const size_t es = et_dtype_size(x->dtype);
    const int nd = p->ndim;
    const int64_t inner = p->shape[nd - 1], istride = p->stride[nd - 1];
    const int64_t outer = inner ? y->numel / inner : 0;
    const char *src = et_data(x);
    char *dst = et_data(y);
    int64_t idx[ET_MAX_DIMS] = {0}, off = 0;  // odometer over dims 0..nd-2, source offset
    for (int64_t o = 0; o < outer; o++) {
        char *d = dst + (size_t)(o * inner) * es;
        if (istride == 1) {
            memcpy(d, src + (size_t)off * es, (size_t)inner * es);
        } else {
            for (int64_t j = 0; j < inner; j++)
                memcpy(d + (size_t)j * es, src + (size_t)(off + j * istride) * es, es);
        }
        for (int k = nd - 2; k >= 0; k--) {
            off += p->stride[k];
            if (++idx[k] < p->shape[k]) break;
            off -= p->stride[k] * p->shape[k];
            idx[k] = 0;
        }
    }
}

// perm packed 4 bits per dim into one int64 (ET_MAX_DIMS <= 8 dims of 0..7).
static int64_t pack_perm(int ndim, const int *perm) {
    int64_t v = 0;
    for (int i = 0; i < ndim; i++) v |= (int64_t)perm[i] << (4 * i);
    return v;
}

static void permute_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    const int nd = (int)n->i[0];
    int inv[ET_MAX_DIMS];
    for (int i = 0; i < nd; i++) inv[(n->i[1] >> (4 * i)) & 15] = i;
    et_no_grad_begin();
    gx[0] = et_permute((et_tensor *)gy, nd, inv);
    et_no_grad_end();
}

et_tensor *et_permute(et_tensor *x, int ndim, const int *perm) {
    ET_DISPATCH(x, permute, x, ndim, perm);
    et_permute_plan p;
    char sx[128];
    ET_ASSERT(et_permute_plan_make(x, ndim, perm, &p),
              "et_permute: the permutation is not one of the %d dims of %s", ndim,
              et_shape_str(x, sx, sizeof sx));
    int64_t shape[ET_MAX_DIMS];
    for (int i = 0; i < ndim; i++) shape[i] = x->shape[perm[i]];
    et_tensor *y = et_empty(x->dtype, ndim, shape);
    if (y->numel) permute_copy(x, y, &p);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("permute", permute_backward, y, 1, &x);
        n->i[0] = ndim, n->i[1] = pack_perm(ndim, perm);
    }
    return y;
}

static void concat_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    int dim = (int)n->i[0];
    int64_t start = 0;
    for (int k = 0; k < n->n_inputs; k++) {
        int64_t len = n->in_shape[k][dim];
        if (n->needs[k]) {
            // Slice gy along dim (no autograd: gy carries none here).
            et_no_grad_begin();
            gx[k] = et_narrow((et_tensor *)gy, dim, start, len);
            et_no_grad_end();
            if (gx[k]->storage == gy->storage) {  // a view: give it its own storage
                et_tensor *c = et_clone(gx[k]);
                et_release(gx[k]);
                gx[k] = c;
            }
        }
        start += len;
    }
}

et_tensor *et_concat(int n, et_tensor *const *ts, int dim) {
    ET_DISPATCH(et_on_device(n, ts), concat, n, ts, dim);
    ET_ASSERT(n >= 1 && n <= ET_NODE_MAX_INPUTS, "et_concat: 1..%d tensors, got %d",
              ET_NODE_MAX_INPUTS, n);
    const et_tensor *t0 = ts[0];
    ET_ASSERT(dim >= 0 && dim < t0->ndim, "et_concat: dim %d of a %d-dim tensor", dim, t0->ndim);
    int64_t shape[ET_MAX_DIMS];
    memcpy(shape, t0->shape, sizeof(shape));
    shape[dim] = 0;
    char s0[128], s1[128];
    for (int k = 0; k < n; k++) {
        bool ok = ts[k]->ndim == t0->ndim && ts[k]->dtype == t0->dtype;
        for (int i = 0; ok && i < t0->ndim; i++) ok = i == dim || ts[k]->shape[i] == t0->shape[i];
        ET_ASSERT(ok, "et_concat: %s does not match %s along dims other than %d",
                  et_shape_str(ts[k], s1, sizeof s1), et_shape_str(t0, s0, sizeof s0), dim);
        shape[dim] += ts[k]->shape[dim];
    }
    et_tensor *y = et_empty(t0->dtype, t0->ndim, shape);
    int64_t outer, inner;
    split_dims(t0->ndim, shape, dim, &outer, &inner);
    size_t es = et_dtype_size(t0->dtype);
    int64_t off = 0;
    for (int k = 0; k < n; k++) {
        int64_t len = ts[k]->shape[dim];
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)et_data(y) + (size_t)((o * shape[dim] + off) * inner) * es,
                   (const char *)et_data(ts[k]) + (size_t)(o * len * inner) * es,
                   (size_t)(len * inner) * es);
        off += len;
    }
    if (et_should_record(n, ts)) et_record("concat", concat_backward, y, n, ts)->i[0] = dim;
    return y;
}

// ---- row scatter -----------------------------------------------------------

static void scatter_rows_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt), *idx = n->saved[0];
    int64_t D = gy->shape[1];
    size_t rb = (size_t)D * et_dtype_size(cdt);
    const int32_t *p = et_data(idx);
    if (n->needs[0]) {  // rows that were replaced get no gradient
        et_tensor *g = et_clone(gy);
        for (int64_t i = 0; i < idx->numel; i++)
            memset((char *)et_data(g) + (size_t)p[i] * rb, 0, rb);
        gx[0] = g;
    }
    if (n->needs[2]) {
        et_tensor *g = et_new(cdt, 2, (int64_t[]){idx->numel, D});
        ET_KCALL(cdt, k_gather_rows, et_data(gy), p, et_data(g), idx->numel, D);
        gx[2] = g;
    }
    et_release(gy);
}

et_tensor *et_scatter_rows(et_tensor *base, et_tensor *idx, et_tensor *src) {
    ET_DISPATCH(ET_ON_DEVICE(base, src), scatter_rows, base, idx, src);
    char sb[128], ss[128];
    et_check_float("et_scatter_rows", base, "base");
    et_check_float("et_scatter_rows", src, "src");
    ET_ASSERT(base->ndim == 2 && src->ndim == 2 && idx->ndim == 1 &&
                  src->shape[0] == idx->shape[0] && src->shape[1] == base->shape[1] &&
                  src->dtype == base->dtype,
              "et_scatter_rows: base %s, idx [M], src %s expected with src [M, D] of base's dtype",
              et_shape_str(base, sb, sizeof sb), et_shape_str(src, ss, sizeof ss));
    et_tensor *ic = checked_index("et_scatter_rows", idx, base->shape[0]);
    int64_t N = base->shape[0], D = base->shape[1];
    uint8_t *seen = calloc((size_t)N + 1, 1);
    const int32_t *p = et_data(ic);
    for (int64_t i = 0; i < ic->numel; i++) {
        ET_ASSERT(!seen[p[i]], "et_scatter_rows: row %d appears twice in idx", p[i]);
        seen[p[i]] = 1;
    }
    free(seen);
    et_tensor *y = et_clone(base);
    size_t rb = (size_t)D * et_dtype_size(base->dtype);
    for (int64_t i = 0; i < ic->numel; i++)
        memcpy((char *)et_data(y) + (size_t)p[i] * rb, (const char *)et_data(src) + (size_t)i * rb,
               rb);
    et_tensor *in[3] = {base, NULL, src};
    if (et_should_record(3, in)) {
        et_node *n = et_record("scatter_rows", scatter_rows_backward, y, 3, in);
        n->i[0] = et_compute_dtype(base->dtype);
        et_node_save(n, 0, ic);
    }
    et_release(ic);
    return y;
}

// ---- pooling ------------------------------------------------------------------------

static void mean_pool_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt), *mask = n->saved[0];
    et_tensor *g = et_new(cdt, 3, n->in_shape[0]);
    ET_KCALL(cdt, k_mean_pool_bwd, et_data(gy), mask ? et_data(mask) : NULL, et_data(g),
             g->shape[0], g->shape[1], g->shape[2]);
    gx[0] = g;
    et_release(gy);
}

et_tensor *et_mean_pool(et_tensor *x, et_tensor *mask) {
    ET_DISPATCH(x, mean_pool, x, mask);
    char sx[128];
    et_check_float("et_mean_pool", x, "x");
    ET_ASSERT(x->ndim == 3, "et_mean_pool: x must be [B, T, D], got %s",
              et_shape_str(x, sx, sizeof sx));
    et_tensor *mc = NULL;
    if (mask) {
        ET_ASSERT(mask->ndim == 2 && mask->shape[0] == x->shape[0] && mask->shape[1] == x->shape[1],
                  "et_mean_pool: mask must be [B, T] for x %s", et_shape_str(x, sx, sizeof sx));
        et_check_int("et_mean_pool", mask, "mask");
        mc = et_as_dtype(mask, ET_I32);
    }
    et_dtype cdt = et_compute_dtype(x->dtype);
    et_tensor *xc = et_as_dtype(x, cdt);
    et_tensor *y = et_new(cdt, 2, (int64_t[]){x->shape[0], x->shape[2]});
    ET_KCALL(cdt, k_mean_pool_fwd, et_data(xc), mc ? et_data(mc) : NULL, et_data(y), x->shape[0],
             x->shape[1], x->shape[2]);
    et_release(xc);
    y = et_finish(y, x->dtype);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("mean_pool", mean_pool_backward, y, 1, &x);
        n->i[0] = cdt;
        if (mc) et_node_save(n, 0, mc);
    }
    et_release(mc);
    return y;
}

static void avg_pool2d_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt);
    const int64_t *s = n->in_shape[0];
    et_tensor *g = et_new(cdt, 4, s);
    ET_KCALL(cdt, k_avg_pool2d_bwd, et_data(gy), et_data(g), s[0], s[1], s[2], s[3], (int)n->i[1],
             (int)n->i[2]);
    gx[0] = g;
    et_release(gy);
}

et_tensor *et_avg_pool2d(et_tensor *x, int k, int stride) {
    ET_DISPATCH(x, avg_pool2d, x, k, stride);
    char sx[128];
    et_check_float("et_avg_pool2d", x, "x");
    ET_ASSERT(x->ndim == 4 && k >= 1 && stride >= 1 && x->shape[1] >= k && x->shape[2] >= k,
              "et_avg_pool2d: x [B, H, W, C] with H, W >= k expected, got %s (k %d, stride %d)",
              et_shape_str(x, sx, sizeof sx), k, stride);
    et_dtype cdt = et_compute_dtype(x->dtype);
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    int64_t Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    et_tensor *xc = et_as_dtype(x, cdt);
    et_tensor *y = et_new(cdt, 4, (int64_t[]){B, Ho, Wo, C});
    ET_KCALL(cdt, k_avg_pool2d_fwd, et_data(xc), et_data(y), B, H, W, C, k, stride);
    et_release(xc);
    y = et_finish(y, x->dtype);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("avg_pool2d", avg_pool2d_backward, y, 1, &x);
        n->i[0] = cdt, n->i[1] = k, n->i[2] = stride;
    }
    return y;
}

static void resize_bilinear_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt);
    const int64_t *s = n->in_shape[0];
    et_tensor *g = et_new(cdt, 4, s);
    ET_KCALL(cdt, k_resize_bilinear_bwd, et_data(gy), et_data(g), s[0], s[1], s[2], s[3],
             gy->shape[1], gy->shape[2]);
    gx[0] = g;
    et_release(gy);
}

et_tensor *et_resize_bilinear(et_tensor *x, int64_t Ho, int64_t Wo) {
    ET_DISPATCH(x, resize_bilinear, x, Ho, Wo);
    char sx[128];
    et_check_float("et_resize_bilinear", x, "x");
    ET_ASSERT(x->ndim == 4 && x->shape[1] >= 1 && x->shape[2] >= 1 && Ho >= 1 && Wo >= 1,
              "et_resize_bilinear: x [B, H, W, C] with H, W >= 1 and an output of at least "
              "1 x 1 expected, got %s -> %lld x %lld",
              et_shape_str(x, sx, sizeof sx), (long long)Ho, (long long)Wo);
    et_dtype cdt = et_compute_dtype(x->dtype);
    int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    et_tensor *xc = et_as_dtype(x, cdt);
    et_tensor *y = et_new(cdt, 4, (int64_t[]){B, Ho, Wo, C});
    ET_KCALL(cdt, k_resize_bilinear_fwd, et_data(xc), et_data(y), B, H, W, C, Ho, Wo);
    et_release(xc);
    y = et_finish(y, x->dtype);
    if (et_should_record(1, &x))
        et_record("resize_bilinear", resize_bilinear_backward, y, 1, &x)->i[0] = cdt;
    return y;
}

// ---- vision -------------------------------------------------------------------------

// im2col as an op: img [B, C, H, W] -> cols [B, nP, C*p*p] (exact copies of pixels, so
// rounding back to img's dtype loses nothing); backward is col2im.
static void im2col_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt);
    const int64_t *is = n->in_shape[0];
    et_tensor *g = et_new(cdt, 4, is);
    ET_KCALL(cdt, k_col2im, et_data(gy), et_data(g), is[0], is[1], is[2], is[3], (int)n->i[1]);
    gx[0] = g;
    et_release(gy);
}

static et_tensor *im2col(et_tensor *img, int p) {
    et_dtype cdt = et_compute_dtype(img->dtype);
    int64_t B = img->shape[0], C = img->shape[1], H = img->shape[2], W = img->shape[3];
    et_tensor *ic = et_as_dtype(img, cdt);
    et_tensor *cols = et_new(cdt, 3, (int64_t[]){B, (H / p) * (W / p), C * p * p});
    ET_KCALL(cdt, k_im2col, et_data(ic), et_data(cols), B, C, H, W, p);
    et_release(ic);
    cols = et_finish(cols, img->dtype);
    if (et_should_record(1, &img)) {
        et_node *n = et_record("im2col", im2col_backward, cols, 1, &img);
        n->i[0] = cdt, n->i[1] = p;
    }
    return cols;
}

// Patch embedding = im2col + linear with the weight viewed as [D, C*p*p]; the linear op
// supplies the GEMMs, the bias and the frozen-weight skip.
et_tensor *et_patch_embed(et_tensor *img, et_tensor *w, et_tensor *b) {
    ET_DISPATCH(ET_ON_DEVICE(img, w, b), patch_embed, img, w, b);
    char si[128], sw[128];
    et_check_float("et_patch_embed", img, "img");
    et_check_float("et_patch_embed", w, "w");
    et_check_mix("et_patch_embed", img, w);
    ET_ASSERT(img->ndim == 4 && w->ndim == 4 && w->shape[1] == img->shape[1] &&
                  w->shape[2] == w->shape[3] && w->shape[2] > 0 &&
                  img->shape[2] % w->shape[2] == 0 && img->shape[3] % w->shape[2] == 0,
              "et_patch_embed: img [B, C, H, W] and w [D, C, p, p] with p dividing H and W "
              "expected, got %s and %s",
              et_shape_str(img, si, sizeof si), et_shape_str(w, sw, sizeof sw));
    if (b)
        ET_ASSERT(b->ndim == 1 && b->shape[0] == w->shape[0], "et_patch_embed: bias must be [D]");
    et_tensor *cols = im2col(img, (int)w->shape[2]);
    et_tensor *w2 = et_reshape(w, 2, (int64_t[]){w->shape[0], cols->shape[2]});
    et_tensor *y = et_linear(cols, w2, b);
    et_release(cols);
    et_release(w2);
    return y;
}

static void bilinear_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt), *pts = n->saved[0];
    const int64_t *s = n->in_shape[0];
    et_tensor *g = et_new(cdt, 4, s);
    ET_KCALL(cdt, k_bilinear_bwd, et_data(gy), et_data(pts), et_data(g), s[0], s[1], s[2], s[3],
             pts->shape[1]);
    gx[0] = g;
    et_release(gy);
}

et_tensor *et_bilinear_sample(et_tensor *feat, et_tensor *pts) {
    ET_DISPATCH(feat, bilinear_sample, feat, pts);
    char sf[128], sp[128];
    et_check_float("et_bilinear_sample", feat, "feat");
    et_check_float("et_bilinear_sample", pts, "pts");
    et_check_mix("et_bilinear_sample", feat, pts);
    ET_ASSERT(
        feat->ndim == 4 && pts->ndim == 3 && pts->shape[0] == feat->shape[0] && pts->shape[2] == 2,
        "et_bilinear_sample: feat [B, H, W, C] and pts [B, P, 2] expected, got %s and %s",
        et_shape_str(feat, sf, sizeof sf), et_shape_str(pts, sp, sizeof sp));
    et_dtype cdt = et_compute_dtype(feat->dtype);
    int64_t B = feat->shape[0], H = feat->shape[1], W = feat->shape[2], C = feat->shape[3];
    int64_t P = pts->shape[1];
    et_tensor *fc = et_as_dtype(feat, cdt), *pc = et_as_dtype(pts, cdt);
    et_tensor *y = et_new(cdt, 3, (int64_t[]){B, P, C});
    ET_KCALL(cdt, k_bilinear_fwd, et_data(fc), et_data(pc), et_data(y), B, H, W, C, P);
    et_release(fc);
    y = et_finish(y, feat->dtype);
    if (et_should_record(1, &feat)) {
        et_node *n = et_record("bilinear_sample", bilinear_backward, y, 1, &feat);
        n->i[0] = cdt;
        et_node_save(n, 0, pc);
    }
    et_release(pc);
    return y;
}

// ---- dropout and cast ---------------------------------------------------------------

static void dropout_backward(et_node *n, const et_tensor *gy_, et_tensor **gx) {
    et_dtype cdt = (et_dtype)n->i[0];
    et_tensor *gy = grad_in(gy_, cdt), *keep = n->saved[0];
    et_tensor *g = et_new(cdt, gy->ndim, gy->shape);
    ET_KCALL(cdt, k_masked_scale, et_data(gy), et_data(keep), et_data(g), gy->numel, n->f[0]);
    gx[0] = g;
    et_release(gy);
}

et_tensor *et_dropout(et_tensor *x, double p, uint64_t seed, uint64_t offset) {
    ET_DISPATCH(x, dropout, x, p, seed, offset);
    et_check_float("et_dropout", x, "x");
    ET_ASSERT(p >= 0 && p <= 1, "et_dropout: p = %g outside [0, 1]", p);
    if (p == 0) return et_scale(x, 1.0);
    et_dtype cdt = et_compute_dtype(x->dtype);
    et_tensor *keep = et_empty(ET_U8, x->ndim, x->shape);
    et_dropout_mask(et_data(keep), x->numel, p, seed, offset);
    double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
    et_tensor *xc = et_as_dtype(x, cdt);
    et_tensor *y = et_new(cdt, x->ndim, x->shape);
    ET_KCALL(cdt, k_masked_scale, et_data(xc), et_data(keep), et_data(y), x->numel, scale);
    et_release(xc);
    y = et_finish(y, x->dtype);
    if (et_should_record(1, &x)) {
        et_node *n = et_record("dropout", dropout_backward, y, 1, &x);
        n->i[0] = cdt;
        n->f[0] = scale;
        et_node_save(n, 0, keep);
    }
    et_release(keep);
    return y;
}

static void cast_backward(et_node *n, const et_tensor *gy, et_tensor **gx) {
    gx[0] = et_as_dtype(gy, et_compute_dtype(n->in_dtype[0]));
}

et_tensor *et_cast(et_tensor *x, et_dtype dt) {
    ET_DISPATCH(x, cast, x, dt);
    et_check_float("et_cast", x, "x");
    ET_ASSERT(et_dtype_is_float(dt), "et_cast: target dtype %s is not a float type",
              et_dtype_name(dt));
    et_tensor *y = et_empty(dt, x->ndim, x->shape);
    et_copy_(y, x);
    if (et_should_record(1, &x)) et_record("cast", cast_backward, y, 1, &x);
    return y;
}
