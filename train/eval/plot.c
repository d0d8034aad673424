// train/eval/plot.c - see plot.h
#include "plot.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "data/image_write.h"

// ---- font ----------------------------------------------------------------------------------
// One string per character from ' ' (0x20) to '~' (0x7e): 8 rows of 5 pixels, '#' = ink,
// rows separated by a space. Rows 0..6 hold capitals and digits (baseline under row 6), lower
// case uses rows 2..6, and row 7 takes descenders.
static const char *const k_glyphs[95] = {
    "..... ..... ..... ..... ..... ..... ..... .....",  // ' '
    "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.. .....",  // !
    ".#.#. .#.#. ..... ..... ..... ..... ..... .....",  // "
    ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#. .....",  // #
    "..#.. .#### #.#.. .###. ..#.# ####. ..#.. .....",  // $
    "##... ##..# ...#. ..#.. .#... #..## ...## .....",  // %
    ".##.. #..#. #.#.. .#... #.#.# #..#. .##.# .....",  // &
    "..#.. ..#.. .#... ..... ..... ..... ..... .....",  // '
    "...#. ..#.. .#... .#... .#... ..#.. ...#. .....",  // (
    ".#... ..#.. ...#. ...#. ...#. ..#.. .#... .....",  // )
    "..... ..#.. #.#.# .###. #.#.# ..#.. ..... .....",  // *
    "..... ..#.. ..#.. ##### ..#.. ..#.. ..... .....",  // +
    "..... ..... ..... ..... ..... .##.. ..#.. .#...",  // ,
    "..... ..... ..... ##### ..... ..... ..... .....",  // -
    "..... ..... ..... ..... ..... .##.. .##.. .....",  // .
    "..... ....# ...#. ..#.. .#... #.... ..... .....",  // /
    ".###. #...# #..## #.#.# ##..# #...# .###. .....",  // 0
    "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###. .....",  // 1
    ".###. #...# ....# ...#. ..#.. .#... ##### .....",  // 2
    "##### ...#. ..#.. ...#. ....# #...# .###. .....",  // 3
    "...#. ..##. .#.#. #..#. ##### ...#. ...#. .....",  // 4
    "##### #.... ####. ....# ....# #...# .###. .....",  // 5
    "..##. .#... #.... ####. #...# #...# .###. .....",  // 6
    "##### ....# ...#. ..#.. .#... .#... .#... .....",  // 7
    ".###. #...# #...# .###. #...# #...# .###. .....",  // 8
    ".###. #...# #...# .#### ....# ...#. .##.. .....",  // 9
    "..... .##.. .##.. ..... .##.. .##.. ..... .....",  // :
    "..... .##.. .##.. ..... ..... .##.. ..#.. .#...",  // ;
    "...#. ..#.. .#... #.... .#... ..#.. ...#. .....",  // <
    "..... ..... ##### ..... ##### ..... ..... .....",  // =
    ".#... ..#.. ...#. ....# ...#. ..#.. .#... .....",  // >
    ".###. #...# ....# ...#. ..#.. ..... ..#.. .....",  // ?
    ".###. #...# ....# .##.# #.#.# #.#.# .###. .....",  // @
    ".###. #...# #...# ##### #...# #...# #...# .....",  // A
    "####. #...# #...# ####. #...# #...# ####. .....",  // B
    ".###. #...# #.... #.... #.... #...# .###. .....",  // C
    "###.. #..#. #...# #...# #...# #..#. ###.. .....",  // D
    "##### #.... #.... ####. #.... #.... ##### .....",  // E
    "##### #.... #.... ####. #.... #.... #.... .....",  // F
    ".###. #...# #.... #.### #...# #...# .#### .....",  // G
    "#...# #...# #...# ##### #...# #...# #...# .....",  // H
    ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###. .....",  // I
    "..### ...#. ...#. ...#. ...#. #..#. .##.. .....",  // J
    "#...# #..#. #.#.. ##... #.#.. #..#. #...# .....",  // K
    "#.... #.... #.... #.... #.... #.... ##### .....",  // L
    "#...# ##.## #.#.# #.#.# #...# #...# #...# .....",  // M
    "#...# #...# ##..# #.#.# #..## #...# #...# .....",  // N
    ".###. #...# #...# #...# #...# #...# .###. .....",  // O
    "####. #...# #...# ####. #.... #.... #.... .....",  // P
    ".###. #...# #...# #...# #.#.# #..#. .##.# .....",  // Q
    "####. #...# #...# ####. #.#.. #..#. #...# .....",  // R
    ".#### #.... #.... .###. ....# ....# ####. .....",  // S
    "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. .....",  // T
    "#...# #...# #...# #...# #...# #...# .###. .....",  // U
    "#...# #...# #...# #...# #...# .#.#. ..#.. .....",  // V
    "#...# #...# #...# #.#.# #.#.# #.#.# .#.#. .....",  // W
    "#...# #...# .#.#. ..#.. .#.#. #...# #...# .....",  // X
    "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.. .....",  // Y
    "##### ....# ...#. ..#.. .#... #.... ##### .....",  // Z
    ".###. .#... .#... .#... .#... .#... .###. .....",  // [
    "..... #.... .#... ..#.. ...#. ....# ..... .....",  // backslash
    ".###. ...#. ...#. ...#. ...#. ...#. .###. .....",  // ]
    "..#.. .#.#. #...# ..... ..... ..... ..... .....",  // ^
    "..... ..... ..... ..... ..... ..... ..... #####",  // _
    ".#... ..#.. ...#. ..... ..... ..... ..... .....",  // `
    "..... ..... .###. ....# .#### #...# .#### .....",  // a
    "#.... #.... #.##. ##..# #...# #...# ####. .....",  // b
    "..... ..... .###. #.... #.... #...# .###. .....",  // c
    "....# ....# .##.# #..## #...# #...# .#### .....",  // d
    "..... ..... .###. #...# ##### #.... .###. .....",  // e
    "..##. .#..# .#... ###.. .#... .#... .#... .....",  // f
    "..... ..... .#### #...# #...# .#### ....# .###.",  // g
    "#.... #.... #.##. ##..# #...# #...# #...# .....",  // h
    "..#.. ..... .##.. ..#.. ..#.. ..#.. .###. .....",  // i
    "...#. ..... ..##. ...#. ...#. ...#. #..#. .##..",  // j
    "#.... #.... #..#. #.#.. ##... #.#.. #..#. .....",  // k
    ".##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###. .....",  // l
    "..... ..... ##.#. #.#.# #.#.# #.#.# #.#.# .....",  // m
    "..... ..... #.##. ##..# #...# #...# #...# .....",  // n
    "..... ..... .###. #...# #...# #...# .###. .....",  // o
    "..... ..... ####. #...# #...# ####. #.... #....",  // p
    "..... ..... .#### #...# #...# .#### ....# ....#",  // q
    "..... ..... #.##. ##..# #.... #.... #.... .....",  // r
    "..... ..... .###. #.... .###. ....# ####. .....",  // s
    ".#... .#... ###.. .#... .#... .#..# ..##. .....",  // t
    "..... ..... #...# #...# #...# #..## .##.# .....",  // u
    "..... ..... #...# #...# #...# .#.#. ..#.. .....",  // v
    "..... ..... #...# #...# #.#.# #.#.# .#.#. .....",  // w
    "..... ..... #...# .#.#. ..#.. .#.#. #...# .....",  // x
    "..... ..... #...# #...# #...# .#### ....# .###.",  // y
    "..... ..... ##### ...#. ..#.. .#... ##### .....",  // z
    "...#. ..#.. ..#.. .#... ..#.. ..#.. ...#. .....",  // {
    "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. .....",  // |
    ".#... ..#.. ..#.. ...#. ..#.. ..#.. .#... .....",  // }
    "..... ..... .#... #.#.# ...#. ..... ..... .....",  // ~
};

