// tests/fuzz/fuzz_checkpoint_state.c - libFuzzer target for a checkpoint's state.json, read
// through the public reader et_trainckpt_read (train/checkpoint.c).
// A temporary step directory holds a valid trainables.safetensors (one F32 tensor "w" of
// shape [2] = {1, 2}); the input becomes its state.json. The reader must either refuse it
// with a status, leaving the state and the parameter untouched, or accept it and load "w".
// Seeds: tests/fuzz/corpus/checkpoint_state (state.json files as et_trainckpt_write writes
// them, and variants).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../core/safetensors.h"
#include "../../core/tensor.h"
#include "../../train/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];

static void remove_tmp(void) {
    char p[128];
    snprintf(p, sizeof p, "%s/state.json", g_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/trainables.safetensors", g_dir);
    unlink(p);
    rmdir(g_dir);
}

static int setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/et_fuzz_ckpt_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    atexit(remove_tmp);
    char p[128];
    snprintf(p, sizeof p, "%s/trainables.safetensors", g_dir);
    et_tensor *w = et_from_data(ET_F32, 1, (int64_t[]){2}, (float[]){1, 2});
    const char *names[1] = {"w"};
    et_status st = et_st_save(p, 1, names, &w, 0, NULL);
    et_release(w);
    if (st) {
        et_status_free(st);
        return -1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_dir[0] && setup() != 0) return 0;
    char p[128];
    snprintf(p, sizeof p, "%s/state.json", g_dir);
    FILE *f = fopen(p, "wb");
    if (!f) return 0;
    size_t n = fwrite(data, 1, size, f);
    fclose(f);
    if (n != size) return 0;
    et_tensor *w = et_zeros(ET_F32, 1, (int64_t[]){2});
    const char *names[1] = {"w"};
    et_train_state s;
    memset(&s, 0xab, sizeof s);
    et_train_state before = s;
    et_status st = et_trainckpt_read(g_dir, &s, 1, names, &w, NULL);
    const float *v = (const float *)et_data(w);
    if (st) {
        if (memcmp(&s, &before, sizeof s) != 0 || v[0] != 0 || v[1] != 0) __builtin_trap();
        et_status_free(st);
    } else if (v[0] != 1 || v[1] != 2) {
        __builtin_trap();
    }
    et_release(w);
    return 0;
}
