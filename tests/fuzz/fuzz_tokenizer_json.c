// tests/fuzz/fuzz_tokenizer_json.c - libFuzzer target for the tokenizer.json reader.
// Parses the input as tokenizer.json; on success encodes and decodes a fixed string that
// touches added tokens, byte fallback and the regex. Any crash, sanitizer report or leak is
// a bug. Seeds: tests/fuzz/corpus/tokenizer_json (small valid and broken files).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "../../data/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = malloc(size + 1);  // exact-size copy so ASan sees overreads
    for (size_t i = 0; i < size; i++) json[i] = (char)data[i];
    json[size] = 0;
    et_tokenizer *tk = NULL;
    et_status s = et_tokenizer_from_json(json, size, "fuzz.json", &tk);
    free(json);
    if (s) {
        et_status_free(s);
        return 0;
    }
    static const char text[] = " Hello <s>wor\xF0\x9F\x98\x80ld's  12345\n\n\t<image> x\xFF";
    et_ids ids = {0};
    et_tokenizer_encode(tk, text, sizeof(text) - 1, ET_TOK_TEMPLATE | ET_TOK_ADD_EOS, &ids);
    char *d = et_tokenizer_decode(tk, ids.data, ids.len, false, NULL);
    free(d);
    et_ids_free(&ids);
    et_tokenizer_free(tk);
    return 0;
}
