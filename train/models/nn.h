// train/models/nn.h - building blocks shared by every model: a Linear layer that may carry a
// LoRA adapter (PEFT semantics, REFERENCE.md section 7) and the dropout RNG stream.
// defines: et_rng_stream, et_linear_layer, et_linear_layer_forward, et_linear_layer_free,
//          et_mha
//
// Contract
// - et_linear_layer owns its tensors (weight, bias, lora_a, lora_b); free with
//   et_linear_layer_free. `name` is the HF module path ("model.layers.0.self_attn.q_proj")
//   used for loading and for PEFT export keys.
// - forward: y = x W^T (+ b) + scale * B(A(dropout(x))) when an unmerged adapter is
//   present; dropout only on the LoRA branch and only when `rng` is non-NULL (training).
//   With `merged` set the adapter is already folded into W and the branch is skipped.
// - et_rng_stream: (seed, offset) of the Philox stream; every draw advances offset by the
//   number of values drawn, so a run resumed with the same (seed, offset) repeats exactly.
#ifndef ET_TRAIN_NN_H
#define ET_TRAIN_NN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"

typedef struct {
    uint64_t seed;
    uint64_t offset;
} et_rng_stream;

typedef struct {
    char name[160];
    et_tensor *weight;  // [out, in] (HF layout), usually frozen
    et_tensor *bias;    // [out] or NULL
    et_tensor *lora_a;  // [r, in] or NULL (trainable)
    et_tensor *lora_b;  // [out, r] or NULL (trainable)
    double lora_scale;  // alpha / r, or alpha / sqrt(r) with use_rslora
    double lora_dropout;
    bool merged;  // adapter folded into weight
} et_linear_layer;

et_tensor *et_linear_layer_forward(et_linear_layer *l, et_tensor *x, et_rng_stream *rng);
void et_linear_layer_free(et_linear_layer *l);  // releases the tensors, keeps the struct

// Multi-head attention with projections (SAM's Attention, Q-Former's): q, k, v projected by
// the layers (inner width I = q->weight's rows, heads | I), softmax(q k^T / sqrt(I/heads)) v
// over all keys (no mask), out-projected. xq [B, Tq, D], xk / xv [B, Tk, D] -> [B, Tq, D'].
et_tensor *et_mha(et_linear_layer *q, et_linear_layer *k, et_linear_layer *v, et_linear_layer *o,
                  int64_t heads, et_tensor *xq, et_tensor *xk, et_tensor *xv);

#endif
