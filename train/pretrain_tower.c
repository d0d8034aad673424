// train/pretrain_tower.c - see pretrain_tower.h
#include "pretrain_tower.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "core/autograd.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/rng.h"
#include "core/threads.h"
#include "data/dataloader.h"
#include "data/preprocess.h"
#include "data/template.h"
#include "progress.h"
#include "run_dir.h"
#include "tblog.h"
#include "train/eval/probe.h"
#include "train/io/export.h"
#include "train/models/lora.h"

#define LN_100 4.605170185988092

// ---- model ------------------------------------------------------------------------------

void et_clip_pair_free(et_clip_pair *p) {
    et_clip_vision_free(&p->tower);
    et_text_encoder_free(&p->text);
    et_release(p->vproj), et_release(p->logit_scale);
    free(p->names), free(p->name_ptrs), free(p->params);
    memset(p, 0, sizeof *p);
}

// HF CLIPPreTrainedModel._init_weights for the tower (factor 1): class_embedding
// N(0, D^-0.5), patch / position embeddings N(0, 0.02), q/k/v and fc2 N(0, D^-0.5 (2L)^-0.5),
// out_proj N(0, D^-0.5), fc1 N(0, (2D)^-0.5); LayerNorms 1, 0; biases 0. With every weight
// at 0.02 the blocks start near the identity and the CLS token sees little of the image.
static void clip_init(et_clip_vision *v, uint64_t seed) {
    const double D = (double)v->cfg.hidden_size, L = (double)v->cfg.num_layers;
    const double in_std = pow(D, -0.5) * pow(2 * L, -0.5), out_std = pow(D, -0.5);
    const double fc_std = pow(2 * D, -0.5);
    uint64_t off = 0;
#define INIT(t, sd) (et_randn_((t), 0.0, (sd), seed, off), off += (uint64_t)(t)->numel)
    INIT(v->class_embedding, pow(D, -0.5));
    INIT(v->patch_weight, 0.02);
    INIT(v->pos_embedding, 0.02);
    for (int l = 0; l < v->cfg.num_layers; l++) {
        et_clip_layer *y = &v->layers[l];
        INIT(y->q.weight, in_std);
        INIT(y->k.weight, in_std);
        INIT(y->v.weight, in_std);
        INIT(y->o.weight, out_std);
        INIT(y->fc1.weight, fc_std);
        INIT(y->fc2.weight, in_std);
    }
#undef INIT
}

