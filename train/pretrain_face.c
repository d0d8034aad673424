// train/pretrain_face.c - see pretrain_face.h
#include "pretrain_face.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/autograd.h"
#include "core/log.h"
#include "core/ops.h"
#include "core/threads.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "data/template.h"
#include "data/tokenizer.h"
#include "train/io/face_net_load.h"
#include "train/models/face_net.h"

#define N_LM 136

// ---- targets ----------------------------------------------------------------------------

// Lower case, spaces / hyphens / underscores removed.
static void norm_word(const char *s, char *out, size_t cap) {
    size_t k = 0;
    for (; *s && k + 1 < cap; s++)
        if (*s != ' ' && *s != '_' && *s != '-') out[k++] = (char)tolower((unsigned char)*s);
    out[k] = '\0';
}

static int lookup(const char *v, const char *const *words, const int *cls, int n) {
    char w[64];
    norm_word(v, w, sizeof w);
    for (int i = 0; i < n; i++)
        if (!strcmp(w, words[i])) return cls[i];
    return -1;
}

et_status et_face_attr_classes(const char *age, double age_years, const char *gender,
                               const char *race, int *age_c, int *gender_c, int *race_c) {
    *age_c = *gender_c = *race_c = -100;
    if (age_years == age_years) {
        if (age_years < 0 || age_years > 150)
            return et_err(ET_ERR_INVALID, "attributes.age %g is not an age in years", age_years);
        *age_c = age_years >= 70 ? 7 : (int)(age_years / 10);
    } else if (age && *age) {
        static const char *const w[] = {"child", "youngadult", "adult", "senior"};
        static const int c[] = {0, 2, 4, 6};
        if ((*age_c = lookup(age, w, c, 4)) < 0)
            return et_err(ET_ERR_INVALID,
                          "attributes.age \"%s\" is neither a number of years nor one of child, "
                          "young adult, adult, senior",
                          age);
    }
    if (gender && *gender) {
        static const char *const w[] = {"male", "man", "m", "female", "woman", "f"};
        static const int c[] = {0, 0, 0, 1, 1, 1};
        if ((*gender_c = lookup(gender, w, c, 6)) < 0)
            return et_err(ET_ERR_INVALID, "attributes.gender \"%s\" is not male or female", gender);
    }
    if (race && *race) {
        static const char *const w[] = {
            "white",          "black",          "indian",        "asian",      "eastasian",
            "southeastasian", "latinohispanic", "middleeastern", "others",     "other",
            "light",          "mediumlight",    "medium",        "mediumdark", "dark"};
        static const int c[] = {0, 1, 2, 3, 3, 3, 4, 4, 4, 4, 0, 1, 2, 3, 4};
        if ((*race_c = lookup(race, w, c, 15)) < 0)
            return et_err(ET_ERR_INVALID,
                          "attributes.race \"%s\" is not one of White, Black, Indian, Asian, "
                          "East Asian, Southeast Asian, Latino_Hispanic, Middle Eastern, Others "
                          "(FairFace) or a synthetic skin group (light .. dark)",
                          race);
    }
    return NULL;
}

double et_face_nme(const float *pred, const float *t) {
    const double iod = hypot((double)t[2 * 36] - t[2 * 45], (double)t[2 * 36 + 1] - t[2 * 45 + 1]);
    double e = 0;
    for (int k = 0; k < N_LM / 2; k++)
        e += hypot((double)pred[2 * k] - t[2 * k], (double)pred[2 * k + 1] - t[2 * k + 1]);
    return e / (N_LM / 2) / fmax(iod, 1e-12);
}

// ---- the run ----------------------------------------------------------------------------

typedef struct {
    const et_run_config *c;
    et_face_net net;
    et_tokenizer *tok;
    et_dataset *ds;
    int *cls;  // [N, 3] age, gender, race per dataset index
    int n_params;
    const char **names;
    et_tensor **params;
} frun_t;

static void frun_free(frun_t *r) {
    if (r->ds) et_dataset_close(r->ds);
    if (r->tok) et_tokenizer_free(r->tok);
    et_face_net_free(&r->net);
    free(r->cls), free(r->names), free(r->params);
}

