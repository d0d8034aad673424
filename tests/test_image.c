// tests/test_image.c - image decoders (data/image.h) and preprocessing building blocks
// (data/preprocess.h).
//
// Decoder paths: PNGs of every colour type / bit depth / interlace and JPEGs (grey, RGB,
// progressive, CMYK and YCCK with and without the Adobe marker) are written in memory with
// libpng / libjpeg and decoded back; PNG must be exact under Pillow's conversion rules,
// JPEG (flat colours at quality 100) within 2. Then a catalogue of bad inputs, each with
// its expected error code and message substring. Then resize sizes, expand2square, center
// crop with padding, resize invariants and normalization.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// clang-format off: jpeglib.h needs stdio.h first
#include <jpeglib.h>
#include <png.h>
// clang-format on

#include "../data/image.h"
#include "../data/preprocess.h"
#include "test_util.h"

#define IMG_DIR EMOTUNE_SOURCE_DIR "/tests/golden/images/"

// ---- helpers -------------------------------------------------------------------------

typedef struct {
    uint8_t *p;
    size_t n, cap;
} membuf;

static void mb_put(membuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void png_write_cb(png_structp png, png_bytep data, size_t n) {
    mb_put(png_get_io_ptr(png), data, n);
}
static void png_flush_cb(png_structp png) { (void)png; }

// Writes a PNG of raw rows (already packed for the bit depth, big-endian 16-bit).
static membuf make_png(int w, int h, int depth, int color, int interlace, const uint8_t *raw,
                       const png_color *pal, int npal, const uint8_t *trns, int ntrns,
                       const png_color_16 *trns_color) {
    membuf b = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) abort();
    png_set_write_fn(png, &b, png_write_cb, png_flush_cb);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns || trns_color) png_set_tRNS(png, info, trns, ntrns, trns_color);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)raw + rowbytes * (size_t)y;
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return b;
}

// Writes a JPEG from w*h*nc samples in colour space `in`, stored as `jpeg_cs`.
static membuf make_jpeg(int w, int h, int nc, J_COLOR_SPACE in, J_COLOR_SPACE jpeg_cs,
                        const uint8_t *px, int quality, int progressive, int adobe) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long outsize = 0;
    jpeg_mem_dest(&c, &out, &outsize);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = nc;
    c.in_color_space = in;
    jpeg_set_defaults(&c);
    jpeg_set_colorspace(&c, jpeg_cs);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    c.write_Adobe_marker = adobe ? TRUE : FALSE;
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)px + (size_t)c.next_scanline * (size_t)w * (size_t)nc;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    membuf b = {0};
    mb_put(&b, out, outsize);
    free(out);
    return b;
}

static membuf read_all(const char *path) {
    membuf b = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return b;
    uint8_t tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) mb_put(&b, tmp, n);
    fclose(f);
    return b;
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
}

static et_image decode_ok(const membuf *b, const char *what) {
    et_image img;
    et_status s = et_image_decode_memory(b->p, b->n, what, NULL, &img);
    CHECK(s == NULL, "%s: %s", what, et_status_msg(s));
    et_status_free(s);
    return img;
}

// Max |img - want| over all values (want: w*h*3), or 999 on a size mismatch.
static int max_diff(const et_image *img, int w, int h, const uint8_t *want) {
    if (!img->data || img->width != w || img->height != h) return 999;
    int m = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        int d = abs((int)img->data[i] - (int)want[i]);
        if (d > m) m = d;
    }
    return m;
}

// ---- PNG paths -----------------------------------------------------------------------

enum { W = 13, H = 7 };  // odd sizes exercise sub-byte row padding and Adam7 passes

static uint8_t sample(int x, int y, int c) { return (uint8_t)(x * 19 + y * 37 + c * 71 + 5); }