et_status et_clip_pair_build(const et_run_config *c, const et_tokenizer *tok, et_clip_pair *p) {
    memset(p, 0, sizeof *p);
    if (c->vision_path[0]) {
        ET_TRY(et_clip_vision_load(c->vision_path, &p->tower));
        // a loaded tower's tensors are views of the file: train on f32 copies. The slots
        // follow et_clip_vision_params' order.
        et_clip_vision_add_post_layernorm(&p->tower);
        const int n = et_clip_vision_params(&p->tower, NULL, NULL);
        et_tensor ***slots = malloc(sizeof(*slots) * (size_t)n);
        int k = 0;
        slots[k++] = &p->tower.class_embedding, slots[k++] = &p->tower.patch_weight;
        slots[k++] = &p->tower.pos_embedding, slots[k++] = &p->tower.pre_ln_w;
        slots[k++] = &p->tower.pre_ln_b;
        for (int l = 0; l < p->tower.cfg.num_layers; l++) {
            et_clip_layer *y = &p->tower.layers[l];
            et_linear_layer *lin[6] = {&y->q, &y->k, &y->v, &y->o, &y->fc1, &y->fc2};
            for (int j = 0; j < 6; j++) slots[k++] = &lin[j]->weight, slots[k++] = &lin[j]->bias;
            slots[k++] = &y->ln1_w, slots[k++] = &y->ln1_b, slots[k++] = &y->ln2_w;
            slots[k++] = &y->ln2_b;
        }
        slots[k++] = &p->tower.post_ln_w, slots[k++] = &p->tower.post_ln_b;
        ET_ASSERT(k == n, "et_clip_pair_build: %d slots for %d tensors", k, n);
        for (int i = 0; i < n; i++) {
            et_tensor *f = et_empty(ET_F32, (*slots[i])->ndim, (*slots[i])->shape);
            et_copy_(f, *slots[i]);
            et_release(*slots[i]);
            *slots[i] = f;
        }
        free(slots);
    } else {
        if (!c->vision_json)
            return et_err(
                ET_ERR_INVALID,
                "config: pretrain-tower needs the tower's shape (model.vision) or a tower "
                "to continue from (model.vision_path)");
        et_clip_config vc;
        ET_TRY(et_clip_config_from_json(c->vision_json, "config model.vision", &vc));
        ET_TRY(et_clip_vision_new_random(&vc, c->init_std, (uint64_t)c->init_seed + 1, &p->tower));
        clip_init(&p->tower, (uint64_t)c->init_seed + 1);
    }
    et_clip_vision_add_post_layernorm(&p->tower);
    p->tower.frozen = false;
    const int64_t E = c->clip_projection_dim, D = p->tower.cfg.hidden_size;
    if (c->clip_max_text_len < 2)
        return et_err(ET_ERR_INVALID, "config: clip.max_text_len must be at least 2");
    et_text_config tc = {.vocab_size = et_tokenizer_vocab_size(tok),
                         .width = c->clip_text_width,
                         .layers = c->clip_text_layers,
                         .heads = c->clip_text_heads,
                         .max_len = c->clip_max_text_len,
                         .proj_dim = E,
                         .eps = 1e-5};
    et_status st =
        et_text_encoder_new_random(&tc, c->init_std, (uint64_t)c->init_seed + 2, &p->text);
    if (st) {
        et_clip_pair_free(p);
        return st;
    }
    p->vproj = et_empty(ET_F32, 2, (int64_t[]){E, D});
    et_randn_(p->vproj, 0.0, c->init_std, (uint64_t)c->init_seed + 3, 0);
    p->logit_scale = et_full(ET_F32, 0, NULL, c->clip_logit_scale_init);
    const int nv = et_clip_vision_params(&p->tower, NULL, NULL);
    const int nt = et_text_encoder_params(&p->text, NULL, NULL);
    p->n_params = nv + 2 + nt;
    p->names = calloc((size_t)p->n_params, sizeof *p->names);
    p->name_ptrs = calloc((size_t)p->n_params, sizeof *p->name_ptrs);
    p->params = calloc((size_t)p->n_params, sizeof *p->params);
    et_clip_vision_params(&p->tower, p->names, p->params);
    snprintf(p->names[nv], ET_CLIP_NAME_MAX, "visual_projection.weight");
    p->params[nv] = p->vproj;
    snprintf(p->names[nv + 1], ET_CLIP_NAME_MAX, "logit_scale");
    p->params[nv + 1] = p->logit_scale;
    et_text_encoder_params(&p->text, p->names + nv + 2, p->params + nv + 2);
    for (int i = 0; i < p->n_params; i++) {
        p->name_ptrs[i] = p->names[i];
        et_set_requires_grad(p->params[i], true);
    }
    return NULL;
}

// ---- loss -------------------------------------------------------------------------------

// x / ||x|| per row, as rmsnorm(x) / sqrt(E) (eps 1e-12 under the mean square).
static et_tensor *l2_rows(et_tensor *x) {
    et_tensor *r = et_rmsnorm(x, NULL, 1e-12);
    et_tensor *y = et_scale(r, 1.0 / sqrt((double)x->shape[1]));
    et_release(r);
    return y;
}

et_tensor *et_clip_contrastive_loss(et_tensor *img, et_tensor *txt, et_tensor *logit_scale,
                                    double *acc) {
    ET_ASSERT(img->ndim == 2 && txt->ndim == 2 && img->shape[0] == txt->shape[0] &&
                  img->shape[1] == txt->shape[1],
              "et_clip_contrastive_loss: img and txt must be [B, E] alike");
    const int64_t B = img->shape[0];
    et_tensor *a = l2_rows(img), *t = l2_rows(txt);
    et_tensor *s_it = et_matmul(a, t, false, true), *s_ti = et_matmul(t, a, false, true);
    et_tensor *l_it = et_mul_exp(s_it, logit_scale), *l_ti = et_mul_exp(s_ti, logit_scale);
    et_release(a), et_release(t), et_release(s_it), et_release(s_ti);
    et_tensor *tgt = et_empty(ET_I32, 1, &B);
    for (int64_t i = 0; i < B; i++) ((int32_t *)et_data(tgt))[i] = (int32_t)i;
    et_tensor *c1 = et_cross_entropy(l_it, tgt, -100), *c2 = et_cross_entropy(l_ti, tgt, -100);
    if (acc) {
        int64_t hit = 0;
        for (int64_t i = 0; i < B; i++) {
            int64_t best = 0;
            for (int64_t j = 1; j < B; j++)
                if (et_get(l_it, i * B + j) > et_get(l_it, i * B + best)) best = j;
            hit += best == i;
        }
        *acc = (double)hit / (double)B;
    }
    et_tensor *sum = et_add(c1, c2);
    et_tensor *loss = et_scale(sum, 0.5);
    et_release(sum), et_release(c1), et_release(c2), et_release(l_it), et_release(l_ti);
    et_release(tgt);
    return loss;
}

