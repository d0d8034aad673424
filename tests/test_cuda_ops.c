// tests/test_cuda_ops.c - every CUDA op, forward and backward, against the CPU op on random
// inputs. Each case runs the op on CPU tensors and on copies uploaded to GPU 0 (same dtype),
// back-propagates the same random output gradient, and compares the output and every
// input gradient (max-norm relative error, tensor_rel_err).
// Tolerances: f32 1e-4 (the GPU sums in another order; GEMMs are full fp32, no TF32),
// bf16 2e-2 (one bf16 rounding of outputs and intermediates on either side).
// Exits 77 (ctest skip) without the CUDA build or without a GPU.
#include "test_util.h"

#ifndef EMOTUNE_HAVE_CUDA
int main(void) {
    printf("CUDA backend not built: skipped\n");
    return 77;
}
#else

#include "../core/device.h"
#include "../core/ops.h"
#include "../core/rng.h"
#include "train/models/nn.h"

#define MAXIN 6

typedef et_tensor *(*op_fn)(et_tensor **in, const void *ctx);

typedef struct {
    et_tensor *t;  // CPU value (already in its dtype)
    bool grad;     // leaf requiring grad
} input;

static uint64_t g_seed = 1;

static et_tensor *rnd(et_dtype dt, int ndim, const int64_t *shape, float lo, float hi) {
    et_tensor *f = et_empty(ET_F32, ndim, shape);
    et_rng_uniform(et_data(f), f->numel, 1234, g_seed, lo, hi);
    g_seed += (uint64_t)f->numel;
    if (dt == ET_F32) return f;
    et_tensor *c = et_empty(dt, ndim, shape);
    et_copy_(c, f);
    et_release(f);
    return c;
}

static et_tensor *ints(int ndim, const int64_t *shape, int lo, int hi) {
    et_tensor *t = et_empty(ET_I32, ndim, shape);
    int32_t *p = et_data(t);
    for (int64_t i = 0; i < t->numel; i++)
        p[i] = lo + (int)(et_rng_u32(99, g_seed + (uint64_t)i) % (uint32_t)(hi - lo));
    g_seed += (uint64_t)t->numel;
    return t;
}

static et_tensor *to_host_f32(const et_tensor *t) {
    et_tensor *h = et_empty(ET_F32, t->ndim, t->shape);
    et_copy_(h, t);
    return h;
}

static const et_device GPU = {ET_CUDA, 0};

// Runs fn on CPU and GPU copies of ins; compares y and the grads of inputs with grad.
static void compare(const char *name, op_fn fn, const void *ctx, int n, input *ins, double tol) {
    et_tensor *cin[MAXIN], *gin[MAXIN];
    for (int i = 0; i < n; i++) {
        cin[i] = ins[i].t ? et_clone(ins[i].t) : NULL;
        gin[i] = ins[i].t ? et_to_device(ins[i].t, GPU) : NULL;
        if (ins[i].grad) {
            et_set_requires_grad(cin[i], true);
            et_set_requires_grad(gin[i], true);
        }
    }
    et_tensor *yc = fn(cin, ctx), *yg = fn(gin, ctx);
    char what[160];
    CHECK(yg->device.type == ET_CUDA, "%s: output not on the GPU", name);
    et_tensor *yh = to_host_f32(yg), *ych = to_host_f32(yc);
    snprintf(what, sizeof what, "%s forward", name);
    CHECK_TENSOR_CLOSE(yh, ych, tol, what);
    bool any = false;
    for (int i = 0; i < n; i++) any |= ins[i].grad;
    if (any) {
        et_tensor *gy = rnd(yc->dtype, yc->ndim, yc->shape, -1, 1);
        et_tensor *gyg = et_to_device(gy, GPU);
        // one call: a backward walks (and then frees) the whole tape, both forwards' nodes
        et_tensor *outs[2] = {yc, yg}, *gys[2] = {gy, gyg};
        et_backward_grads(2, outs, gys);
        for (int i = 0; i < n; i++) {
            if (!ins[i].grad) continue;
            snprintf(what, sizeof what, "%s grad of input %d", name, i);
            CHECK(cin[i]->grad && gin[i]->grad, "%s missing", what);
            if (!cin[i]->grad || !gin[i]->grad) continue;
            et_tensor *a = to_host_f32(gin[i]->grad), *b = to_host_f32(cin[i]->grad);
            CHECK_TENSOR_CLOSE(a, b, tol, what);
            et_release(a);
            et_release(b);
        }
        et_release(gy);
        et_release(gyg);
    }
    et_release(yh);
    et_release(ych);
    et_release(yc);
    et_release(yg);
    for (int i = 0; i < n; i++) {
        et_release(cin[i]);
        et_release(gin[i]);
    }
}

