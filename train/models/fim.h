// train/models/fim.h - Face Info Mining (EMO-LLaMA; our specification, DESIGN.md "Face priors"):
// global and local clues from the face analysis network, aggregated by learnable queries.
// defines: et_fim_config, et_fim, et_fim_layer, et_fim_init, et_fim_raw, et_fim_clues_from,
//          et_fim_clues, et_fim_forward,
//          et_fim_params, et_fim_free, ET_FIM_REGIONS
//
// Contract
// - Clues (et_fim_clues), from the network's fused map [B, h, w, F] and tokens [B, T, F]:
//     global (cfg.global): the T decoder tokens and the mean of the fused map: T + 1 clues;
//     local (cfg.local): the fused map sampled bilinearly (grid_sample, align_corners false,
//       zeros outside) at the 68 landmarks [B, 136] (x, y in [-1, 1], iBUG order: from the
//       network or the dataset), each plus a learned embedding of its landmark index and,
//       when point_pe is given, the point's position encoding (emotune's choice: the face
//       network's random-Fourier PE of (x, y), as SAM encodes point prompts, so the
//       aggregator sees the geometry as well as the appearance);
//       cfg.local_pool pools them per facial region (jaw 0-16, brows 17-26, nose 27-35,
//       eyes 36-47, mouth 48-67: 5 clues, the mean of the region's points) instead of 68.
//   Plus two vector clues (emotune's reading of EMO-LLaMA's "face embedding, landmarks and
//   AGR" priors): with global, one row Linear(15, F) of the network's age / gender / race
//   probabilities; with local, one row Linear(136, F) of the whole landmark vector (the joint
//   shape, which per-point rows only give through attention). The vector rows also
//   condition the queries (their sum, through the clue LayerNorm and projection, is added
//   to every query before the first layer; InstructBLIP lets the instruction join the
//   queries in the same spirit): one row among ~90 otherwise reaches the queries only
//   through near-uniform attention.
//   Clue rows are [B, n_clues, F]; a learned type embedding (global / local) is added.
// - Aggregator: K learnable queries [K, W]; the clues go through LayerNorm(F) (BLIP-2's
//   ln_vision) and Linear(F, W); then L pre-LN
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
#define ET_FIM_ATTRS 15  // age 8 + gender 2 + race 5 probabilities

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
    et_tensor *clue_ln_w, *clue_ln_b;  // [F] LayerNorm of the clue rows
    et_linear_layer clue_proj;         // [W, F]
    et_tensor *lm_embed;               // [68, F] landmark index embedding
    et_tensor *type_embed;             // [2, F] global / local
    et_tensor *queries;                // [K, W]
    et_linear_layer shape_proj;        // [F, 136]: the landmark vector as one local clue
    et_linear_layer attr_proj;  // [F, 15]: the age / gender / race probabilities, one global clue
    et_fim_layer *layers;       // [L]
    et_tensor *final_w, *final_b;
    int n_params;
    char (*names)[96];
    et_tensor ***slots;
} et_fim;

// Checks cfg (at least one of global / local; W % heads == 0; positive sizes): the error
// names the fim.* key.
et_status et_fim_init(et_fim *f, const et_fim_config *cfg, uint64_t seed);
// The frozen part of the clues, before any learned embedding (what a prepared store keeps):
// *global = the T tokens and the fused map's mean [B, T + 1, F] (when global != NULL);
// *local = the fused map sampled at the landmarks [B, 68, F] (when local != NULL).
void et_fim_raw(const et_fim_config *cfg, et_tensor *fused, et_tensor *tokens, et_tensor *landmarks,
                et_tensor **global, et_tensor **local);
// Clue rows from the raw parts (global used when cfg.global, local when cfg.local): the
// landmark-index embedding (and point_pe) added to the local rows, the region pooling, the
// extra rows (attrs [B, 15] -> attr_proj after the global rows; points [B, 136] ->
// shape_proj after the local rows; each only when given), the type embeddings.
// *cond (when cond != NULL): the sum of the vector rows [B, 1, F] (NULL when there is none),
// for et_fim_forward.
et_tensor *et_fim_clues_from(et_fim *f, et_tensor *global, et_tensor *local, et_tensor *point_pe,
                             et_tensor *points, et_tensor *attrs, et_tensor **cond);
// Clue rows [B, n, F] (a new reference): et_fim_raw then et_fim_clues_from (points = the
// landmarks when local). tokens may be NULL when !cfg.global, landmarks
// when !cfg.local; point_pe [B, 68, F] (a constant) or NULL.
et_tensor *et_fim_clues(et_fim *f, et_tensor *fused, et_tensor *tokens, et_tensor *landmarks,
                        et_tensor *point_pe, et_tensor *attrs, et_tensor **cond);
// [B, K, W] from the clues; cond [B, 1, F] (or NULL) goes through the clue LayerNorm and
// projection and is added to every query before the first layer.
et_tensor *et_fim_forward(et_fim *f, et_tensor *clues, et_tensor *cond);
int et_fim_params(const et_fim *f, const char **names, et_tensor **tensors);
void et_fim_free(et_fim *f);

#endif
