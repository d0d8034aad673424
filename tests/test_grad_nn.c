// tests/test_grad_nn.c - the nn ops of core/ops_nn.c: forward against naive f64
// references, gradients against central differences (f64), bf16 against f32, and the
// edge cases of the contract (fully masked attention rows, all-ignored cross-entropy,
// frozen inputs). The fused add + norm ops are gradchecked here; their bit-identity with
// the composed ops is tests/test_fused_norm.c.
#include "../core/ops.h"
#include "../kernels/cpu/gemm.h"
#include "gradcheck.h"

#define GC_EPS 1e-6
#define GC_TOL 1e-6

static et_tensor *leaf(int ndim, const int64_t *shape, double scale, bool rg) {
    et_tensor *t = test_rand_tensor(ET_F64, ndim, shape, scale);
    et_set_requires_grad(t, rg);
    return t;
}

static et_tensor *i32_tensor(int ndim, const int64_t *shape, const int32_t *vals) {
    return et_from_data(ET_I32, ndim, shape, vals);
}

// Copy of t in dtype dt (no autograd).
static et_tensor *cast(const et_tensor *t, et_dtype dt) {
    et_tensor *c = et_empty(dt, t->ndim, t->shape);
    et_copy_(c, t);
    return c;
}

static void release_all(int n, et_tensor **ts) {
    for (int i = 0; i < n; i++) et_release(ts[i]);
}

static bool all_finite(const et_tensor *t) {
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(et_get(t, i))) return false;
    return true;
}

// ---- naive references (f64, element access) ----------------------------------------

static et_tensor *ref_attention(const et_tensor *q, const et_tensor *k, const et_tensor *v,
                                const et_tensor *mask, bool causal, double scale) {
    int64_t B = q->shape[0], T = q->shape[1], Hq = q->shape[2], hd = q->shape[3];
    int64_t S = k->shape[1], Hkv = k->shape[2], G = Hq / Hkv;
    et_tensor *o = et_zeros(ET_F64, 4, q->shape);
    double *sc = malloc(sizeof(double) * (size_t)(S ? S : 1));
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t t = 0; t < T; t++) {
                double mx = -INFINITY;
                for (int64_t s = 0; s < S; s++) {
                    bool vis = (!causal || s <= t + (S - T)) && (!mask || et_get(mask, b * S + s));
                    double d = 0;
                    for (int64_t j = 0; j < hd; j++)
                        d += et_get(q, ((b * T + t) * Hq + h) * hd + j) *
                             et_get(k, ((b * S + s) * Hkv + h / G) * hd + j);
                    sc[s] = vis ? d * scale : -INFINITY;
                    if (sc[s] > mx) mx = sc[s];
                }
                if (mx == -INFINITY) continue;
                double sum = 0;
                for (int64_t s = 0; s < S; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int64_t j = 0; j < hd; j++) {
                    double acc = 0;
                    for (int64_t s = 0; s < S; s++)
                        acc += sc[s] / sum * et_get(v, ((b * S + s) * Hkv + h / G) * hd + j);
                    et_set(o, ((b * T + t) * Hq + h) * hd + j, acc);
                }
            }
    free(sc);
    return o;
}

// ---- gradient checks ----------------------------------------------------------------

static et_tensor *f_rmsnorm(void *ctx, et_tensor **in) {
    (void)ctx;
    return et_rmsnorm(in[0], in[1], 1e-5);
}

static void test_grad_rmsnorm(void) {
    et_tensor *in[2] = {leaf(3, (int64_t[]){2, 3, 5}, 1.0, true),
                        leaf(1, (int64_t[]){5}, 1.0, true)};
    CHECK(gradcheck("rmsnorm w", f_rmsnorm, NULL, 2, in, GC_EPS, GC_TOL));
    et_release(in[1]);
    in[1] = NULL;
    CHECK(gradcheck("rmsnorm", f_rmsnorm, NULL, 2, in, GC_EPS, GC_TOL));
    release_all(2, in);
}

static et_tensor *f_layernorm(void *ctx, et_tensor **in) {
    (void)ctx;
    return et_layernorm(in[0], in[1], in[2], 1e-5);
}

