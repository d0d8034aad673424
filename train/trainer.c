// train/trainer.c - see trainer.h
#include "trainer.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/autograd.h"
#include "../core/device.h"
#include "../core/fileio.h"
#include "../core/log.h"
#include "../core/ops.h"
#include "../core/optim.h"
#include "../core/rng.h"
#include "../core/threads.h"
#include "../data/attr_prompt.h"
#include "../data/dataloader.h"
#include "../data/store.h"
#include "checkpoint.h"
#include "face_attrs.h"
#include "progress.h"
#include "run_dir.h"
#include "tblog.h"
#include "train/emo_model.h"
#include "train/eval/plot.h"
#include "train/io/device_move.h"
#include "train/io/export.h"

static volatile sig_atomic_t g_stop;
void et_train_stop_request(void) { g_stop = 1; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Test hook: EMOTUNE_INJECT_NAN="3,4" makes the gradients of those steps (0-based) NaN.
static bool inject_nan(int64_t step) {
    const char *e = getenv("EMOTUNE_INJECT_NAN");
    if (!e) return false;
    for (const char *p = e; *p;) {
        char *end = NULL;
        long long v = strtoll(p, &end, 10);
        if (end == p) break;
        if (v == step) return true;
        p = *end == ',' ? end + 1 : end;
    }
    return false;
}

typedef struct {
    et_emo_model model;
    et_dataset *ds;
    et_store *store;  // data.store: a prepared store instead of ds
    const char *data_name;
    const et_template *tmpl;
    et_loader *loader;
    et_adamw *opt;
    et_tblog *tb;
    et_metrics_log *mlog;
    et_progress *bar;
    char *config_json;
    et_attr_prompt agr;  // attribute_prompt (has_agr)
    bool has_agr;
    const char **agr_words;  // attribute_prompt.source network: the network's words per sample
} run_t;

static void run_free(run_t *r) {
    if (r->bar) et_progress_free(r->bar);
    if (r->tb) et_status_free(et_tblog_close(r->tb));
    if (r->mlog) et_status_free(et_metrics_log_close(r->mlog));
    et_adamw_free(r->opt);
    if (r->loader) et_loader_free(r->loader);
    if (r->ds) et_dataset_close(r->ds);
    if (r->store) et_store_close(r->store);
    et_emo_model_free(&r->model);
    free(r->config_json);
    et_face_attrs_table_free(r->agr_words);
}

static et_status open_data(const et_run_config *c, const et_emo_model *m, const char *path,
                           et_dataset **ds, const et_template **tmpl, bool require_answer) {
    ET_TRY(et_template_get(c->template_name, tmpl));
    et_dataset_opts o;
    memset(&o, 0, sizeof o);
    o.data_root = c->data_root[0] ? c->data_root : NULL;
    o.require_answer = require_answer;
    o.landmark_dim = (int)et_face_prior_data_landmarks(&m->prior);
    o.landmark_bound = et_face_prior_landmark_bound(&m->prior);
    return et_dataset_open(path, &o, ds);
}

// The model side of video (et_batch.video) is not wired yet: refuse video samples before
// any step rather than train on their text alone.
static et_status refuse_videos(int64_t n_video, int64_t first, const char *name) {
    if (!n_video) return NULL;
    return et_err(ET_ERR_UNSUPPORTED,
                  "%s: %lld video samples (first: sample %lld); training on videos is not "
                  "supported yet (the model has no video input): remove them from the data",
                  name, (long long)n_video, (long long)first);
}

// Before any step: every sample's conversation must keep a supervised token within
// data.max_len (an answer pushed past max_len would train on nothing). Text only, no media.
static et_status check_lengths(const et_run_config *c, run_t *r) {
    et_template_opts to;
    et_template_opts_init(&to);
    to.max_len = c->max_len;
    to.image_id = r->model.mllm.image_token;
    to.supervise_all = !strcmp(c->supervise, "all");
    const int64_t N = et_dataset_size(r->ds);
    int64_t n_bad = 0, first = -1, n_video = 0, first_video = -1;
    char first_id[128] = "";
    size_t first_len = 0;
    for (int64_t i = 0; i < N; i++) {
        et_sample s;
        et_status st = et_dataset_get(r->ds, i, &s);
        if (st) {  // reported (and skipped) by the loader
            et_status_free(st);
            continue;
        }
        if (s.video && !n_video++) first_video = i;
        et_chat_turn *turns = malloc(sizeof(*turns) * (size_t)(s.n_turns + 1));
        for (int t = 0; t < s.n_turns; t++)
            turns[t] = (et_chat_turn){.from = s.turns[t].from, .value = s.turns[t].value};
        et_ids ids = {0}, labels = {0};
        et_template_info info;
        char *agr = NULL;
        if (r->has_agr) {  // a sample without the attributes the prompt names: stop here
            const char **w = r->agr_words ? r->agr_words + 3 * i : NULL;
            st = et_attr_prompt_turns(&r->agr, turns, (size_t)s.n_turns, w ? w[0] : s.age,
                                      w ? w[1] : s.gender, w ? w[2] : s.race, &agr);
            if (st) {
                st = et_status_wrap(st, "%s: sample %lld (id \"%s\"; attribute_prompt.source %s)",
                                    c->train_data, (long long)i, s.id ? s.id : "",
                                    w ? "network: the sample has no image the face network could "
                                        "read"
                                      : "dataset reads the sample's \"attributes\"");
                free(turns);
                et_sample_free(&s);
                return st;
            }
        }
        st = et_template_encode(r->tmpl, r->model.tok, turns, (size_t)s.n_turns, &to, &ids, &labels,
                                &info);
        free(agr);
        if (!st && !info.has_supervised && !info.mismatch) {
            if (!n_bad++) {
                first = i, first_len = info.full_len;
                snprintf(first_id, sizeof first_id, "%s", s.id ? s.id : "");
            }
        }
        et_status_free(st);
        et_ids_free(&ids), et_ids_free(&labels);
        free(turns);
        et_sample_free(&s);
    }
    if (n_bad)
        return et_err(ET_ERR_INVALID,
                      "%s: %lld of %lld samples have no answer token within data.max_len = %d "
                      "(first: sample %lld, id \"%s\", %zu tokens); raise data.max_len or remove "
                      "them",
                      c->train_data, (long long)n_bad, (long long)N, c->max_len, (long long)first,
                      first_id, first_len);
    return refuse_videos(n_video, first_video, c->train_data);
}

// data.store: open the prepared store and check that it was made for this model and data
// settings (image size, landmarks, template, tokenizer), before any step.
static et_status open_store(const et_run_config *c, run_t *r) {
    ET_TRY(et_store_open(c->store, &r->store));
    // ids / labels outside the decoder's vocabulary: the sample is skipped and counted
    et_store_set_vocab(r->store, r->model.llm->cfg.vocab_size, r->model.mllm.image_token);
    const et_store_schema *sc = et_store_get_schema(r->store);
    const et_emo_model *m = &r->model;
    const char *p = c->store;
    if (m->load_pixels && sc->image_size != (int)m->image_size)
        return et_err(ET_ERR_INVALID,
                      "%s: the store holds %dx%d images but the model's tower takes %lld; "
                      "prepare it again with this config (emotune prepare)",
                      p, sc->image_size, sc->image_size, (long long)m->image_size);
    const int D = (int)et_face_prior_data_landmarks(&m->prior);
    const int64_t R = et_face_prior_raw_dim(&m->prior);
    if (R > 0 && (sc->prior_dim != R || strcmp(sc->prior_layout ? sc->prior_layout : "",
                                               et_face_prior_raw_layout(&m->prior))))
        return et_err(ET_ERR_INVALID,
                      "%s: the store's face priors are %s (%d values) but this model's Face Info "
                      "Mining needs %s (%lld values); prepare it again with this config (emotune "
                      "prepare runs the face network once)",
                      p, sc->prior_dim ? sc->prior_layout : "absent", sc->prior_dim,
                      et_face_prior_raw_layout(&m->prior), (long long)R);
    if (D > 0 && sc->landmark_dim != D)
        return et_err(ET_ERR_INVALID,
                      "%s: the store has landmark_dim %d but model.landmark_dim is %d; prepare "
                      "it again with this config",
                      p, sc->landmark_dim, D);
    if (strcmp(sc->template_name ? sc->template_name : "", c->template_name))
        return et_err(ET_ERR_INVALID,
                      "%s: the store was tokenized with template \"%s\" but data.template is "
                      "\"%s\"; prepare it again with this config",
                      p, sc->template_name ? sc->template_name : "", c->template_name);
    const char *sup = sc->supervise && sc->supervise[0] ? sc->supervise : "answers";
    if (strcmp(sup, c->supervise))
        return et_err(ET_ERR_INVALID,
                      "%s: the store's labels were made with data.supervise=%s but the config "
                      "says %s; prepare it again with this config",
                      p, sup, c->supervise);
    if (strcmp(sc->tokenizer_name ? sc->tokenizer_name : "", c->tokenizer))
        return et_err(ET_ERR_INVALID,
                      "%s: the store was tokenized with tokenizer \"%s\" but model.tokenizer is "
                      "\"%s\"; prepare it again with this config",
                      p, sc->tokenizer_name ? sc->tokenizer_name : "", c->tokenizer);
    int64_t n_video = 0, first = -1;
    for (int64_t i = 0; i < et_store_size(r->store); i++) {
        int kind = 0;
        et_store_lengths(r->store, i, NULL, NULL, &kind);
        if (kind == ET_STORE_KIND_VIDEO && !n_video++) first = i;
    }
    return refuse_videos(n_video, first, p);
}

// Model, data, loader and optimizer, validated; nothing is written.
static et_status setup(const et_run_config *c, run_t *r, et_train_state *state, int64_t *total) {
    if (!c->train_data[0] && !c->store[0])
        return et_err(ET_ERR_INVALID,
                      "config: data.train is empty (a LLaVA-format JSON/JSONL) and no data.store "
                      "is set");
    et_threads_apply(c->threads);
    ET_TRY(et_emo_model_build(c, &r->model));
    if (!r->model.tok) return et_err(ET_ERR_INVALID, "config: model.tokenizer is empty");
    r->has_agr = et_run_config_attr_prompt(c, &r->agr);
    if (r->has_agr && !strcmp(c->attr_prompt_source, "network") &&
        !et_face_prior_raw_dim(&r->model.prior))
        return et_err(ET_ERR_INVALID, "config: %s", ET_AGR_NETWORK_NEEDS_FIM);
    if (r->has_agr && c->store[0])
        return et_err(ET_ERR_UNSUPPORTED,
                      "config: attribute_prompt with data.store %s: a prepared store holds "
                      "tokenised conversations without the prompt; train from data.train",
                      c->store);
    if (c->store[0]) {
        r->data_name = c->store;
        ET_TRY(et_template_get(c->template_name, &r->tmpl));
        ET_TRY(open_store(c, r));
    } else {
        r->data_name = c->train_data;
        ET_TRY(open_data(c, &r->model, c->train_data, &r->ds, &r->tmpl, true));
        if (r->has_agr && !strcmp(c->attr_prompt_source, "network")) {
            et_clip_preproc pp;
            et_clip_preproc_default(&pp, (int)r->model.image_size);
            pp.pad_square = r->model.pad_to_square;
            ET_TRY(et_face_attrs_table(&r->model.prior, r->ds, &pp, &r->agr_words));
        }
        ET_TRY(check_lengths(c, r));
    }
    et_loader_opts lo = et_loader_opts_default();
    lo.batch_size = c->batch_size, lo.max_len = c->max_len;
    lo.image_size = r->model.load_pixels ? (int)r->model.image_size : 0;
    lo.pad_to_square = r->model.pad_to_square;
    lo.landmark_dim = (int)et_face_prior_data_landmarks(&r->model.prior);
    if (r->store) lo.prior_dim = (int)et_face_prior_raw_dim(&r->model.prior);
    lo.workers = c->workers, lo.prefetch = c->prefetch, lo.seed = (uint64_t)c->seed;
    lo.shuffle = true, lo.group_by_length = c->group_by_modality_length, lo.drop_last = true;
    lo.rank = 0, lo.world = 1, lo.tmpl = r->tmpl, lo.tok = r->model.tok;
    lo.supervise_all = !strcmp(c->supervise, "all");
    lo.attr_prompt = r->has_agr ? &r->agr : NULL;
    lo.attr_words = r->agr_words;
    lo.image_token = r->model.mllm.image_token;
    lo.video_frames = 0;  // refused above (check_lengths / open_store)
    lo.stop = &g_stop;    // a stop request interrupts a wait for data
    if (r->store)
        ET_TRY(et_loader_new_store(r->store, &lo, &r->loader));
    else
        ET_TRY(et_loader_new(r->ds, &lo, &r->loader));
    const int64_t per_epoch =
        et_loader_epoch_samples(r->loader) / ((int64_t)c->batch_size * c->grad_accum);
    if (per_epoch < 1)  // with max_steps too: the loader could never fill one step
        return et_err(ET_ERR_INVALID,
                      "%s: %lld samples, fewer than one optimizer step takes (train.batch_size %d "
                      "x train.grad_accum %d = %lld): lower train.batch_size or train.grad_accum, "
                      "or add samples",
                      r->data_name, (long long)et_loader_epoch_samples(r->loader), c->batch_size,
                      c->grad_accum, (long long)c->batch_size * c->grad_accum);
    *total = c->max_steps > 0 ? c->max_steps : per_epoch * c->epochs;

    if (!strcmp(c->device, "cuda")) {  // the optimizer is built on the moved parameters
        size_t bytes = 0;
        ET_TRY(et_emo_model_to_device(&r->model, (et_device){ET_CUDA, 0}, &bytes));
        et_info("model on cuda:0 (%.1f MiB)", (double)bytes / (1 << 20));
    }
    et_adamw_config ac = et_adamw_defaults();
    ac.lr = c->lr, ac.beta1 = c->adam_beta1, ac.beta2 = c->adam_beta2, ac.eps = c->adam_eps;
    ac.weight_decay = c->weight_decay;
    ET_TRY(et_adamw_new(&ac, &r->opt));
    for (int g = 0; g < r->model.n_groups; g++) {
        et_emo_group *eg = &r->model.groups[g];
        et_param_group pg = {
            .name = eg->name, .lr = eg->lr, .lr_mult = 0, .weight_decay = c->weight_decay};
        if (c->weight_decay == 0) {  // one group (the state names of every earlier run)
            ET_TRY(et_adamw_add_group(r->opt, &pg, eg->n, eg->params, eg->names, NULL));
            continue;
        }
        // HF Trainer: biases and norm weights get no decay; they go to "<group>_no_decay"
        et_tensor **ps = malloc(sizeof(*ps) * (size_t)eg->n);
        const char **ns = malloc(sizeof(*ns) * (size_t)eg->n);
        ET_ASSERT(ps && ns, "out of memory");
        char nd_name[40];
        snprintf(nd_name, sizeof nd_name, "%s_no_decay", eg->name);
        et_status st = NULL;
        for (int pass = 0; pass < 2 && !st; pass++) {
            int k = 0;
            for (int i = 0; i < eg->n; i++)
                if (et_emo_param_decays(eg->names[i]) == (pass == 0))
                    ps[k] = eg->params[i], ns[k++] = eg->names[i];
            if (pass == 1) pg.name = nd_name, pg.weight_decay = 0;
            if (k) st = et_adamw_add_group(r->opt, &pg, k, ps, ns, NULL);
        }
        free(ps), free(ns);
        ET_TRY(st);
    }
    r->config_json = et_run_config_to_json(c);
    memset(state, 0, sizeof *state);
    return NULL;
}

// Under the run directory's lock: checkpoint leftovers cleaned, the newest checkpoint read
// (resume). Writes nothing else: config.json, metrics.jsonl and tb/ wait for the first step
// (open_outputs), so a run that fails before it leaves an existing run as it was.
static et_status resume_state(const et_run_config *c, bool resume, run_t *r, et_train_state *state,
                              int64_t total) {
    char path[4200];
    snprintf(path, sizeof path, "%s/checkpoints", c->output_dir);
    et_trainckpt_cleanup(path);
    if (!resume) return NULL;
    char dir[4096];
    bool found = false;
    ET_TRY(et_trainckpt_latest(path, dir, sizeof dir, &found));
    if (!found) {
        et_info("--resume: no checkpoint under %s, starting fresh", path);
        return NULL;
    }
    int n = r->model.n_trainables;
    const char **names = malloc(sizeof(*names) * (size_t)n);
    et_tensor **ps = malloc(sizeof(*ps) * (size_t)n);
    et_emo_model_trainables(&r->model, names, ps);
    et_status st = et_trainckpt_read(dir, state, n, names, ps, r->opt);
    free(names), free(ps);
    if (st) return et_status_wrap(st, "resuming from %s", dir);
    et_loader_seek(r->loader, state->epoch, state->position);
    et_info("resumed from %s (step %lld of %lld)", dir, (long long)state->step, (long long)total);
    return NULL;
}

// config.json, metrics.jsonl (appended to when resuming) and tb/: once the first step of this
// process has run.
static et_status open_outputs(const et_run_config *c, bool resume, run_t *r) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", c->output_dir);
    ET_TRY(et_write_file_atomic(path, r->config_json, strlen(r->config_json)));
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->output_dir);
    ET_TRY(et_metrics_log_open(path, resume, &r->mlog));
    if (c->tensorboard) {
        snprintf(path, sizeof path, "%s/tb", c->output_dir);
        et_status st = et_tblog_open(path, &r->tb);
        if (st) {  // logging must not stop training
            et_warn("tensorboard: %s", et_status_msg(st));
            et_status_free(st);
            r->tb = NULL;
        }
    }
    return NULL;
}

