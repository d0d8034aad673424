// train/models/llama.c - see llama.h
#include "llama.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/fileio.h"
#include "core/ops.h"
#include "core/rng.h"

// ---- rope -----------------------------------------------------------------------

et_tensor *et_llama_rope_inv_freq(const et_llama_config *cfg) {
    et_tensor *inv = et_rope_inv_freq(cfg->head_dim, cfg->rope_theta);  // f32 [hd/2]
    float *f = ET_DATA(float, inv);
    int64_t n = inv->numel;
    if (cfg->rope_kind == ET_ROPE_LINEAR) {
        for (int64_t i = 0; i < n; i++) f[i] = f[i] / (float)cfg->rope_factor;
    } else if (cfg->rope_kind == ET_ROPE_LLAMA3) {
        // transformers' _compute_llama3_parameters, in f32 as torch computes it.
        const float factor = (float)cfg->rope_factor;
        const float low = (float)cfg->rope_low_freq_factor;
        const float span = (float)(cfg->rope_high_freq_factor - cfg->rope_low_freq_factor);
        const double old = (double)cfg->rope_original_max_pos;
        const float old_ctx = (float)old;
        const float low_freq_wavelen = (float)(old / cfg->rope_low_freq_factor);
        const float high_freq_wavelen = (float)(old / cfg->rope_high_freq_factor);
        const float two_pi = (float)(2.0 * M_PI);
        for (int64_t i = 0; i < n; i++) {
            float inv_f = f[i];
            float wavelen = two_pi / inv_f;
            float scaled = wavelen > low_freq_wavelen ? inv_f / factor : inv_f;
            bool medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
            if (medium) {
                float smooth = (old_ctx / wavelen - low) / span;
                scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
            }
            f[i] = scaled;
        }
    }
    return inv;
}

// ---- construction ---------------------------------------------------------------

static void name_linear(et_linear_layer *l, const char *fmt, int layer) {
    memset(l, 0, sizeof(*l));
    snprintf(l->name, sizeof l->name, fmt, layer);
}

et_llama *et_llama_alloc(const et_llama_config *cfg, et_dtype dtype) {
    et_llama *m = calloc(1, sizeof(*m));
    ET_ASSERT(m, "out of host memory");
    m->cfg = *cfg;
    m->weight_dtype = dtype;
    m->act_dtype = dtype;
    m->layers = calloc((size_t)cfg->num_hidden_layers, sizeof(*m->layers));
    ET_ASSERT(m->layers, "out of host memory");
    for (int i = 0; i < (int)cfg->num_hidden_layers; i++) {
        et_llama_layer *L = &m->layers[i];
        name_linear(&L->q_proj, "model.layers.%d.self_attn.q_proj", i);
        name_linear(&L->k_proj, "model.layers.%d.self_attn.k_proj", i);
        name_linear(&L->v_proj, "model.layers.%d.self_attn.v_proj", i);
        name_linear(&L->o_proj, "model.layers.%d.self_attn.o_proj", i);
        name_linear(&L->gate_proj, "model.layers.%d.mlp.gate_proj", i);
        name_linear(&L->up_proj, "model.layers.%d.mlp.up_proj", i);
        name_linear(&L->down_proj, "model.layers.%d.mlp.down_proj", i);
        L->ckpt.model = m;
        L->ckpt.layer = i;
    }
    name_linear(&m->lm_head, "lm_head", 0);
    m->inv_freq = et_llama_rope_inv_freq(cfg);
    return m;
}

static void each_linear(et_linear_layer *l, int64_t out, int64_t in, bool bias,
                        et_llama_weight_fn fn, void *ctx) {
    char name[200];
    snprintf(name, sizeof name, "%s.weight", l->name);
    fn(ctx, name, &l->weight, 2, out, in);
    if (!bias) return;
    snprintf(name, sizeof name, "%s.bias", l->name);
    fn(ctx, name, &l->bias, 1, out, 0);
}

