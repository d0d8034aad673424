// train/models/mllm.h - the assembled multimodal model (LLaVA style): frozen CLIP vision tower ->
// trainable projector -> LLaMA decoder with PEFT LoRA; plus LLaVA's config fields.
// defines: et_llava_config, et_llava_config_parse, et_llava_config_load, et_mllm,
//          et_mllm_input, et_mllm_batch, ET_MLLM_IGNORE, ET_LLAVA_IMAGE_TOKEN,
//          et_mllm_decoder_linears, et_mllm_attach_lora, et_mllm_encode_images,
//          et_mllm_splice, et_mllm_batch_free, et_mllm_forward, et_mllm_loss
//
// Contract
// - LLaVA config (et_llava_config_parse): two layouts, detected from the fields present.
//   LLaVA-1.5 (top-level mm_* fields): mm_hidden_size (required), mm_vision_select_layer
//   (required, as LLaVA's CLIPVisionTower reads it), mm_projector_type ("linear" default,
//   or "mlp2x_gelu"), mm_vision_select_feature ("patch" default | "cls_patch"),
//   image_aspect_ratio ("square" default | "pad"; "anyres*" is unsupported),
//   mm_vision_tower (a string, required); placeholder id -200 (IMAGE_TOKEN_INDEX).
//   llava-hf (a "vision_config" and/or "text_config" object): the projector is always
//   mlp2x_gelu with projector_hidden_act "gelu" (default; anything else is unsupported),
//   mm_hidden_size = vision_config.hidden_size (default 1024, as LlavaConfig),
//   vision_feature_layer (default -2; a list is unsupported), vision_feature_select_strategy
//   ("default" = patch | "full" = cls_patch), image_token_index (default 32000).
//   A config with neither layout, a field of the wrong type or an unknown value is an
//   et_status naming the file and the field.
// - et_mllm borrows its parts (vision tower, projector, decoder); the caller owns them.
//   The tower runs frozen (no grad); gradients reach the projector and the LoRA adapters.
// - Splice (et_mllm_splice), per sample b with ids[b] (i32 [n_b]) and labels[b]:
//   every placeholder id (at most one per sample) is replaced by the sample's N visual
//   tokens (none when `visual` is NULL: the prior alone, EmoLA's prior-only ablation), then
//   its P prior tokens when `prior` is given ([B, P, H]); text tokens are
//   embedded with the decoder's embed_tokens. Labels are the caller's at text positions
//   (NULL labels: all IGNORE) and IGNORE (-100) at visual/prior positions. Samples are
//   truncated to max_len (> 0) and right padded to the longest: pad rows are zero
//   embeddings, label IGNORE, mask 0, position 0. Positions are 0..len_b-1 per sample.
//   The embeddings are built with et_concat / et_gather_rows / et_scatter_rows on
//   [B*T, H] rows in the decoder's act_dtype, so gradients flow to the visual tokens
//   (hence the projector) and to the prior tokens. A sample without a placeholder is
//   text only (its visual tokens are unused).
// - Loss: et_llama_loss on the spliced labels (HF shift by one, mean over every counted
//   target of the batch, as LLaVA's LlamaForCausalLM). A sample whose labels are all
//   IGNORE adds nothing (and gets zero gradients); an all-IGNORE batch gives 0, never NaN.
// - Errors (et_status): a placeholder count > 1, labels whose length differs from ids',
//   a sample with a placeholder but neither visual nor prior tokens, pixels/prior batch != B.
#ifndef ET_TRAIN_MLLM_H
#define ET_TRAIN_MLLM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "clip.h"
#include "llama.h"
#include "lora.h"
#include "nn.h"
#include "projector.h"

#define ET_MLLM_IGNORE (-100)
#define ET_LLAVA_IMAGE_TOKEN (-200)

typedef struct {
    bool hf_layout;               // llava-hf (vision_config/text_config) vs LLaVA-1.5 mm_*
    et_projector_type projector;  // linear | mlp2x_gelu
    int64_t mm_hidden_size;       // vision hidden size (projector input)
    int select_layer;             // hidden_states index (negative from the end)
    et_clip_feature feature;      // patch | cls_patch
    bool pad_to_square;           // image_aspect_ratio "pad"
    int32_t image_token;          // placeholder id in input_ids
    char vision_tower[256];       // mm_vision_tower (LLaVA-1.5) or "" (llava-hf)
} et_llava_config;

et_status et_llava_config_parse(const char *json, const char *name, et_llava_config *out);
et_status et_llava_config_load(const char *path, et_llava_config *out);

typedef struct {
    et_clip_vision *vision;   // frozen tower (may be NULL for text-only use)
    et_projector *proj;       // trainable projector (NULL when vision is NULL)
    et_llama *llm;            // decoder (LoRA attached by the caller or et_mllm_attach_lora)
    int select_layer;         // e.g. -2
    et_clip_feature feature;  // e.g. ET_CLIP_PATCH
    int32_t image_token;      // placeholder id, e.g. ET_LLAVA_IMAGE_TOKEN
    int64_t max_len;          // truncate spliced samples to this length (0 = no limit)
} et_mllm;

typedef struct {
    int batch;                 // B
    et_tensor *const *ids;     // [B] of i32 [n_b]
    et_tensor *const *labels;  // [B] of i32 [n_b], or NULL (nothing supervised)
    et_tensor *pixels;         // [B, C, S, S] or NULL (no sample has a placeholder)
    et_tensor *prior;          // [B, P, H] or NULL: appended after the visual tokens
} et_mllm_input;

typedef struct {
    int64_t B, T;       // T = longest spliced sample
    et_tensor *embeds;  // [B, T, H] act_dtype (autograd-connected)
    et_tensor *labels;  // i32 [B, T]
    et_tensor *mask;    // i32 [B, T], 1 = real token
    et_tensor *pos;     // i32 [B, T]
    int64_t *len;       // [B] spliced lengths (owned)
} et_mllm_batch;

// The decoder's Linear layers except lm_head: 7 per layer (q, k, v, o, gate, up, down),
// in layer order. Returns 7 L; fills out when non-NULL.
int et_mllm_decoder_linears(et_llama *llm, et_linear_layer **out);
// Attaches cfg's adapter to the matching decoder Linears (lm_head never).
et_status et_mllm_attach_lora(et_mllm *m, const et_lora_config *cfg, int *n_attached);
// pixels [B, C, S, S] -> projected visual tokens [B, N, H] (f32, tower under no-grad).
et_tensor *et_mllm_encode_images(et_mllm *m, et_tensor *pixels);
// The splice on given visual tokens (visual [B, N, H] or NULL; prior [B, P, H] or NULL).
et_status et_mllm_splice(et_llama *llm, int32_t image_token, int64_t max_len, int batch,
                         et_tensor *const *ids, et_tensor *const *labels, et_tensor *visual,
                         et_tensor *prior, et_mllm_batch *out);
void et_mllm_batch_free(et_mllm_batch *b);
// Encode, splice and run the decoder: *logits [B, T, V]; *batch (may be NULL) receives
// the spliced batch (caller frees).
et_status et_mllm_forward(et_mllm *m, const et_mllm_input *in, et_rng_stream *rng,
                          et_tensor **logits, et_mllm_batch *batch);
// As et_mllm_forward, then the causal LM loss (f32 []). logits (may be NULL) receives them.
et_status et_mllm_loss(et_mllm *m, const et_mllm_input *in, et_rng_stream *rng, et_tensor **loss,
                       et_tensor **logits);

#endif
