// data/preprocess.c - see preprocess.h
//
// How the resize is computed (et_clip_preprocess, et_image_resize_bicubic)
// - The output window is the part of the resized image that is kept: the center crop's
//   intersection with the resized image (all of it for a plain resize). The horizontal pass
//   computes only the window's columns, for only the canvas rows the window's rows read;
//   the vertical pass computes only the window's rows, into planar u8 and (CLIP) straight
//   into the normalised f32 planes.
// - Pillow's arithmetic, exactly: coefficients in 22-bit fixed point, accumulators that start
//   at 1 << 21, an arithmetic shift right by 22, a clamp to 0..255, a u8 intermediate
//   between the passes. int32 accumulators, as Pillow's: no partial sum can overflow
//   (|sum| <= 2^21 + 255 * sum|k| < 2^31), and integer addition in any order gives Pillow's
//   sum, so the SIMD kernels (any tap order, the padding taps of weight 0) are exact too.
// - Pillow skips the pass of a dimension whose size does not change; here that pass is one
//   tap of weight 1 << 22: (2^21 + v * 2^22) >> 22 = v, the same pixels.
// - The horizontal pass runs as a vertical one: the image rows and columns its taps read are
//   deinterleaved into planes and transposed (one row per image column), summed row by row
//   with one SIMD lane per image row, and the result is transposed back. So both passes
//   are one kernel (vrow: widen 8 or 16 u8 to int32, multiply by the broadcast tap, add),
//   with no gathers (slow on the CPUs we measured).
// - Code paths: portable C, AVX2 and AVX-512 (F + BW) (__attribute__((target)), chosen at
//   run time with __builtin_cpu_supports; the build stays -march=x86-64-v2). They differ
//   only in the kernels (vrow, deinterleave, transpose) and give the same bytes.
#include "preprocess.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ET_PREPROC_X86 1
#else
#define ET_PREPROC_X86 0
#endif

#define ET_PREPROC_MAX_SIDE 8192       // resize / crop outputs
#define ET_PREPROC_MAX_PAD_SIDE 65536  // the LLaVA pad square (never materialised)
#define ET_RESAMPLE_BITS 22            // fixed-point precision of the resampling coefficients
#define ET_RESAMPLE_HALF (1 << (ET_RESAMPLE_BITS - 1))
#define ET_WPAD 16  // window rows are padded to a multiple of this (one AVX-512 int32 vector)
#define ET_BAND 64  // image rows per band of the horizontal pass (a multiple of ET_WPAD)

void et_clip_preproc_default(et_clip_preproc *p, int size) {
    memset(p, 0, sizeof(*p));
    p->resize_shortest = size;
    p->crop = size;
    p->pad_square = false;
    const float mean[3] = {ET_CLIP_MEAN_R, ET_CLIP_MEAN_G, ET_CLIP_MEAN_B};
    const float std[3] = {ET_CLIP_STD_R, ET_CLIP_STD_G, ET_CLIP_STD_B};
    for (int c = 0; c < 3; c++) {
        p->mean[c] = mean[c];
        p->std[c] = std[c];
        p->pad_rgb[c] = (uint8_t)(int)((double)mean[c] * 255.0);  // 122, 116, 104
    }
}

void et_clip_resize_size(int width, int height, int shortest, int *out_w, int *out_h) {
    int s = width <= height ? width : height, l = width <= height ? height : width;
    // Python: int(shortest * long / short), a correctly rounded double then truncated.
    int new_long = (int)((double)((int64_t)shortest * l) / (double)s);
    if (width <= height) {
        *out_w = shortest;
        *out_h = new_long;
    } else {
        *out_w = new_long;
        *out_h = shortest;
    }
}

// ---- code paths ----------------------------------------------------------------------

et_preproc_simd et_preproc_simd_best(void) {
    static atomic_int best = -1;
    int b = atomic_load(&best);
    if (b < 0) {
        b = ET_PREPROC_PORTABLE;
#if ET_PREPROC_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2")) b = ET_PREPROC_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
            b = ET_PREPROC_AVX512;
#endif
        atomic_store(&best, b);
    }
    return (et_preproc_simd)b;
}

const char *et_preproc_simd_name(et_preproc_simd s) {
    switch (s) {
        case ET_PREPROC_AUTO:
            return "auto";
        case ET_PREPROC_PORTABLE:
            return "portable";
        case ET_PREPROC_AVX2:
            return "avx2";
        case ET_PREPROC_AVX512:
            return "avx512";
    }
    return "unknown";
}

// ---- Pillow's resampling coefficients ------------------------------------------------

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// Coefficients of outputs [o0, o0 + count) of a resize in_size -> out_size.
typedef struct {
    int ksize;    // coefficients per output (the taps past n are 0)
    int *first;   // per output: first input index
    int *n;       // per output: number of taps
    int32_t *kk;  // per output: ksize fixed-point coefficients
} coeffs;

static void coeffs_free(coeffs *c) {
    free(c->first);
    free(c->n);
    free(c->kk);
}

