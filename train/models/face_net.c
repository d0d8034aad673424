// train/models/face_net.c - see face_net.h
#include "face_net.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/device.h"
#include "core/fileio.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "data/preprocess.h"

// NORMAL: N(0, std) (torchvision's Swin linears); TORCH: PyTorch's default Linear / Conv
// init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias (SAM's decoder, FaceXFormer's
// fusion and heads, the patch conv); UNIT: N(0, 1) (nn.Embedding tokens, SAM's PE matrix).
enum { INIT_NORMAL, INIT_ONES, INIT_ZEROS, INIT_UNIT, INIT_TORCH };

struct et_face_param {
    char name[128];
    int ndim;
    int64_t shape[4];
    et_tensor **slot;
    int init;
    int64_t fan_in;  // INIT_TORCH
};

// ---- config -----------------------------------------------------------------------------

static et_status get_int(const cJSON *o, const char *key, int64_t def, int64_t lo, int64_t hi,
                         const char *what, int64_t *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        if (def < 0)
            return et_err(ET_ERR_MISSING, "%s: face network field \"%s\" is missing", what, key);
        *out = def;
        return NULL;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) ||
        j->valuedouble < (double)lo || j->valuedouble > (double)hi)
        return et_err(ET_ERR_INVALID,
                      "%s: face network field \"%s\" must be an integer in [%lld, %lld]", what, key,
                      (long long)lo, (long long)hi);
    *out = (int64_t)j->valuedouble;
    return NULL;
}

static et_status get_list(const cJSON *o, const char *key, int64_t hi, const char *what,
                          int64_t *vals, int *n) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || !cJSON_IsArray(j) || cJSON_GetArraySize(j) < 1 ||
        cJSON_GetArraySize(j) > ET_FACE_NET_MAX_STAGES)
        return et_err(ET_ERR_INVALID,
                      "%s: face network field \"%s\" must be a list of 1 to %d integers", what, key,
                      ET_FACE_NET_MAX_STAGES);
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 1 ||
            e->valuedouble > (double)hi)
            return et_err(ET_ERR_INVALID,
                          "%s: face network field \"%s\" item %d must be an integer in [1, %lld]",
                          what, key, k, (long long)hi);
        vals[k++] = (int64_t)e->valuedouble;
    }
    *n = k;
    return NULL;
}

static et_status get_real(const cJSON *o, const char *key, double def, double lo, double hi,
                          const char *what, double *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return NULL;
    }
    if (!cJSON_IsNumber(j) || !(j->valuedouble > lo && j->valuedouble <= hi))
        return et_err(ET_ERR_INVALID, "%s: face network field \"%s\" must be a number in (%g, %g]",
                      what, key, lo, hi);
    *out = j->valuedouble;
    return NULL;
}

// A list of 3 numbers (std: > 0); absent: def.
static et_status get_rgb(const cJSON *o, const char *key, const float def[3], bool positive,
                         const char *what, float out[3]) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        memcpy(out, def, 3 * sizeof(float));
        return NULL;
    }
    int k = 0;
    const cJSON *e;
    bool ok = cJSON_IsArray(j) && cJSON_GetArraySize(j) == 3;
    cJSON_ArrayForEach(e, j) {
        if (!ok) break;
        ok = cJSON_IsNumber(e) && isfinite(e->valuedouble) && fabs(e->valuedouble) < 1e3 &&
             (!positive || e->valuedouble > 0);
        if (ok) out[k++] = (float)e->valuedouble;
    }
    if (!ok)
        return et_err(ET_ERR_INVALID, "%s: face network field \"%s\" must be a list of 3 %s", what,
                      key, positive ? "positive numbers" : "numbers");
    return NULL;
}

