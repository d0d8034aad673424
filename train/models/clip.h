// train/models/clip.h - the CLIP ViT vision tower (HF CLIPVisionTransformer), frozen by default.
// defines: et_clip_act, et_clip_feature, et_clip_config, et_clip_layer, et_clip_vision,
//          et_clip_config_from_json, et_clip_config_load, et_clip_vision_load_weights,
//          et_clip_vision_load, et_clip_vision_forward, et_clip_vision_free,
//          et_clip_vision_linears, et_clip_vision_new_random, et_clip_vision_pooled,
//          et_clip_vision_add_post_layernorm, et_clip_vision_params
//
// Contract
// - Config: HF CLIPVisionConfig fields (hidden_size, intermediate_size, num_hidden_layers,
//   num_attention_heads, num_channels, image_size, patch_size, layer_norm_eps, hidden_act
//   quick_gelu | gelu), read from config.json's "vision_config" object (full CLIPModel,
//   LLaVA-style configs) or from the top level (CLIPVisionModel). Missing fields take HF's
//   defaults (768, 3072, 12, 12, 3, 224, 32, 1e-5, quick_gelu), as transformers does.
// - Weights: every tensor of the tower lives under "<prefix>vision_model." where prefix
//   is "" for CLIPVisionModel and CLIPModel checkpoints (whose text_model.*, logit_scale,
//   visual_projection, text_projection are ignored) and e.g. "vision_tower." in llava-hf or
//   "model.vision_tower.vision_tower." in LLaVA-1.5 checkpoints. The prefix is detected from
//   the name ending in "vision_model.embeddings.class_embedding" (exactly one such name, or
//   pass the prefix). Under the prefix every expected tensor must be present with its exact
//   shape and nothing else may appear; the error names every missing, unexpected and
//   mis-shaped tensor. post_layernorm.{weight,bias} are optional: loaded when both are
//   present (shape [D]) into post_ln_w / post_ln_b, used only by et_clip_vision_pooled. Weights are
//   kept in their file dtype (zero-copy views of the mapping; bf16 is fine) and are frozen.
// - Forward, img [B, C, S, S] (f32 activations; the output takes img's dtype):
//     x = cat(class_embedding, patch_embed(img)) + position_embedding   [B, N+1, D]
//     hidden_states[0] = pre_layrnorm(x)
//     hidden_states[k] = layer k(hidden_states[k-1]), pre-LN:
//       h = h + out_proj(attn(q_proj(ln1 h), k_proj(ln1 h), v_proj(ln1 h))) (non-causal)
//       h = h + fc2(act(fc1(ln2 h)))
//   select_layer k in [-(L+1), L] picks hidden_states[k] (negative counts from the end, as
//   Python indexing: -2 = layer L-1, LLaVA's default). Only layers 1..k run. A value outside
//   is a programmer error here; et_clip_check_select_layer validates a user's value first.
//   ET_CLIP_PATCH drops CLS ([B, N, D]); ET_CLIP_CLS_PATCH keeps it ([B, N+1, D]).
//   post_layernorm is not applied (LLaVA never uses it): this feature path does not change
//   whether the tower has one or not.
// - et_clip_vision_pooled (HF CLIPVisionModel's pooler_output): post_layernorm(the CLS row
//   of the last layer) -> [B, D]; the tower must have a post_layernorm
//   (et_clip_vision_add_post_layernorm gives a random tower an identity one).
// - With m->frozen (the default after loading) the forward runs under no-grad, so it records
//   nothing even when the caller's grad mode is on. Clear `frozen` (and mark tensors
//   trainable, or attach LoRA to et_clip_vision_linears) to train through it.
#ifndef ET_TRAIN_CLIP_H
#define ET_TRAIN_CLIP_H

#include <stdbool.h>
#include <stdint.h>

#include "core/safetensors.h"
#include "core/status.h"
#include "core/tensor.h"
#include "nn.h"

typedef enum { ET_CLIP_QUICK_GELU, ET_CLIP_GELU } et_clip_act;
typedef enum { ET_CLIP_PATCH, ET_CLIP_CLS_PATCH } et_clip_feature;

typedef struct {
    int64_t hidden_size;        // D
    int64_t intermediate_size;  // I
    int64_t num_layers;         // L
    int64_t num_heads;          // H (D % H == 0)
    int64_t num_channels;       // C
    int64_t image_size;         // S (S % P == 0)
    int64_t patch_size;         // P
    double layer_norm_eps;
    et_clip_act act;
} et_clip_config;

typedef struct {
    et_tensor *ln1_w, *ln1_b;    // [D] layer_norm1
    et_linear_layer q, k, v, o;  // [D, D] + [D] self_attn.{q,k,v,out}_proj
    et_tensor *ln2_w, *ln2_b;    // [D] layer_norm2
    et_linear_layer fc1, fc2;    // [I, D] + [I], [D, I] + [D] mlp.fc1/fc2
} et_clip_layer;

