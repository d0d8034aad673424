// train/io/llama_load.c - see llama_load.h
#include "llama_load.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "hf_weights.h"

// The catalogue: every tensor the config implies, with its shape and destination.
typedef struct {
    int n;
    et_ckpt_want *w;
    char (*names)[200];
    const char *prefix;  // prepended to every name ("" or e.g. "language_model.")
} catalogue;

static void cat_weight(void *ctx, const char *name, et_tensor **dst, int ndim, int64_t d0,
                       int64_t d1) {
    catalogue *c = ctx;
    snprintf(c->names[c->n], sizeof c->names[c->n], "%s%s", c->prefix, name);
    et_ckpt_want *w = &c->w[c->n];
    memset(w, 0, sizeof(*w));
    w->name = c->names[c->n];
    w->ndim = ndim;
    w->shape[0] = d0;
    w->shape[1] = d1;
    w->dst = dst;
    c->n++;
}

static catalogue build_catalogue(et_llama *m, const char *tensor_prefix) {
    int cap = (int)m->cfg.num_hidden_layers * 16 + 8;
    catalogue c = {0, calloc((size_t)cap, sizeof(et_ckpt_want)), calloc((size_t)cap, 200),
                   tensor_prefix};
    ET_ASSERT(c.w && c.names, "out of host memory");
    et_llama_for_each_weight(m, cat_weight, &c);
    return c;
}

static void cat_free(catalogue *c) {
    free(c->w);
    free(c->names);
}

et_status et_llama_config_load_sub(const char *path, const char *key, et_llama_config *out) {
    if (!key) return et_llama_config_load(path, out);
    char *text = NULL;
    ET_TRY(et_read_file(path, ET_CONFIG_MAX_BYTES, &text, NULL));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) return et_err(ET_ERR_FORMAT, "%s: not valid JSON", path);
    cJSON *sub = cJSON_GetObjectItemCaseSensitive(root, key);
    et_status s = NULL;
    if (!cJSON_IsObject(sub)) {
        s = et_err(ET_ERR_FORMAT, "%s: field '%s': expected an object with the LLaMA config", path,
                   key);
    } else {
        // LlamaConfig's defaults for the fields et_llama_config_parse requires.
        static const struct {
            const char *name;
            double value;
        } k_defaults[] = {{"vocab_size", 32000},
                          {"hidden_size", 4096},
                          {"intermediate_size", 11008},
                          {"num_hidden_layers", 32},
                          {"num_attention_heads", 32}};
        for (size_t i = 0; i < sizeof k_defaults / sizeof *k_defaults; i++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(sub, k_defaults[i].name);
            if (v && !cJSON_IsNull(v)) continue;
            if (v) cJSON_DeleteItemFromObjectCaseSensitive(sub, k_defaults[i].name);
            cJSON_AddNumberToObject(sub, k_defaults[i].name, k_defaults[i].value);
        }
        char *js = cJSON_PrintUnformatted(sub);
        ET_ASSERT(js, "out of host memory");
        char name[4200];
        snprintf(name, sizeof name, "%s (%s)", path, key);
        s = et_llama_config_parse(js, name, out);
        cJSON_free(js);
    }
    cJSON_Delete(root);
    return s;
}

et_status et_llama_load(const char *dir, et_dtype weight_dtype, et_llama **out) {
    return et_llama_load_ex(dir, NULL, "", 0, NULL, weight_dtype, out);
}

et_status et_llama_load_ex(const char *dir, const char *config_key, const char *tensor_prefix,
                           int n_ignore_prefix, const char *const *ignore_prefix,
                           et_dtype weight_dtype, et_llama **out) {
    *out = NULL;
    if (weight_dtype != ET_F32 && weight_dtype != ET_BF16 && weight_dtype != ET_F16)
        return et_err(ET_ERR_INVALID, "loading %s: weight dtype %s is not f32, bf16 or f16", dir,
                      et_dtype_name(weight_dtype));
    if (!tensor_prefix) tensor_prefix = "";
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    et_llama_config cfg;
    ET_TRY(et_llama_config_load_sub(path, config_key, &cfg));
    et_ckpt *ck = NULL;
    ET_TRY(et_ckpt_open(dir, &ck));
    et_llama *m = et_llama_alloc(&cfg, weight_dtype);
    catalogue c = build_catalogue(m, tensor_prefix);
    static const char *const ignore_suffix[] = {".rotary_emb.inv_freq"};
    // A tied checkpoint may still carry lm_head.weight (HF ignores it, so do we).
    char tied[256];
    snprintf(tied, sizeof tied, "%slm_head.weight", tensor_prefix);
    const char *const ignore_tied[] = {tied};
    const et_ckpt_ignore ig = {1,           ignore_suffix,   cfg.tie_word_embeddings ? 1 : 0,
                               ignore_tied, n_ignore_prefix, ignore_prefix};
    et_status s = et_ckpt_load_all_ex(ck, c.n, c.w, weight_dtype, &ig);
    cat_free(&c);
    et_ckpt_close(ck);
    if (s) {
        et_llama_free(m);
        return s;
    }
    if (cfg.tie_word_embeddings) m->lm_head.weight = et_retain(m->embed_tokens);
    *out = m;
    return NULL;
}