et_status et_face_net_config_from_json(const char *json, const char *what,
                                       et_face_net_config *out) {
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return et_err(ET_ERR_FORMAT, "%s: not a JSON object", what);
    }
    et_face_net_config c;
    memset(&c, 0, sizeof c);
    et_status s = NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "model_type");
    if (mt && !(cJSON_IsString(mt) && !strcmp(mt->valuestring, "facexformer")))
        s = et_err(ET_ERR_UNSUPPORTED, "%s: \"model_type\" must be \"facexformer\"", what);
    int nd = 0, nh = 0;
    if (!s) s = get_int(o, "image_size", -1, 8, 4096, what, &c.image_size);
    if (!s) s = get_int(o, "patch_size", 4, 1, 64, what, &c.patch_size);
    if (!s) s = get_int(o, "num_channels", 3, 1, 16, what, &c.num_channels);
    if (!s) s = get_int(o, "embed_dim", -1, 1, 4096, what, &c.embed_dim);
    if (!s) s = get_list(o, "depths", 64, what, c.depths, &nd);
    if (!s) s = get_list(o, "num_heads", 256, what, c.heads, &nh);
    if (!s) s = get_int(o, "window_size", -1, 1, 64, what, &c.window);
    if (!s) s = get_real(o, "mlp_ratio", 4.0, 0, 64, what, &c.mlp_ratio);
    if (!s) s = get_real(o, "layer_norm_eps", 1e-5, 0, 1, what, &c.eps);
    if (!s) s = get_int(o, "fuse_dim", -1, 2, 8192, what, &c.fuse_dim);
    if (!s) s = get_int(o, "decoder_depth", -1, 1, 64, what, &c.dec_depth);
    if (!s) s = get_int(o, "decoder_heads", -1, 1, 256, what, &c.dec_heads);
    if (!s) s = get_int(o, "decoder_mlp_dim", -1, 1, 65536, what, &c.dec_mlp);
    if (!s) s = get_int(o, "attention_downsample_rate", 2, 1, 64, what, &c.attn_down);
    if (!s) s = get_int(o, "num_mask_tokens", 11, 0, 256, what, &c.n_mask_tokens);
    static const float clip_mean[3] = {ET_CLIP_MEAN_R, ET_CLIP_MEAN_G, ET_CLIP_MEAN_B},
                       clip_std[3] = {ET_CLIP_STD_R, ET_CLIP_STD_G, ET_CLIP_STD_B};
    if (!s) s = get_rgb(o, "image_mean", clip_mean, false, what, c.image_mean);
    if (!s) s = get_rgb(o, "image_std", clip_std, true, what, c.image_std);
    cJSON_Delete(o);
    if (s) return s;
    c.n_stages = nd;
    if (nh != nd)
        return et_err(ET_ERR_INVALID,
                      "%s: \"num_heads\" has %d items, \"depths\" %d (one per stage)", what, nh,
                      nd);
    if (c.image_size % c.patch_size)
        return et_err(ET_ERR_INVALID, "%s: image_size %lld is not a multiple of patch_size %lld",
                      what, (long long)c.image_size, (long long)c.patch_size);
    for (int i = 0; i < nd; i++)
        if ((c.embed_dim << i) % c.heads[i])
            return et_err(
                ET_ERR_INVALID,
                "%s: stage %d width %lld (embed_dim 2^%d) is not a multiple of num_heads[%d] %lld",
                what, i, (long long)(c.embed_dim << i), i, i, (long long)c.heads[i]);
    if (c.fuse_dim % 2)
        return et_err(ET_ERR_INVALID,
                      "%s: fuse_dim %lld must be even (the sin/cos position encoding)", what,
                      (long long)c.fuse_dim);
    if (c.fuse_dim % c.attn_down || (c.fuse_dim / c.attn_down) % c.dec_heads ||
        c.fuse_dim % c.dec_heads)
        return et_err(ET_ERR_INVALID,
                      "%s: decoder_heads %lld must divide fuse_dim %lld and fuse_dim / "
                      "attention_downsample_rate (%lld)",
                      what, (long long)c.dec_heads, (long long)c.fuse_dim, (long long)c.attn_down);
    *out = c;
    return NULL;
}

et_status et_face_net_config_load(const char *path, et_face_net_config *out) {
    char *text = NULL;
    ET_TRY(et_read_file(path, 1 << 20, &text, NULL));
    et_status s = et_face_net_config_from_json(text, path, out);
    free(text);
    return s;
}

// ---- the parameter catalogue ------------------------------------------------------------

typedef struct {
    et_face_net *m;
    int cap;
    bool torch;  // linears take PyTorch's default init (else N(0, std) weights, zero bias)
} cat_t;