static void test_png_rgb_rgba_8_16(void) {
    uint8_t want[W * H * 3], rgb[W * H * 3], rgba[W * H * 4], rgb16[W * H * 6], rgba16[W * H * 8];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 4; c++) {
                int i = y * W + x;
                uint8_t v = sample(x, y, c);
                if (c < 3) want[i * 3 + c] = rgb[i * 3 + c] = v;
                rgba[i * 4 + c] = c == 3 ? (uint8_t)(x * 20) : v;  // alpha is dropped
                uint8_t lo = (uint8_t)(x * 3 + 200);               // low byte is dropped
                if (c < 3) rgb16[i * 6 + 2 * c] = v, rgb16[i * 6 + 2 * c + 1] = lo;
                rgba16[i * 8 + 2 * c] = c == 3 ? 0 : v;
                rgba16[i * 8 + 2 * c + 1] = lo;
            }
    png_color_16 tc = {0, 5, 24, 43, 0};  // tRNS colour: ignored, no compositing
    struct {
        const char *what;
        int depth, color;
        const uint8_t *raw;
        png_color_16 *trns;
    } cases[] = {
        {"rgb8", 8, PNG_COLOR_TYPE_RGB, rgb, NULL},
        {"rgb8+tRNS", 8, PNG_COLOR_TYPE_RGB, rgb, &tc},
        {"rgba8", 8, PNG_COLOR_TYPE_RGBA, rgba, NULL},
        {"rgb16", 16, PNG_COLOR_TYPE_RGB, rgb16, NULL},
        {"rgba16", 16, PNG_COLOR_TYPE_RGBA, rgba16, NULL},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
        for (int il = 0; il < 2; il++) {
            membuf b = make_png(W, H, cases[k].depth, cases[k].color, il, cases[k].raw, NULL, 0,
                                NULL, 0, cases[k].trns);
            et_image img = decode_ok(&b, cases[k].what);
            CHECK(max_diff(&img, W, H, want) == 0, "%s interlace=%d", cases[k].what, il);
            et_image_free(&img);
            free(b.p);
        }
}

static void test_png_grey(void) {
    // grey 1/2/4/8 bits, grey+alpha 8/16, grey 16 (clipped like Pillow's I;16 -> RGB)
    for (int depth = 1; depth <= 16; depth *= 2) {
        int maxv = (1 << depth) - 1;
        uint8_t raw[W * H * 2] = {0};
        uint8_t want[W * H * 3];
        size_t rowbytes = ((size_t)W * depth + 7) / 8;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int v = (x * 7 + y * 5) % (maxv + 1);
                if (depth == 16) v = (x * 60 + y * 9) % 600;  // some above 255
                if (depth == 16) {
                    raw[y * rowbytes + 2 * x] = (uint8_t)(v >> 8);
                    raw[y * rowbytes + 2 * x + 1] = (uint8_t)v;
                } else {
                    int bit = x * depth;
                    raw[y * rowbytes + bit / 8] |= (uint8_t)(v << (8 - depth - bit % 8));
                }
                int e = depth == 16 ? (v > 255 ? 255 : v) : v * 255 / maxv;
                for (int c = 0; c < 3; c++) want[(y * W + x) * 3 + c] = (uint8_t)e;
            }
        for (int il = 0; il < 2; il++) {
            char what[32];
            snprintf(what, sizeof(what), "grey%d", depth);
            membuf b = make_png(W, H, depth, PNG_COLOR_TYPE_GRAY, il, raw, NULL, 0, NULL, 0, NULL);
            et_image img = decode_ok(&b, what);
            CHECK(max_diff(&img, W, H, want) == 0, "%s interlace=%d", what, il);
            et_image_free(&img);
            free(b.p);
        }
    }
    for (int depth = 8; depth <= 16; depth *= 2) {
        int bpp = depth / 8 * 2;
        uint8_t raw[W * H * 4], want[W * H * 3];
        for (int i = 0; i < W * H; i++) {
            uint8_t v = (uint8_t)(i * 11);
            raw[i * bpp] = v;
            for (int k = 1; k < bpp; k++) raw[i * bpp + k] = (uint8_t)(i * 3 + k);
            want[i * 3] = want[i * 3 + 1] = want[i * 3 + 2] = v;
        }
        membuf b = make_png(W, H, depth, PNG_COLOR_TYPE_GRAY_ALPHA, 0, raw, NULL, 0, NULL, 0, NULL);
        et_image img = decode_ok(&b, "grey+alpha");
        CHECK(max_diff(&img, W, H, want) == 0, "grey+alpha depth %d", depth);
        et_image_free(&img);
        free(b.p);
    }
}

static void test_png_palette(void) {
    png_color pal[16];
    for (int i = 0; i < 16; i++)
        pal[i] = (png_color){(uint8_t)(i * 16), (uint8_t)(255 - i * 9), (uint8_t)(i * i)};
    uint8_t trns[3] = {0, 128, 255};
    for (int depth = 1; depth <= 8; depth *= 2) {
        int npal = depth == 1 ? 2 : depth == 2 ? 4 : 16;
        size_t rowbytes = ((size_t)W * depth + 7) / 8;
        uint8_t raw[W * H] = {0}, want[W * H * 3];
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int v = (x + 3 * y) % npal, bit = x * depth;
                raw[y * rowbytes + bit / 8] |= (uint8_t)(v << (8 - depth - bit % 8));
                want[(y * W + x) * 3] = pal[v].red;
                want[(y * W + x) * 3 + 1] = pal[v].green;
                want[(y * W + x) * 3 + 2] = pal[v].blue;
            }
        for (int t = 0; t < 2; t++) {
            membuf b = make_png(W, H, depth, PNG_COLOR_TYPE_PALETTE, t, raw, pal, npal,
                                t ? trns : NULL, t ? (npal < 3 ? npal : 3) : 0, NULL);
            et_image img = decode_ok(&b, "palette");
            CHECK(max_diff(&img, W, H, want) == 0, "palette depth %d tRNS=%d", depth, t);
            et_image_free(&img);
            free(b.p);
        }
    }
}

