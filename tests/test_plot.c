// tests/test_plot.c - train/eval/plot.c: the bitmap font (every printable character well
// formed, distinct, drawn pixel for pixel, turned text), and the curves PNG from metrics.jsonl
// (series colours, title, resumed rows replacing earlier ones, errors naming file and line,
// the old PNG kept when nothing can be drawn, no temporary file left).
#include <unistd.h>

#include "../core/fileio.h"
#include "../data/image.h"
#include "test_util.h"
#include "train/eval/plot.h"

static char g_dir[256];

static const uint8_t *px(const et_image *im, int x, int y) {
    return im->data + ((size_t)y * im->width + x) * 3;
}

static bool is_ink(const et_image *im, int x, int y) { return px(im, x, y)[0] == 0; }

static void test_glyph_table(void) {
    int bad = 0, same = 0;
    for (int c = 0x20; c <= 0x7e; c++) {
        const char *g = et_plot_glyph_rows((char)c);
        bool ok = strlen(g) == 47;
        int ink = 0;
        for (int i = 0; ok && i < 47; i++) {
            if (i % 6 == 5)
                ok = g[i] == ' ';
            else
                ok = g[i] == '#' || g[i] == '.', ink += g[i] == '#';
        }
        if (!ok || (c != ' ' && ink == 0)) {
            bad++;
            fprintf(stderr, "  glyph '%c': [%s]\n", c, g);
        }
        for (int d = 0x20; d < c; d++) same += !strcmp(g, et_plot_glyph_rows((char)d));
    }
    CHECK(bad == 0, "%d malformed glyphs", bad);
    CHECK(same == 0, "%d pairs of printable characters look the same", same);
    // descenders only where a letter has one; capitals and digits sit on the baseline
    const char *desc = "gjpqy,;_";
    for (int c = 0x21; c <= 0x7e; c++) {
        const char *g = et_plot_glyph_rows((char)c);
        bool has = strchr(g + 42, '#') != NULL;
        CHECK(has == (strchr(desc, c) != NULL), "'%c' descender row", c);
    }
    CHECK(!strcmp(et_plot_glyph_rows('\x01'), et_plot_glyph_rows('?')), "unprintable is '?'");
    CHECK(!strcmp(et_plot_glyph_rows((char)0xc3), et_plot_glyph_rows('?')), "non-ASCII is '?'");
}

// et_plot_text puts each '#' of the glyph at scale x scale pixels; et_plot_text_up turns it.
static void test_text_pixels(void) {
    et_image im = et_plot_canvas(40, 40);
    const uint8_t black[3] = {0, 0, 0};
    int end = et_plot_text(&im, 3, 4, "Ag", 2, black);
    CHECK(end == 3 + 2 * 12, "advance: %d", end);
    int diff = 0;
    for (int k = 0; k < 2; k++) {
        const char *g = et_plot_glyph_rows("Ag"[k]);
        for (int r = 0; r < 8; r++)
            for (int c = 0; c < 5; c++)
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++)
                        diff += is_ink(&im, 3 + k * 12 + 2 * c + dx, 4 + 2 * r + dy) !=
                                (g[r * 6 + c] == '#');
    }
    CHECK(diff == 0, "%d pixels differ from the glyphs", diff);
    CHECK(et_plot_text_width("Ag", 2) == 22 && et_plot_text_width("", 3) == 0, "width");
    free(im.data);

    // turned: glyph row r goes right from x, column c goes up from y
    im = et_plot_canvas(20, 20);
    et_plot_text_up(&im, 2, 15, "L", 1, black);
    const char *g = et_plot_glyph_rows('L');
    diff = 0;
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < 5; c++) diff += is_ink(&im, 2 + r, 15 - 1 - c) != (g[r * 6 + c] == '#');
    CHECK(diff == 0, "turned 'L': %d pixels differ", diff);
    // clipping at the border never writes outside
    et_plot_text(&im, -7, -3, "W@", 3, black);
    et_plot_text_up(&im, 17, 2, "W@", 3, black);
    free(im.data);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f, "%s", path);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static int count_rgb(const et_image *im, int r, int g, int b) {
    int n = 0;
    for (int y = 0; y < im->height; y++)
        for (int x = 0; x < im->width; x++) {
            const uint8_t *p = px(im, x, y);
            n += p[0] == r && p[1] == g && p[2] == b;
        }
    return n;
}