static void add_param(cat_t *c, et_tensor **slot, int init, int ndim, const int64_t *shape,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add_param(cat_t *c, et_tensor **slot, int init, int ndim, const int64_t *shape,
                      const char *fmt, ...) {
    et_face_net *m = c->m;
    if (m->n_params == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        m->params = realloc(m->params, sizeof(*m->params) * (size_t)c->cap);
        ET_ASSERT(m->params, "face net: no memory for the parameter catalogue");
    }
    struct et_face_param *p = &m->params[m->n_params++];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = ndim;
    memcpy(p->shape, shape, sizeof(int64_t) * (size_t)ndim);
    p->slot = slot;
    p->init = init;
}

#define SHAPE(...) \
    (const int64_t[]) { __VA_ARGS__ }

static void add_linear(cat_t *c, et_linear_layer *l, int64_t out, int64_t in, bool bias,
                       const char *name) {
    snprintf(l->name, sizeof l->name, "%s", name);
    add_param(c, &l->weight, c->torch ? INIT_TORCH : INIT_NORMAL, 2, SHAPE(out, in), "%s.weight",
              name);
    c->m->params[c->m->n_params - 1].fan_in = in;
    if (bias) {
        add_param(c, &l->bias, c->torch ? INIT_TORCH : INIT_ZEROS, 1, SHAPE(out), "%s.bias", name);
        c->m->params[c->m->n_params - 1].fan_in = in;
    }
}

static void add_norm(cat_t *c, et_tensor **w, et_tensor **b, int64_t d, const char *name) {
    add_param(c, w, INIT_ONES, 1, SHAPE(d), "%s.weight", name);
    add_param(c, b, INIT_ZEROS, 1, SHAPE(d), "%s.bias", name);
}

static void add_attn(cat_t *c, et_face_attn *a, int64_t F, int64_t inner, const char *name) {
    char nm[160];
    snprintf(nm, sizeof nm, "%s.q_proj", name);
    add_linear(c, &a->q, inner, F, true, nm);
    snprintf(nm, sizeof nm, "%s.k_proj", name);
    add_linear(c, &a->k, inner, F, true, nm);
    snprintf(nm, sizeof nm, "%s.v_proj", name);
    add_linear(c, &a->v, inner, F, true, nm);
    snprintf(nm, sizeof nm, "%s.out_proj", name);
    add_linear(c, &a->o, F, inner, true, nm);
}

static const char *const k_task_names[ET_FACE_NET_TOKENS] = {
    "landmarks", "pose", "attribute", "visibility", "age", "gender", "race"};
static const char *const k_head_names[4] = {"landmarks", "age", "gender", "race"};
static const int64_t k_head_out[4] = {136, 8, 2, 5};

static void build_catalogue(et_face_net *m) {
    const et_face_net_config *g = &m->cfg;
    cat_t c = {m, 0, false};
    const int64_t E = g->embed_dim, F = g->fuse_dim, nS = g->n_stages, win = g->window;
    char nm[160];
    add_param(&c, &m->patch_w, INIT_TORCH, 4,
              SHAPE(E, g->num_channels, g->patch_size, g->patch_size), "backbone.0.0.0.weight");
    m->params[m->n_params - 1].fan_in = g->num_channels * g->patch_size * g->patch_size;
    add_param(&c, &m->patch_b, INIT_TORCH, 1, SHAPE(E), "backbone.0.0.0.bias");
    m->params[m->n_params - 1].fan_in = g->num_channels * g->patch_size * g->patch_size;
    add_norm(&c, &m->patch_ln_w, &m->patch_ln_b, E, "backbone.0.0.2");
    for (int i = 0; i < nS; i++) {
        const int64_t Ci = E << i, hid = (int64_t)((double)Ci * g->mlp_ratio);
        m->blocks[i] = calloc((size_t)g->depths[i], sizeof(et_swin_block));
        for (int j = 0; j < g->depths[i]; j++) {
            et_swin_block *b = &m->blocks[i][j];
            char p[64];
            snprintf(p, sizeof p, "backbone.0.%d.%d", 1 + 2 * i, j);
            snprintf(nm, sizeof nm, "%s.norm1", p);
            add_norm(&c, &b->ln1_w, &b->ln1_b, Ci, nm);
            snprintf(nm, sizeof nm, "%s.attn.qkv", p);
            add_linear(&c, &b->qkv, 3 * Ci, Ci, true, nm);
            snprintf(nm, sizeof nm, "%s.attn.proj", p);
            add_linear(&c, &b->proj, Ci, Ci, true, nm);
            add_param(&c, &b->rel_table, INIT_NORMAL, 2,
                      SHAPE((2 * win - 1) * (2 * win - 1), g->heads[i]),
                      "%s.attn.relative_position_bias_table", p);
            snprintf(nm, sizeof nm, "%s.norm2", p);
            add_norm(&c, &b->ln2_w, &b->ln2_b, Ci, nm);
            snprintf(nm, sizeof nm, "%s.mlp.0", p);
            add_linear(&c, &b->fc1, hid, Ci, true, nm);
            snprintf(nm, sizeof nm, "%s.mlp.3", p);
            add_linear(&c, &b->fc2, Ci, hid, true, nm);
        }
        if (i < nS - 1) {
            snprintf(nm, sizeof nm, "backbone.0.%d.norm", 2 + 2 * i);
            add_norm(&c, &m->merge_ln_w[i], &m->merge_ln_b[i], 4 * Ci, nm);
            snprintf(nm, sizeof nm, "backbone.0.%d.reduction", 2 + 2 * i);
            add_linear(&c, &m->merge[i], 2 * Ci, 4 * Ci, false, nm);
        }
    }
    c.torch = true;  // FaceXFormer's own modules and SAM's decoder keep PyTorch's defaults
    for (int i = 0; i < nS; i++) {
        snprintf(nm, sizeof nm, "linear_c.%d.proj", i);
        add_linear(&c, &m->linear_c[i], F, E << i, true, nm);
    }
    add_param(&c, &m->fuse_w, INIT_TORCH, 4, SHAPE(F, F * nS, 1, 1), "linear_fuse.weight");
    m->params[m->n_params - 1].fan_in = F * nS;
    add_param(&c, &m->pe_gauss, INIT_UNIT, 2, SHAPE(2, F / 2),
              "pe_layer.positional_encoding_gaussian_matrix");
    for (int t = 0; t < ET_FACE_NET_TOKENS; t++)
        add_param(&c, &m->task_tok[t], INIT_UNIT, 2, SHAPE(1, F), "face_decoder.%s_token.weight",
                  k_task_names[t]);
    if (g->n_mask_tokens)
        add_param(&c, &m->mask_tok, INIT_UNIT, 2, SHAPE(g->n_mask_tokens, F),
                  "face_decoder.mask_tokens.weight");
    const int64_t inner = F / g->attn_down;
    m->dec = calloc((size_t)g->dec_depth, sizeof(et_twoway_layer));
    for (int l = 0; l < g->dec_depth; l++) {
        et_twoway_layer *d = &m->dec[l];
        char p[96];
        snprintf(p, sizeof p, "face_decoder.transformer.layers.%d", l);
        snprintf(nm, sizeof nm, "%s.self_attn", p);
        add_attn(&c, &d->self_attn, F, F, nm);
        snprintf(nm, sizeof nm, "%s.cross_attn_token_to_image", p);
        add_attn(&c, &d->t2i, F, inner, nm);
        snprintf(nm, sizeof nm, "%s.mlp.lin1", p);
        add_linear(&c, &d->lin1, g->dec_mlp, F, true, nm);
        snprintf(nm, sizeof nm, "%s.mlp.lin2", p);
        add_linear(&c, &d->lin2, F, g->dec_mlp, true, nm);
        snprintf(nm, sizeof nm, "%s.cross_attn_image_to_token", p);
        add_attn(&c, &d->i2t, F, inner, nm);
        for (int k = 0; k < 4; k++) {
            snprintf(nm, sizeof nm, "%s.norm%d", p, k + 1);
            add_norm(&c, &d->ln_w[k], &d->ln_b[k], F, nm);
        }
    }
    add_attn(&c, &m->final_attn, F, inner, "face_decoder.transformer.final_attn_token_to_image");
    add_norm(&c, &m->final_ln_w, &m->final_ln_b, F, "face_decoder.transformer.norm_final_attn");
    for (int h = 0; h < 4; h++)
        for (int k = 0; k < 3; k++) {
            snprintf(nm, sizeof nm, "face_decoder.%s_prediction_head.layers.%d", k_head_names[h],
                     k);
            add_linear(&c, &m->head[h][k], k == 2 ? k_head_out[h] : F, F, true, nm);
        }
}

void et_face_net_free(et_face_net *m) {
    for (int i = 0; i < m->n_params; i++) {
        et_release(*m->params[i].slot);
        *m->params[i].slot = NULL;
    }
    free(m->params);
    for (int i = 0; i < ET_FACE_NET_MAX_STAGES; i++) free(m->blocks[i]);
    free(m->dec);
    memset(m, 0, sizeof *m);
}

int et_face_net_params(const et_face_net *m, const char **names, et_tensor **tensors) {
    for (int i = 0; i < m->n_params; i++) {
        if (names) names[i] = m->params[i].name;
        if (tensors) tensors[i] = *m->params[i].slot;
    }
    return m->n_params;
}

et_status et_face_net_new_random(const et_face_net_config *cfg, double std, uint64_t seed,
                                 et_face_net *m) {
    et_face_net_catalogue(m, cfg);
    uint64_t off = 0;
    for (int i = 0; i < m->n_params; i++) {
        struct et_face_param *p = &m->params[i];
        et_tensor *t = et_zeros(ET_F32, p->ndim, p->shape);
        if (p->init == INIT_NORMAL || p->init == INIT_UNIT) {
            et_randn_(t, 0.0, p->init == INIT_UNIT ? 1.0 : std, seed, off);
            off += (uint64_t)t->numel;
        } else if (p->init == INIT_TORCH) {
            const double bound = 1.0 / sqrt((double)p->fan_in);
            et_rand_uniform_(t, -bound, bound, seed, off);
            off += (uint64_t)t->numel;
        } else if (p->init == INIT_ONES) {
            float *d = et_data(t);
            for (int64_t k = 0; k < t->numel; k++) d[k] = 1.0f;
        }
        et_set_requires_grad(t, true);
        *p->slot = t;
    }
    m->frozen = false;
    return NULL;
}

void et_face_net_catalogue(et_face_net *m, const et_face_net_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    build_catalogue(m);
}

void et_face_net_slot(et_face_net *m, int i, const char **name, int *ndim, const int64_t **shape,
                      et_tensor ***slot) {
    ET_ASSERT(i >= 0 && i < m->n_params, "et_face_net_slot: %d of %d", i, m->n_params);
    *name = m->params[i].name, *ndim = m->params[i].ndim, *shape = m->params[i].shape;
    *slot = m->params[i].slot;
}

// ---- forward helpers --------------------------------------------------------------------

// A data tensor (no grad) on like's device.
static et_tensor *on_dev(et_tensor *t, const et_tensor *like) {
    if (like->device.type == ET_CPU) return t;
    et_tensor *d = et_to_device(t, like->device);
    et_release(t);
    return d;
}

static et_tensor *i32_tensor(int64_t n) { return et_empty(ET_I32, 1, (int64_t[]){n}); }

// x rows [R, C] with one zero row appended (row R): the target of padded positions.
static et_tensor *with_zero_row(et_tensor *rows) {
    et_tensor *z = on_dev(et_zeros(rows->dtype, 2, (int64_t[]){1, rows->shape[1]}), rows);
    et_tensor *y = et_concat(2, (et_tensor *[]){rows, z}, 0);
    et_release(z);
    return y;
}

// Python slice bounds of seq[start:stop] over n items (stop_none: stop is None).
static void py_slice(int64_t start, int64_t stop, bool stop_none, int64_t n, int64_t *a,
                     int64_t *b) {
    *a = start < 0 ? (start + n < 0 ? 0 : start + n) : (start > n ? n : start);
    *b = stop_none ? n : stop < 0 ? (stop + n < 0 ? 0 : stop + n) : (stop > n ? n : stop);
    if (*b < *a) *b = *a;
}

static et_tensor *linear(et_linear_layer *l, et_tensor *x) {
    return et_linear_layer_forward(l, x, NULL);
}

static et_tensor *reshape(et_tensor *x, int nd, const int64_t *s) {
    et_tensor *y = et_reshape(x, nd, s);
    et_release(x);
    return y;
}

// What every block of a stage with the same shift shares: the gather that builds the
// zero-padded, rolled windows (rows of the stage's map, R = the zero row) and the one back,
// the relative-position index, and the shifted-window mask. Built once per stage and shift.
typedef struct {
    int64_t B, H, W, N, nW;
    et_tensor *idx;   // i32 [B nW N]
    et_tensor *inv;   // i32 [B H W]
    et_tensor *rel;   // i32 [N N] rows of the relative position table
    et_tensor *mask;  // f32 [nW, heads, N, N] or NULL (no shift)
} win_plan;

static void win_plan_free(win_plan *p) {
    et_release(p->idx), et_release(p->inv), et_release(p->rel), et_release(p->mask);
}

static win_plan win_plan_make(const et_face_net_config *g, const et_tensor *x, int64_t heads,
                              bool odd) {
    const int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2];
    const int64_t win = g->window, N = win * win;
    const int64_t Hp = (H + win - 1) / win * win, Wp = (W + win - 1) / win * win;
    const int64_t nWh = Hp / win, nWw = Wp / win, nW = nWh * nWw, R = B * H * W;
    int64_t sh = odd ? win / 2 : 0, sw = odd ? win / 2 : 0;
    if (win >= Hp) sh = 0;
    if (win >= Wp) sw = 0;
    win_plan p = {B, H, W, N, nW, i32_tensor(B * nW * N), i32_tensor(R), i32_tensor(N * N), NULL};
    int32_t *pi = et_data(p.idx), *pv = et_data(p.inv), *pr = et_data(p.rel);
    for (int64_t b = 0; b < B; b++)
        for (int64_t wy = 0; wy < nWh; wy++)
            for (int64_t wx = 0; wx < nWw; wx++)
                for (int64_t py = 0; py < win; py++)
                    for (int64_t px = 0; px < win; px++) {
                        const int64_t j = (((b * nWh + wy) * nWw + wx) * win + py) * win + px;
                        const int64_t y = (wy * win + py + sh) % Hp, xx = (wx * win + px + sw) % Wp;
                        const int64_t r = y < H && xx < W ? (b * H + y) * W + xx : R;
                        pi[j] = (int32_t)r;
                        if (r < R) pv[r] = (int32_t)j;
                    }
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < N; j++)
            pr[i * N + j] = (int32_t)((i / win - j / win + win - 1) * (2 * win - 1) +
                                      (i % win - j % win + win - 1));
    if (sh + sw > 0) {  // torchvision's region labels on the padded map, -100 across regions
        int64_t *lab = calloc((size_t)(Hp * Wp), sizeof(int64_t));
        const int64_t hs[3][3] = {{0, -win, 0}, {-win, -sh, 0}, {-sh, 0, 1}};  // start, stop, None
        const int64_t ws[3][3] = {{0, -win, 0}, {-win, -sw, 0}, {-sw, 0, 1}};
        int64_t cnt = 0;
        for (int a = 0; a < 3; a++)
            for (int e = 0; e < 3; e++, cnt++) {
                int64_t y0, y1, x0, x1;
                py_slice(hs[a][0], hs[a][1], hs[a][2], Hp, &y0, &y1);
                py_slice(ws[e][0], ws[e][1], ws[e][2], Wp, &x0, &x1);
                for (int64_t y = y0; y < y1; y++)
                    for (int64_t xx = x0; xx < x1; xx++) lab[y * Wp + xx] = cnt;
            }
        p.mask = et_zeros(ET_F32, 4, (int64_t[]){nW, heads, N, N});
        float *pm = et_data(p.mask);
        for (int64_t w = 0; w < nW; w++) {
            const int64_t oy = w / nWw * win, ox = w % nWw * win;
            for (int64_t i = 0; i < N; i++)
                for (int64_t j = 0; j < N; j++) {
                    const bool differ = lab[(oy + i / win) * Wp + ox + i % win] !=
                                        lab[(oy + j / win) * Wp + ox + j % win];
                    for (int64_t h = 0; h < heads; h++)
                        pm[((w * heads + h) * N + i) * N + j] = differ ? -100.0f : 0.0f;
                }
        }
        free(lab);
        p.mask = on_dev(p.mask, x);
    }
    return p;
}

