// train/models/llama.h - the LLaMA-family decoder (HF LlamaForCausalLM) on emotune ops.
// defines: et_llama_layer, et_llama, et_llama_cache, et_llama_load, et_llama_free,
//          et_llama_rope_inv_freq, et_llama_embed, et_llama_forward,
//          et_llama_forward_embeds, et_llama_loss, et_llama_positions, et_llama_cache_new,
//          et_llama_cache_free, et_llama_new_random, et_llama_load_ex,
//          et_llama_config_load_sub
//
// Contract
// - Computation follows HF exactly (REFERENCE.md section 3): per layer
//     n = rmsnorm(x); q, k, v = q/k/v_proj(n) viewed [B, T, H, hd]; rope(q), rope(k);
//     h = x + o_proj(attention(q, k, v, key_mask, causal, hd^-0.5));
//     out = h + down_proj(swiglu(gate_proj(m), up_proj(m))), m = rmsnorm(h);
//   then the final norm and lm_head (the embedding matrix itself when tied).
// - dtypes: weights keep the dtype they were loaded in (`weight_dtype`, f32/bf16/f16; the
//   base weights are frozen leaves); activations run in `act_dtype` (default: the weight
//   dtype; set it to ET_F32 to run a bf16 checkpoint with f32 activations, the ops widen
//   the weights). Logits come out in act_dtype.
// - Every Linear is an et_linear_layer named by its HF module path
//   ("model.layers.0.self_attn.q_proj", "lm_head"), so LoRA attaches by name later.
// - Positions are given per sample (i32 [B, T]); NULL means 0..T-1 in every row (after a
//   cache: cache->len .. cache->len+T-1). key_mask (i32/u8 [B, T], nonzero = real token)
//   hides padding keys; a query with no visible key gives zeros, never NaN.
// - Block recompute: set layers[i].recompute and the layer runs under et_checkpoint while
//   grad mode is on (only its input is kept; backward recomputes it). LoRA dropout inside
//   a recomputed layer replays the same Philox offsets. One forward per model may be in
//   flight (un-backwarded) with recompute on: the per-layer recompute state lives in the
//   model.
// - KV cache (inference only): et_llama_forward_embeds with a cache runs without grad,
//   appends the new keys/values (and key_mask) of every layer at cache->len and advances
//   cache->len by T; queries see every cached key plus the causal part of the new ones.
// - Ownership: functions returning et_tensor* return a new reference. et_llama owns its
//   tensors; et_llama_free releases them (tensors still referenced elsewhere stay valid).
#ifndef ET_TRAIN_LLAMA_H
#define ET_TRAIN_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "core/status.h"
#include "core/tensor.h"
#include "nn.h"

struct et_llama;

typedef struct {
    struct et_llama *model;
    int layer;
    bool has_rng;
    et_rng_stream rng;  // LoRA dropout stream at the start of the layer
    uint64_t rng_end;   // offset after the layer (set by the first run)
} et_llama_ckpt_ctx;

typedef struct {
    et_tensor *input_norm;      // [H]
    et_linear_layer q_proj;     // weight [nh*hd, H], bias [nh*hd] with attention_bias
    et_linear_layer k_proj;     // weight [nkv*hd, H]
    et_linear_layer v_proj;     // weight [nkv*hd, H]
    et_linear_layer o_proj;     // weight [H, nh*hd], bias [H] with attention_bias
    et_tensor *post_norm;       // [H]
    et_linear_layer gate_proj;  // weight [I, H], bias [I] with mlp_bias
    et_linear_layer up_proj;    // weight [I, H]
    et_linear_layer down_proj;  // weight [H, I]
    bool recompute;             // run under et_checkpoint when training
    et_llama_ckpt_ctx ckpt;     // recompute state (internal)
} et_llama_layer;

typedef struct et_llama {
    et_llama_config cfg;
    et_dtype weight_dtype;
    et_dtype act_dtype;
    et_tensor *embed_tokens;  // [V, H]
    et_llama_layer *layers;   // [L]
    et_tensor *norm;          // [H]
    et_linear_layer lm_head;  // weight [V, H] (tied: the embed_tokens tensor)
    et_tensor *inv_freq;      // f32 [hd/2], rope scaling applied
} et_llama;

typedef struct {
    int64_t batch;     // B
    int64_t capacity;  // S_max positions
    int64_t len;       // positions filled so far
    int n_layers;
    et_tensor **k;    // [L] of [B, S_max, nkv, hd] in act_dtype
    et_tensor **v;    // [L] of [B, S_max, nkv, hd]
    et_tensor *mask;  // i32 [B, S_max], 1 = real token
} et_llama_cache;

// Allocates the struct and names every Linear; no weight tensors yet (the loader in
// train/io/llama_load.c or et_llama_new_random fills them).
et_llama *et_llama_alloc(const et_llama_config *cfg, et_dtype dtype);
// Calls fn once per weight the config implies, in HF order: its HF name, its shape
// (ndim 1 or 2: d0, d1) and where the tensor goes. lm_head is left out when tied.
typedef void (*et_llama_weight_fn)(void *ctx, const char *name, et_tensor **dst, int ndim,
                                   int64_t d0, int64_t d1);
void et_llama_for_each_weight(et_llama *m, et_llama_weight_fn fn, void *ctx);
void et_llama_free(et_llama *m);  // NULL-safe
// A model with the config's shapes and weights drawn from N(0, std) (norms 1), seeded.
et_llama *et_llama_new_random(const et_llama_config *cfg, et_dtype dtype, double std,
                              uint64_t seed);

// HF inverse frequencies for the config (default, linear or llama3 scaling). f32 [hd/2].
et_tensor *et_llama_rope_inv_freq(const et_llama_config *cfg);

// ids i32 [B, T] -> embeddings [B, T, H] in act_dtype.
et_tensor *et_llama_embed(et_llama *m, et_tensor *ids);
// x [B, T, H] (act_dtype) -> logits [B, T, V]. pos i32 [B, T] or NULL; key_mask i32/u8
// [B, T] or NULL; cache NULL (training / full sequence) or a cache to read and extend;
// rng: LoRA dropout stream (NULL = no dropout).
et_tensor *et_llama_forward_embeds(et_llama *m, et_tensor *x, et_tensor *pos, et_tensor *key_mask,
                                   et_llama_cache *cache, et_rng_stream *rng);
// ids i32 [B, T] -> logits [B, T, V]; as et_llama_forward_embeds.
et_tensor *et_llama_forward(et_llama *m, et_tensor *ids, et_tensor *pos, et_tensor *key_mask,
                            et_llama_cache *cache, et_rng_stream *rng);
// Causal LM loss as HF: logits [B, T, V], labels i32 [B, T] (-100 = ignore): mean cross
// entropy of logits[:, t] against labels[:, t+1] over the counted targets. -> f32 [].
// T < 2 (nothing to predict) gives a constant 0 with no autograd history.
et_tensor *et_llama_loss(et_tensor *logits, et_tensor *labels);
// Positions from a mask, as HF generate: cumsum(mask) - 1 per row, 1 where mask is 0
// (offset added). mask i32 [B, T] -> i32 [B, T].
et_tensor *et_llama_positions(et_tensor *mask, int64_t offset);

et_llama_cache *et_llama_cache_new(const et_llama *m, int64_t batch, int64_t capacity);
void et_llama_cache_free(et_llama_cache *c);  // NULL-safe

#endif
