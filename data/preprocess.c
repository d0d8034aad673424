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
// - Kernels: portable C, AVX2 and AVX-512F (__attribute__((target)), chosen at run time
//   with __builtin_cpu_supports; the build stays -march=x86-64-v2). The horizontal kernels
//   gather one 32-bit word per output column and tap (the pixel's R, G, B and one more
//   byte), so the last image row is read from a padded copy; the vertical kernels widen 8 or
//   16 u8 of a row to int32 per tap.
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
        if (__builtin_cpu_supports("avx512f")) b = ET_PREPROC_AVX512;
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

// The horizontal pass over one image row, as tables per window column o (wpad columns, the
// ones past the window all zero): acc_c = bias_c[o] + sum_j k[j][o] * row[idx[j][o] + c].
// The taps on the canvas background are folded into bias (a per-column constant; integer
// addition makes that exactly Pillow's sum over the whole canvas row); the image taps of a
// column are its first cnt taps, the rest have k = 0 and idx = 0.
typedef struct {
    int n, wpad;       // taps (the most image taps of any column), padded window width
    int32_t *k, *idx;  // [n][wpad]: coefficient, byte offset of the pixel in an image row
    int32_t *bias;     // [3][wpad]: 1 << 21 plus the background taps
    uint8_t *bgrow;    // [3][wpad]: a canvas row that is all background, resampled
} hplan;

static void hplan_free(hplan *h) {
    free(h->k);
    free(h->idx);
    free(h->bias);
    free(h->bgrow);
}

static et_status hplan_make(const canvas *cv, const coeffs *c, int ww, hplan *h) {
    memset(h, 0, sizeof(*h));
    const et_image *im = cv->img;
    int wpad = (ww + ET_WPAD - 1) / ET_WPAD * ET_WPAD, n = 1;
    for (int o = 0; o < ww; o++) {
        int lo = c->first[o] > cv->x0 ? c->first[o] : cv->x0;
        int hi =
            c->first[o] + c->n[o] < cv->x0 + im->width ? c->first[o] + c->n[o] : cv->x0 + im->width;
        if (hi - lo > n) n = hi - lo;
    }
    h->n = n;
    h->wpad = wpad;
    h->k = calloc((size_t)n * (size_t)wpad, sizeof(int32_t));
    h->idx = calloc((size_t)n * (size_t)wpad, sizeof(int32_t));
    h->bias = calloc((size_t)3 * (size_t)wpad, sizeof(int32_t));
    h->bgrow = calloc((size_t)3 * (size_t)wpad, 1);
    if (!h->k || !h->idx || !h->bias || !h->bgrow) {
        hplan_free(h);
        return et_err(ET_ERR_NOMEM, "resize: out of memory for %d x %d coefficients", n, wpad);
    }
    for (int o = 0; o < ww; o++) {
        int xmin = c->first[o], cnt = c->n[o];
        const int32_t *k = c->kk + (size_t)o * (size_t)c->ksize;
        int lo = xmin > cv->x0 ? xmin : cv->x0;
        int hi = xmin + cnt < cv->x0 + im->width ? xmin + cnt : cv->x0 + im->width;
        int64_t all = 0, on_img = 0;
        for (int x = 0; x < cnt; x++) all += k[x];
        for (int j = 0; lo + j < hi; j++) {
            h->k[(size_t)j * wpad + o] = k[lo + j - xmin];
            h->idx[(size_t)j * wpad + o] = 3 * (lo + j - cv->x0);
            on_img += k[lo + j - xmin];
        }
        for (int ch = 0; ch < 3; ch++) {
            h->bias[ch * wpad + o] = (int32_t)(ET_RESAMPLE_HALF + cv->bg[ch] * (all - on_img));
            h->bgrow[ch * wpad + o] = clip8((int32_t)(ET_RESAMPLE_HALF + cv->bg[ch] * all));
        }
    }
    return NULL;
}

// ---- kernels -------------------------------------------------------------------------
// hrow: one image row (src; 4 readable bytes at every idx) -> the 3 planar window rows
//   (wpad bytes each).
// vrow: one output row of one plane from the rows in, in + stride, ... (n taps k); wpad
//   values: u8 (wpad bytes) when u8 != NULL, lut[v] into f32 (w floats) when f32 != NULL.