// ---- captions ---------------------------------------------------------------------------

// The supervised ids of a plain-template sample, EOS dropped, cut to max - 1, EOS appended.
static int caption_from_labels(const int32_t *ids, const int32_t *labels, int64_t n, int32_t eos,
                               int max, int32_t *out) {
    int k = 0;
    for (int64_t i = 0; i < n && k < max - 1; i++)
        if (labels[i] != ET_IGNORE_INDEX && ids[i] != eos && ids[i] >= 0) out[k++] = ids[i];
    out[k++] = eos;
    return k;
}

int et_clip_caption_ids(const et_tokenizer *tok, const char *caption, int max_text_len,
                        int32_t *out) {
    const et_template *pl = et_template_find("plain");
    et_chat_turn turns[2] = {{"human", "<image>\n"}, {"gpt", caption}};
    et_template_opts to;
    et_template_opts_init(&to);
    et_ids ids = {0}, labels = {0};
    et_template_info info;
    et_status st = et_template_encode(pl, tok, turns, 2, &to, &ids, &labels, &info);
    int n;
    if (st) {  // cannot happen for a plain string; an empty caption then
        et_status_free(st);
        out[0] = et_tokenizer_eos_id(tok);
        n = 1;
    } else {
        n = caption_from_labels(ids.data, labels.data, (int64_t)ids.len, et_tokenizer_eos_id(tok),
                                max_text_len, out);
    }
    et_ids_free(&ids), et_ids_free(&labels);
    return n;
}

// ---- the run ----------------------------------------------------------------------------

typedef struct {
    et_tokenizer *tok;
    et_clip_pair pair;
    et_dataset *ds;
    const et_run_config *c;
} prun_t;

static void prun_free(prun_t *r) {
    if (r->ds) et_dataset_close(r->ds);
    et_clip_pair_free(&r->pair);
    if (r->tok) et_tokenizer_free(r->tok);
}

static et_status setup(const et_run_config *c, prun_t *r, et_loader_opts *lo) {
    if (!c->train_data[0])
        return et_err(ET_ERR_INVALID,
                      "config: data.train is empty (caption data: LLaVA-format JSON whose gpt "
                      "turn is the caption)");
    if (!c->tokenizer[0]) return et_err(ET_ERR_INVALID, "config: model.tokenizer is empty");
    ET_TRY(et_tokenizer_load(c->tokenizer, &r->tok));
    if (et_tokenizer_eos_id(r->tok) < 0)
        return et_err(ET_ERR_INVALID,
                      "%s (model.tokenizer): the tokenizer has no EOS token (the text encoder "
                      "pools at EOS)",
                      c->tokenizer);
    et_threads_apply(c->threads);
    ET_TRY(et_clip_pair_build(c, r->tok, &r->pair));
    et_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.data_root = c->data_root[0] ? c->data_root : NULL;
    o.require_answer = true;
    ET_TRY(et_dataset_open(c->train_data, &o, &r->ds));
    *lo = et_loader_opts_default();
    lo->batch_size = c->batch_size, lo->max_len = c->max_len;
    lo->image_size = (int)r->pair.tower.cfg.image_size;
    lo->pad_to_square = !strcmp(c->image_aspect_ratio, "pad");
    lo->workers = c->workers, lo->prefetch = c->prefetch, lo->seed = (uint64_t)c->seed;
    lo->shuffle = true, lo->drop_last = true, lo->rank = 0, lo->world = 1;
    lo->shuffle_block = c->clip_shuffle_block;
    lo->tmpl = et_template_find("plain"), lo->tok = r->tok;
    lo->image_token = ET_IMAGE_TOKEN_INDEX;
    if (c->batch_size < 2)
        return et_err(ET_ERR_INVALID,
                      "config: train.batch_size %d: a contrastive loss needs at least 2 pairs",
                      c->batch_size);
    return NULL;
}

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

