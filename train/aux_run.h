// train/aux_run.h - the run driver of emotune's auxiliary pretraining commands (the tiny
// tower's contrastive pretraining, the face network's multi-task training): everything but
// the model and its loss.
// defines: et_pretrain_result, et_aux_task, et_aux_run, et_pretrain_stop_request
//
// Contract
// - The task brings its trainable tensors (names for checkpoints), a loss per batch and
//   optional hooks; the driver brings the rest, as `emotune train` does (train/trainer.h):
//   the loader over `ds` with the task's loader options (shuffled with train.seed,
//   drop_last; bad samples skipped and counted up to data.max_bad_samples), AdamW
//   (train.lr; train.weight_decay on tensors of 2 or more dims, none on gains and biases:
//   the "decay" group first, then "no_decay", each in the task's order), clipping
//   train.max_grad_norm, schedule train.lr_scheduler with warmup, total = train.max_steps
//   or epochs x steps per epoch; non-finite steps skipped (train.nan_limit).
// - Outputs and safety: the run directory rules of train/run_dir.h (--resume / --overwrite,
//   lock), checkpoints/step-N with exact resume (bit-identical weights), SIGINT / SIGTERM /
//   SIGHUP checkpoint and stop, config.json, metrics.jsonl (loss, lr, the task's extra
//   values, its metrics, grad_norm, images_per_s, epoch, bad_samples); the task's finish
//   hook (exports, evaluation) runs once the last step is done.
#ifndef ET_TRAIN_AUX_RUN_H
#define ET_TRAIN_AUX_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "data/dataloader.h"
#include "data/dataset.h"
#include "runconfig.h"
#include "trainer.h"

typedef struct {
    int64_t steps, total_steps, start_step;
    double first_loss, last_loss;
    double seconds, images_per_s;
    int64_t bad_samples;
    bool interrupted;
    char checkpoint[4096];
    char moved_to[4200];
    bool evaluated;  // data.eval was set and the run finished
    int64_t n_eval;
    // pretrain-tower's evaluation
    double retrieval_acc, zeroshot_acc;
    int n_classes;
    // pretrain-face's evaluation
    double nme, age_acc, gender_acc, race_acc;
} et_pretrain_result;

typedef struct et_aux_task et_aux_task;
struct et_aux_task {
    const char *label;  // progress bar ("pretrain-tower")
    int n_params;
    const char *const *names;  // [n_params]
    et_tensor **params;        // [n_params] trainable
    // The loss of batch b at optimizer step `step` (the driver runs backward) and the task's
    // metrics[0..n_metrics) for this batch (averaged over each logging window).
    et_tensor *(*loss)(et_aux_task *t, et_batch *b, int64_t step, double *metrics);
    int n_metrics;
    const char *metric_names[4];
    void (*after_step)(et_aux_task *t);  // optional: after each optimizer step
    int n_extra;                         // values logged before the metrics
    const char *extra_names[4];
    void (*extra)(et_aux_task *t, double *vals);  // optional
    // optional: once the run has finished (not when interrupted)
    et_status (*finish)(et_aux_task *t, const et_run_config *c, et_pretrain_result *res);
    void *ctx;
};

// Trains t on ds (lo: the task's loader options; the driver sets stop and checks that one
// epoch holds a batch). --resume / --overwrite come from opts.
et_status et_aux_run(const et_run_config *c, const et_train_opts *opts, et_aux_task *t,
                     et_dataset *ds, const et_loader_opts *lo, et_pretrain_result *res);
void et_pretrain_stop_request(void);  // async-signal-safe

#endif
