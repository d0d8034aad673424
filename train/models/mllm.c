// train/models/mllm.c - see mllm.h
#include "core/fileio.h"
#include "mllm.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/ops.h"

// ---- LLaVA config ---------------------------------------------------------------

static const cJSON *jfield(const cJSON *obj, const char *key) {
    const cJSON *it = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return (it && !cJSON_IsNull(it)) ? it : NULL;
}

static et_status jbad(const char *name, const char *key, const char *want, const cJSON *it) {
    char got[96];
    if (cJSON_IsNumber(it))
        snprintf(got, sizeof got, "%.17g", it->valuedouble);
    else if (cJSON_IsString(it))
        snprintf(got, sizeof got, "\"%.60s\"", it->valuestring);
    else if (cJSON_IsBool(it))
        snprintf(got, sizeof got, "%s", cJSON_IsTrue(it) ? "true" : "false");
    else if (cJSON_IsArray(it))
        snprintf(got, sizeof got, "an array");
    else if (cJSON_IsObject(it))
        snprintf(got, sizeof got, "an object");
    else
        snprintf(got, sizeof got, "an invalid value");
    return et_err(ET_ERR_INVALID, "%s: field '%s': expected %s, got %s", name, key, want, got);
}

// Integer field in [lo, hi]; absent: error when required, else *dst unchanged.
static et_status jint(const cJSON *o, const char *name, const char *key, bool required, double lo,
                      double hi, int64_t *dst) {
    const cJSON *it = jfield(o, key);
    if (!it) {
        if (required)
            return et_err(ET_ERR_MISSING, "%s: required field '%s' is missing", name, key);
        return NULL;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < lo ||
        it->valuedouble > hi) {
        char want[96];
        snprintf(want, sizeof want, "an integer in [%.0f, %.0f]", lo, hi);
        return jbad(name, key, want, it);
    }
    *dst = (int64_t)it->valuedouble;
    return NULL;
}

static et_status jstr(const cJSON *o, const char *name, const char *key, bool required,
                      const char **dst) {
    const cJSON *it = jfield(o, key);
    if (!it) {
        if (required)
            return et_err(ET_ERR_MISSING, "%s: required field '%s' is missing", name, key);
        return NULL;
    }
    if (!cJSON_IsString(it)) return jbad(name, key, "a string", it);
    *dst = it->valuestring;
    return NULL;
}

static et_status parse_llava15(const cJSON *root, const char *name, et_llava_config *c) {
    const char *s = "linear";
    ET_TRY(jstr(root, name, "mm_projector_type", false, &s));
    if (strcmp(s, "linear") && strcmp(s, "mlp2x_gelu"))
        return et_err(ET_ERR_UNSUPPORTED,
                      "%s: field 'mm_projector_type': \"%s\" is not supported (linear, "
                      "mlp2x_gelu)",
                      name, s);
    c->projector = strcmp(s, "linear") ? ET_PROJ_MLP2X_GELU : ET_PROJ_LINEAR;
    ET_TRY(jint(root, name, "mm_hidden_size", true, 1, 1e9, &c->mm_hidden_size));
    int64_t v = 0;
    ET_TRY(jint(root, name, "mm_vision_select_layer", true, -4096, 4096, &v));
    c->select_layer = (int)v;
    s = "patch";
    ET_TRY(jstr(root, name, "mm_vision_select_feature", false, &s));
    if (!strcmp(s, "patch"))
        c->feature = ET_CLIP_PATCH;
    else if (!strcmp(s, "cls_patch"))
        c->feature = ET_CLIP_CLS_PATCH;
    else
        return jbad(name, "mm_vision_select_feature", "\"patch\" or \"cls_patch\"",
                    jfield(root, "mm_vision_select_feature"));
    s = "square";
    ET_TRY(jstr(root, name, "image_aspect_ratio", false, &s));
    if (!strncmp(s, "anyres", 6))
        return et_err(ET_ERR_UNSUPPORTED,
                      "%s: field 'image_aspect_ratio': \"%s\" (LLaVA-NeXT tiling) is not "
                      "supported (square, pad)",
                      name, s);
    if (!strcmp(s, "pad"))
        c->pad_to_square = true;
    else if (strcmp(s, "square"))
        return jbad(name, "image_aspect_ratio", "\"square\" or \"pad\"",
                    jfield(root, "image_aspect_ratio"));
    s = NULL;
    ET_TRY(jstr(root, name, "mm_vision_tower", true, &s));
    if (strlen(s) >= sizeof c->vision_tower)
        return et_err(ET_ERR_INVALID, "%s: field 'mm_vision_tower': longer than %zu bytes", name,
                      sizeof c->vision_tower - 1);
    snprintf(c->vision_tower, sizeof c->vision_tower, "%s", s);
    c->image_token = ET_LLAVA_IMAGE_TOKEN;
    return NULL;
}

