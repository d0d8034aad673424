// data/template.h - conversation templates (vicuna_v1, llava_v1, llava_llama_2, llama_3, plain)
// and LLaVA's label masking: a conversation -> input_ids + labels, or an evaluation prompt.
// defines: et_template, et_chat_turn, et_template_opts, et_template_info, et_template_stop,
//          ET_IGNORE_INDEX, ET_IMAGE_TOKEN_INDEX, ET_VIDEO_TOKEN_INDEX, ET_TEMPLATE_PAD_UNK,
//          et_template_find, et_template_get, et_template_name, et_template_system,
//          et_template_names, et_template_opts_init, et_chat_turns_from_json, et_template_encode,
//          et_template_prompt, et_template_render
//
// Contract: ids and labels equal LLaVA's preprocessing run with HF transformers on the same
// tokenizer (tests/test_golden_template.c, fixtures from tools/golden/gen_templates.py):
//   vicuna_v1, llava_v1   LLaVA preprocess_v1 (SeparatorStyle.TWO: "SYS USER: q ASSISTANT:
//                         a</s>USER: ..."), including its round-by-round re-tokenization and
//                         the `i != 0 and not tokenizer.legacy` off-by-one of tokenizers>=0.14
//   llava_llama_2         LLaVA preprocess_llama_2 ("[INST] <<SYS>>\n..\n<</SYS>>\n\nq [/INST]
//                         a </s><s>[INST] ...")
//   llama_3               LLaVA-NeXT preprocess_llama3 (Llama-3-Instruct chat template per
//                         message, content stripped; assistant turns supervised, then every
//                         <|begin_of_text|>, <|start_header_id|>, <|end_header_id|>, <|eot_id|>
//                         (and a token literally named "\n\n") is supervised wherever it is:
//                         that is LLaVA-NeXT's rule, BOS and user headers included)
//   plain                 LLaVA preprocess_plain (pretraining: media + answer + "\n", the
//                         media prefix masked; exactly one human and one gpt turn)
// The prompt is tokenized in chunks split at `<image>` / `<video>` (LLaVA's
// tokenizer_image_token: each chunk with BOS, BOS dropped from all chunks after the first);
// each placeholder becomes one id (opts.image_id / opts.video_id). Labels are IGNORE (-100)
// outside the supervised spans and at placeholder positions.
//   Rounds: LLaVA computes the labels by tokenizing every round alone; when the lengths do
// not add up to the sequence length it prints "WARNING: tokenization mismatch: A vs. B.
// (ignored)" and sets every label to IGNORE. emotune does exactly the same and reports it in
// info->mismatch (with A and B). This happens in LLaVA itself e.g. for an empty human turn, a
// trailing human turn, a turn containing "</s>" or " ASSISTANT: ", a literal "<unk>" (LLaVA's
// pad is unk), or a non-legacy tokenizer whose round lengths do not differ by one.
//   Before templating (as LLaVA's data pipeline): a leading {"from": "system"} turn replaces
// the template's system text (emotune extension); roles "user"/"assistant" mean
// "human"/"gpt"; a first turn from gpt is dropped (LLaVA preprocess_*); with
// opts.move_media (LLaVA preprocess_multimodal, mm_use_im_start_end false) every turn that
// contains `<image>` loses all its copies and becomes "<image>\n" + rest, stripped (Python
// str.strip whitespace), then the same for `<video>`.
//   Supervision (opts.supervise_all, emotune extension, data.supervise=all): the same ids,
// and every label equals its id except at media placeholders: causal-LM pretraining of a
// decoder on conversations rendered in the template's words (turns are checked as usual;
// LLaVA's round re-tokenization check does not apply, so there is no mismatch).
//   Truncation: the first opts.max_len tokens are kept (LLaVA: tokenizer truncation or the
// collator's cut to model_max_length); info->has_supervised tells whether any supervised
// label survives (a sample without one adds no loss).
//   legacy: LLaVA reads tokenizer.legacy (tokenizer_config.json). opts.legacy = -1 detects it
// from the tokenizer's behaviour: legacy when text right after a special token gets the
// "▁" prefix (Prepend normalizer, Metaspace "always"), non-legacy for Metaspace "first".
//   Evaluation prompt (et_template_prompt): the conversation so far (ending with a human
// turn) + the assistant prefix: vicuna/llava_v1 "... USER: q ASSISTANT:" (LLaVA
// model_vqa), llama_2 "... [INST] q [/INST]", llama_3 the training prefix +
// "<|start_header_id|>assistant<|end_header_id|>\n\n" (one BOS; LLaVA-NeXT's eval
// re-tokenizes the rendered text with a second BOS), plain the media token. Stop: the
// tokenizer's EOS and the template's end-of-turn text ("</s>", "<|eot_id|>", "\n") with its
// id when it is a single token.
//
// Errors (et_status, nothing aborts on user data): an unknown template name (the message
// lists the known ones), an empty conversation (also after dropping a leading gpt turn), an
// unknown role, a "system" turn that is not first, roles that do not alternate human/gpt, a
// NULL or non-string `from`/`value`, llava_llama_2 with an empty first human turn, plain
// without exactly [human with media, gpt], a prompt conversation that does not end with a
// human turn.
//
// Ownership: templates are static and immutable. Turns are borrowed. ids/labels are
// caller-owned et_ids: they are cleared (len = 0) and filled; on error they are left empty.
// Thread safety: every function may run concurrently on the same template and tokenizer
// (both const; no global state).
#ifndef ET_DATA_TEMPLATE_H
#define ET_DATA_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "data/tokenizer.h"

