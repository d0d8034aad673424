// train/checkpoint.h - training checkpoints: one directory per step, written atomically.
// defines: et_train_state, et_trainckpt_write, et_trainckpt_latest, et_trainckpt_read,
//          et_trainckpt_cleanup, et_trainckpt_resolve, et_trainckpt_verify,
//          et_trainckpt_file_crc32
//
// Contract
// - Layout: <root>/step-00000100/ holding trainables.safetensors (every trainable tensor
//   under its HF / PEFT name), optimizer.safetensors (AdamW state: exp_avg, exp_avg_sq,
//   masters, under et_adamw_state_tensors' names; metadata "step"), state.json (the
//   et_train_state fields) and config.json (the resolved run config).
// - Atomicity: everything is written into <root>/.tmp-step-00000100-<pid>/, each file
//   fsynced, then the directory is fsynced and renamed to step-00000100 and <root> is
//   fsynced. A step-* directory therefore always holds a complete checkpoint; a crash
//   leaves at most a .tmp-* directory, which is never loaded and is removed by
//   et_trainckpt_cleanup (called at the start of every write and by the trainer at start).
//   keep_last: after writing step S, the newest keep_last - 1 checkpoints below S are kept
//   with it; older ones are renamed to .del-* and then removed. The checkpoint just written
//   is never pruned, and a step-* above S (not this run's history) is left alone (warned).
// - et_trainckpt_latest: the highest step-NNNNNNNN directory under root (names that do not
//   match exactly are ignored); *found false when there is none.
// - et_trainckpt_read: validates state.json (every field present and of the right type),
//   loads trainables into the given tensors (each must be present with its shape) and the
//   optimizer state (each state tensor present with its shape); errors name the file and the
//   field / tensor. Nothing is modified unless everything validates... except tensors, which
//   are validated before the first copy.
#ifndef ET_TRAIN_CHECKPOINT_H
#define ET_TRAIN_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/optim.h"
#include "../core/status.h"
#include "../core/tensor.h"

typedef struct {
    int64_t step;         // optimizer steps completed
    int64_t micro_step;   // micro-batches consumed in total
    int64_t epoch;        // loader epoch of the next batch
    int64_t position;     // samples consumed in that epoch's order
    uint64_t rng_offset;  // LoRA-dropout Philox offset
    int64_t nan_skipped;  // optimizer steps skipped for non-finite gradients
    int64_t bad_samples;  // samples skipped by the loader
    int64_t tokens;       // supervised + context tokens seen
    double last_loss;
} et_train_state;

// Writes the checkpoint of state->step. dir_out (may be NULL) receives its path.
et_status et_trainckpt_write(const char *root, const et_train_state *state, int n,
                             const char *const *names, et_tensor *const *params, et_adamw *opt,
                             const char *config_json, int keep_last, char *dir_out, size_t dir_cap);
et_status et_trainckpt_latest(const char *root, char *dir_out, size_t cap, bool *found);
// The checkpoint a command should read: `given` when it is a step directory (it holds
// trainables.safetensors), else the newest step-* under <given or output_dir>/checkpoints.
// None: ET_ERR_MISSING naming the directory searched. The result is verified
// (et_trainckpt_verify) when it has a state.json.
et_status et_trainckpt_resolve(const char *given, const char *output_dir, char *dir_out,
                               size_t cap);
et_status et_trainckpt_read(const char *dir, et_train_state *state, int n, const char *const *names,
                            et_tensor *const *params, et_adamw *opt);
void et_trainckpt_cleanup(const char *root);
// Checks the sizes and CRC-32s that dir/state.json records (see Integrity above).
et_status et_trainckpt_verify(const char *dir);
// CRC-32 (zlib) and size of a whole file.
et_status et_trainckpt_file_crc32(const char *path, uint32_t *crc, int64_t *bytes);

#endif
