// train/io/hf_weights.h - loading a model's tensors from an HF model directory by name.
// defines: et_ckpt, et_ckpt_open, et_ckpt_close, et_ckpt_num_tensors, et_ckpt_name,
//          et_ckpt_info_of, et_ckpt_load, et_ckpt_want, et_ckpt_load_all, et_ckpt_ignore,
//          et_ckpt_load_all_ex, et_ckpt_st_file, et_ckpt_st_index
//
// Contract
// - A model directory holds model.safetensors, or model.safetensors.index.json with its
//   shards. pytorch_model.bin (pickle) is never read: a directory that only has it (or
//   its index) is ET_ERR_UNSUPPORTED with a message saying how to convert.
// - et_ckpt_load converts F32 / BF16 / F16 sources to the requested float dtype (a
//   zero-copy view of the mapping when the dtypes agree). Any other source dtype is an
//   error naming the tensor. Loaded tensors are frozen leaves (requires_grad false) and
//   stay valid after et_ckpt_close.
// - et_ckpt_load_all matches a whole catalogue against the checkpoint before loading
//   anything: ONE error lists every missing tensor, every tensor with the wrong shape or
//   a non-float dtype, and every unexpected tensor (names ending in one of `ignore_suffix`
//   are skipped; so is every name in `ignore_names`; et_ckpt_load_all_ex also skips every
//   name starting with one of `ignore->prefix`, for checkpoints that hold several models,
//   e.g. LLaVA's decoder next to "model.mm_projector."). Layer indices are folded
//   ("model.layers.{0-3,5}.mlp.up_proj.weight") so the list fits the status message; what
//   still does not fit ends with "... (N more)". On error no *dst is written.
// - Not thread-safe per handle.
#ifndef ET_TRAIN_IO_HF_WEIGHTS_H
#define ET_TRAIN_IO_HF_WEIGHTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/safetensors.h"
#include "core/status.h"
#include "core/tensor.h"

typedef struct et_ckpt et_ckpt;

et_status et_ckpt_open(const char *dir, et_ckpt **out);
void et_ckpt_close(et_ckpt *ck);  // NULL-safe
const char *et_ckpt_path(const et_ckpt *ck);  // the .safetensors or index file opened
int et_ckpt_num_tensors(const et_ckpt *ck);
const char *et_ckpt_name(const et_ckpt *ck, int i);
et_status et_ckpt_info_of(const et_ckpt *ck, const char *name, et_st_info *out);
et_status et_ckpt_load(et_ckpt *ck, const char *name, et_dtype dtype, et_tensor **out);

typedef struct {
    const char *name;           // HF tensor name
    int ndim;
    int64_t shape[ET_MAX_DIMS];
    et_tensor **dst;            // receives a new reference
} et_ckpt_want;

et_status et_ckpt_load_all(et_ckpt *ck, int n, const et_ckpt_want *want, et_dtype dtype,
                           int n_ignore_suffix, const char *const *ignore_suffix,
                           int n_ignore_names, const char *const *ignore_names);

typedef struct {
    int n_suffix;
    const char *const *suffix;  // names ending in one of these are not reported
    int n_names;
    const char *const *names;   // exact names not reported
    int n_prefix;
    const char *const *prefix;  // names starting with one of these are not reported
} et_ckpt_ignore;

// As et_ckpt_load_all; ignore may be NULL (every checkpoint tensor must be wanted).
et_status et_ckpt_load_all_ex(et_ckpt *ck, int n, const et_ckpt_want *want, et_dtype dtype,
                              const et_ckpt_ignore *ignore);

// The underlying safetensors file or index (exactly one is non-NULL); owned by ck.
et_st_file *et_ckpt_st_file(et_ckpt *ck);
et_st_index *et_ckpt_st_index(et_ckpt *ck);

#endif