// ---- JPEG paths ----------------------------------------------------------------------

enum { JW = 24, JH = 16 };

static void test_jpeg_grey_rgb_progressive(void) {
    uint8_t grey[JW * JH], rgb[JW * JH * 3], want_g[JW * JH * 3], want_rgb[JW * JH * 3];
    for (int i = 0; i < JW * JH; i++) {
        grey[i] = 77;
        for (int c = 0; c < 3; c++) {
            want_g[i * 3 + c] = 77;
            rgb[i * 3 + c] = want_rgb[i * 3 + c] = (uint8_t)(40 + 80 * c);
        }
    }
    membuf g = make_jpeg(JW, JH, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, grey, 100, 0, 0);
    et_image img = decode_ok(&g, "grey.jpg");
    CHECK(max_diff(&img, JW, JH, want_g) == 0, "greyscale JPEG");
    et_image_free(&img);
    for (int prog = 0; prog < 2; prog++) {
        membuf b = make_jpeg(JW, JH, 3, JCS_RGB, JCS_YCbCr, rgb, 100, prog, 0);
        img = decode_ok(&b, prog ? "progressive.jpg" : "baseline.jpg");
        CHECK(max_diff(&img, JW, JH, want_rgb) <= 2, "RGB JPEG progressive=%d: diff %d", prog,
              max_diff(&img, JW, JH, want_rgb));
        et_image_free(&img);
        free(b.p);
    }
    free(g.p);
    // The committed fixtures: decoded sizes (pixel parity with Pillow is in the golden test).
    const char *names[] = {"astronaut_q90.jpg", "rocket_portrait_prog.jpg", "chelsea_grey.jpg",
                           "coffee_cmyk.jpg"};
    const int sizes[][2] = {{512, 512}, {280, 427}, {451, 300}, {300, 200}};
    for (int k = 0; k < 4; k++) {
        char path[512];
        snprintf(path, sizeof(path), IMG_DIR "%s", names[k]);
        et_status s = et_image_decode_file(path, NULL, &img);
        CHECK(s == NULL, "%s", et_status_msg(s));
        et_status_free(s);
        CHECK(img.width == sizes[k][0] && img.height == sizes[k][1], "%s: %dx%d", names[k],
              img.width, img.height);
        et_image_free(&img);
    }
}

static void test_jpeg_cmyk_ycck(void) {
    // Pillow reads every 4-component JPEG as inverted CMYK: stored = 255 - C. For
    // (C, M, Y, K) = (10, 20, 30, 40), Pillow's cmyk2rgb gives (207, 198, 190).
    uint8_t px[JW * JH * 4], want[JW * JH * 3];
    const uint8_t cmyk[4] = {10, 20, 30, 40}, rgb[3] = {207, 198, 190};
    for (int i = 0; i < JW * JH; i++)
        for (int c = 0; c < 4; c++) {
            px[i * 4 + c] = (uint8_t)(255 - cmyk[c]);
            if (c < 3) want[i * 3 + c] = rgb[c];
        }
    J_COLOR_SPACE spaces[2] = {JCS_CMYK, JCS_YCCK};
    for (int k = 0; k < 2; k++)
        for (int adobe = 0; adobe < 2; adobe++) {
            if (spaces[k] == JCS_YCCK && !adobe) continue;  // YCCK needs the Adobe marker
            membuf b = make_jpeg(JW, JH, 4, JCS_CMYK, spaces[k], px, 100, 0, adobe);
            et_image img = decode_ok(&b, "cmyk.jpg");
            int d = max_diff(&img, JW, JH, want);
            CHECK(d <= 2, "%s adobe=%d: diff %d (pixel 0 = %d %d %d)", k ? "YCCK" : "CMYK", adobe,
                  d, img.data ? img.data[0] : -1, img.data ? img.data[1] : -1,
                  img.data ? img.data[2] : -1);
            et_image_free(&img);
            free(b.p);
        }
}

// ---- bad inputs ----------------------------------------------------------------------

static void expect_err(et_status s, et_code code, const char *sub1, const char *sub2,
                       const char *what) {
    CHECK(s != NULL, "%s: expected an error", what);
    if (!s) return;
    const char *m = et_status_msg(s);
    CHECK(et_status_code(s) == code, "%s: code %d, want %d (%s)", what, et_status_code(s), code, m);
    CHECK(strstr(m, sub1) != NULL, "%s: message \"%s\" lacks \"%s\"", what, m, sub1);
    CHECK(!sub2 || strstr(m, sub2) != NULL, "%s: message \"%s\" lacks \"%s\"", what, m, sub2);
    printf("  %-28s -> %s\n", what, m);
    et_status_free(s);
}

