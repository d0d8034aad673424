// train/models/config.c - see config.h
#include "core/fileio.h"
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

et_llama_config et_llama_config_default(void) {
    et_llama_config c;
    memset(&c, 0, sizeof(c));
    c.vocab_size = 32000;
    c.hidden_size = 4096;
    c.intermediate_size = 11008;
    c.num_hidden_layers = 32;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 32;
    c.head_dim = 128;
    c.max_position_embeddings = 2048;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 10000.0;
    c.rope_kind = ET_ROPE_DEFAULT;
    c.rope_factor = 1.0;
    c.bos_token_id = 1;
    c.pad_token_id = -1;
    c.n_eos = 1;
    c.eos_token_ids[0] = 2;
    return c;
}

// The item at key, or NULL when absent or JSON null.
static const cJSON *field(const cJSON *obj, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return (it && !cJSON_IsNull(it)) ? it : NULL;
}

// A number as typed: integers as integers, others with the fewest digits that read back
// as the same double (0.1, not 0.10000000000000001; 1048576, not 1.04858e+06).
static const char *fmt_num(double v, char *buf, size_t n) {
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e18) {
        snprintf(buf, n, "%.0f", v);
        return buf;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

static void describe(const cJSON *it, char *buf, size_t n) {
    if (cJSON_IsNumber(it))
        fmt_num(it->valuedouble, buf, n);
    else if (cJSON_IsString(it)) snprintf(buf, n, "\"%.60s\"", it->valuestring);
    else if (cJSON_IsBool(it)) snprintf(buf, n, "%s", cJSON_IsTrue(it) ? "true" : "false");
    else if (cJSON_IsArray(it)) snprintf(buf, n, "an array");
    else if (cJSON_IsObject(it)) snprintf(buf, n, "an object");
    else snprintf(buf, n, "an invalid value");
}

static et_status bad(const char *name, const char *path, const char *want, const cJSON *it) {
    char got[96];
    describe(it, got, sizeof got);
    return et_err(ET_ERR_INVALID, "%s: field '%s': expected %s, got %s", name, path, want, got);
}

static bool is_int(const cJSON *it, double lo, double hi) {
    if (!cJSON_IsNumber(it)) return false;
    double v = it->valuedouble;
    return v == floor(v) && v >= lo && v <= hi;
}

// *dst = obj[key] (positive integer). Absent: error when required, else keeps *dst.
static et_status get_pos_int(const cJSON *obj, const char *name, const char *prefix,
                             const char *key, bool required, int64_t *dst) {
    char path[128];
    snprintf(path, sizeof path, "%s%s", prefix, key);
    const cJSON *it = field(obj, key);
    if (!it) {
        if (required)
            return et_err(ET_ERR_MISSING, "%s: required field '%s' is missing", name, path);
        return NULL;
    }
    if (!is_int(it, 1, 9.007199254740992e15)) return bad(name, path, "a positive integer", it);
    *dst = (int64_t)it->valuedouble;
    return NULL;
}

static et_status get_pos_num(const cJSON *obj, const char *name, const char *prefix,
                             const char *key, bool required, double *dst) {
    char path[128];
    snprintf(path, sizeof path, "%s%s", prefix, key);
    const cJSON *it = field(obj, key);
    if (!it) {
        if (required)
            return et_err(ET_ERR_MISSING, "%s: required field '%s' is missing", name, path);
        return NULL;
    }
    if (!cJSON_IsNumber(it) || !(it->valuedouble > 0) || !isfinite(it->valuedouble))
        return bad(name, path, "a positive number", it);
    *dst = it->valuedouble;
    return NULL;
}

static et_status get_bool(const cJSON *obj, const char *name, const char *key, bool *dst) {
    const cJSON *it = field(obj, key);
    if (!it) return NULL;
    if (!cJSON_IsBool(it)) return bad(name, key, "true or false", it);
    *dst = cJSON_IsTrue(it);
    return NULL;
}

// Token id: a non-negative integer, or absent/null (-> -1 when `none_ok`).
static et_status get_token(const cJSON *obj, const char *name, const char *key, int *dst) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it) return NULL;
    if (cJSON_IsNull(it)) {
        *dst = -1;
        return NULL;
    }
    if (!is_int(it, 0, 2147483647.0)) return bad(name, key, "a non-negative integer", it);
    *dst = (int)it->valuedouble;
    return NULL;
}