enum { GLYPH_W = 5, GLYPH_H = 8, ADVANCE = 6, LINE_H = 10 };

const char *et_plot_glyph_rows(char c) {
    unsigned char u = (unsigned char)c;
    return k_glyphs[u >= 0x20 && u <= 0x7e ? u - 0x20 : '?' - 0x20];
}

static bool glyph_ink(const char *g, int row, int col) { return g[row * 6 + col] == '#'; }

et_image et_plot_canvas(int width, int height) {
    ET_ASSERT(width > 0 && height > 0 && (int64_t)width * height <= (int64_t)1 << 28,
              "et_plot_canvas: %dx%d", width, height);
    et_image im = {width, height, NULL};
    im.data = malloc((size_t)width * (size_t)height * 3);
    ET_ASSERT(im.data, "out of memory");
    memset(im.data, 255, (size_t)width * (size_t)height * 3);
    return im;
}

static void fill_rect(et_image *im, int x0, int y0, int w, int h, const uint8_t rgb[3]) {
    for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < im->height; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < im->width; x++)
            memcpy(im->data + ((size_t)y * im->width + x) * 3, rgb, 3);
}

int et_plot_text(et_image *im, int x, int y, const char *s, int scale, const uint8_t rgb[3]) {
    ET_ASSERT(im && s && scale > 0, "et_plot_text: bad arguments");
    for (; *s; s++, x += ADVANCE * scale) {
        const char *g = et_plot_glyph_rows(*s);
        for (int r = 0; r < GLYPH_H; r++)
            for (int c = 0; c < GLYPH_W; c++)
                if (glyph_ink(g, r, c))
                    fill_rect(im, x + c * scale, y + r * scale, scale, scale, rgb);
    }
    return x;
}

