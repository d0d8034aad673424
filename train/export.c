// train/export.c - see export.h
#include "export.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/autograd.h"
#include "../core/ops.h"
#include "../core/safetensors.h"

et_export_opts et_export_defaults(const et_llama *m) {
    et_export_opts o = {m->weight_dtype, 5000000000LL};
    return o;
}

static const char *torch_dtype_name(et_dtype dt) {
    switch (dt) {
        case ET_BF16:
            return "bfloat16";
        case ET_F16:
            return "float16";
        default:
            return "float32";
    }
}

char *et_export_llama_config_json(const et_llama_config *g, et_dtype dt) {
    cJSON *r = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(r, "model_type", "llama");
    cJSON_AddBoolToObject(r, "attention_bias", g->attention_bias);
    cJSON_AddNumberToObject(r, "attention_dropout", 0.0);
    if (g->bos_token_id >= 0) cJSON_AddNumberToObject(r, "bos_token_id", g->bos_token_id);
    if (g->n_eos == 1) {
        cJSON_AddNumberToObject(r, "eos_token_id", g->eos_token_ids[0]);
    } else if (g->n_eos > 1) {
        cJSON *e = cJSON_AddArrayToObject(r, "eos_token_id");
        for (int i = 0; i < g->n_eos; i++)
            cJSON_AddItemToArray(e, cJSON_CreateNumber(g->eos_token_ids[i]));
    }
    if (g->pad_token_id >= 0) cJSON_AddNumberToObject(r, "pad_token_id", g->pad_token_id);
    cJSON_AddNumberToObject(r, "head_dim", (double)g->head_dim);
    cJSON_AddStringToObject(r, "hidden_act", "silu");
    cJSON_AddNumberToObject(r, "hidden_size", (double)g->hidden_size);
    cJSON_AddNumberToObject(r, "initializer_range", 0.02);
    cJSON_AddNumberToObject(r, "intermediate_size", (double)g->intermediate_size);
    cJSON_AddNumberToObject(r, "max_position_embeddings", (double)g->max_position_embeddings);
    cJSON_AddBoolToObject(r, "mlp_bias", g->mlp_bias);
    cJSON_AddNumberToObject(r, "num_attention_heads", (double)g->num_attention_heads);
    cJSON_AddNumberToObject(r, "num_hidden_layers", (double)g->num_hidden_layers);
    cJSON_AddNumberToObject(r, "num_key_value_heads", (double)g->num_key_value_heads);
    cJSON_AddNumberToObject(r, "pretraining_tp", 1);
    cJSON_AddNumberToObject(r, "rms_norm_eps", g->rms_norm_eps);
    if (g->rope_kind == ET_ROPE_DEFAULT) {
        cJSON_AddNullToObject(r, "rope_scaling");
    } else {
        cJSON *s = cJSON_AddObjectToObject(r, "rope_scaling");
        cJSON_AddStringToObject(s, "rope_type",
                                g->rope_kind == ET_ROPE_LINEAR ? "linear" : "llama3");
        cJSON_AddNumberToObject(s, "factor", g->rope_factor);
        if (g->rope_kind == ET_ROPE_LLAMA3) {
            cJSON_AddNumberToObject(s, "low_freq_factor", g->rope_low_freq_factor);
            cJSON_AddNumberToObject(s, "high_freq_factor", g->rope_high_freq_factor);
            cJSON_AddNumberToObject(s, "original_max_position_embeddings",
                                    (double)g->rope_original_max_pos);
        }
    }
    cJSON_AddNumberToObject(r, "rope_theta", g->rope_theta);
    cJSON_AddBoolToObject(r, "tie_word_embeddings", g->tie_word_embeddings);
    cJSON_AddStringToObject(r, "torch_dtype", torch_dtype_name(dt));
    cJSON_AddBoolToObject(r, "use_cache", true);
    cJSON_AddNumberToObject(r, "vocab_size", (double)g->vocab_size);
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    ET_ASSERT(s, "out of memory");
    return s;
}

// ---- tensor list ----------------------------------------------------------------