static et_status coeffs_make(int in_size, int out_size, int o0, int count, coeffs *c) {
    memset(c, 0, sizeof(*c));
    bool identity = in_size == out_size;  // Pillow skips the pass: one tap of weight 1
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = identity ? 1 : (int)ceil(support) * 2 + 1;
    double *k = malloc(sizeof(double) * (size_t)ksize);
    c->first = malloc(sizeof(int) * (size_t)count);
    c->n = malloc(sizeof(int) * (size_t)count);
    c->kk = malloc(sizeof(int32_t) * (size_t)ksize * (size_t)count);
    if (!k || !c->first || !c->n || !c->kk) {
        free(k);
        coeffs_free(c);
        return et_err(ET_ERR_NOMEM, "resize: out of memory for %d x %d coefficients", count, ksize);
    }
    c->ksize = ksize;
    double ss = 1.0 / filterscale;
    for (int o = 0; o < count; o++) {
        int xx = o0 + o;
        int32_t *kx = c->kk + (size_t)o * (size_t)ksize;
        if (identity) {
            c->first[o] = xx;
            c->n[o] = 1;
            kx[0] = 1 << ET_RESAMPLE_BITS;
            continue;
        }
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            k[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += k[x];
        }
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? k[x] / ww : k[x]) : 0.0;
            v *= (double)(1 << ET_RESAMPLE_BITS);
            kx[x] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
        }
        c->first[o] = xmin;
        c->n[o] = xmax;
    }
    free(k);
    return NULL;
}

static inline uint8_t clip8(int32_t acc) {
    int32_t v = acc >> ET_RESAMPLE_BITS;  // arithmetic shift: floor, as Pillow
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

// The resampler's source: img pasted at (x0, y0) on a width x height canvas filled with bg.
// A plain image is a canvas of its own size; LLaVA's expand2square is a square canvas that
// is never materialised, so padding a very elongated image costs memory and time linear in
// its own pixels, not in the square's.
typedef struct {
    const et_image *img;
    int width, height, x0, y0;
    uint8_t bg[3];
} canvas;

// Paints canvas row y (width * 3 bytes) into dst.
static void canvas_row(const canvas *cv, int y, uint8_t *dst) {
    const et_image *im = cv->img;
    bool img_row = y >= cv->y0 && y < cv->y0 + im->height;
    for (int x = 0; x < cv->width; x++) {
        if (img_row && x == cv->x0) {
            memcpy(dst + (size_t)x * 3, im->data + (size_t)(y - cv->y0) * (size_t)im->width * 3,
                   (size_t)im->width * 3);
            x += im->width - 1;
        } else {
            memcpy(dst + (size_t)x * 3, cv->bg, 3);
        }
    }
}

// The horizontal pass, per window column o: acc_c = bias_c[o] + sum_j k_o[j] * pixel(first[o]
// + j, c) over the column's taps on image pixels (cnt[o] of them, from image column
// first[o]). The taps on the canvas background are folded into bias (a per-column constant;
// integer addition makes that exactly Pillow's sum over the whole canvas row).
typedef struct {
    int *first, *cnt;   // [ww]: first image column, number of image taps
    const int32_t **k;  // [ww]: the image taps' coefficients (into coeffs.kk)
    int32_t *bias;      // [3][ww]: 1 << 21 plus the background taps
    uint8_t *bgrow;     // [3][ww]: a canvas row that is all background, resampled
    int col0, ncols;    // the image columns any tap reads
} hplan;

static void hplan_free(hplan *h) {
    free(h->first);
    free(h->cnt);
    free((void *)h->k);
    free(h->bias);
    free(h->bgrow);
}

static et_status hplan_make(const canvas *cv, const coeffs *c, int ww, hplan *h) {
    memset(h, 0, sizeof(*h));
    const et_image *im = cv->img;
    h->first = malloc(sizeof(int) * (size_t)ww);
    h->cnt = malloc(sizeof(int) * (size_t)ww);
    h->k = malloc(sizeof(*h->k) * (size_t)ww);
    h->bias = malloc(sizeof(int32_t) * 3 * (size_t)ww);
    h->bgrow = malloc(3 * (size_t)ww);
    if (!h->first || !h->cnt || !h->k || !h->bias || !h->bgrow) {
        hplan_free(h);
        return et_err(ET_ERR_NOMEM, "resize: out of memory for %d coefficients", ww);
    }
    int lo_all = im->width, hi_all = 0;
    for (int o = 0; o < ww; o++) {
        int xmin = c->first[o], n = c->n[o];
        const int32_t *k = c->kk + (size_t)o * (size_t)c->ksize;
        int lo = xmin > cv->x0 ? xmin : cv->x0;
        int hi = xmin + n < cv->x0 + im->width ? xmin + n : cv->x0 + im->width;
        int cnt = hi > lo ? hi - lo : 0;
        int64_t all = 0, on_img = 0;
        for (int x = 0; x < n; x++) all += k[x];
        for (int j = 0; j < cnt; j++) on_img += k[lo + j - xmin];
        h->first[o] = cnt ? lo - cv->x0 : 0;
        h->cnt[o] = cnt;
        h->k[o] = k + (cnt ? lo - xmin : 0);
        if (cnt && h->first[o] < lo_all) lo_all = h->first[o];
        if (cnt && h->first[o] + cnt > hi_all) hi_all = h->first[o] + cnt;
        for (int ch = 0; ch < 3; ch++) {
            h->bias[ch * ww + o] = (int32_t)(ET_RESAMPLE_HALF + cv->bg[ch] * (all - on_img));
            h->bgrow[ch * ww + o] = clip8((int32_t)(ET_RESAMPLE_HALF + cv->bg[ch] * all));
        }
    }
    h->col0 = hi_all > lo_all ? lo_all : 0;
    h->ncols = hi_all > lo_all ? hi_all - lo_all : 0;
    for (int o = 0; o < ww; o++) h->first[o] -= h->cnt[o] ? h->col0 : 0;
    return NULL;
}

// ---- kernels -------------------------------------------------------------------------
// Both passes run the same kernel, a "vertical" one that sums rows (in, in + stride, ...)
// weighted by n taps k, wpad lanes wide: the vertical pass over row-major planes, the
// horizontal pass over transposed planes (one row per image column, one lane per image row).
// vrow: wpad values; u8 (wpad bytes) when u8 != NULL; normalised into f32 (w floats) when
//   f32 != NULL: lut[v] == (float)(v * (1.0 / 255)) - mean) / std, computed the same way.
// deinterleave: n RGB pixels -> 3 planar rows. transpose: an R x C u8 matrix (R, C
//   multiples of 16) -> C x R.

typedef struct {
    const float *lut;  // [256]
    float mean, std;
} plane_norm;

typedef void (*vrow_fn)(const uint8_t *in, size_t stride, const int32_t *k, int n, int32_t bias,
                        int w, int wpad, uint8_t *u8, const plane_norm *nm, float *f32);
typedef void (*deinterleave_fn)(const uint8_t *src, int n, uint8_t *r, uint8_t *g, uint8_t *b);
typedef void (*transpose_fn)(const uint8_t *src, size_t ss, uint8_t *dst, size_t ds, int R, int C);

typedef struct {
    vrow_fn vrow;
    deinterleave_fn deinterleave;
    transpose_fn transpose;
} kernels;

static void vrow_c(const uint8_t *in, size_t stride, const int32_t *k, int n, int32_t bias, int w,
                   int wpad, uint8_t *u8, const plane_norm *nm, float *f32) {
    for (int x = 0; x < wpad; x++) {
        int32_t a = bias;
        for (int j = 0; j < n; j++) a += in[(size_t)j * stride + (size_t)x] * k[j];
        uint8_t v = clip8(a);
        if (u8) u8[x] = v;
        if (f32 && x < w) f32[x] = nm->lut[v];
    }
}

static void deinterleave_c(const uint8_t *src, int n, uint8_t *r, uint8_t *g, uint8_t *b) {
    for (int x = 0; x < n; x++) {
        r[x] = src[3 * x];
        g[x] = src[3 * x + 1];
        b[x] = src[3 * x + 2];
    }
}

static void transpose_c(const uint8_t *src, size_t ss, uint8_t *dst, size_t ds, int R, int C) {
    for (int r0 = 0; r0 < R; r0 += 16)
        for (int c = 0; c < C; c++)
            for (int r = r0; r < r0 + 16; r++) dst[(size_t)c * ds + r] = src[(size_t)r * ss + c];
}

#if ET_PREPROC_X86

// 16 RGB pixels (48 bytes) -> 16 R, 16 G, 16 B with byte shuffles.
__attribute__((target("ssse3"))) static void deinterleave_ssse3(const uint8_t *src, int n,
                                                                uint8_t *r, uint8_t *g,
                                                                uint8_t *b) {
    int8_t m[3][3][16];  // [channel][source vector][output byte]: source byte or -1 (zero)
    for (int ch = 0; ch < 3; ch++)
        for (int v = 0; v < 3; v++)
            for (int p = 0; p < 16; p++)
                m[ch][v][p] = (3 * p + ch) / 16 == v ? (int8_t)((3 * p + ch) % 16) : -1;
    __m128i mk[3][3];
    for (int ch = 0; ch < 3; ch++)
        for (int v = 0; v < 3; v++) mk[ch][v] = _mm_loadu_si128((const __m128i *)m[ch][v]);
    uint8_t *out[3] = {r, g, b};
    int x = 0;
    for (; x + 16 <= n; x += 16) {
        const __m128i *s = (const __m128i *)(src + 3 * x);
        __m128i a = _mm_loadu_si128(s), bb = _mm_loadu_si128(s + 1), c = _mm_loadu_si128(s + 2);
        for (int ch = 0; ch < 3; ch++)
            _mm_storeu_si128((__m128i *)(out[ch] + x),
                             _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, mk[ch][0]),
                                                       _mm_shuffle_epi8(bb, mk[ch][1])),
                                          _mm_shuffle_epi8(c, mk[ch][2])));
    }
    deinterleave_c(src + 3 * x, n - x, r + x, g + x, b + x);
}

