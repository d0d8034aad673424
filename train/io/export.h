// train/io/export.h - Hugging Face checkpoint export: a LLaMA decoder (merged with its LoRA
// adapters, or the frozen base without them), a CLIP vision tower, and a whole trained model.
// defines: et_export_opts, et_export_defaults, et_export_llama_config_json,
//          et_export_merged_llama, et_export_clip_config_json, et_export_clip_vision,
//          et_export_what, ET_EXPORT_ADAPTER, ET_EXPORT_TRAINABLES, ET_EXPORT_MERGED,
//          ET_EXPORT_BASE, ET_EXPORT_OVERWRITE, et_export_emo_model, et_export_check_out,
//          et_export_non_lora_trainables, et_export_mm_projector
//
// Contract
// - et_export_merged_llama writes dir/config.json and the weights, loadable by
//   transformers' LlamaForCausalLM.from_pretrained and by et_llama_load:
//   every Linear that carries an unmerged LoRA adapter is merged on the fly
//   (W + scale * B @ A in f32, rounded once into the target dtype); the model itself is
//   not modified. Layers already merged are written as they are. Tensors take HF names
//   (model.embed_tokens.weight, model.layers.N..., model.norm.weight, lm_head.weight unless
//   tied) in opts.dtype (f32 | bf16 | f16), metadata {"format": "pt"}.
//   With opts.without_lora every Linear's base weight W is written as it is and adapters
//   are left out: the frozen base a PEFT adapter loads onto (merged layers are refused).
// - Sharding as transformers: tensors in model order go into the current shard until the
//   next one would push it past max_shard_bytes (a tensor larger than the limit gets a
//   shard of its own). One shard: dir/model.safetensors. Several:
//   model-0000k-of-0000n.safetensors and model.safetensors.index.json with
//   metadata.total_size (bytes of tensor data) and weight_map.
// - config.json: the decoder's LlamaConfig fields (vocab_size, hidden_size,
//   intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
//   head_dim, max_position_embeddings, rms_norm_eps, rope_theta, rope_scaling,
//   tie_word_embeddings, attention_bias, mlp_bias, bos/eos/pad_token_id), model_type
//   "llama", architectures ["LlamaForCausalLM"], hidden_act "silu", torch_dtype.
// - Atomic: everything is written into "<dir>.tmp.<pid>" and renamed to dir at the end;
//   an existing non-empty dir is an error (nothing is overwritten); on failure the temp
//   dir is removed and dir is untouched.
// - With opts.without_lora every Linear's base weight W is written as it is and adapters
//   are left out: the frozen base a PEFT adapter loads onto. A layer whose adapter is
//   merged into W is an error (its base weight is gone; unmerge first).
// - et_export_clip_vision writes dir/config.json (CLIPVisionConfig fields, model_type
//   "clip_vision_model", architectures ["CLIPVisionModel"]) and dir/model.safetensors with
//   the tower under "vision_model." as HF's CLIPVisionModel (embeddings.class_embedding,
//   embeddings.patch_embedding.weight, embeddings.position_embedding.weight, pre_layrnorm.*,
//   encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.fc1, mlp.fc2,
//   layer_norm2}.{weight,bias}) in dtype, plus post_layernorm.{weight,bias}: the tower's own
//   (a pretrained tower), else 1, 0 (LLaVA never applies it; an identity LayerNorm lets
//   transformers find every key). Base weights only (an adapter on the tower is left out). Same
//   atomicity.
// - et_export_emo_model(out, m, what) writes the parts of a trained et_emo_model that
//   `what` selects (OR of ET_EXPORT_* bits) under out (created if missing), in the model's
//   weight dtype (the tower in its own):
//     ADAPTER     out/adapter/ (et_lora_save_adapter: PEFT adapter_config.json +
//                 adapter_model.safetensors); nothing when the model has no LoRA
//     TRAINABLES  out/non_lora_trainables.safetensors (projector, expert; et_save_trainables),
//                 and per training mode (train.trainable): out/mm_projector.safetensors
//                 (an explicit "projector": LLaVA's stage-1 file), out/merged/ (decoder or
//                 embeddings trained: the full fine-tune as LlamaForCausalLM, no adapter)
//                 and out/vision/ (tower trained: CLIPVisionModel)
//     BASE        out/base/llm/ (LlamaForCausalLM, without_lora) and out/base/vision/
//                 (CLIPVisionModel, when the model has a tower): what PEFT loads the adapter
//                 onto; emotune reloads them as model.llm_path / model.vision_path
//     MERGED      out/merged/ (et_export_merged_llama: adapters merged on the fly)
//   in that order. The model is not modified (no merge/unmerge).
// - Atomic as a whole: every part is written into the sibling "<out>.tmp-export-<pid>",
//   which is renamed to out once complete. A killed export leaves out as it was (the
//   previous export, or nothing) plus its temp directory, which the next export into the
//   same out removes (only names of that exact form whose pid is not running). A failure
//   removes the temp directory. A non-empty out is refused before any work
//   (et_export_check_out: the message names --overwrite), unless `what` has
//   ET_EXPORT_OVERWRITE: then the old export is moved to "<out>.old-<time>" (never
//   deleted) as the new one takes its name (one renameat2 RENAME_EXCHANGE where the file
//   system has it). A training run directory (checkpoints/ or metrics.jsonl) is never
//   replaced.
#ifndef ET_TRAIN_EXPORT_H
#define ET_TRAIN_EXPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "train/models/clip.h"
#include "train/emo_model.h"
#include "train/models/llama.h"

typedef struct {
    et_dtype dtype;           // f32, bf16 or f16
    int64_t max_shard_bytes;  // e.g. 5 GB as transformers' default; must be > 0
    bool without_lora;        // write base weights only (adapters left out)
} et_export_opts;

// The model's weight dtype, 5e9-byte shards.
et_export_opts et_export_defaults(const et_llama *m);
// config.json text for cfg and torch_dtype dt (malloc'd; caller frees).
char *et_export_llama_config_json(const et_llama_config *cfg, et_dtype dt);
et_status et_export_merged_llama(const char *dir, const et_llama *m, const et_export_opts *opts);

// CLIPVisionModel config.json text for cfg and torch_dtype dt (malloc'd; caller frees).
char *et_export_clip_config_json(const et_clip_config *cfg, et_dtype dt);
et_status et_export_clip_vision(const char *dir, const et_clip_vision *v, et_dtype dt);

typedef enum {
    ET_EXPORT_ADAPTER = 1,
    ET_EXPORT_TRAINABLES = 2,
    ET_EXPORT_MERGED = 4,
    ET_EXPORT_BASE = 8,
    ET_EXPORT_OVERWRITE = 16,  // replace a non-empty out (the old export is moved aside)
} et_export_what;

// path: the projector and expert groups' tensors (nothing written when there are none).
et_status et_export_non_lora_trainables(const char *path, const et_emo_model *m);
// path: the projector under its LLaVA names (model.mm_projector.0.weight, .0.bias, .2.weight,
// .2.bias; .weight / .bias for linear), f32, what LLaVA's get_mm_adapter_state_maybe_zero_3
// saves as mm_projector.bin, in safetensors; written atomically (et_st_save).
et_status et_export_mm_projector(const char *path, const et_emo_model *m);
// what: an OR of et_export_what bits.
et_status et_export_emo_model(const char *out, const et_emo_model *m, unsigned what);
// The refusal of et_export_emo_model for out (non-empty without overwrite, a training run,
// not a directory), without writing anything: for a fast check before loading a model.
et_status et_export_check_out(const char *out, bool overwrite);

#endif
