// train/emo_model.c - see emo_model.h
#include "emo_model.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/safetensors.h"
#include "train/checkpoint.h"
#include "train/io/face_net_load.h"
#include "train/io/llama_load.h"

static et_status build_decoder(const et_run_config *c, et_emo_model *m, et_dtype wdt) {
    if (c->llava_path[0]) {
        ET_TRY(et_llava_load(c->llava_path, c->vision_path[0] ? c->vision_path : NULL, wdt,
                             &m->llava));
        m->llm = m->llava->llm;
        m->has_vision = m->llava->mllm.vision != NULL;
        return NULL;
    }
    if (c->llm_path[0]) return et_llama_load(c->llm_path, wdt, &m->llm);
    if (!c->llm_json)
        return et_err(ET_ERR_INVALID,
                      "config: no decoder: set model.llava_path, model.llm_path or model.llm");
    et_llama_config lc;
    ET_TRY(et_llama_config_parse(c->llm_json, "config model.llm", &lc));
    m->llm = et_llama_new_random(&lc, wdt, c->init_std, (uint64_t)c->init_seed);
    if (c->init_lm_head_std > 0 && !lc.tie_word_embeddings)
        et_randn_(m->llm->lm_head.weight, 0.0, c->init_lm_head_std, (uint64_t)c->init_seed + 2, 0);
    return NULL;
}

static et_status build_vision(const et_run_config *c, et_emo_model *m) {
    if (m->llava) return NULL;
    if (c->vision_path[0]) {
        ET_TRY(et_clip_vision_load(c->vision_path, &m->vision));
        m->has_vision = true;
    } else if (c->vision_json) {
        et_clip_config vc;
        ET_TRY(et_clip_config_from_json(c->vision_json, "config model.vision", &vc));
        ET_TRY(et_clip_vision_new_random(&vc, c->init_std, (uint64_t)c->init_seed + 1, &m->vision));
        m->has_vision = true;
    }
    return NULL;
}

static et_emo_group *add_group(et_emo_model *m, const char *name, double lr, int n,
                               const char **names, et_tensor **params) {
    if (n == 0) return NULL;
    et_emo_group *g = &m->groups[m->n_groups++];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->lr = lr, g->n = n, g->names = names, g->params = params;
    m->n_trainables += n;
    return g;
}

// ---- train.trainable ------------------------------------------------------------------

enum { G_LORA, G_PROJ, G_PRIOR, G_DEC, G_TOWER, G_EMB, G_N };
static const char *const k_group_names[G_N] = {"lora",    "projector", "face_prior",
                                               "decoder", "tower",     "embeddings"};

static et_status parse_trainable(const et_run_config *c, bool want[G_N]) {
    for (int g = 0; g < G_N; g++) want[g] = false;
    for (int i = 0; i < c->n_trainable; i++) {
        int k = 0;
        while (k < G_N && strcmp(c->trainable[i], k_group_names[k])) k++;
        if (k == G_N)
            return et_err(ET_ERR_INVALID,
                          "config: train.trainable: unknown group \"%s\"; the groups are lora, "
                          "projector, face_prior, decoder, tower, embeddings",
                          c->trainable[i]);
        want[k] = true;
    }
    return NULL;
}

// A growing (name, tensor) list; names are owned copies.
typedef struct {
    int n, cap;
    const char **names;
    et_tensor **ts;
} plist;

static void pl_add(plist *l, const char *prefix, const char *name, et_tensor *t) {
    if (!t) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 32;
        l->names = realloc(l->names, sizeof(*l->names) * (size_t)l->cap);
        l->ts = realloc(l->ts, sizeof(*l->ts) * (size_t)l->cap);
        ET_ASSERT(l->names && l->ts, "out of memory");
    }
    size_t len = strlen(prefix) + strlen(name) + 1;
    char *s = malloc(len);
    ET_ASSERT(s, "out of memory");
    snprintf(s, len, "%s%s", prefix, name);
    l->names[l->n] = s;
    l->ts[l->n++] = t;
    et_set_requires_grad(t, true);
}