typedef struct {
    int n, cap;
    char (*names)[192];
    et_tensor **t;  // owned, in the target dtype
} tlist;

static void tl_add(tlist *l, const char *name, const char *suffix, et_tensor *t) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->names = realloc(l->names, sizeof(*l->names) * (size_t)l->cap);
        l->t = realloc(l->t, sizeof(*l->t) * (size_t)l->cap);
        ET_ASSERT(l->names && l->t, "out of memory");
    }
    snprintf(l->names[l->n], sizeof l->names[0], "%s%s", name, suffix);
    l->t[l->n++] = t;
}

static void tl_free(tlist *l) {
    for (int i = 0; i < l->n; i++) et_release(l->t[i]);
    free(l->names), free(l->t);
}

static et_tensor *as_dtype(const et_tensor *x, et_dtype dt) {
    et_tensor *y = et_empty(dt, x->ndim, x->shape);
    et_copy_(y, x);
    return y;
}

// W (+ scale * B @ A when an unmerged adapter is present) in f32, then rounded into dt.
static et_tensor *merged_weight(const et_linear_layer *l, et_dtype dt) {
    if (!l->lora_a || !l->lora_b || l->merged) return as_dtype(l->weight, dt);
    et_tensor *w = as_dtype(l->weight, ET_F32);
    et_tensor *a = as_dtype(l->lora_a, ET_F32), *b = as_dtype(l->lora_b, ET_F32);
    et_tensor *d = et_matmul(b, a, false, false);  // [out, r] @ [r, in] -> [out, in]
    float *pw = ET_DATA(float, w);
    const float *pd = ET_DATA(const float, d);
    const float s = (float)l->lora_scale;
    for (int64_t i = 0; i < w->numel; i++) pw[i] += s * pd[i];
    et_release(a), et_release(b), et_release(d);
    if (dt == ET_F32) return w;
    et_tensor *o = as_dtype(w, dt);
    et_release(w);
    return o;
}

static void add_linear(tlist *l, const et_linear_layer *y, et_dtype dt) {
    tl_add(l, y->name, ".weight", merged_weight(y, dt));
    if (y->bias) tl_add(l, y->name, ".bias", as_dtype(y->bias, dt));
}

static void build_list(const et_llama *m, et_dtype dt, tlist *l) {
    tl_add(l, "model.embed_tokens.weight", "", as_dtype(m->embed_tokens, dt));
    for (int i = 0; i < (int)m->cfg.num_hidden_layers; i++) {
        const et_llama_layer *y = &m->layers[i];
        char p[96];
        snprintf(p, sizeof p, "model.layers.%d.", i);
        tl_add(l, p, "input_layernorm.weight", as_dtype(y->input_norm, dt));
        add_linear(l, &y->q_proj, dt);
        add_linear(l, &y->k_proj, dt);
        add_linear(l, &y->v_proj, dt);
        add_linear(l, &y->o_proj, dt);
        tl_add(l, p, "post_attention_layernorm.weight", as_dtype(y->post_norm, dt));
        add_linear(l, &y->gate_proj, dt);
        add_linear(l, &y->up_proj, dt);
        add_linear(l, &y->down_proj, dt);
    }
    tl_add(l, "model.norm.weight", "", as_dtype(m->norm, dt));
    if (!m->cfg.tie_word_embeddings) add_linear(l, &m->lm_head, dt);
}

// ---- files ----------------------------------------------------------------------

static et_status write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return et_err(ET_ERR_IO, "%s: cannot create (%s)", path, strerror(errno));
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, fp) == n;
    ok = (fflush(fp) == 0) && ok;
    ok = (fsync(fileno(fp)) == 0) && ok;
    ok = (fclose(fp) == 0) && ok;
    return ok ? NULL : et_err(ET_ERR_IO, "%s: write failed", path);
}

// Removes a flat directory and the files in it (best effort).
static void remove_flat_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4200];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static bool dir_nonempty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return false;
    struct dirent *e;
    bool any = false;
    while (!any && (e = readdir(d))) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