static double tol_of(et_dtype dt) { return dt == ET_F32 ? 1e-4 : 2e-2; }
static const et_dtype DTS[2] = {ET_F32, ET_BF16};

// ---- cases ------------------------------------------------------------------------------

typedef struct {
    bool ta, tb;
} mm_ctx;
static et_tensor *f_matmul(et_tensor **in, const void *c) {
    const mm_ctx *m = c;
    return et_matmul(in[0], in[1], m->ta, m->tb);
}
static void test_matmul(void) {
    for (int d = 0; d < 2; d++)
        for (int t = 0; t < 4; t++) {
            mm_ctx c = {t & 1, t >> 1};
            int64_t M = 33, N = 20, K = 17, B = 3;
            int64_t as[3] = {B, c.ta ? K : M, c.ta ? M : K},
                    bs[3] = {B, c.tb ? N : K, c.tb ? K : N};
            input ins[2] = {{rnd(DTS[d], 3, as, -1, 1), true}, {rnd(DTS[d], 3, bs, -1, 1), true}};
            compare("matmul batched", f_matmul, &c, 2, ins, tol_of(DTS[d]));
            et_release(ins[1].t);
            ins[1].t = rnd(DTS[d], 2, bs + 1, -1, 1);  // B shared by the batch
            compare("matmul shared b", f_matmul, &c, 2, ins, tol_of(DTS[d]));
            et_release(ins[0].t);
            et_release(ins[1].t);
        }
}

static et_tensor *f_linear(et_tensor **in, const void *c) {
    (void)c;
    return et_linear(in[0], in[1], in[2]);
}
static void test_linear(void) {
    for (int d = 0; d < 2; d++) {
        input ins[3] = {{rnd(DTS[d], 3, (int64_t[]){2, 7, 24}, -1, 1), true},
                        {rnd(DTS[d], 2, (int64_t[]){40, 24}, -1, 1), true},
                        {rnd(DTS[d], 1, (int64_t[]){40}, -1, 1), true}};
        compare("linear", f_linear, NULL, 3, ins, tol_of(DTS[d]));
        ins[1].grad = false;  // frozen weight, no bias
        et_release(ins[2].t);
        ins[2].t = NULL;
        ins[2].grad = false;
        compare("linear frozen", f_linear, NULL, 3, ins, tol_of(DTS[d]));
        et_release(ins[0].t);
        et_release(ins[1].t);
    }
}

// The LoRA Linear of train/models/nn.c: the GPU runs the backend's fused op (cuda_lora_linear),
// the CPU its own fused op (f32) or the composed ops (bf16). in: x, W, b, A, B.
typedef struct {
    double dropout;
} lora_ctx;
static et_tensor *f_lora(et_tensor **in, const void *c) {
    const lora_ctx *lc = c;
    et_linear_layer l = {.weight = in[1],
                         .bias = in[2],
                         .lora_a = in[3],
                         .lora_b = in[4],
                         .lora_scale = 2.0,
                         .lora_dropout = lc->dropout};
    et_rng_stream rng = {77, 5};
    return et_linear_layer_forward(&l, in[0], lc->dropout > 0 ? &rng : NULL);
}
static void test_lora_linear(void) {
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < 3; k++) {  // 0: frozen base, 1: + dropout, 2: trainable base + bias
            lora_ctx c = {k == 1 ? 0.25 : 0};
            const int64_t in = 24, out = 40, r = 4;
            input ins[5] = {{rnd(DTS[d], 3, (int64_t[]){2, 7, in}, -1, 1), true},
                            {rnd(DTS[d], 2, (int64_t[]){out, in}, -1, 1), k == 2},
                            {k == 2 ? rnd(DTS[d], 1, (int64_t[]){out}, -1, 1) : NULL, k == 2},
                            {rnd(ET_F32, 2, (int64_t[]){r, in}, -0.5, 0.5), true},
                            {rnd(ET_F32, 2, (int64_t[]){out, r}, -0.5, 0.5), true}};
            const char *names[3] = {"lora_linear", "lora_linear dropout", "lora_linear base+bias"};
            compare(names[k], f_lora, &c, 5, ins, tol_of(DTS[d]));
            for (int i = 0; i < 5; i++) et_release(ins[i].t);
        }
}

