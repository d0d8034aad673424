// tests/test_fused_norm.c - et_add_rmsnorm / et_add_layernorm (core/ops_nn.c) against the
// composed ops they replace, `s = et_add(x, res); y = et_rmsnorm(s, w)` (et_layernorm),
// on the CPU: the norm, the sum and every input gradient must be BIT-identical, in f32,
// bf16, f16 and f64, with and without affine weights, for mixed x/res dtypes, for row
// counts on both sides of the OpenMP threshold, and in a decoder graph that reuses the sum
// (out = s + silu(y)). Also: the tape holds the two plain nodes, nothing is recorded
// without grad, and a frozen x/res pair gives a sum that does not require grad.
#include "../core/ops.h"
#include "test_util.h"

typedef struct {
    bool ln;              // layernorm (else rmsnorm)
    bool w, b;            // affine weight / bias present
    bool decoder;         // out = s + silu(y) instead of y
    bool grad_x, grad_r;  // x / res require grad (w, b always do)
} variant;

typedef struct {
    et_tensor *x, *r, *w, *b;
} inputs;

static et_tensor *leaf_copy(const et_tensor *t, bool rg) {
    if (!t) return NULL;
    et_tensor *c = et_clone(t);
    et_set_requires_grad(c, rg);
    return c;
}

static const char *name_of(const variant *v) { return v->ln ? "add_layernorm" : "add_rmsnorm"; }

// Same dtype, shape and bytes (NULL equals NULL only).
static bool same_bits(const et_tensor *a, const et_tensor *b) {
    if (!a || !b) return a == b;
    if (a->dtype != b->dtype || !et_same_shape(a, b)) return false;
    return memcmp(et_data(a), et_data(b), et_nbytes(a)) == 0;
}

// Index and values of the first differing element, for the failure message.
static void report_diff(const char *what, const et_tensor *a, const et_tensor *b) {
    if (!a || !b || a->numel != b->numel) {
        fprintf(stderr, "    %s: missing or shaped differently\n", what);
        return;
    }
    for (int64_t i = 0; i < a->numel; i++)
        if (et_get(a, i) != et_get(b, i)) {
            fprintf(stderr, "    %s: element %lld fused %.10g composed %.10g\n", what, (long long)i,
                    et_get(a, i), et_get(b, i));
            return;
        }
    fprintf(stderr, "    %s: dtypes %s vs %s\n", what, et_dtype_name(a->dtype),
            et_dtype_name(b->dtype));
}