void et_plot_text_up(et_image *im, int x, int y, const char *s, int scale, const uint8_t rgb[3]) {
    ET_ASSERT(im && s && scale > 0, "et_plot_text_up: bad arguments");
    // turned counter-clockwise: glyph column c goes up from y, glyph row r goes right from x
    for (; *s; s++, y -= ADVANCE * scale) {
        const char *g = et_plot_glyph_rows(*s);
        for (int r = 0; r < GLYPH_H; r++)
            for (int c = 0; c < GLYPH_W; c++)
                if (glyph_ink(g, r, c))
                    fill_rect(im, x + r * scale, y - (c + 1) * scale, scale, scale, rgb);
    }
}

int et_plot_text_width(const char *s, int scale) {
    size_t n = strlen(s);
    return n ? (int)n * ADVANCE * scale - scale : 0;
}

// A straight line `thick` pixels wide (square pen), end points included.
static void draw_line(et_image *im, double x0, double y0, double x1, double y1, int thick,
                      const uint8_t rgb[3]) {
    double dx = x1 - x0, dy = y1 - y0;
    int n = (int)ceil(fmax(fabs(dx), fabs(dy)));
    if (n > 100000) n = 100000;
    for (int i = 0; i <= n; i++) {
        double t = n ? (double)i / n : 0;
        int x = (int)lround(x0 + t * dx), y = (int)lround(y0 + t * dy);
        fill_rect(im, x - thick / 2, y - thick / 2, thick, thick, rgb);
    }
}

static const uint8_t k_black[3] = {0, 0, 0}, k_white[3] = {255, 255, 255},
                     k_grey[3] = {110, 110, 110}, k_grid[3] = {225, 225, 225},
                     k_cell_line[3] = {200, 200, 200};

// ---- confusion matrix ----------------------------------------------------------------------

