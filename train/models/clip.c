// train/models/clip.c - see clip.h
#include "clip.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/fileio.h"
#include "core/ops.h"
#include "core/rng.h"

// ---- config ---------------------------------------------------------------------

static et_status cfg_int(const cJSON *o, const char *key, int64_t def, int64_t *out,
                         const char *what) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return NULL;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < 1 ||
        j->valuedouble > 1e9)
        return et_err(ET_ERR_INVALID, "%s: vision config field \"%s\" must be a positive integer",
                      what, key);
    *out = (int64_t)j->valuedouble;
    return NULL;
}

et_status et_clip_config_from_json(const char *json, const char *what, et_clip_config *out) {
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return et_err(ET_ERR_FORMAT, "%s: not a JSON object", what);
    }
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    if (o && !cJSON_IsObject(o)) {
        cJSON_Delete(root);
        return et_err(ET_ERR_FORMAT, "%s: \"vision_config\" must be an object", what);
    }
    if (!o) o = root;
    et_clip_config c = {0};
    et_status s = NULL;
    if (!s) s = cfg_int(o, "hidden_size", 768, &c.hidden_size, what);
    if (!s) s = cfg_int(o, "intermediate_size", 3072, &c.intermediate_size, what);
    if (!s) s = cfg_int(o, "num_hidden_layers", 12, &c.num_layers, what);
    if (!s) s = cfg_int(o, "num_attention_heads", 12, &c.num_heads, what);
    if (!s) s = cfg_int(o, "num_channels", 3, &c.num_channels, what);
    if (!s) s = cfg_int(o, "image_size", 224, &c.image_size, what);
    if (!s) s = cfg_int(o, "patch_size", 32, &c.patch_size, what);
    c.layer_norm_eps = 1e-5;
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(o, "layer_norm_eps");
    if (!s && eps && !cJSON_IsNull(eps)) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0 && eps->valuedouble < 1))
            s = et_err(ET_ERR_INVALID, "%s: \"layer_norm_eps\" must be a number in (0, 1)", what);
        else
            c.layer_norm_eps = eps->valuedouble;
    }
    c.act = ET_CLIP_QUICK_GELU;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");
    if (!s && act && !cJSON_IsNull(act)) {
        if (cJSON_IsString(act) && !strcmp(act->valuestring, "quick_gelu"))
            c.act = ET_CLIP_QUICK_GELU;
        else if (cJSON_IsString(act) && !strcmp(act->valuestring, "gelu"))
            c.act = ET_CLIP_GELU;
        else
            s = et_err(ET_ERR_UNSUPPORTED, "%s: \"hidden_act\" must be \"quick_gelu\" or \"gelu\"",
                       what);
    }
    if (!s && c.hidden_size % c.num_heads)
        s = et_err(ET_ERR_INVALID,
                   "%s: hidden_size %lld is not a multiple of "
                   "num_attention_heads %lld",
                   what, (long long)c.hidden_size, (long long)c.num_heads);
    if (!s && c.image_size % c.patch_size)
        s = et_err(ET_ERR_INVALID, "%s: image_size %lld is not a multiple of patch_size %lld", what,
                   (long long)c.image_size, (long long)c.patch_size);
    cJSON_Delete(root);
    if (!s) *out = c;
    return s;
}

et_status et_clip_config_load(const char *path, et_clip_config *out) {
    char *text = NULL;
    ET_TRY(et_read_file(path, ET_CONFIG_MAX_BYTES, &text, NULL));
    et_status s = et_clip_config_from_json(text, path, out);
    free(text);
    return s;
}

// ---- weights --------------------------------------------------------------------

typedef struct {
    et_st_file *f;
    et_st_index *ix;
} src_t;