// Byte transposes in 16 x 16 blocks: four rounds of unpacking vector i with vector i + 8
// (each round rotates the (vector, byte) index bits by one; four rounds swap them). The
// unpacks work within 128-bit lanes, so a 256-bit (512-bit) vector does 2 (4) blocks side
// by side: rows of 32 (64) columns in, lane L of vector i out to row c0 + 16 L + i.
#define ET_TRANSPOSE_ROUND(lo, hi, a, t)          \
    do {                                          \
        for (int i_ = 0; i_ < 8; i_++) {          \
            t[2 * i_] = lo(a[i_], a[i_ + 8]);     \
            t[2 * i_ + 1] = hi(a[i_], a[i_ + 8]); \
        }                                         \
    } while (0)

__attribute__((target("ssse3"))) static void transpose_block_sse(const uint8_t *src, size_t ss,
                                                                 uint8_t *dst, size_t ds) {
    __m128i a[16], t[16];
    for (int i = 0; i < 16; i++) a[i] = _mm_loadu_si128((const __m128i *)(src + i * ss));
    ET_TRANSPOSE_ROUND(_mm_unpacklo_epi8, _mm_unpackhi_epi8, a, t);
    ET_TRANSPOSE_ROUND(_mm_unpacklo_epi8, _mm_unpackhi_epi8, t, a);
    ET_TRANSPOSE_ROUND(_mm_unpacklo_epi8, _mm_unpackhi_epi8, a, t);
    ET_TRANSPOSE_ROUND(_mm_unpacklo_epi8, _mm_unpackhi_epi8, t, a);
    for (int i = 0; i < 16; i++) _mm_storeu_si128((__m128i *)(dst + i * ds), a[i]);
}