static et_tensor *f_add(et_tensor **in, const void *c) { return (void)c, et_add(in[0], in[1]); }
static et_tensor *f_sub(et_tensor **in, const void *c) { return (void)c, et_sub(in[0], in[1]); }
static et_tensor *f_mul(et_tensor **in, const void *c) { return (void)c, et_mul(in[0], in[1]); }
static et_tensor *f_scale(et_tensor **in, const void *c) { return (void)c, et_scale(in[0], -0.37); }
static et_tensor *f_bcast(et_tensor **in, const void *c) {
    return (void)c, et_add_bcast(in[0], in[1]);
}
static et_tensor *f_sum(et_tensor **in, const void *c) { return (void)c, et_sum_last(in[0]); }
static et_tensor *f_mean(et_tensor **in, const void *c) { return (void)c, et_mean_last(in[0]); }
static et_tensor *f_silu(et_tensor **in, const void *c) { return (void)c, et_silu(in[0]); }
static et_tensor *f_gelu(et_tensor **in, const void *c) { return (void)c, et_gelu(in[0]); }
static et_tensor *f_qgelu(et_tensor **in, const void *c) { return (void)c, et_quick_gelu(in[0]); }
static et_tensor *f_relu(et_tensor **in, const void *c) { return (void)c, et_relu(in[0]); }
static et_tensor *f_swiglu(et_tensor **in, const void *c) {
    return (void)c, et_swiglu(in[0], in[1]);
}
static et_tensor *f_softmax(et_tensor **in, const void *c) { return (void)c, et_softmax(in[0]); }

static void test_elementwise(void) {
    op_fn bin[4] = {f_add, f_sub, f_mul, f_swiglu};
    const char *bn[4] = {"add", "sub", "mul", "swiglu"};
    op_fn un[8] = {f_scale, f_sum, f_mean, f_silu, f_gelu, f_qgelu, f_softmax, f_relu};
    const char *unn[8] = {"scale", "sum_last",   "mean_last", "silu",
                          "gelu",  "quick_gelu", "softmax",   "relu"};
    for (int d = 0; d < 2; d++) {
        int64_t s[3] = {3, 5, 131};  // odd length: packed body + scalar tail
        for (int k = 0; k < 4; k++) {
            input ins[2] = {{rnd(DTS[d], 3, s, -3, 3), true}, {rnd(DTS[d], 3, s, -3, 3), true}};
            compare(bn[k], bin[k], NULL, 2, ins, tol_of(DTS[d]));
            et_release(ins[0].t);
            et_release(ins[1].t);
        }
        for (int k = 0; k < 8; k++) {
            input ins[1] = {{rnd(DTS[d], 3, s, -3, 3), true}};
            compare(unn[k], un[k], NULL, 1, ins, tol_of(DTS[d]));
            et_release(ins[0].t);
        }
        input ins[2] = {{rnd(DTS[d], 3, s, -1, 1), true}, {rnd(DTS[d], 2, s + 1, -1, 1), true}};
        compare("add_bcast", f_bcast, NULL, 2, ins, tol_of(DTS[d]));
        et_release(ins[0].t);
        et_release(ins[1].t);
    }
}

