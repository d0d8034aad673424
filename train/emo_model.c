// train/emo_model.c - see emo_model.h
#include "emo_model.h"
#include "train/io/llama_load.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/safetensors.h"
#include "train/checkpoint.h"

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

static void add_group(et_emo_model *m, const char *name, double lr, int n, const char **names,
                      et_tensor **params) {
    if (n == 0) return;
    et_emo_group *g = &m->groups[m->n_groups++];
    snprintf(g->name, sizeof g->name, "%s", name);
    g->lr = lr, g->n = n, g->names = names, g->params = params;
    m->n_trainables += n;
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
        add_group(m, "lora", c->lr, n, ns, ps);
    }
    if (proj && m->use_images) {  // without visual tokens the projector gets no gradient
        const char **ns = malloc(sizeof(*ns) * 4);
        et_tensor **ps = malloc(sizeof(*ps) * 4);
        int n = et_projector_params(proj, ns, ps);
        add_group(m, "projector", c->mm_projector_lr > 0 ? c->mm_projector_lr : c->lr, n, ns, ps);
        if (!n) free(ns), free(ps);
    }
    if (pk != ET_PRIOR_NONE) {
        const char **ns = malloc(sizeof(*ns) * 4);
        et_tensor **ps = malloc(sizeof(*ps) * 4);
        int n = et_face_prior_params(&m->prior, ns, ps);
        add_group(m, "expert", c->expert_lr > 0 ? c->expert_lr : c->lr, n, ns, ps);
        if (!n) free(ns), free(ps);
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
        if (!strcmp(m->groups[g].name, "lora"))
            for (int i = 0; i < m->groups[g].n; i++) free((char *)m->groups[g].names[i]);
        free(m->groups[g].names);
        free(m->groups[g].params);
    }
    et_face_prior_free(&m->prior);
    if (m->llava) {
        et_llava_free(m->llava);
    } else {
        if (m->mllm.proj) et_projector_free(&m->proj);
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
