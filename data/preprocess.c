// data/preprocess.c - see preprocess.h
#include "preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ET_PREPROC_MAX_SIDE 8192       // resize / crop outputs
#define ET_PREPROC_MAX_PAD_SIDE 65536  // the LLaVA pad square (never materialised)
#define ET_RESAMPLE_BITS 22            // fixed-point precision of the resampling coefficients

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

// ---- Pillow's resampling -------------------------------------------------------------

static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct {
    int ksize;
    int *bounds;  // per output index: first input index, number of taps
    int32_t *kk;  // per output index: ksize fixed-point coefficients
} coeffs;

static void coeffs_free(coeffs *c) {
    free(c->bounds);
    free(c->kk);
}

static et_status coeffs_make(int in_size, int out_size, coeffs *c) {
    memset(c, 0, sizeof(*c));
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *k = malloc(sizeof(double) * (size_t)ksize);
    c->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
    c->kk = malloc(sizeof(int32_t) * (size_t)ksize * (size_t)out_size);
    if (!k || !c->bounds || !c->kk) {
        free(k);
        coeffs_free(c);
        return et_err(ET_ERR_NOMEM, "resize: out of memory for %d x %d coefficients", out_size,
                      ksize);
    }
    c->ksize = ksize;
    double ss = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; xx++) {
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
        int32_t *kx = c->kk + (size_t)xx * (size_t)ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? (ww != 0.0 ? k[x] / ww : k[x]) : 0.0;
            v *= (double)(1 << ET_RESAMPLE_BITS);
            kx[x] = (int32_t)(v < 0 ? v - 0.5 : v + 0.5);
        }
        c->bounds[2 * xx] = xmin;
        c->bounds[2 * xx + 1] = xmax;
    }
    free(k);
    return NULL;
}

static inline uint8_t clip8(int64_t acc) {
    int64_t v = acc >> ET_RESAMPLE_BITS;  // arithmetic shift: floor, as Pillow
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

// Horizontal pass: canvas rows [y_first, y_first + rows) into out (out_w x rows). The sum
// over a row is split into the taps on background (a per-column constant) and the taps on
// image pixels; integer addition makes that exactly Pillow's sum over the whole row.
static et_status resample_h(const canvas *cv, int y_first, int rows, const coeffs *c, int out_w,
                            uint8_t *out) {
    const et_image *im = cv->img;
    int64_t *bgpart = malloc(sizeof(int64_t) * 3 * (size_t)out_w);
    uint8_t *bgrow = malloc((size_t)out_w * 3);
    if (!bgpart || !bgrow) {
        free(bgpart);
        free(bgrow);
        return et_err(ET_ERR_NOMEM, "resize: out of memory");
    }
    for (int xx = 0; xx < out_w; xx++) {
        int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
        const int32_t *k = c->kk + (size_t)xx * (size_t)c->ksize;
        int64_t all = 0, on_bg = 0;
        for (int x = 0; x < n; x++) {
            all += k[x];
            if (x + xmin < cv->x0 || x + xmin >= cv->x0 + im->width) on_bg += k[x];
        }
        for (int ch = 0; ch < 3; ch++) {
            bgpart[3 * xx + ch] = (1 << (ET_RESAMPLE_BITS - 1)) + cv->bg[ch] * on_bg;
            bgrow[3 * xx + ch] = clip8((1 << (ET_RESAMPLE_BITS - 1)) + cv->bg[ch] * all);
        }
    }
    for (int y = 0; y < rows; y++) {
        int sy = y + y_first - cv->y0;
        uint8_t *dst = out + (size_t)y * (size_t)out_w * 3;
        if (sy < 0 || sy >= im->height) {
            memcpy(dst, bgrow, (size_t)out_w * 3);
            continue;
        }
        const uint8_t *src = im->data + (size_t)sy * (size_t)im->width * 3;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = c->bounds[2 * xx], n = c->bounds[2 * xx + 1];
            const int32_t *k = c->kk + (size_t)xx * (size_t)c->ksize;
            int lo = xmin > cv->x0 ? xmin : cv->x0;
            int hi = xmin + n < cv->x0 + im->width ? xmin + n : cv->x0 + im->width;
            int64_t s0 = bgpart[3 * xx], s1 = bgpart[3 * xx + 1], s2 = bgpart[3 * xx + 2];
            for (int x = lo; x < hi; x++) {
                const uint8_t *p = src + (size_t)(x - cv->x0) * 3;
                int64_t kx = k[x - xmin];
                s0 += p[0] * kx;
                s1 += p[1] * kx;
                s2 += p[2] * kx;
            }
            dst[3 * xx] = clip8(s0);
            dst[3 * xx + 1] = clip8(s1);
            dst[3 * xx + 2] = clip8(s2);
        }
    }
    free(bgpart);
    free(bgrow);
    return NULL;
}

