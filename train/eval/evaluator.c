// train/eval/evaluator.c - see evaluator.h
#include "evaluator.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/autograd.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/ops.h"
#include "data/attr_prompt.h"
#include "data/dataset.h"
#include "data/preprocess.h"
#include "data/template.h"
#include "train/checkpoint.h"
#include "train/emo_model.h"
#include "train/face_attrs.h"
#include "train/io/device_move.h"
#include "train/models/generate.h"
#include "train/progress.h"
#include "train/tblog.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int64_t index;
    char *id, *label, *reference;
    et_ids prompt;
    float *pixels;    // [3, S, S] or NULL
    float *landmark;  // [D] or NULL
} item_t;

static void item_free(item_t *it) {
    free(it->id), free(it->label), free(it->reference), free(it->pixels), free(it->landmark);
    et_ids_free(&it->prompt);
    memset(it, 0, sizeof *it);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

// Loads sample i into *it; an error means the sample is skipped.
static et_status load_item(const et_run_config *c, const et_emo_model *m, const et_dataset *ds,
                           const et_template *tmpl, const et_clip_preproc *pp, int64_t i,
                           item_t *it) {
    memset(it, 0, sizeof *it);
    et_sample s;
    ET_TRY(et_dataset_get(ds, i, &s));
    et_status st = NULL;
    it->index = i;
    it->id = dup_or_null(s.id);
    it->label = dup_or_null(s.label);
    // the question: the first human turn, else the default prompt
    et_chat_turn q = {.from = "human", .value = NULL};
    const char *ans = NULL;
    for (int t = 0; t < s.n_turns; t++) {
        if (s.turns[t].role == ET_ROLE_USER && !q.value)
            q.value = s.turns[t].value;
        else if (s.turns[t].role == ET_ROLE_ASSISTANT && q.value && !ans)
            ans = s.turns[t].value;
    }
    it->reference = dup_or_null(s.gpt4 ? s.gpt4 : ans);
    if (!q.value)
        q.value = c->eval_prompt[0] ? c->eval_prompt
                  : !strcmp(c->eval_kind, "au")
                      ? "<image>\nWhat AUs are conveyed by this face?"
                      : "<image>\nWhat emotions are conveyed by this face?";
    if (!it->label)
        st = et_err(ET_ERR_INVALID, "%s: sample %lld has no \"label\"", et_dataset_name(ds),
                    (long long)i);
    if (!st && !s.image && (m->prior.kind & ET_PRIOR_FIM))
        st = et_err(ET_ERR_INVALID,
                    "%s: sample %lld (id \"%s\") has no image, but Face Info Mining "
                    "(model.face_prior=%s) reads the face image",
                    et_dataset_name(ds), (long long)i, s.id ? s.id : "",
                    et_face_prior_kind_name(m->prior.kind));
    if (!st && s.image && m->load_pixels) {
        et_tensor *f = NULL;
        st = et_clip_preprocess_file(s.image, pp, &f);
        if (!st) {
            it->pixels = malloc(sizeof(float) * (size_t)f->numel);
            memcpy(it->pixels, et_data(f), sizeof(float) * (size_t)f->numel);
            et_release(f);
        }
    }
    char *agr = NULL;  // the attribute prompt, as in training
    et_attr_prompt ap;
    if (!st && et_run_config_attr_prompt(c, &ap)) {
        const char *w[3] = {s.age, s.gender, s.race};
        const bool net = !strcmp(c->attr_prompt_source, "network");
        if (net && !et_face_prior_raw_dim(&m->prior))
            st = et_err(ET_ERR_INVALID, "config: %s", ET_AGR_NETWORK_NEEDS_FIM);
        else if (net && it->pixels) {  // the network's words
            const int64_t S = m->image_size;
            et_tensor *px = et_from_data(ET_F32, 4, (int64_t[]){1, 3, S, S}, it->pixels);
            et_face_attrs_of((et_face_prior *)&m->prior, px, w);
            et_release(px);
        } else if (net) {
            w[0] = w[1] = w[2] = NULL;  // no image: reported as missing attributes
        }
        if (!st) st = et_attr_prompt_turns(&ap, &q, 1, w[0], w[1], w[2], &agr);
        if (st)
            st = et_status_wrap(st, "%s: sample %lld (id \"%s\")", et_dataset_name(ds),
                                (long long)i, s.id ? s.id : "");
    }
    et_template_opts to;
    et_template_opts_init(&to);
    to.max_len = c->max_len;
    to.image_id = m->mllm.image_token;
    if (!st) st = et_template_prompt(tmpl, m->tok, &q, 1, &to, &it->prompt, NULL);
    free(agr);
    const int64_t D = et_face_prior_data_landmarks(&m->prior);
    if (!st && D > 0) {
        if (!s.landmark || s.n_landmark != D)
            st = et_err(ET_ERR_INVALID, "%s: sample %lld: no landmarks of %lld values",
                        et_dataset_name(ds), (long long)i, (long long)D);
        else {
            it->landmark = malloc(sizeof(float) * (size_t)s.n_landmark);
            memcpy(it->landmark, s.landmark, sizeof(float) * (size_t)s.n_landmark);
        }
    }
    et_sample_free(&s);
    if (st) item_free(it);
    return st;
}

const char *et_eval_template_name(const et_run_config *cfg) {
    return cfg->eval_template[0] ? cfg->eval_template : cfg->template_name;
}

et_gen_opts et_eval_gen_opts(const et_run_config *c, const et_template_stop *stop) {
    et_gen_opts go = et_gen_defaults();
    go.max_new_tokens = c->eval_max_new_tokens;
    go.do_sample = c->eval_do_sample;
    go.temperature = c->eval_temperature, go.top_p = c->eval_top_p;
    go.seed = (uint64_t)c->seed;
    go.n_eos = 0;
    if (stop->eos_id >= 0) go.eos_ids[go.n_eos++] = stop->eos_id;
    if (stop->stop_id >= 0 && stop->stop_id != stop->eos_id) go.eos_ids[go.n_eos++] = stop->stop_id;
    if (go.n_eos == 0) go.n_eos = -1;
    go.pad_id = 0;
    return go;
}

char *et_eval_answer_text(const et_tokenizer *tk, const int32_t *row, int64_t n,
                          const et_template_stop *stop) {
    while (n > 0 && (row[n - 1] == stop->eos_id || row[n - 1] == stop->stop_id)) n--;
    char *text = et_tokenizer_decode(tk, row, (size_t)n, true, NULL);
    size_t L = strlen(text), sl = stop->stop_str ? strlen(stop->stop_str) : 0;
    if (sl && L >= sl && !strcmp(text + L - sl, stop->stop_str)) text[L -= sl] = 0;
    while (L > 0 && isspace((unsigned char)text[L - 1])) text[--L] = 0;
    size_t lead = 0;
    while (text[lead] && isspace((unsigned char)text[lead])) lead++;
    memmove(text, text + lead, L - lead + 1);
    return text;
}

// Generates the answers of k items; answers[i] malloc'd.
static et_status generate_batch(const et_run_config *c, et_emo_model *m, item_t *its, int k,
                                const et_template_stop *stop, char **answers) {
    ET_ASSERT(k > 0 && k <= (1 << 20), "generate_batch: k = %d", k);
    const int64_t S = m->image_size, D = et_face_prior_data_landmarks(&m->prior),
                  H = m->llm->cfg.hidden_size;
    bool any_pix = false;
    for (int i = 0; i < k; i++) any_pix = any_pix || its[i].pixels;
    et_tensor *visual = NULL, *prior = NULL, *pix = NULL, *lm = NULL;
    if (any_pix) {
        pix = et_zeros(ET_F32, 4, (int64_t[]){k, 3, S, S});
        for (int i = 0; i < k; i++)
            if (its[i].pixels)
                memcpy(ET_DATA(float, pix) + (size_t)i * 3 * S * S, its[i].pixels,
                       sizeof(float) * (size_t)(3 * S * S));
        if (m->use_images) visual = et_mllm_encode_images(&m->mllm, pix);
    }
    if (D > 0) {
        lm = et_zeros(ET_F32, 2, (int64_t[]){k, D});
        for (int i = 0; i < k; i++)
            memcpy(ET_DATA(float, lm) + (size_t)i * D, its[i].landmark, sizeof(float) * (size_t)D);
    }
    if (m->prior.kind != ET_PRIOR_NONE) prior = et_face_prior_forward(&m->prior, lm, pix, NULL);
    et_release(lm), et_release(pix);
    et_tensor **ids = malloc(sizeof(*ids) * (size_t)k);
    for (int i = 0; i < k; i++) {
        const int64_t n = (int64_t)its[i].prompt.len;
        ids[i] = et_from_data(ET_I32, 1, &n, its[i].prompt.data);
    }
    et_mllm_batch b;
    et_status st =
        et_mllm_splice(m->llm, m->mllm.image_token, c->max_len, k, ids, NULL, visual, prior, &b);
    for (int i = 0; i < k; i++) et_release(ids[i]);
    free(ids);
    et_release(visual), et_release(prior);
    if (st) return st;
    // right padding -> left padding, by a row gather (runs where the embeddings are). The
    // pad rows repeat the row's first token; the mask hides them from every query.
    const int64_t T = b.T;
    et_tensor *mask = et_zeros(ET_I32, 2, (int64_t[]){k, T});
    et_tensor *src = et_empty(ET_I32, 1, (int64_t[]){k * T});
    for (int i = 0; i < k; i++) {
        const int64_t len = b.len[i], off = T - len;
        for (int64_t t = 0; t < T; t++) {
            ET_DATA(int32_t, src)[i * T + t] = (int32_t)(i * T + (t < off ? 0 : t - off));
            ET_DATA(int32_t, mask)[i * T + t] = t >= off;
        }
    }
    et_tensor *flat = et_reshape(b.embeds, 2, (int64_t[]){k * T, H});
    et_tensor *rows = et_gather_rows(flat, src);
    et_tensor *emb = et_reshape(rows, 3, (int64_t[]){k, T, H});
    et_release(flat), et_release(rows), et_release(src);
    et_mllm_batch_free(&b);
    et_gen_opts go = et_eval_gen_opts(c, stop);
    et_tensor *out = NULL;
    int64_t *n_new = calloc((size_t)k, sizeof(int64_t));
    st = et_llama_generate_embeds(m->llm, emb, mask, &go, &out, n_new);
    et_release(emb), et_release(mask);
    if (!st) {
        const int64_t N = out->shape[1];
        for (int i = 0; i < k; i++)
            answers[i] = et_eval_answer_text(m->tok, ET_DATA(int32_t, out) + i * N, n_new[i], stop);
    }
    et_release(out);
    free(n_new);
    return st;
}

// The step of checkpoint dir: state.json's "step", else the number in a "step-N" name.
static et_status checkpoint_step(const char *dir, int64_t *step) {
    char path[4200], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/state.json", dir);
    et_status st = et_read_file(path, (size_t)1 << 20, &text, &len);
    if (!st) {
        cJSON *j = cJSON_Parse(text);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "step");
        bool ok = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15;
        if (ok) *step = (int64_t)v->valuedouble;
        cJSON_Delete(j);
        free(text);
        if (ok) return NULL;
    }
    et_status_free(st);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    char *end = NULL;
    if (n - b > 5 && !strncmp(dir + b, "step-", 5)) {
        long long v = strtoll(dir + b + 5, &end, 10);
        if (end == dir + n && v >= 0) {
            *step = v;
            return NULL;
        }
    }
    return et_err(ET_ERR_FORMAT,
                  "%s: cannot tell the checkpoint's step (no \"step\" in state.json and the "
                  "directory is not named step-N)",
                  dir);
}

