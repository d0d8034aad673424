// train/io/llama_load.h - a LLaMA-family decoder from an HF model directory.
// defines: et_llama_load, et_llama_load_ex, et_llama_config_load_sub
//
// Contract
// - config.json gives the shapes (et_llama_config_parse), the weights come through
//   hf_weights.h (model.safetensors or its sharded index), every expected tensor is
//   checked before any is loaded, and one error lists all that are missing, misshapen or
//   unexpected. The returned model is owned by the caller (et_llama_free).
#ifndef ET_TRAIN_IO_LLAMA_LOAD_H
#define ET_TRAIN_IO_LLAMA_LOAD_H

#include "core/status.h"
#include "train/models/llama.h"

// Loads config.json and the weights from an HF model directory (see hf_weights.h), weights
// converted to weight_dtype (f32, bf16 or f16). On error *out is NULL.
// = et_llama_load_ex(dir, NULL, "", 0, NULL, weight_dtype, out).
et_status et_llama_load(const char *dir, et_dtype weight_dtype, et_llama **out);
// The decoder inside a composite checkpoint (LLaVA):
// - config_key: NULL = the LLaMA fields are at config.json's top level; else the name of
//   the object holding them (llava-hf "text_config"), whose absent fields take LlamaConfig's
//   defaults, the required ones included (vocab 32000, hidden 4096, intermediate 11008,
//   32 layers, 32 heads), as transformers fills a LlavaConfig's text_config.
// - tensor_prefix: prepended to every HF decoder name ("" or e.g. "language_model."). The
//   Linear layers keep their plain HF names ("model.layers.0.self_attn.q_proj").
// - ignore_prefix: checkpoint tensors starting with one of these belong to other parts and
//   are neither loaded nor reported; any other non-decoder tensor is "unexpected".
et_status et_llama_load_ex(const char *dir, const char *config_key, const char *tensor_prefix,
                           int n_ignore_prefix, const char *const *ignore_prefix,
                           et_dtype weight_dtype, et_llama **out);
// Reads the LLaMA config from config_json_path (at the top level when key is NULL, else from
// the object `key`, defaults filled as et_llama_load_ex describes).
et_status et_llama_config_load_sub(const char *config_json_path, const char *key,
                                   et_llama_config *out);

#endif
