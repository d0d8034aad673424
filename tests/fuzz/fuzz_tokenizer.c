// tests/fuzz/fuzz_tokenizer.c - libFuzzer target for et_tokenizer encode/decode.
// Loads the LLaMA-2 (legacy) and LLaMA-3 fixture tokenizers once, then encodes the input
// bytes (any bytes: invalid UTF-8 is encoded as U+FFFD per maximal invalid subsequence, see
// data/tokenizer.h) with and without the template, checks every id is a known token, decodes
// the ids (with and without skip_special) and checks the decode is valid UTF-8. For the
// byte-level tokenizer, decode(encode(x)) must give back x exactly when x is valid UTF-8
// (and names no "<|" added token, as lstrip swallows spaces).
// Seeds: tests/fuzz/corpus/tokenizer.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../data/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static et_tokenizer *g_tk[2];

// Strict UTF-8 validation (no overlongs, surrogates or code points above U+10FFFF).
static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
        if (!k || i + k > n) return false;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80) return false;
        unsigned char d = k > 1 ? (unsigned char)s[i + 1] : 0;
        if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d > 0x9F) || (c == 0xF0 && d < 0x90) ||
            (c == 0xF4 && d > 0x8F))
            return false;
        i += k;
    }
    return true;
}

// The fixtures live in tests/golden/tokenizer; find them from this file's path.
static void fixture(char *out, size_t cap, const char *name) {
    const char *f = __FILE__;
    const char *slash = strstr(f, "fuzz/fuzz_tokenizer.c");
    int dir = slash ? (int)(slash - f) : 0;
    snprintf(out, cap, "%.*s%sgolden/tokenizer/%s", dir, f, slash ? "" : "tests/", name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tk[0]) {
        const char *names[2] = {"llama2_legacy.json", "llama3.json"};
        for (int i = 0; i < 2; i++) {
            char path[4096];
            fixture(path, sizeof(path), names[i]);
            et_status s = et_tokenizer_load(path, &g_tk[i]);
            if (s) __builtin_trap();
        }
    }
    const char *text = (const char *)data;
    for (int t = 0; t < 2; t++) {
        et_tokenizer *tk = g_tk[t];
        et_ids ids = {0};
        et_tokenizer_encode(tk, text, size, t ? ET_TOK_TEMPLATE : ET_TOK_ADD_BOS, &ids);
        for (size_t i = 0; i < ids.len; i++)
            if (!et_tokenizer_id_to_token(tk, ids.data[i], NULL)) __builtin_trap();
        for (int skip = 0; skip < 2; skip++) {
            size_t n;
            char *d = et_tokenizer_decode(tk, ids.data, ids.len, skip, &n);
            if (strlen(d) > n || !valid_utf8(d, n)) __builtin_trap();
            free(d);
        }
        ids.len = 0;
        et_tokenizer_encode(tk, text, size, 0, &ids);
        // lstrip/rstrip added tokens swallow spaces, so skip inputs with "<|"
        if (t == 1 && valid_utf8(text, size) && !memmem(text, size, "<|", 2)) {
            size_t n;
            char *d = et_tokenizer_decode(tk, ids.data, ids.len, false, &n);
            if (n != size || memcmp(d, text, n) != 0) __builtin_trap();
            free(d);
        }
        et_ids_free(&ids);
    }
    return 0;
}
