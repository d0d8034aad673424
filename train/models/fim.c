// train/models/fim.c - see fim.h
#include "fim.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/device.h"
#include "core/ops.h"
#include "core/rng.h"

enum { I_NORMAL, I_ONES, I_ZEROS, I_TORCH };

// iBUG-68 regions: jaw, brows, nose, eyes, mouth (first index, one past the last).
static const int k_region[ET_FIM_REGIONS][2] = {{0, 17}, {17, 27}, {27, 36}, {36, 48}, {48, 68}};

typedef struct {
    et_fim *f;
    int cap;
    uint64_t seed, off;
    int64_t fan_in;  // of the Linear being added (I_TORCH: U(-1/sqrt(fan_in), 1/sqrt(fan_in)))
} init_t;

static void add(init_t *c, et_tensor **slot, int kind, int ndim, const int64_t *shape,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add(init_t *c, et_tensor **slot, int kind, int ndim, const int64_t *shape,
                const char *fmt, ...) {
    et_fim *f = c->f;
    if (f->n_params == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        f->names = realloc(f->names, sizeof(*f->names) * (size_t)c->cap);
        f->slots = realloc(f->slots, sizeof(*f->slots) * (size_t)c->cap);
        ET_ASSERT(f->names && f->slots, "fim: out of memory");
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->names[f->n_params], sizeof f->names[0], fmt, ap);
    va_end(ap);
    et_tensor *t = et_zeros(ET_F32, ndim, shape);
    if (kind == I_NORMAL) {
        et_randn_(t, 0.0, 0.02, c->seed, c->off);
        c->off += (uint64_t)t->numel;
    } else if (kind == I_TORCH) {  // torch nn.Linear's default, weights and biases alike
        const double b = 1.0 / sqrt((double)c->fan_in);
        et_rand_uniform_(t, -b, b, c->seed, c->off);
        c->off += (uint64_t)t->numel;
    } else if (kind == I_ONES) {
        float *d = et_data(t);
        for (int64_t i = 0; i < t->numel; i++) d[i] = 1.0f;
    }
    et_set_requires_grad(t, true);
    *slot = t;
    f->slots[f->n_params++] = slot;
}

static void add_linear(init_t *c, et_linear_layer *l, int64_t out, int64_t in, const char *name) {
    snprintf(l->name, sizeof l->name, "model.fim.%s", name);
    c->fan_in = in;
    add(c, &l->weight, I_TORCH, 2, (int64_t[]){out, in}, "model.fim.%s.weight", name);
    add(c, &l->bias, I_TORCH, 1, (int64_t[]){out}, "model.fim.%s.bias", name);
}

et_status et_fim_init(et_fim *f, const et_fim_config *cfg, uint64_t seed) {
    memset(f, 0, sizeof *f);
    if (!cfg->global && !cfg->local)
        return et_err(ET_ERR_INVALID, "fim.global and fim.local are both false: no clue to mine");
    if (cfg->queries < 1 || cfg->layers < 1 || cfg->width < 1 || cfg->heads < 1)
        return et_err(ET_ERR_INVALID,
                      "fim.queries, fim.layers, fim.width and fim.heads must be >= 1");
    if (cfg->width % cfg->heads)
        return et_err(ET_ERR_INVALID, "fim.width %lld is not a multiple of fim.heads %lld",
                      (long long)cfg->width, (long long)cfg->heads);
    if (cfg->face_dim < 1 || cfg->n_tokens < 1)
        return et_err(ET_ERR_INVALID, "fim: the face network's width and token count must be >= 1");
    f->cfg = *cfg;
    const int64_t F = cfg->face_dim, W = cfg->width, K = cfg->queries;
    init_t c = {f, 0, seed, 0, 1};
    add(&c, &f->clue_ln_w, I_ONES, 1, (int64_t[]){F}, "model.fim.clue_norm.weight");
    add(&c, &f->clue_ln_b, I_ZEROS, 1, (int64_t[]){F}, "model.fim.clue_norm.bias");
    add_linear(&c, &f->clue_proj, W, F, "clue_proj");
    add(&c, &f->lm_embed, I_NORMAL, 2, (int64_t[]){ET_FIM_LANDMARKS, F},
        "model.fim.landmark_embed");
    add(&c, &f->type_embed, I_NORMAL, 2, (int64_t[]){2, F}, "model.fim.type_embed");
    add(&c, &f->queries, I_NORMAL, 2, (int64_t[]){K, W}, "model.fim.queries");
    add_linear(&c, &f->shape_proj, F, 2 * ET_FIM_LANDMARKS, "shape_proj");
    add_linear(&c, &f->attr_proj, F, ET_FIM_ATTRS, "attr_proj");
    f->layers = calloc((size_t)cfg->layers, sizeof *f->layers);
    for (int l = 0; l < cfg->layers; l++) {
        et_fim_layer *y = &f->layers[l];
        char nm[64];
        for (int k = 0; k < 3; k++) {
            add(&c, &y->ln_w[k], I_ONES, 1, (int64_t[]){W}, "model.fim.layers.%d.norm%d.weight", l,
                k + 1);
            add(&c, &y->ln_b[k], I_ZEROS, 1, (int64_t[]){W}, "model.fim.layers.%d.norm%d.bias", l,
                k + 1);
        }
        et_linear_layer *lin[8] = {&y->sq, &y->sk, &y->sv, &y->so, &y->cq, &y->ck, &y->cv, &y->co};
        static const char *const ln[8] = {
            "self_attn.q_proj",  "self_attn.k_proj",  "self_attn.v_proj",  "self_attn.out_proj",
            "cross_attn.q_proj", "cross_attn.k_proj", "cross_attn.v_proj", "cross_attn.out_proj"};
        for (int k = 0; k < 8; k++) {
            snprintf(nm, sizeof nm, "layers.%d.%s", l, ln[k]);
            add_linear(&c, lin[k], W, W, nm);
        }
        snprintf(nm, sizeof nm, "layers.%d.mlp.fc1", l);
        add_linear(&c, &y->fc1, 4 * W, W, nm);
        snprintf(nm, sizeof nm, "layers.%d.mlp.fc2", l);
        add_linear(&c, &y->fc2, W, 4 * W, nm);
    }
    add(&c, &f->final_w, I_ONES, 1, (int64_t[]){W}, "model.fim.norm.weight");
    add(&c, &f->final_b, I_ZEROS, 1, (int64_t[]){W}, "model.fim.norm.bias");
    return NULL;
}

int et_fim_params(const et_fim *f, const char **names, et_tensor **tensors) {
    for (int i = 0; i < f->n_params; i++) {
        if (names) names[i] = f->names[i];
        if (tensors) tensors[i] = *f->slots[i];
    }
    return f->n_params;
}

void et_fim_free(et_fim *f) {
    for (int i = 0; i < f->n_params; i++) {
        et_release(*f->slots[i]);
        *f->slots[i] = NULL;
    }
    free(f->names), free(f->slots), free(f->layers);
    memset(f, 0, sizeof *f);
}

// x [B, n, F] + row r of the type embedding.
static et_tensor *add_type(et_fim *f, et_tensor *x, int r) {
    et_tensor *row = et_narrow(f->type_embed, 0, r, 1);
    et_tensor *v = et_reshape(row, 1, (int64_t[]){f->cfg.face_dim});
    et_tensor *y = et_add_bcast(x, v);
    et_release(row), et_release(v);
    return y;
}

void et_fim_raw(const et_fim_config *cfg, et_tensor *fused, et_tensor *tokens, et_tensor *landmarks,
                et_tensor **global, et_tensor **local) {
    const int64_t B = fused->shape[0], h = fused->shape[1], w = fused->shape[2], F = cfg->face_dim;
    char s1[96], s2[96];
    ET_ASSERT(fused->ndim == 4 && fused->shape[3] == F &&
                  (!global ||
                   (tokens && tokens->ndim == 3 && tokens->shape[0] == B && tokens->shape[2] == F)),
              "et_fim_raw: fused [B, h, w, %lld] and tokens [B, T, %lld] expected, got %s and %s",
              (long long)F, (long long)F, et_shape_str(fused, s1, sizeof s1),
              tokens ? et_shape_str(tokens, s2, sizeof s2) : "none");
    if (global) {
        et_tensor *flat = et_reshape(fused, 3, (int64_t[]){B, h * w, F});
        et_tensor *mean = et_mean_pool(flat, NULL);  // [B, F]
        et_tensor *m3 = et_reshape(mean, 3, (int64_t[]){B, 1, F});
        *global = et_concat(2, (et_tensor *[]){tokens, m3}, 1);
        et_release(flat), et_release(mean), et_release(m3);
    }
    if (local) {
        ET_ASSERT(landmarks && landmarks->numel == B * 2 * ET_FIM_LANDMARKS,
                  "et_fim_raw: local clues need landmarks [B, %d]", 2 * ET_FIM_LANDMARKS);
        et_tensor *pts = et_reshape(landmarks, 3, (int64_t[]){B, ET_FIM_LANDMARKS, 2});
        *local = et_bilinear_sample(fused, pts);  // [B, 68, F]
        et_release(pts);
    }
}

// x [B, D] -> Linear -> [B, 1, F]
static et_tensor *vector_row(et_linear_layer *l, et_tensor *x) {
    et_tensor *x3 = et_reshape(x, 3, (int64_t[]){x->shape[0], 1, x->numel / x->shape[0]});
    et_tensor *y = et_linear_layer_forward(l, x3, NULL);
    et_release(x3);
    return y;
}

// rows then one more row [B, 1, F] (releasing both)
static et_tensor *append_row(et_tensor *rows, et_tensor *row) {
    et_tensor *y = et_concat(2, (et_tensor *[]){rows, row}, 1);
    et_release(rows), et_release(row);
    return y;
}

// *cond += row (a new reference kept in *cond)
static void add_cond(et_tensor **cond, et_tensor *row) {
    if (!cond) return;
    if (!*cond) {
        *cond = et_retain(row);
        return;
    }
    et_tensor *s = et_add(*cond, row);
    et_release(*cond);
    *cond = s;
}

et_tensor *et_fim_clues_from(et_fim *f, et_tensor *global, et_tensor *local, et_tensor *point_pe,
                             et_tensor *points, et_tensor *attrs, et_tensor **cond) {
    const int64_t F = f->cfg.face_dim;
    et_tensor *parts[2] = {NULL, NULL};
    int np = 0;
    if (cond) *cond = NULL;
    if (f->cfg.global) {
        ET_ASSERT(global && global->ndim == 3 && global->shape[2] == F,
                  "et_fim_clues_from: global rows [B, n, %lld] expected", (long long)F);
        et_tensor *g = et_retain(global);
        if (attrs) {
            ET_ASSERT(attrs->numel == global->shape[0] * ET_FIM_ATTRS,
                      "et_fim_clues_from: attrs [B, %d] expected", ET_FIM_ATTRS);
            et_tensor *row = vector_row(&f->attr_proj, attrs);
            add_cond(cond, row);
            g = append_row(g, row);
        }
        parts[np++] = add_type(f, g, 0);
        et_release(g);
    }
    if (f->cfg.local) {
        char s3[96];
        ET_ASSERT(local && local->ndim == 3 && local->shape[1] == ET_FIM_LANDMARKS &&
                      local->shape[2] == F,
                  "et_fim_clues_from: local rows [B, 68, %lld] expected", (long long)F);
        const int64_t B = local->shape[0];
        et_tensor *loc = et_add_bcast(local, f->lm_embed);
        if (point_pe) {
            ET_ASSERT(point_pe->ndim == 3 && point_pe->shape[0] == B &&
                          point_pe->shape[1] == ET_FIM_LANDMARKS && point_pe->shape[2] == F,
                      "et_fim_clues_from: point_pe [B, 68, %lld] expected, got %s", (long long)F,
                      et_shape_str(point_pe, s3, sizeof s3));
            et_tensor *lp = et_add(loc, point_pe);
            et_release(loc);
            loc = lp;
        }
        if (f->cfg.local_pool) {  // region means: [B, F, 68] x [68, 5] -> [B, 5, F]
            et_tensor *P = et_zeros(loc->dtype, 2, (int64_t[]){ET_FIM_LANDMARKS, ET_FIM_REGIONS});
            for (int r = 0; r < ET_FIM_REGIONS; r++)
                for (int i = k_region[r][0]; i < k_region[r][1]; i++) {
                    const double v = 1.0 / (k_region[r][1] - k_region[r][0]);
                    if (P->dtype == ET_F64)
                        ((double *)et_data(P))[i * ET_FIM_REGIONS + r] = v;
                    else
                        ((float *)et_data(P))[i * ET_FIM_REGIONS + r] = (float)v;
                }
            if (loc->device.type != ET_CPU) {
                et_tensor *d = et_to_device(P, loc->device);
                et_release(P);
                P = d;
            }
            et_tensor *lt = et_permute(loc, 3, (const int[]){0, 2, 1});
            et_tensor *pooled = et_matmul(lt, P, false, false);  // [B, F, 5]
            et_release(loc), et_release(lt), et_release(P);
            loc = et_permute(pooled, 3, (const int[]){0, 2, 1});
            et_release(pooled);
        }
        if (points) {
            ET_ASSERT(points->numel == B * 2 * ET_FIM_LANDMARKS,
                      "et_fim_clues_from: points [B, %d] expected", 2 * ET_FIM_LANDMARKS);
            et_tensor *row = vector_row(&f->shape_proj, points);
            add_cond(cond, row);
            loc = append_row(loc, row);
        }
        parts[np++] = add_type(f, loc, 1);
        et_release(loc);
    }
    if (np == 1) return parts[0];
    et_tensor *all = et_concat(2, parts, 1);
    et_release(parts[0]), et_release(parts[1]);
    return all;
}

et_tensor *et_fim_clues(et_fim *f, et_tensor *fused, et_tensor *tokens, et_tensor *landmarks,
                        et_tensor *point_pe, et_tensor *attrs, et_tensor **cond) {
    et_tensor *g = NULL, *l = NULL;
    et_fim_raw(&f->cfg, fused, tokens, landmarks, f->cfg.global ? &g : NULL,
               f->cfg.local ? &l : NULL);
    et_tensor *c =
        et_fim_clues_from(f, g, l, point_pe, f->cfg.local ? landmarks : NULL, attrs, cond);
    et_release(g), et_release(l);
    return c;
}

static et_tensor *ln(et_tensor *x, et_tensor *w, et_tensor *b) {
    return et_layernorm(x, w, b, 1e-5);
}

// q + d (releasing both)
static et_tensor *residual(et_tensor *q, et_tensor *d) {
    et_tensor *y = et_add(q, d);
    et_release(q), et_release(d);
    return y;
}

et_tensor *et_fim_forward(et_fim *f, et_tensor *clues, et_tensor *cond) {
    const et_fim_config *g = &f->cfg;
    const int64_t B = clues->shape[0], K = g->queries, W = g->width;
    // BLIP-2's ln_vision: the clues (network features, position codes, vector rows) on one
    // scale before the aggregator reads them
    et_tensor *cn = ln(clues, f->clue_ln_w, f->clue_ln_b);
    et_tensor *c = et_linear_layer_forward(&f->clue_proj, cn, NULL);  // [B, n, W]
    et_release(cn);
    et_tensor *idx = et_empty(ET_I32, 1, (int64_t[]){B * K});
    for (int64_t i = 0; i < B * K; i++) ((int32_t *)et_data(idx))[i] = (int32_t)(i % K);
    et_tensor *qr = et_gather_rows(f->queries, idx);
    et_release(idx);
    et_tensor *q = et_reshape(qr, 3, (int64_t[]){B, K, W});
    et_release(qr);
    if (cond) {  // every query starts from the face's vector clues: [B, 1, F] -> [B, K, W]
        et_tensor *cn2 = ln(cond, f->clue_ln_w, f->clue_ln_b);
        et_tensor *cw = et_linear_layer_forward(&f->clue_proj, cn2, NULL);
        et_tensor *rows = et_reshape(cw, 2, (int64_t[]){B, W});
        et_tensor *ri = et_empty(ET_I32, 1, (int64_t[]){B * K});
        for (int64_t i = 0; i < B * K; i++) ((int32_t *)et_data(ri))[i] = (int32_t)(i / K);
        et_tensor *rp = et_gather_rows(rows, ri);
        et_tensor *r3 = et_reshape(rp, 3, (int64_t[]){B, K, W});
        q = residual(q, r3);
        et_release(cn2), et_release(cw), et_release(rows), et_release(ri), et_release(rp);
    }
    for (int l = 0; l < g->layers; l++) {
        et_fim_layer *y = &f->layers[l];
        et_tensor *h = ln(q, y->ln_w[0], y->ln_b[0]);
        q = residual(q, et_mha(&y->sq, &y->sk, &y->sv, &y->so, g->heads, h, h, h));
        et_release(h);
        h = ln(q, y->ln_w[1], y->ln_b[1]);
        q = residual(q, et_mha(&y->cq, &y->ck, &y->cv, &y->co, g->heads, h, c, c));
        et_release(h);
        h = ln(q, y->ln_w[2], y->ln_b[2]);
        et_tensor *a = et_linear_layer_forward(&y->fc1, h, NULL), *ga = et_gelu(a);
        et_tensor *m = et_linear_layer_forward(&y->fc2, ga, NULL);
        et_release(h), et_release(a), et_release(ga);
        q = residual(q, m);
    }
    et_tensor *out = ln(q, f->final_w, f->final_b);
    et_release(q), et_release(c);
    return out;
}