static et_status decode_mem(const void *p, size_t n, const char *name, int64_t max_pixels,
                            et_image *img) {
    et_image_opts o = {max_pixels};
    et_status s = et_image_decode_memory(p, n, name, &o, img);
    CHECK(s || img->data, "%s: success without pixels", name);
    if (s) CHECK(img->data == NULL && img->width == 0, "%s: *out not zeroed on failure", name);
    return s;
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_bad_inputs(void) {
    et_image img;
    char tmp[] = "/tmp/et_test_image_XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) close(fd);

    // missing file, 0-byte file
    expect_err(et_image_decode_file("/nonexistent/dir/face.jpg", NULL, &img), ET_ERR_MISSING,
               "/nonexistent/dir/face.jpg", "cannot open image", "missing file");
    write_file(tmp, "", 0);
    expect_err(et_image_decode_file(tmp, NULL, &img), ET_ERR_FORMAT, tmp, "empty file (0 bytes)",
               "0-byte file");
    expect_err(et_image_decode_file("/tmp", NULL, &img), ET_ERR_IO, "/tmp", "not a regular file",
               "a directory");

    membuf jpg = read_all(IMG_DIR "astronaut_q90.jpg");
    membuf prog = read_all(IMG_DIR "rocket_portrait_prog.jpg");
    membuf png = read_all(IMG_DIR "chelsea_rgb.png");
    CHECK(jpg.n > 1000 && prog.n > 1000 && png.n > 1000, "fixtures missing");

    // truncated JPEG (baseline and progressive), through a file so the path is named
    write_file(tmp, jpg.p, jpg.n / 2);
    expect_err(et_image_decode_file(tmp, NULL, &img), ET_ERR_FORMAT, tmp, "truncated JPEG",
               "truncated baseline JPEG");
    expect_err(decode_mem(prog.p, prog.n * 2 / 3, "prog.jpg", 0, &img), ET_ERR_FORMAT, "prog.jpg",
               "truncated JPEG", "truncated progressive JPEG");
    expect_err(decode_mem(jpg.p, 200, "head.jpg", 0, &img), ET_ERR_FORMAT, "head.jpg",
               "truncated JPEG", "JPEG cut in its header");
    expect_err(decode_mem(jpg.p, jpg.n - 2, "noeoi.jpg", 0, &img), ET_ERR_FORMAT, "noeoi.jpg",
               "truncated JPEG", "JPEG without EOI");
    // truncated PNG: in the image data, and right after the signature
    write_file(tmp, png.p, png.n / 2);
    expect_err(et_image_decode_file(tmp, NULL, &img), ET_ERR_FORMAT, tmp, "truncated PNG",
               "truncated PNG");
    expect_err(decode_mem(png.p, 8, "sig.png", 0, &img), ET_ERR_FORMAT, "sig.png", "truncated PNG",
               "PNG signature only");

    // corrupt JPEG: SOF precision 12 (unsupported by this libjpeg build), garbage markers
    membuf bad = {0};
    mb_put(&bad, jpg.p, jpg.n);
    for (size_t i = 2; i + 4 < bad.n; i++)
        if (bad.p[i] == 0xFF && bad.p[i + 1] == 0xC0) {
            bad.p[i + 4] = 12;
            break;
        }
    expect_err(decode_mem(bad.p, bad.n, "p12.jpg", 0, &img), ET_ERR_FORMAT, "p12.jpg",
               "corrupt JPEG", "JPEG with 12-bit SOF");
    const uint8_t bogus[] = {0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x02, 0x08, 0x00, 0x10, 0x00, 0x10,
                             0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01};
    expect_err(decode_mem(bogus, sizeof(bogus), "bogus.jpg", 0, &img), ET_ERR_FORMAT, "bogus.jpg",
               "corrupt JPEG", "JPEG SOF with length 2");
    const uint8_t garbage[] = {0xFF, 0xD8, 0xFF, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                               0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f};
    expect_err(decode_mem(garbage, sizeof(garbage), "garbage.jpg", 0, &img), ET_ERR_FORMAT,
               "garbage.jpg", "JPEG", "JPEG magic then garbage");
    // corrupt PNG: a bad IHDR CRC
    bad.n = 0;
    mb_put(&bad, png.p, png.n);
    bad.p[29] ^= 0x55;
    expect_err(decode_mem(bad.p, bad.n, "crc.png", 0, &img), ET_ERR_FORMAT, "crc.png",
               "corrupt PNG", "PNG with a bad IHDR CRC");
    // corrupt PNG: zlib data overwritten
    bad.n = 0;
    mb_put(&bad, png.p, png.n);
    for (size_t i = 8; i + 8 < bad.n; i++)
        if (memcmp(bad.p + i, "IDAT", 4) == 0) {
            // keep the CRC valid so the inflate error is what is reported
            uint32_t len = (uint32_t)bad.p[i - 4] << 24 | (uint32_t)bad.p[i - 3] << 16 |
                           (uint32_t)bad.p[i - 2] << 8 | bad.p[i - 1];
            memset(bad.p + i + 4, 0xA5, len < 64 ? len : 64);
            put_be32(bad.p + i + 4 + len, crc32_png(bad.p + i, 4 + len));
            break;
        }
    expect_err(decode_mem(bad.p, bad.n, "zlib.png", 0, &img), ET_ERR_FORMAT, "zlib.png",
               "corrupt PNG", "PNG with corrupt zlib data");

    // a PNG declaring 100000 x 100000, crafted byte by byte with a valid IHDR CRC
    uint8_t huge[8 + 25 + 12];
    memcpy(huge, "\x89PNG\r\n\x1a\n", 8);
    put_be32(huge + 8, 13);
    memcpy(huge + 12, "IHDR", 4);
    put_be32(huge + 16, 100000);
    put_be32(huge + 20, 100000);
    memcpy(huge + 24, "\x08\x02\x00\x00\x00", 5);  // 8-bit RGB
    put_be32(huge + 29, crc32_png(huge + 12, 17));
    put_be32(huge + 33, 0);
    memcpy(huge + 37, "IEND", 4);
    put_be32(huge + 41, crc32_png(huge + 37, 4));
    write_file(tmp, huge, sizeof(huge));
    expect_err(et_image_decode_file(tmp, NULL, &img), ET_ERR_NOMEM, tmp, "100000x100000",
               "PNG 100000x100000");
    // the same check reached through libpng (IHDR not where the fast peek looks)
    // is covered by the pixel-limit cases below.

    // a JPEG whose SOF declares 65000 x 65000 (checked before libjpeg allocates)
    membuf small = read_all(IMG_DIR "astronaut_face_60x80.jpg");
    for (size_t i = 2; i + 9 < small.n; i++)
        if (small.p[i] == 0xFF && small.p[i + 1] == 0xC0) {
            small.p[i + 5] = 0xFD, small.p[i + 6] = 0xE8;  // height 65000
            small.p[i + 7] = 0xFD, small.p[i + 8] = 0xE8;  // width 65000
            break;
        }
    expect_err(decode_mem(small.p, small.n, "huge.jpg", 0, &img), ET_ERR_NOMEM, "huge.jpg",
               "65000x65000", "JPEG 65000x65000");

    // unknown formats
    const char gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    write_file(tmp, gif, sizeof(gif) - 1);
    expect_err(et_image_decode_file(tmp, NULL, &img), ET_ERR_UNSUPPORTED, tmp,
               "GIF images are not supported", "GIF file");
    const char text[] = "hello, this is not an image\n";
    expect_err(decode_mem(text, sizeof(text) - 1, "notes.jpg", 0, &img), ET_ERR_UNSUPPORTED,
               "notes.jpg", "unknown image format", "text file named .jpg");
    expect_err(decode_mem("RIFF\0\0\0\0WEBPVP8 ", 16, "x.webp", 0, &img), ET_ERR_UNSUPPORTED,
               "x.webp", "WebP", "WebP file");
    expect_err(decode_mem("\xff", 1, "one.jpg", 0, &img), ET_ERR_UNSUPPORTED, "one.jpg",
               "unknown image format", "1-byte file");
    expect_err(decode_mem("", 0, "zero", 0, &img), ET_ERR_FORMAT, "zero", "0 bytes",
               "0-byte buffer");

    // the pixel limit on real images (JPEG and PNG)
    expect_err(decode_mem(jpg.p, jpg.n, "astronaut.jpg", 512 * 512 - 1, &img), ET_ERR_NOMEM,
               "astronaut.jpg", "more than the limit of 262143 pixels", "JPEG over pixel limit");
    expect_err(decode_mem(png.p, png.n, "chelsea.png", 1000, &img), ET_ERR_NOMEM, "chelsea.png",
               "240x160 = 38400 pixels, more than the limit of 1000", "PNG over pixel limit");
    et_status s = decode_mem(jpg.p, jpg.n, "astronaut.jpg", 512 * 512, &img);
    CHECK(s == NULL, "exactly at the limit: %s", et_status_msg(s));
    et_status_free(s);
    et_image_free(&img);

    free(jpg.p);
    free(prog.p);
    free(png.p);
    free(bad.p);
    free(small.p);
    unlink(tmp);
}

// Offset of the first byte of entropy-coded data (after the SOS segment), or 0.
static size_t scan_start(const membuf *b) {
    for (size_t i = 2; i + 3 < b->n; i++)
        if (b->p[i] == 0xFF && b->p[i + 1] == 0xDA)
            return i + 2 + ((size_t)b->p[i + 2] << 8 | b->p[i + 3]);
    return 0;
}

// Flips bytes [from, to) of the scan, leaving 0xFF bytes and their successors (markers,
// stuffing) alone so only entropy-coded data is damaged.
static void damage_scan(membuf *b, size_t from, size_t to) {
    for (size_t i = from; i < to && i + 2 < b->n; i++)
        if (b->p[i] != 0xFF && b->p[i - 1] != 0xFF) b->p[i] ^= 0x3C;
}

// A JPEG whose compressed scan is damaged decodes to garbage rows: refused with the file
// named (Pillow raises "broken data stream"; LLaVA skips the file). The fixture is made
// here: a JPEG encoded by the test, then bytes of its scan flipped; the committed
// astronaut_q90.jpg damaged the same way too. Harmless warnings are still tolerated:
// extraneous bytes before the EOI marker decode to the same pixels.
static void test_jpeg_corrupt_scan_refused(void) {
    enum { W = 96, H = 80 };
    uint8_t *px = malloc(W * H * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) px[(y * W + x) * 3 + c] = sample(x, y, c);
    membuf jpg = make_jpeg(W, H, 3, JCS_RGB, JCS_YCbCr, px, 90, 0, 0);
    et_image ref = decode_ok(&jpg, "made.jpg");
    size_t sos = scan_start(&jpg);
    CHECK(sos > 0 && jpg.n > sos + 200, "no scan in the encoded JPEG (%zu bytes)", jpg.n);
    membuf bad = {malloc(jpg.n), jpg.n, jpg.n};
    memcpy(bad.p, jpg.p, jpg.n);
    damage_scan(&bad, sos + 40, bad.n - 40);
    et_image img;
    expect_err(decode_mem(bad.p, bad.n, "faces/damaged.jpg", 0, &img), ET_ERR_FORMAT,
               "faces/damaged.jpg: corrupt JPEG: the compressed scan is damaged (libjpeg: Corrupt "
               "JPEG data",
               NULL, "JPEG with a damaged scan");
    // extraneous bytes before EOI (FF D9): a warning, tolerated; same pixels
    CHECK(jpg.p[jpg.n - 2] == 0xFF && jpg.p[jpg.n - 1] == 0xD9, "no EOI at the end");
    membuf extra = {malloc(jpg.n + 3), jpg.n + 3, jpg.n + 3};
    memcpy(extra.p, jpg.p, jpg.n - 2);
    memcpy(extra.p + jpg.n - 2, "\x12\x34\x56\xFF\xD9", 5);
    img = decode_ok(&extra, "extra.jpg");
    CHECK(img.data && ref.data && !memcmp(img.data, ref.data, (size_t)W * H * 3),
          "extraneous bytes before EOI changed the pixels");
    et_image_free(&img), et_image_free(&ref);
    // the committed photo, damaged in the middle of its scan
    membuf photo = read_all(IMG_DIR "astronaut_q90.jpg");
    sos = scan_start(&photo);
    CHECK(sos > 0, "no SOS in astronaut_q90.jpg");
    damage_scan(&photo, sos + 2000, sos + 2400);
    expect_err(decode_mem(photo.p, photo.n, "astronaut_damaged.jpg", 0, &img), ET_ERR_FORMAT,
               "astronaut_damaged.jpg: corrupt JPEG: the compressed scan is damaged", NULL,
               "photo with a damaged scan");
    free(px), free(jpg.p), free(bad.p), free(extra.p), free(photo.p);
}

// ---- preprocessing -------------------------------------------------------------------

static void test_resize_size(void) {
    const int cases[][5] = {
        // w, h, S, want_w, want_h
        {640, 480, 336, 448, 336},  {480, 640, 336, 336, 448}, {60, 80, 336, 336, 448},
        {451, 300, 336, 505, 336},  {300, 451, 224, 224, 336}, {512, 512, 336, 336, 336},
        {1000, 3, 224, 74666, 224}, {337, 336, 336, 337, 336},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int w, h;
        et_clip_resize_size(cases[k][0], cases[k][1], cases[k][2], &w, &h);
        CHECK(w == cases[k][3] && h == cases[k][4], "%dx%d S=%d -> %dx%d, want %dx%d", cases[k][0],
              cases[k][1], cases[k][2], w, h, cases[k][3], cases[k][4]);
    }
}

static et_image ramp(int w, int h) {
    et_image im;
    et_status s = et_image_alloc(w, h, &im);
    CHECK(s == NULL, "alloc");
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) im.data[(y * w + x) * 3 + c] = (uint8_t)(x + 10 * y + c);
    return im;
}