typedef struct {
    plist *l;
    bool embeddings;  // collect embed_tokens + lm_head (else every other weight)
} dec_ctx;

static void collect_decoder(void *ctx, const char *name, et_tensor **dst, int ndim, int64_t d0,
                            int64_t d1) {
    (void)ndim, (void)d0, (void)d1;
    dec_ctx *d = ctx;
    const bool emb = !strcmp(name, "model.embed_tokens.weight") || !strcmp(name, "lm_head.weight");
    if (emb == d->embeddings) pl_add(d->l, "", name, *dst);
}

static void pl_linear(plist *l, const char *p, int layer, const char *mod, et_linear_layer *y) {
    char nm[128];
    snprintf(nm, sizeof nm, "encoder.layers.%d.%s.weight", layer, mod);
    pl_add(l, p, nm, y->weight);
    snprintf(nm, sizeof nm, "encoder.layers.%d.%s.bias", layer, mod);
    pl_add(l, p, nm, y->bias);
}

// The CLIP tower's weights that reach the features: embeddings, pre_layrnorm and the layers
// up to model.select_layer (the later ones never run, so they are left out of the group).
static void collect_tower(et_clip_vision *v, int select_layer, plist *l) {
    const char *p = ET_EMO_TOWER_PREFIX;
    const int L = (int)v->cfg.num_layers;
    const int upto = select_layer < 0 ? L + 1 + select_layer : select_layer;
    pl_add(l, p, "embeddings.class_embedding", v->class_embedding);
    pl_add(l, p, "embeddings.patch_embedding.weight", v->patch_weight);
    pl_add(l, p, "embeddings.position_embedding.weight", v->pos_embedding);
    pl_add(l, p, "pre_layrnorm.weight", v->pre_ln_w);
    pl_add(l, p, "pre_layrnorm.bias", v->pre_ln_b);
    for (int i = 0; i < upto; i++) {
        et_clip_layer *y = &v->layers[i];
        char nm[128];
        pl_linear(l, p, i, "self_attn.k_proj", &y->k);
        pl_linear(l, p, i, "self_attn.v_proj", &y->v);
        pl_linear(l, p, i, "self_attn.q_proj", &y->q);
        pl_linear(l, p, i, "self_attn.out_proj", &y->o);
        snprintf(nm, sizeof nm, "encoder.layers.%d.layer_norm1.weight", i);
        pl_add(l, p, nm, y->ln1_w);
        snprintf(nm, sizeof nm, "encoder.layers.%d.layer_norm1.bias", i);
        pl_add(l, p, nm, y->ln1_b);
        pl_linear(l, p, i, "mlp.fc1", &y->fc1);
        pl_linear(l, p, i, "mlp.fc2", &y->fc2);
        snprintf(nm, sizeof nm, "encoder.layers.%d.layer_norm2.weight", i);
        pl_add(l, p, nm, y->ln2_w);
        snprintf(nm, sizeof nm, "encoder.layers.%d.layer_norm2.bias", i);
        pl_add(l, p, nm, y->ln2_b);
    }
    v->frozen = false;
}

static void add_owned_group(et_emo_model *m, const char *name, double lr, plist *l) {
    et_emo_group *g = add_group(m, name, lr, l->n, l->names, l->ts);
    if (g) g->owns_names = true;
}

bool et_emo_param_decays(const char *name) {
    const size_t n = strlen(name);
    if (n >= 5 && !strcmp(name + n - 5, ".bias")) return false;
    return !strstr(name, "norm");  // layernorm, layer_norm, layrnorm, RMSNorm's *norm.weight
}

bool et_emo_model_trains(const et_emo_model *m, const char *group) {
    for (int g = 0; g < m->n_groups; g++)
        if (!strcmp(m->groups[g].name, group)) return true;
    return false;
}