__attribute__((target("avx2"))) static void transpose_avx2(const uint8_t *src, size_t ss,
                                                           uint8_t *dst, size_t ds, int R, int C) {
    for (int r0 = 0; r0 < R; r0 += 16) {
        const uint8_t *s = src + (size_t)r0 * ss;
        int c0 = 0;
        for (; c0 + 32 <= C; c0 += 32) {
            __m256i a[16], t[16];
            for (int i = 0; i < 16; i++)
                a[i] = _mm256_loadu_si256((const __m256i *)(s + i * ss + c0));
            ET_TRANSPOSE_ROUND(_mm256_unpacklo_epi8, _mm256_unpackhi_epi8, a, t);
            ET_TRANSPOSE_ROUND(_mm256_unpacklo_epi8, _mm256_unpackhi_epi8, t, a);
            ET_TRANSPOSE_ROUND(_mm256_unpacklo_epi8, _mm256_unpackhi_epi8, a, t);
            ET_TRANSPOSE_ROUND(_mm256_unpacklo_epi8, _mm256_unpackhi_epi8, t, a);
            for (int i = 0; i < 16; i++) {
                uint8_t *d = dst + (size_t)(c0 + i) * ds + r0;
                _mm_storeu_si128((__m128i *)d, _mm256_castsi256_si128(a[i]));
                _mm_storeu_si128((__m128i *)(d + 16 * ds), _mm256_extracti128_si256(a[i], 1));
            }
        }
        for (; c0 < C; c0 += 16) transpose_block_sse(s + c0, ss, dst + (size_t)c0 * ds + r0, ds);
    }
}

__attribute__((target("avx512f,avx512bw"))) static void transpose_avx512(const uint8_t *src,
                                                                         size_t ss, uint8_t *dst,
                                                                         size_t ds, int R, int C) {
    for (int r0 = 0; r0 < R; r0 += 16) {
        const uint8_t *s = src + (size_t)r0 * ss;
        int c0 = 0;
        for (; c0 + 64 <= C; c0 += 64) {
            __m512i a[16], t[16];
            for (int i = 0; i < 16; i++) a[i] = _mm512_loadu_si512(s + i * ss + c0);
            ET_TRANSPOSE_ROUND(_mm512_unpacklo_epi8, _mm512_unpackhi_epi8, a, t);
            ET_TRANSPOSE_ROUND(_mm512_unpacklo_epi8, _mm512_unpackhi_epi8, t, a);
            ET_TRANSPOSE_ROUND(_mm512_unpacklo_epi8, _mm512_unpackhi_epi8, a, t);
            ET_TRANSPOSE_ROUND(_mm512_unpacklo_epi8, _mm512_unpackhi_epi8, t, a);
            for (int i = 0; i < 16; i++) {
                uint8_t *d = dst + (size_t)(c0 + i) * ds + r0;
                _mm_storeu_si128((__m128i *)d, _mm512_castsi512_si128(a[i]));
                _mm_storeu_si128((__m128i *)(d + 16 * ds), _mm512_extracti32x4_epi32(a[i], 1));
                _mm_storeu_si128((__m128i *)(d + 32 * ds), _mm512_extracti32x4_epi32(a[i], 2));
                _mm_storeu_si128((__m128i *)(d + 48 * ds), _mm512_extracti32x4_epi32(a[i], 3));
            }
        }
        for (; c0 < C; c0 += 16) transpose_block_sse(s + c0, ss, dst + (size_t)c0 * ds + r0, ds);
    }
}

__attribute__((target("avx2"))) static inline __m256i clamp8_avx2(__m256i a) {
    a = _mm256_srai_epi32(a, ET_RESAMPLE_BITS);
    return _mm256_min_epi32(_mm256_max_epi32(a, _mm256_setzero_si256()), _mm256_set1_epi32(255));
}

// 8 int32 in 0..255 -> 8 bytes at dst.
__attribute__((target("avx2"))) static inline void store8_avx2(uint8_t *dst, __m256i a) {
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    _mm_storel_epi64((__m128i *)dst, _mm_packus_epi16(w, w));
}

// Clamps the accumulators of lanes [x, x + 8) and writes them out (see vrow).
__attribute__((target("avx2"))) static inline void vrow_out_avx2(__m256i a, int x, int w,
                                                                 uint8_t *u8, const plane_norm *nm,
                                                                 float *f32) {
    a = clamp8_avx2(a);
    if (u8) store8_avx2(u8 + x, a);
    if (f32 && x < w) {
        const __m256d inv255 = _mm256_set1_pd(1.0 / 255.0);
        __m128 lo =
            _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(a)), inv255));
        __m128 hi = _mm256_cvtpd_ps(
            _mm256_mul_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(a, 1)), inv255));
        __m256 f = _mm256_div_ps(_mm256_sub_ps(_mm256_set_m128(hi, lo), _mm256_set1_ps(nm->mean)),
                                 _mm256_set1_ps(nm->std));
        if (x + 8 <= w)
            _mm256_storeu_ps(f32 + x, f);
        else
            _mm256_maskstore_ps(f32 + x,
                                _mm256_cmpgt_epi32(_mm256_set1_epi32(w - x),
                                                   _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
                                f);
    }
}