static void test_expand2square(void) {
    const uint8_t bg[3] = {122, 116, 104};
    et_image wide = ramp(5, 2), tall = ramp(2, 5), sq;
    CHECK(et_image_expand2square(&wide, bg, &sq) == NULL, "expand");
    CHECK(sq.width == 5 && sq.height == 5, "wide -> 5x5");
    // y0 = (5 - 2) // 2 = 1: rows 1-2 hold the image, rows 0, 3, 4 background
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++) {
            const uint8_t *p = sq.data + (y * 5 + x) * 3;
            bool in = y >= 1 && y <= 2;
            CHECK(in ? p[0] == wide.data[((y - 1) * 5 + x) * 3] : (p[0] == 122 && p[2] == 104),
                  "wide (%d, %d)", x, y);
        }
    et_image_free(&sq);
    CHECK(et_image_expand2square(&tall, bg, &sq) == NULL, "expand");
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++) {
            const uint8_t *p = sq.data + (y * 5 + x) * 3;
            bool in = x >= 1 && x <= 2;
            CHECK(in ? p[1] == tall.data[(y * 2 + x - 1) * 3 + 1] : p[1] == 116, "tall (%d, %d)", x,
                  y);
        }
    et_image_free(&sq);
    et_image_free(&wide);
    et_image_free(&tall);
    et_clip_preproc p;
    et_clip_preproc_default(&p, 336);
    CHECK(p.pad_rgb[0] == 122 && p.pad_rgb[1] == 116 && p.pad_rgb[2] == 104, "pad colour");
}