// model.projector_path: LLaVA's mm_projector file (stage 1) or an export's
// non_lora_trainables.safetensors, into the projector; every tensor present with its shape.
static et_status load_projector_file(const char *path, et_projector *p) {
    et_st_file *f = NULL;
    et_status st = et_st_open(path, &f);
    if (st) return et_status_wrap(st, "config: model.projector_path");
    const char *names[4];
    et_tensor *ts[4];
    const int n = et_projector_params(p, names, ts);
    for (int i = 0; i < n && !st; i++) {
        char got[96] = "[", exp[96] = "[";
        for (int d = 0; d < ts[i]->ndim; d++)
            snprintf(exp + strlen(exp), sizeof exp - strlen(exp), "%s%lld", d ? ", " : "",
                     (long long)ts[i]->shape[d]);
        et_st_info info;
        et_status s = et_st_info_of(f, names[i], &info);
        if (s) {
            et_status_free(s);
            st = et_err(ET_ERR_FORMAT,
                        "%s (model.projector_path): no tensor %s (this model's %s projector needs "
                        "it with shape %s])",
                        path, names[i], p->type == ET_PROJ_LINEAR ? "linear" : "mlp2x_gelu", exp);
            break;
        }
        bool ok = info.ndim == ts[i]->ndim;
        for (int d = 0; ok && d < info.ndim; d++) ok = info.shape[d] == ts[i]->shape[d];
        if (!ok) {
            for (int d = 0; d < info.ndim; d++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "",
                         (long long)info.shape[d]);
            st = et_err(ET_ERR_FORMAT,
                        "%s (model.projector_path): tensor %s has shape %s] but this model's "
                        "projector needs %s] (vision hidden %lld -> decoder hidden %lld): the "
                        "file was trained for another tower or decoder",
                        path, names[i], got, exp, (long long)p->in_dim, (long long)p->out_dim);
        }
    }
    for (int i = 0; i < n && !st; i++) {
        et_tensor *t = NULL;
        st = et_st_load(f, names[i], &t);
        if (!st) et_copy_(ts[i], t);
        et_release(t);
    }
    et_st_close(f);
    return st;
}

// Face Info Mining: the frozen face network from model.face_net_path and the aggregator.
static et_status attach_fim(const et_run_config *c, et_emo_model *m, uint64_t seed,
                            uint64_t *offset) {
    if (!c->face_net_path[0])
        return et_err(ET_ERR_INVALID,
                      "config: model.face_prior=%s needs model.face_net_path (a face analysis "
                      "network: emotune pretrain-face trains one, tools/convert_facexformer.py "
                      "converts FaceXFormer's)",
                      c->face_prior);
    bool dataset_lm;
    if (!strcmp(c->fim_landmarks, "network"))
        dataset_lm = false;
    else if (!strcmp(c->fim_landmarks, "dataset"))
        dataset_lm = true;
    else
        return et_err(ET_ERR_INVALID, "config: fim.landmarks \"%s\": expected network or dataset",
                      c->fim_landmarks);
    et_face_net *net = calloc(1, sizeof *net);
    et_status st = et_face_net_load(c->face_net_path, net);
    if (st) {
        free(net);
        return et_status_wrap(st, "config: model.face_net_path");
    }
    if (m->image_size == 0) m->image_size = net->cfg.image_size;
    const et_fim_config fc = {.global = c->fim_global,
                              .local = c->fim_local,
                              .local_pool = c->fim_local_pool,
                              .queries = c->fim_queries,
                              .layers = c->fim_layers,
                              .width = c->fim_width,
                              .heads = c->fim_heads};
    return et_face_prior_attach_fim(&m->prior, net, fc, dataset_lm, seed, offset);
}