et_status et_plot_confusion_png(const char *path, const et_plot_confusion *cm) {
    ET_ASSERT(path && cm && cm->names && cm->counts, "et_plot_confusion_png: NULL argument");
    const int K = cm->n_classes;
    if (K < 1 || K > 64) return et_err(ET_ERR_INVALID, "%s: %d classes, expected 1..64", path, K);
    int cell = cm->cell_px > 0 ? cm->cell_px : 64;
    if (cell < 16 || cell > 512)
        return et_err(ET_ERR_INVALID, "%s: cell size %d px out of range 16..512", path, cell);
    bool extra = false;  // the "no class" column
    for (int t = 0; cm->unparsed && t < K; t++) extra = extra || cm->unparsed[t] > 0;
    const int cols = K + (extra ? 1 : 0);
    const char *no_class = "no class";
    const int s2 = cell >= 48 ? 2 : 1;  // scale of names and counts
    const char *title = cm->title && *cm->title ? cm->title : "confusion matrix";
    const char *ylab = "true class", *xlab = "predicted class";
    int name_w = 0;  // widest class name (row labels; turned column labels have this height)
    for (int k = 0; k < K; k++) {
        int w = et_plot_text_width(cm->names[k], s2);
        if (w > name_w) name_w = w;
    }
    if (extra && et_plot_text_width(no_class, s2) > name_w)
        name_w = et_plot_text_width(no_class, s2);
    const int pad = 12, title_h = LINE_H * 2 + 8;
    const int ylab_w = LINE_H * s2 + 6;  // the turned "true class"
    const int left = pad + ylab_w + name_w + 8, top = pad + title_h;
    const int grid_w = cols * cell, grid_h = K * cell;
    int width = left + grid_w + pad;
    const int title_w = et_plot_text_width(title, 2);
    if (pad + title_w + pad > width) width = pad + title_w + pad;
    const int height = top + grid_h + 8 + name_w + 8 + LINE_H * s2 + pad;
    et_image im = et_plot_canvas(width, height);

    et_plot_text(&im, (width - title_w) / 2, pad, title, 2, k_black);
    // the y axis label, turned, centred on the rows
    et_plot_text_up(&im, pad, top + grid_h / 2 + et_plot_text_width(ylab, s2) / 2, ylab, s2,
                    k_black);
    for (int t = 0; t < K; t++) {
        int64_t row = 0;
        for (int p = 0; p < K; p++) row += cm->counts[(size_t)t * K + p];
        if (cm->unparsed) row += cm->unparsed[t];
        const int ty = top + t * cell;
        et_plot_text(&im, left - 8 - et_plot_text_width(cm->names[t], s2), ty + (cell - 7 * s2) / 2,
                     cm->names[t], s2, k_black);
        for (int p = 0; p < cols; p++) {
            const int64_t n = p < K ? cm->counts[(size_t)t * K + p] : cm->unparsed[t];
            const double v = row ? (double)n / (double)row : 0.0;
            // white (0) to dark blue (1)
            const uint8_t rgb[3] = {(uint8_t)lround(255 - v * (255 - 8)),
                                    (uint8_t)lround(255 - v * (255 - 48)),
                                    (uint8_t)lround(255 - v * (255 - 107))};
            const int x = left + p * cell;
            fill_rect(&im, x, ty, cell, cell, k_cell_line);
            fill_rect(&im, x + 1, ty + 1, cell - 2, cell - 2, rgb);
            const uint8_t *ink = v > 0.5 ? k_white : k_black;
            char num[32], pct[32];
            snprintf(num, sizeof num, "%lld", (long long)n);
            snprintf(pct, sizeof pct, "%.0f%%", 100 * v);
            const int show_pct = n > 0 && cell >= 40;
            const int h = 7 * s2 + (show_pct ? 4 + 7 : 0);
            int y = ty + (cell - h) / 2;
            if (et_plot_text_width(num, s2) <= cell - 4)
                et_plot_text(&im, x + (cell - et_plot_text_width(num, s2)) / 2, y, num, s2, ink);
            if (show_pct && et_plot_text_width(pct, 1) <= cell - 4)
                et_plot_text(&im, x + (cell - et_plot_text_width(pct, 1)) / 2, y + 7 * s2 + 4, pct,
                             1, ink);
        }
    }
    // column names under the grid, turned, then the x axis label
    const int names_top = top + grid_h + 8;
    for (int p = 0; p < cols; p++) {
        const char *nm = p < K ? cm->names[p] : no_class;
        const int x = left + p * cell + (cell - 7 * s2) / 2;
        et_plot_text_up(&im, x, names_top + et_plot_text_width(nm, s2), nm, s2,
                        p < K ? k_black : k_grey);
    }
    et_plot_text(&im, left + (grid_w - et_plot_text_width(xlab, s2)) / 2, names_top + name_w + 8,
                 xlab, s2, k_black);
    et_status st = et_image_write_png(path, &im);
    free(im.data);
    return st;
}

// ---- curves --------------------------------------------------------------------------------

