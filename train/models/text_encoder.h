// train/models/text_encoder.h - the small caption encoder of `emotune pretrain-tower`: a
// CLIP-style causal transformer with EOS pooling (HF CLIPTextTransformer's layout at tiny
// size). defines: et_text_config, et_text_encoder, et_text_encoder_new_random,
//          et_text_encoder_forward, et_text_encoder_params, et_text_encoder_free
//
// Why this encoder: the synthetic captions are short (20-60 tokens) and their meaning sits in
// a few words (the emotion, the action units, age, gender, pose); one pre-LN causal layer of
// width 64 reads them in a fraction of the tower's time on 2 cores, and keeps CLIP's design
// (the EOS token's final state, after final_layer_norm, is the sentence), so the head's tensor
// names and shapes follow HF CLIPTextModelWithProjection.
//
// Contract
// - Weights (f32, or f64 with cfg.f64; trainable): token_embedding [V, W], position_embedding [T,
// W], per layer
//   layer_norm1, self_attn.{q,k,v,out}_proj (with bias), layer_norm2, mlp.fc1 [4W, W],
//   mlp.fc2 [W, 4W], final_layer_norm [W], text_projection [E, W] (no bias). Init:
//   HF CLIP's scheme with factor std / 0.02 (token embedding N(0, std), position std / 2,
//   q/k/v and fc2 W^-0.5 (2L)^-0.5 f, out_proj and text_projection W^-0.5 f, fc1
//   (2W)^-0.5 f) from the Philox (seed, offset 0, 1, ...) in et_text_encoder_params' order,
//   LayerNorm weights 1, biases 0.
// - Forward: B sequences ids[b][0..lens[b]) (each 1..T tokens, the caller ends each with its
//   EOS id; ids in [0, V)) -> [B, E] = text_projection(final_layer_norm(h)[b, lens[b] - 1]),
//   h from x = token_embedding(ids) + position_embedding[:t] through the layers
//   (h += out_proj(attn(ln1 h)) causal; h += fc2(quick_gelu(fc1(ln2 h)))). Padding positions
//   are masked out of the keys and never reach the pooled row. Not normalised.
// - Names (et_text_encoder_params): "text_model.embeddings.token_embedding.weight", ...,
//   "text_model.final_layer_norm.weight", "text_projection.weight" (HF CLIPModel's).
#ifndef ET_TRAIN_TEXT_ENCODER_H
#define ET_TRAIN_TEXT_ENCODER_H

#include <stdbool.h>
#include <stdint.h>

#include "clip.h"
#include "core/status.h"
#include "core/tensor.h"

typedef struct {
    int64_t vocab_size;  // V
    int64_t width;       // W
    int64_t layers;      // L
    int64_t heads;       // W % heads == 0
    int64_t max_len;     // T (position embeddings)
    int64_t proj_dim;    // E
    double eps;          // LayerNorm eps
    bool f64;            // f64 weights (gradient checks); else f32
} et_text_config;

typedef struct {
    et_text_config cfg;
    et_tensor *tok_emb, *pos_emb;
    et_clip_layer *layers;  // [L] (same layout as the vision tower's)
    et_tensor *final_ln_w, *final_ln_b;
    et_tensor *proj;  // [E, W]
} et_text_encoder;

// Inconsistent shapes are ET_ERR_INVALID naming the clip.* keys.
et_status et_text_encoder_new_random(const et_text_config *cfg, double std, uint64_t seed,
                                     et_text_encoder *m);
et_tensor *et_text_encoder_forward(et_text_encoder *m, int B, const int32_t *const *ids,
                                   const int *lens);
// Every tensor with its HF name; returns the count. names / out may be NULL.
int et_text_encoder_params(et_text_encoder *m, char (*names)[ET_CLIP_NAME_MAX], et_tensor **out);
void et_text_encoder_free(et_text_encoder *m);  // NULL-safe fields; keeps the struct

#endif