static et_status build(const et_run_config *c, et_emo_model *m) {
    et_dtype wdt;
    if (!strcmp(c->weight_dtype, "f32"))
        wdt = ET_F32;
    else if (!strcmp(c->weight_dtype, "bf16"))
        wdt = ET_BF16;
    else
        return et_err(ET_ERR_INVALID, "config: model.weight_dtype \"%s\": expected f32 or bf16",
                      c->weight_dtype);
    et_face_prior_kind pk;
    ET_TRY(et_face_prior_kind_parse(c->face_prior, &pk));
    et_projector_type pt;
    ET_TRY(et_projector_type_parse(c->projector, &pt));
    et_clip_feature feat;
    if (!strcmp(c->select_feature, "patch"))
        feat = ET_CLIP_PATCH;
    else if (!strcmp(c->select_feature, "cls_patch"))
        feat = ET_CLIP_CLS_PATCH;
    else
        return et_err(ET_ERR_INVALID,
                      "config: model.select_feature \"%s\": expected patch or cls_patch",
                      c->select_feature);
    if (strcmp(c->image_aspect_ratio, "pad") && strcmp(c->image_aspect_ratio, "square"))
        return et_err(ET_ERR_INVALID,
                      "config: data.image_aspect_ratio \"%s\": expected pad or "
                      "square",
                      c->image_aspect_ratio);
    m->pad_to_square = !strcmp(c->image_aspect_ratio, "pad");
    if (c->tokenizer[0]) ET_TRY(et_tokenizer_load(c->tokenizer, &m->tok));
    ET_TRY(build_decoder(c, m, wdt));
    const int64_t H = m->llm->cfg.hidden_size;
    if (m->tok && et_tokenizer_vocab_size(m->tok) > m->llm->cfg.vocab_size)
        return et_err(ET_ERR_INVALID,
                      "config: the tokenizer %s has %d tokens but the decoder's vocab_size is "
                      "%lld",
                      c->tokenizer, et_tokenizer_vocab_size(m->tok),
                      (long long)m->llm->cfg.vocab_size);
    ET_TRY(build_vision(c, m));
    uint64_t seed = (uint64_t)c->seed, offset = 0;
    et_projector *proj = NULL;
    et_clip_vision *vis = NULL;
    if (m->llava) {
        proj = m->llava->mllm.proj;
        vis = m->llava->mllm.vision;
    } else if (m->has_vision) {
        offset = et_projector_init(&m->proj, pt, m->vision.cfg.hidden_size, H, ET_PROJ_NAMES_LLAVA,
                                   seed, offset);
        proj = &m->proj;
        vis = &m->vision;
    }
    if (vis) m->image_size = vis->cfg.image_size;
    if (vis)
        ET_TRY(
            et_clip_check_select_layer(&vis->cfg, c->select_layer, "config: model.select_layer"));
    m->use_images = vis && c->visual_tokens;
    if (!c->visual_tokens && pk == ET_PRIOR_NONE)
        return et_err(ET_ERR_INVALID,
                      "config: model.visual_tokens=false needs a face prior (model.face_prior): "
                      "nothing would stand for the image");
    ET_TRY(et_face_prior_init(&m->prior, pk, c->landmark_dim, H, seed, &offset));
    m->prior.repeat = c->prior_repeat;
    if (pk & ET_PRIOR_FIM) ET_TRY(attach_fim(c, m, seed, &offset));
    m->load_pixels = m->use_images || (pk & ET_PRIOR_FIM);
    m->mllm = (et_mllm){.vision = vis,
                        .proj = proj,
                        .llm = m->llm,
                        .select_layer = c->select_layer,
                        .feature = feat,
                        .image_token = m->llava ? m->llava->cfg.image_token : ET_LLAVA_IMAGE_TOKEN,
                        .max_len = c->max_len};
    m->n_linears = et_mllm_decoder_linears(m->llm, NULL);
    m->linears = malloc(sizeof(*m->linears) * (size_t)m->n_linears);
    et_mllm_decoder_linears(m->llm, m->linears);
    for (int l = 0; l < (int)m->llm->cfg.num_hidden_layers; l++)
        m->llm->layers[l].recompute = c->recompute;
    bool want[G_N];
    ET_TRY(parse_trainable(c, want));
    const bool expl = c->n_trainable > 0;
    if (!expl) {  // the default: LoRA (when enabled), the projector in use, the expert
        want[G_LORA] = c->lora_enabled;
        want[G_PROJ] = proj && m->use_images;
        want[G_PRIOR] = pk != ET_PRIOR_NONE;
    } else {
        if (want[G_LORA] && !c->lora_enabled)
            return et_err(ET_ERR_INVALID,
                          "config: train.trainable lists \"lora\" but lora.enabled is false: set "
                          "lora.enabled=true or remove \"lora\"");
        if (!want[G_LORA] && c->lora_enabled)
            return et_err(ET_ERR_INVALID,
                          "config: lora.enabled is true but train.trainable does not list "
                          "\"lora\": add \"lora\" to train.trainable or set lora.enabled=false");
        if (want[G_LORA] && want[G_DEC])
            return et_err(ET_ERR_INVALID,
                          "config: train.trainable lists both \"lora\" and \"decoder\": LoRA "
                          "adapts a frozen decoder; train one of them (full fine-tuning: "
                          "[\"decoder\"] with lora.enabled=false)");
        if ((want[G_PROJ] || want[G_TOWER]) && !(proj && m->use_images))
            return et_err(ET_ERR_INVALID,
                          "config: train.trainable lists \"%s\" but the model has no %s in use "
                          "(it needs a vision tower: model.vision, model.vision_path or "
                          "model.llava_path, and model.visual_tokens=true)",
                          want[G_PROJ] ? "projector" : "tower",
                          want[G_PROJ] ? "projector" : "vision tower");
        if (want[G_PRIOR] && pk == ET_PRIOR_NONE)
            return et_err(ET_ERR_INVALID,
                          "config: train.trainable lists \"face_prior\" but model.face_prior is "
                          "\"none\": set model.face_prior=landmark or remove \"face_prior\"");
    }
    if (c->projector_path[0]) {
        if (!proj)
            return et_err(ET_ERR_INVALID,
                          "config: model.projector_path is set but the model has no vision tower "
                          "(and so no projector)");
        ET_TRY(load_projector_file(c->projector_path, proj));
    }
    if (c->lora_enabled) {
        et_lora_config lc = et_lora_config_default();
        lc.r = c->lora_r, lc.alpha = c->lora_alpha, lc.dropout = c->lora_dropout;
        lc.use_rslora = c->lora_use_rslora;
        lc.n_targets = c->lora_n_targets;
        for (int i = 0; i < c->lora_n_targets; i++)
            snprintf(lc.targets[i], sizeof lc.targets[i], "%s", c->lora_targets[i]);
        snprintf(lc.regex, sizeof lc.regex, "%s", c->lora_regex);
        // base_model_name_or_path: the base the run loaded (absolute), or the name of the
        // random base (model.llm; `emotune export --base` writes it to DIR/base/llm)
        const char *base = c->llava_path[0] ? c->llava_path : c->llm_path;
        char real[PATH_MAX];
        if (base[0] && realpath(base, real)) base = real;
        snprintf(lc.base_model, sizeof lc.base_model, "%.255s",
                 base[0] ? base : ET_RANDOM_BASE_NAME);
        lc.seed = seed + 7919, lc.offset = 0;
        int n_att = 0;
        ET_TRY(et_lora_attach(&lc, m->n_linears, m->linears, &n_att));
        if (n_att == 0)
            return et_err(ET_ERR_INVALID,
                          "config: lora.targets / lora.regex match no decoder "
                          "Linear");
        m->lora = lc, m->has_lora = true;
    }
    // groups
    if (m->has_lora) {
        int n = et_lora_params(m->n_linears, m->linears, NULL);
        et_tensor **ps = malloc(sizeof(*ps) * (size_t)n);
        const char **ns = malloc(sizeof(*ns) * (size_t)n);
        et_lora_params(m->n_linears, m->linears, ps);
        // names: "<layer>.lora_A.weight" / "<layer>.lora_B.weight" in the same order
        int k = 0;
        for (int i = 0; i < m->n_linears; i++) {
            et_linear_layer *l = m->linears[i];
            if (!l->lora_a) continue;
            for (int ab = 0; ab < 2; ab++) {
                size_t len = strlen(l->name) + 20;
                char *s = malloc(len);
                snprintf(s, len, "%s.lora_%c.weight", l->name, ab ? 'B' : 'A');
                ns[k++] = s;
            }
        }
        ET_ASSERT(k == n, "lora names %d != params %d", k, n);
        add_group(m, "lora", c->lr, n, ns, ps)->owns_names = true;
    }
    if (want[G_DEC]) {
        plist l = {0};
        dec_ctx d = {&l, false};
        et_llama_for_each_weight(m->llm, collect_decoder, &d);
        add_owned_group(m, "decoder", c->decoder_lr > 0 ? c->decoder_lr : c->lr, &l);
    }
    if (want[G_EMB]) {
        plist l = {0};
        dec_ctx d = {&l, true};
        et_llama_for_each_weight(m->llm, collect_decoder, &d);
        add_owned_group(m, "embeddings", c->decoder_lr > 0 ? c->decoder_lr : c->lr, &l);
    }
    if (want[G_TOWER]) {
        plist l = {0};
        collect_tower(vis, c->select_layer, &l);
        add_owned_group(m, "tower", c->tower_lr > 0 ? c->tower_lr : c->lr, &l);
    }
    m->explicit_trainable = expl;
    if (proj && !want[G_PROJ]) {  // frozen (explicit list without it)
        et_tensor *ts[4];
        for (int i = 0, n = et_projector_params(proj, NULL, ts); i < n; i++)
            et_set_requires_grad(ts[i], false);
    }
    if (pk != ET_PRIOR_NONE && !want[G_PRIOR]) {
        et_tensor **ts = malloc(sizeof(*ts) * (size_t)et_face_prior_params(&m->prior, NULL, NULL));
        for (int i = 0, n = et_face_prior_params(&m->prior, NULL, ts); i < n; i++)
            et_set_requires_grad(ts[i], false);
        free(ts);
    }
    if (want[G_PROJ]) {  // without visual tokens the projector gets no gradient
        const char **ns = malloc(sizeof(*ns) * 4);
        et_tensor **ps = malloc(sizeof(*ps) * 4);
        int n = et_projector_params(proj, ns, ps);
        add_group(m, "projector", c->mm_projector_lr > 0 ? c->mm_projector_lr : c->lr, n, ns, ps);
        if (!n) free(ns), free(ps);
    }
    if (want[G_PRIOR]) {  // the landmark expert's 4 tensors come first, then FIM's
        const int np = et_face_prior_params(&m->prior, NULL, NULL);
        const int n_lm = pk & ET_PRIOR_LANDMARK ? 4 : 0;
        const double expert_lr = c->expert_lr > 0 ? c->expert_lr : c->lr;
        const char **all = malloc(sizeof(*all) * (size_t)np);
        et_tensor **pall = malloc(sizeof(*pall) * (size_t)np);
        et_face_prior_params(&m->prior, all, pall);
        for (int part = 0; part < 2; part++) {
            const int n = part ? np - n_lm : n_lm;
            if (n <= 0) continue;
            const char **ns = malloc(sizeof(*ns) * (size_t)n);
            et_tensor **ps = malloc(sizeof(*ps) * (size_t)n);
            memcpy(ns, all + (part ? n_lm : 0), sizeof(*ns) * (size_t)n);
            memcpy(ps, pall + (part ? n_lm : 0), sizeof(*ps) * (size_t)n);
            if (part)
                add_group(m, "fim", c->fim_lr > 0 ? c->fim_lr : expert_lr, n, ns, ps);
            else
                add_group(m, "expert", expert_lr, n, ns, ps);
        }
        free(all), free(pall);
    }
    if (m->n_trainables == 0)
        return et_err(ET_ERR_INVALID,
                      "config: nothing to train (LoRA off, no projector, no "
                      "expert)");
    return NULL;
}