static int src_count(const src_t *s) {
    return s->f ? et_st_num_tensors(s->f) : et_st_index_num_tensors(s->ix);
}
static const char *src_name(const src_t *s, int i) {
    return s->f ? et_st_name(s->f, i) : et_st_index_name(s->ix, i);
}
static et_status src_info(const src_t *s, const char *name, et_st_info *out) {
    return s->f ? et_st_info_of(s->f, name, out) : et_st_index_info_of(s->ix, name, out);
}
static et_status src_load(src_t *s, const char *name, et_tensor **out) {
    return s->f ? et_st_load(s->f, name, out) : et_st_index_load(s->ix, name, out);
}

// Appends ", item" to an error list, keeping it within the status message size.
static void list_add(char *buf, size_t cap, const char *item) {
    size_t n = strlen(buf);
    if (n + 8 >= cap) return;
    int w = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", item);
    if (w < 0 || (size_t)w >= cap - n) snprintf(buf + (cap > 5 ? cap - 5 : 0), 5, "...");
}

typedef struct {
    char name[96];  // relative to the full prefix
    int ndim;
    int64_t shape[4];
    et_tensor **dst;
} want_t;

static void want(want_t *w, int *n, et_tensor **dst, int ndim, int64_t d0, int64_t d1, int64_t d2,
                 int64_t d3, const char *fmt, int layer) {
    want_t *e = &w[(*n)++];
    snprintf(e->name, sizeof e->name, fmt, layer);
    e->ndim = ndim;
    e->shape[0] = d0, e->shape[1] = d1, e->shape[2] = d2, e->shape[3] = d3;
    e->dst = dst;
}

static void set_linear_name(et_linear_layer *l, const char *prefix, int layer, const char *mod) {
    snprintf(l->name, sizeof l->name, "%sencoder.layers.%d.%s", prefix, layer, mod);
}

// The tower's tensors (relative names, shapes, destinations); layer names get `full`.
static want_t *build_wants(et_clip_vision *m, const char *full, int *n_out) {
    const et_clip_config *c = &m->cfg;
    const int64_t D = c->hidden_size, I = c->intermediate_size, C = c->num_channels;
    const int64_t P = c->patch_size, G = c->image_size / c->patch_size;
    const int L = (int)c->num_layers;
    m->layers = calloc((size_t)L, sizeof *m->layers);
    int nw = 0, cap = 5 + 16 * L;
    want_t *w = calloc((size_t)cap, sizeof *w);
    want(w, &nw, &m->class_embedding, 1, D, 0, 0, 0, "embeddings.class_embedding", 0);
    want(w, &nw, &m->patch_weight, 4, D, C, P, P, "embeddings.patch_embedding.weight", 0);
    want(w, &nw, &m->pos_embedding, 2, G * G + 1, D, 0, 0, "embeddings.position_embedding.weight",
         0);
    want(w, &nw, &m->pre_ln_w, 1, D, 0, 0, 0, "pre_layrnorm.weight", 0);
    want(w, &nw, &m->pre_ln_b, 1, D, 0, 0, 0, "pre_layrnorm.bias", 0);
    for (int l = 0; l < L; l++) {
        et_clip_layer *y = &m->layers[l];
        struct {
            et_linear_layer *ll;
            const char *mod;
            int64_t out, in;
        } lin[6] = {
            {&y->q, "self_attn.q_proj", D, D}, {&y->k, "self_attn.k_proj", D, D},
            {&y->v, "self_attn.v_proj", D, D}, {&y->o, "self_attn.out_proj", D, D},
            {&y->fc1, "mlp.fc1", I, D},        {&y->fc2, "mlp.fc2", D, I},
        };
        for (int j = 0; j < 6; j++) {
            char fmt[96];
            set_linear_name(lin[j].ll, full, l, lin[j].mod);
            snprintf(fmt, sizeof fmt, "encoder.layers.%%d.%s.weight", lin[j].mod);
            want(w, &nw, &lin[j].ll->weight, 2, lin[j].out, lin[j].in, 0, 0, fmt, l);
            snprintf(fmt, sizeof fmt, "encoder.layers.%%d.%s.bias", lin[j].mod);
            want(w, &nw, &lin[j].ll->bias, 1, lin[j].out, 0, 0, 0, fmt, l);
        }
        want(w, &nw, &y->ln1_w, 1, D, 0, 0, 0, "encoder.layers.%d.layer_norm1.weight", l);
        want(w, &nw, &y->ln1_b, 1, D, 0, 0, 0, "encoder.layers.%d.layer_norm1.bias", l);
        want(w, &nw, &y->ln2_w, 1, D, 0, 0, 0, "encoder.layers.%d.layer_norm2.weight", l);
        want(w, &nw, &y->ln2_b, 1, D, 0, 0, 0, "encoder.layers.%d.layer_norm2.bias", l);
    }
    *n_out = nw;
    return w;
}

