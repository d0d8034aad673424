// train/trainer.h - the instruction-tuning loop: `emotune train`.
// defines: et_train_result, et_train_opts, et_train_run, et_train_run_ex, et_train_stop_request,
//          et_modality_dropout
//
// Contract
// - et_train_run builds the model (train/emo_model.h) and the loader over data.train,
//   validates both before the first step (a bad config, an empty dataset, a sample whose
//   answer does not fit data.max_len, a missing file stop here with a message), then runs
//   total = train.max_steps (or epochs x steps per epoch) optimizer steps of
//   train.grad_accum micro-batches each: loss / grad_accum backward, non-finite check
//   (the step is skipped, counted and reported; the run stops after train.nan_limit of
//   them), global-norm clipping, AdamW with the model's groups (train.trainable: lora /
//   projector / expert / decoder / embeddings / tower; with train.weight_decay > 0 the biases
//   and norm weights of each go to "<group>_no_decay" with no decay, HF Trainer's rule), lr
//   schedule (train.lr_scheduler with warmup).
// - Outputs under train.output_dir: checkpoints/step-N (train/checkpoint.h) every
//   train.save_every steps and at the end, metrics.jsonl (one line per log step), tb/
//   (TensorBoard events), config.json (resolved), and at the end, per training mode:
//   adapter/ (PEFT adapter), non_lora_trainables.safetensors (projector + expert),
//   mm_projector.safetensors (train.trainable lists "projector": LLaVA's stage-1 file),
//   merged/ (decoder or embeddings trained: HF LlamaForCausalLM) and vision/ (tower trained:
//   CLIPVisionModel); curves.png (loss and lr, from metrics.jsonl) at the end of any run
//   that took a step.
//   config.json, metrics.jsonl and tb/ are written once the first step has run, so a run that
//   fails before it (bad config, missing data, damaged checkpoint) leaves the directory as
//   it was.
// - The output directory (train/run_dir.h): a non-empty one is refused unless resume or
//   overwrite is set, before any work and with nothing changed; overwrite moves the old
//   run aside to <dir>.old-<time> (res->moved_to) and starts fresh. <dir>/.emotune.lock
//   (flock + pid) keeps a second process out while the run lives.
// - resume: continues from the newest complete checkpoint under output_dir/checkpoints
//   (none: starts fresh), after verifying its checksums (train/checkpoint.h). Weights,
//   optimizer state, loader position and dropout RNG are restored, so the final weights
//   equal an uninterrupted run's bit for bit.
// - SIGINT / SIGTERM / SIGHUP (et_train_stop_request): the current step finishes, a
//   checkpoint is written and the run returns early (res->interrupted); a stop that
//   arrives during the last step lets the run finish and write its results. A resumed run
//   whose steps are all done writes the final results that are missing (a run killed while
//   exporting) and rewrites none that exist; a stop while the
//   loader waits for data drops the unfinished step and checkpoints the one before. A second
//   signal ends the process at once (the handlers are one-shot). Signals ignored at start
//   (nohup's SIGHUP) stay ignored.
#ifndef ET_TRAIN_TRAINER_H
#define ET_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/status.h"
#include "../data/dataloader.h"
#include "runconfig.h"

typedef struct {
    int64_t steps;        // optimizer steps completed (incl. resumed ones)
    int64_t total_steps;
    int64_t start_step;   // > 0 when resumed
    double first_loss;    // mean loss of the first logged window of this process
    double last_loss;     // mean loss of the last logged window
    int64_t nan_skipped;
    int64_t bad_samples;
    double seconds;
    double tokens_per_s;
    bool interrupted;
    char checkpoint[4096];  // the last checkpoint written
    char moved_to[4200];    // overwrite: where the previous run went ("" when none)
} et_train_result;

typedef struct {
    bool resume;     // continue the run in train.output_dir
    bool overwrite;  // move a previous run aside and start fresh
} et_train_opts;

et_status et_train_run_ex(const et_run_config *cfg, const et_train_opts *opts,
                          et_train_result *res);
// et_train_run_ex with overwrite = false.
et_status et_train_run(const et_run_config *cfg, bool resume, et_train_result *res);
void et_train_stop_request(void);  // async-signal-safe
// train.modality_dropout p (ModDrop, Neverova et al. 2016), applied by the trainer to every
// batch of a model that uses both visual tokens and a face prior: each sample of a batch
// that holds both pixels and landmarks (CPU f32 tensors) loses its image (pixels set to 0,
// the mean colour after CLIP's normalisation) with probability p/2, else its landmarks
// (all 0) with probability p/2, so that neither input can carry the answer alone. The draw
// is et_rng_u32 of (seed + 7919, micro_step * 65536 + sample), so a resumed run blanks the
// same samples. p <= 0, or a batch without pixels or landmarks: nothing changes.
void et_modality_dropout(et_batch *b, double p, uint64_t seed, int64_t micro_step);

#endif
