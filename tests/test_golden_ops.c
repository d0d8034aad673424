// tests/test_golden_ops.c - every op in core/ops.h against PyTorch (tests/golden/ops.safetensors).
//
// The fixture is written by tools/golden/gen_ops.py. Case "<case>" holds its inputs
// "<case>/<field>", the upstream gradient "<case>/gy", the reference output "<case>/y" and
// the reference gradient "<case>/g<field>" of every float input that takes one. The op
// parameters (transpose flags, eps, scale, dims) are hard-coded here and in the script.
// Each case runs the op, back-propagates gy with et_backward_grads and compares y and
// every input gradient by max-norm relative error: <= 1e-5 for f32 cases (reference
// computed in f64), <= 1e-2 for the *_bf16 cases (reference computed by torch in bf16).
// Set GOLDEN_VERBOSE=1 to print the measured error of every compared tensor, and
// GOLDEN_ONLY=a,b to run only the cases whose names contain one of the substrings.
#include <math.h>
#include <stdbool.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "../core/safetensors.h"
#include "../core/status.h"
#include "../core/tensor.h"
#include "test_util.h"

#define TOL_F32 1e-5
#define TOL_BF16 1e-2
#define GOLDEN_PATH "tests/golden/ops.safetensors"

static et_st_file *g_st;
static const char *g_case;
static bool g_verbose;

// Inputs of the current case: field name, tensor, whether it takes a gradient.
#define MAX_IN 8
static const char *g_in_field[MAX_IN];
static et_tensor *g_in[MAX_IN];
static bool g_in_grad[MAX_IN];
static int g_nin;

// Loads "<case>/<field>"; a missing tensor means the fixture and this test disagree.
static et_tensor *load(const char *field) {
    char name[256];
    snprintf(name, sizeof name, "%s/%s", g_case, field);
    et_tensor *t = NULL;
    et_status s = et_st_load(g_st, name, &t);
    if (s) {
        fprintf(stderr, "golden fixture: %s (regenerate with tools/golden/gen_ops.py)\n",
                et_status_msg(s));
        et_status_free(s);
        exit(1);
    }
    return t;
}

static void begin(const char *name) {
    g_case = name;
    g_nin = 0;
}

// An input of the case; grad = mark it trainable and compare its gradient.
static et_tensor *in(const char *field, bool grad) {
    ET_ASSERT(g_nin < MAX_IN, "too many inputs in case %s", g_case);
    et_tensor *t = load(field);
    if (grad) et_set_requires_grad(t, true);
    g_in_field[g_nin] = field;
    g_in[g_nin] = t;
    g_in_grad[g_nin] = grad;
    g_nin++;
    return t;
}

static void compare(const et_tensor *got, const char *field, double tol) {
    et_tensor *ref = load(field);
    char b1[96], b2[96];
    CHECK(got->numel == ref->numel && (got->ndim == ref->ndim || got->numel == 1),
          "%s/%s: shape %s, reference %s", g_case, field, et_shape_str(got, b1, sizeof b1),
          et_shape_str(ref, b2, sizeof b2));
    double err = tensor_rel_err(got, ref);
    CHECK(err <= tol, "%s/%s: relative error %.3g > %.3g", g_case, field, err, tol);
    if (g_verbose) printf("     %-28s %-10s rel err %.3g\n", g_case, field, err);
    et_release(ref);
}

// Back-propagates gy from y, compares y and the gradients, releases everything.
static void finish(et_tensor *y, double tol) {
    et_tensor *gy = load("gy");
    et_tensor *yref = load("y");
    CHECK(y->dtype == yref->dtype, "%s: output dtype %s, reference %s", g_case,
          et_dtype_name(y->dtype), et_dtype_name(yref->dtype));
    et_release(yref);
    compare(y, "y", tol);
    et_backward_grads(1, &y, &gy);
    for (int i = 0; i < g_nin; i++) {
        if (!g_in_grad[i]) {
            CHECK(g_in[i]->grad == NULL, "%s: input %s got a gradient", g_case, g_in_field[i]);
            continue;
        }
        char gname[64];
        snprintf(gname, sizeof gname, "g%s", g_in_field[i]);
        CHECK(g_in[i]->grad != NULL, "%s: input %s got no gradient", g_case, g_in_field[i]);
        if (g_in[i]->grad) compare(g_in[i]->grad, gname, tol);
    }
    for (int i = 0; i < g_nin; i++) et_release(g_in[i]);
    et_release(gy);
    et_release(y);
    g_nin = 0;
}