static et_status get_eos(const cJSON *obj, const char *name, et_llama_config *c) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, "eos_token_id");
    if (!it) return NULL;
    if (cJSON_IsNull(it)) {
        c->n_eos = 0;
        return NULL;
    }
    if (cJSON_IsNumber(it)) {
        if (!is_int(it, 0, 2147483647.0))
            return bad(name, "eos_token_id", "a non-negative integer or a list of them", it);
        c->n_eos = 1;
        c->eos_token_ids[0] = (int)it->valuedouble;
        return NULL;
    }
    if (!cJSON_IsArray(it))
        return bad(name, "eos_token_id", "a non-negative integer or a list of them", it);
    int n = cJSON_GetArraySize(it);
    if (n > ET_LLAMA_MAX_EOS)
        return et_err(ET_ERR_UNSUPPORTED, "%s: field 'eos_token_id': %d ids, at most %d supported",
                      name, n, ET_LLAMA_MAX_EOS);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(it, i);
        if (!is_int(e, 0, 2147483647.0)) {
            char path[64];
            snprintf(path, sizeof path, "eos_token_id[%d]", i);
            return bad(name, path, "a non-negative integer", e);
        }
        c->eos_token_ids[i] = (int)e->valuedouble;
    }
    c->n_eos = n;
    return NULL;
}

// rope_scaling / rope_parameters block `rs` (prefix "rope_scaling.").
static et_status get_rope(const cJSON *rs, const char *name, const char *prefix,
                          et_llama_config *c) {
    char path[128];
    if (!cJSON_IsObject(rs)) return bad(name, prefix, "an object", rs);
    const char *key = "rope_type";
    const cJSON *ty = field(rs, "rope_type");
    if (!ty) ty = field(rs, "type"), key = "type";
    snprintf(path, sizeof path, "%s.%s", prefix, key);
    if (!ty) return et_err(ET_ERR_MISSING, "%s: field '%s.rope_type' is missing", name, prefix);
    if (!cJSON_IsString(ty)) return bad(name, path, "a string", ty);
    char pre[96];
    snprintf(pre, sizeof pre, "%s.", prefix);
    if (strcmp(ty->valuestring, "default") == 0) {
        c->rope_kind = ET_ROPE_DEFAULT;
    } else if (strcmp(ty->valuestring, "linear") == 0) {
        c->rope_kind = ET_ROPE_LINEAR;
        ET_TRY(get_pos_num(rs, name, pre, "factor", true, &c->rope_factor));
    } else if (strcmp(ty->valuestring, "llama3") == 0) {
        c->rope_kind = ET_ROPE_LLAMA3;
        ET_TRY(get_pos_num(rs, name, pre, "factor", true, &c->rope_factor));
        ET_TRY(get_pos_num(rs, name, pre, "low_freq_factor", true, &c->rope_low_freq_factor));
        ET_TRY(get_pos_num(rs, name, pre, "high_freq_factor", true, &c->rope_high_freq_factor));
        ET_TRY(get_pos_int(rs, name, pre, "original_max_position_embeddings", true,
                           &c->rope_original_max_pos));
        char hi[40], lo[40];
        if (!(c->rope_high_freq_factor > c->rope_low_freq_factor))
            return et_err(ET_ERR_INVALID,
                          "%s: field '%s.high_freq_factor' (%s) must exceed low_freq_factor (%s)",
                          name, prefix, fmt_num(c->rope_high_freq_factor, hi, sizeof hi),
                          fmt_num(c->rope_low_freq_factor, lo, sizeof lo));
    } else {
        return et_err(ET_ERR_UNSUPPORTED,
                      "%s: field '%s': rope type \"%.40s\" is not supported (default, linear, "
                      "llama3)",
                      name, path, ty->valuestring);
    }
    return NULL;
}

