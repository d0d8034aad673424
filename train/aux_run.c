// train/aux_run.c - see aux_run.h
#include "aux_run.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "core/autograd.h"
#include "core/fileio.h"
#include "core/log.h"
#include "core/optim.h"
#include "progress.h"
#include "run_dir.h"
#include "tblog.h"

static volatile sig_atomic_t g_stop;
void et_pretrain_stop_request(void) { g_stop = 1; }

// Test hook: EMOTUNE_STOP_AT_STEP=N acts as a stop request once step N has run.
static bool stop_hook(int64_t step) {
    const char *e = getenv("EMOTUNE_STOP_AT_STEP");
    return e && *e && strtoll(e, NULL, 10) == step;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    et_aux_task *t;
    et_loader *loader;
    et_adamw *opt;
    et_metrics_log *mlog;
    et_progress *bar;
    char *config_json;
} arun_t;

static void arun_free(arun_t *r) {
    if (r->bar) et_progress_free(r->bar);
    if (r->mlog) et_status_free(et_metrics_log_close(r->mlog));
    et_adamw_free(r->opt);
    if (r->loader) et_loader_free(r->loader);
    free(r->config_json);
}

static et_status setup(const et_run_config *c, arun_t *r, et_dataset *ds,
                       const et_loader_opts *lo_in, int64_t *total) {
    et_loader_opts lo = *lo_in;
    lo.stop = &g_stop;
    ET_TRY(et_loader_new(ds, &lo, &r->loader));
    const int64_t per_epoch = et_loader_epoch_samples(r->loader) / c->batch_size;
    if (per_epoch < 1)
        return et_err(ET_ERR_INVALID,
                      "%s: %lld samples, fewer than one batch (train.batch_size %d): lower it or "
                      "add samples",
                      c->train_data, (long long)et_loader_epoch_samples(r->loader), c->batch_size);
    *total = c->max_steps > 0 ? c->max_steps : per_epoch * c->epochs;
    et_adamw_config ac = et_adamw_defaults();
    ac.lr = c->lr, ac.beta1 = c->adam_beta1, ac.beta2 = c->adam_beta2, ac.eps = c->adam_eps;
    ac.weight_decay = c->weight_decay;
    ET_TRY(et_adamw_new(&ac, &r->opt));
    // two groups: decay (matrices, embeddings) and no_decay (gains, biases, scalars)
    const int n = r->t->n_params;
    et_tensor **ps = malloc(sizeof(*ps) * (size_t)n);
    const char **nm = malloc(sizeof(*nm) * (size_t)n);
    et_status st = NULL;
    for (int g = 0; g < 2 && !st; g++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if ((r->t->params[i]->ndim >= 2) == (g == 0))
                ps[k] = r->t->params[i], nm[k++] = r->t->names[i];
        et_param_group pg = {.name = g == 0 ? "decay" : "no_decay",
                             .lr = c->lr,
                             .lr_mult = 0,
                             .weight_decay = g == 0 ? c->weight_decay : 0};
        st = et_adamw_add_group(r->opt, &pg, k, ps, nm, NULL);
    }
    free(ps), free(nm);
    ET_TRY(st);
    r->config_json = et_run_config_to_json(c);
    return NULL;
}

static et_status save_ckpt(const et_run_config *c, arun_t *r, et_train_state *state,
                           const int64_t *at_pos, et_pretrain_result *res) {
    char root[4200];
    snprintf(root, sizeof root, "%s/checkpoints", c->output_dir);
    if (at_pos)
        state->epoch = at_pos[0], state->position = at_pos[1];
    else
        et_loader_tell(r->loader, &state->epoch, &state->position);
    state->bad_samples = et_loader_bad_samples(r->loader);
    return et_trainckpt_write(root, state, r->t->n_params, r->t->names, r->t->params, r->opt,
                              r->config_json, c->keep_last, res->checkpoint,
                              sizeof res->checkpoint);
}

