// tests/fuzz/fuzz_store.c - libFuzzer target for the prepared-store (HDF5) reader.
// The input is written to a temporary file and opened with et_store_open; when the open
// succeeds, the schema is checked for the ranges data/store.h promises and the first
// samples are read with et_store_get (each one either fails with a status or gives a
// record whose counts agree with et_store_lengths). Every path must end in a status, never
// in a crash, a sanitizer report or a leak in emotune's code.
// Seeds: tests/fuzz/corpus/store (small stores written by et_store_create: text, image and
// video samples, landmarks, with and without compression).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../data/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[64];

static void remove_tmp(void) { unlink(g_path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        snprintf(g_path, sizeof g_path, "/tmp/et_fuzz_store_%d.h5", (int)getpid());
        atexit(remove_tmp);
    }
    FILE *f = fopen(g_path, "wb");
    if (!f) return 0;
    size_t w = fwrite(data, 1, size, f);
    fclose(f);
    if (w != size) return 0;
    et_store *s = NULL;
    et_status st = et_store_open(g_path, &s);
    if (st) {
        if (s) __builtin_trap();  // no store on failure
        et_status_free(st);
        return 0;
    }
    const et_store_schema *sc = et_store_get_schema(s);
    if (sc->image_size < 1 || sc->image_size > 8192 || sc->landmark_dim < 0 ||
        sc->landmark_dim > 65536)
        __builtin_trap();
    const int64_t n = et_store_size(s);
    if (n < 0) __builtin_trap();
    for (int64_t i = 0; i < n && i < 16; i++) {
        int64_t nt = 0, ni = 0;
        int kind = 0;
        et_store_lengths(s, i, &nt, &ni, &kind);
        et_store_record r;
        st = et_store_get(s, i, &r);
        if (st) {
            if (r.ids || r.labels || r.pixels || r.landmarks || r.id) __builtin_trap();
            et_status_free(st);
            continue;
        }
        if (r.n_tokens != nt || r.n_images != ni) __builtin_trap();
        volatile int64_t acc = 0;
        for (int64_t t = 0; t < r.n_tokens; t++) acc += r.ids[t] + r.labels[t];
        const size_t px = (size_t)r.n_images * (size_t)sc->image_size * sc->image_size * 3;
        for (size_t p = 0; p < px; p += 4096) acc += r.pixels[p];
        if (r.has_landmarks)
            for (int d = 0; d < sc->landmark_dim; d++) acc += (int64_t)(r.landmarks[d] != 0);
        acc += (int64_t)strlen(r.id) + (int64_t)strlen(r.source) + (int64_t)strlen(r.label) +
               (int64_t)strlen(r.reference) + (int64_t)strlen(r.gender) + (int64_t)strlen(r.race);
        (void)acc;
        et_store_record_free(&r);
    }
    et_store_close(s);
    return 0;
}