// One Swin v1 block on x [B, H, W, C] (torchvision SwinTransformerBlock) with its stage's plan.
static et_tensor *swin_block(const et_face_net_config *g, et_swin_block *blk, et_tensor *x,
                             int64_t heads, const win_plan *pl) {
    const int64_t B = pl->B, H = pl->H, W = pl->W, C = x->shape[3];
    const int64_t N = pl->N, nW = pl->nW, Bw = B * nW, R = B * H * W, hd = C / heads;
    // relative position bias [heads, N, N]
    et_tensor *bias_rows = et_gather_rows(blk->rel_table, pl->rel);  // [N N, heads]
    et_tensor *bias = et_permute(bias_rows, 2, (const int[]){1, 0});
    bias = reshape(bias, 3, (int64_t[]){heads, N, N});
    et_release(bias_rows);
    // attention over windows
    et_tensor *xr = et_reshape(x, 2, (int64_t[]){R, C});
    et_tensor *h1 = et_layernorm(xr, blk->ln1_w, blk->ln1_b, g->eps);
    et_tensor *hz = with_zero_row(h1);
    et_tensor *xw = et_gather_rows(hz, pl->idx);  // [Bw N, C]
    et_release(h1), et_release(hz);
    et_tensor *qkv = linear(&blk->qkv, xw);
    et_release(xw);
    qkv = reshape(qkv, 5, (int64_t[]){Bw, N, 3, heads, hd});
    et_tensor *qkvp = et_permute(qkv, 5, (const int[]){2, 0, 3, 1, 4});  // [3, Bw, heads, N, hd]
    et_release(qkv);
    et_tensor *part[3];
    for (int k = 0; k < 3; k++) {
        et_tensor *n = et_narrow(qkvp, 0, k, 1);
        part[k] = et_reshape(n, 4, (int64_t[]){Bw, heads, N, hd});
        et_release(n);
    }
    et_release(qkvp);
    et_tensor *q = et_scale(part[0], 1.0 / sqrt((double)hd));
    et_tensor *att = et_matmul(q, part[1], false, true);  // [Bw, heads, N, N]
    et_release(q);
    et_tensor *att2 = et_add_bcast(att, bias);
    et_release(att), et_release(bias);
    if (pl->mask) {
        et_tensor *a5 = et_reshape(att2, 5, (int64_t[]){B, nW, heads, N, N});
        et_tensor *am = et_add_bcast(a5, pl->mask);
        et_release(a5), et_release(att2);
        att2 = reshape(am, 4, (int64_t[]){Bw, heads, N, N});
    }
    et_tensor *p = et_softmax(att2);
    et_release(att2);
    et_tensor *o = et_matmul(p, part[2], false, false);  // [Bw, heads, N, hd]
    et_release(p), et_release(part[0]), et_release(part[1]), et_release(part[2]);
    et_tensor *ot = et_permute(o, 4, (const int[]){0, 2, 1, 3});
    et_release(o);
    ot = reshape(ot, 2, (int64_t[]){Bw * N, C});
    et_tensor *pj = linear(&blk->proj, ot);
    et_release(ot);
    et_tensor *back = et_gather_rows(pj, pl->inv);  // [R, C]
    et_release(pj);
    et_tensor *x1 = et_add(xr, back);
    et_release(back), et_release(xr);
    // MLP
    et_tensor *h2 = et_layernorm(x1, blk->ln2_w, blk->ln2_b, g->eps);
    et_tensor *f1 = linear(&blk->fc1, h2);
    et_tensor *a1 = et_gelu(f1);
    et_tensor *f2 = linear(&blk->fc2, a1);
    et_release(h2), et_release(f1), et_release(a1);
    et_tensor *x2 = et_add(x1, f2);
    et_release(x1), et_release(f2);
    return reshape(x2, 4, (int64_t[]){B, H, W, C});
}

