// train/models/config.h - the LLaMA-family decoder configuration, read from an HF config.json.
// defines: et_llama_config, et_rope_kind, et_llama_config_default, et_llama_config_parse,
//          et_llama_config_load, ET_LLAMA_MAX_EOS
//
// Contract
// - Fields and defaults follow transformers' LlamaConfig (REFERENCE.md section 3):
//   required: vocab_size, hidden_size, intermediate_size, num_hidden_layers,
//   num_attention_heads. Defaults: num_key_value_heads = num_attention_heads,
//   head_dim = hidden_size / num_attention_heads, rms_norm_eps 1e-6, rope_theta 1e4,
//   max_position_embeddings 2048, tie_word_embeddings / attention_bias / mlp_bias false,
//   bos 1, eos [2], pad -1 (none). null counts as absent.
// - rope_theta may also come from rope_parameters.rope_theta (transformers >= 5); the
//   scaling block is rope_scaling (or rope_parameters) with rope_type (or legacy "type")
//   "default", "linear" (factor) or "llama3" (factor, low_freq_factor, high_freq_factor,
//   original_max_position_embeddings). Other rope types are ET_ERR_UNSUPPORTED.
// - eos_token_id may be an integer or a list (at most ET_LLAMA_MAX_EOS).
// - Every error is an et_status naming the file (or the name given to _parse) and the
//   field, e.g. "config.json: field 'hidden_size': expected a positive integer, got -3".
// - Consistency checks: heads % kv_heads == 0, head_dim even, hidden % heads == 0 when
//   head_dim is absent, hidden_act (when present) "silu".
#ifndef ET_TRAIN_CONFIG_H
#define ET_TRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

#define ET_LLAMA_MAX_EOS 8

typedef enum { ET_ROPE_DEFAULT = 0, ET_ROPE_LINEAR, ET_ROPE_LLAMA3 } et_rope_kind;

typedef struct {
    int64_t vocab_size;               // V
    int64_t hidden_size;              // H
    int64_t intermediate_size;        // I
    int64_t num_hidden_layers;        // L
    int64_t num_attention_heads;      // nh
    int64_t num_key_value_heads;      // nkv (nh % nkv == 0)
    int64_t head_dim;                 // hd
    int64_t max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;
    et_rope_kind rope_kind;
    double rope_factor;               // linear and llama3
    double rope_low_freq_factor;      // llama3
    double rope_high_freq_factor;     // llama3
    int64_t rope_original_max_pos;    // llama3 original_max_position_embeddings
    bool tie_word_embeddings;
    bool attention_bias;              // q/k/v/o biases
    bool mlp_bias;                    // gate/up/down biases
    int bos_token_id;                 // -1 when absent
    int pad_token_id;                 // -1 when absent
    int n_eos;
    int eos_token_ids[ET_LLAMA_MAX_EOS];
} et_llama_config;

// HF LlamaConfig defaults (a 7B shape) with no required field validated.
et_llama_config et_llama_config_default(void);
// Parses JSON text; `name` is used in error messages (usually the file path).
et_status et_llama_config_parse(const char *json, const char *name, et_llama_config *out);
// Reads and parses a config.json file.
et_status et_llama_config_load(const char *path, et_llama_config *out);

#endif