#define ET_IGNORE_INDEX (-100)
#define ET_IMAGE_TOKEN_INDEX (-200)  // LLaVA IMAGE_TOKEN_INDEX
#define ET_VIDEO_TOKEN_INDEX (-201)
#define ET_TEMPLATE_PAD_UNK INT32_MIN  // opts.pad_id: use the tokenizer's unk id (as LLaVA)

typedef struct et_template et_template;

// Lookup by name ("vicuna_v1", "llava_v1", "llava_llama_2", "llama_3", "plain"); NULL if
// unknown. et_template_get returns ET_ERR_INVALID naming the known templates instead.
const et_template *et_template_find(const char *name);
et_status et_template_get(const char *name, const et_template **out);
const char *et_template_name(const et_template *t);
const char *et_template_system(const et_template *t);  // default system text
const char *et_template_names(void);                   // "vicuna_v1, llava_v1, ..."

// One turn: from = "human" | "gpt" | "user" | "assistant" | "system" (first turn only);
// value = UTF-8 text. Both NUL-terminated.
typedef struct {
    const char *from;
    const char *value;
} et_chat_turn;

// Read a LLaVA "conversations" array (cJSON) into *turns (malloc'd, caller frees; the
// strings are borrowed from the cJSON tree). where names the sample in error messages
// ("train.json: sample 12"). Errors: not an array, an element that is not an object, a
// from/value that is missing or not a string.
struct cJSON;
et_status et_chat_turns_from_json(const struct cJSON *conversations, const char *where,
                                  et_chat_turn **turns, size_t *n);

typedef struct {
    int64_t max_len;   // model_max_length: keep the first max_len ids (<= 0: no limit)
    int32_t image_id;  // placeholder for "<image>" (ET_IMAGE_TOKEN_INDEX)
    int32_t video_id;  // placeholder for "<video>" (ET_VIDEO_TOKEN_INDEX)
    bool move_media;   // LLaVA preprocess_multimodal (true)
    int legacy;        // tokenizer.legacy: -1 detect (default), 0, 1
    int32_t pad_id;    // ids equal to it are not counted by LLaVA's total_len check
                       // (ET_TEMPLATE_PAD_UNK = the tokenizer's unk, as LLaVA sets it)
    bool supervise_all;  // causal-LM pretraining on the rendered text (false): every
                         // token is a label except media placeholders; no round check
} et_template_opts;

void et_template_opts_init(et_template_opts *o);  // the defaults above, max_len 2048

typedef struct {
    size_t full_len;      // ids before truncation
    bool truncated;       // full_len > max_len
    size_t n_supervised;  // labels != IGNORE after truncation
    bool has_supervised;  // n_supervised > 0
    bool mismatch;        // LLaVA's "tokenization mismatch" (all labels IGNORE)
    int64_t mismatch_cur_len, mismatch_total_len;  // the two numbers LLaVA prints
    int n_images, n_videos;                        // placeholders in the full sequence
    int n_rounds;                                  // human turns templated
    bool dropped_leading_gpt;                      // a first gpt turn was dropped (as LLaVA)
} et_template_info;

// Training sample: ids (i32, placeholders included) and labels (same length).
et_status et_template_encode(const et_template *t, const et_tokenizer *tk,
                             const et_chat_turn *turns, size_t n, const et_template_opts *opts,
                             et_ids *ids, et_ids *labels, et_template_info *info);

typedef struct {
    int32_t eos_id;        // the tokenizer's EOS (-1 if none)
    int32_t stop_id;       // id of stop_str when it is one token, else -1
    const char *stop_str;  // static string: "</s>", "<|eot_id|>" or "\n"
} et_template_stop;

// Generation prompt for evaluation (ids only; no truncation). stop may be NULL.
et_status et_template_prompt(const et_template *t, const et_tokenizer *tk,
                             const et_chat_turn *turns, size_t n, const et_template_opts *opts,
                             et_ids *ids, et_template_stop *stop);

// The templated text before tokenization (what LLaVA's get_prompt / chat template renders),
// for logs. generation: the prompt form. *text is malloc'd, caller frees.
et_status et_template_render(const et_template *t, const et_tokenizer *tk,
                             const et_chat_turn *turns, size_t n, const et_template_opts *opts,
                             bool generation, char **text);

#endif