// Mirrors row b of pixels [B, C, S, S] in place when the hash of (seed, step, b) is odd.
static void flip_batch(et_tensor *px, uint64_t seed, int64_t step) {
    const int64_t B = px->shape[0], C = px->shape[1], S = px->shape[2];
    float *d = et_data(px);
    for (int64_t b = 0; b < B; b++) {
        if (!(mix64(seed ^ mix64((uint64_t)step * 1000003u + (uint64_t)b)) & 1)) continue;
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t y = 0; y < S; y++) {
                float *row = d + ((b * C + ch) * S + y) * S;
                for (int64_t x = 0; x < S / 2; x++) {
                    float t = row[x];
                    row[x] = row[S - 1 - x], row[S - 1 - x] = t;
                }
            }
    }
}

// Replaces row b of pixels [B, 3, S, S] (CLIP-normalised) by its luminance (ITU-R 601, in
// [0, 1] space, normalised again per channel) with probability p, by a hash of (seed, step, b).
static void gray_batch(et_tensor *px, double p, uint64_t seed, int64_t step) {
    static const float mean[3] = {ET_CLIP_MEAN_R, ET_CLIP_MEAN_G, ET_CLIP_MEAN_B};
    static const float sd[3] = {ET_CLIP_STD_R, ET_CLIP_STD_G, ET_CLIP_STD_B};
    const int64_t B = px->shape[0], S = px->shape[2], HW = S * S;
    if (px->shape[1] != 3) return;
    float *d = et_data(px);
    for (int64_t b = 0; b < B; b++) {
        uint64_t h = mix64(seed ^ mix64((uint64_t)step * 1000003u + (uint64_t)b + 0x51ed27u));
        if ((double)(h >> 11) * (1.0 / 9007199254740992.0) >= p) continue;
        float *r = d + b * 3 * HW, *g = r + HW, *bl = g + HW;
        for (int64_t i = 0; i < HW; i++) {
            float y = 0.299f * (r[i] * sd[0] + mean[0]) + 0.587f * (g[i] * sd[1] + mean[1]) +
                      0.114f * (bl[i] * sd[2] + mean[2]);
            r[i] = (y - mean[0]) / sd[0], g[i] = (y - mean[1]) / sd[1],
            bl[i] = (y - mean[2]) / sd[2];
        }
    }
}

// img / txt embeddings (normalised) of an image set; rows without a caption get txt NULL ids.
static void embed_images(et_clip_pair *p, const et_image_set *s, float *out) {
    const int64_t S = s->image_size, per = 3 * S * S, E = p->vproj->shape[0];
    et_no_grad_begin();
    for (int64_t i0 = 0; i0 < s->n; i0 += 64) {
        const int64_t B = s->n - i0 < 64 ? s->n - i0 : 64;
        et_tensor *px = et_from_data(ET_F32, 4, (int64_t[]){B, 3, S, S}, s->pixels + i0 * per);
        et_tensor *f = et_clip_vision_pooled(&p->tower, px, NULL);
        et_tensor *e = et_linear(f, p->vproj, NULL);
        et_tensor *nrm = l2_rows(e);
        memcpy(out + i0 * E, et_data(nrm), sizeof(float) * (size_t)(B * E));
        et_release(px), et_release(f), et_release(e), et_release(nrm);
    }
    et_no_grad_end();
}

static void embed_texts(et_clip_pair *p, int64_t n, int32_t *const *ids, const int *lens,
                        float *out) {
    const int64_t E = p->vproj->shape[0];
    et_no_grad_begin();
    for (int64_t i0 = 0; i0 < n; i0 += 64) {
        const int B = (int)(n - i0 < 64 ? n - i0 : 64);
        et_tensor *e =
            et_text_encoder_forward(&p->text, B, (const int32_t *const *)ids + i0, lens + i0);
        et_tensor *nrm = l2_rows(e);
        memcpy(out + i0 * E, et_data(nrm), sizeof(float) * (size_t)(B * E));
        et_release(e), et_release(nrm);
    }
    et_no_grad_end();
}