// Opens a split with landmarks and reads every sample's attribute classes ([N, 3]).
static et_status open_split(const et_run_config *c, const char *path, et_dataset **ds, int **cls) {
    et_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.data_root = c->data_root[0] ? c->data_root : NULL;
    o.landmark_dim = N_LM;
    ET_TRY(et_dataset_open(path, &o, ds));
    const int64_t N = et_dataset_size(*ds);
    *cls = malloc(sizeof(int) * (size_t)(3 * (N ? N : 1)));
    for (int64_t i = 0; i < N; i++) {
        int *k = *cls + 3 * i;
        k[0] = k[1] = k[2] = -100;
        et_sample s;
        et_status st = et_dataset_get(*ds, i, &s);
        if (st) {  // the loader reports and skips it
            et_status_free(st);
            continue;
        }
        st = et_face_attr_classes(s.age, s.age_years, s.gender, s.race, &k[0], &k[1], &k[2]);
        if (st)
            st = et_status_wrap(st, "%s: sample %lld (id \"%s\")", path, (long long)i,
                                s.id ? s.id : "");
        if (!st && !s.landmark)
            st = et_err(ET_ERR_MISSING,
                        "%s: sample %lld (id \"%s\") has no \"landmark\" (the face network "
                        "trains on 68 landmarks)",
                        path, (long long)i, s.id ? s.id : "");
        et_sample_free(&s);
        if (st) return st;
    }
    return NULL;
}

static et_loader_opts loader_opts(const et_run_config *c, const frun_t *r) {
    et_loader_opts lo = et_loader_opts_default();
    lo.batch_size = c->batch_size, lo.max_len = c->max_len;
    lo.image_size = (int)r->net.cfg.image_size;
    lo.pad_to_square = !strcmp(c->image_aspect_ratio, "pad");
    lo.landmark_dim = N_LM;
    lo.workers = c->workers, lo.prefetch = c->prefetch, lo.seed = (uint64_t)c->seed;
    lo.shuffle = true, lo.drop_last = true, lo.rank = 0, lo.world = 1;
    lo.tmpl = et_template_find(c->template_name), lo.tok = r->tok;
    lo.image_token = ET_IMAGE_TOKEN_INDEX;
    return lo;
}

static et_status setup(const et_run_config *c, frun_t *r) {
    if (!c->train_data[0])
        return et_err(ET_ERR_INVALID,
                      "config: data.train is empty (faces with \"landmark\" and \"attributes\")");
    if (!c->tokenizer[0])
        return et_err(ET_ERR_INVALID,
                      "config: model.tokenizer is empty (the loader tokenises each sample's "
                      "conversation with data.template)");
    if (!et_template_find(c->template_name))
        return et_err(ET_ERR_INVALID, "config: unknown data.template \"%s\"", c->template_name);
    et_threads_apply(c->threads);
    ET_TRY(et_tokenizer_load(c->tokenizer, &r->tok));
    if (c->face_net_path[0]) {
        ET_TRY(et_face_net_load(c->face_net_path, &r->net));
        r->net.frozen = false;
    } else {
        if (!c->face_net_json)
            return et_err(ET_ERR_INVALID,
                          "config: set model.face_net (the network's shape) or "
                          "model.face_net_path");
        et_face_net_config fc;
        ET_TRY(et_face_net_config_from_json(c->face_net_json, "config model.face_net", &fc));
        ET_TRY(et_face_net_new_random(&fc, c->init_std, (uint64_t)c->init_seed + 7, &r->net));
    }
    r->n_params = et_face_net_params(&r->net, NULL, NULL);
    r->names = malloc(sizeof(*r->names) * (size_t)r->n_params);
    r->params = malloc(sizeof(*r->params) * (size_t)r->n_params);
    et_face_net_params(&r->net, r->names, r->params);
    for (int i = 0; i < r->n_params; i++) et_set_requires_grad(r->params[i], true);
    return open_split(c, c->train_data, &r->ds, &r->cls);
}

static et_tensor *i32_targets(const int *cls, const et_batch *b, int which) {
    et_tensor *t = et_empty(ET_I32, 1, (int64_t[]){b->B});
    for (int i = 0; i < b->B; i++) ((int32_t *)et_data(t))[i] = cls[3 * b->index[i] + which];
    return t;
}

// Argmax class of row i of logits [B, K].
static int64_t argmax_row(const et_tensor *logits, int64_t i) {
    const int64_t K = logits->shape[1];
    int64_t best = 0;
    for (int64_t k = 1; k < K; k++)
        if (et_get(logits, i * K + k) > et_get(logits, i * K + best)) best = k;
    return best;
}

static double batch_acc(const et_tensor *logits, const et_tensor *tgt) {
    int64_t ok = 0, n = 0;
    for (int64_t i = 0; i < logits->shape[0]; i++) {
        const int32_t y = ((const int32_t *)et_data(tgt))[i];
        if (y < 0) continue;
        ok += argmax_row(logits, i) == y, n++;
    }
    return n ? (double)ok / (double)n : 0;
}

