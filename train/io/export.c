// train/io/export.c - see export.h
#include "export.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/autograd.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/ops.h"
#include "core/safetensors.h"

et_export_opts et_export_defaults(const et_llama *m) {
    et_export_opts o = {m->weight_dtype, 5000000000LL, false};
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

// A float-typed HF config field as a JSON float: cJSON prints 8.0 as 8, which transformers
// reads as an int and warns about; this keeps a decimal point (8.0, 500000.0, 1e-05) and the
// fewest digits that read back as the same double.
static cJSON *json_float(double v) {
    char buf[40];
    if (!isfinite(v)) return cJSON_CreateNull();
    if (v == floor(v) && fabs(v) < 1e16) {
        snprintf(buf, sizeof buf, "%.1f", v);  // 500000.0, as Python writes it
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
        if (!strpbrk(buf, ".eE")) strncat(buf, ".0", sizeof buf - strlen(buf) - 1);
    }
    cJSON *r = cJSON_CreateRaw(buf);
    ET_ASSERT(r, "out of memory");
    return r;
}

static void add_float(cJSON *obj, const char *key, double v) {
    cJSON_AddItemToObject(obj, key, json_float(v));
}

char *et_export_llama_config_json(const et_llama_config *g, et_dtype dt) {
    cJSON *r = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(r, "model_type", "llama");
    cJSON_AddBoolToObject(r, "attention_bias", g->attention_bias);
    add_float(r, "attention_dropout", 0.0);
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
    add_float(r, "initializer_range", 0.02);
    cJSON_AddNumberToObject(r, "intermediate_size", (double)g->intermediate_size);
    cJSON_AddNumberToObject(r, "max_position_embeddings", (double)g->max_position_embeddings);
    cJSON_AddBoolToObject(r, "mlp_bias", g->mlp_bias);
    cJSON_AddNumberToObject(r, "num_attention_heads", (double)g->num_attention_heads);
    cJSON_AddNumberToObject(r, "num_hidden_layers", (double)g->num_hidden_layers);
    cJSON_AddNumberToObject(r, "num_key_value_heads", (double)g->num_key_value_heads);
    cJSON_AddNumberToObject(r, "pretraining_tp", 1);
    add_float(r, "rms_norm_eps", g->rms_norm_eps);
    if (g->rope_kind == ET_ROPE_DEFAULT) {
        cJSON_AddNullToObject(r, "rope_scaling");
    } else {
        cJSON *s = cJSON_AddObjectToObject(r, "rope_scaling");
        cJSON_AddStringToObject(s, "rope_type",
                                g->rope_kind == ET_ROPE_LINEAR ? "linear" : "llama3");
        add_float(s, "factor", g->rope_factor);
        if (g->rope_kind == ET_ROPE_LLAMA3) {
            add_float(s, "low_freq_factor", g->rope_low_freq_factor);
            add_float(s, "high_freq_factor", g->rope_high_freq_factor);
            cJSON_AddNumberToObject(s, "original_max_position_embeddings",
                                    (double)g->rope_original_max_pos);
        }
    }
    add_float(r, "rope_theta", g->rope_theta);
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

// W (+ scale * B @ A when an unmerged adapter is present and with_lora) in f32, then
// rounded into dt.
static et_tensor *merged_weight(const et_linear_layer *l, et_dtype dt, bool with_lora) {
    if (!with_lora || !l->lora_a || !l->lora_b || l->merged) return as_dtype(l->weight, dt);
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

static void add_linear(tlist *l, const et_linear_layer *y, et_dtype dt, bool with_lora) {
    tl_add(l, y->name, ".weight", merged_weight(y, dt, with_lora));
    if (y->bias) tl_add(l, y->name, ".bias", as_dtype(y->bias, dt));
}

static void build_list(const et_llama *m, et_dtype dt, bool with_lora, tlist *l) {
    tl_add(l, "model.embed_tokens.weight", "", as_dtype(m->embed_tokens, dt));
    for (int i = 0; i < (int)m->cfg.num_hidden_layers; i++) {
        const et_llama_layer *y = &m->layers[i];
        char p[96];
        snprintf(p, sizeof p, "model.layers.%d.", i);
        tl_add(l, p, "input_layernorm.weight", as_dtype(y->input_norm, dt));
        add_linear(l, &y->q_proj, dt, with_lora);
        add_linear(l, &y->k_proj, dt, with_lora);
        add_linear(l, &y->v_proj, dt, with_lora);
        add_linear(l, &y->o_proj, dt, with_lora);
        tl_add(l, p, "post_attention_layernorm.weight", as_dtype(y->post_norm, dt));
        add_linear(l, &y->gate_proj, dt, with_lora);
        add_linear(l, &y->up_proj, dt, with_lora);
        add_linear(l, &y->down_proj, dt, with_lora);
    }
    tl_add(l, "model.norm.weight", "", as_dtype(m->norm, dt));
    if (!m->cfg.tie_word_embeddings) add_linear(l, &m->lm_head, dt, with_lora);
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

static et_status write_all(const char *tmp, const char *config_text, int64_t max_shard_bytes,
                           tlist *l) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", tmp);
    et_status s = write_text(path, config_text);
    if (s) return s;
    // Shard assignment, as transformers' shard_checkpoint.
    int *shard = malloc(sizeof(int) * (size_t)l->n);
    ET_ASSERT(shard, "out of memory");
    int n_shards = 0;
    int64_t cur = 0, total = 0;
    for (int i = 0; i < l->n; i++) {
        const int64_t sz = (int64_t)et_nbytes(l->t[i]);
        if (n_shards == 0 || (cur > 0 && cur + sz > max_shard_bytes)) n_shards++, cur = 0;
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

// Writes config_text and l into "<dir>.tmp.<pid>", then renames it to dir (see export.h).
static et_status write_checkpoint(const char *dir, const char *config_text, int64_t max_shard_bytes,
                                  tlist *l) {
    if (strlen(dir) > 4000) return et_err(ET_ERR_INVALID, "export: path too long");
    if (dir_nonempty(dir))
        return et_err(ET_ERR_IO, "export %s: the directory exists and is not empty", dir);
    char tmp[4100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    remove_flat_dir(tmp);  // a leftover from a crashed run of this pid
    if (mkdir(tmp, 0755))
        return et_err(ET_ERR_IO, "export %s: cannot create %s (%s)", dir, tmp, strerror(errno));
    et_status s = write_all(tmp, config_text, max_shard_bytes, l);
    if (!s && rename(tmp, dir))
        s = et_err(ET_ERR_IO, "export %s: rename from %s failed (%s)", dir, tmp, strerror(errno));
    if (s) remove_flat_dir(tmp);
    return s;
}

static bool export_dtype_ok(et_dtype dt) { return dt == ET_F32 || dt == ET_BF16 || dt == ET_F16; }

et_status et_export_merged_llama(const char *dir, const et_llama *m, const et_export_opts *opts) {
    et_export_opts o = opts ? *opts : et_export_defaults(m);
    if (!export_dtype_ok(o.dtype))
        return et_err(ET_ERR_INVALID, "export %s: dtype %s is not f32, bf16 or f16", dir,
                      et_dtype_name(o.dtype));
    if (o.max_shard_bytes <= 0)
        return et_err(ET_ERR_INVALID, "export %s: max_shard_bytes must be positive", dir);
    if (!o.without_lora && m->cfg.tie_word_embeddings && m->lm_head.lora_a && !m->lm_head.merged)
        return et_err(ET_ERR_UNSUPPORTED,
                      "export %s: lm_head carries a LoRA adapter but is tied to embed_tokens", dir);
    if (o.without_lora) {
        for (int i = 0; i < (int)m->cfg.num_hidden_layers; i++) {
            const et_llama_layer *y = &m->layers[i];
            const et_linear_layer *ls[7] = {&y->q_proj,    &y->k_proj,  &y->v_proj,   &y->o_proj,
                                            &y->gate_proj, &y->up_proj, &y->down_proj};
            for (int j = 0; j < 7; j++)
                if (ls[j]->merged && ls[j]->lora_a)
                    return et_err(ET_ERR_INVALID,
                                  "export %s: %s has its adapter merged; the base weights are "
                                  "not available (unmerge first)",
                                  dir, ls[j]->name);
        }
        if (m->lm_head.merged && m->lm_head.lora_a)
            return et_err(ET_ERR_INVALID, "export %s: lm_head has its adapter merged", dir);
    }
    tlist l = {0, 0, NULL, NULL};
    et_no_grad_begin();
    build_list(m, o.dtype, !o.without_lora, &l);
    et_no_grad_end();
    char *cfg = et_export_llama_config_json(&m->cfg, o.dtype);
    et_status s = write_checkpoint(dir, cfg, o.max_shard_bytes, &l);
    free(cfg);
    tl_free(&l);
    return s;
}

// ---- CLIP vision tower ------------------------------------------------------------

char *et_export_clip_config_json(const et_clip_config *g, et_dtype dt) {
    cJSON *r = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(r, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("CLIPVisionModel"));
    cJSON_AddStringToObject(r, "model_type", "clip_vision_model");
    add_float(r, "attention_dropout", 0.0);
    add_float(r, "dropout", 0.0);
    cJSON_AddStringToObject(r, "hidden_act", g->act == ET_CLIP_GELU ? "gelu" : "quick_gelu");
    cJSON_AddNumberToObject(r, "hidden_size", (double)g->hidden_size);
    cJSON_AddNumberToObject(r, "image_size", (double)g->image_size);
    add_float(r, "initializer_factor", 1.0);
    add_float(r, "initializer_range", 0.02);
    cJSON_AddNumberToObject(r, "intermediate_size", (double)g->intermediate_size);
    add_float(r, "layer_norm_eps", g->layer_norm_eps);
    cJSON_AddNumberToObject(r, "num_attention_heads", (double)g->num_heads);
    cJSON_AddNumberToObject(r, "num_channels", (double)g->num_channels);
    cJSON_AddNumberToObject(r, "num_hidden_layers", (double)g->num_layers);
    cJSON_AddNumberToObject(r, "patch_size", (double)g->patch_size);
    cJSON_AddStringToObject(r, "torch_dtype", torch_dtype_name(dt));
    char *s = cJSON_Print(r);
    cJSON_Delete(r);
    ET_ASSERT(s, "out of memory");
    return s;
}

static void add_clip_linear(tlist *l, const char *p, int layer, const char *mod,
                            const et_linear_layer *y, et_dtype dt) {
    char name[192];
    snprintf(name, sizeof name, "%sencoder.layers.%d.%s", p, layer, mod);
    tl_add(l, name, ".weight", as_dtype(y->weight, dt));
    if (y->bias) tl_add(l, name, ".bias", as_dtype(y->bias, dt));
}

et_status et_export_clip_vision(const char *dir, const et_clip_vision *v, et_dtype dt) {
    if (!export_dtype_ok(dt))
        return et_err(ET_ERR_INVALID, "export %s: dtype %s is not f32, bf16 or f16", dir,
                      et_dtype_name(dt));
    const char *p = "vision_model.";
    const int64_t D = v->cfg.hidden_size;
    tlist l = {0, 0, NULL, NULL};
    et_no_grad_begin();
    char name[192];
    snprintf(name, sizeof name, "%sembeddings.", p);
    tl_add(&l, name, "class_embedding", as_dtype(v->class_embedding, dt));
    tl_add(&l, name, "patch_embedding.weight", as_dtype(v->patch_weight, dt));
    tl_add(&l, name, "position_embedding.weight", as_dtype(v->pos_embedding, dt));
    tl_add(&l, p, "pre_layrnorm.weight", as_dtype(v->pre_ln_w, dt));
    tl_add(&l, p, "pre_layrnorm.bias", as_dtype(v->pre_ln_b, dt));
    for (int i = 0; i < (int)v->cfg.num_layers; i++) {
        const et_clip_layer *y = &v->layers[i];
        char q[192];
        snprintf(q, sizeof q, "%sencoder.layers.%d.", p, i);
        add_clip_linear(&l, p, i, "self_attn.k_proj", &y->k, dt);
        add_clip_linear(&l, p, i, "self_attn.v_proj", &y->v, dt);
        add_clip_linear(&l, p, i, "self_attn.q_proj", &y->q, dt);
        add_clip_linear(&l, p, i, "self_attn.out_proj", &y->o, dt);
        tl_add(&l, q, "layer_norm1.weight", as_dtype(y->ln1_w, dt));
        tl_add(&l, q, "layer_norm1.bias", as_dtype(y->ln1_b, dt));
        add_clip_linear(&l, p, i, "mlp.fc1", &y->fc1, dt);
        add_clip_linear(&l, p, i, "mlp.fc2", &y->fc2, dt);
        tl_add(&l, q, "layer_norm2.weight", as_dtype(y->ln2_w, dt));
        tl_add(&l, q, "layer_norm2.bias", as_dtype(y->ln2_b, dt));
    }
    // The tower's post_layernorm when it has one (a pretrained tower); else an identity
    // LayerNorm (LLaVA never applies it), so transformers finds every key.
    et_tensor *one = v->post_ln_w ? as_dtype(v->post_ln_w, dt) : et_empty(dt, 1, &D);
    et_tensor *zero = v->post_ln_b ? as_dtype(v->post_ln_b, dt) : et_empty(dt, 1, &D);
    if (!v->post_ln_w) et_fill_(one, 1.0), et_fill_(zero, 0.0);
    tl_add(&l, p, "post_layernorm.weight", one);
    tl_add(&l, p, "post_layernorm.bias", zero);
    et_no_grad_end();
    char *cfg = et_export_clip_config_json(&v->cfg, dt);
    et_status s = write_checkpoint(dir, cfg, INT64_MAX, &l);
    free(cfg);
    tl_free(&l);
    return s;
}

// ---- a whole trained model ----------------------------------------------------------

et_status et_export_non_lora_trainables(const char *path, const et_emo_model *m) {
    int n = 0;
    const char **names = malloc(sizeof(*names) * (size_t)(m->n_trainables + 1));
    et_tensor **ts = malloc(sizeof(*ts) * (size_t)(m->n_trainables + 1));
    ET_ASSERT(names && ts, "out of memory");
    for (int g = 0; g < m->n_groups; g++) {
        if (strcmp(m->groups[g].name, "projector") && strcmp(m->groups[g].name, "expert") &&
            strcmp(m->groups[g].name, "fim"))
            continue;
        for (int i = 0; i < m->groups[g].n; i++)
            names[n] = m->groups[g].names[i], ts[n++] = m->groups[g].params[i];
    }
    et_status s = n ? et_save_trainables(path, n, names, ts) : NULL;
    free(names), free(ts);
    return s;
}

et_status et_export_mm_projector(const char *path, const et_emo_model *m) {
    if (!m->mllm.proj) return et_err(ET_ERR_INVALID, "%s: the model has no projector", path);
    const char *names[4];
    et_tensor *ts[4];
    const int n = et_projector_params(m->mllm.proj, names, ts);
    return et_save_trainables(path, n, names, ts);
}

// Test hook: EMOTUNE_EXPORT_SLOW_MS sleeps after each part, so tests can kill an export
// in the middle.
static void export_slow_hook(void) {
    const char *e = getenv("EMOTUNE_EXPORT_SLOW_MS");
    long ms = e ? strtol(e, NULL, 10) : 0;
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// The parts `what` selects, into the (new, empty) directory out.
static et_status write_parts(const char *out, const et_emo_model *m, unsigned what) {
    char p[8400];
    if ((what & ET_EXPORT_ADAPTER) && m->has_lora) {
        snprintf(p, sizeof p, "%s/adapter", out);
        ET_TRY(et_mkdirs(p));
        ET_TRY(et_lora_save_adapter(p, &m->lora, m->n_linears, m->linears));
        et_fsync_dir(p);
        export_slow_hook();
    }
    bool merged = (what & ET_EXPORT_MERGED) != 0;
    if (what & ET_EXPORT_TRAINABLES) {
        snprintf(p, sizeof p, "%s/non_lora_trainables.safetensors", out);
        ET_TRY(et_export_non_lora_trainables(p, m));
        if (m->explicit_trainable && et_emo_model_trains(m, "projector")) {
            snprintf(p, sizeof p, "%s/mm_projector.safetensors", out);
            ET_TRY(et_export_mm_projector(p, m));
        }
        // a full fine-tune's decoder: the merged checkpoint is the result (no adapter)
        if (et_emo_model_trains(m, "decoder") || et_emo_model_trains(m, "embeddings"))
            merged = true;
        if (et_emo_model_trains(m, "tower")) {
            snprintf(p, sizeof p, "%s/vision", out);
            ET_TRY(et_mkdirs(p));
            ET_TRY(et_export_clip_vision(p, m->mllm.vision, m->mllm.vision->patch_weight->dtype));
        }
        export_slow_hook();
    }
    if (what & ET_EXPORT_BASE) {
        snprintf(p, sizeof p, "%s/base/llm", out);
        ET_TRY(et_mkdirs(p));
        et_export_opts eo = et_export_defaults(m->llm);
        eo.without_lora = true;
        ET_TRY(et_export_merged_llama(p, m->llm, &eo));
        if (m->mllm.vision) {
            snprintf(p, sizeof p, "%s/base/vision", out);
            ET_TRY(et_mkdirs(p));
            ET_TRY(et_export_clip_vision(p, m->mllm.vision, m->mllm.vision->patch_weight->dtype));
        }
        snprintf(p, sizeof p, "%s/base", out);
        et_fsync_dir(p);
        export_slow_hook();
    }
    if (merged) {
        snprintf(p, sizeof p, "%s/merged", out);
        ET_TRY(et_mkdirs(p));
        et_export_opts eo = et_export_defaults(m->llm);
        ET_TRY(et_export_merged_llama(p, m->llm, &eo));
        export_slow_hook();
    }
    et_fsync_dir(out);
    return NULL;
}

// ---- the export directory as a whole ------------------------------------------------

#define TMP_TAG ".tmp-export-"

// out without trailing slashes, split into its parent directory and base name.
static et_status split_out(const char *out_in, char *out, size_t cap, char *parent, size_t pcap,
                           const char **base) {
    if (!out_in || !*out_in) return et_err(ET_ERR_INVALID, "export: --out is empty");
    if (strlen(out_in) > 4000) return et_err(ET_ERR_INVALID, "export: path too long");
    snprintf(out, cap, "%s", out_in);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = 0;
    const char *slash = strrchr(out, '/');
    *base = slash ? slash + 1 : out;
    if (!**base || !strcmp(*base, ".") || !strcmp(*base, ".."))
        return et_err(ET_ERR_INVALID, "export %s: --out must name a directory (not /, . or ..)",
                      out_in);
    if (!slash)
        snprintf(parent, pcap, ".");
    else if (slash == out)
        snprintf(parent, pcap, "/");
    else
        snprintf(parent, pcap, "%.*s", (int)(slash - out), out);
    return NULL;
}

// Removes "<base>.tmp-export-<pid>" siblings of out left by exports that are no longer
// running (killed): only names of exactly that form, never anything else.
static void clean_stale_temps(const char *parent, const char *base) {
    DIR *d = opendir(parent);
    if (!d) return;
    const size_t bl = strlen(base), tl = strlen(TMP_TAG);
    struct dirent *e;
    char p[8400];
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (strncmp(n, base, bl) || strncmp(n + bl, TMP_TAG, tl)) continue;
        const char *digits = n + bl + tl;
        char *end = NULL;
        long pid = strtol(digits, &end, 10);
        if (!*digits || *end || pid <= 0) continue;
        if (pid != (long)getpid() && !(kill((pid_t)pid, 0) != 0 && errno == ESRCH)) continue;
        snprintf(p, sizeof p, "%s/%s", parent, n);
        et_warn("export: removing %s, left by an export that did not finish (pid %ld)", p, pid);
        et_status_free(et_remove_tree(p));
    }
    closedir(d);
}

et_status et_export_check_out(const char *out_in, bool overwrite) {
    char out[4100], parent[4100];
    const char *base = NULL;
    ET_TRY(split_out(out_in, out, sizeof out, parent, sizeof parent, &base));
    const int kind = et_path_exists(out);
    if (kind == 1) return et_err(ET_ERR_INVALID, "export %s: exists and is not a directory", out);
    if (kind == 0 || !dir_nonempty(out)) return NULL;
    char p[4200];
    snprintf(p, sizeof p, "%s/checkpoints", out);
    const bool run = et_path_exists(p) != 0;
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    if (run || et_path_exists(p))
        return et_err(ET_ERR_INVALID,
                      "export %s: this is a training run (it holds checkpoints/ or "
                      "metrics.jsonl), not an export; choose another --out",
                      out);
    if (!overwrite)
        return et_err(ET_ERR_INVALID,
                      "export %s: the directory exists and is not empty; nothing was changed. "
                      "Pass --overwrite to replace it (the old export is moved to %s.old-<time>) "
                      "or choose another --out",
                      out, out);
    return NULL;
}

// Renames the complete export tmp to out; an old export in out is moved to out.old-<time>
// (overwrite), exchanged atomically where the kernel can (renameat2 RENAME_EXCHANGE).
static et_status commit(const char *tmp, const char *out, bool overwrite) {
    if (rename(tmp, out) == 0) return NULL;  // out absent or an empty directory
    if (errno != ENOTEMPTY && errno != EEXIST)
        return et_err(ET_ERR_IO, "export %s: cannot rename %s to it: %s", out, tmp,
                      strerror(errno));
    if (!overwrite)
        return et_err(ET_ERR_IO,
                      "export %s: the directory was filled while exporting (another export?); "
                      "nothing was changed",
                      out);
    char aside[4300], stamp[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(aside, sizeof aside, "%s.old-%s", out, stamp);
    for (int k = 2; et_path_exists(aside) && k < 1000; k++)
        snprintf(aside, sizeof aside, "%s.old-%s-%d", out, stamp, k);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_EXCHANGE) == 0) {
        // out is the new export now; the old one sits at tmp's name
        if (rename(tmp, aside) != 0)
            return et_err(ET_ERR_IO,
                          "export %s: done, but the old export at %s could not be "
                          "moved to %s: %s",
                          out, tmp, aside, strerror(errno));
    } else {  // no RENAME_EXCHANGE here (file system): two renames
        if (rename(out, aside) != 0)
            return et_err(ET_ERR_IO, "export %s: cannot move the old export to %s: %s", out, aside,
                          strerror(errno));
        if (rename(tmp, out) != 0)
            return et_err(ET_ERR_IO,
                          "export %s: cannot rename %s to it: %s (the old export is "
                          "at %s)",
                          out, tmp, strerror(errno), aside);
    }
    et_info("export: the previous export in %s was moved to %s", out, aside);
    return NULL;
}

et_status et_export_emo_model(const char *out_in, const et_emo_model *m, unsigned what) {
    const bool overwrite = (what & ET_EXPORT_OVERWRITE) != 0;
    char out[4100], parent[4100], tmp[8300];
    const char *base = NULL;
    ET_TRY(split_out(out_in, out, sizeof out, parent, sizeof parent, &base));
    ET_TRY(et_export_check_out(out, overwrite));
    ET_TRY(et_mkdirs(parent));
    clean_stale_temps(parent, base);
    snprintf(tmp, sizeof tmp, "%s/%s%s%ld", parent, base, TMP_TAG, (long)getpid());
    if (mkdir(tmp, 0755) != 0)
        return et_err(ET_ERR_IO, "export %s: cannot create %s: %s", out, tmp, strerror(errno));
    et_status st = write_parts(tmp, m, what);
    if (!st) st = commit(tmp, out, overwrite);
    if (!st) et_fsync_dir(parent);
    if (st && et_path_exists(tmp)) et_status_free(et_remove_tree(tmp));
    return st;
}