static void test_grad_layernorm(void) {
    et_tensor *in[3] = {leaf(2, (int64_t[]){4, 6}, 1.0, true), leaf(1, (int64_t[]){6}, 1.0, true),
                        leaf(1, (int64_t[]){6}, 1.0, true)};
    CHECK(gradcheck("layernorm w b", f_layernorm, NULL, 3, in, GC_EPS, GC_TOL));
    et_tensor *wb[3] = {in[0], in[1], NULL};
    CHECK(gradcheck("layernorm w", f_layernorm, NULL, 3, wb, GC_EPS, GC_TOL));
    et_tensor *none[3] = {in[0], NULL, NULL};
    CHECK(gradcheck("layernorm", f_layernorm, NULL, 3, none, GC_EPS, GC_TOL));
    release_all(3, in);
}

// Fused residual add + norm. ctx (an int) selects the graph: 0 returns the norm only;
// 1 is a decoder block's use of the sum after the norm, out = sum + silu(norm), so the
// sum's gradient arrives both from the norm and directly.
static et_tensor *decoder_out(const void *ctx, et_tensor *y, et_tensor *sum) {
    if (!*(const int *)ctx) {
        et_release(sum);
        return y;
    }
    et_tensor *a = et_silu(y), *out = et_add(sum, a);
    et_release(a);
    et_release(y);
    et_release(sum);
    return out;
}

static et_tensor *f_add_rmsnorm(void *ctx, et_tensor **in) {
    et_tensor *sum = NULL, *y = et_add_rmsnorm(in[0], in[1], in[2], 1e-5, &sum);
    return decoder_out(ctx, y, sum);
}

static et_tensor *f_add_layernorm(void *ctx, et_tensor **in) {
    et_tensor *sum = NULL, *y = et_add_layernorm(in[0], in[1], in[2], in[3], 1e-5, &sum);
    return decoder_out(ctx, y, sum);
}

static void test_grad_add_norm(void) {
    int64_t sh[3] = {2, 3, 5};
    et_tensor *in[4] = {leaf(3, sh, 1.0, true), leaf(3, sh, 1.0, true), leaf(1, sh + 2, 1.0, true),
                        leaf(1, sh + 2, 1.0, true)};
    for (int graph = 0; graph < 2; graph++) {
        CHECK(gradcheck("add_rmsnorm w", f_add_rmsnorm, &graph, 3, in, GC_EPS, GC_TOL), "graph %d",
              graph);
        et_tensor *now[3] = {in[0], in[1], NULL};
        CHECK(gradcheck("add_rmsnorm", f_add_rmsnorm, &graph, 3, now, GC_EPS, GC_TOL), "graph %d",
              graph);
        CHECK(gradcheck("add_layernorm w b", f_add_layernorm, &graph, 4, in, GC_EPS, GC_TOL),
              "graph %d", graph);
        et_tensor *wonly[4] = {in[0], in[1], in[2], NULL};
        CHECK(gradcheck("add_layernorm w", f_add_layernorm, &graph, 4, wonly, GC_EPS, GC_TOL),
              "graph %d", graph);
        et_tensor *none[4] = {in[0], in[1], NULL, NULL};
        CHECK(gradcheck("add_layernorm", f_add_layernorm, &graph, 4, none, GC_EPS, GC_TOL),
              "graph %d", graph);
    }
    // only the residual trains (x frozen, as a frozen block's output would be)
    et_set_requires_grad(in[0], false);
    int graph = 1;
    CHECK(gradcheck("add_rmsnorm res only", f_add_rmsnorm, &graph, 3, in, GC_EPS, GC_TOL));
    CHECK(gradcheck("add_layernorm res only", f_add_layernorm, &graph, 4, in, GC_EPS, GC_TOL));
    CHECK(!in[0]->grad, "frozen x got a gradient");
    release_all(4, in);
}

typedef struct {
    et_tensor *pos, *inv;
} rope_ctx;

static et_tensor *f_rope(void *ctx, et_tensor **in) {
    rope_ctx *c = ctx;
    return et_rope(in[0], c->pos, c->inv);
}

static void test_grad_rope(void) {
    rope_ctx c = {i32_tensor(2, (int64_t[]){2, 3}, (int32_t[]){0, 1, 2, 5, 7, 100}),
                  et_rope_inv_freq(4, 10000.0)};
    et_tensor *in[1] = {leaf(4, (int64_t[]){2, 3, 2, 4}, 1.0, true)};
    CHECK(gradcheck("rope", f_rope, &c, 1, in, GC_EPS, GC_TOL));
    release_all(1, in);
    et_release(c.pos);
    et_release(c.inv);
}

