// tests/fuzz/fuzz_runconfig.c - libFuzzer target for run-config loading (train/runconfig.c).
// The input is split at its first 0x01 byte: before it, the config JSON given to
// et_run_config_parse; after it, up to 8 newline-separated key=value overrides, as the
// command line gives them. An accepted config must serialise (et_run_config_to_json) to a
// text that parses again to the same serialisation (a saved config.json reloads as it was).
// Seeds: tests/fuzz/corpus/runconfig (the shipped configs, a config with overrides, broken
// and deep ones).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../train/runconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *over[8];
    int n_over = 0;
    char *sep = memchr(buf, 0x01, size);
    if (sep) {
        *sep = '\0';
        for (char *p = sep + 1; p && *p && n_over < 8;) {
            char *nl = strchr(p, '\n');
            if (nl) *nl = '\0';
            over[n_over++] = p;
            p = nl ? nl + 1 : NULL;
        }
    }
    et_run_config c;
    et_status st = et_run_config_parse(buf, "fuzz.json", n_over, over, &c);
    free(buf);
    if (st) {
        et_status_free(st);
        return 0;
    }
    char *text = et_run_config_to_json(&c);
    et_run_config_free(&c);
    if (!text) __builtin_trap();
    et_run_config c2;
    st = et_run_config_parse(text, "saved.json", 0, NULL, &c2);
    if (st) __builtin_trap();  // what was written must read back
    char *text2 = et_run_config_to_json(&c2);
    et_run_config_free(&c2);
    if (!text2 || strcmp(text, text2) != 0) __builtin_trap();
    free(text);
    free(text2);
    return 0;
}