// torchvision PatchMerging: x [B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 2C].
static et_tensor *patch_merge(const et_face_net_config *g, et_face_net *m, int i, et_tensor *x) {
    const int64_t B = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
    const int64_t H2 = (H + 1) / 2, W2 = (W + 1) / 2, R = B * H * W;
    et_tensor *idx = i32_tensor(B * H2 * W2 * 4);
    int32_t *pi = et_data(idx);
    static const int dy[4] = {0, 1, 0, 1}, dx[4] = {0, 0, 1, 1};
    for (int64_t b = 0; b < B; b++)
        for (int64_t y = 0; y < H2; y++)
            for (int64_t xx = 0; xx < W2; xx++)
                for (int k = 0; k < 4; k++) {
                    const int64_t sy = 2 * y + dy[k], sx = 2 * xx + dx[k];
                    pi[((b * H2 + y) * W2 + xx) * 4 + k] =
                        (int32_t)(sy < H && sx < W ? (b * H + sy) * W + sx : R);
                }
    et_tensor *xr = et_reshape(x, 2, (int64_t[]){R, C});
    et_tensor *xz = with_zero_row(xr);
    et_tensor *gth = et_gather_rows(xz, idx);
    et_release(xr), et_release(xz), et_release(idx);
    gth = reshape(gth, 2, (int64_t[]){B * H2 * W2, 4 * C});
    et_tensor *n = et_layernorm(gth, m->merge_ln_w[i], m->merge_ln_b[i], g->eps);
    et_tensor *y = linear(&m->merge[i], n);
    et_release(gth), et_release(n);
    return reshape(y, 4, (int64_t[]){B, H2, W2, 2 * C});
}

