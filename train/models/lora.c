// train/models/lora.c - see lora.h
#include "lora.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/autograd.h"
#include "core/fileio.h"
#include "core/ops.h"
#include "core/rng.h"
#include "core/safetensors.h"

#define KEY_PREFIX "base_model.model."

et_lora_config et_lora_config_default(void) {
    et_lora_config c;
    memset(&c, 0, sizeof c);
    c.r = 8;
    c.alpha = 16;
    c.dropout = 0.05;
    return c;
}

static double lora_scale(const et_lora_config *cfg) {
    return cfg->use_rslora ? cfg->alpha / sqrt((double)cfg->r) : cfg->alpha / cfg->r;
}

// ---- targeting ------------------------------------------------------------------

typedef struct {
    bool use_re;
    regex_t re;
} matcher_t;

static et_status matcher_init(matcher_t *m, const et_lora_config *cfg) {
    m->use_re = cfg->regex[0] != 0;
    if (!m->use_re) return NULL;
    char pat[300];
    snprintf(pat, sizeof pat, "^(%s)$", cfg->regex);
    int rc = regcomp(&m->re, pat, REG_EXTENDED | REG_NOSUB);
    if (rc) {
        char why[128];
        regerror(rc, &m->re, why, sizeof why);
        m->use_re = false;
        return et_err(ET_ERR_INVALID, "LoRA target regex \"%s\": %s", cfg->regex, why);
    }
    return NULL;
}

static void matcher_free(matcher_t *m) {
    if (m->use_re) regfree(&m->re);
}

static bool matcher_test(const matcher_t *m, const et_lora_config *cfg, const char *name) {
    if (m->use_re) return regexec(&m->re, name, 0, NULL, 0) == 0;
    size_t ln = strlen(name);
    for (int i = 0; i < cfg->n_targets; i++) {
        const char *t = cfg->targets[i];
        size_t lt = strlen(t);
        if (!lt) continue;
        if (!strcmp(name, t)) return true;
        if (ln > lt && !strcmp(name + ln - lt, t) && name[ln - lt - 1] == '.') return true;
    }
    return false;
}

et_status et_lora_matches(const et_lora_config *cfg, const char *name, bool *out) {
    matcher_t m;
    ET_TRY(matcher_init(&m, cfg));
    *out = matcher_test(&m, cfg, name);
    matcher_free(&m);
    return NULL;
}

static et_status check_cfg(const et_lora_config *cfg) {
    if (cfg->r <= 0) return et_err(ET_ERR_INVALID, "LoRA r must be positive, got %d", cfg->r);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1))
        return et_err(ET_ERR_INVALID, "LoRA dropout must be in [0, 1), got %g", cfg->dropout);
    if (!isfinite(cfg->alpha)) return et_err(ET_ERR_INVALID, "LoRA alpha must be finite");
    if (!cfg->regex[0] && cfg->n_targets <= 0)
        return et_err(ET_ERR_INVALID, "LoRA: no target modules (set targets or regex)");
    return NULL;
}

static void freeze_base(et_linear_layer *l) {
    et_set_requires_grad(l->weight, false);
    if (l->bias) et_set_requires_grad(l->bias, false);
}

et_status et_lora_attach(const et_lora_config *cfg, int n, et_linear_layer *const *layers,
                         int *n_attached) {
    ET_TRY(check_cfg(cfg));
    matcher_t m;
    ET_TRY(matcher_init(&m, cfg));
    for (int i = 0; i < n; i++) {
        if (matcher_test(&m, cfg, layers[i]->name) && layers[i]->lora_a) {
            matcher_free(&m);
            return et_err(ET_ERR_INVALID, "LoRA: layer %s already has an adapter", layers[i]->name);
        }
    }
    uint64_t off = cfg->offset;
    int cnt = 0;
    for (int i = 0; i < n; i++) {
        et_linear_layer *l = layers[i];
        if (!matcher_test(&m, cfg, l->name)) continue;
        ET_ASSERT(l->weight && l->weight->ndim == 2, "et_lora_attach: %s has no 2-D weight",
                  l->name);
        const int64_t out = l->weight->shape[0], in = l->weight->shape[1];
        l->lora_a = et_empty(ET_F32, 2, (int64_t[]){cfg->r, in});  // [r, in]
        et_kaiming_uniform_(l->lora_a, sqrt(5.0), cfg->seed, off);
        off += (uint64_t)(cfg->r * in);
        l->lora_b = et_zeros(ET_F32, 2, (int64_t[]){out, cfg->r});  // [out, r]
        et_set_requires_grad(l->lora_a, true);
        et_set_requires_grad(l->lora_b, true);
        l->lora_scale = lora_scale(cfg);
        l->lora_dropout = cfg->dropout;
        l->merged = false;
        freeze_base(l);
        cnt++;
    }
    matcher_free(&m);
    if (n_attached) *n_attached = cnt;
    return NULL;
}