// ---- linear algebra ------------------------------------------------------------------
static void mm_case(const char *name, bool ta, bool tb) {
    begin(name);
    et_tensor *a = in("a", true), *b = in("b", true);
    finish(et_matmul(a, b, ta, tb), TOL_F32);
}
static void matmul_nn(void) { mm_case(__func__, false, false); }
static void matmul_nt(void) { mm_case(__func__, false, true); }
static void matmul_tn(void) { mm_case(__func__, true, false); }
static void matmul_tt(void) { mm_case(__func__, true, true); }
static void matmul_batched(void) { mm_case(__func__, false, false); }
static void matmul_batched4d_nt(void) { mm_case(__func__, false, true); }
static void matmul_shared(void) { mm_case(__func__, false, false); }
static void matmul_shared_tt(void) { mm_case(__func__, true, true); }

static void linear_bias(void) {
    begin(__func__);
    et_tensor *x = in("x", true), *w = in("w", true), *b = in("b", true);
    finish(et_linear(x, w, b), TOL_F32);
}
static void linear_nobias(void) {
    begin(__func__);
    et_tensor *x = in("x", true), *w = in("w", true);
    finish(et_linear(x, w, NULL), TOL_F32);
}

// ---- elementwise / reductions -----------------------------------------------------------
static void add(void) {
    begin(__func__);
    et_tensor *a = in("a", true), *b = in("b", true);
    finish(et_add(a, b), TOL_F32);
}
static void sub(void) {
    begin(__func__);
    et_tensor *a = in("a", true), *b = in("b", true);
    finish(et_sub(a, b), TOL_F32);
}
static void mul(void) {
    begin(__func__);
    et_tensor *a = in("a", true), *b = in("b", true);
    finish(et_mul(a, b), TOL_F32);
}
static void scale(void) {
    begin(__func__);
    finish(et_scale(in("a", true), -1.75), TOL_F32);
}
static void add_bcast_d(void) {
    begin(__func__);
    et_tensor *a = in("a", true), *b = in("b", true);
    finish(et_add_bcast(a, b), TOL_F32);
}
static void add_bcast_td(void) {
    begin(__func__);
    et_tensor *a = in("a", true), *b = in("b", true);
    finish(et_add_bcast(a, b), TOL_F32);
}
static void sum_last(void) {
    begin(__func__);
    finish(et_sum_last(in("x", true)), TOL_F32);
}
static void mean_last(void) {
    begin(__func__);
    finish(et_mean_last(in("x", true)), TOL_F32);
}
static void embedding(void) {
    begin(__func__);
    et_tensor *w = in("w", true), *ids = in("ids", false);
    finish(et_embedding(w, ids), TOL_F32);
}

// ---- normalisation ---------------------------------------------------------------------
static void rmsnorm(void) {
    begin(__func__);
    et_tensor *x = in("x", true), *w = in("w", true);
    finish(et_rmsnorm(x, w, 1e-5), TOL_F32);
}
static void rmsnorm_noaffine(void) {
    begin(__func__);
    finish(et_rmsnorm(in("x", true), NULL, 1e-6), TOL_F32);
}
static void layernorm(void) {
    begin(__func__);
    et_tensor *x = in("x", true), *w = in("w", true), *b = in("b", true);
    finish(et_layernorm(x, w, b, 1e-5), TOL_F32);
}
static void layernorm_noaffine(void) {
    begin(__func__);
    finish(et_layernorm(in("x", true), NULL, NULL, 1e-6), TOL_F32);
}