// SAM's Attention with its downsampled inner width: q [B, Tq, F], k / v [B, Tk, F].
static et_tensor *face_attn(et_face_attn *a, int64_t heads, et_tensor *q, et_tensor *k,
                            et_tensor *v) {
    return et_mha(&a->q, &a->k, &a->v, &a->o, heads, q, k, v);
}

// LayerNorm(x + d), releasing x and d.
static et_tensor *addln(et_tensor *x, et_tensor *d, et_tensor *w, et_tensor *b, double eps) {
    et_tensor *s = et_add(x, d);
    et_release(x), et_release(d);
    et_tensor *y = et_layernorm(s, w, b, eps);
    et_release(s);
    return y;
}

// SAM's random-Fourier encoding of one point (cx, cy) in [-1, 1]: [sin(2 pi p G), cos(2 pi p G)].
static void pe_point(const float *G, int64_t F2, double cx, double cy, float *out) {
    for (int64_t k = 0; k < F2; k++) {
        const double v = 6.283185307179586 * (cx * G[k] + cy * G[F2 + k]);
        out[k] = (float)sin(v);
        out[F2 + k] = (float)cos(v);
    }
}

// A CPU f32 copy of the [2, F/2] Gaussian matrix.
static et_tensor *pe_matrix_host(const et_face_net *m) {
    et_tensor *gc = et_cast(m->pe_gauss, ET_F32);
    et_tensor *gh =
        gc->device.type == ET_CPU ? et_retain(gc) : et_to_device(gc, (et_device){ET_CPU, 0});
    et_release(gc);
    return gh;
}

// SAM's random-Fourier position encoding of the (h, w) grid: [h w, F].
static et_tensor *image_pe(const et_face_net *m, int64_t h, int64_t w) {
    const int64_t F2 = m->cfg.fuse_dim / 2;
    et_tensor *gh = pe_matrix_host(m);
    et_tensor *pe = et_empty(ET_F32, 2, (int64_t[]){h * w, 2 * F2});
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            pe_point(et_data(gh), F2, 2.0 * (((double)x + 0.5) / (double)w) - 1.0,
                     2.0 * (((double)y + 0.5) / (double)h) - 1.0,
                     (float *)et_data(pe) + (y * w + x) * 2 * F2);
    et_release(gh);
    return pe;
}

et_tensor *et_face_net_point_pe(const et_face_net *m, et_tensor *pts) {
    const int64_t F2 = m->cfg.fuse_dim / 2, B = pts->shape[0], N = pts->numel / (2 * B);
    ET_ASSERT(pts->numel == B * N * 2, "et_face_net_point_pe: pts must be [B, 2 N]");
    et_tensor *gh = pe_matrix_host(m);
    et_tensor *pc = et_cast(pts, ET_F32);
    et_tensor *ph =
        pc->device.type == ET_CPU ? et_retain(pc) : et_to_device(pc, (et_device){ET_CPU, 0});
    et_tensor *pe = et_empty(ET_F32, 3, (int64_t[]){B, N, 2 * F2});
    const float *p = et_data(ph);
    for (int64_t i = 0; i < B * N; i++)
        pe_point(et_data(gh), F2, p[2 * i], p[2 * i + 1], (float *)et_data(pe) + i * 2 * F2);
    et_release(gh), et_release(pc), et_release(ph);
    if (pts->device.type == ET_CPU) return pe;
    et_tensor *d = et_to_device(pe, pts->device);
    et_release(pe);
    return d;
}

