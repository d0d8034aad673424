// train/models/fim.h - Face Info Mining (EMO-LLaMA; our specification, DESIGN.md "Face priors"):
// global and local clues from the face analysis network, aggregated by learnable queries.
// defines: et_fim_config, et_fim, et_fim_layer, et_fim_init, et_fim_clues, et_fim_forward,
//          et_fim_params, et_fim_free, ET_FIM_REGIONS
//
// Contract
// - Clues (et_fim_clues), from the network's fused map [B, h, w, F] and tokens [B, T, F]:
//     global (cfg.global): the T decoder tokens and the mean of the fused map: T + 1 clues;
//     local (cfg.local): the fused map sampled bilinearly (grid_sample, align_corners false,
//       zeros outside) at the 68 landmarks [B, 136] (x, y in [-1, 1], iBUG order: from the
//       network or the dataset), each plus a learned embedding of its landmark index;
//       cfg.local_pool pools them per facial region (jaw 0-16, brows 17-26, nose 27-35,
//       eyes 36-47, mouth 48-67: 5 clues, the mean of the region's points) instead of 68.
//   Clue rows are [B, n_clues, F]; a learned type embedding (global / local) is added.
// - Aggregator: K learnable queries [K, W]; the clues go through Linear(F, W); then L pre-LN
//   layers: q = q + SelfAttn(LN1 q); q = q + CrossAttn(LN2 q, clues) ; q = q + MLP(LN3 q)
//   (MLP: Linear(W, 4W), GELU, Linear(4W, W)); a final LayerNorm. Heads: cfg.heads (divides
//   W). Output [B, K, W]; the MLLM's projector maps it to the decoder's width.
// - Everything here is trainable (random init, N(0, 0.02) weights from the Philox seed,
//   LayerNorms 1 / 0, biases 0); the face network that feeds the clues is frozen elsewhere.
//   Tensor names: model.fim.* (et_fim_params).
#ifndef ET_TRAIN_FIM_H
#define ET_TRAIN_FIM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "nn.h"

#define ET_FIM_REGIONS 5
#define ET_FIM_LANDMARKS 68

typedef struct {
    bool global, local, local_pool;
    int64_t queries;  // K
    int64_t layers;   // L
    int64_t width;    // W
    int64_t heads;
    int64_t face_dim;  // F (the network's fuse_dim)
    int64_t n_tokens;  // T (the network's decoder tokens)
} et_fim_config;

typedef struct {
    et_tensor *ln_w[3], *ln_b[3];
    et_linear_layer sq, sk, sv, so;  // self-attention
    et_linear_layer cq, ck, cv, co;  // cross-attention to the clues
    et_linear_layer fc1, fc2;
} et_fim_layer;

typedef struct {
    et_fim_config cfg;
    et_linear_layer clue_proj;  // [W, F]
    et_tensor *lm_embed;        // [68, F] landmark index embedding
    et_tensor *type_embed;      // [2, F] global / local
    et_tensor *queries;         // [K, W]
    et_fim_layer *layers;       // [L]
    et_tensor *final_w, *final_b;
    int n_params;
    char (*names)[96];
    et_tensor ***slots;
} et_fim;

// Checks cfg (at least one of global / local; W % heads == 0; positive sizes): the error
// names the fim.* key.
et_status et_fim_init(et_fim *f, const et_fim_config *cfg, uint64_t seed);
// Clue rows [B, n, F] (a new reference). tokens may be NULL when !cfg.global, landmarks
// when !cfg.local.
et_tensor *et_fim_clues(et_fim *f, et_tensor *fused, et_tensor *tokens, et_tensor *landmarks);
// [B, K, W] from the clues.
et_tensor *et_fim_forward(et_fim *f, et_tensor *clues);
int et_fim_params(const et_fim *f, const char **names, et_tensor **tensors);
void et_fim_free(et_fim *f);

#endif