static void test_center_crop(void) {
    et_image im = ramp(7, 4), cr;
    // larger than the crop: top = (4 - 2) // 2 = 1, left = (7 - 3) // 2 = 2
    CHECK(et_image_center_crop(&im, 3, 2, &cr) == NULL, "crop");
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++)
            CHECK(cr.data[(y * 3 + x) * 3] == im.data[((y + 1) * 7 + x + 2) * 3], "crop (%d,%d)", x,
                  y);
    et_image_free(&cr);
    // smaller: HF pads with zeros, ceil(d / 2) before: 7 -> 10 wide puts x0 at 2 (ceil 1.5),
    // 4 -> 9 high puts y0 at 3 (ceil 2.5)
    CHECK(et_image_center_crop(&im, 10, 9, &cr) == NULL, "pad crop");
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 10; x++) {
            bool in = x >= 2 && x < 9 && y >= 3 && y < 7;
            uint8_t want = in ? im.data[((y - 3) * 7 + x - 2) * 3 + 2] : 0;
            CHECK(cr.data[(y * 10 + x) * 3 + 2] == want, "pad crop (%d,%d)", x, y);
        }
    et_image_free(&cr);
    et_image_free(&im);
}

static void test_resize_invariants(void) {
    et_image im, out;
    CHECK(et_image_alloc(37, 23, &im) == NULL, "alloc");
    memset(im.data, 200, 37 * 23 * 3);
    const int sizes[][2] = {{336, 336}, {5, 3}, {37, 100}, {100, 23}, {1, 1}};
    for (int k = 0; k < 5; k++) {
        CHECK(et_image_resize_bicubic(&im, sizes[k][0], sizes[k][1], &out) == NULL, "resize");
        int bad = 0;
        for (size_t i = 0; i < (size_t)out.width * out.height * 3; i++) bad += out.data[i] != 200;
        CHECK(bad == 0 && out.width == sizes[k][0] && out.height == sizes[k][1],
              "a constant image stays constant at %dx%d", sizes[k][0], sizes[k][1]);
        et_image_free(&out);
    }
    et_image_free(&im);
    im = ramp(9, 6);
    CHECK(et_image_resize_bicubic(&im, 9, 6, &out) == NULL, "identity");
    CHECK(max_diff(&out, 9, 6, im.data) == 0, "same size is a copy");
    et_image_free(&out);
    et_status s = et_image_resize_bicubic(&im, 0, 6, &out);
    CHECK(et_status_code(s) == ET_ERR_INVALID, "width 0 rejected");
    et_status_free(s);
    et_image_free(&im);
}