static et_tensor *head_mlp(et_linear_layer *l, et_tensor *x) {
    et_tensor *a = linear(&l[0], x), *ra = et_relu(a);
    et_tensor *b = linear(&l[1], ra), *rb = et_relu(b);
    et_tensor *y = linear(&l[2], rb);
    et_release(a), et_release(ra), et_release(b), et_release(rb);
    return y;
}

void et_face_net_forward(et_face_net *m, et_tensor *img, et_face_net_out *out) {
    const et_face_net_config *g = &m->cfg;
    memset(out, 0, sizeof *out);
    char si[128];
    ET_ASSERT(img->ndim == 4 && img->shape[1] == g->num_channels &&
                  img->shape[2] == g->image_size && img->shape[3] == g->image_size,
              "et_face_net_forward: img must be [B, %lld, %lld, %lld], got %s",
              (long long)g->num_channels, (long long)g->image_size, (long long)g->image_size,
              et_shape_str(img, si, sizeof si));
    if (m->frozen) et_no_grad_begin();
    const int64_t B = img->shape[0], G0 = g->image_size / g->patch_size, F = g->fuse_dim;
    const int nS = g->n_stages;
    // encoder
    et_tensor *pe = et_patch_embed(img, m->patch_w, m->patch_b);  // [B, G0 G0, E]
    et_tensor *x = et_layernorm(pe, m->patch_ln_w, m->patch_ln_b, g->eps);
    et_release(pe);
    x = reshape(x, 4, (int64_t[]){B, G0, G0, g->embed_dim});
    for (int i = 0; i < nS; i++) {
        win_plan plan[2] = {win_plan_make(g, x, g->heads[i], false), {0}};
        if (g->depths[i] > 1) plan[1] = win_plan_make(g, x, g->heads[i], true);
        for (int j = 0; j < g->depths[i]; j++) {  // odd blocks are the shifted ones
            et_tensor *nx = swin_block(g, &m->blocks[i][j], x, g->heads[i], &plan[j % 2]);
            et_release(x);
            x = nx;
        }
        win_plan_free(&plan[0]), win_plan_free(&plan[1]);
        out->stages[i] = et_retain(x);
        if (i < nS - 1) {
            et_tensor *nx = patch_merge(g, m, i, x);
            et_release(x);
            x = nx;
        }
    }
    et_release(x);
    // fusion
    const int64_t h0 = out->stages[0]->shape[1], w0 = out->stages[0]->shape[2];
    et_tensor *maps[ET_FACE_NET_MAX_STAGES];
    for (int i = 0; i < nS; i++) {
        et_tensor *s = out->stages[i];
        et_tensor *p = linear(&m->linear_c[i], s);  // [B, h, w, F]
        maps[nS - 1 - i] = et_resize_bilinear(p, h0, w0);
        et_release(p);
    }
    et_tensor *cat = nS > 1 ? et_concat(nS, maps, 3) : et_retain(maps[0]);
    for (int i = 0; i < nS; i++) et_release(maps[i]);
    et_tensor *fw = et_reshape(m->fuse_w, 2, (int64_t[]){F, F * nS});
    out->fused = et_linear(cat, fw, NULL);  // [B, h0, w0, F]
    et_release(cat), et_release(fw);
    // decoder
    et_tensor *pos = on_dev(image_pe(m, h0, w0), img);
    const int64_t T = ET_FACE_NET_TOKENS + g->n_mask_tokens;
    et_tensor *tl[ET_FACE_NET_TOKENS + 1];
    for (int t = 0; t < ET_FACE_NET_TOKENS; t++) tl[t] = m->task_tok[t];
    if (g->n_mask_tokens) tl[ET_FACE_NET_TOKENS] = m->mask_tok;
    et_tensor *tok = et_concat(ET_FACE_NET_TOKENS + (g->n_mask_tokens > 0), tl, 0);  // [T, F]
    et_tensor *ti = i32_tensor(B * T);
    for (int64_t k = 0; k < B * T; k++) ((int32_t *)et_data(ti))[k] = (int32_t)(k % T);
    et_tensor *qpe = reshape(et_gather_rows(tok, ti), 3, (int64_t[]){B, T, F});  // point embedding
    et_release(tok), et_release(ti);
    et_tensor *queries = et_retain(qpe);
    et_tensor *keys = et_reshape(out->fused, 3, (int64_t[]){B, h0 * w0, F});
    const double eps = 1e-5;  // nn.LayerNorm's default in SAM's decoder
    for (int l = 0; l < g->dec_depth; l++) {
        et_twoway_layer *d = &m->dec[l];
        if (l == 0) {  // skip_first_layer_pe: no residual
            et_tensor *a = face_attn(&d->self_attn, g->dec_heads, queries, queries, queries);
            et_release(queries);
            queries = et_layernorm(a, d->ln_w[0], d->ln_b[0], eps);
            et_release(a);
        } else {
            et_tensor *q = et_add(queries, qpe);
            et_tensor *a = face_attn(&d->self_attn, g->dec_heads, q, q, queries);
            et_release(q);
            queries = addln(queries, a, d->ln_w[0], d->ln_b[0], eps);
        }
        et_tensor *q = et_add(queries, qpe), *k = et_add_bcast(keys, pos);
        et_tensor *a = face_attn(&d->t2i, g->dec_heads, q, k, keys);
        et_release(q), et_release(k);
        queries = addln(queries, a, d->ln_w[1], d->ln_b[1], eps);
        et_tensor *h = linear(&d->lin1, queries), *rh = et_relu(h);
        et_tensor *mo = linear(&d->lin2, rh);
        et_release(h), et_release(rh);
        queries = addln(queries, mo, d->ln_w[2], d->ln_b[2], eps);
        q = et_add(queries, qpe), k = et_add_bcast(keys, pos);
        a = face_attn(&d->i2t, g->dec_heads, k, q, queries);
        et_release(q), et_release(k);
        keys = addln(keys, a, d->ln_w[3], d->ln_b[3], eps);
    }
    et_tensor *q = et_add(queries, qpe), *k = et_add_bcast(keys, pos);
    et_tensor *a = face_attn(&m->final_attn, g->dec_heads, q, k, keys);
    et_release(q), et_release(k);
    out->tokens = addln(queries, a, m->final_ln_w, m->final_ln_b, eps);
    out->keys = keys;
    et_release(qpe), et_release(pos);
    // heads on tokens 0 (landmarks), 4 (age), 5 (gender), 6 (race)
    static const int tok_of[4] = {0, 4, 5, 6};
    et_tensor **dst[4] = {&out->landmarks, &out->age, &out->gender, &out->race};
    for (int hh = 0; hh < 4; hh++) {
        et_tensor *n = et_narrow(out->tokens, 1, tok_of[hh], 1);
        et_tensor *t = et_reshape(n, 2, (int64_t[]){B, F});
        et_release(n);
        *dst[hh] = head_mlp(m->head[hh], t);
        et_release(t);
    }
    if (m->frozen) et_no_grad_end();
}