typedef struct {
    et_clip_config cfg;
    char prefix[128];            // "<prefix>vision_model." as found in the checkpoint
    et_tensor *class_embedding;  // [D]
    et_tensor *patch_weight;     // [D, C, P, P] (conv, no bias)
    et_tensor *pos_embedding;    // [N+1, D], N = (S/P)^2
    et_tensor *pre_ln_w;         // [D] pre_layrnorm
    et_tensor *pre_ln_b;         // [D]
    et_tensor *post_ln_w;        // [D] post_layernorm, or NULL (optional, pooled output only)
    et_tensor *post_ln_b;        // [D] or NULL
    et_clip_layer *layers;       // [L]
    bool frozen;                 // forward under no-grad (default true)
} et_clip_vision;

// json: config.json text; what: a name for error messages (the path).
et_status et_clip_config_from_json(const char *json, const char *what, et_clip_config *out);
et_status et_clip_config_load(const char *config_json_path, et_clip_config *out);

// Loads the tower's tensors for m->cfg (set it first) from one safetensors file or a
// sharded index (pass exactly one). prefix: "" / NULL to detect, or e.g. "vision_tower.".
// On error m holds no tensors.
et_status et_clip_vision_load_weights(et_clip_vision *m, et_st_file *f, et_st_index *ix,
                                      const char *prefix);
// dir/config.json + dir/model.safetensors (or dir/model.safetensors.index.json).
et_status et_clip_vision_load(const char *dir, et_clip_vision *m);
// A tower with cfg's shapes: weights N(0, std) from the Philox (seed, offset 0, 1, ...),
// LayerNorm weights 1, biases 0; f32, frozen. Inconsistent shapes are ET_ERR_INVALID.
et_status et_clip_vision_new_random(const et_clip_config *cfg, double std, uint64_t seed,
                                    et_clip_vision *m);

// Whether select_layer lies in [-(L+1), L] for cfg's L layers; the error names `key` (the
// config key the value came from, e.g. "model.select_layer") and the valid range. Callers
// check a user's value with it before the forward (which asserts).
et_status et_clip_check_select_layer(const et_clip_config *cfg, int select_layer, const char *key);
// img: [B, C, S, S] -> [B, N, D] (ET_CLIP_PATCH) or [B, N+1, D] (ET_CLIP_CLS_PATCH).
et_tensor *et_clip_vision_forward(et_clip_vision *m, et_tensor *img, int select_layer,
                                  et_clip_feature feature);
void et_clip_vision_free(et_clip_vision *m);  // releases everything, keeps the struct
// img: [B, C, S, S] -> [B, D] = post_layernorm(CLS of the last layer); asserts post_ln_w.
// *last_hidden (may be NULL) receives the last layer's [B, N+1, D] (HF last_hidden_state).
et_tensor *et_clip_vision_pooled(et_clip_vision *m, et_tensor *img, et_tensor **last_hidden);
// Gives the tower an identity post_layernorm (weight 1, bias 0, f32) when it has none.
void et_clip_vision_add_post_layernorm(et_clip_vision *m);
// Every tensor of the tower with its HF CLIPVisionModel name ("vision_model.<...>"), in the
// export's order (post_layernorm last, when present); returns the count. names / out may be
// NULL; names[i] holds up to ET_CLIP_NAME_MAX bytes.
#define ET_CLIP_NAME_MAX 128
int et_clip_vision_params(et_clip_vision *m, char (*names)[ET_CLIP_NAME_MAX], et_tensor **out);
// One pre-LN CLIP encoder layer (HF CLIPEncoderLayer), shared by the tower and the text
// encoder: h + attn(ln1(h)), then + mlp(ln2(.)); heads divide h's width; key_mask [B, T] i32
// or NULL; causal for the text encoder.
et_tensor *et_clip_layer_forward(et_clip_layer *y, et_tensor *h, int64_t heads, double eps,
                                 et_clip_act act, et_tensor *key_mask, bool causal);
// The layer's 16 tensors under "<prefix>.encoder.layers.<l>.*" (HF names), appended at
// names[*n] / out[*n] (either may be NULL); *n advances.
void et_clip_layer_params(et_clip_layer *y, const char *prefix, int l,
                          char (*names)[ET_CLIP_NAME_MAX], et_tensor **out, int *n);

// The tower's Linear layers (6 per layer, HF names) for LoRA; returns the count (6 L) and
// fills out[] when it is non-NULL.
int et_clip_vision_linears(et_clip_vision *m, et_linear_layer **out);

#endif