static et_tensor *f_softmax(void *ctx, et_tensor **in) {
    (void)ctx;
    return et_softmax(in[0]);
}

static void test_grad_softmax(void) {
    et_tensor *in[1] = {leaf(3, (int64_t[]){2, 3, 5}, 2.0, true)};
    CHECK(gradcheck("softmax", f_softmax, NULL, 1, in, GC_EPS, GC_TOL));
    release_all(1, in);
}

typedef struct {
    et_tensor *mask;
    bool causal;
    double scale;
} attn_ctx;

static et_tensor *f_attention(void *ctx, et_tensor **in) {
    attn_ctx *c = ctx;
    return et_attention(in[0], in[1], in[2], c->mask, c->causal, c->scale);
}

// Gradcheck of q, k, v plus a forward check against the naive reference.
static void attn_case(const char *name, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                      int64_t hd, et_tensor *mask, bool causal) {
    attn_ctx c = {mask, causal, 1.0 / sqrt((double)hd)};
    et_tensor *in[3] = {leaf(4, (int64_t[]){B, T, Hq, hd}, 1.0, true),
                        leaf(4, (int64_t[]){B, S, Hkv, hd}, 1.0, true),
                        leaf(4, (int64_t[]){B, S, Hkv, hd}, 1.0, true)};
    et_tensor *y, *r;
    et_no_grad_begin();
    y = f_attention(&c, in);
    r = ref_attention(in[0], in[1], in[2], mask, causal, c.scale);
    et_no_grad_end();
    CHECK_TENSOR_CLOSE(y, r, 1e-12, name);
    et_release(y);
    et_release(r);
    CHECK(gradcheck(name, f_attention, &c, 3, in, GC_EPS, GC_TOL), "%s", name);
    release_all(3, in);
}

static void test_grad_attention(void) {
    attn_case("attention causal", 2, 3, 3, 2, 2, 4, NULL, true);
    attn_case("attention bidirectional", 2, 3, 3, 2, 2, 4, NULL, false);
    attn_case("attention gqa", 1, 3, 3, 4, 2, 2, NULL, true);
    attn_case("attention T != S causal", 1, 2, 4, 2, 1, 3, NULL, true);
    // longer than the kernel's causal row block (64): blocks after the first
    attn_case("attention causal T=150", 1, 150, 150, 1, 1, 2, NULL, true);
    et_tensor *m = i32_tensor(2, (int64_t[]){2, 4}, (int32_t[]){1, 1, 0, 1, 0, 1, 1, 0});
    attn_case("attention key mask", 2, 3, 4, 2, 1, 2, m, false);
    attn_case("attention key mask causal", 2, 3, 4, 2, 2, 2, m, true);
    et_release(m);
    // u8 mask; batch 1 sees no key at all
    et_tensor *mu = et_from_data(ET_U8, 2, (int64_t[]){2, 3}, (uint8_t[]){1, 0, 1, 0, 0, 0});
    attn_case("attention masked batch", 2, 2, 3, 2, 2, 2, mu, false);
    et_release(mu);
    // T > S causal: query rows 0 and 1 see no key
    attn_case("attention empty rows", 1, 4, 2, 2, 1, 3, NULL, true);
}

static et_tensor *f_silu(void *ctx, et_tensor **in) {
    (void)ctx;
    return et_silu(in[0]);
}
static et_tensor *f_gelu(void *ctx, et_tensor **in) {
    (void)ctx;
    return et_gelu(in[0]);
}
static et_tensor *f_quick_gelu(void *ctx, et_tensor **in) {
    (void)ctx;
    return et_quick_gelu(in[0]);
}
static et_tensor *f_relu(void *ctx, et_tensor **in) {
    (void)ctx;
    return et_relu(in[0]);
}
static et_tensor *f_swiglu(void *ctx, et_tensor **in) {
    (void)ctx;
    return et_swiglu(in[0], in[1]);
}

