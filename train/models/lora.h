// train/models/lora.h - LoRA adapters with PEFT semantics on et_linear_layer (REFERENCE.md sec. 7).
// defines: et_lora_config, et_lora_config_default, et_lora_matches, et_lora_attach,
//          et_lora_params, et_lora_merge, et_lora_unmerge, et_lora_save_adapter,
//          et_lora_load_adapter, et_lora_read_config, et_save_trainables
//
// Contract
// - Targeting (as PEFT's check_target_module_exists): with `regex` empty, a layer matches
//   when its name equals a target or ends with "." + target (targets are module-name
//   suffixes: "q_proj", "self_attn.v_proj"); with `regex` set, the whole name must match
//   it (POSIX extended regex, anchored at both ends as Python's re.fullmatch).
// - et_lora_attach, for every matching layer in list order: A [r, in] f32 kaiming-uniform
//   (a = sqrt 5, i.e. U(+-1/sqrt(in))) from Philox (cfg->seed, offset), B [out, r] f32
//   zeros; lora_scale = alpha / r (alpha / sqrt(r) with use_rslora); lora_dropout =
//   cfg->dropout. Offsets: the k-th attached layer draws at cfg->offset + the sum of r * in
//   over the layers attached before it (a packed stream), so the same layer list and
//   seed always give the same A. The base weight and bias are frozen; A and B are trainable.
//   Layers that already carry an adapter are an error. Returns the number attached.
// - merge: W += scale * (B @ A), the product and sum in f32, rounded once into W's dtype;
//   unmerge subtracts it again (exact for f32 W up to rounding, lossy for bf16). merged
//   layers skip the branch in forward.
// - Export (PEFT layout): dir/adapter_config.json (peft_type LORA, task_type CAUSAL_LM,
//   base_model_name_or_path, r, lora_alpha, lora_dropout, target_modules (list, or the
//   regex string), bias "none", use_rslora, modules_to_save null, fan_in_fan_out false,
//   init_lora_weights true, inference_mode true, plus PEFT's other fields at defaults) and
//   dir/adapter_model.safetensors with base_model.model.<name>.lora_A.weight [r, in] and
//   .lora_B.weight [out, r] in f32, metadata {"format": "pt"}. dir is created if missing.
//   Layers must be unmerged.
// - Import validates the config (peft_type LORA, integer r > 0, numeric lora_alpha,
//   lora_dropout in [0, 1), bias "none", fan_in_fan_out false, no modules_to_save, no
//   rank/alpha patterns, no DoRA) and the tensors: every key must be
//   base_model.model.<layer>.lora_{A,B}.weight for a layer in the list with shapes
//   [r, in] / [out, r]; every layer selected by target_modules must have both. The error
//   names every missing, unexpected and mis-shaped key. On success the adapters replace
//   any existing unmerged ones (f32 copies, trainable, base frozen).
#ifndef ET_TRAIN_LORA_H
#define ET_TRAIN_LORA_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "nn.h"

#define ET_LORA_MAX_TARGETS 16

typedef struct {
    int r;
    double alpha;
    double dropout;
    bool use_rslora;
    int n_targets;
    char targets[ET_LORA_MAX_TARGETS][64];  // module-name suffixes (used when regex is "")
    char regex[256];                        // full-match regex over layer names, or ""
    char base_model[256];                   // base_model_name_or_path for export
    uint64_t seed;                          // Philox seed and first offset for A's init
    uint64_t offset;
} et_lora_config;

// r 8, alpha 16, dropout 0.05, no targets.
et_lora_config et_lora_config_default(void);
// Whether `name` is targeted by cfg. A bad regex is an error.
et_status et_lora_matches(const et_lora_config *cfg, const char *name, bool *out);
et_status et_lora_attach(const et_lora_config *cfg, int n, et_linear_layer *const *layers,
                         int *n_attached);
// A and B of every layer with an adapter, in list order (A, B, A, B, ...); returns the count
// and fills out when non-NULL.
int et_lora_params(int n, et_linear_layer *const *layers, et_tensor **out);
void et_lora_merge(int n, et_linear_layer *const *layers);    // no-op for merged layers
void et_lora_unmerge(int n, et_linear_layer *const *layers);  // no-op for unmerged ones

et_status et_lora_save_adapter(const char *dir, const et_lora_config *cfg, int n,
                               et_linear_layer *const *layers);
// Reads dir/adapter_config.json into *cfg (seed/offset zero) without touching any layer.
et_status et_lora_read_config(const char *dir, et_lora_config *cfg);
// Loads dir's adapter onto the layers; cfg_out (may be NULL) receives the config.
et_status et_lora_load_adapter(const char *dir, int n, et_linear_layer *const *layers,
                               et_lora_config *cfg_out);

// "Other trainables" (projector, expert) as safetensors under their HF names (LLaVA's
// non_lora_trainables, in safetensors instead of pickle). Tensors are written in their
// dtype; metadata {"format": "pt"}.
et_status et_save_trainables(const char *path, int n, const char *const *names,
                             et_tensor *const *tensors);

#endif
