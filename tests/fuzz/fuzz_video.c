// tests/fuzz/fuzz_video.c - libFuzzer target for video decoding (data/video.c: FFmpeg demux,
// packet counting, decode, frame selection, conversion to RGB).
// The input is written to a temporary file and loaded with et_video_load_file, uniform
// sampling of 4 frames and small limits (frames of at most 128 x 128, at most 256 source
// frames), then once more with fps sampling. On success every frame must have the size
// and buffer it claims and the indices must be non-decreasing and below the frame count;
// on failure the output must be zeroed.
// Seeds: tests/fuzz/corpus/video (tiny clips: mpeg4 in AVI and MP4, mjpeg in AVI, ffv1 in
// Matroska, one cut short).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../data/video.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[64];

static void remove_tmp(void) { unlink(g_path); }

static void check(const et_video *v, et_status st) {
    if (st) {
        if (v->frames || v->indices || v->times || v->n_frames) __builtin_trap();
        et_status_free(st);
        return;
    }
    if (v->n_frames < 1) __builtin_trap();
    volatile unsigned acc = 0;
    for (int i = 0; i < v->n_frames; i++) {
        const et_image *im = &v->frames[i];
        if (im->width < 1 || im->height < 1 || (int64_t)im->width * im->height > 128 * 128)
            __builtin_trap();
        if (v->indices[i] < 0 || v->indices[i] >= v->source_frames) __builtin_trap();
        if (i && v->indices[i] < v->indices[i - 1]) __builtin_trap();
        const size_t bytes = (size_t)im->width * im->height * 3;
        acc += im->data[0] + im->data[bytes - 1];
    }
    (void)acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        snprintf(g_path, sizeof g_path, "/tmp/et_fuzz_video_%d.bin", (int)getpid());
        atexit(remove_tmp);
    }
    FILE *f = fopen(g_path, "wb");
    if (!f) return 0;
    size_t w = fwrite(data, 1, size, f);
    fclose(f);
    if (w != size) return 0;
    et_video_opts o = et_video_opts_default();
    o.num_frames = 4;
    o.max_pixels = 128 * 128;
    o.max_source_frames = 256;
    o.max_out_frames = 16;
    et_video v;
    et_status st = et_video_load_file(g_path, &o, &v);
    check(&v, st);
    et_video_free(&v);
    o.sampling = ET_VIDEO_FPS;
    o.fps = 7.5;
    o.max_frames = 6;
    st = et_video_load_file(g_path, &o, &v);
    check(&v, st);
    et_video_free(&v);
    return 0;
}