static void test_preprocess_outputs(void) {
    et_image im = ramp(40, 30);
    et_clip_preproc p;
    et_clip_preproc_default(&p, 224);
    et_tensor *u8 = NULL, *f32 = NULL;
    et_status s = et_clip_preprocess(&im, &p, &u8, &f32);
    CHECK(s == NULL, "%s", et_status_msg(s));
    CHECK(u8 && u8->dtype == ET_U8 && u8->ndim == 3 && u8->shape[0] == 224 && u8->shape[2] == 3,
          "u8 [224, 224, 3]");
    CHECK(f32 && f32->dtype == ET_F32 && f32->shape[0] == 3 && f32->shape[1] == 224,
          "f32 [3, 224, 224]");
    if (u8 && f32) {
        const uint8_t *a = et_data(u8);
        const float *x = et_data(f32);
        for (int c = 0; c < 3; c++) {
            size_t i = 1000;
            float want = ((float)(a[i * 3 + c] / 255.0) - p.mean[c]) / p.std[c];
            CHECK(x[(size_t)c * 224 * 224 + i] == want, "normalize channel %d", c);
        }
    }
    et_release(u8);
    et_release(f32);
    // only one output wanted
    s = et_clip_preprocess(&im, &p, NULL, &f32);
    CHECK(s == NULL && f32, "f32 only");
    et_release(f32);
    p.crop = 0;
    s = et_clip_preprocess(&im, &p, &u8, NULL);
    CHECK(et_status_code(s) == ET_ERR_INVALID && u8 == NULL, "crop 0 rejected");
    CHECK(s && strstr(et_status_msg(s), "crop") != NULL, "%s", et_status_msg(s));
    et_status_free(s);
    et_clip_preproc_default(&p, 224);
    p.std[1] = 0;
    s = et_clip_preprocess(&im, &p, &u8, NULL);
    CHECK(et_status_code(s) == ET_ERR_INVALID, "std 0 rejected");
    et_status_free(s);
    et_image_free(&im);
    // an extreme aspect ratio is refused instead of allocating a huge image
    im = ramp(5000, 2);
    et_clip_preproc_default(&p, 336);
    s = et_clip_preprocess(&im, &p, &u8, NULL);
    CHECK(et_status_code(s) == ET_ERR_INVALID, "5000x2 refused: %s", et_status_msg(s));
    et_status_free(s);
    p.pad_square = true;  // padded to square first, it is fine
    s = et_clip_preprocess(&im, &p, &u8, NULL);
    CHECK(s == NULL, "5000x2 padded: %s", et_status_msg(s));
    et_release(u8);
    et_image_free(&im);
}