static et_status write_all(const char *tmp, const et_llama *m, const et_export_opts *o, tlist *l) {
    char path[4200];
    char *cfg = et_export_llama_config_json(&m->cfg, o->dtype);
    snprintf(path, sizeof path, "%s/config.json", tmp);
    et_status s = write_text(path, cfg);
    free(cfg);
    if (s) return s;
    // Shard assignment, as transformers' shard_checkpoint.
    int *shard = malloc(sizeof(int) * (size_t)l->n);
    ET_ASSERT(shard, "out of memory");
    int n_shards = 0;
    int64_t cur = 0, total = 0;
    for (int i = 0; i < l->n; i++) {
        const int64_t sz = (int64_t)et_nbytes(l->t[i]);
        if (n_shards == 0 || (cur > 0 && cur + sz > o->max_shard_bytes)) n_shards++, cur = 0;
        shard[i] = n_shards - 1;
        cur += sz, total += sz;
    }
    const char *meta[2] = {"format", "pt"};
    const char **names = malloc(sizeof(char *) * (size_t)l->n);
    et_tensor **ts = malloc(sizeof(et_tensor *) * (size_t)l->n);
    ET_ASSERT(names && ts, "out of memory");
    cJSON *ix = cJSON_CreateObject(), *wm = NULL;
    cJSON *md = cJSON_AddObjectToObject(ix, "metadata");
    cJSON_AddNumberToObject(md, "total_size", (double)total);
    wm = cJSON_AddObjectToObject(ix, "weight_map");
    for (int k = 0; k < n_shards && !s; k++) {
        char fname[96];
        if (n_shards == 1)
            snprintf(fname, sizeof fname, "model.safetensors");
        else
            snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", k + 1, n_shards);
        int n = 0;
        for (int i = 0; i < l->n; i++)
            if (shard[i] == k) {
                names[n] = l->names[i], ts[n++] = l->t[i];
                cJSON_AddStringToObject(wm, l->names[i], fname);
            }
        snprintf(path, sizeof path, "%s/%s", tmp, fname);
        s = et_st_save(path, n, names, ts, 1, meta);
    }
    if (!s && n_shards > 1) {
        char *txt = cJSON_Print(ix);
        ET_ASSERT(txt, "out of memory");
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", tmp);
        s = write_text(path, txt);
        free(txt);
    }
    cJSON_Delete(ix);
    free(shard), free(names), free(ts);
    return s;
}

et_status et_export_merged_llama(const char *dir, const et_llama *m, const et_export_opts *opts) {
    et_export_opts o = opts ? *opts : et_export_defaults(m);
    if (o.dtype != ET_F32 && o.dtype != ET_BF16 && o.dtype != ET_F16)
        return et_err(ET_ERR_INVALID, "export %s: dtype %s is not f32, bf16 or f16", dir,
                      et_dtype_name(o.dtype));
    if (o.max_shard_bytes <= 0)
        return et_err(ET_ERR_INVALID, "export %s: max_shard_bytes must be positive", dir);
    if (m->cfg.tie_word_embeddings && m->lm_head.lora_a && !m->lm_head.merged)
        return et_err(ET_ERR_UNSUPPORTED,
                      "export %s: lm_head carries a LoRA adapter but is tied to embed_tokens", dir);
    if (strlen(dir) > 4000) return et_err(ET_ERR_INVALID, "export: path too long");
    if (dir_nonempty(dir))
        return et_err(ET_ERR_IO, "export %s: the directory exists and is not empty", dir);
    char tmp[4100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    remove_flat_dir(tmp);  // a leftover from a crashed run of this pid
    if (mkdir(tmp, 0755))
        return et_err(ET_ERR_IO, "export %s: cannot create %s (%s)", dir, tmp, strerror(errno));
    tlist l = {0, 0, NULL, NULL};
    et_no_grad_begin();
    build_list(m, o.dtype, &l);
    et_no_grad_end();
    et_status s = write_all(tmp, m, &o, &l);
    tl_free(&l);
    if (!s && rename(tmp, dir))
        s = et_err(ET_ERR_IO, "export %s: rename from %s failed (%s)", dir, tmp, strerror(errno));
    if (s) remove_flat_dir(tmp);
    return s;
}