#define CHECK_BITS(a, b, ...)                \
    do {                                     \
        bool eq_ = same_bits((a), (b));      \
        CHECK(eq_, __VA_ARGS__);             \
        if (!eq_) report_diff(#a, (a), (b)); \
    } while (0)

// Runs one side (fused or composed) on fresh leaf copies; returns out, sets *y and *s,
// back-propagates gy and leaves the gradients in the copies.
static et_tensor *run_side(bool fused, const variant *v, const inputs *src, inputs *leaf,
                           et_tensor *gy, et_tensor **y, et_tensor **s) {
    leaf->x = leaf_copy(src->x, v->grad_x);
    leaf->r = leaf_copy(src->r, v->grad_r);
    leaf->w = leaf_copy(v->w ? src->w : NULL, true);
    leaf->b = leaf_copy(v->ln && v->b ? src->b : NULL, true);
    const double eps = 1e-5;
    if (fused) {
        *y = v->ln ? et_add_layernorm(leaf->x, leaf->r, leaf->w, leaf->b, eps, s)
                   : et_add_rmsnorm(leaf->x, leaf->r, leaf->w, eps, s);
    } else {
        *s = et_add(leaf->x, leaf->r);
        *y = v->ln ? et_layernorm(*s, leaf->w, leaf->b, eps) : et_rmsnorm(*s, leaf->w, eps);
    }
    et_tensor *out = et_retain(*y);
    if (v->decoder) {
        et_tensor *a = et_silu(*y);
        et_release(out);
        out = et_add(*s, a);
        et_release(a);
    }
    et_backward_grads(1, &out, &gy);
    return out;
}

static void free_side(inputs *l, et_tensor *out, et_tensor *y, et_tensor *s) {
    et_release(l->x), et_release(l->r), et_release(l->w), et_release(l->b);
    et_release(out), et_release(y), et_release(s);
}

static void check_variant(const variant *v, et_dtype dx, et_dtype dr, int ndim,
                          const int64_t *shape) {
    et_dtype dw = dx == ET_F64 ? ET_F64 : ET_F32;
    int64_t D = shape[ndim - 1];
    inputs src = {test_rand_tensor(dx, ndim, shape, 1.0), test_rand_tensor(dr, ndim, shape, 1.0),
                  test_rand_tensor(dw, 1, &D, 1.0), test_rand_tensor(dw, 1, &D, 1.0)};
    et_tensor *gy = test_rand_tensor(dx, ndim, shape, 1.0);
    inputs lf, lc;
    et_tensor *yf, *sf, *yc, *sc;
    et_tensor *of = run_side(true, v, &src, &lf, gy, &yf, &sf);
    et_tensor *oc = run_side(false, v, &src, &lc, gy, &yc, &sc);
    char what[160];
    snprintf(what, sizeof what, "%s x %s res %s w%d b%d decoder%d grads x%d r%d shape %s",
             name_of(v), et_dtype_name(dx), et_dtype_name(dr), v->w, v->b, v->decoder, v->grad_x,
             v->grad_r, ndim == 3 ? "3-D" : "2-D");
    CHECK_BITS(yf, yc, "%s: norm", what);
    CHECK_BITS(sf, sc, "%s: sum", what);
    CHECK_BITS(of, oc, "%s: out", what);
    CHECK(sf->requires_grad == sc->requires_grad, "%s: sum requires_grad differs", what);
    CHECK_BITS(lf.x->grad, lc.x->grad, "%s: grad x", what);
    CHECK_BITS(lf.r->grad, lc.r->grad, "%s: grad res", what);
    if (lf.w) CHECK_BITS(lf.w->grad, lc.w->grad, "%s: grad w", what);
    if (lf.b) CHECK_BITS(lf.b->grad, lc.b->grad, "%s: grad b", what);
    CHECK(!v->grad_x || lf.x->grad, "%s: x got no gradient", what);
    free_side(&lf, of, yf, sf);
    free_side(&lc, oc, yc, sc);
    et_release(src.x), et_release(src.r), et_release(src.w), et_release(src.b);
    et_release(gy);
}

static void sweep(et_dtype dx, et_dtype dr) {
    // {3, 37}: odd D, serial path; {4, 32, 300}: 38400 elements, the OpenMP path
    const int64_t small[2] = {3, 37}, big[3] = {4, 32, 300};
    for (int ln = 0; ln < 2; ln++)
        for (int aff = 0; aff < 3; aff++)
            for (int dec = 0; dec < 2; dec++) {
                if (!ln && aff == 2) continue;  // rmsnorm has no bias
                variant v = {ln, aff >= 1, aff == 2, dec, true, true};
                check_variant(&v, dx, dr, 2, small);
                check_variant(&v, dx, dr, 3, big);
            }
}

static void test_f32(void) { sweep(ET_F32, ET_F32); }
static void test_bf16(void) { sweep(ET_BF16, ET_BF16); }
static void test_f16(void) { sweep(ET_F16, ET_F16); }
static void test_f64(void) { sweep(ET_F64, ET_F64); }
static void test_mixed(void) {  // the sum takes x's dtype, as et_add's does
    sweep(ET_BF16, ET_F32);
    sweep(ET_F32, ET_BF16);
}

// Only the weights train (x and res frozen) or only the residual does.
static void test_partial_grads(void) {
    const int64_t sh[2] = {5, 64};
    for (int ln = 0; ln < 2; ln++) {
        variant frozen = {ln, true, ln, true, false, false};
        variant res_only = {ln, true, ln, true, false, true};
        check_variant(&frozen, ET_BF16, ET_BF16, 2, sh);
        check_variant(&res_only, ET_F32, ET_F32, 2, sh);
    }
}

// Two plain nodes on the tape with grad; none without (and a sum not requiring grad).
static void test_tape(void) {
    const int64_t sh[2] = {2, 8}, D = 8;
    et_tensor *x = test_rand_tensor(ET_F32, 2, sh, 1.0), *r = test_rand_tensor(ET_F32, 2, sh, 1.0);
    et_tensor *w = test_rand_tensor(ET_F32, 1, &D, 1.0);
    et_set_requires_grad(x, true);
    et_tape_clear();
    et_tensor *s, *y = et_add_rmsnorm(x, r, w, 1e-6, &s);
    CHECK(et_tape_size() == 2, "tape holds %lld nodes, want 2", (long long)et_tape_size());
    CHECK(s->requires_grad && y->requires_grad, "outputs do not require grad");
    et_tape_clear();
    et_release(y), et_release(s);
    et_set_requires_grad(x, false);
    y = et_add_layernorm(x, r, w, NULL, 1e-6, &s);
    CHECK(et_tape_size() == 0, "frozen inputs recorded %lld nodes", (long long)et_tape_size());
    CHECK(!s->requires_grad && !y->requires_grad, "frozen outputs require grad");
    et_release(y), et_release(s);
    et_set_requires_grad(x, true);
    et_no_grad_begin();
    y = et_add_layernorm(x, r, w, w, 1e-6, &s);
    et_no_grad_end();
    CHECK(et_tape_size() == 0, "no-grad mode recorded %lld nodes", (long long)et_tape_size());
    et_release(y), et_release(s);
    et_release(x), et_release(r), et_release(w);
}

int main(void) {
    RUN(test_f32);
    RUN(test_bf16);
    RUN(test_f16);
    RUN(test_f64);
    RUN(test_mixed);
    RUN(test_partial_grads);
    RUN(test_tape);
    return test_summary();
}