void et_face_net_out_free(et_face_net_out *o) {
    for (int i = 0; i < ET_FACE_NET_MAX_STAGES; i++) et_release(o->stages[i]);
    et_release(o->fused), et_release(o->tokens), et_release(o->keys);
    et_release(o->landmarks), et_release(o->age), et_release(o->gender), et_release(o->race);
    memset(o, 0, sizeof *o);
}

char *et_face_net_config_to_json(const et_face_net_config *g) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_type", "facexformer");
    cJSON_AddNumberToObject(o, "image_size", (double)g->image_size);
    cJSON_AddNumberToObject(o, "patch_size", (double)g->patch_size);
    cJSON_AddNumberToObject(o, "num_channels", (double)g->num_channels);
    cJSON_AddNumberToObject(o, "embed_dim", (double)g->embed_dim);
    cJSON *d = cJSON_AddArrayToObject(o, "depths"), *h = cJSON_AddArrayToObject(o, "num_heads");
    for (int i = 0; i < g->n_stages; i++) {
        cJSON_AddItemToArray(d, cJSON_CreateNumber((double)g->depths[i]));
        cJSON_AddItemToArray(h, cJSON_CreateNumber((double)g->heads[i]));
    }
    cJSON_AddNumberToObject(o, "window_size", (double)g->window);
    cJSON_AddNumberToObject(o, "mlp_ratio", g->mlp_ratio);
    cJSON_AddNumberToObject(o, "layer_norm_eps", g->eps);
    cJSON_AddNumberToObject(o, "fuse_dim", (double)g->fuse_dim);
    cJSON_AddNumberToObject(o, "decoder_depth", (double)g->dec_depth);
    cJSON_AddNumberToObject(o, "decoder_heads", (double)g->dec_heads);
    cJSON_AddNumberToObject(o, "decoder_mlp_dim", (double)g->dec_mlp);
    cJSON_AddNumberToObject(o, "attention_downsample_rate", (double)g->attn_down);
    cJSON_AddNumberToObject(o, "num_mask_tokens", (double)g->n_mask_tokens);
    cJSON *mn = cJSON_AddArrayToObject(o, "image_mean"),
          *sd = cJSON_AddArrayToObject(o, "image_std");
    for (int c = 0; c < 3; c++) {
        cJSON_AddItemToArray(mn, cJSON_CreateNumber((double)g->image_mean[c]));
        cJSON_AddItemToArray(sd, cJSON_CreateNumber((double)g->image_std[c]));
    }
    char *txt = cJSON_Print(o);
    cJSON_Delete(o);
    return txt;
}

et_status et_face_net_save(const et_face_net *m, const char *dir) {
    ET_TRY(et_mkdirs(dir));
    char path[4200];
    char *cfg = et_face_net_config_to_json(&m->cfg);
    snprintf(path, sizeof path, "%s/config.json", dir);
    et_status s = et_write_file_atomic(path, cfg, strlen(cfg));
    free(cfg);
    if (s) return s;
    const int n = m->n_params;
    const char **names = malloc(sizeof(*names) * (size_t)n);
    et_tensor **ts = malloc(sizeof(*ts) * (size_t)n);
    et_face_net_params(m, names, ts);
    et_no_grad_begin();  // f32 tensors are written as they are, others as f32 copies
    for (int i = 0; i < n; i++)
        ts[i] = ts[i]->dtype == ET_F32 ? et_retain(ts[i]) : et_cast(ts[i], ET_F32);
    et_no_grad_end();
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    s = et_st_save(path, n, names, ts, 0, NULL);
    for (int i = 0; i < n; i++) et_release(ts[i]);
    free(names), free(ts);
    return s;
}