static void write_log(const et_run_config *c, arun_t *r, int64_t step, double loss, double lr,
                      const double *metrics, double gnorm, double ips) {
    et_aux_task *t = r->t;
    const char *keys[16];
    double vals[16];
    int k = 0;
    keys[k] = "loss", vals[k++] = loss;
    keys[k] = "lr", vals[k++] = lr;
    double ex[4] = {0};
    if (t->extra) t->extra(t, ex);
    for (int i = 0; i < t->n_extra; i++) keys[k] = t->extra_names[i], vals[k++] = ex[i];
    for (int i = 0; i < t->n_metrics; i++) keys[k] = t->metric_names[i], vals[k++] = metrics[i];
    int64_t ep = 0, pos = 0;
    et_loader_tell(r->loader, &ep, &pos);
    keys[k] = "grad_norm", vals[k++] = gnorm;
    keys[k] = "images_per_s", vals[k++] = ips;
    keys[k] = "epoch", vals[k++] = (double)ep;
    keys[k] = "bad_samples", vals[k++] = (double)et_loader_bad_samples(r->loader);
    (void)c;
    et_status_free(et_metrics_log_write(r->mlog, step, k, keys, vals));
}

static et_status train_loop(const et_run_config *c, bool resume, arun_t *r, et_train_state *state,
                            int64_t total, et_pretrain_result *res) {
    et_aux_task *t = r->t;
    const int n = t->n_params;
    et_schedule sched = (et_schedule)et_schedule_from_name(c->lr_scheduler);
    const int64_t warm = et_warmup_steps(total, c->warmup_steps, c->warmup_ratio);
    et_progress_options po = {.label = t->label, .initial_step = state->step};
    r->bar = et_progress_new_ex(total, stderr, &po);
    double win_loss = 0, win_m[4] = {0}, t_win = now_s(), t0 = now_s();
    int64_t win_img = 0, n_img = 0;
    int win_n = 0;
    bool first_window = true;
    et_status st = NULL;
    int64_t saved_step = state->step;
    res->start_step = state->step;
    while (state->step < total && !st) {
        int64_t at_start[2];
        et_loader_tell(r->loader, &at_start[0], &at_start[1]);
        et_batch b;
        st = et_loader_next(r->loader, &b);
        if (st && et_loader_interrupted(r->loader)) {
            et_status_free(st);
            st = NULL;
            res->interrupted = true;
            if (state->step > saved_step) st = save_ckpt(c, r, state, at_start, res);
            break;
        }
        if (st) break;
        if (et_loader_bad_samples(r->loader) > c->max_bad_samples) {
            char rep[2048];
            et_loader_report(r->loader, rep, sizeof rep);
            et_batch_free(&b);
            st = et_err(ET_ERR_FORMAT, "%s: more than data.max_bad_samples = %d bad samples:\n%s",
                        c->train_data, c->max_bad_samples, rep);
            break;
        }
        double m[4] = {0};
        et_tensor *loss = t->loss(t, &b, state->step, m);
        const double lv = et_get(loss, 0);
        et_backward(loss);
        et_release(loss);
        const int64_t nb = b.B;
        et_batch_free(&b);
        if (!r->mlog) {
            char path[4200];
            snprintf(path, sizeof path, "%s/config.json", c->output_dir);
            st = et_write_file_atomic(path, r->config_json, strlen(r->config_json));
            snprintf(path, sizeof path, "%s/metrics.jsonl", c->output_dir);
            if (!st) st = et_metrics_log_open(path, resume || state->step > 0, &r->mlog);
            if (st) break;
        }
        double gnorm = 0;
        if (!(et_grads_finite(n, t->params) && isfinite(lv))) {
            state->nan_skipped++;
            et_warn("step %lld: non-finite loss or gradients (loss %g); step skipped",
                    (long long)state->step, lv);
            et_zero_grad(n, t->params);
            if (state->nan_skipped > c->nan_limit) {
                st = et_err(ET_ERR_INVALID,
                            "stopping: %lld steps had non-finite gradients (train.nan_limit = %d)",
                            (long long)state->nan_skipped, c->nan_limit);
                break;
            }
        } else {
            gnorm = c->max_grad_norm > 0 ? et_clip_grad_norm(n, t->params, c->max_grad_norm)
                                         : et_grad_norm(n, t->params);
            et_adamw_step(r->opt, et_lr_factor(sched, state->step, total, warm));
            et_zero_grad(n, t->params);
            if (t->after_step) t->after_step(t);
        }
        state->step++;
        state->micro_step++;
        state->tokens += nb;  // images seen
        state->last_loss = lv;
        n_img += nb;
        win_loss += lv, win_img += nb, win_n++;
        for (int i = 0; i < t->n_metrics; i++) win_m[i] += m[i];
        const double lr = et_adamw_group_lr(r->opt, 0);
        const double ips = (double)win_img / fmax(now_s() - t_win, 1e-9);
        {
            const char *keys[6];
            double vals[6];
            int k = 0;
            keys[k] = "loss", vals[k++] = lv;
            for (int i = 0; i < t->n_metrics; i++) keys[k] = t->metric_names[i], vals[k++] = m[i];
            keys[k] = "img/s", vals[k++] = ips;
            et_progress_update(r->bar, state->step, k, keys, vals);
        }
        if (state->step % c->log_every == 0 || state->step == total) {
            const double mean = win_loss / win_n;
            if (first_window) res->first_loss = mean, first_window = false;
            res->last_loss = mean;
            double mm[4];
            for (int i = 0; i < t->n_metrics; i++) mm[i] = win_m[i] / win_n;
            write_log(c, r, state->step, mean, lr, mm, gnorm, ips);
            win_loss = 0, win_img = 0, win_n = 0, t_win = now_s();
            memset(win_m, 0, sizeof win_m);
        }
        if (stop_hook(state->step)) g_stop = 1;
        const bool stop = g_stop != 0;
        if ((c->save_every > 0 && state->step % c->save_every == 0) || state->step == total ||
            stop) {
            st = save_ckpt(c, r, state, NULL, res);
            if (!st) saved_step = state->step;
        }
        if (stop && !st) {
            res->interrupted = true;
            break;
        }
    }
    if (r->bar) et_progress_end(r->bar, res->interrupted ? "interrupted" : st ? "stopped" : NULL);
    if (res->interrupted && res->checkpoint[0])
        et_warn("interrupted: checkpoint %s holds step %lld; continue with --resume",
                res->checkpoint, (long long)state->step);
    res->steps = state->step;
    res->total_steps = total;
    res->bad_samples = et_loader_bad_samples(r->loader);
    res->seconds = now_s() - t0;
    res->images_per_s = (double)n_img / fmax(res->seconds, 1e-9);
    return st;
}