// Every weight the config implies, in HF order, with its name, shape and destination.
void et_llama_for_each_weight(et_llama *m, et_llama_weight_fn fn, void *ctx) {
    const et_llama_config *g = &m->cfg;
    const int64_t H = g->hidden_size, I = g->intermediate_size, V = g->vocab_size;
    const int64_t qd = g->num_attention_heads * g->head_dim;
    const int64_t kd = g->num_key_value_heads * g->head_dim;
    const bool ab = g->attention_bias, mb = g->mlp_bias;
    char name[200];
    fn(ctx, "model.embed_tokens.weight", &m->embed_tokens, 2, V, H);
    for (int i = 0; i < (int)g->num_hidden_layers; i++) {
        et_llama_layer *L = &m->layers[i];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
        fn(ctx, name, &L->input_norm, 1, H, 0);
        each_linear(&L->q_proj, qd, H, ab, fn, ctx);
        each_linear(&L->k_proj, kd, H, ab, fn, ctx);
        each_linear(&L->v_proj, kd, H, ab, fn, ctx);
        each_linear(&L->o_proj, H, qd, ab, fn, ctx);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
        fn(ctx, name, &L->post_norm, 1, H, 0);
        each_linear(&L->gate_proj, I, H, mb, fn, ctx);
        each_linear(&L->up_proj, I, H, mb, fn, ctx);
        each_linear(&L->down_proj, H, I, mb, fn, ctx);
    }
    fn(ctx, "model.norm.weight", &m->norm, 1, H, 0);
    if (!g->tie_word_embeddings) each_linear(&m->lm_head, V, H, false, fn, ctx);
}

typedef struct {
    et_dtype dtype;
    double std;
    uint64_t seed, offset;
} random_init;

static void init_random(void *ctx, const char *name, et_tensor **dst, int ndim, int64_t d0,
                        int64_t d1) {
    random_init *r = ctx;
    const int64_t shape[2] = {d0, d1};
    et_tensor *t = et_empty(r->dtype, ndim, shape);
    size_t len = strlen(name);
    bool is_norm = len > 11 && strcmp(name + len - 11, "norm.weight") == 0;
    et_randn_(t, is_norm ? 1.0 : 0.0, is_norm ? 0.1 : r->std, r->seed, r->offset);
    r->offset += (uint64_t)t->numel;
    *dst = t;
}

et_llama *et_llama_new_random(const et_llama_config *cfg, et_dtype dtype, double std,
                              uint64_t seed) {
    et_llama *m = et_llama_alloc(cfg, dtype);
    random_init r = {dtype, std, seed, 0};
    et_llama_for_each_weight(m, init_random, &r);
    if (cfg->tie_word_embeddings) m->lm_head.weight = et_retain(m->embed_tokens);
    return m;
}

void et_llama_free(et_llama *m) {
    if (!m) return;
    for (int i = 0; i < (int)m->cfg.num_hidden_layers; i++) {
        et_llama_layer *L = &m->layers[i];
        et_release(L->input_norm);
        et_release(L->post_norm);
        et_linear_layer *ls[] = {&L->q_proj,    &L->k_proj,  &L->v_proj,   &L->o_proj,
                                 &L->gate_proj, &L->up_proj, &L->down_proj};
        for (size_t j = 0; j < sizeof ls / sizeof *ls; j++) et_linear_layer_free(ls[j]);
    }
    free(m->layers);
    et_release(m->embed_tokens);
    et_release(m->norm);
    et_linear_layer_free(&m->lm_head);
    et_release(m->inv_freq);
    free(m);
}

// ---- cache ----------------------------------------------------------------------

et_llama_cache *et_llama_cache_new(const et_llama *m, int64_t batch, int64_t capacity) {
    ET_ASSERT(batch > 0 && capacity > 0, "et_llama_cache_new: batch and capacity must be > 0");
    et_llama_cache *c = calloc(1, sizeof(*c));
    ET_ASSERT(c, "out of host memory");
    c->batch = batch;
    c->capacity = capacity;
    c->n_layers = (int)m->cfg.num_hidden_layers;
    c->k = calloc((size_t)c->n_layers, sizeof(*c->k));
    c->v = calloc((size_t)c->n_layers, sizeof(*c->v));
    ET_ASSERT(c->k && c->v, "out of host memory");
    const int64_t sh[4] = {batch, capacity, m->cfg.num_key_value_heads, m->cfg.head_dim};
    const et_device dev = m->embed_tokens->device;  // keys and values live with the model
    for (int i = 0; i < c->n_layers; i++) {
        c->k[i] = et_empty_on(dev, m->act_dtype, 4, sh);
        c->v[i] = et_empty_on(dev, m->act_dtype, 4, sh);
        et_fill_(c->k[i], 0);
        et_fill_(c->v[i], 0);
    }
    c->mask = et_zeros(ET_I32, 2, (int64_t[]){batch, capacity});
    return c;
}

