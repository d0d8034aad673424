// tests/test_preprocess.c - et_clip_preprocess on every code path (portable C, AVX2,
// AVX-512) against a plain reference written from Pillow's and HF's definitions.
//
// The reference materialises everything: expand2square, Pillow's bicubic resize of the whole
// image (horizontal pass over every row, then vertical, int64 accumulators), HF's center
// crop with zero padding, then rescale + normalize per value. The library computes only the
// crop window, in int32, with SIMD gathers and padded tables; it must give the same u8 and
// f32 values bit for bit on random images of many shapes (upscale, downscale, one unchanged
// dimension, crop larger than the resize, LLaVA pad, 1-pixel images, noise that overshoots
// and clamps).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/image.h"
#include "../data/preprocess.h"
#include "test_util.h"

// ---- the reference -------------------------------------------------------------------

static double ref_bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for in -> out: per output xmin, n and
// n fixed-point weights (ksize apart).
static int ref_coeffs(int in, int out, int **bounds, int32_t **kk) {
    double scale = (double)in / out, fs = scale < 1.0 ? 1.0 : scale, support = 2.0 * fs;
    int ksize = (int)ceil(support) * 2 + 1;
    *bounds = malloc(sizeof(int) * 2 * (size_t)out);
    *kk = calloc((size_t)ksize * (size_t)out, sizeof(int32_t));
    double *k = malloc(sizeof(double) * (size_t)ksize);
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) ww += k[x] = ref_bicubic((x + xmin - center + 0.5) / fs);
        for (int x = 0; x < xmax; x++) {
            double v = (ww != 0.0 ? k[x] / ww : k[x]) * (1 << 22);
            (*kk)[(size_t)xx * ksize + x] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
        }
        (*bounds)[2 * xx] = xmin;
        (*bounds)[2 * xx + 1] = xmax;
    }
    free(k);
    return ksize;
}

static uint8_t ref_clip(int64_t acc) {
    int64_t v = acc >> 22;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Pillow's ImagingResample(BICUBIC) of an RGB image (w x h) to ow x oh; returns malloc'd HWC.
static uint8_t *ref_resize(const uint8_t *in, int w, int h, int ow, int oh) {
    // horizontal (skipped when the width does not change), every row
    uint8_t *t = malloc((size_t)ow * h * 3);
    if (ow == w) {
        memcpy(t, in, (size_t)w * h * 3);
    } else {
        int *b;
        int32_t *kk;
        int ks = ref_coeffs(w, ow, &b, &kk);
        for (int y = 0; y < h; y++)
            for (int xx = 0; xx < ow; xx++)
                for (int c = 0; c < 3; c++) {
                    int64_t s = 1 << 21;
                    for (int x = 0; x < b[2 * xx + 1]; x++)
                        s += (int64_t)in[((size_t)y * w + b[2 * xx] + x) * 3 + c] *
                             kk[(size_t)xx * ks + x];
                    t[((size_t)y * ow + xx) * 3 + c] = ref_clip(s);
                }
        free(b);
        free(kk);
    }
    uint8_t *o = malloc((size_t)ow * oh * 3);
    if (oh == h) {
        memcpy(o, t, (size_t)ow * h * 3);
    } else {
        int *b;
        int32_t *kk;
        int ks = ref_coeffs(h, oh, &b, &kk);
        for (int yy = 0; yy < oh; yy++)
            for (int i = 0; i < ow * 3; i++) {
                int64_t s = 1 << 21;
                for (int y = 0; y < b[2 * yy + 1]; y++)
                    s += (int64_t)t[(size_t)(b[2 * yy] + y) * ow * 3 + i] * kk[(size_t)yy * ks + y];
                o[(size_t)yy * ow * 3 + i] = ref_clip(s);
            }
        free(b);
        free(kk);
    }
    free(t);
    return o;
}

static int floordiv2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

// The whole pipeline: u8 [S, S, 3] and f32 [3, S, S] (malloc'd).
static void ref_preprocess(const et_image *im, const et_clip_preproc *p, uint8_t **u8,
                           float **f32) {
    int w = im->width, h = im->height;
    uint8_t *src = im->data, *sq = NULL;
    if (p->pad_square && w != h) {
        int m = w > h ? w : h, x0 = (m - w) / 2, y0 = (m - h) / 2;
        sq = malloc((size_t)m * m * 3);
        for (size_t i = 0; i < (size_t)m * m; i++) memcpy(sq + 3 * i, p->pad_rgb, 3);
        for (int y = 0; y < h; y++)
            memcpy(sq + ((size_t)(y + y0) * m + x0) * 3, src + (size_t)y * w * 3, (size_t)w * 3);
        src = sq;
        w = h = m;
    }
    int rw, rh, S = p->crop;
    et_clip_resize_size(w, h, p->resize_shortest, &rw, &rh);
    uint8_t *rs = ref_resize(src, w, h, rw, rh);
    int top = floordiv2(rh - S), left = floordiv2(rw - S);
    *u8 = calloc((size_t)S * S * 3, 1);
    *f32 = malloc(sizeof(float) * 3 * (size_t)S * S);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int sy = y + top, sx = x + left;
            if (sy >= 0 && sy < rh && sx >= 0 && sx < rw)
                memcpy(*u8 + ((size_t)y * S + x) * 3, rs + ((size_t)sy * rw + sx) * 3, 3);
            for (int c = 0; c < 3; c++) {
                float v = (float)((double)(*u8)[((size_t)y * S + x) * 3 + c] * (1.0 / 255.0));
                (*f32)[((size_t)c * S + y) * S + x] = (v - p->mean[c]) / p->std[c];
            }
        }
    free(rs);
    free(sq);
}