typedef void (*hrow_fn)(const uint8_t *src, const hplan *h, uint8_t *o0, uint8_t *o1, uint8_t *o2);
typedef void (*vrow_fn)(const uint8_t *in, size_t stride, const int32_t *k, int n, int w, int wpad,
                        uint8_t *u8, const float *lut, float *f32);

static void hrow_c(const uint8_t *src, const hplan *h, uint8_t *o0, uint8_t *o1, uint8_t *o2) {
    int wpad = h->wpad;
    for (int x = 0; x < wpad; x++) {
        int32_t a0 = h->bias[x], a1 = h->bias[wpad + x], a2 = h->bias[2 * wpad + x];
        for (int j = 0; j < h->n; j++) {
            size_t t = (size_t)j * (size_t)wpad + (size_t)x;
            const uint8_t *p = src + h->idx[t];
            int32_t k = h->k[t];
            a0 += p[0] * k;
            a1 += p[1] * k;
            a2 += p[2] * k;
        }
        o0[x] = clip8(a0);
        o1[x] = clip8(a1);
        o2[x] = clip8(a2);
    }
}

static void vrow_c(const uint8_t *in, size_t stride, const int32_t *k, int n, int w, int wpad,
                   uint8_t *u8, const float *lut, float *f32) {
    for (int x = 0; x < wpad; x++) {
        int32_t a = ET_RESAMPLE_HALF;
        for (int j = 0; j < n; j++) a += in[(size_t)j * stride + (size_t)x] * k[j];
        uint8_t v = clip8(a);
        if (u8) u8[x] = v;
        if (f32 && x < w) f32[x] = lut[v];
    }
}

#if ET_PREPROC_X86

__attribute__((target("avx2"))) static inline __m256i clamp8_avx2(__m256i a) {
    a = _mm256_srai_epi32(a, ET_RESAMPLE_BITS);
    return _mm256_min_epi32(_mm256_max_epi32(a, _mm256_setzero_si256()), _mm256_set1_epi32(255));
}

// 8 int32 in 0..255 -> 8 bytes at dst.
__attribute__((target("avx2"))) static inline void store8_avx2(uint8_t *dst, __m256i a) {
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    _mm_storel_epi64((__m128i *)dst, _mm_packus_epi16(w, w));
}

__attribute__((target("avx2"))) static void hrow_avx2(const uint8_t *src, const hplan *h,
                                                      uint8_t *o0, uint8_t *o1, uint8_t *o2) {
    int wpad = h->wpad;
    const __m256i m8 = _mm256_set1_epi32(255);
    for (int x = 0; x < wpad; x += 8) {
        __m256i a0 = _mm256_loadu_si256((const __m256i *)(h->bias + x));
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(h->bias + wpad + x));
        __m256i a2 = _mm256_loadu_si256((const __m256i *)(h->bias + 2 * wpad + x));
        const int32_t *kp = h->k + x, *ip = h->idx + x;
        for (int j = 0; j < h->n; j++, kp += wpad, ip += wpad) {
            __m256i p = _mm256_i32gather_epi32((const int *)src,
                                               _mm256_loadu_si256((const __m256i *)ip), 1);
            __m256i k = _mm256_loadu_si256((const __m256i *)kp);
            a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_and_si256(p, m8), k));
            a1 = _mm256_add_epi32(
                a1, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(p, 8), m8), k));
            a2 = _mm256_add_epi32(
                a2, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(p, 16), m8), k));
        }
        store8_avx2(o0 + x, clamp8_avx2(a0));
        store8_avx2(o1 + x, clamp8_avx2(a1));
        store8_avx2(o2 + x, clamp8_avx2(a2));
    }
}

