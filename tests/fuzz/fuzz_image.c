// tests/fuzz/fuzz_image.c - libFuzzer target for the JPEG/PNG decoders (data/image.h).
// Decodes the input from memory with a small pixel limit (so hostile headers cannot make a
// run slow or large), touches every decoded byte, and on success runs the CLIP
// preprocessing on it (shortest edge 16; the input's last byte picks the LLaVA pad, the
// code path - portable, AVX2, AVX-512 where the CPU has it - and a crop of 12..19, so crops
// larger than the resize are covered too). Any
// crash, sanitizer report or leak is a bug. Seeds: tests/fuzz/corpus/image (small JPEGs and
// PNGs of every decoder path, written by tools/golden/gen_images.py).
#include <stddef.h>
#include <stdint.h>

#include "../../data/image.h"
#include "../../data/preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    et_image_opts opts = {.max_pixels = 1 << 16};
    et_image img;
    et_status s = et_image_decode_memory(data, size, "fuzz", &opts, &img);
    if (s) {
        if (img.data || img.width || img.height) __builtin_trap();  // *out zeroed on failure
        et_status_free(s);
        return 0;
    }
    if (!img.data || img.width <= 0 || img.height <= 0 ||
        (int64_t)img.width * img.height > opts.max_pixels)
        __builtin_trap();
    volatile uint8_t acc = 0;
    for (size_t i = 0; i < (size_t)img.width * (size_t)img.height * 3; i++) acc ^= img.data[i];
    (void)acc;
    et_clip_preproc p;
    et_clip_preproc_default(&p, 16);
    uint8_t last = size > 0 ? data[size - 1] : 0;
    p.pad_square = last & 1;
    p.crop = 12 + ((last >> 3) & 7);
    et_preproc_simd simd = (et_preproc_simd)(ET_PREPROC_PORTABLE + (last >> 1) % 3);
    if (simd > et_preproc_simd_best()) simd = et_preproc_simd_best();
    et_tensor *u8 = NULL, *f32 = NULL;
    s = et_clip_preprocess_simd(&img, &p, simd, &u8, &f32);
    et_status_free(s);  // an extreme aspect ratio may be refused
    et_release(u8);
    et_release(f32);
    et_image_free(&img);
    return 0;
}