int et_lora_params(int n, et_linear_layer *const *layers, et_tensor **out) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!layers[i]->lora_a) continue;
        if (out) out[k] = layers[i]->lora_a, out[k + 1] = layers[i]->lora_b;
        k += 2;
    }
    return k;
}

// ---- merge ----------------------------------------------------------------------

// W += sign * scale * (B @ A) in f32, rounded once into W's dtype.
static void fold(et_linear_layer *l, double sign) {
    et_no_grad_begin();
    et_tensor *a = l->lora_a->dtype == ET_F32 ? et_retain(l->lora_a) : et_cast(l->lora_a, ET_F32);
    et_tensor *b = l->lora_b->dtype == ET_F32 ? et_retain(l->lora_b) : et_cast(l->lora_b, ET_F32);
    et_tensor *delta = et_matmul(b, a, false, false);  // [out, in] f32
    et_release(a), et_release(b);
    et_tensor *w = l->weight;
    et_tensor *w32 = w->dtype == ET_F32 ? et_retain(w) : et_empty(ET_F32, w->ndim, w->shape);
    if (w32 != w) et_copy_(w32, w);
    float *pw = ET_DATA(float, w32);
    const float *pd = ET_DATA(float, delta);
    const float s = (float)(sign * l->lora_scale);
    for (int64_t i = 0; i < w32->numel; i++) pw[i] += s * pd[i];
    if (w32 != w) et_copy_(w, w32);
    et_release(w32), et_release(delta);
    et_no_grad_end();
}

void et_lora_merge(int n, et_linear_layer *const *layers) {
    for (int i = 0; i < n; i++) {
        et_linear_layer *l = layers[i];
        if (!l->lora_a || l->merged) continue;
        fold(l, 1.0);
        l->merged = true;
    }
}

void et_lora_unmerge(int n, et_linear_layer *const *layers) {
    for (int i = 0; i < n; i++) {
        et_linear_layer *l = layers[i];
        if (!l->lora_a || !l->merged) continue;
        fold(l, -1.0);
        l->merged = false;
    }
}

// ---- export ---------------------------------------------------------------------

static et_status write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    if (!fp) return et_err(ET_ERR_IO, "%s: cannot create (%s)", path, strerror(errno));
    size_t n = strlen(text);
    bool ok = fwrite(text, 1, n, fp) == n;
    ok = (fclose(fp) == 0) && ok;
    return ok ? NULL : et_err(ET_ERR_IO, "%s: write failed", path);
}

static et_status make_dir(const char *dir) {
    if (mkdir(dir, 0755) && errno != EEXIST)
        return et_err(ET_ERR_IO, "%s: cannot create directory (%s)", dir, strerror(errno));
    return NULL;
}