// mean |pred - target|: pred * sign(pred - target) - target * sign(...) as a product with a
// constant sign tensor, so the gradient is sign(pred - target) / n (0 where equal).
static et_tensor *l1_loss(et_tensor *pred, et_tensor *target, double *value) {
    et_tensor *d = et_sub(pred, target);
    et_tensor *sg = et_empty(d->dtype, d->ndim, d->shape);
    double s = 0;
    for (int64_t i = 0; i < d->numel; i++) {
        const double v = et_get(d, i);
        et_set(sg, i, v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0);
        s += fabs(v);
    }
    *value = s / (double)d->numel;
    et_tensor *a = et_mul(d, sg);
    et_tensor *flat = et_reshape(a, 1, (int64_t[]){a->numel});
    et_tensor *m = et_mean_last(flat);
    et_release(d), et_release(sg), et_release(a), et_release(flat);
    return m;
}

static et_tensor *task_loss(et_aux_task *t, et_batch *b, int64_t step, double *metrics) {
    (void)step;
    frun_t *r = t->ctx;
    et_face_net_out o;
    et_face_net_forward(&r->net, b->pixels, &o);
    et_tensor *lm = l1_loss(o.landmarks, b->landmarks, &metrics[0]);
    et_tensor *total = et_scale(lm, r->c->face_landmark_weight);
    et_release(lm);
    et_tensor *logits[3] = {o.age, o.gender, o.race};
    for (int k = 0; k < 3; k++) {
        et_tensor *tg = i32_targets(r->cls, b, k);
        et_tensor *ce = et_cross_entropy(logits[k], tg, -100);
        metrics[1 + k] = batch_acc(logits[k], tg);
        et_tensor *sum = et_add(total, ce);
        et_release(total), et_release(ce), et_release(tg);
        total = sum;
    }
    et_face_net_out_free(&o);
    return total;
}

// Held-out metrics on data.eval: NME and the three accuracies.
static et_status evaluate(const et_run_config *c, frun_t *r, et_pretrain_result *res) {
    et_dataset *ds = NULL;
    int *cls = NULL;
    et_status st = open_split(c, c->eval_data, &ds, &cls);
    et_loader *l = NULL;
    if (!st) {
        et_loader_opts lo = loader_opts(c, r);
        lo.shuffle = false, lo.drop_last = false;
        st = et_loader_new(ds, &lo, &l);
    }
    double nme = 0;
    int64_t n = 0, ok[3] = {0}, cnt[3] = {0};
    const int64_t N = ds ? et_dataset_size(ds) : 0;
    const bool frozen = r->net.frozen;
    r->net.frozen = true;  // no tape
    for (int64_t seen = 0; !st && seen + et_loader_bad_samples(l) < N;) {
        et_batch b;
        st = et_loader_next(l, &b);
        if (st) break;
        et_face_net_out o;
        et_face_net_forward(&r->net, b.pixels, &o);
        for (int i = 0; i < b.B; i++) {
            nme += et_face_nme((const float *)et_data(o.landmarks) + i * N_LM,
                               (const float *)et_data(b.landmarks) + i * N_LM);
            n++;
            et_tensor *lg[3] = {o.age, o.gender, o.race};
            for (int k = 0; k < 3; k++) {
                const int y = cls[3 * b.index[i] + k];
                if (y < 0) continue;
                ok[k] += argmax_row(lg[k], i) == y, cnt[k]++;
            }
        }
        seen += b.B;
        et_face_net_out_free(&o);
        et_batch_free(&b);
    }
    r->net.frozen = frozen;
    if (!st) {
        res->evaluated = true;
        res->n_eval = n;
        res->nme = n ? nme / (double)n : 0;
        res->age_acc = cnt[0] ? (double)ok[0] / (double)cnt[0] : NAN;
        res->gender_acc = cnt[1] ? (double)ok[1] / (double)cnt[1] : NAN;
        res->race_acc = cnt[2] ? (double)ok[2] / (double)cnt[2] : NAN;
    }
    if (l) et_loader_free(l);
    if (ds) et_dataset_close(ds);
    free(cls);
    return st;
}

static et_status task_finish(et_aux_task *t, const et_run_config *c, et_pretrain_result *res) {
    frun_t *r = t->ctx;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/face_net", c->output_dir);
    ET_TRY(et_face_net_save(&r->net, dir));
    return c->eval_data[0] ? evaluate(c, r, res) : NULL;
}

et_status et_pretrain_face_run(const et_run_config *c, const et_train_opts *opts,
                               et_pretrain_result *res) {
    memset(res, 0, sizeof *res);
    frun_t r;
    memset(&r, 0, sizeof r);
    r.c = c;
    et_status st = setup(c, &r);
    if (!st) {
        et_loader_opts lo = loader_opts(c, &r);
        et_aux_task t = {.label = "pretrain-face",
                         .n_params = r.n_params,
                         .names = r.names,
                         .params = r.params,
                         .loss = task_loss,
                         .n_metrics = 4,
                         .metric_names = {"l1", "age_acc", "gender_acc", "race_acc"},
                         .finish = task_finish,
                         .ctx = &r};
        st = et_aux_run(c, opts, &t, r.ds, &lo, res);
    }
    frun_free(&r);
    return st;
}