void et_modality_dropout(et_batch *b, double p, uint64_t seed, int64_t micro_step) {
    if (p <= 0 || !b->pixels || !b->landmarks) return;
    const int64_t px = b->pixels->numel / b->B, lm = b->landmarks->numel / b->B;
    float *pix = et_data(b->pixels), *land = et_data(b->landmarks);
    for (int i = 0; i < b->B; i++) {
        double u =
            et_rng_u32(seed + 7919, (uint64_t)micro_step * 65536u + (uint64_t)i) / 4294967296.0;
        if (u < p / 2)
            memset(pix + i * px, 0, sizeof(float) * (size_t)px);
        else if (u < p)
            memset(land + i * lm, 0, sizeof(float) * (size_t)lm);
    }
}

// With train.device cuda, the batch's pixels and landmarks go to the GPU (ids and labels
// stay on the host: the splice reads them there).
static void batch_to_device(et_batch *b, const char *device) {
    if (strcmp(device, "cuda")) return;
    et_tensor **ts[3] = {&b->pixels, &b->landmarks, &b->priors};
    for (int i = 0; i < 3; i++) {
        if (!*ts[i]) continue;
        et_tensor *d = et_to_device(*ts[i], (et_device){ET_CUDA, 0});
        et_release(*ts[i]);
        *ts[i] = d;
    }
}