// A "nice" tick step (1, 2 or 5 x 10^k) for about n ticks over range.
static double nice_step(double range, int n) {
    double raw = range / n;
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

// A tick value with as many decimals as the step needs; small or huge values in e-notation
// with as many mantissa decimals as tell neighbouring ticks apart.
static void fmt_tick(double v, double step, char *buf, size_t size) {
    if (fabs(v) < step * 1e-6) {
        snprintf(buf, size, "0");
        return;
    }
    double big = fmax(fabs(v), step);
    if (step < 1e-3 || big >= 1e6) {
        int dec = (int)(floor(log10(big)) - floor(log10(step)));
        snprintf(buf, size, "%.*e", dec < 1 ? 1 : dec > 6 ? 6 : dec, v);
    } else {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(buf, size, "%.*f", dec, v);
    }
}

// Values beyond this are drawn as gaps, like NaN: the axis arithmetic must stay finite.
#define PLOT_MAX_ABS 1e300

static bool plottable(double x, double y) {
    return isfinite(x) && isfinite(y) && fabs(x) < PLOT_MAX_ABS && fabs(y) < PLOT_MAX_ABS;
}

typedef struct {
    double lo, hi;
} range_t;

static range_t series_range(int n, const et_plot_series *s, bool use_x) {
    range_t r = {INFINITY, -INFINITY};
    for (int i = 0; i < n; i++)
        for (int j = 0; j < s[i].n; j++) {
            if (!plottable(s[i].x[j], s[i].y[j])) continue;
            double v = use_x ? s[i].x[j] : s[i].y[j];
            r.lo = fmin(r.lo, v), r.hi = fmax(r.hi, v);
        }
    return r;
}

static const uint8_t k_colors[4][3] = {
    {31, 119, 180}, {230, 110, 10}, {44, 160, 44}, {200, 40, 40}};

// One panel: the box at (x0, y0) of w x h pixels, ticks, labels, series, legend.
static void draw_panel(et_image *im, int x0, int y0, int w, int h, range_t xr, int n,
                       const et_plot_series *s, const char *ylabel, int color0) {
    range_t yr = series_range(n, s, false);
    // the frame
    fill_rect(im, x0, y0, w, 1, k_black), fill_rect(im, x0, y0 + h - 1, w, 1, k_black);
    fill_rect(im, x0, y0, 1, h, k_black), fill_rect(im, x0 + w - 1, y0, 1, h, k_black);
    et_plot_text_up(im, x0 - 140, y0 + h / 2 + et_plot_text_width(ylabel, 2) / 2, ylabel, 2,
                    k_black);
    if (!(yr.lo <= yr.hi)) {
        et_plot_text(im, x0 + (w - et_plot_text_width("no data", 2)) / 2, y0 + h / 2 - 7, "no data",
                     2, k_grey);
        return;
    }
    if (yr.hi - yr.lo < 1e-12 * fmax(1, fabs(yr.hi))) {  // a flat line: give it room
        double d = fabs(yr.hi) > 0 ? fabs(yr.hi) * 0.1 : 1;
        yr.lo -= d, yr.hi += d;
    } else {
        double d = (yr.hi - yr.lo) * 0.06;
        yr.lo = (yr.lo >= 0 && yr.lo - d < 0) ? 0 : yr.lo - d;
        yr.hi += d;
    }
    const int in = 2;  // inner margin
#define PX(v) (x0 + in + ((v)-xr.lo) / (xr.hi - xr.lo) * (w - 1 - 2 * in))
#define PY(v) (y0 + h - 1 - in - ((v)-yr.lo) / (yr.hi - yr.lo) * (h - 1 - 2 * in))
    // y ticks and grid
    double ys = nice_step(yr.hi - yr.lo, 5);
    const double y_first = ceil(yr.lo / ys) * ys;
    for (int i = 0; i < 40 && y_first + i * ys <= yr.hi + ys * 1e-9; i++) {
        const double v = y_first + i * ys;
        int y = (int)lround(PY(v));
        fill_rect(im, x0 + 1, y, w - 2, 1, k_grid);
        fill_rect(im, x0 - 5, y, 5, 1, k_black);
        char t[32];
        fmt_tick(v, ys, t, sizeof t);
        et_plot_text(im, x0 - 9 - et_plot_text_width(t, 2), y - 7, t, 2, k_black);
    }
    // x ticks and grid
    // as many x ticks as their labels leave room for (up to 7)
    double xs = 1;
    for (int want = 7; want >= 2; want--) {
        xs = nice_step(xr.hi - xr.lo, want);
        if (xs < 1) xs = 1;  // steps are whole numbers
        char t[32];
        fmt_tick(xr.hi, xs, t, sizeof t);
        if ((xr.hi - xr.lo) / xs * (et_plot_text_width(t, 2) + 24) <= w) break;
    }
    const double x_first = ceil(xr.lo / xs) * xs;
    for (int i = 0; i < 40 && x_first + i * xs <= xr.hi + xs * 1e-9; i++) {
        const double v = x_first + i * xs;
        int x = (int)lround(PX(v));
        fill_rect(im, x, y0 + 1, 1, h - 2, k_grid);
        fill_rect(im, x, y0 + h, 1, 5, k_black);
        char t[32];
        fmt_tick(v, xs, t, sizeof t);
        et_plot_text(im, x - et_plot_text_width(t, 2) / 2, y0 + h + 8, t, 2, k_black);
    }
    // the frame again (grid lines stop inside it) and the series
    fill_rect(im, x0, y0, w, 1, k_black), fill_rect(im, x0, y0 + h - 1, w, 1, k_black);
    fill_rect(im, x0, y0, 1, h, k_black), fill_rect(im, x0 + w - 1, y0, 1, h, k_black);
    int legend_y = y0 + 8;
    for (int i = 0; i < n; i++) {
        const uint8_t *col = k_colors[(color0 + i) % 4];
        bool have_prev = false;
        double px = 0, py = 0;
        int points = 0;
        for (int j = 0; j < s[i].n; j++) {
            if (!plottable(s[i].x[j], s[i].y[j])) {
                have_prev = false;
                continue;
            }
            double x = PX(s[i].x[j]), y = PY(s[i].y[j]);
            if (have_prev) draw_line(im, px, py, x, y, 2, col);
            px = x, py = y, have_prev = true, points++;
        }
        if (points == 0) continue;
        if (points <= 40 || s[i].n <= 40)  // few points: mark each
            for (int j = 0; j < s[i].n; j++)
                if (plottable(s[i].x[j], s[i].y[j]))
                    fill_rect(im, (int)lround(PX(s[i].x[j])) - 2, (int)lround(PY(s[i].y[j])) - 2, 5,
                              5, col);
        // legend entry, top right
        const char *nm = s[i].name ? s[i].name : "";
        int tw = et_plot_text_width(nm, 2);
        int lx = x0 + w - 10 - tw - 30;
        fill_rect(im, lx - 6, legend_y - 4, tw + 30 + 12, 22, k_white);
        fill_rect(im, lx, legend_y + 6, 22, 3, col);
        et_plot_text(im, lx + 30, legend_y, nm, 2, k_black);
        legend_y += 22;
    }
#undef PX
#undef PY
}

et_status et_plot_curves_png(const char *path, const char *title, int n_loss,
                             const et_plot_series *loss, int n_lr, const et_plot_series *lr) {
    ET_ASSERT(path && n_loss >= 0 && n_lr >= 0 && (n_loss == 0 || loss) && (n_lr == 0 || lr),
              "et_plot_curves_png: bad arguments");
    range_t xa = series_range(n_loss, loss, true), xb = series_range(n_lr, lr, true);
    range_t xr = {fmin(xa.lo, xb.lo), fmax(xa.hi, xb.hi)};
    if (!(xr.lo <= xr.hi)) return et_err(ET_ERR_INVALID, "%s: no finite point to plot", path);
    if (xr.hi - xr.lo < 1) xr.lo -= 1, xr.hi += 1;
    const int W = 1000, left = 160, right = 44, ph = 280, top = 48, gap = 76;
    const int pw = W - left - right;
    const int H = top + ph + gap + ph + 62;
    et_image im = et_plot_canvas(W, H);
    const char *t = title && *title ? title : "training curves";
    char cut[96];
    const size_t fit = (W - 24) / (ADVANCE * 2);  // characters that fit: keep the end
    if (strlen(t) > fit) {
        snprintf(cut, sizeof cut, "...%s", t + strlen(t) - (fit - 3));
        t = cut;
    }
    et_plot_text(&im, (W - et_plot_text_width(t, 2)) / 2, 14, t, 2, k_black);
    draw_panel(&im, left, top, pw, ph, xr, n_loss, loss, "loss", 0);
    draw_panel(&im, left, top + ph + gap, pw, ph, xr, n_lr, lr, "learning rate", 2);
    et_plot_text(&im, left + (pw - et_plot_text_width("step", 2)) / 2, top + ph + 34, "step", 2,
                 k_black);
    et_plot_text(&im, left + (pw - et_plot_text_width("step", 2)) / 2, H - 26, "step", 2, k_black);
    et_status st = et_image_write_png(path, &im);
    free(im.data);
    return st;
}

// ---- metrics.jsonl -------------------------------------------------------------------------

typedef struct {
    double *x, *y;
    int n, cap;
} pts_t;

static void pts_push(pts_t *p, double x, double y) {
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 256;
        p->x = realloc(p->x, sizeof(double) * (size_t)p->cap);
        p->y = realloc(p->y, sizeof(double) * (size_t)p->cap);
        ET_ASSERT(p->x && p->y, "out of memory");
    }
    p->x[p->n] = x, p->y[p->n] = y, p->n++;
}

