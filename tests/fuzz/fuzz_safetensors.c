// tests/fuzz/fuzz_safetensors.c - libFuzzer target for the safetensors reader.
// Validates the input from memory (et_st_open_memory copies it into an exact-size buffer so
// AddressSanitizer sees any read past the end), then loads every tensor, reads its info and
// looks up the metadata. Any crash, sanitizer report or leak is a bug in the reader.
// Seeds: tests/fuzz/corpus/safetensors.
#include <stddef.h>
#include <stdint.h>

#include "../../core/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    et_st_file *f = NULL;
    et_status s = et_st_open_memory(data, size, "fuzz", &f);
    if (s) {
        et_status_free(s);
        return 0;
    }
    et_tensor *keep = NULL;
    for (int i = 0; i < et_st_num_tensors(f); i++) {
        const char *name = et_st_name(f, i);
        et_st_info info;
        s = et_st_info_of(f, name, &info);
        if (s) __builtin_trap();  // every listed name must be found
        et_tensor *t = NULL;
        s = et_st_load(f, name, &t);
        et_status_free(s);
        if (t) {
            // Touch every byte so an out-of-bounds view would be caught.
            volatile uint8_t acc = 0;
            const uint8_t *p = et_data(t);
            for (size_t k = 0; k < et_nbytes(t); k++) acc ^= p[k];
            (void)acc;
            if (!keep)
                keep = t;  // outlives et_st_close below
            else
                et_release(t);
        }
    }
    for (int i = 0; i < et_st_num_metadata(f); i++)
        (void)et_st_metadata(f, et_st_metadata_key(f, i));
    (void)et_st_metadata(f, "format");
    et_st_close(f);
    if (keep) {
        volatile uint8_t acc = 0;
        const uint8_t *p = et_data(keep);
        for (size_t k = 0; k < et_nbytes(keep); k++) acc ^= p[k];
        (void)acc;
        et_release(keep);
    }
    return 0;
}