et_status et_emo_model_build(const et_run_config *cfg, et_emo_model *m) {
    memset(m, 0, sizeof *m);
    et_status st = build(cfg, m);
    if (st) et_emo_model_free(m);
    return st;
}

void et_emo_model_free(et_emo_model *m) {
    for (int g = 0; g < m->n_groups; g++) {
        if (m->groups[g].owns_names)
            for (int i = 0; i < m->groups[g].n; i++) free((char *)m->groups[g].names[i]);
        free(m->groups[g].names);
        free(m->groups[g].params);
    }
    et_face_prior_free(&m->prior);
    if (m->llava) {
        et_llava_free(m->llava);
    } else {
        if (m->proj.l1.weight) et_projector_free(&m->proj);  // also before mllm is wired
        if (m->has_vision) et_clip_vision_free(&m->vision);
        et_llama_free(m->llm);
    }
    free(m->linears);
    if (m->tok) et_tokenizer_free(m->tok);
    memset(m, 0, sizeof *m);
}

int et_emo_model_trainables(const et_emo_model *m, const char **names, et_tensor **params) {
    int k = 0;
    for (int g = 0; g < m->n_groups; g++)
        for (int i = 0; i < m->groups[g].n; i++, k++) {
            if (names) names[k] = m->groups[g].names[i];
            if (params) params[k] = m->groups[g].params[i];
        }
    return k;
}