et_status et_clip_vision_load_weights(et_clip_vision *m, et_st_file *f, et_st_index *ix,
                                      const char *prefix) {
    ET_ASSERT((f != NULL) != (ix != NULL), "et_clip_vision_load_weights: pass a file or an index");
    const et_clip_config *c = &m->cfg;
    ET_ASSERT(c->hidden_size > 0 && c->num_layers > 0, "et_clip_vision_load_weights: set m->cfg");
    src_t src = {f, ix};
    const char *what = f ? et_st_path(f) : "sharded checkpoint";
    static const char k_anchor[] = "vision_model.embeddings.class_embedding";
    char full[128] = "";
    if (prefix && *prefix) {
        int w = snprintf(full, sizeof full, "%svision_model.", prefix);
        if (w < 0 || (size_t)w >= sizeof full)
            return et_err(ET_ERR_INVALID, "CLIP weight prefix \"%s\" is too long", prefix);
    } else {
        int found = 0;
        size_t la = strlen(k_anchor);
        for (int i = 0; i < src_count(&src); i++) {
            const char *nm = src_name(&src, i);
            size_t ln = strlen(nm);
            if (ln < la || strcmp(nm + ln - la, k_anchor)) continue;
            if (ln - la != 0 && nm[ln - la - 1] != '.') continue;
            if (++found > 1)
                return et_err(ET_ERR_INVALID,
                              "%s: more than one CLIP vision tower (\"%s\" and "
                              "\"%s\"); pass the prefix",
                              what, full, nm);
            if (ln - la + 13 >= sizeof full)
                return et_err(ET_ERR_FORMAT, "%s: tensor name \"%s\" is too long", what, nm);
            snprintf(full, sizeof full, "%.*svision_model.", (int)(ln - la), nm);
        }
        if (!found)
            return et_err(ET_ERR_MISSING,
                          "%s: no CLIP vision tower (no tensor named "
                          "\"[prefix]%s\")",
                          what, k_anchor);
    }
    const int64_t D = c->hidden_size;
    const int L = (int)c->num_layers;
    int nw = 0;
    want_t *w = build_wants(m, full, &nw);
    char missing[700] = "", bad[700] = "", extra[700] = "", item[512];
    size_t lf = strlen(full);
    for (int i = 0; i < nw; i++) {
        char nm[300];
        snprintf(nm, sizeof nm, "%s%s", full, w[i].name);
        et_st_info info;
        et_status s = src_info(&src, nm, &info);
        if (s) {
            et_status_free(s);
            list_add(missing, sizeof missing, nm);
            continue;
        }
        bool ok = info.ndim == w[i].ndim;
        for (int d = 0; ok && d < w[i].ndim; d++) ok = info.shape[d] == w[i].shape[d];
        if (!ok) {
            char got[96] = "[", exp[96] = "[";
            for (int d = 0; d < info.ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                         (long long)info.shape[d]);
            for (int d = 0; d < w[i].ndim; d++)
                snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%lld", d ? ", " : "",
                         (long long)w[i].shape[d]);
            snprintf(item, sizeof item, "%s %s] (expected %s])", nm, got, exp);
            list_add(bad, sizeof bad, item);
        }
    }
    for (int i = 0; i < src_count(&src); i++) {
        const char *nm = src_name(&src, i);
        if (strncmp(nm, full, lf)) continue;
        const char *rel = nm + lf;
        if (!strcmp(rel, "embeddings.position_ids")) continue;
        if (!strcmp(rel, "post_layernorm.weight") || !strcmp(rel, "post_layernorm.bias")) {
            et_st_info info;  // optional; loaded below when both have shape [D]
            et_status s = src_info(&src, nm, &info);
            if (!s && !(info.ndim == 1 && info.shape[0] == D)) {
                snprintf(item, sizeof item, "%s (expected [%lld])", nm, (long long)D);
                list_add(bad, sizeof bad, item);
            }
            et_status_free(s);
            continue;
        }
        bool known = false;
        for (int k = 0; k < nw && !known; k++) known = !strcmp(rel, w[k].name);
        if (!known) list_add(extra, sizeof extra, nm);
    }
    et_status err = NULL;
    if (*missing || *bad || *extra)
        err = et_err(ET_ERR_FORMAT,
                     "%s: CLIP vision tower (%d layers, hidden %lld): "
                     "missing [%s]; mis-shaped [%s]; unexpected [%s]",
                     what, L, (long long)D, missing, bad, extra);
    for (int i = 0; !err && i < nw; i++) {
        char nm[300];
        snprintf(nm, sizeof nm, "%s%s", full, w[i].name);
        err = src_load(&src, nm, w[i].dst);
        if (!err) et_set_requires_grad(*w[i].dst, false);
    }
    free(w);
    char pw[300], pb[300];
    snprintf(pw, sizeof pw, "%spost_layernorm.weight", full);
    snprintf(pb, sizeof pb, "%spost_layernorm.bias", full);
    et_st_info iw, ib;
    et_status sw = err ? NULL : src_info(&src, pw, &iw);
    et_status sb = err ? NULL : src_info(&src, pb, &ib);
    if (!err && !sw && !sb) {
        err = src_load(&src, pw, &m->post_ln_w);
        if (!err) err = src_load(&src, pb, &m->post_ln_b);
        if (!err)
            et_set_requires_grad(m->post_ln_w, false), et_set_requires_grad(m->post_ln_b, false);
    }
    et_status_free(sw), et_status_free(sb);
    if (err) {
        et_clip_vision_free(m);
        return err;
    }
    snprintf(m->prefix, sizeof m->prefix, "%s", full);
    m->frozen = true;
    return NULL;
}