__attribute__((target("avx2"))) static void vrow_avx2(const uint8_t *in, size_t stride,
                                                      const int32_t *k, int n, int w, int wpad,
                                                      uint8_t *u8, const float *lut, float *f32) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int x = 0; x < wpad; x += 8) {
        __m256i a = _mm256_set1_epi32(ET_RESAMPLE_HALF);
        const uint8_t *p = in + x;
        for (int j = 0; j < n; j++, p += stride) {
            __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
            a = _mm256_add_epi32(a, _mm256_mullo_epi32(v, _mm256_set1_epi32(k[j])));
        }
        a = clamp8_avx2(a);
        if (u8) store8_avx2(u8 + x, a);
        if (f32 && x < w) {
            __m256 f = _mm256_i32gather_ps(lut, a, 4);
            if (x + 8 <= w)
                _mm256_storeu_ps(f32 + x, f);
            else
                _mm256_maskstore_ps(f32 + x, _mm256_cmpgt_epi32(_mm256_set1_epi32(w - x), iota), f);
        }
    }
}

__attribute__((target("avx512f"))) static inline __m512i clamp8_avx512(__m512i a) {
    a = _mm512_srai_epi32(a, ET_RESAMPLE_BITS);
    return _mm512_min_epi32(_mm512_max_epi32(a, _mm512_setzero_si512()), _mm512_set1_epi32(255));
}

__attribute__((target("avx512f"))) static void hrow_avx512(const uint8_t *src, const hplan *h,
                                                           uint8_t *o0, uint8_t *o1, uint8_t *o2) {
    int wpad = h->wpad;
    const __m512i m8 = _mm512_set1_epi32(255);
    for (int x = 0; x < wpad; x += 16) {
        __m512i a0 = _mm512_loadu_si512(h->bias + x);
        __m512i a1 = _mm512_loadu_si512(h->bias + wpad + x);
        __m512i a2 = _mm512_loadu_si512(h->bias + 2 * wpad + x);
        const int32_t *kp = h->k + x, *ip = h->idx + x;
        for (int j = 0; j < h->n; j++, kp += wpad, ip += wpad) {
            __m512i p = _mm512_i32gather_epi32(_mm512_loadu_si512(ip), src, 1);
            __m512i k = _mm512_loadu_si512(kp);
            a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(_mm512_and_si512(p, m8), k));
            a1 = _mm512_add_epi32(
                a1, _mm512_mullo_epi32(_mm512_and_si512(_mm512_srli_epi32(p, 8), m8), k));
            a2 = _mm512_add_epi32(
                a2, _mm512_mullo_epi32(_mm512_and_si512(_mm512_srli_epi32(p, 16), m8), k));
        }
        _mm_storeu_si128((__m128i *)(o0 + x), _mm512_cvtepi32_epi8(clamp8_avx512(a0)));
        _mm_storeu_si128((__m128i *)(o1 + x), _mm512_cvtepi32_epi8(clamp8_avx512(a1)));
        _mm_storeu_si128((__m128i *)(o2 + x), _mm512_cvtepi32_epi8(clamp8_avx512(a2)));
    }
}

__attribute__((target("avx512f"))) static void vrow_avx512(const uint8_t *in, size_t stride,
                                                           const int32_t *k, int n, int w, int wpad,
                                                           uint8_t *u8, const float *lut,
                                                           float *f32) {
    for (int x = 0; x < wpad; x += 16) {
        __m512i a = _mm512_set1_epi32(ET_RESAMPLE_HALF);
        const uint8_t *p = in + x;
        for (int j = 0; j < n; j++, p += stride) {
            __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
            a = _mm512_add_epi32(a, _mm512_mullo_epi32(v, _mm512_set1_epi32(k[j])));
        }
        a = clamp8_avx512(a);
        if (u8) _mm_storeu_si128((__m128i *)(u8 + x), _mm512_cvtepi32_epi8(a));
        if (f32 && x < w) {
            __m512 f = _mm512_i32gather_ps(a, lut, 4);
            if (x + 16 <= w)
                _mm512_storeu_ps(f32 + x, f);
            else
                _mm512_mask_storeu_ps(f32 + x, (__mmask16)((1u << (w - x)) - 1), f);
        }
    }
}

#endif  // ET_PREPROC_X86

