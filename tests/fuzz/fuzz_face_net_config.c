// tests/fuzz/fuzz_face_net_config.c - libFuzzer target for the face network's config parser
// (train/models/face_net.c). The input is the config.json text. An accepted config must
// hold the invariants the forward relies on: stages within bounds, every stage width a
// multiple of its heads, image_size a multiple of patch_size, an even fuse_dim that the
// decoder's heads divide (at full and downsampled width).
// Seeds: tests/fuzz/corpus/face_net_config (the golden configs, broken variants).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../train/models/face_net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    et_face_net_config c;
    et_status st = et_face_net_config_from_json(buf, "fuzz.json", &c);
    free(buf);
    if (st) {
        if (!et_status_msg(st) || !strstr(et_status_msg(st), "fuzz.json")) __builtin_trap();
        et_status_free(st);
        return 0;
    }
    if (c.n_stages < 1 || c.n_stages > ET_FACE_NET_MAX_STAGES) __builtin_trap();
    for (int i = 0; i < c.n_stages; i++)
        if (c.depths[i] < 1 || c.heads[i] < 1 || (c.embed_dim << i) % c.heads[i]) __builtin_trap();
    if (c.image_size % c.patch_size || c.fuse_dim % 2 || c.fuse_dim % c.dec_heads ||
        (c.fuse_dim / c.attn_down) % c.dec_heads || c.window < 1)
        __builtin_trap();
    return 0;
}