__attribute__((target("avx2"))) static void vrow_avx2(const uint8_t *in, size_t stride,
                                                      const int32_t *k, int n, int32_t bias, int w,
                                                      int wpad, uint8_t *u8, const plane_norm *nm,
                                                      float *f32) {
    int x = 0;
    for (; x + 32 <= wpad; x += 32) {  // 4 vectors per tap: one broadcast, 4 chains
        __m256i a0 = _mm256_set1_epi32(bias), a1 = a0, a2 = a0, a3 = a0;
        const uint8_t *p = in + x;
        for (int j = 0; j < n; j++, p += stride) {
            __m256i kj = _mm256_set1_epi32(k[j]);
            const __m128i *q = (const __m128i *)p;
            __m128i v01 = _mm_loadu_si128(q), v23 = _mm_loadu_si128(q + 1);
            a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(v01), kj));
            a1 = _mm256_add_epi32(
                a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(v01, 8)), kj));
            a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(v23), kj));
            a3 = _mm256_add_epi32(
                a3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(v23, 8)), kj));
        }
        vrow_out_avx2(a0, x, w, u8, nm, f32);
        vrow_out_avx2(a1, x + 8, w, u8, nm, f32);
        vrow_out_avx2(a2, x + 16, w, u8, nm, f32);
        vrow_out_avx2(a3, x + 24, w, u8, nm, f32);
    }
    for (; x < wpad; x += 8) {
        __m256i a = _mm256_set1_epi32(bias);
        const uint8_t *p = in + x;
        for (int j = 0; j < n; j++, p += stride) {
            __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
            a = _mm256_add_epi32(a, _mm256_mullo_epi32(v, _mm256_set1_epi32(k[j])));
        }
        vrow_out_avx2(a, x, w, u8, nm, f32);
    }
}

__attribute__((target("avx512f"))) static inline __m512i clamp8_avx512(__m512i a) {
    a = _mm512_srai_epi32(a, ET_RESAMPLE_BITS);
    return _mm512_min_epi32(_mm512_max_epi32(a, _mm512_setzero_si512()), _mm512_set1_epi32(255));
}

// Clamps the accumulators of lanes [x, x + 16) and writes them out (see vrow).
__attribute__((target("avx512f"))) static inline void vrow_out_avx512(__m512i a, int x, int w,
                                                                      uint8_t *u8,
                                                                      const plane_norm *nm,
                                                                      float *f32) {
    a = clamp8_avx512(a);
    if (u8) _mm_storeu_si128((__m128i *)(u8 + x), _mm512_cvtepi32_epi8(a));
    if (f32 && x < w) {
        const __m512d inv255 = _mm512_set1_pd(1.0 / 255.0);
        __m256 lo =
            _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(a)), inv255));
        __m256 hi = _mm512_cvtpd_ps(
            _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(a, 1)), inv255));
        __m512 f = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)),
                                                       _mm256_castps_pd(hi), 1));
        f = _mm512_div_ps(_mm512_sub_ps(f, _mm512_set1_ps(nm->mean)), _mm512_set1_ps(nm->std));
        if (x + 16 <= w)
            _mm512_storeu_ps(f32 + x, f);
        else
            _mm512_mask_storeu_ps(f32 + x, (__mmask16)((1u << (w - x)) - 1), f);
    }
}

__attribute__((target("avx512f"))) static void vrow_avx512(const uint8_t *in, size_t stride,
                                                           const int32_t *k, int n, int32_t bias,
                                                           int w, int wpad, uint8_t *u8,
                                                           const plane_norm *nm, float *f32) {
    int x = 0;
    for (; x + 64 <= wpad; x += 64) {  // 4 vectors per tap: one broadcast, 4 chains
        __m512i a0 = _mm512_set1_epi32(bias), a1 = a0, a2 = a0, a3 = a0;
        const uint8_t *p = in + x;
        for (int j = 0; j < n; j++, p += stride) {
            __m512i kj = _mm512_set1_epi32(k[j]);
            const __m128i *q = (const __m128i *)p;
            a0 = _mm512_add_epi32(a0,
                                  _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(q)), kj));
            a1 = _mm512_add_epi32(
                a1, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(q + 1)), kj));
            a2 = _mm512_add_epi32(
                a2, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(q + 2)), kj));
            a3 = _mm512_add_epi32(
                a3, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128(q + 3)), kj));
        }
        vrow_out_avx512(a0, x, w, u8, nm, f32);
        vrow_out_avx512(a1, x + 16, w, u8, nm, f32);
        vrow_out_avx512(a2, x + 32, w, u8, nm, f32);
        vrow_out_avx512(a3, x + 48, w, u8, nm, f32);
    }
    for (; x < wpad; x += 16) {
        __m512i a = _mm512_set1_epi32(bias);
        const uint8_t *p = in + x;
        for (int j = 0; j < n; j++, p += stride) {
            __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
            a = _mm512_add_epi32(a, _mm512_mullo_epi32(v, _mm512_set1_epi32(k[j])));
        }
        vrow_out_avx512(a, x, w, u8, nm, f32);
    }
}

#endif  // ET_PREPROC_X86

static et_status pick_kernels(et_preproc_simd simd, kernels *kn) {
    et_preproc_simd best = et_preproc_simd_best();
    if (simd == ET_PREPROC_AUTO) simd = best;
    if (simd > best || simd < ET_PREPROC_AUTO)
        return et_err(ET_ERR_UNSUPPORTED,
                      "image preprocessing: code path %s is not available on this CPU (best: %s)",
                      et_preproc_simd_name(simd), et_preproc_simd_name(best));
    *kn = (kernels){vrow_c, deinterleave_c, transpose_c};
#if ET_PREPROC_X86
    if (simd == ET_PREPROC_AVX2) *kn = (kernels){vrow_avx2, deinterleave_ssse3, transpose_avx2};
    if (simd == ET_PREPROC_AVX512)
        *kn = (kernels){vrow_avx512, deinterleave_ssse3, transpose_avx512};
#endif
    return NULL;
}

// ---- the window resampler ------------------------------------------------------------

// Output of resample_window: the window (columns [wx0, wx0 + ww), rows [wy0, wy0 + wh) of
// the canvas resized to rw x rh) as planar u8 (u8 != NULL: 3 planes of wh rows of
// win_stride(ww) bytes) and/or normalised f32 (plane c row y at f32 + c * f32_plane +
// y * f32_stride, ww floats).
typedef struct {
    uint8_t *u8;
    const plane_norm *norm;  // [3]
    float *f32;
    size_t f32_plane, f32_stride;
} win_out;