typedef struct {
    double eps;
} norm_ctx;
static et_tensor *f_rms(et_tensor **in, const void *c) {
    return et_rmsnorm(in[0], in[1], ((const norm_ctx *)c)->eps);
}
static et_tensor *f_ln(et_tensor **in, const void *c) {
    return et_layernorm(in[0], in[1], in[2], ((const norm_ctx *)c)->eps);
}
// Fused residual add + norm: in = {x, res, w, b}. Returns the norm, or (sum_too) the
// decoder's out = sum + silu(norm) so the sum and both gradient paths into it are compared.
typedef struct {
    double eps;
    bool sum_too;
} add_norm_ctx;
static et_tensor *add_norm_out(const add_norm_ctx *c, et_tensor *y, et_tensor *s) {
    if (!c->sum_too) {
        et_release(s);
        return y;
    }
    et_tensor *a = et_silu(y), *out = et_add(s, a);
    et_release(a), et_release(y), et_release(s);
    return out;
}
static et_tensor *f_add_rms(et_tensor **in, const void *c) {
    const add_norm_ctx *a = c;
    et_tensor *s, *y = et_add_rmsnorm(in[0], in[1], in[2], a->eps, &s);
    return add_norm_out(a, y, s);
}
static et_tensor *f_add_ln(et_tensor **in, const void *c) {
    const add_norm_ctx *a = c;
    et_tensor *s, *y = et_add_layernorm(in[0], in[1], in[2], in[3], a->eps, &s);
    return add_norm_out(a, y, s);
}
static void test_norms(void) {
    norm_ctx c = {1e-5};
    for (int d = 0; d < 2; d++) {
        int64_t s[2] = {9, 300};
        input ins[3] = {{rnd(DTS[d], 2, s, -2, 2), true},
                        {rnd(ET_F32, 1, s + 1, 0.5f, 1.5f), true},
                        {rnd(ET_F32, 1, s + 1, -1, 1), true}};
        compare("rmsnorm", f_rms, &c, 2, ins, tol_of(DTS[d]));
        compare("layernorm", f_ln, &c, 3, ins, tol_of(DTS[d]));
        input fused[4] = {ins[0], {rnd(DTS[d], 2, s, -2, 2), true}, ins[1], ins[2]};
        for (int k = 0; k < 2; k++) {
            add_norm_ctx a = {1e-5, k == 1};
            compare(k ? "add_rmsnorm sum" : "add_rmsnorm", f_add_rms, &a, 3, fused, tol_of(DTS[d]));
            compare(k ? "add_layernorm sum" : "add_layernorm", f_add_ln, &a, 4, fused,
                    tol_of(DTS[d]));
        }
        et_release(fused[1].t);
        for (int i = 0; i < 3; i++) et_release(ins[i].t);
    }
}

static et_tensor *f_rope(et_tensor **in, const void *c) {
    (void)c;
    return et_rope(in[0], in[1], in[2]);
}
static void test_rope(void) {
    for (int d = 0; d < 2; d++) {
        input ins[3] = {{rnd(DTS[d], 4, (int64_t[]){2, 6, 3, 16}, -1, 1), true},
                        {ints(2, (int64_t[]){2, 6}, 0, 500), false},
                        {et_rope_inv_freq(16, 10000.0), false}};
        compare("rope", f_rope, NULL, 3, ins, tol_of(DTS[d]));
        for (int i = 0; i < 3; i++) et_release(ins[i].t);
    }
}

static et_tensor *f_emb(et_tensor **in, const void *c) {
    return (void)c, et_embedding(in[0], in[1]);
}
static et_tensor *f_gather(et_tensor **in, const void *c) {
    return (void)c, et_gather_rows(in[0], in[1]);
}
static et_tensor *f_scatter(et_tensor **in, const void *c) {
    return (void)c, et_scatter_rows(in[0], in[1], in[2]);
}
static void test_rows(void) {
    for (int d = 0; d < 2; d++) {
        // repeated ids: the deterministic scatter-add must sum them
        input e[2] = {{rnd(DTS[d], 2, (int64_t[]){50, 36}, -1, 1), true},
                      {ints(2, (int64_t[]){4, 25}, 0, 50), false}};
        compare("embedding", f_emb, NULL, 2, e, tol_of(DTS[d]));
        et_release(e[1].t);
        e[1].t = ints(1, (int64_t[]){70}, 0, 50);
        compare("gather_rows", f_gather, NULL, 2, e, tol_of(DTS[d]));
        et_release(e[1].t);
        int32_t rows[4] = {7, 2, 40, 11};
        input s[3] = {e[0],
                      {et_from_data(ET_I32, 1, (int64_t[]){4}, rows), false},
                      {rnd(DTS[d], 2, (int64_t[]){4, 36}, -1, 1), true}};
        compare("scatter_rows", f_scatter, NULL, 3, s, tol_of(DTS[d]));
        et_release(s[1].t);
        et_release(s[2].t);
        et_release(e[0].t);
    }
}