et_status et_emo_model_load_trainables(et_emo_model *m, const char *path) {
    et_st_file *f = NULL;
    ET_TRY(et_st_open(path, &f));
    char problems[900] = "";
    et_status st = NULL;
    const int n = m->n_trainables;
    const char **names = malloc(sizeof(*names) * (size_t)n);
    et_tensor **ps = malloc(sizeof(*ps) * (size_t)n);
    et_emo_model_trainables(m, names, ps);
    for (int i = 0; i < n && !st; i++) {
        et_st_info info;
        et_status s = et_st_info_of(f, names[i], &info);
        bool ok = !s && info.ndim == ps[i]->ndim;
        for (int d = 0; ok && d < info.ndim; d++) ok = info.shape[d] == ps[i]->shape[d];
        et_status_free(s);
        if (!ok) {
            size_t len = strlen(problems);
            if (len + 8 < sizeof problems)
                snprintf(problems + len, sizeof problems - len, "%s%s", len ? ", " : "", names[i]);
        }
    }
    if (problems[0])
        st = et_err(ET_ERR_FORMAT, "%s: missing or mis-shaped trainables: %s", path, problems);
    for (int i = 0; i < n && !st; i++) {
        et_tensor *t = NULL;
        st = et_st_load(f, names[i], &t);
        if (!st) {
            et_copy_(ps[i], t);
            et_release(t);
        }
    }
    free(names), free(ps);
    et_st_close(f);
    return st;
}

et_status et_emo_model_load_checkpoint(et_emo_model *m, const char *given, const char *output_dir,
                                       char *dir_out, size_t cap) {
    char dir[4096], p[4200];
    ET_TRY(et_trainckpt_resolve(given, output_dir, dir, sizeof dir));
    if (dir_out) snprintf(dir_out, cap, "%s", dir);
    snprintf(p, sizeof p, "%s/trainables.safetensors", dir);
    return et_emo_model_load_trainables(m, p);
}