static void test_grad_activations(void) {
    et_tensor *in[2] = {leaf(2, (int64_t[]){3, 7}, 2.0, true),
                        leaf(2, (int64_t[]){3, 7}, 1.0, true)};
    CHECK(gradcheck("silu", f_silu, NULL, 1, in, GC_EPS, GC_TOL));
    CHECK(gradcheck("gelu", f_gelu, NULL, 1, in, GC_EPS, GC_TOL));
    CHECK(gradcheck("quick_gelu", f_quick_gelu, NULL, 1, in, GC_EPS, GC_TOL));
    CHECK(gradcheck("swiglu", f_swiglu, NULL, 2, in, GC_EPS, GC_TOL));
    CHECK(gradcheck("relu", f_relu, NULL, 1, in, GC_EPS, GC_TOL));  // no element near 0
    et_no_grad_begin();
    et_tensor *r = et_relu(in[0]);
    et_no_grad_end();
    int relu_bad = 0;
    for (int64_t i = 0; i < in[0]->numel; i++)
        relu_bad += et_get(r, i) != (et_get(in[0], i) > 0 ? et_get(in[0], i) : 0.0);
    CHECK(!relu_bad, "relu: %d wrong values", relu_bad);
    et_release(r);
    // forward values against the definitions
    et_no_grad_begin();
    et_tensor *ys[4] = {et_silu(in[0]), et_gelu(in[0]), et_quick_gelu(in[0]),
                        et_swiglu(in[0], in[1])};
    et_no_grad_end();
    double worst = 0;
    for (int64_t i = 0; i < in[0]->numel; i++) {
        double x = et_get(in[0], i), u = et_get(in[1], i);
        double ref[4] = {x / (1 + exp(-x)), 0.5 * x * (1 + erf(x / sqrt(2.0))),
                         x / (1 + exp(-1.702 * x)), x / (1 + exp(-x)) * u};
        for (int k = 0; k < 4; k++) worst = fmax(worst, fabs(et_get(ys[k], i) - ref[k]));
    }
    CHECK(worst < 1e-14, "activation forward off by %g", worst);
    release_all(4, ys);
    release_all(2, in);
}

typedef struct {
    et_tensor *targets;
} ce_ctx;

static et_tensor *f_ce(void *ctx, et_tensor **in) {
    ce_ctx *c = ctx;
    return et_cross_entropy(in[0], c->targets, -100);
}

static void test_grad_cross_entropy(void) {
    ce_ctx c = {i32_tensor(1, (int64_t[]){5}, (int32_t[]){2, -100, 0, 5, -100})};
    et_tensor *in[1] = {leaf(2, (int64_t[]){5, 6}, 2.0, true)};
    CHECK(gradcheck("cross_entropy", f_ce, &c, 1, in, GC_EPS, GC_TOL));
    // forward against the definition
    et_no_grad_begin();
    et_tensor *y = f_ce(&c, in);
    et_no_grad_end();
    CHECK(y->ndim == 0 && y->numel == 1 && y->dtype == ET_F64);
    double tot = 0;
    int cnt = 0;
    for (int r = 0; r < 5; r++) {
        int tg = ET_DATA(int32_t, c.targets)[r];
        if (tg == -100) continue;
        double s = 0;
        for (int j = 0; j < 6; j++) s += exp(et_get(in[0], r * 6 + j));
        tot += log(s) - et_get(in[0], r * 6 + tg);
        cnt++;
    }
    CHECK_CLOSE(et_get(y, 0), tot / cnt, 1e-13);
    et_release(y);
    et_release(c.targets);
    c.targets = i32_tensor(1, (int64_t[]){5}, (int32_t[]){-100, -100, -100, -100, -100});
    CHECK(gradcheck("cross_entropy all ignored", f_ce, &c, 1, in, GC_EPS, GC_TOL));
    et_release(c.targets);
    release_all(1, in);
}

// ---- forward references -------------------------------------------------------------

