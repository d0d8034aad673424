// train/models/generate.h - batched text generation with a KV cache for the LLaMA decoder.
// defines: et_gen_opts, et_gen_defaults, et_gen_left_pad, et_llama_generate,
//          et_llama_generate_embeds
//
// Contract
// - Prompts are LEFT-padded, as HF generate expects: ids i32 [B, P] with each row's
//   tokens at the end and mask i32 [B, P] (1 = token, 0 = pad). Positions restart at 0
//   at each row's first real token (cumsum(mask) - 1, as HF), pad keys are masked, so a
//   row's result does not depend on the other rows. et_gen_left_pad builds ids/mask from
//   ragged prompts.
// - The whole prompt runs in one forward pass that fills the cache; then one token per
//   step for every row. Greedy takes the first maximum (torch.argmax). Sampling applies
//   temperature, then top-p (HF TopPLogitsWarper: the smallest set of most probable tokens
//   whose probability reaches top_p, at least one), then draws with the Philox stream
//   (seed, offset): step s, row b uses the uniform at offset + s * B + b, so the same seed
//   gives the same text on any machine and batch order is stable. opts->offset is advanced
//   by the draws.
// - A row finishes when it emits an eos id (the config's list unless opts gives one) or its
//   generated tokens end with one of the stop sequences (the eos / stop tokens are kept).
//   Finished rows are filled with pad_id; generation stops when every row has finished or
//   after max_new_tokens. Output: i32 [B, N] new tokens, N = steps run; n_new[b] = tokens
//   row b produced before finishing (including its eos / stop tokens).
// - Runs without grad. Not thread-safe per model (the model's act_dtype is the cache's).
#ifndef ET_TRAIN_GENERATE_H
#define ET_TRAIN_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "llama.h"

#define ET_GEN_MAX_STOP 16

typedef struct {
    int max_new_tokens;
    bool do_sample;           // false: greedy
    double temperature;       // > 0, sampling only
    double top_p;             // (0, 1], sampling only
    uint64_t seed;            // Philox stream for sampling
    uint64_t offset;
    int n_eos;                // -1: the model config's eos ids; 0: none
    int eos_ids[ET_LLAMA_MAX_EOS];
    int n_stop;               // stop sequences of token ids
    const int32_t *stop_seqs[ET_GEN_MAX_STOP];
    int stop_lens[ET_GEN_MAX_STOP];
    int pad_id;               // -1: config pad_token_id, or 0 when the config has none
} et_gen_opts;

// max_new_tokens 32, greedy, temperature 1, top_p 1, seed 0, config eos, no stops.
et_gen_opts et_gen_defaults(void);

// n prompts prompts[i][0 .. lens[i]) -> *ids, *mask i32 [n, max len], left-padded with pad.
void et_gen_left_pad(int n, const int32_t *const *prompts, const int *lens, int32_t pad,
                     et_tensor **ids, et_tensor **mask);

// ids i32 [B, P] (left-padded), mask i32/u8 [B, P] or NULL (no padding). *out receives
// i32 [B, N]; n_new (may be NULL) receives B counts. Invalid options are ET_ERR_INVALID.
et_status et_llama_generate(et_llama *m, et_tensor *ids, et_tensor *mask, et_gen_opts *opts,
                            et_tensor **out, int64_t *n_new);
// The same from prompt embeddings [B, P, H] (act_dtype; left-padded rows, pad rows any
// value) instead of ids: the prompt of a multimodal model with its visual tokens spliced in.
// et_llama_generate(ids) equals this on et_llama_embed(ids).
et_status et_llama_generate_embeds(et_llama *m, et_tensor *embeds, et_tensor *mask,
                                   et_gen_opts *opts, et_tensor **out, int64_t *n_new);

#endif