et_status et_eval_write_tensorboard(const char *checkpoint_dir, const char *output_dir,
                                    const et_emo_eval_result *r, char *tb_dir, size_t cap,
                                    int64_t *step_out) {
    ET_ASSERT(checkpoint_dir && output_dir && r, "et_eval_write_tensorboard: NULL argument");
    int64_t step = 0;
    ET_TRY(checkpoint_step(checkpoint_dir, &step));
    // the run directory: <run>/checkpoints/step-N names it; otherwise train.output_dir
    char run[4096];
    snprintf(run, sizeof run, "%s", checkpoint_dir);
    size_t n = strlen(run);
    while (n > 1 && run[n - 1] == '/') run[--n] = 0;
    char *slash = strrchr(run, '/');
    bool in_run = false;
    if (slash) {
        *slash = 0;  // run = the parent
        char *parent = strrchr(run, '/');
        const char *base = parent ? parent + 1 : run;
        if (!strcmp(base, "checkpoints")) {
            if (parent)
                *parent = 0;
            else
                snprintf(run, sizeof run, ".");
            if (!run[0]) snprintf(run, sizeof run, "/");
            in_run = true;
        }
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/tb", in_run ? run : output_dir);
    const char *tags[8];
    double vals[8];
    int k = 0;
#define ADD(tag, v)                                    \
    do {                                               \
        if (isfinite(v)) tags[k] = tag, vals[k++] = v; \
    } while (0)
    if (r->kind == ET_EVAL_EMOTION) {
        ADD("eval/accuracy", r->accuracy);
        ADD("eval/war", r->accuracy);
        ADD("eval/uar", r->uar);
    } else {
        ADD("eval/f1_mean", r->f1_mean);
        ADD("eval/au_acc_mean", r->au_acc_mean);
    }
    if (r->n_rouge > 0) {
        ADD("eval/rouge_l", r->rouge_l_mean);
        ADD("eval/rege", r->rege);
    }
    ADD("eval/n_samples", (double)r->n_samples);
#undef ADD
    et_tblog *tb = NULL;
    ET_TRY(et_tblog_open(dir, &tb));
    et_status st = et_tblog_scalars(tb, step, k, tags, vals);
    et_status cs = et_tblog_close(tb);
    if (!st)
        st = cs;
    else
        et_status_free(cs);
    if (st) return st;
    if (tb_dir) snprintf(tb_dir, cap, "%s", dir);
    if (step_out) *step_out = step;
    return NULL;
}

et_status et_eval_run(const et_run_config *c, const char *checkpoint, et_eval_summary *out) {
    memset(out, 0, sizeof *out);
    const double t0 = now_s();
    if (!c->eval_data[0]) return et_err(ET_ERR_INVALID, "config: data.eval is empty");
    const bool au = !strcmp(c->eval_kind, "au");
    if (!au && strcmp(c->eval_kind, "emotion"))
        return et_err(ET_ERR_INVALID, "config: eval.kind \"%s\": expected emotion or au",
                      c->eval_kind);
    et_emo_parse parse;
    if (!strcmp(c->eval_answer_parse, "emola"))
        parse = ET_EMO_PARSE_EMOLA;
    else if (!strcmp(c->eval_answer_parse, "name"))
        parse = ET_EMO_PARSE_NAME;
    else
        return et_err(ET_ERR_INVALID, "config: eval.answer_parse \"%s\": expected emola or name",
                      c->eval_answer_parse);
    char ckpt[4096];
    ET_TRY(et_trainckpt_resolve(checkpoint, c->output_dir, ckpt, sizeof ckpt));
    et_emo_model m;
    ET_TRY(et_emo_model_build(c, &m));
    et_status st = NULL;
    et_dataset *ds = NULL;
    const et_template *tmpl = NULL;
    et_emo_eval *ev = NULL;
    FILE *pred = NULL;
    if (!m.tok) st = et_err(ET_ERR_INVALID, "config: model.tokenizer is empty");
    if (!st) {
        char p[4200];
        snprintf(p, sizeof p, "%s/trainables.safetensors", ckpt);
        st = et_emo_model_load_trainables(&m, p);
    }
    if (!st && !strcmp(c->device, "cuda")) {  // train.device: evaluate where training ran
        size_t bytes = 0;
        st = et_emo_model_to_device(&m, (et_device){ET_CUDA, 0}, &bytes);
        if (!st) et_info("eval: model on cuda:0 (%.1f MiB)", (double)bytes / (1 << 20));
    }
    if (!st) st = et_template_get(et_eval_template_name(c), &tmpl);
    if (!st) {
        et_dataset_opts o = {.data_root = c->data_root[0] ? c->data_root : NULL,
                             .require_answer = false,
                             .landmark_dim = (int)et_face_prior_data_landmarks(&m.prior),
                             .landmark_bound = et_face_prior_landmark_bound(&m.prior)};
        st = et_dataset_open(c->eval_data, &o, &ds);
    }
    if (!st) {
        et_emo_eval_opts eo = {.kind = au ? ET_EVAL_AU : ET_EVAL_EMOTION, .parse = parse};
        st = et_emo_eval_new(&eo, &ev);
    }
    if (!st) {
        if (c->eval_output_dir[0])
            snprintf(out->output_dir, sizeof out->output_dir, "%s", c->eval_output_dir);
        else
            snprintf(out->output_dir, sizeof out->output_dir, "%.4000s/eval", c->output_dir);
        st = et_mkdirs(out->output_dir);
    }
    char path[4200];
    if (!st) {
        snprintf(path, sizeof path, "%s/predictions.jsonl", out->output_dir);
        pred = fopen(path, "w");
        if (!pred) st = et_err(ET_ERR_IO, "%s: cannot create", path);
    }
    if (st) goto done;
    {
        et_info("eval: %s (%lld samples) with %s", c->eval_data, (long long)et_dataset_size(ds),
                ckpt);
        et_clip_preproc pp;
        et_clip_preproc_default(&pp, m.image_size > 0 ? (int)m.image_size : 224);
        pp.pad_square = m.pad_to_square;
        et_template_stop stop;
        {
            et_ids tmp = {0};
            et_chat_turn q = {.from = "human", .value = "<image>"};
            et_template_opts to;
            et_template_opts_init(&to);
            st = et_template_prompt(tmpl, m.tok, &q, 1, &to, &tmp, &stop);
            et_ids_free(&tmp);
        }
        int64_t N = et_dataset_size(ds);
        if (c->eval_max_samples > 0 && c->eval_max_samples < N) N = c->eval_max_samples;
        const int B = c->eval_batch_size;
        item_t *its = calloc((size_t)B, sizeof(item_t));
        char **answers = calloc((size_t)B, sizeof(char *));
        et_progress_options po = {.label = "eval"};
        et_progress *bar = et_progress_new_ex(N, stderr, &po);
        et_no_grad_begin();
        for (int64_t i = 0; i < N && !st;) {
            int k = 0;
            while (k < B && i < N) {
                et_status ls = load_item(c, &m, ds, tmpl, &pp, i++, &its[k]);
                if (ls) {
                    if (!out->n_skipped++) et_warn("eval: skipping: %s", et_status_msg(ls));
                    et_status_free(ls);
                    continue;
                }
                k++;
            }
            if (k == 0) continue;
            st = generate_batch(c, &m, its, k, &stop, answers);
            for (int j = 0; j < k && !st; j++) {
                et_emo_sample es;
                et_status as = et_emo_eval_add(ev, answers[j], its[j].label, its[j].reference, &es);
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "index", (double)its[j].index);
                if (its[j].id) cJSON_AddStringToObject(o, "id", its[j].id);
                cJSON_AddStringToObject(o, "label", its[j].label);
                cJSON_AddStringToObject(o, "prediction", answers[j]);
                if (as) {
                    cJSON_AddStringToObject(o, "error", et_status_msg(as));
                    out->n_skipped++;
                    et_status_free(as);
                } else if (!au) {
                    cJSON_AddNumberToObject(o, "pred_class", es.pred_class);
                    cJSON_AddNumberToObject(o, "label_class", es.label_class);
                } else {
                    cJSON *a = cJSON_CreateIntArray(es.pred_aus, es.n_pred_aus);
                    cJSON_AddItemToObject(o, "pred_aus", a);
                }
                if (!as && es.rouge.defined) cJSON_AddNumberToObject(o, "rouge_l", es.rouge.f);
                char *line = cJSON_PrintUnformatted(o);
                fprintf(pred, "%s\n", line);
                free(line);
                cJSON_Delete(o);
            }
            for (int j = 0; j < k; j++) {
                free(answers[j]);
                answers[j] = NULL;
                item_free(&its[j]);
            }
            et_progress_update(bar, i, 0, NULL, NULL);
        }
        et_no_grad_end();
        et_progress_finish(bar);
        et_progress_free(bar);
        free(its), free(answers);
    }
    if (!st && fclose(pred) != 0)
        st = et_err(ET_ERR_IO, "%s/predictions.jsonl: write failed", out->output_dir);
    pred = NULL;
    if (!st) {
        et_emo_eval_result_get(ev, &out->result);
        snprintf(path, sizeof path, "%s/metrics.json", out->output_dir);
        st = et_emo_eval_write_json(ev, path);
    }
    if (!st && c->tensorboard) {  // the metrics beside the run's training curves
        char tbd[4200];
        int64_t step = 0;
        et_status ts =
            et_eval_write_tensorboard(ckpt, c->output_dir, &out->result, tbd, sizeof tbd, &step);
        if (ts) {  // the metrics are in metrics.json: warn, do not fail the evaluation
            et_warn("eval: TensorBoard: %s", et_status_msg(ts));
            et_status_free(ts);
        } else {
            et_info("eval: metrics in TensorBoard under %s at step %lld", tbd, (long long)step);
        }
    }
    if (!st && !au) {
        snprintf(path, sizeof path, "%s/confusion.png", out->output_dir);
        const char *slash = strrchr(c->eval_data, '/');
        st = et_emo_eval_write_confusion_png(ev, path, 0, slash ? slash + 1 : c->eval_data);
    }
done:
    if (pred) fclose(pred);
    et_emo_eval_free(ev);
    et_dataset_close(ds);
    et_emo_model_free(&m);
    out->seconds = now_s() - t0;
    return st;
}