static size_t pad16(size_t n) { return (n + ET_WPAD - 1) / ET_WPAD * ET_WPAD; }
static size_t win_stride(int ww) { return pad16((size_t)ww); }

// Steps: (1) the image rows and columns the taps read, deinterleaved into planes;
// (2) each plane transposed (one row per image column); (3) the horizontal pass as a
// vertical one over the transposed plane; (4) its output transposed back into the
// intermediate rows (canvas rows on the background get the resampled background row);
// (5) the vertical pass into the outputs.
static et_status resample_window(const canvas *cv, int rw, int rh, int wx0, int wy0, int ww, int wh,
                                 et_preproc_simd simd, const win_out *out) {
    kernels kn = {vrow_c, deinterleave_c, transpose_c};
    ET_TRY(pick_kernels(simd, &kn));
    const et_image *im = cv->img;
    coeffs ch = {0}, cvt = {0};
    hplan hp = {0};
    uint8_t *buf = NULL;
    et_status s = coeffs_make(cv->width, rw, wx0, ww, &ch);
    if (!s) s = coeffs_make(cv->height, rh, wy0, wh, &cvt);
    if (!s) s = hplan_make(cv, &ch, ww, &hp);
    if (s) goto done;
    // Canvas rows [y_first, y_first + rows) feed the window (taps are nondecreasing); image
    // rows [iy0, iy0 + nr) of them are on the image.
    int y_first = cvt.first[0];
    int rows = cvt.first[wh - 1] + cvt.n[wh - 1] - y_first;
    int iy0 = y_first - cv->y0 > 0 ? y_first - cv->y0 : 0;
    int iy1 = y_first + rows - cv->y0 < im->height ? y_first + rows - cv->y0 : im->height;
    int nr = iy1 > iy0 && hp.ncols > 0 ? iy1 - iy0 : 0;
    // Steps 1-4 go in bands of ET_BAND image rows, so their buffers stay small (and in cache)
    // however large the image.
    size_t wpad = win_stride(ww), ncp = pad16((size_t)hp.ncols), bp = ET_BAND;
    size_t tmp_plane = ((size_t)rows + ET_WPAD) * wpad;  // + slack for step 4's padded rows
    size_t sz_p = 3 * bp * ncp, sz_h = 3 * wpad * bp, sz_t = 3 * tmp_plane;
    buf = malloc(2 * sz_p + sz_h + sz_t);
    if (!buf) {
        s = et_err(ET_ERR_NOMEM, "resize: out of memory for %d x %d intermediate rows", ww, rows);
        goto done;
    }
    uint8_t *P = buf, *T = P + sz_p, *H = T + sz_p, *tmp = H + sz_h;
    for (int b0 = 0; b0 < nr; b0 += ET_BAND) {
        int nb = nr - b0 < ET_BAND ? nr - b0 : ET_BAND;
        size_t nbp = pad16((size_t)nb), pl = nbp * ncp;  // band rows padded, plane size
        // (1) planes P[c]: nbp x ncp; the padding only feeds lanes that are discarded, but
        // is zeroed so nothing uninitialised is read
        for (int r = 0; r < nb; r++) {
            const uint8_t *src =
                im->data + ((size_t)(iy0 + b0 + r) * (size_t)im->width + (size_t)hp.col0) * 3;
            size_t o = (size_t)r * ncp;
            kn.deinterleave(src, hp.ncols, P + o, P + pl + o, P + 2 * pl + o);
            for (int c = 0; c < 3; c++) memset(P + c * pl + o + hp.ncols, 0, ncp - hp.ncols);
        }
        for (int c = 0; c < 3; c++) memset(P + c * pl + nb * ncp, 0, (nbp - nb) * ncp);
        // (2) T[c]: ncp x nbp
        for (int c = 0; c < 3; c++)
            kn.transpose(P + c * pl, ncp, T + c * pl, nbp, (int)nbp, (int)ncp);
        // (3) H[c]: wpad x nbp (the rows past ww zero)
        for (int c = 0; c < 3; c++) {
            uint8_t *h = H + c * wpad * nbp;
            for (int o = 0; o < ww; o++)
                kn.vrow(T + c * pl + (size_t)hp.first[o] * nbp, nbp, hp.k[o], hp.cnt[o],
                        hp.bias[c * ww + o], 0, (int)nbp, h + (size_t)o * nbp, NULL, NULL);
            memset(h + (size_t)ww * nbp, 0, (wpad - ww) * nbp);
        }
        // (4) intermediate rows of the band: nbp x wpad
        size_t r0 = (size_t)(iy0 + b0 + cv->y0 - y_first);
        for (int c = 0; c < 3; c++)
            kn.transpose(H + c * wpad * nbp, nbp, tmp + c * tmp_plane + r0 * wpad, wpad, (int)wpad,
                         (int)nbp);
    }
    for (int r = 0; r < rows; r++) {
        int sy = y_first + r - cv->y0;
        if (sy >= iy0 && sy < iy0 + nr) continue;
        for (int c = 0; c < 3; c++) {
            uint8_t *o = tmp + c * tmp_plane + (size_t)r * wpad;
            memcpy(o, hp.bgrow + c * ww, (size_t)ww);
            memset(o + ww, 0, wpad - (size_t)ww);
        }
    }
    // (5)
    for (int y = 0; y < wh; y++) {
        const int32_t *k = cvt.kk + (size_t)y * (size_t)cvt.ksize;
        size_t first = (size_t)(cvt.first[y] - y_first) * wpad;
        for (int c = 0; c < 3; c++)
            kn.vrow(tmp + c * tmp_plane + first, wpad, k, cvt.n[y], ET_RESAMPLE_HALF, ww, (int)wpad,
                    out->u8 ? out->u8 + ((size_t)c * wh + y) * wpad : NULL,
                    out->norm ? &out->norm[c] : NULL,
                    out->f32 ? out->f32 + c * out->f32_plane + y * out->f32_stride : NULL);
    }
done:
    free(buf);
    hplan_free(&hp);
    coeffs_free(&ch);
    coeffs_free(&cvt);
    return s;
}