static double dotf(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static et_status evaluate(const et_run_config *c, prun_t *r, et_pretrain_result *res) {
    et_image_set s;
    ET_TRY(et_image_set_load(c->eval_data, c->data_root, (int)r->pair.tower.cfg.image_size,
                             !strcmp(c->image_aspect_ratio, "pad"), &s));
    if (s.n_skipped)
        et_warn("%s: %lld samples skipped (first: %s)", c->eval_data, (long long)s.n_skipped,
                s.first_error);
    et_clip_pair *p = &r->pair;
    const int64_t E = p->vproj->shape[0], N = s.n;
    const int T = c->clip_max_text_len;
    float *img = malloc(sizeof(float) * (size_t)(N * E));
    embed_images(p, &s, img);
    // captions
    int32_t **ids = calloc((size_t)N, sizeof *ids);
    int *lens = calloc((size_t)N, sizeof *lens);
    int64_t *row = malloc(sizeof(int64_t) * (size_t)N), nc = 0;
    for (int64_t i = 0; i < N; i++) {
        if (!s.captions[i]) continue;
        ids[nc] = malloc(sizeof(int32_t) * (size_t)T);
        lens[nc] = et_clip_caption_ids(r->tok, s.captions[i], T, ids[nc]);
        row[nc++] = i;
    }
    float *txt = malloc(sizeof(float) * (size_t)((nc ? nc : 1) * E));
    if (nc) embed_texts(p, nc, ids, lens, txt);
    int64_t hit = 0;
    for (int64_t a = 0; a < nc; a++) {
        int64_t best = 0;
        double bs = -INFINITY;
        for (int64_t b = 0; b < nc; b++) {
            double v = dotf(img + row[a] * E, txt + b * E, E);
            if (v > bs) bs = v, best = b;
        }
        hit += best == a || (lens[best] == lens[a] &&
                             !memcmp(ids[best], ids[a], sizeof(int32_t) * (size_t)lens[a]));
    }
    res->retrieval_acc = nc ? (double)hit / (double)nc : 0;
    // zero-shot
    char **cls = malloc(sizeof(char *) * (size_t)N);
    int K = 0;
    for (int64_t i = 0; i < N; i++) {
        if (!s.labels[i][0]) continue;
        bool seen = false;
        for (int k = 0; k < K && !seen; k++) seen = !strcmp(cls[k], s.labels[i]);
        if (!seen) cls[K++] = s.labels[i];
    }
    qsort(cls, (size_t)K, sizeof *cls, cmp_str);
    int64_t zhit = 0, zn = 0;
    if (K >= 2) {
        int32_t **pid = calloc((size_t)K, sizeof *pid);
        int *plen = calloc((size_t)K, sizeof *plen);
        for (int k = 0; k < K; k++) {
            char prompt[512];
            const char *at = strstr(c->clip_prompt, "{label}");
            if (at)
                snprintf(prompt, sizeof prompt, "%.*s%s%s", (int)(at - c->clip_prompt),
                         c->clip_prompt, cls[k], at + 7);
            else
                snprintf(prompt, sizeof prompt, "%s %s", c->clip_prompt, cls[k]);
            pid[k] = malloc(sizeof(int32_t) * (size_t)T);
            plen[k] = et_clip_caption_ids(r->tok, prompt, T, pid[k]);
        }
        float *pe = malloc(sizeof(float) * (size_t)(K * E));
        embed_texts(p, K, pid, plen, pe);
        for (int64_t i = 0; i < N; i++) {
            if (!s.labels[i][0]) continue;
            int best = 0;
            double bs = -INFINITY;
            for (int k = 0; k < K; k++) {
                double v = dotf(img + i * E, pe + k * E, E);
                if (v > bs) bs = v, best = k;
            }
            zn++;
            zhit += !strcmp(cls[best], s.labels[i]);
        }
        for (int k = 0; k < K; k++) free(pid[k]);
        free(pid), free(plen), free(pe);
    }
    res->zeroshot_acc = zn ? (double)zhit / (double)zn : 0;
    res->n_classes = K >= 2 ? K : 0;
    res->n_eval = N;
    res->evaluated = true;
    for (int64_t i = 0; i < nc; i++) free(ids[i]);
    free(ids), free(lens), free(row), free(txt), free(img), free(cls);
    et_image_set_free(&s);
    return NULL;
}

static et_status export_final(const et_run_config *c, prun_t *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tower", c->output_dir);
    char old[4300];  // a resumed run that finished before: replace the export it wrote
    snprintf(old, sizeof old, "%s/tower/config.json", c->output_dir);
    if (access(old, F_OK) == 0) ET_TRY(et_remove_tree(path));
    ET_TRY(et_export_clip_vision(path, &r->pair.tower, ET_F32));
    const int nv = et_clip_vision_params(&r->pair.tower, NULL, NULL);
    snprintf(path, sizeof path, "%s/clip_head.safetensors", c->output_dir);
    return et_save_trainables(path, r->pair.n_params - nv, r->pair.name_ptrs + nv,
                              r->pair.params + nv);
}

// ---- the task (train/aux_run.h) -------------------------------------------------------

static et_tensor *task_loss(et_aux_task *t, et_batch *b, int64_t step, double *metrics) {
    prun_t *r = t->ctx;
    const et_run_config *c = r->c;
    et_clip_pair *p = &r->pair;
    const int32_t eos = et_tokenizer_eos_id(r->tok);
    const int T = c->clip_max_text_len;
    int32_t **ids = malloc(sizeof(*ids) * (size_t)b->B);
    int *lens = malloc(sizeof(*lens) * (size_t)b->B);
    for (int i = 0; i < b->B; i++) {
        ids[i] = malloc(sizeof(int32_t) * (size_t)T);
        lens[i] = caption_from_labels(et_data(b->ids[i]), et_data(b->labels[i]), b->ids[i]->numel,
                                      eos, T, ids[i]);
    }
    if (c->clip_flip) flip_batch(b->pixels, (uint64_t)c->seed, step);
    if (c->clip_gray > 0) gray_batch(b->pixels, c->clip_gray, (uint64_t)c->seed, step);
    et_tensor *pooled = et_clip_vision_pooled(&p->tower, b->pixels, NULL);
    et_tensor *img = et_linear(pooled, p->vproj, NULL);
    et_tensor *txt = et_text_encoder_forward(&p->text, b->B, (const int32_t *const *)ids, lens);
    et_tensor *loss = et_clip_contrastive_loss(img, txt, p->logit_scale, &metrics[0]);
    et_release(img), et_release(txt), et_release(pooled);
    for (int i = 0; i < b->B; i++) free(ids[i]);
    free(ids), free(lens);
    return loss;
}

static void task_after_step(et_aux_task *t) {
    prun_t *r = t->ctx;
    float *ls = et_data(r->pair.logit_scale);  // CLIP: clamp to [0, ln 100]
    if (*ls > (float)LN_100) *ls = (float)LN_100;
    if (*ls < 0) *ls = 0;
}

static void task_extra(et_aux_task *t, double *vals) {
    prun_t *r = t->ctx;
    vals[0] = et_get(r->pair.logit_scale, 0);
}

static et_status task_finish(et_aux_task *t, const et_run_config *c, et_pretrain_result *res) {
    prun_t *r = t->ctx;
    ET_TRY(export_final(c, r));
    return c->eval_data[0] ? evaluate(c, r, res) : NULL;
}

et_status et_pretrain_tower_run(const et_run_config *c, const et_train_opts *opts,
                                et_pretrain_result *res) {
    memset(res, 0, sizeof *res);
    prun_t r;
    memset(&r, 0, sizeof r);
    r.c = c;
    et_loader_opts lo;
    et_status st = setup(c, &r, &lo);
    if (!st) {
        et_aux_task t = {.label = "pretrain-tower",
                         .n_params = r.pair.n_params,
                         .names = r.pair.name_ptrs,
                         .params = r.pair.params,
                         .loss = task_loss,
                         .n_metrics = 1,
                         .metric_names = {"acc"},
                         .after_step = task_after_step,
                         .n_extra = 1,
                         .extra_names = {"logit_scale"},
                         .extra = task_extra,
                         .finish = task_finish,
                         .ctx = &r};
        st = et_aux_run(c, opts, &t, r.ds, &lo, res);
    }
    prun_free(&r);
    return st;
}