static void test_norm_forward(void) {
    int64_t R = 3, D = 8;
    et_tensor *x = leaf(2, (int64_t[]){R, D}, 1.5, false), *w = leaf(1, &D, 1.0, false);
    et_tensor *b = leaf(1, &D, 1.0, false);
    et_tensor *y1 = et_rmsnorm(x, w, 1e-6), *y2 = et_layernorm(x, w, b, 1e-5);
    double e1 = 0, e2 = 0;
    for (int64_t r = 0; r < R; r++) {
        double ss = 0, s = 0, v = 0;
        for (int64_t j = 0; j < D; j++) {
            ss += pow(et_get(x, r * D + j), 2);
            s += et_get(x, r * D + j);
        }
        double mu = s / D;
        for (int64_t j = 0; j < D; j++) v += pow(et_get(x, r * D + j) - mu, 2);
        for (int64_t j = 0; j < D; j++) {
            double xv = et_get(x, r * D + j), wv = et_get(w, j);
            e1 = fmax(e1, fabs(et_get(y1, r * D + j) - xv / sqrt(ss / D + 1e-6) * wv));
            double ln = (xv - mu) / sqrt(v / D + 1e-5) * wv + et_get(b, j);
            e2 = fmax(e2, fabs(et_get(y2, r * D + j) - ln));
        }
    }
    CHECK(e1 < 1e-13 && e2 < 1e-13, "rmsnorm err %g, layernorm err %g", e1, e2);
    et_tensor *ts[5] = {x, w, b, y1, y2};
    release_all(5, ts);
}

static void test_rope_forward(void) {
    et_tensor *inv = et_rope_inv_freq(8, 500000.0);
    CHECK(inv->dtype == ET_F32 && inv->ndim == 1 && inv->shape[0] == 4);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(et_get(inv, i), pow(500000.0, -2.0 * i / 8), 1e-6);
    int64_t B = 1, T = 2, H = 3, hd = 8;
    et_tensor *pos = i32_tensor(2, (int64_t[]){B, T}, (int32_t[]){3, 11});
    et_tensor *x = leaf(4, (int64_t[]){B, T, H, hd}, 1.0, false);
    et_tensor *y = et_rope(x, pos, inv);
    double err = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < hd; i++) {
                int64_t j = i % 4, base = (t * H + h) * hd;
                float ang = (float)ET_DATA(int32_t, pos)[t] * ET_DATA(float, inv)[j];
                double c = cosf(ang), s = sinf(ang);
                // q' = q cos + rotate_half(q) sin, rotate_half(x) = cat(-x2, x1)
                double rot = i < 4 ? -et_get(x, base + i + 4) : et_get(x, base + i - 4);
                err = fmax(err, fabs(et_get(y, base + i) - (et_get(x, base + i) * c + rot * s)));
            }
    CHECK(err < 1e-14, "rope err %g", err);
    et_tensor *ts[4] = {inv, pos, x, y};
    release_all(4, ts);
}

static void test_softmax_forward(void) {
    et_tensor *x = et_from_data(ET_F32, 2, (int64_t[]){2, 3},
                                (float[]){1, 2, 3, -INFINITY, -INFINITY, -INFINITY});
    et_tensor *y = et_softmax(x);
    double s = exp(1) + exp(2) + exp(3);
    CHECK_CLOSE(et_get(y, 0), exp(1) / s, 1e-6);
    CHECK_CLOSE(et_get(y, 2), exp(3) / s, 1e-6);
    CHECK(et_get(y, 3) == 0 && et_get(y, 4) == 0 && et_get(y, 5) == 0, "all -inf row");
    et_release(x);
    et_release(y);
}

// ---- edge cases ---------------------------------------------------------------------

static void test_attention_masked_row_zero(void) {
    // f32, causal with T > S: rows 0..1 see nothing; batch 1's mask hides every key.
    int64_t B = 2, T = 4, S = 2, H = 2, hd = 4;
    et_tensor *q = test_rand_tensor(ET_F32, 4, (int64_t[]){B, T, H, hd}, 1.0);
    et_tensor *k = test_rand_tensor(ET_F32, 4, (int64_t[]){B, S, H, hd}, 1.0);
    et_tensor *v = test_rand_tensor(ET_F32, 4, (int64_t[]){B, S, H, hd}, 1.0);
    et_tensor *m = i32_tensor(2, (int64_t[]){B, S}, (int32_t[]){1, 1, 0, 0});
    et_tensor *ins[3] = {q, k, v};
    for (int i = 0; i < 3; i++) et_set_requires_grad(ins[i], true);
    et_tensor *y = et_attention(q, k, v, m, true, 0.5);
    CHECK(all_finite(y), "NaN/inf in the output");
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < H * hd; j++) {
                double val = et_get(y, (b * T + t) * H * hd + j);
                if (b == 1 || t < 2)
                    CHECK(val == 0.0, "b %lld t %lld not zero: %g", (long long)b, (long long)t,
                          val);
            }
    et_tensor *g = et_full(ET_F32, 4, y->shape, 1.0);
    et_backward_grads(1, &y, &g);
    for (int i = 0; i < 3; i++) CHECK(ins[i]->grad && all_finite(ins[i]->grad), "grad %d", i);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < H * hd; j++)
                if (b == 1 || t < 2) CHECK(et_get(q->grad, (b * T + t) * H * hd + j) == 0.0);
    for (int64_t j = 0; j < S * H * hd; j++) {  // batch 1's keys are never used
        CHECK(et_get(k->grad, S * H * hd + j) == 0.0);
        CHECK(et_get(v->grad, S * H * hd + j) == 0.0);
    }
    et_tensor *ts[6] = {q, k, v, m, y, g};
    release_all(6, ts);
}