// Drops the points at step >= x (a resumed run logs them again).
static void pts_cut(pts_t *p, double x) {
    while (p->n > 0 && p->x[p->n - 1] >= x) p->n--;
}

static void pts_free(pts_t *p) { free(p->x), free(p->y); }

et_status et_plot_metrics_curves(const char *metrics_jsonl, const char *png_path,
                                 const char *title) {
    ET_ASSERT(metrics_jsonl && png_path, "et_plot_metrics_curves: NULL argument");
    char *buf = NULL;
    size_t len = 0;
    ET_TRY(et_read_file(metrics_jsonl, (size_t)1 << 30, &buf, &len));
    pts_t loss = {0}, eval = {0}, lr = {0};
    et_status st = NULL;
    double last_step = -INFINITY;
    int lineno = 0;
    for (char *line = buf; line && *line && !st;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        lineno++;
        char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (*p) {
            cJSON *j = cJSON_Parse(p);
            const cJSON *step = cJSON_GetObjectItemCaseSensitive(j, "step");
            if (!cJSON_IsObject(j) || !cJSON_IsNumber(step)) {
                st = et_err(ET_ERR_FORMAT,
                            "%s: line %d is not a JSON object with a numeric \"step\"",
                            metrics_jsonl, lineno);
            } else {
                const double x = step->valuedouble;
                if (x <= last_step) pts_cut(&loss, x), pts_cut(&eval, x), pts_cut(&lr, x);
                last_step = x;
                const struct {
                    const char *key;
                    pts_t *to;
                } keys[] = {{"loss", &loss}, {"eval_loss", &eval}, {"lr", &lr}};
                for (int k = 0; k < 3; k++) {
                    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[k].key);
                    if (cJSON_IsNumber(v)) pts_push(keys[k].to, x, v->valuedouble);
                    if (cJSON_IsNull(v)) pts_push(keys[k].to, x, NAN);  // a non-finite value
                }
            }
            cJSON_Delete(j);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    if (!st && loss.n == 0 && lr.n == 0)
        st = et_err(ET_ERR_INVALID, "%s: no row with \"loss\" or \"lr\" to plot", metrics_jsonl);
    if (!st) {
        et_plot_series ls[2], rs[1];
        int nl = 0;
        if (loss.n) ls[nl++] = (et_plot_series){"train loss", loss.n, loss.x, loss.y};
        if (eval.n) ls[nl++] = (et_plot_series){"eval loss", eval.n, eval.x, eval.y};
        rs[0] = (et_plot_series){"lr (group 0)", lr.n, lr.x, lr.y};
        st = et_plot_curves_png(png_path, title, nl, ls, lr.n ? 1 : 0, rs);
    }
    pts_free(&loss), pts_free(&eval), pts_free(&lr);
    return st;
}