static et_status parse_llava_hf(const cJSON *root, const char *name, et_llava_config *c) {
    const cJSON *vc = jfield(root, "vision_config"), *tc = jfield(root, "text_config");
    if (vc && !cJSON_IsObject(vc)) return jbad(name, "vision_config", "an object", vc);
    if (tc && !cJSON_IsObject(tc)) return jbad(name, "text_config", "an object", tc);
    c->hf_layout = true;
    c->projector = ET_PROJ_MLP2X_GELU;
    const char *s = "gelu";
    ET_TRY(jstr(root, name, "projector_hidden_act", false, &s));
    if (strcmp(s, "gelu"))
        return et_err(ET_ERR_UNSUPPORTED,
                      "%s: field 'projector_hidden_act': \"%s\" is not supported (gelu)", name, s);
    c->mm_hidden_size = 1024;
    if (vc) {
        char nm[300];
        snprintf(nm, sizeof nm, "%s (vision_config)", name);
        ET_TRY(jint(vc, nm, "hidden_size", false, 1, 1e9, &c->mm_hidden_size));
    }
    const cJSON *fl = jfield(root, "vision_feature_layer");
    if (fl && cJSON_IsArray(fl))
        return et_err(ET_ERR_UNSUPPORTED,
                      "%s: field 'vision_feature_layer': a list of layers is not supported", name);
    int64_t v = -2;
    ET_TRY(jint(root, name, "vision_feature_layer", false, -4096, 4096, &v));
    c->select_layer = (int)v;
    s = "default";
    ET_TRY(jstr(root, name, "vision_feature_select_strategy", false, &s));
    if (!strcmp(s, "default"))
        c->feature = ET_CLIP_PATCH;
    else if (!strcmp(s, "full"))
        c->feature = ET_CLIP_CLS_PATCH;
    else
        return jbad(name, "vision_feature_select_strategy", "\"default\" or \"full\"",
                    jfield(root, "vision_feature_select_strategy"));
    v = 32000;
    ET_TRY(jint(root, name, "image_token_index", false, -2147483648.0, 2147483647.0, &v));
    c->image_token = (int32_t)v;
    return NULL;
}

et_status et_llava_config_parse(const char *json, const char *name, et_llava_config *out) {
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_Parse(json);
    if (!root) return et_err(ET_ERR_FORMAT, "%s: not valid JSON", name);
    et_status s = NULL;
    if (!cJSON_IsObject(root)) {
        s = et_err(ET_ERR_FORMAT, "%s: expected a JSON object", name);
    } else if (jfield(root, "vision_config") || jfield(root, "text_config")) {
        s = parse_llava_hf(root, name, out);
    } else if (jfield(root, "mm_hidden_size") || jfield(root, "mm_vision_tower") ||
               jfield(root, "mm_projector_type")) {
        s = parse_llava15(root, name, out);
    } else {
        s = et_err(ET_ERR_FORMAT,
                   "%s: not a LLaVA config (no mm_hidden_size / mm_vision_tower / "
                   "mm_projector_type, no vision_config / text_config)",
                   name);
    }
    cJSON_Delete(root);
    if (s) memset(out, 0, sizeof *out);
    return s;
}

et_status et_llava_config_load(const char *path, et_llava_config *out) {
    char *buf = NULL;
    ET_TRY(et_read_file(path, ET_CONFIG_MAX_BYTES, &buf, NULL));
    et_status s = et_llava_config_parse(buf, path, out);
    free(buf);
    return s;
}