et_status et_lora_save_adapter(const char *dir, const et_lora_config *cfg, int n,
                               et_linear_layer *const *layers) {
    ET_TRY(check_cfg(cfg));
    int na = et_lora_params(n, layers, NULL);
    if (!na) return et_err(ET_ERR_INVALID, "LoRA export to %s: no layer carries an adapter", dir);
    for (int i = 0; i < n; i++)
        if (layers[i]->lora_a && layers[i]->merged)
            return et_err(ET_ERR_INVALID, "LoRA export: layer %s is merged; unmerge first",
                          layers[i]->name);
    ET_TRY(make_dir(dir));
    const char **names = calloc((size_t)na, sizeof *names);
    char *buf = calloc((size_t)na, 256);
    et_tensor **ts = calloc((size_t)na, sizeof *ts);
    int k = 0;
    et_no_grad_begin();  // the casts below must not record
    for (int i = 0; i < n; i++) {
        et_linear_layer *l = layers[i];
        if (!l->lora_a) continue;
        for (int j = 0; j < 2; j++, k++) {
            snprintf(buf + 256 * k, 256, KEY_PREFIX "%s.lora_%c.weight", l->name, j ? 'B' : 'A');
            names[k] = buf + 256 * k;
            et_tensor *t = j ? l->lora_b : l->lora_a;
            ts[k] = t->dtype == ET_F32 ? et_detach(t) : et_cast(t, ET_F32);
        }
    }
    et_no_grad_end();
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    const char *meta[2] = {"format", "pt"};
    et_status s = et_st_save(path, na, names, ts, 1, meta);
    for (int i = 0; i < k; i++) et_release(ts[i]);
    free(names), free(buf), free(ts);
    if (s) return s;

    // adapter_config.json: PEFT 0.13's LoraConfig fields in sorted order, as PEFT writes them.
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(j, "auto_mapping");
    if (cfg->base_model[0])
        cJSON_AddStringToObject(j, "base_model_name_or_path", cfg->base_model);
    else
        cJSON_AddNullToObject(j, "base_model_name_or_path");
    cJSON_AddStringToObject(j, "bias", "none");
    cJSON_AddFalseToObject(j, "fan_in_fan_out");
    cJSON_AddTrueToObject(j, "inference_mode");
    cJSON_AddTrueToObject(j, "init_lora_weights");
    cJSON_AddNullToObject(j, "layer_replication");
    cJSON_AddNullToObject(j, "layers_pattern");
    cJSON_AddNullToObject(j, "layers_to_transform");
    cJSON_AddItemToObject(j, "loftq_config", cJSON_CreateObject());
    cJSON_AddNumberToObject(j, "lora_alpha", cfg->alpha);
    cJSON_AddNumberToObject(j, "lora_dropout", cfg->dropout);
    cJSON_AddNullToObject(j, "megatron_config");
    cJSON_AddStringToObject(j, "megatron_core", "megatron.core");
    cJSON_AddNullToObject(j, "modules_to_save");
    cJSON_AddStringToObject(j, "peft_type", "LORA");
    cJSON_AddNumberToObject(j, "r", cfg->r);
    cJSON_AddItemToObject(j, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(j, "revision");
    if (cfg->regex[0]) {
        cJSON_AddStringToObject(j, "target_modules", cfg->regex);
    } else {
        cJSON *arr = cJSON_AddArrayToObject(j, "target_modules");
        for (int i = 0; i < cfg->n_targets; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(cfg->targets[i]));
    }
    cJSON_AddStringToObject(j, "task_type", "CAUSAL_LM");
    cJSON_AddFalseToObject(j, "use_dora");
    cJSON_AddBoolToObject(j, "use_rslora", cfg->use_rslora);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    s = write_text(path, text);
    cJSON_free(text);
    return s;
}

// ---- import ---------------------------------------------------------------------

static bool json_is_empty(const cJSON *v) {
    return !v || cJSON_IsNull(v) || ((cJSON_IsObject(v) || cJSON_IsArray(v)) && !v->child);
}

static et_status parse_config(const char *path, const char *text, et_lora_config *c) {
    cJSON *j = cJSON_Parse(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return et_err(ET_ERR_FORMAT, "%s: not a JSON object", path);
    }
    *c = et_lora_config_default();
    c->dropout = 0;
    et_status s = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "peft_type");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA"))
        s = et_err(ET_ERR_UNSUPPORTED, "%s: peft_type must be \"LORA\"", path);
    v = cJSON_GetObjectItemCaseSensitive(j, "r");
    if (!s && (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
               v->valuedouble < 1 || v->valuedouble > 65536))
        s = et_err(ET_ERR_INVALID, "%s: \"r\" must be a positive integer", path);
    if (!s) c->r = (int)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    if (!s && (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)))
        s = et_err(ET_ERR_INVALID, "%s: \"lora_alpha\" must be a number", path);
    if (!s) c->alpha = v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout");
    if (!s && v && !cJSON_IsNull(v)) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1))
            s = et_err(ET_ERR_INVALID, "%s: \"lora_dropout\" must be in [0, 1)", path);
        else
            c->dropout = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "use_rslora");
    if (!s && v && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v))
            s = et_err(ET_ERR_INVALID, "%s: \"use_rslora\" must be a bool", path);
        else
            c->use_rslora = cJSON_IsTrue(v);
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "bias");
    if (!s && v && !cJSON_IsNull(v) && (!cJSON_IsString(v) || strcmp(v->valuestring, "none")))
        s = et_err(ET_ERR_UNSUPPORTED, "%s: only bias \"none\" is supported", path);
    v = cJSON_GetObjectItemCaseSensitive(j, "fan_in_fan_out");
    if (!s && cJSON_IsTrue(v))
        s = et_err(ET_ERR_UNSUPPORTED, "%s: fan_in_fan_out true is not supported", path);
    v = cJSON_GetObjectItemCaseSensitive(j, "use_dora");
    if (!s && cJSON_IsTrue(v)) s = et_err(ET_ERR_UNSUPPORTED, "%s: DoRA is not supported", path);
    static const char *const k_empty[] = {"modules_to_save", "rank_pattern", "alpha_pattern",
                                          "layers_to_transform", "layer_replication"};
    for (size_t i = 0; !s && i < sizeof k_empty / sizeof *k_empty; i++)
        if (!json_is_empty(cJSON_GetObjectItemCaseSensitive(j, k_empty[i])))
            s = et_err(ET_ERR_UNSUPPORTED, "%s: \"%s\" is not supported (must be null or empty)",
                       path, k_empty[i]);
    v = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (!s) {
        if (cJSON_IsString(v)) {
            if (strlen(v->valuestring) >= sizeof c->regex)
                s = et_err(ET_ERR_INVALID, "%s: target_modules regex too long", path);
            else
                snprintf(c->regex, sizeof c->regex, "%s", v->valuestring);
        } else if (cJSON_IsArray(v) && v->child) {
            for (const cJSON *e = v->child; e && !s; e = e->next) {
                if (!cJSON_IsString(e) || !e->valuestring[0] ||
                    strlen(e->valuestring) >= sizeof c->targets[0])
                    s = et_err(ET_ERR_INVALID,
                               "%s: target_modules entries must be non-empty "
                               "strings under %zu bytes",
                               path, sizeof c->targets[0]);
                else if (c->n_targets == ET_LORA_MAX_TARGETS)
                    s = et_err(ET_ERR_UNSUPPORTED, "%s: more than %d target_modules", path,
                               ET_LORA_MAX_TARGETS);
                else
                    snprintf(c->targets[c->n_targets++], sizeof c->targets[0], "%s",
                             e->valuestring);
            }
        } else {
            s = et_err(ET_ERR_INVALID,
                       "%s: target_modules must be a non-empty list or a regex "
                       "string",
                       path);
        }
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path");
    if (!s && cJSON_IsString(v))
        snprintf(c->base_model, sizeof c->base_model, "%s", v->valuestring);
    cJSON_Delete(j);
    return s;
}