// ---- rope -------------------------------------------------------------------------------
static void rope(void) {
    begin(__func__);
    et_tensor *x = in("x", true), *pos = in("pos", false);
    et_tensor *inv = et_rope_inv_freq(8, 10000.0);
    compare(inv, "inv_freq", 1e-6);
    finish(et_rope(x, pos, inv), TOL_F32);
    et_release(inv);
}

// ---- softmax / attention --------------------------------------------------------------
static void softmax(void) {
    begin(__func__);
    finish(et_softmax(in("x", true)), TOL_F32);
}
static void attn_causal_gqa(void) {
    begin(__func__);
    et_tensor *q = in("q", true), *k = in("k", true), *v = in("v", true);
    et_tensor *mask = in("mask", false);
    finish(et_attention(q, k, v, mask, true, 1.0 / sqrt(8.0)), TOL_F32);
}
static void attn_bidir_mha(void) {
    begin(__func__);
    et_tensor *q = in("q", true), *k = in("k", true), *v = in("v", true);
    finish(et_attention(q, k, v, NULL, false, 0.3), TOL_F32);
}
static void attn_causal_t_lt_s(void) {
    begin(__func__);
    et_tensor *q = in("q", true), *k = in("k", true), *v = in("v", true);
    finish(et_attention(q, k, v, NULL, true, 1.0 / sqrt(8.0)), TOL_F32);
}
static void attn_empty_row(void) {
    begin(__func__);
    et_tensor *q = in("q", true), *k = in("k", true), *v = in("v", true);
    et_tensor *mask = in("mask", false);
    finish(et_attention(q, k, v, mask, true, 0.5), TOL_F32);
}

// ---- activations --------------------------------------------------------------------------
static void silu(void) {
    begin(__func__);
    finish(et_silu(in("x", true)), TOL_F32);
}
static void gelu(void) {
    begin(__func__);
    finish(et_gelu(in("x", true)), TOL_F32);
}
static void quick_gelu(void) {
    begin(__func__);
    finish(et_quick_gelu(in("x", true)), TOL_F32);
}
static void swiglu(void) {
    begin(__func__);
    et_tensor *g = in("gate", true), *u = in("up", true);
    finish(et_swiglu(g, u), TOL_F32);
}

// ---- loss ---------------------------------------------------------------------------------
static void cross_entropy(void) {
    begin(__func__);
    et_tensor *l = in("logits", true), *t = in("targets", false);
    finish(et_cross_entropy(l, t, -100), TOL_F32);
}
static void cross_entropy_all_ignored(void) {
    begin(__func__);
    et_tensor *l = in("logits", true), *t = in("targets", false);
    finish(et_cross_entropy(l, t, -100), TOL_F32);
}

// ---- shape -----------------------------------------------------------------------------------
static void concat_dim0(void) {
    begin(__func__);
    et_tensor *ts[3] = {in("a", true), in("b", true), in("c", true)};
    finish(et_concat(3, ts, 0), TOL_F32);
}
static void concat_dim1(void) {
    begin(__func__);
    et_tensor *ts[2] = {in("a", true), in("b", true)};
    finish(et_concat(2, ts, 1), TOL_F32);
}
static void concat_last(void) {
    begin(__func__);
    et_tensor *ts[2] = {in("a", true), in("b", true)};
    finish(et_concat(2, ts, 2), TOL_F32);
}
static void narrow_inner(void) {
    begin(__func__);
    finish(et_narrow(in("x", true), 1, 2, 3), TOL_F32);
}
static void narrow_outer(void) {
    begin(__func__);
    finish(et_narrow(in("x", true), 0, 1, 2), TOL_F32);
}
static void reshape(void) {
    begin(__func__);
    finish(et_reshape(in("x", true), 2, (int64_t[]){6, -1}), TOL_F32);
}
static void gather_rows(void) {
    begin(__func__);
    et_tensor *x = in("x", true), *idx = in("idx", false);
    finish(et_gather_rows(x, idx), TOL_F32);
}
static void scatter_rows(void) {
    begin(__func__);
    et_tensor *base = in("base", true), *idx = in("idx", false), *src = in("src", true);
    finish(et_scatter_rows(base, idx, src), TOL_F32);
}