static void test_ce_all_ignored(void) {
    et_tensor *l = test_rand_tensor(ET_F32, 2, (int64_t[]){3, 4}, 1.0);
    et_set_requires_grad(l, true);
    et_tensor *t = i32_tensor(1, (int64_t[]){3}, (int32_t[]){-1, -1, -1});
    et_tensor *y = et_cross_entropy(l, t, -1);
    CHECK(y->ndim == 0 && y->dtype == ET_F32);
    CHECK(et_get(y, 0) == 0.0, "loss %g", et_get(y, 0));
    et_backward(y);
    CHECK(l->grad != NULL);
    for (int64_t i = 0; l->grad && i < l->grad->numel; i++) CHECK(et_get(l->grad, i) == 0.0);
    et_tensor *ts[3] = {l, t, y};
    release_all(3, ts);
}

static void test_frozen_inputs(void) {
    int64_t D = 6;
    et_tensor *x = test_rand_tensor(ET_F32, 2, (int64_t[]){3, D}, 1.0);
    et_tensor *w = test_rand_tensor(ET_F32, 1, &D, 1.0), *b = test_rand_tensor(ET_F32, 1, &D, 1.0);
    et_set_requires_grad(x, true);
    et_tensor *y = et_rmsnorm(x, w, 1e-5);
    et_tensor *z = et_layernorm(y, w, b, 1e-5);
    et_tensor *g = et_full(ET_F32, 2, z->shape, 1.0);
    et_backward_grads(1, &z, &g);
    CHECK(x->grad != NULL);
    CHECK(w->grad == NULL && b->grad == NULL, "frozen weight got a gradient");
    et_release(y);
    et_release(z);
    et_release(g);
    // nothing requires grad: no node
    y = et_rmsnorm(w, NULL, 1e-5);
    CHECK(et_tape_size() == 0 && !y->requires_grad);
    et_release(y);
    // trainable weight, frozen x
    et_set_requires_grad(x, false);
    et_release(x->grad);
    x->grad = NULL;
    et_set_requires_grad(w, true);
    y = et_rmsnorm(x, w, 1e-5);
    g = et_full(ET_F32, 2, y->shape, 1.0);
    et_backward_grads(1, &y, &g);
    CHECK(w->grad != NULL && x->grad == NULL);
    et_tensor *ts[5] = {x, w, b, y, g};
    release_all(5, ts);

    // attention with only v trainable: backward does dV only (1 GEMM per head; the
    // forward kept the probabilities of so small a product)
    int64_t B = 1, T = 3, H = 2, hd = 4;
    et_tensor *q = test_rand_tensor(ET_F32, 4, (int64_t[]){B, T, H, hd}, 1.0);
    et_tensor *k = test_rand_tensor(ET_F32, 4, (int64_t[]){B, T, H, hd}, 1.0);
    et_tensor *v = test_rand_tensor(ET_F32, 4, (int64_t[]){B, T, H, hd}, 1.0);
    et_set_requires_grad(v, true);
    y = et_attention(q, k, v, NULL, true, 0.5);
    g = et_full(ET_F32, 4, y->shape, 1.0);
    k_gemm_calls_reset();
    et_backward_grads(1, &y, &g);
    CHECK(k_gemm_calls() == (uint64_t)(B * H), "%llu GEMMs", (unsigned long long)k_gemm_calls());
    CHECK(v->grad && !q->grad && !k->grad);
    et_tensor *ts2[5] = {q, k, v, y, g};
    release_all(5, ts2);
}

// ---- bf16 against f32 ---------------------------------------------------------------