static et_tensor *f_ce(et_tensor **in, const void *c) {
    (void)c;
    return et_cross_entropy(in[0], in[1], -100);
}
static void test_cross_entropy(void) {
    for (int d = 0; d < 2; d++) {
        et_tensor *t = ints(1, (int64_t[]){12}, 0, 1000);
        ET_DATA(int32_t, t)[3] = -100;
        ET_DATA(int32_t, t)[7] = -100;
        input ins[2] = {{rnd(DTS[d], 2, (int64_t[]){12, 1000}, -4, 4), true}, {t, false}};
        compare("cross_entropy", f_ce, NULL, 2, ins, tol_of(DTS[d]));
        for (int k = 0; k < 12; k++) ET_DATA(int32_t, t)[k] = -100;  // nothing counted: 0
        compare("cross_entropy all ignored", f_ce, NULL, 2, ins, tol_of(DTS[d]));
        et_release(ins[0].t);
        et_release(t);
    }
}

static et_tensor *f_concat(et_tensor **in, const void *c) {
    return et_concat(3, in, *(const int *)c);
}
static et_tensor *f_narrow(et_tensor **in, const void *c) {
    return et_narrow(in[0], *(const int *)c, 1, 3);
}
static et_tensor *f_permute(et_tensor **in, const void *c) {
    return et_permute(in[0], 4, (const int *)c);
}
static void test_shape(void) {
    for (int d = 0; d < 2; d++)
        for (int dim = 0; dim < 3; dim++) {
            int64_t a[3] = {4, 5, 6}, b[3] = {4, 5, 6}, e[3] = {4, 5, 6};
            a[dim] = 2, b[dim] = 5, e[dim] = 1;
            input ins[3] = {{rnd(DTS[d], 3, a, -1, 1), true},
                            {rnd(DTS[d], 3, b, -1, 1), true},
                            {rnd(DTS[d], 3, e, -1, 1), true}};
            compare("concat", f_concat, &dim, 3, ins, tol_of(DTS[d]));
            compare("narrow", f_narrow, &dim, 1, ins + 1, tol_of(DTS[d]));
            for (int i = 0; i < 3; i++) et_release(ins[i].t);
        }
    static const int perms[][4] = {{0, 2, 1, 3}, {3, 1, 0, 2}, {1, 0, 2, 3}, {0, 1, 3, 2}};
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < 4; k++) {
            input in = {rnd(DTS[d], 4, (int64_t[]){3, 5, 1, 7}, -1, 1), true};
            compare("permute", f_permute, perms[k], 1, &in, tol_of(DTS[d]));
            et_release(in.t);
        }
}

static et_tensor *f_mpool(et_tensor **in, const void *c) {
    return (void)c, et_mean_pool(in[0], in[1]);
}
static et_tensor *f_apool(et_tensor **in, const void *c) {
    const int *ks = c;
    return et_avg_pool2d(in[0], ks[0], ks[1]);
}
static et_tensor *f_patch(et_tensor **in, const void *c) {
    return (void)c, et_patch_embed(in[0], in[1], in[2]);
}
static et_tensor *f_bil(et_tensor **in, const void *c) {
    return (void)c, et_bilinear_sample(in[0], in[1]);
}
static et_tensor *f_resize(et_tensor **in, const void *c) {
    const int64_t *o = c;
    return et_resize_bilinear(in[0], o[0], o[1]);
}
static void test_pool_vision(void) {
    for (int d = 0; d < 2; d++) {
        et_tensor *m = ints(2, (int64_t[]){3, 7}, 0, 2);
        for (int k = 0; k < 7; k++) ET_DATA(int32_t, m)[7 + k] = 0;  // an empty row
        input mp[2] = {{rnd(DTS[d], 3, (int64_t[]){3, 7, 10}, -1, 1), true}, {m, false}};
        compare("mean_pool", f_mpool, NULL, 2, mp, tol_of(DTS[d]));
        et_release(mp[0].t);
        et_release(m);
        int ks[2][2] = {{2, 2}, {3, 2}};  // disjoint and overlapping windows
        for (int k = 0; k < 2; k++) {
            input ap[1] = {{rnd(DTS[d], 4, (int64_t[]){2, 9, 8, 5}, -1, 1), true}};
            compare("avg_pool2d", f_apool, ks[k], 1, ap, tol_of(DTS[d]));
            et_release(ap[0].t);
        }
        const int64_t rs[][4] = {{7, 7, 28, 28}, {14, 5, 56, 17}, {9, 8, 4, 3}, {1, 6, 2, 12}};
        for (int k = 0; k < 4; k++) {  // up x4, up by uneven factors, down, a 1-pixel axis
            input rp[1] = {{rnd(DTS[d], 4, (int64_t[]){2, rs[k][0], rs[k][1], 5}, -1, 1), true}};
            compare("resize_bilinear", f_resize, rs[k] + 2, 1, rp, tol_of(DTS[d]));
            et_release(rp[0].t);
        }
        input pe[3] = {{rnd(DTS[d], 4, (int64_t[]){2, 3, 12, 8}, -1, 1), true},
                       {rnd(DTS[d], 4, (int64_t[]){16, 3, 4, 4}, -1, 1), true},
                       {rnd(DTS[d], 1, (int64_t[]){16}, -1, 1), true}};
        compare("patch_embed", f_patch, NULL, 3, pe, tol_of(DTS[d]));
        for (int i = 0; i < 3; i++) et_release(pe[i].t);
        input bl[2] = {{rnd(DTS[d], 4, (int64_t[]){2, 6, 7, 9}, -1, 1), true},
                       {rnd(ET_F32, 3, (int64_t[]){2, 11, 2}, -1.2f, 1.2f), false}};
        if (DTS[d] == ET_BF16) {  // points in the feature's dtype, as the CPU op wants
            et_tensor *p = et_empty(ET_BF16, 3, bl[1].t->shape);
            et_copy_(p, bl[1].t);
            et_release(bl[1].t);
            bl[1].t = p;
        }
        compare("bilinear_sample", f_bil, NULL, 2, bl, tol_of(DTS[d]));
        et_release(bl[0].t);
        et_release(bl[1].t);
    }
}