static et_status parse_obj(const cJSON *root, const char *name, et_llama_config *c) {
    if (!cJSON_IsObject(root)) return et_err(ET_ERR_FORMAT, "%s: not a JSON object", name);
    ET_TRY(get_pos_int(root, name, "", "vocab_size", true, &c->vocab_size));
    ET_TRY(get_pos_int(root, name, "", "hidden_size", true, &c->hidden_size));
    ET_TRY(get_pos_int(root, name, "", "intermediate_size", true, &c->intermediate_size));
    ET_TRY(get_pos_int(root, name, "", "num_hidden_layers", true, &c->num_hidden_layers));
    ET_TRY(get_pos_int(root, name, "", "num_attention_heads", true, &c->num_attention_heads));
    c->num_key_value_heads = c->num_attention_heads;
    ET_TRY(get_pos_int(root, name, "", "num_key_value_heads", false, &c->num_key_value_heads));
    if (c->num_attention_heads % c->num_key_value_heads)
        return et_err(ET_ERR_INVALID,
                      "%s: field 'num_key_value_heads': %lld does not divide "
                      "num_attention_heads %lld",
                      name, (long long)c->num_key_value_heads, (long long)c->num_attention_heads);
    c->head_dim = 0;
    ET_TRY(get_pos_int(root, name, "", "head_dim", false, &c->head_dim));
    if (!c->head_dim) {
        if (c->hidden_size % c->num_attention_heads)
            return et_err(ET_ERR_INVALID,
                          "%s: field 'hidden_size': %lld is not a multiple of "
                          "num_attention_heads %lld (and no head_dim is given)",
                          name, (long long)c->hidden_size, (long long)c->num_attention_heads);
        c->head_dim = c->hidden_size / c->num_attention_heads;
    }
    if (c->head_dim % 2)
        return et_err(ET_ERR_INVALID, "%s: field 'head_dim': %lld must be even for RoPE", name,
                      (long long)c->head_dim);
    ET_TRY(get_pos_int(root, name, "", "max_position_embeddings", false,
                       &c->max_position_embeddings));
    ET_TRY(get_pos_num(root, name, "", "rms_norm_eps", false, &c->rms_norm_eps));
    ET_TRY(get_pos_num(root, name, "", "rope_theta", false, &c->rope_theta));
    const cJSON *rp = field(root, "rope_parameters");
    if (rp) {
        if (!cJSON_IsObject(rp)) return bad(name, "rope_parameters", "an object", rp);
        ET_TRY(get_pos_num(rp, name, "rope_parameters.", "rope_theta", false, &c->rope_theta));
        if (field(rp, "rope_type") || field(rp, "type"))
            ET_TRY(get_rope(rp, name, "rope_parameters", c));
    }
    const cJSON *rs = field(root, "rope_scaling");
    if (rs) ET_TRY(get_rope(rs, name, "rope_scaling", c));
    ET_TRY(get_bool(root, name, "tie_word_embeddings", &c->tie_word_embeddings));
    ET_TRY(get_bool(root, name, "attention_bias", &c->attention_bias));
    ET_TRY(get_bool(root, name, "mlp_bias", &c->mlp_bias));
    ET_TRY(get_token(root, name, "bos_token_id", &c->bos_token_id));
    ET_TRY(get_token(root, name, "pad_token_id", &c->pad_token_id));
    ET_TRY(get_eos(root, name, c));
    const cJSON *act = field(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        return bad(name, "hidden_act", "\"silu\" (the only activation of the LLaMA MLP)", act);
    return NULL;
}

et_status et_llama_config_parse(const char *json, const char *name, et_llama_config *out) {
    et_llama_config c = et_llama_config_default();
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, true);
    if (!root) {
        return et_err(ET_ERR_FORMAT, "%s: not valid JSON (error near byte %td)", name,
                      end ? end - json : (ptrdiff_t)0);
    }
    et_status s = parse_obj(root, name, &c);
    cJSON_Delete(root);
    if (!s) *out = c;
    return s;
}

et_status et_llama_config_load(const char *path, et_llama_config *out) {
    char *buf = NULL;
    ET_TRY(et_read_file(path, ET_CONFIG_MAX_BYTES, &buf, NULL));
    et_status s = et_llama_config_parse(buf, path, out);
    free(buf);
    return s;
}