static void test_curves_from_metrics(void) {
    char jsonl[512], png[512], ref_png[512];
    snprintf(jsonl, sizeof jsonl, "%s/metrics.jsonl", g_dir);
    snprintf(png, sizeof png, "%s/curves.png", g_dir);
    snprintf(ref_png, sizeof ref_png, "%s/ref.png", g_dir);
    // a run interrupted after step 30 and resumed from step 20: its steps 30 and 40 are logged
    // again and replace the first attempt's (loss 100 would stretch the axis)
    write_text(jsonl,
               "{\"step\":10,\"loss\":3.0,\"lr\":0.0001,\"grad_norm\":1}\n"
               "{\"step\":20,\"loss\":2.0,\"lr\":0.0002}\n"
               "{\"step\":30,\"loss\":100,\"lr\":0.0002}\n"
               "\n"
               "{\"step\":30,\"loss\":1.5,\"lr\":0.00015}\n"
               "{\"step\":40,\"loss\":null,\"lr\":0.0001,\"eval_loss\":1.8}\n"
               "{\"step\":50,\"loss\":1.0,\"lr\":0.00005}\n");
    et_status s = et_plot_metrics_curves(jsonl, png, "training curves: run");
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", png);
    CHECK(access(tmp, F_OK) != 0, "no temporary file left");
    et_image im = {0};
    s = et_image_decode_file(png, NULL, &im);
    CHECK(!s, "%s", et_status_msg(s));
    if (!s) {
        CHECK(im.width == 1000 && im.height == 48 + 280 + 76 + 280 + 62, "%dx%d", im.width,
              im.height);
        // the three series' colours: train loss blue, eval loss orange, lr green
        CHECK(count_rgb(&im, 31, 119, 180) > 100, "train loss drawn");
        CHECK(count_rgb(&im, 230, 110, 10) > 20, "eval loss drawn");
        CHECK(count_rgb(&im, 44, 160, 44) > 100, "lr drawn");
        // the title, centred at scale 2, 14 px from the top
        et_image ref = et_plot_canvas(im.width, 16);
        const uint8_t black[3] = {0, 0, 0};
        const char *t = "training curves: run";
        et_plot_text(&ref, (im.width - et_plot_text_width(t, 2)) / 2, 0, t, 2, black);
        CHECK(!memcmp(px(&im, 0, 14), ref.data, (size_t)im.width * 16 * 3), "title band");
        free(ref.data);
        // the loss panel's y axis stops near the largest kept loss (3.0), not at 100: the top
        // tick label is "3.0" (step 0.5), right-aligned 9 px left of the panel at x = 160
        et_image lab = et_plot_canvas(60, 16);
        et_plot_text(&lab, 51 - et_plot_text_width("3.0", 2), 0, "3.0", 2, black);
        bool found = false;
        for (int y = 48; y < 48 + 280 - 16 && !found; y++) {
            bool same = true;
            for (int r = 0; r < 16 && same; r++)
                same = !memcmp(px(&im, 160 - 60, y + r), px(&lab, 0, r), 51 * 3);  // not the tick
            found = same;
        }
        CHECK(found, "tick label 3.0 on the loss axis");
        free(lab.data);
        free(im.data);
    }
    // the same points without the replaced rows give the same picture
    write_text(jsonl,
               "{\"step\":10,\"loss\":3.0,\"lr\":0.0001}\n"
               "{\"step\":20,\"loss\":2.0,\"lr\":0.0002}\n"
               "{\"step\":30,\"loss\":1.5,\"lr\":0.00015}\n"
               "{\"step\":40,\"loss\":null,\"lr\":0.0001,\"eval_loss\":1.8}\n"
               "{\"step\":50,\"loss\":1.0,\"lr\":0.00005}\n");
    s = et_plot_metrics_curves(jsonl, ref_png, "training curves: run");
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    et_status_free(et_read_file(png, 1 << 24, &a, &na));
    et_status_free(et_read_file(ref_png, 1 << 24, &b, &nb));
    CHECK(a && b && na == nb && !memcmp(a, b, na), "resumed rows replace the earlier ones");
    free(a), free(b);

    // errors: a bad line names file and line, and the old PNG stays as it was
    write_text(jsonl, "{\"step\":10,\"loss\":3.0}\n{\"step\":20,\"loss\":2.\n");
    s = et_plot_metrics_curves(jsonl, png, NULL);
    CHECK(et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), jsonl) &&
              strstr(et_status_msg(s), "line 2"),
          "%s", et_status_msg(s));
    et_status_free(s);
    char *c = NULL;
    size_t nc = 0;
    et_status_free(et_read_file(png, 1 << 24, &c, &nc));
    CHECK(c && nc == na, "curves.png unchanged after an error");
    free(c);
    write_text(jsonl, "{\"step\":10,\"grad_norm\":3.0}\n");
    s = et_plot_metrics_curves(jsonl, png, NULL);
    CHECK(et_status_code(s) == ET_ERR_INVALID && strstr(et_status_msg(s), "no row"), "%s",
          et_status_msg(s));
    et_status_free(s);
    write_text(jsonl, "[1, 2]\n");
    s = et_plot_metrics_curves(jsonl, png, NULL);
    CHECK(et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), "line 1"), "%s",
          et_status_msg(s));
    et_status_free(s);
    s = et_plot_metrics_curves("/nonexistent/metrics.jsonl", png, NULL);
    CHECK(s && strstr(et_status_msg(s), "/nonexistent/metrics.jsonl"), "%s", et_status_msg(s));
    et_status_free(s);
    // an unwritable destination is an error naming it
    write_text(jsonl, "{\"step\":1,\"loss\":1}\n");
    s = et_plot_metrics_curves(jsonl, "/nonexistent/curves.png", NULL);
    CHECK(et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), "/nonexistent/curves.png"),
          "%s", et_status_msg(s));
    et_status_free(s);
    // a single row (one point, flat) still draws; no lr: that panel says "no data"
    snprintf(png, sizeof png, "%s/one.png", g_dir);
    s = et_plot_metrics_curves(jsonl, png, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    s = et_image_decode_file(png, NULL, &im);
    CHECK(!s && count_rgb(&im, 31, 119, 180) >= 25 && count_rgb(&im, 44, 160, 44) == 0,
          "one point marked, no lr");
    et_status_free(s);
    if (im.data) {
        // "no data" in grey, centred in the lower panel
        int grey = 0;
        for (int y = 48 + 280 + 76; y < 48 + 280 + 76 + 280; y++)
            for (int x = 160; x < 1000 - 44; x++) grey += px(&im, x, y)[0] == 110;
        CHECK(grey > 50, "no data label: %d grey pixels", grey);
        free(im.data);
    }
}

