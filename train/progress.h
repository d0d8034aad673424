// train/progress.h - the training progress bar (tqdm-like) with a smoothed ETA.
// defines: et_progress, et_progress_mode, et_progress_options, et_progress_clock_fn,
//          et_progress_new, et_progress_new_ex, et_progress_update, et_progress_finish,
//          et_progress_end, et_progress_free, et_progress_render, et_progress_is_terminal,
//          et_progress_format_time, et_progress_format_value
//
// Line (known total):
//   train  37%|#######.............| 370/1000 [01:02<01:45, 6.0 it/s] loss 1.234 lr 9.9e-05
// - "<label> <pct>%|<bar>| <step>/<total> [<elapsed><<eta>, <rate>]" then " <key> <value>"
//   for each metric. pct = floor(100 * step / total) right-aligned in 3; the bar has `width`
//   cells, floor(width * step / total) of them '#', the rest '.'. Unknown total (<= 0):
//   "<label> <step> [<elapsed>, <rate>]" and the metrics.
// - Times: MM:SS below an hour, else H:MM:SS (hours not capped: "123:04:05"); whole seconds,
//   truncated. ETA = (total - step) / smoothed rate, "?" while no rate is known (or when it
//   would exceed 10^7 hours).
// - Rate: steps per second, an exponential moving average of the samples
//   (step - step_at_last_sample) / (now - time_at_last_sample), one sample per update at
//   least `sample_secs` after the previous sample (the first sample is taken against the
//   start: time of et_progress_new, step initial_step); ema = alpha * sample + (1 - alpha) *
//   ema, the first sample initialises it. Shown as "6.0 it/s" (>= 1 step/s; 1000 and more
//   with k/M suffixes) or "2.5 s/it" (slower), "? it/s" before the first sample.
// - The final line is printed once: by the update that reaches the total (or, when the
//   total is unknown or never reached, by et_progress_end / et_progress_finish). It shows the
//   mean rate over the whole run; a run that reached its total shows ETA 00:00, one that
//   ended short of it shows no ETA and ends with " -- <reason> at step N/M" ("interrupted at
//   step 5/20"; reason "stopped" when none is given), since no ETA would be true.
// - Metric values (et_progress_format_value): |v| >= 1000 in k/M/G/T with one decimal below
//   100 of the unit ("5.1k", "51.2k", "512k", "1.5M"), else %.4g ("1.234", "9.9e-05");
//   NaN/Inf as "nan", "inf", "-inf".
// - Output: mode ET_PROGRESS_AUTO (the default: zero-initialised options) detects a terminal
//   with et_progress_is_terminal(out): isatty(fileno(out)) and $TERM is not "dumb". On a
//   terminal the line is redrawn in place ("\r" + line + "\x1b[K", clear to the end of the
//   line; the line cut to the terminal width so it never wraps: a wrapped line breaks "\r"
//   redraws) at most once per tty_interval_secs (default 0.1 s); the first update always
//   draws. Not a terminal (a pipe, a file, CI logs): a full "\n"-terminated line on the first
//   update, whenever the step crosses a new multiple of log_percent % (default 10; needs a
//   known total), and when log_interval_secs (default 60 s) have passed since the last line.
//   The final line ends with "\n" (on a terminal: redrawn in place, then "\n"). The output is
//   flushed after each line.
// - Clock: monotonic (CLOCK_MONOTONIC) unless options.clock is given (tests inject one and
//   assert exact lines).
// - Ownership: the caller owns the et_progress (et_progress_free; freeing an unfinished bar on
//   a TTY ends its line with "\n"); out is borrowed and must outlive the bar. Metric keys are
//   borrowed only during the call. Not thread-safe.
#ifndef ET_TRAIN_PROGRESS_H
#define ET_TRAIN_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct et_progress et_progress;

// Returns seconds on some monotonic scale.
typedef double (*et_progress_clock_fn)(void *ctx);

typedef enum {
    ET_PROGRESS_AUTO = 0,  // a terminal (et_progress_is_terminal) redraws, anything else logs
    ET_PROGRESS_TTY,       // redraw in place
    ET_PROGRESS_PLAIN,     // periodic full lines
} et_progress_mode;

typedef struct {
    const char *label;           // "train" when NULL (copied)
    int64_t initial_step;        // step at start (resumed runs); the rate counts from here
    et_progress_mode mode;       // ET_PROGRESS_AUTO when 0
    int width;                   // bar cells (default 20 when 0)
    double tty_interval_secs;    // min seconds between TTY redraws (default 0.1 when 0)
    double log_percent;          // non-TTY: a line every this many percent (default 10 when 0)
    double log_interval_secs;    // non-TTY: a line after this many seconds (default 60 when 0)
    double ema_alpha;            // rate smoothing in (0, 1] (default 0.3 when 0)
    double sample_secs;          // min seconds between rate samples (default 0.1 when 0)
    int columns;                 // TTY: cut lines to columns - 1 characters (0: ask the
                                 // terminal with TIOCGWINSZ at each draw; no cut if unknown)
    et_progress_clock_fn clock;  // NULL: CLOCK_MONOTONIC
    void *clock_ctx;
} et_progress_options;

// A bar for total_steps steps (<= 0: unknown) printing to out (stderr when NULL).
et_progress *et_progress_new(int64_t total_steps, FILE *out);
et_progress *et_progress_new_ex(int64_t total_steps, FILE *out, const et_progress_options *opt);
// Reports that `step` steps are done, with n metrics (keys[i] value[i]); draws when due.
void et_progress_update(et_progress *p, int64_t step, int n, const char *const *keys,
                        const double *values);
// Prints the final line with the last step and metrics given to update, unless the update
// that reached the total printed it already: et_progress_end(p, NULL).
void et_progress_finish(et_progress *p);
// The same, naming why a run ended short of its total ("interrupted": the line ends with
// " -- interrupted at step N/M"; NULL: "stopped"; with an unknown total " -- <reason> at step
// N", only when reason is given). A run that reached its total ignores reason.
void et_progress_end(et_progress *p, const char *reason);
void et_progress_free(et_progress *p);

// The current line (no "\r" or "\n") as it would be drawn now, into buf (truncated to
// size - 1 bytes); returns the full length.
size_t et_progress_render(et_progress *p, char *buf, size_t size);
// true when out is a terminal that understands "\r" and "\x1b[K": isatty and $TERM != dumb.
bool et_progress_is_terminal(FILE *out);
// "MM:SS" / "H:MM:SS" for secs >= 0 (truncated to whole seconds); "?" otherwise.
void et_progress_format_time(double secs, char *buf, size_t size);
// A metric value as in the line ("5.1k", "1.234", "nan").
void et_progress_format_value(double v, char *buf, size_t size);

#endif