// ---- assembly -------------------------------------------------------------------

int et_mllm_decoder_linears(et_llama *llm, et_linear_layer **out) {
    const int L = (int)llm->cfg.num_hidden_layers;
    if (out)
        for (int i = 0; i < L; i++) {
            et_llama_layer *y = &llm->layers[i];
            et_linear_layer *ls[7] = {&y->q_proj,    &y->k_proj,  &y->v_proj,   &y->o_proj,
                                      &y->gate_proj, &y->up_proj, &y->down_proj};
            for (int j = 0; j < 7; j++) out[7 * i + j] = ls[j];
        }
    return 7 * L;
}

et_status et_mllm_attach_lora(et_mllm *m, const et_lora_config *cfg, int *n_attached) {
    int n = et_mllm_decoder_linears(m->llm, NULL);
    et_linear_layer **ls = malloc(sizeof(*ls) * (size_t)n);
    ET_ASSERT(ls, "out of memory");
    et_mllm_decoder_linears(m->llm, ls);
    et_status s = et_lora_attach(cfg, n, ls, n_attached);
    free(ls);
    return s;
}

et_tensor *et_mllm_encode_images(et_mllm *m, et_tensor *pixels) {
    ET_ASSERT(m->vision && m->proj, "et_mllm_encode_images: no vision tower / projector");
    // a frozen tower runs without grad (et_clip_vision_forward); a trainable one records
    const bool frozen = m->vision->frozen;
    et_tensor *f = et_clip_vision_forward(m->vision, pixels, m->select_layer, m->feature);
    et_tensor *in = f;
    if (f->dtype != ET_F32) {  // the projector runs in f32 (its weights are f32)
        if (frozen) et_no_grad_begin();
        in = et_cast(f, ET_F32);
        if (frozen) et_no_grad_end();
        et_release(f);
    }
    et_tensor *y = et_projector_forward(m->proj, in);  // [B, N, H]
    et_release(in);
    return y;
}

void et_mllm_batch_free(et_mllm_batch *b) {
    if (!b) return;
    et_release(b->embeds), et_release(b->labels), et_release(b->mask), et_release(b->pos);
    free(b->len);
    memset(b, 0, sizeof *b);
}

// x [B, K, H] -> [B*K, H] in dtype dt (autograd-connected).
static et_tensor *rows_as(et_tensor *x, et_dtype dt) {
    et_tensor *r = et_reshape(x, 2, (int64_t[]){x->shape[0] * x->shape[1], x->shape[2]});
    if (r->dtype == dt) return r;
    et_tensor *c = et_cast(r, dt);
    et_release(r);
    return c;
}