// Extreme values draw without trouble: huge and tiny numbers, a flat series, far-apart steps,
// a non-finite value (null), an inf that JSON cannot hold arrives as a huge number.
static void test_curves_extremes(void) {
    char jsonl[512], png[512];
    snprintf(jsonl, sizeof jsonl, "%s/extreme.jsonl", g_dir);
    snprintf(png, sizeof png, "%s/extreme.png", g_dir);
    write_text(jsonl,
               "{\"step\":0,\"loss\":1e30,\"lr\":1e-20}\n"
               "{\"step\":1,\"loss\":-1e30,\"lr\":1e-20}\n"
               "{\"step\":1000000000000,\"loss\":null,\"lr\":1.0000001e-20}\n"
               "{\"step\":1000000000001,\"loss\":1.7e308,\"lr\":1e-20}\n");
    et_status s = et_plot_metrics_curves(jsonl, png, "");
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    et_image im = {0};
    s = et_image_decode_file(png, NULL, &im);
    CHECK(!s && im.width == 1000 && count_rgb(&im, 44, 160, 44) > 100, "lr drawn: %s",
          et_status_msg(s));
    et_status_free(s);
    free(im.data);
    // a title longer than the picture keeps its end
    char title[400];
    memset(title, 'x', sizeof title - 1);
    title[sizeof title - 1] = 0;
    memcpy(title + sizeof title - 6, "/run1", 5);
    s = et_plot_metrics_curves(jsonl, png, title);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/et_plot_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    RUN(test_glyph_table);
    RUN(test_text_pixels);
    RUN(test_curves_from_metrics);
    RUN(test_curves_extremes);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return test_summary();
}
