// train/models/projector.h - the LLaVA vision-to-language projector (trainable).
// defines: et_projector_type, et_projector_names, et_projector, et_projector_type_parse,
//          et_projector_init, et_projector_set_names, et_projector_set_prefix, et_projector_load,
//          et_projector_forward,
//          et_projector_params, et_projector_free
//
// Contract
// - Types: "linear" = Linear(in, H); "mlp2x_gelu" = Linear(in, H), GELU (exact erf),
//   Linear(H, H). Both Linears have biases. x [..., in] -> [..., H].
// - HF names, two layouts:
//     ET_PROJ_NAMES_LLAVA     (LLaVA-1.5): model.mm_projector.{weight,bias} (linear) or
//                             model.mm_projector.0.* and model.mm_projector.2.* (mlp2x_gelu)
//     ET_PROJ_NAMES_LLAVA_HF  (llava-hf):  multi_modal_projector.linear_1.* (and linear_2.*)
//   The layers' `name` fields hold the module path in the chosen layout, so LoRA and export
//   see HF names. et_projector_set_prefix names the layers after another module path
//   instead (LLaVA's Sequential numbering: <prefix>.0 / <prefix>.2, or <prefix> for linear),
//   for other MLPs of the same shape (the landmark expert).
// - et_projector_init: torch nn.Linear's default init from the Philox stream (seed, offset):
//   weight kaiming-uniform(a = sqrt 5) = U(+-1/sqrt(fan_in)), bias U(+-1/sqrt(fan_in)),
//   drawn in the order l1.weight, l1.bias, l2.weight, l2.bias, each at the running offset
//   (advanced by the tensor's numel). Returns the offset after the last draw. f32, trainable.
// - et_projector_load detects the layout from the names present (LLaVA first), checks every
//   shape and reports every missing, mis-shaped or unexpected tensor under the layout's
//   module prefix. Loaded tensors are copied to f32 and marked trainable.
#ifndef ET_TRAIN_PROJECTOR_H
#define ET_TRAIN_PROJECTOR_H

#include <stdint.h>

#include "core/safetensors.h"
#include "core/status.h"
#include "core/tensor.h"
#include "nn.h"

typedef enum { ET_PROJ_LINEAR, ET_PROJ_MLP2X_GELU } et_projector_type;
typedef enum { ET_PROJ_NAMES_LLAVA, ET_PROJ_NAMES_LLAVA_HF } et_projector_names;

typedef struct {
    et_projector_type type;
    et_projector_names names;
    int64_t in_dim;            // vision hidden size
    int64_t out_dim;           // H, the language model's hidden size
    et_linear_layer l1;        // weight [H, in], bias [H]
    et_linear_layer l2;        // weight [H, H], bias [H] (mlp2x_gelu only)
    char param_names[4][176];  // "<l1>.weight", "<l1>.bias", "<l2>.weight", "<l2>.bias"
} et_projector;

// "linear" | "mlp2x_gelu" (LLaVA's mm_projector_type).
et_status et_projector_type_parse(const char *s, et_projector_type *out);
uint64_t et_projector_init(et_projector *p, et_projector_type type, int64_t in_dim, int64_t out_dim,
                           et_projector_names names, uint64_t seed, uint64_t offset);
void et_projector_set_names(et_projector *p, et_projector_names names);
void et_projector_set_prefix(et_projector *p, const char *prefix);
// From one safetensors file or a sharded index (exactly one non-NULL).
et_status et_projector_load(et_projector *p, et_projector_type type, int64_t in_dim,
                            int64_t out_dim, et_st_file *f, et_st_index *ix);
et_tensor *et_projector_forward(et_projector *p, et_tensor *x);
// The trainable tensors with their HF names (2 or 4); fills the arrays when non-NULL.
int et_projector_params(et_projector *p, const char **names, et_tensor **tensors);
void et_projector_free(et_projector *p);

#endif