et_status et_mllm_splice(et_llama *llm, int32_t image_token, int64_t max_len, int batch,
                         et_tensor *const *ids, et_tensor *const *labels, et_tensor *visual,
                         et_tensor *prior, et_mllm_batch *out) {
    memset(out, 0, sizeof *out);
    const int B = batch;
    const int64_t H = llm->cfg.hidden_size;
    if (B <= 0) return et_err(ET_ERR_INVALID, "mllm splice: empty batch");
    if (visual && (visual->ndim != 3 || visual->shape[0] != B || visual->shape[2] != H))
        return et_err(ET_ERR_INVALID, "mllm splice: visual tokens must be [%d, N, %lld]", B,
                      (long long)H);
    if (prior && (prior->ndim != 3 || prior->shape[0] != B || prior->shape[2] != H))
        return et_err(ET_ERR_INVALID, "mllm splice: prior tokens must be [%d, P, %lld]", B,
                      (long long)H);
    const int64_t N = visual ? visual->shape[1] : 0, P = prior ? prior->shape[1] : 0;
    // Pass 1: validate, count text tokens and spliced lengths.
    int64_t *len = calloc((size_t)B, sizeof *len);
    int64_t *ph = calloc((size_t)B, sizeof *ph);  // placeholder position or -1
    ET_ASSERT(len && ph, "out of memory");
    int64_t n_text = 0, T = 0;
    for (int b = 0; b < B; b++) {
        et_tensor *id = ids[b];
        et_status s = NULL;
        if (id->dtype != ET_I32 || id->ndim != 1)
            s = et_err(ET_ERR_INVALID, "mllm splice: sample %d: ids must be i32 [n]", b);
        else if (labels && (!labels[b] || labels[b]->dtype != ET_I32 || labels[b]->ndim != 1 ||
                            labels[b]->shape[0] != id->shape[0]))
            s = et_err(ET_ERR_INVALID, "mllm splice: sample %d: labels must be i32 [%lld]", b,
                       (long long)id->shape[0]);
        ph[b] = -1;
        const int32_t *p = s ? NULL : ET_DATA(const int32_t, id);
        for (int64_t t = 0; !s && t < id->shape[0]; t++) {
            if (p[t] == image_token) {
                if (ph[b] >= 0)
                    s = et_err(ET_ERR_INVALID,
                               "mllm splice: sample %d has more than one image placeholder "
                               "(%d at %lld and %lld)",
                               b, image_token, (long long)ph[b], (long long)t);
                ph[b] = t;
            } else if (p[t] < 0 || p[t] >= llm->cfg.vocab_size) {
                s = et_err(ET_ERR_INVALID,
                           "mllm splice: sample %d: token %d at %lld outside "
                           "[0, %lld)",
                           b, p[t], (long long)t, (long long)llm->cfg.vocab_size);
            }
        }
        // labels reach the loss as class indices: -100 or a token of the vocabulary
        const int32_t *lp = s || !labels ? NULL : ET_DATA(const int32_t, labels[b]);
        for (int64_t t = 0; lp && !s && t < id->shape[0]; t++)
            if (lp[t] != ET_MLLM_IGNORE && (lp[t] < 0 || lp[t] >= llm->cfg.vocab_size))
                s = et_err(ET_ERR_INVALID,
                           "mllm splice: sample %d: label %d at %lld outside [0, %lld) and not "
                           "%d (ignored)",
                           b, lp[t], (long long)t, (long long)llm->cfg.vocab_size, ET_MLLM_IGNORE);
        if (!s && ph[b] >= 0 && !visual && !prior)
            s = et_err(ET_ERR_INVALID,
                       "mllm splice: sample %d has an image placeholder but no "
                       "image was given",
                       b);
        if (s) {
            free(len), free(ph);
            return s;
        }
        const int64_t nt = id->shape[0] - (ph[b] >= 0);
        len[b] = nt + (ph[b] >= 0 ? N + P : 0);
        if (max_len > 0 && len[b] > max_len) len[b] = max_len;
        n_text += nt;
        if (len[b] > T) T = len[b];
    }
    if (T == 0) T = 1;  // an all-empty batch still has a shape
    // Source rows: [text (n_text) | visual (B*N) | prior (B*P)]; fidx/gidx map target rows
    // b*T + t to source rows.
    et_tensor *tids = et_empty(ET_I32, 1, (int64_t[]){n_text > 0 ? n_text : 1});
    et_tensor *lab = et_full(ET_I32, 2, (int64_t[]){B, T}, ET_MLLM_IGNORE);
    et_tensor *mask = et_zeros(ET_I32, 2, (int64_t[]){B, T});
    et_tensor *pos = et_zeros(ET_I32, 2, (int64_t[]){B, T});
    int32_t *pt = ET_DATA(int32_t, tids), *pl = ET_DATA(int32_t, lab);
    int32_t *pm = ET_DATA(int32_t, mask), *pp = ET_DATA(int32_t, pos);
    int32_t *fidx = malloc(sizeof(int32_t) * (size_t)(B * T));
    int32_t *gidx = malloc(sizeof(int32_t) * (size_t)(B * T));
    ET_ASSERT(fidx && gidx, "out of memory");
    int64_t m = 0, ti = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *p = ET_DATA(const int32_t, ids[b]);
        const int32_t *lb = labels ? ET_DATA(const int32_t, labels[b]) : NULL;
        int64_t t = 0;  // position in the spliced sample
        for (int64_t i = 0; i < ids[b]->shape[0]; i++) {
            if (i == ph[b]) {
                for (int64_t k = 0; k < N + P; k++, t++) {
                    if (t < len[b]) {
                        fidx[m] = (int32_t)(b * T + t);
                        gidx[m++] = (int32_t)(k < N ? n_text + b * N + k
                                                    : n_text + B * N + b * P + (k - N));
                    }
                }
                continue;
            }
            pt[ti] = p[i];
            if (t < len[b]) {
                fidx[m] = (int32_t)(b * T + t);
                gidx[m++] = (int32_t)ti;
                if (lb) pl[b * T + t] = lb[i];
            }
            ti++, t++;
        }
        for (int64_t k = 0; k < len[b]; k++) pm[b * T + k] = 1, pp[b * T + k] = (int32_t)k;
    }
    if (n_text == 0) pt[0] = 0;
    // Embeddings: concat sources, gather the filled rows, scatter them into zeros.
    const et_dtype dt = llm->act_dtype;
    et_tensor *srcs[3];
    int ns = 0;
    et_tensor *temb = et_llama_embed(llm, tids);  // [n_text, H]
    if (n_text > 0 || !((visual && N > 0) || (prior && P > 0))) srcs[ns++] = temb;
    if (visual && N > 0) srcs[ns++] = rows_as(visual, dt);
    if (prior && P > 0) srcs[ns++] = rows_as(prior, dt);
    et_tensor *src = ns == 1 ? et_retain(srcs[0]) : et_concat(ns, srcs, 0);
    for (int i = 0; i < ns; i++)
        if (srcs[i] != temb) et_release(srcs[i]);
    et_release(temb);
    et_tensor *flat = et_zeros(dt, 2, (int64_t[]){B * T, H});
    et_tensor *emb;
    if (m > 0) {
        et_tensor *gi = et_from_data(ET_I32, 1, (int64_t[]){m}, gidx);
        et_tensor *fi = et_from_data(ET_I32, 1, (int64_t[]){m}, fidx);
        et_tensor *rows = et_gather_rows(src, gi);  // [m, H]
        et_tensor *sc = et_scatter_rows(flat, fi, rows);
        emb = et_reshape(sc, 3, (int64_t[]){B, T, H});
        et_release(gi), et_release(fi), et_release(rows), et_release(sc);
    } else {
        emb = et_reshape(flat, 3, (int64_t[]){B, T, H});
    }
    et_release(flat), et_release(src), et_release(tids);
    free(fidx), free(gidx), free(ph);
    out->B = B, out->T = T;
    out->embeds = emb, out->labels = lab, out->mask = mask, out->pos = pos, out->len = len;
    return NULL;
}