static et_status check_side(const char *what, int v) {
    if (v <= 0 || v > ET_PREPROC_MAX_SIDE)
        return et_err(ET_ERR_INVALID, "%s %d must be in 1..%d", what, v, ET_PREPROC_MAX_SIDE);
    return NULL;
}

// Planar window rows (stride win_stride(ww)) -> HWC at dst (row stride dst_stride bytes).
static void interleave(const uint8_t *planes, int ww, int wh, uint8_t *dst, size_t dst_stride) {
    size_t stride = win_stride(ww), plane = stride * (size_t)wh;
    for (int y = 0; y < wh; y++) {
        const uint8_t *r = planes + (size_t)y * stride, *g = r + plane, *b = g + plane;
        uint8_t *d = dst + (size_t)y * dst_stride;
        for (int x = 0; x < ww; x++) {
            d[3 * x] = r[x];
            d[3 * x + 1] = g[x];
            d[3 * x + 2] = b[x];
        }
    }
}

// Pillow's Image.resize(BICUBIC) of the canvas (materialised or not, the same pixels).
static et_status resize_canvas(const canvas *cv, int out_w, int out_h, et_preproc_simd simd,
                               et_image *out) {
    memset(out, 0, sizeof(*out));
    ET_TRY(check_side("resize: output width", out_w));
    ET_TRY(check_side("resize: output height", out_h));
    uint8_t *planes = malloc(3 * win_stride(out_w) * (size_t)out_h);
    if (!planes)
        return et_err(ET_ERR_NOMEM, "resize: out of memory for a %dx%d image", out_w, out_h);
    win_out wo = {.u8 = planes};
    et_status s = resample_window(cv, out_w, out_h, 0, 0, out_w, out_h, simd, &wo);
    if (!s) s = et_image_alloc(out_w, out_h, out);
    if (!s) interleave(planes, out_w, out_h, out->data, (size_t)out_w * 3);
    free(planes);
    return s;
}

static canvas plain_canvas(const et_image *in) {
    return (canvas){.img = in, .width = in->width, .height = in->height};
}

// The expand2square canvas of in (a plain one when in is square).
static canvas square_canvas(const et_image *in, const uint8_t bg[3]) {
    canvas cv = plain_canvas(in);
    int m = in->width > in->height ? in->width : in->height;
    cv.width = cv.height = m;
    cv.x0 = (m - in->width) / 2;
    cv.y0 = (m - in->height) / 2;
    memcpy(cv.bg, bg, 3);
    return cv;
}

et_status et_image_resize_bicubic(const et_image *in, int out_w, int out_h, et_image *out) {
    ET_ASSERT(in && in->data && in->width > 0 && in->height > 0,
              "et_image_resize_bicubic: input must be a decoded image");
    canvas cv = plain_canvas(in);
    return resize_canvas(&cv, out_w, out_h, ET_PREPROC_AUTO, out);
}

// ---- the rest of the pipeline --------------------------------------------------------

et_status et_image_expand2square(const et_image *in, const uint8_t bg[3], et_image *out) {
    memset(out, 0, sizeof(*out));
    ET_ASSERT(in && in->data && in->width > 0 && in->height > 0,
              "et_image_expand2square: input must be a decoded image");
    canvas cv = square_canvas(in, bg);
    ET_TRY(et_image_alloc(cv.width, cv.height, out));
    for (int y = 0; y < cv.height; y++)
        canvas_row(&cv, y, out->data + (size_t)y * (size_t)cv.width * 3);
    return NULL;
}

static int floor_div2(int v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); }

et_status et_image_center_crop(const et_image *in, int crop_w, int crop_h, et_image *out) {
    memset(out, 0, sizeof(*out));
    ET_ASSERT(in && in->data && in->width > 0 && in->height > 0,
              "et_image_center_crop: input must be a decoded image");
    ET_TRY(check_side("center crop: width", crop_w));
    ET_TRY(check_side("center crop: height", crop_h));
    ET_TRY(et_image_alloc(crop_w, crop_h, out));
    // Output (y, x) reads input (y + top, x + left); HF pads with zeros where that is
    // outside (its top_pad = ceil(d / 2) makes the offset floor((H - crop) / 2) either way).
    int top = floor_div2(in->height - crop_h), left = floor_div2(in->width - crop_w);
    for (int y = 0; y < crop_h; y++) {
        uint8_t *dst = out->data + (size_t)y * (size_t)crop_w * 3;
        int sy = y + top;
        if (sy < 0 || sy >= in->height) {
            memset(dst, 0, (size_t)crop_w * 3);
            continue;
        }
        for (int x = 0; x < crop_w; x++) {
            int sx = x + left;
            if (sx < 0 || sx >= in->width)
                memset(dst + 3 * x, 0, 3);
            else
                memcpy(dst + 3 * x, in->data + ((size_t)sy * (size_t)in->width + sx) * 3, 3);
        }
    }
    return NULL;
}