// A bf16 tensor of random values and the f32 tensor holding the same (rounded) values.
static void pair(int ndim, const int64_t *shape, double scale, et_tensor **b16, et_tensor **f32) {
    et_tensor *r = test_rand_tensor(ET_F32, ndim, shape, scale);
    *b16 = cast(r, ET_BF16);
    *f32 = cast(*b16, ET_F32);
    et_release(r);
}

static void cmp(const char *what, et_tensor *yb, et_tensor *yf, et_dtype want) {
    CHECK(yb->dtype == want, "%s: dtype %s", what, et_dtype_name(yb->dtype));
    CHECK_TENSOR_CLOSE(yb, yf, 1e-2, what);
    et_release(yb);
    et_release(yf);
}

static void test_bf16_matches_f32(void) {
    int64_t B = 2, T = 5, H = 2, hd = 8, D = 16;
    et_tensor *xb, *xf, *wb, *wf, *bb, *bf, *ub, *uf;
    pair(3, (int64_t[]){B, T, D}, 1.0, &xb, &xf);
    pair(1, &D, 1.0, &wb, &wf);
    pair(1, &D, 1.0, &bb, &bf);
    pair(3, (int64_t[]){B, T, D}, 1.0, &ub, &uf);
    cmp("rmsnorm", et_rmsnorm(xb, wb, 1e-5), et_rmsnorm(xf, wf, 1e-5), ET_BF16);
    cmp("rmsnorm bf16 weight", et_rmsnorm(xf, wb, 1e-5), et_rmsnorm(xf, wf, 1e-5), ET_F32);
    cmp("layernorm", et_layernorm(xb, wb, bb, 1e-5), et_layernorm(xf, wf, bf, 1e-5), ET_BF16);
    cmp("softmax", et_softmax(xb), et_softmax(xf), ET_BF16);
    cmp("silu", et_silu(xb), et_silu(xf), ET_BF16);
    cmp("gelu", et_gelu(xb), et_gelu(xf), ET_BF16);
    cmp("quick_gelu", et_quick_gelu(xb), et_quick_gelu(xf), ET_BF16);
    cmp("swiglu", et_swiglu(xb, ub), et_swiglu(xf, uf), ET_BF16);

    et_tensor *qb, *qf, *kb, *kf, *vb, *vf;
    pair(4, (int64_t[]){B, T, H, hd}, 1.0, &qb, &qf);
    pair(4, (int64_t[]){B, T, 1, hd}, 1.0, &kb, &kf);
    pair(4, (int64_t[]){B, T, 1, hd}, 1.0, &vb, &vf);
    et_tensor *pos = i32_tensor(2, (int64_t[]){B, T}, (int32_t[]){0, 1, 2, 3, 4, 7, 8, 9, 10, 11});
    et_tensor *inv = et_rope_inv_freq(hd, 10000.0);
    cmp("rope", et_rope(qb, pos, inv), et_rope(qf, pos, inv), ET_BF16);
    cmp("attention", et_attention(qb, kb, vb, NULL, true, 0.35),
        et_attention(qf, kf, vf, NULL, true, 0.35), ET_BF16);

    et_tensor *lb, *lf;
    pair(2, (int64_t[]){6, 11}, 2.0, &lb, &lf);
    et_tensor *tg = i32_tensor(1, (int64_t[]){6}, (int32_t[]){1, 0, -100, 10, 3, 3});
    cmp("cross_entropy", et_cross_entropy(lb, tg, -100), et_cross_entropy(lf, tg, -100), ET_F32);

    // gradients through bf16 inputs come back in f32 and match
    et_set_requires_grad(qb, true);
    et_set_requires_grad(qf, true);
    et_tensor *yb = et_attention(qb, kb, vb, NULL, true, 0.35);
    et_tensor *yf = et_attention(qf, kf, vf, NULL, true, 0.35);
    et_tensor *gb = et_full(ET_BF16, 4, yb->shape, 1.0), *gf = et_full(ET_F32, 4, yf->shape, 1.0);
    // one backward for both: a backward frees the whole tape
    et_backward_grads(2, (et_tensor *[]){yb, yf}, (et_tensor *[]){gb, gf});
    CHECK(qb->grad && qb->grad->dtype == ET_F32 && qf->grad);
    if (qb->grad && qf->grad) CHECK_TENSOR_CLOSE(qb->grad, qf->grad, 1e-2, "attention dq");
    et_tensor *ts[] = {xb, xf, wb,  wf,  bb, bf, ub, uf, qb, qf, kb, kf,
                       vb, vf, pos, inv, lb, lf, tg, yb, yf, gb, gf};
    release_all((int)(sizeof ts / sizeof ts[0]), ts);
}