void et_llama_cache_free(et_llama_cache *c) {
    if (!c) return;
    for (int i = 0; i < c->n_layers; i++) et_release(c->k[i]), et_release(c->v[i]);
    free(c->k);
    free(c->v);
    et_release(c->mask);
    free(c);
}

// dst [B, S_max, ...] rows [at, at+T) <- src [B, T, ...] (same dtype, contiguous).
static void cache_write(et_tensor *dst, const et_tensor *src, int64_t at) {
    ET_ASSERT(dst->dtype == src->dtype,
              "KV cache dtype %s, keys %s (set act_dtype before "
              "creating the cache)",
              et_dtype_name(dst->dtype), et_dtype_name(src->dtype));
    const int64_t B = src->shape[0], T = src->shape[1], S = dst->shape[1];
    const int64_t row = src->numel / (B * T);  // elements per position
    for (int64_t b = 0; b < B; b++) {          // views, so the copy runs where the cache lives
        et_tensor *d = et_view_raw(dst, 1, (int64_t[]){T * row}, (b * S + at) * row);
        et_tensor *s = et_view_raw(src, 1, (int64_t[]){T * row}, b * T * row);
        et_copy_(d, s);
        et_release(d), et_release(s);
    }
}

// ---- forward --------------------------------------------------------------------

static et_tensor *reshape3(et_tensor *x, int64_t a, int64_t b, int64_t c) {
    return et_reshape(x, 3, (int64_t[]){a, b, c});
}
static et_tensor *reshape4(et_tensor *x, int64_t a, int64_t b, int64_t c, int64_t d) {
    return et_reshape(x, 4, (int64_t[]){a, b, c, d});
}

// One decoder layer. x [B, T, H], pos i32 [B, T], mask [B, T] or NULL (ignored with a
// cache: the cache's mask covers every key). -> [B, T, H]
static et_tensor *layer_forward(et_llama *m, int li, et_tensor *x, et_tensor *pos, et_tensor *mask,
                                et_llama_cache *cache, et_rng_stream *rng) {
    const et_llama_config *g = &m->cfg;
    et_llama_layer *L = &m->layers[li];
    const int64_t B = x->shape[0], T = x->shape[1], nh = g->num_attention_heads,
                  nkv = g->num_key_value_heads, hd = g->head_dim;
    et_tensor *n1 = et_rmsnorm(x, L->input_norm, g->rms_norm_eps);  // [B, T, H]
    et_tensor *q = et_linear_layer_forward(&L->q_proj, n1, rng);    // [B, T, nh*hd]
    et_tensor *k = et_linear_layer_forward(&L->k_proj, n1, rng);    // [B, T, nkv*hd]
    et_tensor *v = et_linear_layer_forward(&L->v_proj, n1, rng);    // [B, T, nkv*hd]
    et_release(n1);
    et_tensor *q4 = reshape4(q, B, T, nh, hd), *k4 = reshape4(k, B, T, nkv, hd);
    et_tensor *v4 = reshape4(v, B, T, nkv, hd);
    et_release(q), et_release(k), et_release(v);
    et_tensor *qr = et_rope(q4, pos, m->inv_freq);  // [B, T, nh, hd]
    et_tensor *kr = et_rope(k4, pos, m->inv_freq);  // [B, T, nkv, hd]
    et_release(q4), et_release(k4);
    et_tensor *ks = kr, *vs = v4, *ms = mask;
    if (cache) {
        cache_write(cache->k[li], kr, cache->len);
        cache_write(cache->v[li], v4, cache->len);
        int64_t S = cache->len + T;
        ks = et_narrow(cache->k[li], 1, 0, S);  // [B, S, nkv, hd]
        vs = et_narrow(cache->v[li], 1, 0, S);
        ms = et_narrow(cache->mask, 1, 0, S);  // [B, S]
        et_release(kr), et_release(v4);
    }
    et_tensor *a = et_attention(qr, ks, vs, ms, true, 1.0 / sqrt((double)hd));  // [B,T,nh,hd]
    et_release(qr), et_release(ks), et_release(vs);
    if (cache) et_release(ms);
    et_tensor *a3 = reshape3(a, B, T, nh * hd);
    et_release(a);
    et_tensor *o = et_linear_layer_forward(&L->o_proj, a3, rng);  // [B, T, H]
    et_release(a3);
    et_tensor *h;  // x + o, and its norm in the same pass
    et_tensor *n2 = et_add_rmsnorm(x, o, L->post_norm, g->rms_norm_eps, &h);
    et_release(o);
    et_tensor *gt = et_linear_layer_forward(&L->gate_proj, n2, rng);  // [B, T, I]
    et_tensor *up = et_linear_layer_forward(&L->up_proj, n2, rng);    // [B, T, I]
    et_release(n2);
    et_tensor *s = et_swiglu(gt, up);
    et_release(gt), et_release(up);
    et_tensor *d = et_linear_layer_forward(&L->down_proj, s, rng);  // [B, T, H]
    et_release(s);
    et_tensor *out = et_add(h, d);
    et_release(h), et_release(d);
    return out;
}