static et_tensor *f_dropout(et_tensor **in, const void *c) {
    (void)c;
    return et_dropout(in[0], 0.3, 77, 1000);
}
static et_tensor *f_cast(et_tensor **in, const void *c) {
    return et_cast(in[0], *(const et_dtype *)c);
}
static void test_dropout_cast(void) {
    // Same Philox stream on both devices: the masks, hence the outputs, agree exactly.
    input ins[1] = {{rnd(ET_F32, 2, (int64_t[]){37, 129}, -1, 1), true}};
    compare("dropout", f_dropout, NULL, 1, ins, 1e-6);
    et_dtype to[2] = {ET_BF16, ET_F32};
    compare("cast f32->bf16", f_cast, &to[0], 1, ins, 1e-6);
    et_release(ins[0].t);
    ins[0].t = rnd(ET_BF16, 2, (int64_t[]){37, 129}, -1, 1);
    compare("cast bf16->f32", f_cast, &to[1], 1, ins, 1e-6);
    et_release(ins[0].t);
}

static void test_copies(void) {
    et_tensor *h = rnd(ET_F32, 2, (int64_t[]){3, 1000}, -1, 1);
    et_tensor *g = et_to_device(h, GPU);
    et_tensor *gb = et_empty_on(GPU, ET_BF16, 2, h->shape);
    et_copy_(gb, g);  // device conversion
    et_tensor *back = et_empty(ET_F32, 2, h->shape);
    et_copy_(back, g);
    CHECK(memcmp(et_data(back), et_data(h), et_nbytes(h)) == 0, "f32 round trip not exact");
    et_tensor *hb = et_empty(ET_BF16, 2, h->shape), *gbh = et_empty(ET_BF16, 2, h->shape);
    et_copy_(hb, h);
    et_copy_(gbh, gb);
    CHECK(memcmp(et_data(hb), et_data(gbh), et_nbytes(hb)) == 0, "bf16 rounding differs");
    et_fill_(g, 2.5);
    CHECK(et_get(g, 1234) == 2.5, "fill");
    et_set(g, 7, -1.0);
    CHECK(et_get(g, 7) == -1.0, "set/get");
    et_tensor *z = et_zeros_like(g);
    CHECK(et_get(z, 2999) == 0.0, "zeros_like");
    et_tensor *c = et_clone(g);
    CHECK(c->device.type == ET_CUDA && et_get(c, 7) == -1.0, "clone");
    et_release(h), et_release(g), et_release(gb), et_release(back), et_release(hb);
    et_release(gbh), et_release(z), et_release(c);
}

int main(void) {
    if (et_device_count(ET_CUDA) < 1) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    RUN(test_copies);
    RUN(test_matmul);
    RUN(test_linear);
    RUN(test_lora_linear);
    RUN(test_elementwise);
    RUN(test_norms);
    RUN(test_rope);
    RUN(test_rows);
    RUN(test_cross_entropy);
    RUN(test_shape);
    RUN(test_pool_vision);
    RUN(test_dropout_cast);
    return test_summary();
}
#endif
