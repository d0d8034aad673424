// train/eval/plot.h - small raster plots written as PNG: text in emotune's own bitmap font,
// the confusion matrix of an emotion evaluation and a run's loss and learning-rate curves.
// defines: et_plot_canvas, et_plot_text, et_plot_text_up, et_plot_text_width,
//          et_plot_glyph_rows, et_plot_confusion, et_plot_confusion_png, et_plot_series,
//          et_plot_curves_png, et_plot_metrics_curves
//
// Contract
// - Font: every printable ASCII character (0x20..0x7e) is a 5x7 glyph (8 rows: the 8th holds
//   the descenders of g j p q y , ; _), designed for emotune, one advance = 6 pixels, one
//   line = 10 pixels, times `scale`. Other bytes are drawn as '?'. The table is in plot.c.
// - Canvas: an et_image (data/image.h, 8-bit RGB) filled white; drawing clips at the border.
// - PNGs go through et_image_write_png: "<path>.tmp" renamed to path once complete, so a
//   reader never sees half an image and an old file stays until the new one is whole.
// - Errors: et_status values naming the file (ET_ERR_IO / ET_ERR_INVALID / ET_ERR_FORMAT /
//   ET_ERR_MISSING); bad arguments (NULL image, negative sizes) are programmer errors.
// - No global state; thread-safe per canvas.
#ifndef ET_TRAIN_EVAL_PLOT_H
#define ET_TRAIN_EVAL_PLOT_H

#include <stdint.h>

#include "core/status.h"
#include "data/image.h"

// A white width x height canvas (data malloc'd; free(im.data)).
et_image et_plot_canvas(int width, int height);
// Draws s with its top-left corner at (x, y); each font pixel is scale x scale. Returns the
// x after the last character.
int et_plot_text(et_image *im, int x, int y, const char *s, int scale, const uint8_t rgb[3]);
// Draws s turned 90 degrees counter-clockwise (read bottom to top), its first character's
// bottom-left corner at (x, y): the text runs upwards from y.
void et_plot_text_up(et_image *im, int x, int y, const char *s, int scale, const uint8_t rgb[3]);
// Width of s in pixels (strlen(s) * 6 * scale, less the trailing 1-pixel gap).
int et_plot_text_width(const char *s, int scale);
// The glyph of c as 8 row strings of '#' and '.' joined by spaces (tests, tools).
const char *et_plot_glyph_rows(char c);

// ---- confusion matrix ----------------------------------------------------------------------
// Rows are the true classes, columns the predicted ones; cells are shaded by the row-normalised
// count (white 0 .. dark blue 1) and show the count and its row percentage. Axis labels say
// which axis is which ("true class" on the left, turned; "predicted class" under the column
// names, which are turned so that any length fits); the title sits on top. An optional extra
// column ("no class", from unparsed) counts answers that named no class.
typedef struct {
    const char *title;         // top line (NULL: "confusion matrix")
    int n_classes;             // K, 1..64
    const char *const *names;  // [K]
    const int64_t *counts;     // [K * K], counts[true * K + predicted]
    const int64_t *unparsed;   // [K] or NULL: per true class, answers with no class
    int cell_px;               // 16..512 (0: 64)
} et_plot_confusion;

et_status et_plot_confusion_png(const char *path, const et_plot_confusion *cm);

// ---- curves --------------------------------------------------------------------------------
typedef struct {
    const char *name;  // legend text
    int n;
    const double *x, *y;  // [n]; non-finite y values are gaps
} et_plot_series;

// Two stacked panels over a shared step axis: the loss series (train loss, eval loss if any)
// and the learning-rate series, each with grid lines, tick values, axis labels ("loss",
// "learning rate", "step") and a legend. n_loss >= 1 or n_lr >= 1; empty series are skipped.
// A panel with no point says "no data".
et_status et_plot_curves_png(const char *path, const char *title, int n_loss,
                             const et_plot_series *loss, int n_lr, const et_plot_series *lr);

// Reads a run's metrics.jsonl (train/tblog.h: {"step":N,"loss":..,"lr":..,...} per line) and
// writes the curves of "loss", "eval_loss" (when any row has it) and "lr" to png_path. Rows
// are taken in file order; a row whose step is not after the previous one (a resumed run that
// logged those steps again) replaces the earlier rows from that step on. A line that is not a
// JSON object with a numeric "step" is an ET_ERR_FORMAT naming the file and line; a file with
// no row holding "loss" or "lr" is ET_ERR_INVALID (nothing is written).
et_status et_plot_metrics_curves(const char *metrics_jsonl, const char *png_path,
                                 const char *title);

#endif