et_status et_aux_run(const et_run_config *c, const et_train_opts *opts, et_aux_task *t,
                     et_dataset *ds, const et_loader_opts *lo, et_pretrain_result *res) {
    memset(res, 0, sizeof *res);
    g_stop = 0;
    ET_ASSERT(t->n_metrics <= 4 && t->n_extra <= 4, "et_aux_run: at most 4 metrics / extras");
    if (opts->resume && opts->overwrite)
        return et_err(ET_ERR_INVALID,
                      "--resume continues the run in train.output_dir and --overwrite moves it "
                      "aside: give one of them");
    const et_run_mode mode = opts->resume      ? ET_RUN_RESUME
                             : opts->overwrite ? ET_RUN_OVERWRITE
                                               : ET_RUN_FRESH;
    ET_TRY(et_run_dir_check(c->output_dir, mode));
    et_stop_signals sigs;  // a stop signal: checkpoint, then stop (run_dir.h)
    et_stop_signals_install(&sigs, et_pretrain_stop_request);
    arun_t r;
    memset(&r, 0, sizeof r);
    r.t = t;
    et_train_state state;
    memset(&state, 0, sizeof state);
    int64_t total = 0;
    et_run_lock *lock = NULL;
    et_status st = setup(c, &r, ds, lo, &total);
    if (!st) st = et_run_dir_claim(c->output_dir, mode, &lock, res->moved_to, sizeof res->moved_to);
    if (!st) {
        char root[4200], dir[4096];
        snprintf(root, sizeof root, "%s/checkpoints", c->output_dir);
        et_trainckpt_cleanup(root);
        bool found = false;
        if (opts->resume) st = et_trainckpt_latest(root, dir, sizeof dir, &found);
        if (!st && found) {
            st = et_trainckpt_read(dir, &state, t->n_params, t->names, t->params, r.opt);
            if (st) st = et_status_wrap(st, "resuming from %s", dir);
            if (!st) {
                et_loader_seek(r.loader, state.epoch, state.position);
                et_info("resumed from %s (step %lld of %lld)", dir, (long long)state.step,
                        (long long)total);
            }
        }
    }
    if (!st) {
        if (state.step < total) st = train_loop(c, opts->resume, &r, &state, total, res);
        res->steps = state.step, res->total_steps = total;
        if (!st && !res->interrupted && t->finish) st = t->finish(t, c, res);
    }
    et_stop_signals_restore(&sigs);
    arun_free(&r);
    et_run_dir_release(lock);
    return st;
}