et_status et_clip_vision_load(const char *dir, et_clip_vision *m) {
    char path[4096];
    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "%s/config.json", dir);
    ET_TRY(et_clip_config_load(path, &m->cfg));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *fp = fopen(path, "rb");
    et_status s;
    if (fp) {
        fclose(fp);
        et_st_file *f = NULL;
        ET_TRY(et_st_open(path, &f));
        s = et_clip_vision_load_weights(m, f, NULL, NULL);
        et_st_close(f);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        et_st_index *ix = NULL;
        s = et_st_index_open(path, &ix);
        if (s) return et_status_wrap(s, "%s: no model.safetensors", dir);
        s = et_clip_vision_load_weights(m, NULL, ix, NULL);
        et_st_index_close(ix);
    }
    return s;
}

// ---- forward --------------------------------------------------------------------

// Releases a and returns b (for chains of ops that replace a running value).
static et_tensor *swap(et_tensor *a, et_tensor *b) {
    et_release(a);
    return b;
}

et_tensor *et_clip_layer_forward(et_clip_layer *y, et_tensor *h, int64_t heads, double eps,
                                 et_clip_act act, et_tensor *key_mask, bool causal) {
    const int64_t B = h->shape[0], T = h->shape[1], D = h->shape[2], H = heads;
    const int64_t sh4[4] = {B, T, H, D / H}, sh3[3] = {B, T, D};
    et_tensor *n = et_layernorm(h, y->ln1_w, y->ln1_b, eps);  // [B,T,D]
    et_tensor *q = et_linear_layer_forward(&y->q, n, NULL);
    et_tensor *k = et_linear_layer_forward(&y->k, n, NULL);
    et_tensor *v = et_linear_layer_forward(&y->v, n, NULL);
    et_release(n);
    et_tensor *q4 = et_reshape(q, 4, sh4), *k4 = et_reshape(k, 4, sh4), *v4 = et_reshape(v, 4, sh4);
    et_release(q), et_release(k), et_release(v);
    et_tensor *a = et_attention(q4, k4, v4, key_mask, causal, 1.0 / sqrt((double)(D / H)));
    et_release(q4), et_release(k4), et_release(v4);
    et_tensor *a3 = swap(a, et_reshape(a, 3, sh3));  // [B,T,D]
    et_tensor *o = swap(a3, et_linear_layer_forward(&y->o, a3, NULL));
    et_tensor *h1;  // h + o, and its norm in the same pass
    n = et_add_layernorm(h, o, y->ln2_w, y->ln2_b, eps, &h1);
    et_release(o);
    et_tensor *f = swap(n, et_linear_layer_forward(&y->fc1, n, NULL));  // [B,T,I]
    f = swap(f, act == ET_CLIP_GELU ? et_gelu(f) : et_quick_gelu(f));
    f = swap(f, et_linear_layer_forward(&y->fc2, f, NULL));  // [B,T,D]
    et_tensor *out = et_add(h1, f);
    et_release(h1), et_release(f);
    return out;
}