et_status et_lora_read_config(const char *dir, et_lora_config *cfg) {
    char path[4096], *text = NULL;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    ET_TRY(et_read_file(path, ET_CONFIG_MAX_BYTES, &text, NULL));
    et_status s = parse_config(path, text, cfg);
    free(text);
    return s;
}

static void list_add(char *buf, size_t cap, const char *item) {
    size_t n = strlen(buf);
    if (n + 8 >= cap) return;
    int w = snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", item);
    if (w < 0 || (size_t)w >= cap - n) snprintf(buf + cap - 5, 5, "...");
}

// Splits "base_model.model.<module>.lora_{A,B}.weight"; returns the layer index or -1 and
// sets *which to 0 (A) / 1 (B), -1 when the key has another form.
static int key_layer(const char *key, int n, et_linear_layer *const *layers, int *which) {
    static const char *const k_suffix[2] = {".lora_A.weight", ".lora_B.weight"};
    *which = -1;
    size_t lp = strlen(KEY_PREFIX), lk = strlen(key);
    if (lk <= lp || strncmp(key, KEY_PREFIX, lp)) return -1;
    for (int w = 0; w < 2; w++) {
        size_t ls = strlen(k_suffix[w]);
        if (lk <= lp + ls || strcmp(key + lk - ls, k_suffix[w])) continue;
        *which = w;
        size_t lm = lk - lp - ls;
        for (int i = 0; i < n; i++)
            if (strlen(layers[i]->name) == lm && !strncmp(layers[i]->name, key + lp, lm)) return i;
        return -1;
    }
    return -1;
}