// et_checkpoint body: inputs {x, pos, mask-or-NULL}.
static et_tensor *layer_block(void *ctx, int n, et_tensor *const *in) {
    (void)n;
    et_llama_ckpt_ctx *c = ctx;
    et_rng_stream local = c->rng;
    et_tensor *y =
        layer_forward(c->model, c->layer, in[0], in[1], in[2], NULL, c->has_rng ? &local : NULL);
    c->rng_end = local.offset;
    return y;
}

et_tensor *et_llama_positions(et_tensor *mask, int64_t offset) {
    ET_ASSERT(mask->ndim == 2 && (mask->dtype == ET_I32 || mask->dtype == ET_U8),
              "et_llama_positions: mask must be i32/u8 [B, T]");
    et_tensor *pos = et_empty(ET_I32, 2, mask->shape);
    int32_t *p = ET_DATA(int32_t, pos);
    const int64_t B = mask->shape[0], T = mask->shape[1];
    for (int64_t b = 0; b < B; b++) {
        int64_t c = 0;
        for (int64_t t = 0; t < T; t++) {
            bool on = et_get(mask, b * T + t) != 0;
            c += on;
            p[b * T + t] = (int32_t)(on ? offset + c - 1 : 1);
        }
    }
    return pos;
}

static et_tensor *default_positions(int64_t B, int64_t T, int64_t offset) {
    et_tensor *pos = et_empty(ET_I32, 2, (int64_t[]){B, T});
    int32_t *p = ET_DATA(int32_t, pos);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) p[b * T + t] = (int32_t)(offset + t);
    return pos;
}

et_tensor *et_llama_embed(et_llama *m, et_tensor *ids) {
    et_tensor *x = et_embedding(m->embed_tokens, ids);
    if (x->dtype == m->act_dtype) return x;
    et_tensor *y = et_cast(x, m->act_dtype);
    et_release(x);
    return y;
}