// ---- tests ---------------------------------------------------------------------------

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

// kind 0: smooth gradient + mild noise; 1: uniform noise (big overshoots, clamping);
// 2: blocks of 0 and 255 (hard edges).
static et_image random_image(int w, int h, int kind) {
    et_image im;
    et_status s = et_image_alloc(w, h, &im);
    ET_ASSERT(s == NULL, "alloc");
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int v;
                if (kind == 0)
                    v = (x * 255 / (w > 1 ? w - 1 : 1) + y * 97 / (h > 1 ? h - 1 : 1) + c * 40) %
                            256 +
                        (int)(rnd() % 9) - 4;
                else if (kind == 1)
                    v = (int)(rnd() % 256);
                else
                    v = ((x / 3 + y / 2 + c) & 1) ? 255 : 0;
                im.data[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return im;
}

static const et_preproc_simd k_paths[] = {ET_PREPROC_PORTABLE, ET_PREPROC_AVX2, ET_PREPROC_AVX512};

// Every available path against the reference; returns the number of mismatching cases.
static int check_case(const et_image *im, const et_clip_preproc *p, const char *what) {
    uint8_t *ru8;
    float *rf;
    ref_preprocess(im, p, &ru8, &rf);
    int S = p->crop, bad = 0;
    for (size_t k = 0; k < sizeof(k_paths) / sizeof(k_paths[0]); k++) {
        if (k_paths[k] > et_preproc_simd_best()) continue;
        et_tensor *u8 = NULL, *f32 = NULL;
        et_status s = et_clip_preprocess_simd(im, p, k_paths[k], &u8, &f32);
        CHECK(s == NULL, "%s: %s", what, et_status_msg(s));
        et_status_free(s);
        if (!u8 || !f32) {
            bad++;
            continue;
        }
        size_t nb = (size_t)S * S * 3, first = nb;
        const uint8_t *a = et_data(u8);
        const float *f = et_data(f32);
        for (size_t i = 0; i < nb && first == nb; i++)
            if (a[i] != ru8[i]) first = i;
        size_t ffirst = nb;
        for (size_t i = 0; i < nb && ffirst == nb; i++)
            if (memcmp(&f[i], &rf[i], sizeof(float)) != 0) ffirst = i;
        CHECK(first == nb, "%s on %s: u8 differs first at %zu (%d, want %d)", what,
              et_preproc_simd_name(k_paths[k]), first, first < nb ? a[first] : 0,
              first < nb ? ru8[first] : 0);
        CHECK(ffirst == nb, "%s on %s: f32 differs first at %zu", what,
              et_preproc_simd_name(k_paths[k]), ffirst);
        bad += first != nb || ffirst != nb;
        // f32 alone (the training path) gives the same floats
        et_tensor *f2 = NULL;
        s = et_clip_preprocess_simd(im, p, k_paths[k], NULL, &f2);
        CHECK(s == NULL && f2 && memcmp(et_data(f2), f, nb * sizeof(float)) == 0,
              "%s on %s: f32-only output differs", what, et_preproc_simd_name(k_paths[k]));
        et_status_free(s);
        et_release(f2);
        et_release(u8);
        et_release(f32);
    }
    free(ru8);
    free(rf);
    return bad;
}

static void test_paths_match_reference(void) {
    printf("  code paths: best on this CPU is %s\n", et_preproc_simd_name(et_preproc_simd_best()));
    // w, h, resize_shortest, crop
    const int shapes[][4] = {
        {800, 600, 336, 336}, {512, 512, 336, 336}, {451, 300, 336, 336}, {60, 80, 336, 336},
        {280, 427, 336, 336}, {336, 500, 336, 336}, {700, 336, 336, 336}, {336, 336, 336, 336},
        {1, 1, 16, 16},       {1, 37, 24, 24},      {37, 1, 24, 24},      {3, 2, 40, 30},
        {97, 45, 32, 48},     {45, 97, 50, 17},     {1000, 37, 24, 20},   {17, 1500, 21, 21},
        {640, 480, 224, 224}, {29, 31, 33, 35},     {2000, 1999, 16, 16}, {123, 77, 77, 100},
    };
    int cases = 0, bad = 0;
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        for (int kind = 0; kind < 3; kind++)
            for (int pad = 0; pad < 2; pad++) {
                et_image im = random_image(shapes[i][0], shapes[i][1], kind);
                et_clip_preproc p;
                et_clip_preproc_default(&p, shapes[i][2]);
                p.crop = shapes[i][3];
                p.pad_square = pad;
                if (kind == 2) memcpy(p.pad_rgb, (uint8_t[3]){255, 0, 7}, 3);
                char what[128];
                snprintf(what, sizeof what, "%dx%d -> %d crop %d kind %d pad %d", im.width,
                         im.height, p.resize_shortest, p.crop, kind, pad);
                bad += check_case(&im, &p, what);
                cases++;
                et_image_free(&im);
            }
    printf("  %d cases, %d mismatching\n", cases, bad);
}

// et_image_resize_bicubic (the whole image, u8 HWC) against the reference on every shape.
static void test_resize_matches_reference(void) {
    const int shapes[][4] = {{40, 30, 91, 13},    {13, 91, 40, 30}, {300, 200, 300, 77},
                             {300, 200, 55, 200}, {1, 1, 9, 7},     {64, 48, 64, 48}};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        et_image im = random_image(shapes[i][0], shapes[i][1], 1), out;
        int ow = shapes[i][2], oh = shapes[i][3];
        uint8_t *want = ref_resize(im.data, im.width, im.height, ow, oh);
        et_status s = et_image_resize_bicubic(&im, ow, oh, &out);
        CHECK(s == NULL, "%s", et_status_msg(s));
        et_status_free(s);
        CHECK(s == NULL && out.width == ow && out.height == oh &&
                  memcmp(out.data, want, (size_t)ow * oh * 3) == 0,
              "resize %dx%d -> %dx%d differs from the reference", im.width, im.height, ow, oh);
        free(want);
        et_image_free(&out);
        et_image_free(&im);
    }
}

static void test_unavailable_path(void) {
    et_image im = random_image(8, 8, 0);
    et_clip_preproc p;
    et_clip_preproc_default(&p, 8);
    et_tensor *f32 = NULL;
    et_status s = et_clip_preprocess_simd(&im, &p, (et_preproc_simd)99, NULL, &f32);
    CHECK(et_status_code(s) == ET_ERR_UNSUPPORTED && f32 == NULL, "unknown path refused: %s",
          et_status_msg(s));
    et_status_free(s);
    if (et_preproc_simd_best() < ET_PREPROC_AVX512) {
        s = et_clip_preprocess_simd(&im, &p, ET_PREPROC_AVX512, NULL, &f32);
        CHECK(et_status_code(s) == ET_ERR_UNSUPPORTED && f32 == NULL, "avx512 refused");
        et_status_free(s);
    }
    CHECK(strcmp(et_preproc_simd_name(ET_PREPROC_AVX2), "avx2") == 0, "name");
    et_image_free(&im);
}

int main(void) {
    RUN(test_paths_match_reference);
    RUN(test_resize_matches_reference);
    RUN(test_unavailable_path);
    return test_summary();
}