et_status et_lora_load_adapter(const char *dir, int n, et_linear_layer *const *layers,
                               et_lora_config *cfg_out) {
    et_lora_config cfg;
    ET_TRY(et_lora_read_config(dir, &cfg));
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    et_st_file *f = NULL;
    ET_TRY(et_st_open(path, &f));
    matcher_t m;
    et_status s = matcher_init(&m, &cfg);
    if (s) {
        et_st_close(f);
        return et_status_wrap(s, "%s/adapter_config.json", dir);
    }
    for (int i = 0; i < n; i++)
        if (layers[i]->merged && matcher_test(&m, &cfg, layers[i]->name)) {
            matcher_free(&m);
            et_st_close(f);
            return et_err(ET_ERR_INVALID, "%s: layer %s has a merged adapter; unmerge first", dir,
                          layers[i]->name);
        }
    int *found = calloc((size_t)n, sizeof *found);      // bit 0: A seen, bit 1: B seen
    int *slot = calloc((size_t)(2 * n), sizeof *slot);  // tensor index in f + 1
    char missing[320] = "", bad[480] = "", extra[320] = "", item[400];
    for (int t = 0; t < et_st_num_tensors(f); t++) {
        const char *key = et_st_name(f, t);
        int which, li = key_layer(key, n, layers, &which);
        if (li < 0 || !matcher_test(&m, &cfg, layers[li]->name)) {
            list_add(extra, sizeof extra, key);
            continue;
        }
        et_st_info info;
        et_status si = et_st_info_of(f, key, &info);
        if (si) {
            et_status_free(si);
            continue;
        }
        const et_tensor *w = layers[li]->weight;
        int64_t e0 = which ? w->shape[0] : cfg.r, e1 = which ? cfg.r : w->shape[1];
        if (info.ndim != 2 || info.shape[0] != e0 || info.shape[1] != e1) {
            snprintf(item, sizeof item, "%s [%lld%s%lld] (expected [%lld, %lld] for r=%d)", key,
                     (long long)info.shape[0], info.ndim > 1 ? ", " : "",
                     info.ndim > 1 ? (long long)info.shape[1] : 0LL, (long long)e0, (long long)e1,
                     cfg.r);
            list_add(bad, sizeof bad, item);
            found[li] |= 1 << which;  // present, reported as mis-shaped only
            continue;
        }
        found[li] |= 1 << which;
        slot[2 * li + which] = t + 1;
    }
    for (int i = 0; i < n; i++) {
        if (!matcher_test(&m, &cfg, layers[i]->name)) continue;
        for (int w = 0; w < 2; w++)
            if (!(found[i] & (1 << w))) {
                snprintf(item, sizeof item, KEY_PREFIX "%s.lora_%c.weight", layers[i]->name,
                         w ? 'B' : 'A');
                list_add(missing, sizeof missing, item);
            }
    }
    int n_target = 0;
    for (int i = 0; i < n; i++) n_target += matcher_test(&m, &cfg, layers[i]->name);
    matcher_free(&m);
    if (*missing || *bad || *extra || !n_target) {
        s = et_err(ET_ERR_FORMAT,
                   "%s: LoRA adapter does not fit the model (%d target layers): "
                   "missing [%s]; mis-shaped [%s]; unexpected [%s]",
                   dir, n_target, missing, bad, extra);
    }
    // Load everything first, then install, so a failure leaves the layers untouched.
    et_tensor **loaded = calloc((size_t)(2 * n), sizeof *loaded);
    for (int i = 0; !s && i < 2 * n; i++) {
        if (!slot[i]) continue;
        et_tensor *t = NULL;
        s = et_st_load(f, et_st_name(f, slot[i] - 1), &t);
        if (s) break;
        loaded[i] = et_empty(ET_F32, 2, t->shape);
        et_copy_(loaded[i], t);
        et_release(t);
        et_set_requires_grad(loaded[i], true);
    }
    for (int i = 0; !s && i < n; i++) {
        if (!loaded[2 * i]) continue;
        et_linear_layer *l = layers[i];
        et_release(l->lora_a), et_release(l->lora_b);
        l->lora_a = loaded[2 * i], l->lora_b = loaded[2 * i + 1];
        loaded[2 * i] = loaded[2 * i + 1] = NULL;
        l->lora_scale = lora_scale(&cfg);
        l->lora_dropout = cfg.dropout;
        l->merged = false;
        freeze_base(l);
    }
    for (int i = 0; i < 2 * n; i++) et_release(loaded[i]);
    free(loaded), free(found), free(slot);
    et_st_close(f);
    if (!s && cfg_out) *cfg_out = cfg;
    return s;
}

et_status et_save_trainables(const char *path, int n, const char *const *names,
                             et_tensor *const *tensors) {
    const char *meta[2] = {"format", "pt"};
    return et_st_save(path, n, names, tensors, 1, meta);
}