// ---- pooling / vision -------------------------------------------------------------------------
static void mean_pool_mask(void) {
    begin(__func__);
    et_tensor *x = in("x", true), *mask = in("mask", false);
    finish(et_mean_pool(x, mask), TOL_F32);
}
static void mean_pool_nomask(void) {
    begin(__func__);
    finish(et_mean_pool(in("x", true), NULL), TOL_F32);
}
static void avg_pool2d_k2s2(void) {
    begin(__func__);
    finish(et_avg_pool2d(in("x", true), 2, 2), TOL_F32);
}
static void avg_pool2d_k3s2(void) {
    begin(__func__);
    finish(et_avg_pool2d(in("x", true), 3, 2), TOL_F32);
}
static void patch_embed(void) {
    begin(__func__);
    et_tensor *img = in("img", true), *w = in("w", true), *b = in("b", true);
    finish(et_patch_embed(img, w, b), TOL_F32);
}
static void patch_embed_nobias(void) {
    begin(__func__);
    et_tensor *img = in("img", true), *w = in("w", true);
    finish(et_patch_embed(img, w, NULL), TOL_F32);
}
static void bilinear_sample(void) {
    begin(__func__);
    et_tensor *feat = in("feat", true), *pts = in("pts", false);
    finish(et_bilinear_sample(feat, pts), TOL_F32);
}

static void resize_case(int64_t ho, int64_t wo) {
    finish(et_resize_bilinear(in("x", true), ho, wo), TOL_F32);
}
static void resize_up2(void) { begin(__func__), resize_case(6, 8); }
static void resize_up4(void) { begin(__func__), resize_case(12, 20); }
static void resize_down(void) { begin(__func__), resize_case(3, 4); }
static void resize_1row(void) { begin(__func__), resize_case(3, 8); }
static void relu(void) {
    begin(__func__);
    finish(et_relu(in("x", true)), TOL_F32);
}
static void permute_0213(void) {
    begin(__func__);
    finish(et_permute(in("x", true), 4, (const int[]){0, 2, 1, 3}), TOL_F32);
}

// ---- regularisation / casts -------------------------------------------------------------------
static void dropout_p0(void) {
    begin(__func__);
    finish(et_dropout(in("x", true), 0.0, 1234, 0), TOL_F32);
}
static void cast_bf16_roundtrip(void) {
    begin(__func__);
    et_tensor *h = et_cast(in("x", true), ET_BF16);
    CHECK(h->dtype == ET_BF16);
    et_tensor *y = et_cast(h, ET_F32);
    et_release(h);
    et_tensor *x = g_in[0];
    et_retain(x);
    finish(y, TOL_F32);  // gx == gy: the gradient stays f32 through the bf16 intermediate
    // torch rounds the gradient to bf16 on the way back; equal up to that rounding.
    if (x->grad) compare(x->grad, "gx_torch", TOL_BF16);
    et_release(x);
}

// ---- bf16 cases -------------------------------------------------------------------------------
static void linear_bf16(void) {
    begin(__func__);
    et_tensor *x = in("x", true), *w = in("w", true), *b = in("b", true);
    finish(et_linear(x, w, b), TOL_BF16);
}
static void rmsnorm_bf16(void) {
    begin(__func__);
    et_tensor *x = in("x", true), *w = in("w", true);
    finish(et_rmsnorm(x, w, 1e-5), TOL_BF16);
}
static void attn_causal_gqa_bf16(void) {
    begin(__func__);
    et_tensor *q = in("q", true), *k = in("k", true), *v = in("v", true);
    et_tensor *mask = in("mask", false);
    finish(et_attention(q, k, v, mask, true, 1.0 / sqrt(8.0)), TOL_BF16);
}
static void silu_bf16(void) {
    begin(__func__);
    finish(et_silu(in("x", true)), TOL_BF16);
}
static void swiglu_bf16(void) {
    begin(__func__);
    et_tensor *g = in("gate", true), *u = in("up", true);
    finish(et_swiglu(g, u), TOL_BF16);
}
static void cross_entropy_bf16(void) {
    begin(__func__);
    et_tensor *l = in("logits", true), *t = in("targets", false);
    finish(et_cross_entropy(l, t, -100), TOL_BF16);
}