static et_status pick_kernels(et_preproc_simd simd, hrow_fn *h, vrow_fn *v) {
    et_preproc_simd best = et_preproc_simd_best();
    if (simd == ET_PREPROC_AUTO) simd = best;
    if (simd > best || simd < ET_PREPROC_AUTO)
        return et_err(ET_ERR_UNSUPPORTED,
                      "image preprocessing: code path %s is not available on "
                      "this CPU (best: %s)",
                      et_preproc_simd_name(simd), et_preproc_simd_name(best));
    *h = hrow_c;
    *v = vrow_c;
#if ET_PREPROC_X86
    if (simd == ET_PREPROC_AVX2) {
        *h = hrow_avx2;
        *v = vrow_avx2;
    } else if (simd == ET_PREPROC_AVX512) {
        *h = hrow_avx512;
        *v = vrow_avx512;
    }
#endif
    return NULL;
}

// ---- the window resampler ------------------------------------------------------------

// Output of resample_window: the window (columns [wx0, wx0 + ww), rows [wy0, wy0 + wh) of
// the canvas resized to rw x rh) as planar u8 (u8 != NULL: 3 planes of wh rows of
// win_stride(ww) bytes) and/or lut[c][v] into f32 (plane c row y at f32 + c * f32_plane +
// y * f32_stride, ww floats).
typedef struct {
    uint8_t *u8;
    const float (*lut)[256];
    float *f32;
    size_t f32_plane, f32_stride;
} win_out;

static size_t win_stride(int ww) { return (size_t)(ww + ET_WPAD - 1) / ET_WPAD * ET_WPAD; }

static et_status resample_window(const canvas *cv, int rw, int rh, int wx0, int wy0, int ww, int wh,
                                 et_preproc_simd simd, const win_out *out) {
    hrow_fn hrow = hrow_c;
    vrow_fn vrow = vrow_c;
    ET_TRY(pick_kernels(simd, &hrow, &vrow));
    const et_image *im = cv->img;
    coeffs ch = {0}, cvt = {0};
    hplan hp = {0};
    uint8_t *tmp = NULL, *last = NULL;
    et_status s = coeffs_make(cv->width, rw, wx0, ww, &ch);
    if (!s) s = coeffs_make(cv->height, rh, wy0, wh, &cvt);
    if (!s) s = hplan_make(cv, &ch, ww, &hp);
    if (s) goto done;
    // The canvas rows the window's rows read (first and last taps are nondecreasing).
    int y_first = cvt.first[0];
    int rows = cvt.first[wh - 1] + cvt.n[wh - 1] - y_first;
    size_t wpad = (size_t)hp.wpad, plane = (size_t)rows * wpad;
    tmp = malloc(3 * plane);
    last = malloc((size_t)im->width * 3 + 4);  // the last image row, readable past its end
    if (!tmp || !last) {
        s = et_err(ET_ERR_NOMEM, "resize: out of memory for %d x %d intermediate rows", ww, rows);
        goto done;
    }
    memcpy(last, im->data + (size_t)(im->height - 1) * (size_t)im->width * 3,
           (size_t)im->width * 3);
    memset(last + (size_t)im->width * 3, 0, 4);
    for (int r = 0; r < rows; r++) {
        int sy = y_first + r - cv->y0;
        uint8_t *o = tmp + (size_t)r * wpad;
        if (sy < 0 || sy >= im->height) {
            for (int c = 0; c < 3; c++) memcpy(o + c * plane, hp.bgrow + c * wpad, wpad);
            continue;
        }
        const uint8_t *src =
            sy == im->height - 1 ? last : im->data + (size_t)sy * (size_t)im->width * 3;
        hrow(src, &hp, o, o + plane, o + 2 * plane);
    }
    for (int y = 0; y < wh; y++) {
        const int32_t *k = cvt.kk + (size_t)y * (size_t)cvt.ksize;
        size_t first = (size_t)(cvt.first[y] - y_first) * wpad;
        for (int c = 0; c < 3; c++)
            vrow(tmp + c * plane + first, wpad, k, cvt.n[y], ww, (int)wpad,
                 out->u8 ? out->u8 + ((size_t)c * wh + y) * wpad : NULL,
                 out->lut ? out->lut[c] : NULL,
                 out->f32 ? out->f32 + c * out->f32_plane + y * out->f32_stride : NULL);
    }
done:
    free(tmp);
    free(last);
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
    win_out wo = {.lut = lut, .f32_plane = plane, .f32_stride = (size_t)S};
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