// LLaVA pad through et_clip_preprocess (square never materialised) must equal
// expand2square + resize + crop done step by step, bit for bit.
static void test_pad_matches_materialised(void) {
    const int shapes[][3] = {
        // w, h, S
        {300, 7, 224},   {7, 300, 224},   {40, 30, 336}, {30, 45, 16},
        {224, 100, 224}, {100, 224, 224}, {5, 3, 32},    {1, 200, 16},
    };
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        int w = shapes[k][0], h = shapes[k][1], S = shapes[k][2];
        et_image im = ramp(w, h), sq, rs, cr;
        for (int i = 0; i < w * h * 3; i++) im.data[i] = (uint8_t)(im.data[i] * 37 + i % 11);
        et_clip_preproc p;
        et_clip_preproc_default(&p, S);
        p.pad_square = true;
        et_tensor *u8 = NULL;
        et_status s = et_clip_preprocess(&im, &p, &u8, NULL);
        CHECK(s == NULL, "%s", et_status_msg(s));
        et_status_free(s);
        CHECK(et_image_expand2square(&im, p.pad_rgb, &sq) == NULL, "expand");
        CHECK(et_image_resize_bicubic(&sq, S, S, &rs) == NULL, "resize");
        CHECK(et_image_center_crop(&rs, S, S, &cr) == NULL, "crop");
        CHECK(u8 && memcmp(et_data(u8), cr.data, (size_t)S * S * 3) == 0,
              "%dx%d S=%d: pad differs from the materialised square", w, h, S);
        et_release(u8);
        et_image_free(&im);
        et_image_free(&sq);
        et_image_free(&rs);
        et_image_free(&cr);
    }
    // a 60000 x 1 strip pads to a 60000-square without allocating it (10 GB)
    et_image strip = ramp(60000, 1);
    et_clip_preproc p;
    et_clip_preproc_default(&p, 16);
    p.pad_square = true;
    et_tensor *u8 = NULL;
    et_status s = et_clip_preprocess(&strip, &p, &u8, NULL);
    CHECK(s == NULL, "60000x1 padded: %s", et_status_msg(s));
    et_status_free(s);
    et_release(u8);
    et_image_free(&strip);
}

int main(void) {
    RUN(test_png_rgb_rgba_8_16);
    RUN(test_png_grey);
    RUN(test_png_palette);
    RUN(test_jpeg_grey_rgb_progressive);
    RUN(test_jpeg_cmyk_ycck);
    RUN(test_bad_inputs);
    RUN(test_jpeg_corrupt_scan_refused);
    RUN(test_resize_size);
    RUN(test_expand2square);
    RUN(test_center_crop);
    RUN(test_resize_invariants);
    RUN(test_preprocess_outputs);
    RUN(test_pad_matches_materialised);
    return test_summary();
}