// ---- mixed dtypes ------------------------------------------------------------------------------
// f32 activations with a frozen bf16 weight: the weight is widened exactly, output is f32.
static void linear_f32_bf16w(void) {
    begin(__func__);
    et_tensor *x = in("x", true), *w = in("w", false), *b = in("b", true);
    CHECK(w->dtype == ET_BF16);
    finish(et_linear(x, w, b), TOL_F32);
}

// RUN unless GOLDEN_ONLY is set and no comma-separated part of it occurs in the name.
static bool selected(const char *name) {
    const char *only = getenv("GOLDEN_ONLY");
    if (!only || !*only) return true;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", only);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (*tok && strstr(name, tok)) return true;
    return false;
}
#undef RUN
#define RUN(fn)                               \
    do {                                      \
        if (selected(#fn)) run_test(#fn, fn); \
    } while (0)

int main(void) {
    const char *v = getenv("GOLDEN_VERBOSE");
    g_verbose = v && *v && *v != '0';
    et_status s = et_st_open(GOLDEN_PATH, &g_st);
    if (s) {  // not started from the repo root: try the source dir
        et_status_free(s);
        s = et_st_open(EMOTUNE_SOURCE_DIR "/" GOLDEN_PATH, &g_st);
    }
    if (s) {
        fprintf(stderr, "cannot open the golden fixture: %s\n", et_status_msg(s));
        et_status_free(s);
        return 1;
    }
    RUN(matmul_nn);
    RUN(matmul_nt);
    RUN(matmul_tn);
    RUN(matmul_tt);
    RUN(matmul_batched);
    RUN(matmul_batched4d_nt);
    RUN(matmul_shared);
    RUN(matmul_shared_tt);
    RUN(linear_bias);
    RUN(linear_nobias);
    RUN(add);
    RUN(sub);
    RUN(mul);
    RUN(scale);
    RUN(add_bcast_d);
    RUN(add_bcast_td);
    RUN(sum_last);
    RUN(mean_last);
    RUN(embedding);
    RUN(rmsnorm);
    RUN(rmsnorm_noaffine);
    RUN(layernorm);
    RUN(layernorm_noaffine);
    RUN(rope);
    RUN(softmax);
    RUN(attn_causal_gqa);
    RUN(attn_bidir_mha);
    RUN(attn_causal_t_lt_s);
    RUN(attn_empty_row);
    RUN(silu);
    RUN(gelu);
    RUN(quick_gelu);
    RUN(swiglu);
    RUN(cross_entropy);
    RUN(cross_entropy_all_ignored);
    RUN(concat_dim0);
    RUN(concat_dim1);
    RUN(concat_last);
    RUN(narrow_inner);
    RUN(narrow_outer);
    RUN(reshape);
    RUN(gather_rows);
    RUN(scatter_rows);
    RUN(mean_pool_mask);
    RUN(mean_pool_nomask);
    RUN(avg_pool2d_k2s2);
    RUN(avg_pool2d_k3s2);
    RUN(patch_embed);
    RUN(patch_embed_nobias);
    RUN(bilinear_sample);
    RUN(resize_up2);
    RUN(resize_up4);
    RUN(resize_down);
    RUN(resize_1row);
    RUN(permute_0213);
    RUN(relu);
    RUN(dropout_p0);
    RUN(cast_bf16_roundtrip);
    RUN(linear_bf16);
    RUN(rmsnorm_bf16);
    RUN(attn_causal_gqa_bf16);
    RUN(silu_bf16);
    RUN(swiglu_bf16);
    RUN(cross_entropy_bf16);
    RUN(linear_f32_bf16w);
    et_st_close(g_st);
    return test_summary();
}