et_status et_clip_check_select_layer(const et_clip_config *cfg, int select_layer, const char *key) {
    const int L = (int)cfg->num_layers;
    if (select_layer >= -(L + 1) && select_layer <= L) return NULL;
    return et_err(ET_ERR_INVALID,
                  "%s = %d is out of range for the %d-layer vision tower: use %d..%d (negative "
                  "counts from the end; -2, LLaVA's choice, is the penultimate layer)",
                  key, select_layer, L, -(L + 1), L);
}

et_tensor *et_clip_vision_forward(et_clip_vision *m, et_tensor *img, int select_layer,
                                  et_clip_feature feature) {
    const et_clip_config *c = &m->cfg;
    const int L = (int)c->num_layers;
    const int64_t D = c->hidden_size, S = c->image_size;
    ET_ASSERT(m->class_embedding, "et_clip_vision_forward: weights not loaded");
    ET_ASSERT(img->ndim == 4 && img->shape[1] == c->num_channels && img->shape[2] == S &&
                  img->shape[3] == S,
              "et_clip_vision_forward: image must be [B, %lld, %lld, %lld]",
              (long long)c->num_channels, (long long)S, (long long)S);
    ET_ASSERT(select_layer >= -(L + 1) && select_layer <= L,
              "et_clip_vision_forward: select_layer %d outside [-%d, %d]", select_layer, L + 1, L);
    const int upto = select_layer < 0 ? L + 1 + select_layer : select_layer;
    if (m->frozen) et_no_grad_begin();
    const int64_t B = img->shape[0];
    et_tensor *p = et_patch_embed(img, m->patch_weight, NULL);  // [B,N,D]
    et_tensor *z = et_zeros(p->dtype, 3, (int64_t[]){B, 1, D});
    et_tensor *cls = et_add_bcast(z, m->class_embedding);  // [B,1,D]
    et_release(z);
    et_tensor *parts[2] = {cls, p};
    et_tensor *x = et_concat(2, parts, 1);  // [B,N+1,D]
    et_release(cls), et_release(p);
    x = swap(x, et_add_bcast(x, m->pos_embedding));
    x = swap(x, et_layernorm(x, m->pre_ln_w, m->pre_ln_b, c->layer_norm_eps));
    for (int l = 0; l < upto; l++)
        x = swap(x, et_clip_layer_forward(&m->layers[l], x, c->num_heads, c->layer_norm_eps, c->act,
                                          NULL, false));
    if (feature == ET_CLIP_PATCH) x = swap(x, et_narrow(x, 1, 1, x->shape[1] - 1));
    if (m->frozen) et_no_grad_end();
    return x;
}

