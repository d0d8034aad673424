// data/image.c - see image.h
//
// libjpeg and libpng report fatal errors through callbacks that must not return; ours
// longjmp back to the setjmp in jpeg_run / png_run. Everything those functions allocate
// lives in a context struct owned by their caller (not in locals of the function that
// called setjmp), so nothing is lost or clobbered by the longjmp and the caller frees it.
#include "image.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// clang-format off: jpeglib.h needs stdio.h first
#include <jerror.h>
#include <jpeglib.h>
#include <png.h>
// clang-format on

#define ET_IMAGE_MAX_FILE_BYTES ((long)1 << 31)  // 2 GiB
#define ET_JPEG_MAX_SCANS 500                    // progressive scans (libjpeg-turbo's tj limit)

static const char *display_name(const char *name) { return name ? name : "<memory>"; }

et_image_format et_image_sniff(const void *data, size_t size) {
    const uint8_t *p = data;
    if (size >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return ET_IMAGE_JPEG;
    if (size >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return ET_IMAGE_PNG;
    if (size >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
        return ET_IMAGE_GIF;
    if (size >= 2 && p[0] == 'B' && p[1] == 'M') return ET_IMAGE_BMP;
    if (size >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return ET_IMAGE_WEBP;
    if (size >= 4 && (memcmp(p, "II*\0", 4) == 0 || memcmp(p, "MM\0*", 4) == 0))
        return ET_IMAGE_TIFF;
    if (size >= 12 && memcmp(p + 4, "ftyp", 4) == 0) return ET_IMAGE_HEIF;
    return ET_IMAGE_UNKNOWN;
}

const char *et_image_format_name(et_image_format f) {
    switch (f) {
        case ET_IMAGE_JPEG:
            return "JPEG";
        case ET_IMAGE_PNG:
            return "PNG";
        case ET_IMAGE_GIF:
            return "GIF";
        case ET_IMAGE_BMP:
            return "BMP";
        case ET_IMAGE_WEBP:
            return "WebP";
        case ET_IMAGE_TIFF:
            return "TIFF";
        case ET_IMAGE_HEIF:
            return "HEIF/AVIF";
        default:
            return "unknown";
    }
}

et_status et_image_alloc(int width, int height, et_image *out) {
    memset(out, 0, sizeof(*out));
    if (width <= 0 || height <= 0)
        return et_err(ET_ERR_INVALID, "image size %dx%d must be positive", width, height);
    size_t n = (size_t)width * (size_t)height * 3;
    out->data = malloc(n);
    if (!out->data)
        return et_err(ET_ERR_NOMEM, "out of memory for a %dx%d image (%zu bytes)", width, height,
                      n);
    out->width = width;
    out->height = height;
    return NULL;
}

void et_image_free(et_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof(*img));
}

static et_status check_pixels(const char *name, const char *fmt, uint64_t w, uint64_t h,
                              int64_t max_pixels) {
    if (w == 0 || h == 0)
        return et_err(ET_ERR_FORMAT, "%s: %s declares an empty image (%llux%llu)", name, fmt,
                      (unsigned long long)w, (unsigned long long)h);
    if (w > INT_MAX || h > INT_MAX || w * h > (uint64_t)max_pixels)
        return et_err(ET_ERR_NOMEM,
                      "%s: %s image is %llux%llu = %llu pixels, more than the limit of %lld "
                      "pixels",
                      name, fmt, (unsigned long long)w, (unsigned long long)h,
                      (unsigned long long)(w * h), (long long)max_pixels);
    return NULL;
}

// ---- JPEG ----------------------------------------------------------------------------

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    bool truncated;
} jpeg_err;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    struct jpeg_progress_mgr progress;
    bool created;
    const uint8_t *buf;
    size_t size;
    int64_t max_pixels;
    const char *name;
    et_status status;  // set before a non-libjpeg failure
    uint8_t *row;
    et_image img;
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

// Whether a libjpeg warning (code, formatted text) means the compressed scan is damaged, so
// the rows it decodes are garbage (Pillow raises "broken data stream"): bad Huffman or
// arithmetic code, premature end of a data segment, a lost restart marker ("Corrupt JPEG
// data: ..."), invalid SOS parameters, an inconsistent progression. Extraneous bytes before
// a marker and a bad ICC marker leave the pixels intact. (Matched on the text as well as
// the code: JWRN_ARITH_BAD_CODE exists only in some libjpeg builds.)
static bool jpeg_warning_is_corrupt(int code, const char *text) {
    if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_BOGUS_ICC) return false;
    return code == JWRN_BOGUS_PROGRESSION || code == JWRN_NOT_SEQUENTIAL ||
           code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_MUST_RESYNC ||
           !strncmp(text, "Corrupt JPEG data", 17);
}

// Warnings (msg_level -1): a premature end of data or a damaged scan is fatal, the rest
// (extraneous bytes before a marker, ...) are counted.
static void jpeg_on_message(j_common_ptr c, int level) {
    jpeg_err *e = (jpeg_err *)c->err;
    if (level >= 0) return;  // trace messages
    if (c->err->msg_code == JWRN_JPEG_EOF) {
        snprintf(e->msg, sizeof(e->msg), "the data ends before the image does");
        e->truncated = true;
        longjmp(e->jb, 1);
    }
    char w[JMSG_LENGTH_MAX];
    c->err->format_message(c, w);
    if (jpeg_warning_is_corrupt(c->err->msg_code, w)) {
        snprintf(e->msg, sizeof(e->msg), "the compressed scan is damaged (libjpeg: %.150s)", w);
        longjmp(e->jb, 1);
    }
    c->err->num_warnings++;
}

static void jpeg_on_progress(j_common_ptr c) {
    struct jpeg_decompress_struct *d = (struct jpeg_decompress_struct *)c;
    if (d->input_scan_number > ET_JPEG_MAX_SCANS) {
        jpeg_err *e = (jpeg_err *)c->err;
        snprintf(e->msg, sizeof(e->msg), "more than %d scans", ET_JPEG_MAX_SCANS);
        longjmp(e->jb, 1);
    }
}

// Pillow's MULDIV255(a, b): a * b / 255 rounded, exact for 8-bit operands.
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

// Returns 0 on success; -1 after a libjpeg error (ctx->err) or a status (ctx->status).
static int jpeg_run(jpeg_ctx *ctx) {
    struct jpeg_decompress_struct *ci = &ctx->cinfo;
    ci->err = jpeg_std_error(&ctx->err.pub);
    ctx->err.pub.error_exit = jpeg_on_error;
    ctx->err.pub.emit_message = jpeg_on_message;
    if (setjmp(ctx->err.jb)) return -1;
    jpeg_create_decompress(ci);
    ctx->created = true;
    ctx->progress.progress_monitor = jpeg_on_progress;
    ci->progress = &ctx->progress;
    jpeg_mem_src(ci, ctx->buf, (unsigned long)ctx->size);
    jpeg_read_header(ci, TRUE);
    ctx->status =
        check_pixels(ctx->name, "JPEG", ci->image_width, ci->image_height, ctx->max_pixels);
    if (ctx->status) return -1;
    // Bound libjpeg's big buffers (progressive coefficients: 2 bytes per sample per
    // component, 4 components at most) so a hostile header cannot ask for more.
    ci->mem->max_memory_to_use =
        (long)(12 * (uint64_t)ci->image_width * ci->image_height) + ((long)64 << 20);
    switch (ci->num_components) {
        case 1:  // libjpeg-turbo replicates grey into R = G = B itself
        case 3:
            ci->out_color_space = JCS_RGB;
            break;
        case 4:
            ci->out_color_space = JCS_CMYK;
            break;
        default:
            ctx->status = et_err(ET_ERR_UNSUPPORTED, "%s: JPEG with %d colour components",
                                 ctx->name, ci->num_components);
            return -1;
    }
    ci->dct_method = JDCT_ISLOW;
    ci->do_fancy_upsampling = TRUE;
    jpeg_start_decompress(ci);
    int w = (int)ci->output_width, h = (int)ci->output_height, nc = ci->output_components;
    ctx->status = et_image_alloc(w, h, &ctx->img);
    if (ctx->status) return -1;
    if (nc != 3) {
        ctx->row = malloc((size_t)w * (size_t)nc);
        if (!ctx->row) {
            ctx->status = et_err(ET_ERR_NOMEM, "%s: out of memory", ctx->name);
            return -1;
        }
    }
    while (ci->output_scanline < ci->output_height) {
        int y = (int)ci->output_scanline;
        uint8_t *dst = ctx->img.data + (size_t)y * (size_t)w * 3;
        if (nc == 3) {  // straight into the image, up to 4 rows per call
            JSAMPROW rp[4];
            int n = h - y < 4 ? h - y : 4;
            for (int i = 0; i < n; i++) rp[i] = dst + (size_t)i * (size_t)w * 3;
            if (jpeg_read_scanlines(ci, rp, (JDIMENSION)n) == 0) {
                ctx->status =
                    et_err(ET_ERR_FORMAT, "%s: truncated JPEG (row %d of %d)", ctx->name, y, h);
                return -1;
            }
            continue;
        }
        JSAMPROW rp = ctx->row;
        if (jpeg_read_scanlines(ci, &rp, 1) != 1) {
            ctx->status =
                et_err(ET_ERR_FORMAT, "%s: truncated JPEG (row %d of %d)", ctx->name, y, h);
            return -1;
        }
        const uint8_t *src = ctx->row;
        for (int x = 0; x < w; x++) {  // inverted CMYK -> RGB, as Pillow's "CMYK;I" + cmyk2rgb
            int nk = src[4 * x + 3];   // 255 - K, K being the inverted stored value
            for (int c = 0; c < 3; c++) {
                int v = nk - muldiv255(255 - src[4 * x + c], nk);
                dst[3 * x + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
    // jpeg_finish_decompress is not called: it would demand the EOI marker, which Pillow
    // does not need either.
    return 0;
}

static et_status decode_jpeg(const uint8_t *buf, size_t size, const char *name, int64_t max_pixels,
                             et_image *out) {
    jpeg_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) return et_err(ET_ERR_NOMEM, "%s: out of memory", name);
    ctx->buf = buf;
    ctx->size = size;
    ctx->name = name;
    ctx->max_pixels = max_pixels;
    et_status s = NULL;
    if (jpeg_run(ctx) != 0) {
        s = ctx->status ? ctx->status
                        : et_err(ET_ERR_FORMAT, "%s: %s JPEG: %s", name,
                                 ctx->err.truncated ? "truncated" : "corrupt", ctx->err.msg);
        et_image_free(&ctx->img);
    } else {
        *out = ctx->img;
    }
    if (ctx->created) jpeg_destroy_decompress(&ctx->cinfo);
    free(ctx->row);
    free(ctx);
    return s;
}

// ---- PNG -----------------------------------------------------------------------------

typedef struct {
    jmp_buf jb;
    char msg[256];
    bool truncated;
    png_structp png;
    png_infop info;
    const uint8_t *buf;
    size_t size, pos;
    int64_t max_pixels;
    const char *name;
    et_status status;
    uint8_t *pixels;  // decoded rows, rowbytes each
    png_bytep *rows;
    et_image img;
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof(ctx->msg), "%s", msg);
    longjmp(ctx->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep dst, size_t n) {
    png_ctx *ctx = png_get_io_ptr(png);
    if (n > ctx->size - ctx->pos) {
        ctx->truncated = true;
        png_error(png, "the data ends before the image does");
    }
    memcpy(dst, ctx->buf + ctx->pos, n);
    ctx->pos += n;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int png_run(png_ctx *ctx) {
    if (setjmp(ctx->jb)) return -1;
    // The pixel limit, from the IHDR bytes before libpng reads anything more.
    if (ctx->size >= 24 && memcmp(ctx->buf + 12, "IHDR", 4) == 0) {
        ctx->status = check_pixels(ctx->name, "PNG", be32(ctx->buf + 16), be32(ctx->buf + 20),
                                   ctx->max_pixels);
        if (ctx->status) return -1;
    }
    ctx->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_on_error, png_on_warning);
    if (!ctx->png) {
        ctx->status = et_err(ET_ERR_NOMEM, "%s: cannot create a PNG reader", ctx->name);
        return -1;
    }
    ctx->info = png_create_info_struct(ctx->png);
    if (!ctx->info) {
        ctx->status = et_err(ET_ERR_NOMEM, "%s: cannot create a PNG reader", ctx->name);
        return -1;
    }
    png_set_read_fn(ctx->png, ctx, png_on_read);
    png_read_info(ctx->png, ctx->info);
    png_uint_32 w = png_get_image_width(ctx->png, ctx->info);
    png_uint_32 h = png_get_image_height(ctx->png, ctx->info);
    ctx->status = check_pixels(ctx->name, "PNG", w, h, ctx->max_pixels);
    if (ctx->status) return -1;
    int color = png_get_color_type(ctx->png, ctx->info);
    int depth = png_get_bit_depth(ctx->png, ctx->info);
    // 16-bit grey without alpha: Pillow opens it as I;16 and clips to 255 when converting.
    bool clip16 = color == PNG_COLOR_TYPE_GRAY && depth == 16;
    // Everything else: libpng's transforms give 8-bit RGB rows straight into the image
    // (palette looked up, 1/2/4-bit grey scaled, high byte of 16-bit samples, grey
    // replicated, alpha and tRNS dropped).
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(ctx->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(ctx->png);
    if (depth == 16 && !clip16) png_set_strip_16(ctx->png);  // keeps the high byte
    if (!clip16) {
        png_set_strip_alpha(ctx->png);
        if (!(color & PNG_COLOR_MASK_COLOR)) png_set_gray_to_rgb(ctx->png);
    }
    png_set_interlace_handling(ctx->png);
    png_read_update_info(ctx->png, ctx->info);
    int nc = png_get_channels(ctx->png, ctx->info);
    size_t rowbytes = png_get_rowbytes(ctx->png, ctx->info);
    if (clip16 ? nc != 1 || rowbytes != (size_t)w * 2 : nc != 3 || rowbytes != (size_t)w * 3) {
        ctx->status = et_err(ET_ERR_UNSUPPORTED, "%s: PNG colour type %d, bit depth %d", ctx->name,
                             color, depth);
        return -1;
    }
    ctx->status = et_image_alloc((int)w, (int)h, &ctx->img);
    if (ctx->status) return -1;
    ctx->rows = malloc(sizeof(png_bytep) * h);
    if (clip16) ctx->pixels = malloc(rowbytes * h);
    if (!ctx->rows || (clip16 && !ctx->pixels)) {
        ctx->status = et_err(ET_ERR_NOMEM, "%s: out of memory for a %ux%u PNG", ctx->name,
                             (unsigned)w, (unsigned)h);
        return -1;
    }
    for (png_uint_32 y = 0; y < h; y++)
        ctx->rows[y] = clip16 ? ctx->pixels + rowbytes * y : ctx->img.data + (size_t)y * w * 3;
    png_read_image(ctx->png, ctx->rows);
    // Nothing after the image data is needed (Pillow does not read up to IEND either).
    for (png_uint_32 y = 0; clip16 && y < h; y++) {
        const uint8_t *src = ctx->rows[y];
        uint8_t *dst = ctx->img.data + (size_t)y * w * 3;
        for (png_uint_32 x = 0; x < w; x++) {
            int v = src[2 * x] << 8 | src[2 * x + 1];  // PNG samples are big-endian
            dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = (uint8_t)(v > 255 ? 255 : v);
        }
    }
    return 0;
}

static et_status decode_png(const uint8_t *buf, size_t size, const char *name, int64_t max_pixels,
                            et_image *out) {
    png_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!ctx) return et_err(ET_ERR_NOMEM, "%s: out of memory", name);
    ctx->buf = buf;
    ctx->size = size;
    ctx->name = name;
    ctx->max_pixels = max_pixels;
    et_status s = NULL;
    if (png_run(ctx) != 0) {
        s = ctx->status ? ctx->status
                        : et_err(ET_ERR_FORMAT, "%s: %s PNG: %s", name,
                                 ctx->truncated ? "truncated" : "corrupt", ctx->msg);
        et_image_free(&ctx->img);
    } else {
        *out = ctx->img;
    }
    if (ctx->png) png_destroy_read_struct(&ctx->png, ctx->info ? &ctx->info : NULL, NULL);
    free(ctx->rows);
    free(ctx->pixels);
    free(ctx);
    return s;
}

// ---- entry points --------------------------------------------------------------------

et_status et_image_decode_memory(const void *data, size_t size, const char *name,
                                 const et_image_opts *opts, et_image *out) {
    memset(out, 0, sizeof(*out));
    name = display_name(name);
    int64_t max_pixels =
        opts && opts->max_pixels > 0 ? opts->max_pixels : ET_IMAGE_DEFAULT_MAX_PIXELS;
    if (size == 0) return et_err(ET_ERR_FORMAT, "%s: empty image data (0 bytes)", name);
    et_image_format f = et_image_sniff(data, size);
    if (f == ET_IMAGE_JPEG) return decode_jpeg(data, size, name, max_pixels, out);
    if (f == ET_IMAGE_PNG) return decode_png(data, size, name, max_pixels, out);
    if (f != ET_IMAGE_UNKNOWN)
        return et_err(ET_ERR_UNSUPPORTED, "%s: %s images are not supported (only JPEG and PNG)",
                      name, et_image_format_name(f));
    const uint8_t *p = data;
    char hex[3 * 8 + 1] = "";
    for (size_t i = 0; i < size && i < 8; i++) snprintf(hex + 3 * i, 4, "%02x ", p[i]);
    if (hex[0]) hex[strlen(hex) - 1] = '\0';
    return et_err(ET_ERR_UNSUPPORTED, "%s: unknown image format (not JPEG or PNG; first bytes %s)",
                  name, hex);
}

et_status et_image_decode_file(const char *path, const et_image_opts *opts, et_image *out) {
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return et_err(e == ENOENT ? ET_ERR_MISSING : ET_ERR_IO, "%s: cannot open image: %s", path,
                      strerror(e));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return et_err(ET_ERR_IO, "%s: cannot read image: not a regular file", path);
    }
    long n = (long)st.st_size;
    if (n == 0) {
        fclose(f);
        return et_err(ET_ERR_FORMAT, "%s: empty file (0 bytes)", path);
    }
    if (n > ET_IMAGE_MAX_FILE_BYTES) {
        fclose(f);
        return et_err(ET_ERR_NOMEM, "%s: file is %ld bytes, more than the 2 GiB image limit", path,
                      n);
    }
    uint8_t *buf = malloc((size_t)n);
    if (!buf) {
        fclose(f);
        return et_err(ET_ERR_NOMEM, "%s: out of memory reading %ld bytes", path, n);
    }
    size_t got = fread(buf, 1, (size_t)n, f);
    int rerr = ferror(f);
    fclose(f);
    if (got != (size_t)n || rerr) {
        free(buf);
        return et_err(ET_ERR_IO, "%s: read %zu of %ld bytes", path, got, n);
    }
    et_status s = et_image_decode_memory(buf, (size_t)n, path, opts, out);
    free(buf);
    return s;
}