// ---- larger sizes: the threaded paths in f32 against f64 ----------------------------

static void test_threaded_f32_vs_f64(void) {
    // B * Hkv = 4 work units: several threads run heads at once, GQA groups included
    int64_t B = 2, T = 150, S = 160, Hq = 4, Hkv = 2, hd = 8;
    et_tensor *q = leaf(4, (int64_t[]){B, T, Hq, hd}, 1.0, true);
    et_tensor *k = leaf(4, (int64_t[]){B, S, Hkv, hd}, 1.0, true);
    et_tensor *v = leaf(4, (int64_t[]){B, S, Hkv, hd}, 1.0, true);
    et_tensor *q32 = cast(q, ET_F32), *k32 = cast(k, ET_F32), *v32 = cast(v, ET_F32);
    et_set_requires_grad(q32, true);
    et_set_requires_grad(k32, true);
    et_set_requires_grad(v32, true);
    et_tensor *m = et_full(ET_I32, 2, (int64_t[]){B, S}, 1.0);
    ET_DATA(int32_t, m)[S + 5] = 0;
    et_tensor *y = et_attention(q, k, v, m, true, 0.25);
    et_tensor *y32 = et_attention(q32, k32, v32, m, true, 0.25);
    et_tensor *r = ref_attention(q, k, v, m, true, 0.25);
    CHECK_TENSOR_CLOSE(y, r, 1e-12, "attention threaded f64 vs reference");
    et_release(r);
    et_release(m);
    CHECK_TENSOR_CLOSE(y32, y, 1e-5, "attention f32");
    et_tensor *g = test_rand_tensor(ET_F64, 4, y->shape, 1.0), *g32 = cast(g, ET_F32);
    et_backward_grads(2, (et_tensor *[]){y, y32}, (et_tensor *[]){g, g32});
    CHECK_TENSOR_CLOSE(q32->grad, q->grad, 1e-4, "dq f32");
    CHECK_TENSOR_CLOSE(k32->grad, k->grad, 1e-4, "dk f32");
    CHECK_TENSOR_CLOSE(v32->grad, v->grad, 1e-4, "dv f32");

    int64_t R = 300, D = 160;
    et_tensor *x = leaf(2, (int64_t[]){R, D}, 1.0, true), *w = leaf(1, &D, 1.0, true);
    et_tensor *x32 = cast(x, ET_F32), *w32 = cast(w, ET_F32);
    et_set_requires_grad(x32, true);
    et_set_requires_grad(w32, true);
    et_tensor *z = et_layernorm(x, w, NULL, 1e-5), *z32 = et_layernorm(x32, w32, NULL, 1e-5);
    CHECK_TENSOR_CLOSE(z32, z, 1e-5, "layernorm f32");
    et_tensor *gz = test_rand_tensor(ET_F64, 2, z->shape, 1.0), *gz32 = cast(gz, ET_F32);
    et_backward_grads(2, (et_tensor *[]){z, z32}, (et_tensor *[]){gz, gz32});
    CHECK_TENSOR_CLOSE(x32->grad, x->grad, 1e-4, "layernorm dx f32");
    CHECK_TENSOR_CLOSE(w32->grad, w->grad, 1e-4, "layernorm dw f32");
    et_tensor *ts[] = {q, k, v, q32, k32, v32, y, y32, g, g32, x, w, x32, w32, z, z32, gz, gz32};
    release_all((int)(sizeof ts / sizeof ts[0]), ts);
}

int main(void) {
    RUN(test_grad_rmsnorm);
    RUN(test_grad_layernorm);
    RUN(test_grad_add_norm);
    RUN(test_grad_rope);
    RUN(test_grad_softmax);
    RUN(test_grad_attention);
    RUN(test_grad_activations);
    RUN(test_grad_cross_entropy);
    RUN(test_norm_forward);
    RUN(test_rope_forward);
    RUN(test_softmax_forward);
    RUN(test_attention_masked_row_zero);
    RUN(test_ce_all_ignored);
    RUN(test_frozen_inputs);
    RUN(test_bf16_matches_f32);
    RUN(test_threaded_f32_vs_f64);
    return test_summary();
}