// at_pos: the loader position to record ({epoch, position}), or NULL for the loader's own.
static et_status save_ckpt(const et_run_config *c, run_t *r, et_train_state *state,
                           const int64_t *at_pos, et_train_result *res) {
    char root[4200];
    snprintf(root, sizeof root, "%s/checkpoints", c->output_dir);
    if (at_pos)
        state->epoch = at_pos[0], state->position = at_pos[1];
    else
        et_loader_tell(r->loader, &state->epoch, &state->position);
    state->bad_samples = et_loader_bad_samples(r->loader);
    int n = r->model.n_trainables;
    const char **names = malloc(sizeof(*names) * (size_t)n);
    et_tensor **ps = malloc(sizeof(*ps) * (size_t)n);
    et_emo_model_trainables(&r->model, names, ps);
    et_status st = et_trainckpt_write(root, state, n, names, ps, r->opt, r->config_json,
                                      c->keep_last, res->checkpoint, sizeof res->checkpoint);
    free(names), free(ps);
    return st;
}

// The run's results, per training mode: adapter/ (LoRA), non_lora_trainables.safetensors
// (projector, expert), mm_projector.safetensors (an explicit "projector": LLaVA's stage-1
// file), merged/ (decoder or embeddings trained: HF LlamaForCausalLM) and vision/ (tower
// trained: HF CLIPVisionModel). only_missing (a resumed run that had already taken its last
// step, e.g. killed while exporting): writes only the results that are not there yet, so a
// finished run's files are never rewritten and an unfinished export is completed.
static bool exists(const char *dir, const char *name) {
    char p[4400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static et_status export_final(const et_run_config *c, run_t *r, bool only_missing) {
    char path[4200];
    const et_emo_model *m = &r->model;
    const char *o = c->output_dir;
    int n = 0;
    if (m->has_lora && !(only_missing && exists(o, "adapter/adapter_config.json") &&
                         exists(o, "adapter/adapter_model.safetensors"))) {
        snprintf(path, sizeof path, "%s/adapter", o);
        ET_TRY(et_mkdirs(path));
        ET_TRY(et_lora_save_adapter(path, &m->lora, m->n_linears, m->linears));
        n++;
    }
    if (!(only_missing && exists(o, "non_lora_trainables.safetensors"))) {
        snprintf(path, sizeof path, "%s/non_lora_trainables.safetensors", o);
        ET_TRY(et_export_non_lora_trainables(path, m));
        n++;
    }
    if (m->explicit_trainable && et_emo_model_trains(m, "projector") &&
        !(only_missing && exists(o, "mm_projector.safetensors"))) {
        snprintf(path, sizeof path, "%s/mm_projector.safetensors", o);
        ET_TRY(et_export_mm_projector(path, m));
        n++;
    }
    if ((et_emo_model_trains(m, "decoder") || et_emo_model_trains(m, "embeddings")) &&
        !(only_missing && exists(o, "merged/config.json"))) {
        snprintf(path, sizeof path, "%s/merged", o);
        et_export_opts eo = et_export_defaults(m->llm);
        ET_TRY(et_export_merged_llama(path, m->llm, &eo));
        n++;
    }
    if (et_emo_model_trains(m, "tower") && !(only_missing && exists(o, "vision/config.json"))) {
        snprintf(path, sizeof path, "%s/vision", o);
        ET_TRY(et_export_clip_vision(path, m->mllm.vision, m->mllm.vision->patch_weight->dtype));
        n++;
    }
    if (only_missing && n)
        et_info("wrote the %d final result(s) missing from %s (the run had finished its steps)", n,
                o);
    return NULL;
}

// <output_dir>/curves.png: loss and learning rate over the whole run (metrics.jsonl, resumed
// parts included). A plot that cannot be drawn is a warning, never a failed run.
static void write_curves(const et_run_config *c) {
    char jsonl[4200], png[4200], title[4300];
    snprintf(jsonl, sizeof jsonl, "%s/metrics.jsonl", c->output_dir);
    snprintf(png, sizeof png, "%s/curves.png", c->output_dir);
    snprintf(title, sizeof title, "training curves: %s", c->output_dir);
    et_status st = et_plot_metrics_curves(jsonl, png, title);
    if (st) et_warn("curves.png: %s", et_status_msg(st));
    et_status_free(st);
}

static et_status train_loop(const et_run_config *c, bool resume, run_t *r, et_train_state *state,
                            int64_t total, et_train_result *res) {
    et_emo_model *m = &r->model;
    const int n_params = m->n_trainables;
    et_tensor **params = malloc(sizeof(*params) * (size_t)n_params);
    et_emo_model_trainables(m, NULL, params);
    et_schedule sched = (et_schedule)et_schedule_from_name(c->lr_scheduler);
    const int64_t warm = et_warmup_steps(total, c->warmup_steps, c->warmup_ratio);
    et_progress_options po = {.label = "train", .initial_step = state->step};
    r->bar = et_progress_new_ex(total, stderr, &po);
    double win_loss = 0, win_tokens = 0, t_win = now_s(), t0 = now_s();
    int win_n = 0;
    bool first_window = true;
    et_status st = NULL;
    et_rng_stream rng = {(uint64_t)c->seed + 104729, state->rng_offset};
    res->start_step = state->step;
    const int64_t start_tokens = state->tokens;
    int64_t saved_step = state->step;  // the newest checkpoint of this run holds this step
    while (state->step < total && !st) {
        double step_loss = 0;
        int64_t step_tokens = 0;
        int64_t at_start[2];  // loader position before this step
        et_loader_tell(r->loader, &at_start[0], &at_start[1]);
        const int64_t micro_at_start = state->micro_step;
        for (int a = 0; a < c->grad_accum && !st; a++) {
            et_batch b;
            st = et_loader_next(r->loader, &b);
            if (st && et_loader_interrupted(r->loader)) {
                // a stop request while waiting for data: the step is dropped (its gradients
                // with it) and the checkpoint records the position before it
                et_status_free(st);
                st = NULL;
                et_zero_grad(n_params, params);
                state->micro_step = micro_at_start;
                res->interrupted = true;
                if (state->step > saved_step) st = save_ckpt(c, r, state, at_start, res);
                if (!st && res->checkpoint[0])
                    et_warn(
                        "interrupted while waiting for data: checkpoint %s holds step %lld; "
                        "continue with --resume",
                        res->checkpoint, (long long)state->step);
                else if (!st)
                    et_warn(
                        "interrupted while waiting for data, before the first step of this "
                        "run: nothing to save");
                break;
            }
            if (st) break;
            if (et_loader_bad_samples(r->loader) > c->max_bad_samples) {
                char rep[2048];
                et_loader_report(r->loader, rep, sizeof rep);
                et_batch_free(&b);
                st = et_err(ET_ERR_FORMAT,
                            "%s: more than data.max_bad_samples = %d bad samples:\n%s",
                            r->data_name, c->max_bad_samples, rep);
                break;
            }
            if (m->use_images && m->prior.kind != ET_PRIOR_NONE)
                et_modality_dropout(&b, c->modality_dropout, (uint64_t)c->seed, state->micro_step);
            batch_to_device(&b, c->device);
            et_tensor *prior =
                m->prior.kind != ET_PRIOR_NONE
                    ? et_face_prior_forward(&m->prior, b.landmarks, b.pixels, b.priors)
                    : NULL;
            et_mllm_input in = {.batch = b.B,
                                .ids = b.ids,
                                .labels = b.labels,
                                .pixels = m->use_images ? b.pixels : NULL,
                                .prior = prior};
            et_tensor *loss = NULL;
            st = et_mllm_loss(&m->mllm, &in, &rng, &loss, NULL);
            if (!st) {
                step_loss += et_get(loss, 0) / c->grad_accum;
                et_tensor *scaled =
                    c->grad_accum > 1 ? et_scale(loss, 1.0 / c->grad_accum) : et_retain(loss);
                et_backward(scaled);
                et_release(scaled);
                et_release(loss);
            }
            et_release(prior);
            step_tokens += b.n_tokens;
            state->micro_step++;
            et_batch_free(&b);
        }
        if (st || res->interrupted) break;
        if (!r->mlog) {  // the run has really started: now its outputs may be written
            st = open_outputs(c, resume || state->step > 0, r);
            if (st) break;
        }
        if (inject_nan(state->step) && params[0]->grad) et_set(params[0]->grad, 0, NAN);
        const bool finite = et_grads_finite(n_params, params) && isfinite(step_loss);
        double gnorm = 0;
        if (!finite) {
            state->nan_skipped++;
            et_warn(
                "step %lld: non-finite loss or gradients (loss %g); step skipped "
                "(%lld so far, limit %d)",
                (long long)state->step, step_loss, (long long)state->nan_skipped, c->nan_limit);
            et_zero_grad(n_params, params);
            if (state->nan_skipped > c->nan_limit) {
                st = et_err(ET_ERR_INVALID,
                            "stopping: %lld steps had non-finite gradients (train.nan_limit = %d)",
                            (long long)state->nan_skipped, c->nan_limit);
                break;
            }
        } else {
            gnorm = c->max_grad_norm > 0 ? et_clip_grad_norm(n_params, params, c->max_grad_norm)
                                         : et_grad_norm(n_params, params);
            et_adamw_step(r->opt, et_lr_factor(sched, state->step, total, warm));
            et_zero_grad(n_params, params);
        }
        state->step++;
        state->tokens += step_tokens;
        state->rng_offset = rng.offset;
        state->last_loss = step_loss;
        win_loss += step_loss, win_tokens += (double)step_tokens, win_n++;
        const double lr = et_adamw_group_lr(r->opt, 0);
        const double tps = win_tokens / fmax(now_s() - t_win, 1e-9);
        {
            const char *keys[] = {"loss", "lr", "tok/s"};
            double vals[] = {step_loss, lr, tps};
            et_progress_update(r->bar, state->step, 3, keys, vals);
        }
        if (state->step % c->log_every == 0 || state->step == total) {
            const double mean = win_loss / win_n;
            if (first_window) res->first_loss = mean, first_window = false;
            res->last_loss = mean;
            const char *keys[] = {"loss",  "lr",          "grad_norm",  "tokens_per_s",
                                  "epoch", "nan_skipped", "bad_samples"};
            int64_t ep = 0, pos = 0;
            et_loader_tell(r->loader, &ep, &pos);
            double vals[] = {mean,
                             lr,
                             gnorm,
                             tps,
                             (double)ep,
                             (double)state->nan_skipped,
                             (double)et_loader_bad_samples(r->loader)};
            et_status_free(et_metrics_log_write(r->mlog, state->step, 7, keys, vals));
            if (r->tb) {
                const char *tags[] = {"train/loss", "train/lr", "train/grad_norm",
                                      "train/tokens_per_s"};
                et_status_free(et_tblog_scalars(r->tb, state->step, 4, tags, vals));
            }
            win_loss = win_tokens = 0, win_n = 0, t_win = now_s();
        }
        const bool stop = g_stop != 0;
        if ((c->save_every > 0 && state->step % c->save_every == 0) || state->step == total ||
            stop) {
            st = save_ckpt(c, r, state, NULL, res);
            if (!st) saved_step = state->step;
            if (r->tb) et_status_free(et_tblog_flush(r->tb));
        }
        if (stop && !st && state->step < total) {  // a stop after the last step: finish
            res->interrupted = true;
            et_progress_end(r->bar, "interrupted");  // ends the bar's line before the warning
            et_warn("interrupted: checkpoint %s written; continue with --resume", res->checkpoint);
            break;
        }
    }
    if (r->bar) et_progress_end(r->bar, res->interrupted ? "interrupted" : st ? "stopped" : NULL);
    if (r->mlog) {  // the run started: its metrics.jsonl exists
        write_curves(c);
    }
    res->steps = state->step;
    res->total_steps = total;
    res->nan_skipped = state->nan_skipped;
    res->bad_samples = et_loader_bad_samples(r->loader);
    res->seconds = now_s() - t0;
    res->tokens_per_s = (double)(state->tokens - start_tokens) / fmax(res->seconds, 1e-9);
    free(params);
    if (!st && !res->interrupted) st = export_final(c, r, false);
    return st;
}

et_status et_train_run_ex(const et_run_config *cfg, const et_train_opts *opts,
                          et_train_result *res) {
    memset(res, 0, sizeof *res);
    g_stop = 0;
    const et_run_mode mode = opts->resume      ? ET_RUN_RESUME
                             : opts->overwrite ? ET_RUN_OVERWRITE
                                               : ET_RUN_FRESH;
    if (opts->resume && opts->overwrite)
        return et_err(ET_ERR_INVALID,
                      "--resume continues the run in train.output_dir and --overwrite moves it "
                      "aside: give one of them");
    // before any work or any write: a finished run is not touched without --resume/--overwrite
    ET_TRY(et_run_dir_check(cfg->output_dir, mode));
    et_stop_signals sigs;  // a stop signal: checkpoint, then stop (run_dir.h)
    et_stop_signals_install(&sigs, et_train_stop_request);
    run_t r;
    memset(&r, 0, sizeof r);
    et_train_state state;
    int64_t total = 0;
    et_run_lock *lock = NULL;
    et_status st = setup(cfg, &r, &state, &total);
    if (!st && g_stop) {
        res->interrupted = true;
        et_warn("interrupted before the first step: nothing was written");
    } else if (!st) {
        st = et_run_dir_claim(cfg->output_dir, mode, &lock, res->moved_to, sizeof res->moved_to);
        if (!st && res->moved_to[0])
            et_info("--overwrite: the previous run in %s was moved to %s", cfg->output_dir,
                    res->moved_to);
        if (!st) st = resume_state(cfg, opts->resume, &r, &state, total);
    }
    if (!st && !res->interrupted) {
        res->start_step = state.step;
        if (state.step >= total) {
            et_info("nothing to do: step %lld of %lld", (long long)state.step, (long long)total);
            res->steps = state.step, res->total_steps = total;
            st = export_final(cfg, &r, true);
        } else {
            st = train_loop(cfg, opts->resume, &r, &state, total, res);
        }
        if (res->bad_samples > 0) {
            char rep[2048];
            et_loader_report(r.loader, rep, sizeof rep);
            et_warn("%lld samples skipped:\n%s", (long long)res->bad_samples, rep);
        }
    }
    et_stop_signals_restore(&sigs);
    run_free(&r);
    et_run_dir_release(lock);
    return st;
}

et_status et_train_run(const et_run_config *cfg, bool resume, et_train_result *res) {
    et_train_opts o = {.resume = resume, .overwrite = false};
    return et_train_run_ex(cfg, &o, res);
}