et_tensor *et_clip_vision_pooled(et_clip_vision *m, et_tensor *img, et_tensor **last_hidden) {
    ET_ASSERT(m->post_ln_w && m->post_ln_b,
              "et_clip_vision_pooled: the tower has no post_layernorm");
    et_tensor *h = et_clip_vision_forward(m, img, (int)m->cfg.num_layers, ET_CLIP_CLS_PATCH);
    if (m->frozen) et_no_grad_begin();
    const int64_t B = h->shape[0], D = h->shape[2];
    et_tensor *cls = et_narrow(h, 1, 0, 1);  // [B,1,D]
    et_tensor *c2 = swap(cls, et_reshape(cls, 2, (int64_t[]){B, D}));
    et_tensor *out = et_layernorm(c2, m->post_ln_w, m->post_ln_b, m->cfg.layer_norm_eps);
    et_release(c2);
    if (m->frozen) et_no_grad_end();
    if (last_hidden)
        *last_hidden = h;
    else
        et_release(h);
    return out;
}

void et_clip_vision_add_post_layernorm(et_clip_vision *m) {
    if (m->post_ln_w) return;
    const int64_t D = m->cfg.hidden_size;
    m->post_ln_w = et_full(ET_F32, 1, &D, 1.0);
    m->post_ln_b = et_zeros(ET_F32, 1, &D);
}

void et_clip_layer_params(et_clip_layer *y, const char *prefix, int l,
                          char (*names)[ET_CLIP_NAME_MAX], et_tensor **out, int *n) {
    static const char *const mods[6] = {"self_attn.q_proj", "self_attn.k_proj",
                                        "self_attn.v_proj", "self_attn.out_proj",
                                        "mlp.fc1",          "mlp.fc2"};
    et_linear_layer *lin[6] = {&y->q, &y->k, &y->v, &y->o, &y->fc1, &y->fc2};
    et_tensor *t[16];
    char nm[16][64];
    int k = 0;
    for (int j = 0; j < 6; j++) {
        t[k] = lin[j]->weight, snprintf(nm[k++], 64, "%s.weight", mods[j]);
        t[k] = lin[j]->bias, snprintf(nm[k++], 64, "%s.bias", mods[j]);
    }
    t[k] = y->ln1_w, snprintf(nm[k++], 64, "layer_norm1.weight");
    t[k] = y->ln1_b, snprintf(nm[k++], 64, "layer_norm1.bias");
    t[k] = y->ln2_w, snprintf(nm[k++], 64, "layer_norm2.weight");
    t[k] = y->ln2_b, snprintf(nm[k++], 64, "layer_norm2.bias");
    for (int i = 0; i < k; i++, (*n)++) {
        if (names)
            snprintf(names[*n], ET_CLIP_NAME_MAX, "%s.encoder.layers.%d.%s", prefix, l, nm[i]);
        if (out) out[*n] = t[i];
    }
}

int et_clip_vision_params(et_clip_vision *m, char (*names)[ET_CLIP_NAME_MAX], et_tensor **out) {
    int n = 0;
#define P_ADD(t, ...)                                                 \
    do {                                                              \
        if (names) snprintf(names[n], ET_CLIP_NAME_MAX, __VA_ARGS__); \
        if (out) out[n] = (t);                                        \
        n++;                                                          \
    } while (0)
    P_ADD(m->class_embedding, "vision_model.embeddings.class_embedding");
    P_ADD(m->patch_weight, "vision_model.embeddings.patch_embedding.weight");
    P_ADD(m->pos_embedding, "vision_model.embeddings.position_embedding.weight");
    P_ADD(m->pre_ln_w, "vision_model.pre_layrnorm.weight");
    P_ADD(m->pre_ln_b, "vision_model.pre_layrnorm.bias");
    for (int l = 0; m->layers && l < m->cfg.num_layers; l++)
        et_clip_layer_params(&m->layers[l], "vision_model", l, names, out, &n);
    if (m->post_ln_w) {
        P_ADD(m->post_ln_w, "vision_model.post_layernorm.weight");
        P_ADD(m->post_ln_b, "vision_model.post_layernorm.bias");
    }
#undef P_ADD
    return n;
}

