// data/tokenizer.h - HF tokenizer.json reader and BPE tokenizer (LLaMA-2 and LLaMA-3 families).
// defines: et_tokenizer, et_ids, et_tokenizer_load, et_tokenizer_from_json, et_tokenizer_free,
//          et_tokenizer_encode, et_tokenizer_decode, et_tokenizer_token_to_id,
//          et_tokenizer_id_to_token, et_tokenizer_is_special, et_tokenizer_bos_id,
//          et_tokenizer_eos_id, et_tokenizer_unk_id, et_tokenizer_vocab_size,
//          et_tokenizer_set_bos_eos, et_tokenizer_llama3_match, et_ids_push, et_ids_free
//
// Contract: ids equal those of HF `tokenizers` 0.20.3 (Tokenizer.encode(text,
// add_special_tokens=...).ids) and decode equals Tokenizer.decode for the supported
// components (tests/test_golden_tokenizer.c checks this on 10,500 lines):
//   model          BPE: vocab, merges ("a b" strings or [a, b] pairs), unk_token, fuse_unk,
//                  byte_fallback, ignore_merges (dropout must be null/0; no subword prefix or
//                  suffix)
//   normalizer     null, Sequence, Prepend, Replace (String pattern)
//   pre_tokenizer  null, Sequence, Metaspace (prepend_scheme always/first/never, split),
//                  Split with exactly the LLaMA-3 regex (Isolated, not inverted),
//                  ByteLevel (use_regex false)
//   post_processor null, TemplateProcessing ("single"), Sequence of those and ByteLevel
//   decoder        null, Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace
//   added_tokens   special / non-special, normalized, lstrip, rstrip, single_word; ids are
//                  assigned as HF does (the vocab id if the content is in the vocab)
// Anything else fails to load with ET_ERR_UNSUPPORTED naming the field.
//
// Invalid UTF-8 input: encode first replaces each maximal invalid subsequence with U+FFFD
// (the same rule as Python's bytes.decode("utf-8", "replace") and Rust's
// String::from_utf8_lossy), then encodes the result. Encode never fails. Decode output is
// always valid UTF-8; ids that name no token are skipped (as HF does).
//
// Ownership: et_tokenizer_load/from_json give the caller a tokenizer to et_tokenizer_free.
// Encode appends to a caller-owned et_ids (free with et_ids_free); decode returns a
// malloc'd NUL-terminated string the caller frees. Strings from id_to_token belong to the
// tokenizer. Allocation failure aborts.
//
// Thread safety: after loading, a tokenizer may be used from any number of threads at once
// (the word cache is guarded by a mutex); et_tokenizer_set_bos_eos and et_tokenizer_free
// must not race with other calls.
#ifndef ET_TOKENIZER_H
#define ET_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct et_tokenizer et_tokenizer;

// A growable array of token ids. Zero-initialise ({0}) before first use.
typedef struct {
    int32_t *data;
    size_t len, cap;
} et_ids;

void et_ids_push(et_ids *v, int32_t id);
void et_ids_free(et_ids *v);  // frees the storage and zeroes *v

// Load tokenizer.json from a file. Errors name the file, the field and (for bad JSON) the line.
et_status et_tokenizer_load(const char *path, et_tokenizer **out);
// Same from memory; name is used in error messages (e.g. the path it came from).
et_status et_tokenizer_from_json(const char *json, size_t len, const char *name,
                                 et_tokenizer **out);
void et_tokenizer_free(et_tokenizer *tk);

// Encode flags.
enum {
    ET_TOK_TEMPLATE = 1u,  // apply the post-processor template (HF add_special_tokens=True)
    ET_TOK_ADD_BOS = 2u,   // prepend the BOS id (if the tokenizer has one)
    ET_TOK_ADD_EOS = 4u,   // append the EOS id (if the tokenizer has one)
};

// Encode len bytes of text and append the ids to *out. Special tokens written in the text
// ("<s>", "<|eot_id|>", ...) become their ids.
void et_tokenizer_encode(const et_tokenizer *tk, const char *text, size_t len, unsigned flags,
                         et_ids *out);
// Decode n ids into a malloc'd NUL-terminated UTF-8 string (length in *out_len if non-NULL).
// skip_special drops tokens marked special (HF skip_special_tokens).
char *et_tokenizer_decode(const et_tokenizer *tk, const int32_t *ids, size_t n, bool skip_special,
                          size_t *out_len);

// Lookups: token_to_id returns -1 if the token is unknown; id_to_token returns NULL if the
// id names no token (its byte length in *len if non-NULL). Added tokens take precedence.
int32_t et_tokenizer_token_to_id(const et_tokenizer *tk, const char *tok, size_t len);
const char *et_tokenizer_id_to_token(const et_tokenizer *tk, int32_t id, size_t *len);
bool et_tokenizer_is_special(const et_tokenizer *tk, int32_t id);
// BOS: the first special token of the template ("single"), else "<s>" or
// "<|begin_of_text|>". EOS: the first special token after $A in the template, else "</s>" or
// "<|end_of_text|>". unk: the model's unk_token. -1 where there is none.
int32_t et_tokenizer_bos_id(const et_tokenizer *tk);
int32_t et_tokenizer_eos_id(const et_tokenizer *tk);
int32_t et_tokenizer_unk_id(const et_tokenizer *tk);
void et_tokenizer_set_bos_eos(et_tokenizer *tk, int32_t bos, int32_t eos);
// One past the largest id (model vocab and added tokens).
int32_t et_tokenizer_vocab_size(const et_tokenizer *tk);

// The LLaMA-3 pre-tokenizer regex (exposed for tests): the end of the match that starts at
// byte i of the valid UTF-8 string s[0, n), i < n. Matches tile the string (no gaps).
size_t et_tokenizer_llama3_match(const char *s, size_t n, size_t i);

#endif