// Vertical pass: out (w x out_h) from in (w wide); bounds are relative to in's first row.
static void resample_v(const uint8_t *in, int w, const coeffs *c, int out_h, uint8_t *out) {
    size_t stride = (size_t)w * 3;
    for (int yy = 0; yy < out_h; yy++) {
        int ymin = c->bounds[2 * yy], n = c->bounds[2 * yy + 1];
        const int32_t *k = c->kk + (size_t)yy * (size_t)c->ksize;
        uint8_t *dst = out + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++) {
            int64_t s = 1 << (ET_RESAMPLE_BITS - 1);
            for (int y = 0; y < n; y++) s += in[(size_t)(y + ymin) * stride + i] * (int64_t)k[y];
            dst[i] = clip8(s);
        }
    }
}

static et_status check_side(const char *what, int v) {
    if (v <= 0 || v > ET_PREPROC_MAX_SIDE)
        return et_err(ET_ERR_INVALID, "%s %d must be in 1..%d", what, v, ET_PREPROC_MAX_SIDE);
    return NULL;
}

// Pillow's Image.resize(BICUBIC) of the canvas (materialised or not, the same pixels).
static et_status resize_canvas(const canvas *cv, int out_w, int out_h, et_image *out) {
    memset(out, 0, sizeof(*out));
    ET_TRY(check_side("resize: output width", out_w));
    ET_TRY(check_side("resize: output height", out_h));
    ET_TRY(et_image_alloc(out_w, out_h, out));
    bool need_h = out_w != cv->width, need_v = out_h != cv->height;
    if (!need_h && !need_v) {  // Pillow returns a copy
        for (int y = 0; y < out_h; y++)
            canvas_row(cv, y, out->data + (size_t)y * (size_t)out_w * 3);
        return NULL;
    }
    coeffs ch = {0}, cvert = {0};
    uint8_t *tmp = NULL;
    et_status s = coeffs_make(cv->width, out_w, &ch);
    if (!s) s = coeffs_make(cv->height, out_h, &cvert);
    if (s) goto done;
    // Only the rows the vertical pass reads go through the horizontal pass.
    int y_first = cvert.bounds[0];
    int rows = cvert.bounds[2 * out_h - 2] + cvert.bounds[2 * out_h - 1] - y_first;
    if (!need_v) {
        s = resample_h(cv, 0, out_h, &ch, out_w, out->data);
        goto done;
    }
    tmp = malloc((size_t)out_w * (size_t)rows * 3);
    if (!tmp) {
        s = et_err(ET_ERR_NOMEM, "resize: out of memory for %d x %d intermediate rows", out_w,
                   rows);
        goto done;
    }
    if (need_h) {
        s = resample_h(cv, y_first, rows, &ch, out_w, tmp);
        if (s) goto done;
    } else {
        for (int y = 0; y < rows; y++)
            canvas_row(cv, y + y_first, tmp + (size_t)y * (size_t)out_w * 3);
    }
    for (int i = 0; i < out_h; i++) cvert.bounds[2 * i] -= y_first;
    resample_v(tmp, out_w, &cvert, out_h, out->data);
done:
    if (s) et_image_free(out);
    free(tmp);
    coeffs_free(&ch);
    coeffs_free(&cvert);
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
    return resize_canvas(&cv, out_w, out_h, out);
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

void et_clip_normalize(const uint8_t *hwc, int h, int w, const float mean[3], const float std[3],
                       float *chw) {
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = (float)((double)v * (1.0 / 255.0));  // HF rescale: float64, then f32
            lut[c][v] = (x - mean[c]) / std[c];            // HF normalize: float32
        }
    size_t n = (size_t)h * (size_t)w;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) chw[(size_t)c * n + i] = lut[c][hwc[3 * i + c]];
}

et_status et_clip_preprocess(const et_image *img, const et_clip_preproc *p, et_tensor **u8_hwc,
                             et_tensor **f32_chw) {
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
    // The pad square is never materialised (see resize_canvas); its side is bounded so the
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
    et_image rs = {0}, cr = {0};
    et_status s = resize_canvas(&cv, rw, rh, &rs);
    if (!s) s = et_image_center_crop(&rs, p->crop, p->crop, &cr);
    if (!s && u8_hwc) {
        *u8_hwc = et_empty(ET_U8, 3, (int64_t[]){p->crop, p->crop, 3});
        memcpy(et_data(*u8_hwc), cr.data, (size_t)p->crop * (size_t)p->crop * 3);
    }
    if (!s && f32_chw) {
        *f32_chw = et_empty(ET_F32, 3, (int64_t[]){3, p->crop, p->crop});
        et_clip_normalize(cr.data, p->crop, p->crop, p->mean, p->std, et_data(*f32_chw));
    }
    et_image_free(&rs);
    et_image_free(&cr);
    return s;
}