void et_clip_vision_free(et_clip_vision *m) {
    et_release(m->class_embedding), et_release(m->patch_weight), et_release(m->pos_embedding);
    et_release(m->pre_ln_w), et_release(m->pre_ln_b);
    et_release(m->post_ln_w), et_release(m->post_ln_b);
    m->class_embedding = m->patch_weight = m->pos_embedding = m->pre_ln_w = m->pre_ln_b = NULL;
    m->post_ln_w = m->post_ln_b = NULL;
    if (m->layers) {
        for (int l = 0; l < m->cfg.num_layers; l++) {
            et_clip_layer *y = &m->layers[l];
            et_linear_layer *lin[6] = {&y->q, &y->k, &y->v, &y->o, &y->fc1, &y->fc2};
            for (int j = 0; j < 6; j++) et_linear_layer_free(lin[j]);
            et_release(y->ln1_w), et_release(y->ln1_b), et_release(y->ln2_w), et_release(y->ln2_b);
        }
        free(m->layers);
        m->layers = NULL;
    }
}

int et_clip_vision_linears(et_clip_vision *m, et_linear_layer **out) {
    int n = 0;
    for (int l = 0; m->layers && l < m->cfg.num_layers; l++) {
        et_clip_layer *y = &m->layers[l];
        et_linear_layer *lin[6] = {&y->q, &y->k, &y->v, &y->o, &y->fc1, &y->fc2};
        for (int j = 0; j < 6; j++, n++)
            if (out) out[n] = lin[j];
    }
    return n;
}

et_status et_clip_vision_new_random(const et_clip_config *cfg, double std, uint64_t seed,
                                    et_clip_vision *m) {
    memset(m, 0, sizeof *m);
    if (cfg->hidden_size <= 0 || cfg->num_layers <= 0 || cfg->num_heads <= 0 ||
        cfg->hidden_size % cfg->num_heads || cfg->patch_size <= 0 ||
        cfg->image_size % cfg->patch_size || cfg->intermediate_size <= 0 || cfg->num_channels <= 0)
        return et_err(ET_ERR_INVALID,
                      "CLIP vision config: hidden %lld, heads %lld, layers %lld, image %lld, "
                      "patch %lld do not fit together",
                      (long long)cfg->hidden_size, (long long)cfg->num_heads,
                      (long long)cfg->num_layers, (long long)cfg->image_size,
                      (long long)cfg->patch_size);
    m->cfg = *cfg;
    snprintf(m->prefix, sizeof m->prefix, "vision_model.");
    int nw = 0;
    want_t *w = build_wants(m, m->prefix, &nw);
    uint64_t offset = 0;
    for (int i = 0; i < nw; i++) {
        et_tensor *t = et_empty(ET_F32, w[i].ndim, w[i].shape);
        size_t len = strlen(w[i].name);
        bool ln_w = len > 7 && !strcmp(w[i].name + len - 7, ".weight") &&
                    (strstr(w[i].name, "layer_norm") || strstr(w[i].name, "layrnorm"));
        bool bias = len > 5 && !strcmp(w[i].name + len - 5, ".bias");
        if (ln_w)
            et_fill_(t, 1.0);
        else if (bias)
            et_fill_(t, 0.0);
        else
            et_randn_(t, 0.0, std, seed, offset);
        offset += (uint64_t)t->numel;
        *w[i].dst = t;
    }
    free(w);
    m->frozen = true;
    return NULL;
}
