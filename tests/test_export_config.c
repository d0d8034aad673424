// tests/test_export_config.c - the HF config.json files export writes: float-typed fields are
// JSON floats (8.0, 500000.0, not 8 and 500000, which transformers reads as ints and warns
// about), every value reads back the same, and config.c's messages print numbers as typed.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../train/io/export.h"
#include "../train/models/config.h"
#include "test_util.h"

// The text after `"key":` (skipping whitespace), up to the next ',' '\n' or '}'.
static void raw_value(const char *json, const char *key, char *out, size_t n) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    out[0] = 0;
    if (!p) return;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t') p++;
    size_t k = 0;
    while (p[k] && p[k] != ',' && p[k] != '\n' && p[k] != '}' && k + 1 < n) k++;
    memcpy(out, p, k), out[k] = 0;
}

#define CHECK_RAW(json, key, want)                                                               \
    do {                                                                                         \
        char got_[64];                                                                           \
        raw_value((json), (key), got_, sizeof got_);                                             \
        CHECK(!strcmp(got_, (want)), "%s: written as \"%s\", want \"%s\"", (key), got_, (want)); \
    } while (0)

static void test_llama_config_floats(void) {
    et_llama_config g = et_llama_config_default();
    g.vocab_size = 1024, g.hidden_size = 128, g.intermediate_size = 344;
    g.num_hidden_layers = 2, g.num_attention_heads = 4, g.num_key_value_heads = 4;
    g.head_dim = 32, g.max_position_embeddings = 131072;
    g.rms_norm_eps = 1e-5, g.rope_theta = 500000.0;
    g.rope_kind = ET_ROPE_LLAMA3, g.rope_factor = 8.0, g.rope_low_freq_factor = 1.0;
    g.rope_high_freq_factor = 4.0, g.rope_original_max_pos = 8192;
    char *j = et_export_llama_config_json(&g, ET_BF16);
    CHECK_RAW(j, "factor", "8.0");
    CHECK_RAW(j, "low_freq_factor", "1.0");
    CHECK_RAW(j, "high_freq_factor", "4.0");
    CHECK_RAW(j, "rope_theta", "500000.0");
    CHECK_RAW(j, "rms_norm_eps", "1e-05");
    CHECK_RAW(j, "attention_dropout", "0.0");
    CHECK_RAW(j, "initializer_range", "0.02");
    // integer fields stay integers
    CHECK_RAW(j, "hidden_size", "128");
    CHECK_RAW(j, "original_max_position_embeddings", "8192");
    CHECK_RAW(j, "max_position_embeddings", "131072");
    // valid JSON that reads back as the same config
    cJSON *root = cJSON_Parse(j);
    CHECK(root != NULL, "not valid JSON:\n%s", j);
    cJSON_Delete(root);
    et_llama_config back;
    et_status st = et_llama_config_parse(j, "config.json", &back);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    if (!st) {
        CHECK(back.rope_theta == 500000.0 && back.rope_factor == 8.0 && back.rms_norm_eps == 1e-5 &&
              back.rope_kind == ET_ROPE_LLAMA3);
        CHECK(back.rope_high_freq_factor == 4.0 && back.rope_original_max_pos == 8192);
    }
    free(j);
    // an odd value keeps every digit it needs
    g.rope_kind = ET_ROPE_DEFAULT, g.rope_theta = 10000.5, g.rms_norm_eps = 1.0 / 3.0;
    j = et_export_llama_config_json(&g, ET_F32);
    CHECK_RAW(j, "rope_theta", "10000.5");
    CHECK_RAW(j, "rms_norm_eps", "0.3333333333333333");
    CHECK(et_llama_config_parse(j, "config.json", &back) == NULL && back.rms_norm_eps == 1.0 / 3.0);
    free(j);
}

static void test_clip_config_floats(void) {
    et_clip_config v = {.hidden_size = 96,
                        .intermediate_size = 384,
                        .num_layers = 3,
                        .num_heads = 4,
                        .num_channels = 3,
                        .image_size = 64,
                        .patch_size = 8,
                        .layer_norm_eps = 1e-5,
                        .act = ET_CLIP_QUICK_GELU};
    char *j = et_export_clip_config_json(&v, ET_F32);
    CHECK_RAW(j, "layer_norm_eps", "1e-05");
    CHECK_RAW(j, "initializer_factor", "1.0");
    CHECK_RAW(j, "dropout", "0.0");
    CHECK_RAW(j, "image_size", "64");
    cJSON *root = cJSON_Parse(j);
    CHECK(root != NULL, "not valid JSON:\n%s", j);
    cJSON_Delete(root);
    free(j);
}

// config.c names a bad number as it was written, not as %g rounds it.
static void test_config_messages(void) {
    const char *cases[][2] = {
        {"{\"vocab_size\": 1048576.5, \"hidden_size\": 8, \"intermediate_size\": 8, "
         "\"num_hidden_layers\": 1, \"num_attention_heads\": 2}",
         "field 'vocab_size': expected a positive integer, got 1048576.5"},
        {"{\"vocab_size\": 8, \"hidden_size\": 0.1, \"intermediate_size\": 8, "
         "\"num_hidden_layers\": 1, \"num_attention_heads\": 2}",
         "got 0.1"},
        {"{\"vocab_size\": 8, \"hidden_size\": 8, \"intermediate_size\": 8, "
         "\"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"rope_scaling\": {\"rope_type\": "
         "\"llama3\", \"factor\": 8, \"low_freq_factor\": 4, \"high_freq_factor\": 1.5, "
         "\"original_max_position_embeddings\": 8192}}",
         "high_freq_factor' (1.5) must exceed low_freq_factor (4)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        et_llama_config c;
        et_status st = et_llama_config_parse(cases[i][0], "config.json", &c);
        CHECK(st && strstr(et_status_msg(st), cases[i][1]), "got \"%s\", want \"%s\"",
              st ? et_status_msg(st) : "accepted", cases[i][1]);
        et_status_free(st);
    }
}

int main(void) {
    RUN(test_llama_config_floats);
    RUN(test_clip_config_floats);
    RUN(test_config_messages);
    return test_summary();
}