et_tensor *et_llama_forward_embeds(et_llama *m, et_tensor *x, et_tensor *pos, et_tensor *key_mask,
                                   et_llama_cache *cache, et_rng_stream *rng) {
    const et_llama_config *g = &m->cfg;
    ET_ASSERT(x->ndim == 3 && x->shape[2] == g->hidden_size,
              "et_llama_forward_embeds: x must be [B, T, %lld]", (long long)g->hidden_size);
    const int64_t B = x->shape[0], T = x->shape[1];
    ET_ASSERT(!pos || (pos->ndim == 2 && pos->shape[0] == B && pos->shape[1] == T &&
                       pos->dtype == ET_I32),
              "et_llama_forward_embeds: pos must be i32 [B, T]");
    ET_ASSERT(
        !key_mask || (key_mask->ndim == 2 && key_mask->shape[0] == B && key_mask->shape[1] == T),
        "et_llama_forward_embeds: key_mask must be [B, T] (new tokens only)");
    if (cache) {
        ET_ASSERT(cache->batch == B, "KV cache batch %lld, input batch %lld",
                  (long long)cache->batch, (long long)B);
        ET_ASSERT(cache->len + T <= cache->capacity,
                  "KV cache full: %lld cached + %lld new > capacity %lld", (long long)cache->len,
                  (long long)T, (long long)cache->capacity);
        et_no_grad_begin();
        int32_t *cm = ET_DATA(int32_t, cache->mask);
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++)
                cm[b * cache->capacity + cache->len + t] =
                    key_mask ? (et_get(key_mask, b * T + t) != 0) : 1;
    }
    et_tensor *p = pos ? et_retain(pos) : default_positions(B, T, cache ? cache->len : 0);
    et_tensor *h = et_retain(x);
    for (int i = 0; i < (int)g->num_hidden_layers; i++) {
        et_llama_layer *L = &m->layers[i];
        et_tensor *y;
        if (L->recompute && !cache && et_grad_enabled()) {
            L->ckpt.has_rng = rng != NULL;
            if (rng) L->ckpt.rng = *rng;
            et_tensor *in[3] = {h, p, key_mask};
            y = et_checkpoint(layer_block, &L->ckpt, 3, in);
            if (rng) rng->offset = L->ckpt.rng_end;
        } else {
            y = layer_forward(m, i, h, p, key_mask, cache, rng);
        }
        et_release(h);
        h = y;
    }
    et_release(p);
    et_tensor *n = et_rmsnorm(h, m->norm, g->rms_norm_eps);  // [B, T, H]
    et_release(h);
    et_tensor *logits = et_linear_layer_forward(&m->lm_head, n, rng);  // [B, T, V]
    et_release(n);
    if (cache) {
        cache->len += T;
        et_no_grad_end();
    }
    return logits;
}

et_tensor *et_llama_forward(et_llama *m, et_tensor *ids, et_tensor *pos, et_tensor *key_mask,
                            et_llama_cache *cache, et_rng_stream *rng) {
    ET_ASSERT(ids->dtype == ET_I32 && ids->ndim == 2, "et_llama_forward: ids must be i32 [B, T]");
    if (cache) et_no_grad_begin();
    et_tensor *x = et_llama_embed(m, ids);  // [B, T, H]
    if (cache) et_no_grad_end();
    et_tensor *logits = et_llama_forward_embeds(m, x, pos, key_mask, cache, rng);
    et_release(x);
    return logits;
}

et_tensor *et_llama_loss(et_tensor *logits, et_tensor *labels) {
    ET_ASSERT(logits->ndim == 3 && labels->ndim == 2 && labels->dtype == ET_I32 &&
                  labels->shape[0] == logits->shape[0] && labels->shape[1] == logits->shape[1],
              "et_llama_loss: logits [B, T, V] and labels i32 [B, T]");
    const int64_t B = logits->shape[0], T = logits->shape[1], V = logits->shape[2];
    if (T < 2) return et_zeros(ET_F32, 0, NULL);     // no target to predict: 0, as HF's empty mean
    et_tensor *sl = et_narrow(logits, 1, 0, T - 1);  // [B, T-1, V]
    et_tensor *s2 = et_reshape(sl, 2, (int64_t[]){B * (T - 1), V});
    et_tensor *tg = et_empty(ET_I32, 1, (int64_t[]){B * (T - 1)});
    const int32_t *lab = ET_DATA(const int32_t, labels);
    int32_t *t = ET_DATA(int32_t, tg);
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i + 1 < T; i++) t[b * (T - 1) + i] = lab[b * T + i + 1];
    et_tensor *loss = et_cross_entropy(s2, tg, -100);
    et_release(sl), et_release(s2), et_release(tg);
    return loss;
}