// CLIPImageProcessor's rescale + normalize of every u8 value, per channel.
static void normalize_lut(const float mean[3], const float std[3], float lut[3][256]) {
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = (float)((double)v * (1.0 / 255.0));  // HF rescale: float64, then f32
            lut[c][v] = (x - mean[c]) / std[c];            // HF normalize: float32
        }
}

void et_clip_normalize(const uint8_t *hwc, int h, int w, const float mean[3], const float std[3],
                       float *chw) {
    float lut[3][256];
    normalize_lut(mean, std, lut);
    size_t n = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) chw[(size_t)c * n + i] = lut[c][hwc[3 * i + c]];
}

et_status et_clip_preprocess(const et_image *img, const et_clip_preproc *p, et_tensor **u8_hwc,
                             et_tensor **f32_chw) {
    return et_clip_preprocess_simd(img, p, ET_PREPROC_AUTO, u8_hwc, f32_chw);
}

et_status et_clip_preprocess_file(const char *path, const et_clip_preproc *p, et_tensor **f32_chw) {
    *f32_chw = NULL;
    et_image img;
    ET_TRY(et_image_decode_file(path, NULL, &img));
    et_status st = et_clip_preprocess(&img, p, NULL, f32_chw);
    et_image_free(&img);
    return st;
}

et_status et_clip_preprocess_simd(const et_image *img, const et_clip_preproc *p,
                                  et_preproc_simd simd, et_tensor **u8_hwc, et_tensor **f32_chw) {
    if (u8_hwc) *u8_hwc = NULL;
    if (f32_chw) *f32_chw = NULL;
    ET_ASSERT(img && img->data && img->width > 0 && img->height > 0,
              "et_clip_preprocess: input must be a decoded image");
    ET_TRY(check_side("clip preprocess: resize_shortest", p->resize_shortest));
    ET_TRY(check_side("clip preprocess: crop", p->crop));
    for (int c = 0; c < 3; c++)
        if (!(p->std[c] != 0.0f) || !isfinite(p->std[c]) || !isfinite(p->mean[c]))
            return et_err(ET_ERR_INVALID,
                          "clip preprocess: mean/std of channel %d (%g, %g) "
                          "must be finite with std != 0",
                          c, p->mean[c], p->std[c]);
    // The pad square is never materialised (see canvas); its side is bounded so the
    // resampler's intermediate rows (crop side x square side) stay bounded too.
    canvas cv = p->pad_square ? square_canvas(img, p->pad_rgb) : plain_canvas(img);
    if (cv.width > ET_PREPROC_MAX_PAD_SIDE)
        return et_err(ET_ERR_INVALID,
                      "clip preprocess: padding a %dx%d image to a square of side %d (more than "
                      "%d) is refused",
                      img->width, img->height, cv.width, ET_PREPROC_MAX_PAD_SIDE);
    int rw = 0, rh = 0;
    et_clip_resize_size(cv.width, cv.height, p->resize_shortest, &rw, &rh);
    if (rw > ET_PREPROC_MAX_SIDE || rh > ET_PREPROC_MAX_SIDE)
        return et_err(ET_ERR_INVALID,
                      "clip preprocess: a %dx%d image resized to shortest edge %d would be "
                      "%dx%d, longer than %d (aspect ratio too extreme)",
                      cv.width, cv.height, p->resize_shortest, rw, rh, ET_PREPROC_MAX_SIDE);
    // Crop (y, x) is resized (y + top, x + left), zero outside the resized image (HF's
    // center_crop: its top_pad = ceil(d / 2) makes the offset floor((H - crop) / 2) either
    // way). The window: the resized pixels the crop keeps, at (oy, ox) in the crop.
    int S = p->crop;
    int top = floor_div2(rh - S), left = floor_div2(rw - S);
    int wx0 = left > 0 ? left : 0, wy0 = top > 0 ? top : 0;
    int ww = (left + S < rw ? left + S : rw) - wx0, wh = (top + S < rh ? top + S : rh) - wy0;
    int ox = wx0 - left, oy = wy0 - top;
    bool full = ww == S && wh == S;
    float lut[3][256];
    normalize_lut(p->mean, p->std, lut);
    size_t plane = (size_t)S * (size_t)S;
    plane_norm norm[3];
    for (int c = 0; c < 3; c++) norm[c] = (plane_norm){lut[c], p->mean[c], p->std[c]};
    win_out wo = {.norm = norm, .f32_plane = plane, .f32_stride = (size_t)S};
    if (f32_chw) {
        *f32_chw = et_empty(ET_F32, 3, (int64_t[]){3, S, S});
        float *f = et_data(*f32_chw);
        if (!full)  // the zero padding, normalised
            for (int c = 0; c < 3; c++)
                for (size_t i = 0; i < plane; i++) f[(size_t)c * plane + i] = lut[c][0];
        wo.f32 = f + (size_t)oy * S + ox;
    }
    if (u8_hwc) {
        wo.u8 = malloc(3 * win_stride(ww) * (size_t)wh);
        if (!wo.u8) {
            if (f32_chw) {
                et_release(*f32_chw);
                *f32_chw = NULL;
            }
            return et_err(ET_ERR_NOMEM, "clip preprocess: out of memory");
        }
    }
    et_status s = resample_window(&cv, rw, rh, wx0, wy0, ww, wh, simd, &wo);
    if (!s && u8_hwc) {
        *u8_hwc = et_empty(ET_U8, 3, (int64_t[]){S, S, 3});
        uint8_t *d = et_data(*u8_hwc);
        if (!full) memset(d, 0, plane * 3);
        interleave(wo.u8, ww, wh, d + ((size_t)oy * S + ox) * 3, (size_t)S * 3);
    }
    free(wo.u8);
    if (s && f32_chw) {
        et_release(*f32_chw);
        *f32_chw = NULL;
    }
    return s;
}