et_status et_mllm_forward(et_mllm *m, const et_mllm_input *in, et_rng_stream *rng,
                          et_tensor **logits, et_mllm_batch *batch) {
    *logits = NULL;
    const int B = in->batch;
    et_tensor *vis = NULL;
    if (in->pixels) {
        if (in->pixels->ndim != 4 || in->pixels->shape[0] != B)
            return et_err(ET_ERR_INVALID, "mllm: pixels must be [%d, C, S, S]", B);
        if (!m->vision || !m->proj)
            return et_err(ET_ERR_INVALID, "mllm: pixels given but no vision tower / projector");
        vis = et_mllm_encode_images(m, in->pixels);
    }
    et_mllm_batch b;
    et_status s = et_mllm_splice(m->llm, m->image_token, m->max_len, B, in->ids, in->labels, vis,
                                 in->prior, &b);
    et_release(vis);
    if (s) return s;
    *logits = et_llama_forward_embeds(m->llm, b.embeds, b.pos, b.mask, NULL, rng);
    if (batch)
        *batch = b;
    else
        et_mllm_batch_free(&b);
    return NULL;
}

et_status et_mllm_loss(et_mllm *m, const et_mllm_input *in, et_rng_stream *rng, et_tensor **loss,
                       et_tensor **logits) {
    *loss = NULL;
    if (logits) *logits = NULL;
    et_tensor *lg = NULL;
    et_mllm_batch b;
    ET_TRY(et_mllm_forward(m, in, rng, &lg, &b));
    *loss = et_llama_loss(lg, b.labels);
    et_mllm_batch_free(&b);
    if (logits)
        *logits = lg;
    else
        et_release(lg);
    return NULL;
}
