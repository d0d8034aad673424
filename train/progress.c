// train/progress.c - see progress.h
#include "progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/status.h"

// A growing NUL-terminated string.
typedef struct {
    char *s;
    size_t len, cap;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...) {
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        ET_ASSERT(n >= 0, "progress: bad format");
        if (b->s && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        ET_ASSERT(s, "out of memory");
        b->s = s;
        b->cap = cap;
    }
}

struct et_progress {
    char *label;
    int64_t total;
    FILE *out;
    bool is_tty;
    int width;
    int columns;  // TTY line limit (0: ask the terminal)
    double tty_interval, log_percent, log_interval, alpha, sample_secs;
    et_progress_clock_fn clock;
    void *clock_ctx;

    double start_t;
    int64_t start_step;
    int64_t step;     // last step given to update
    strbuf metrics;   // " key value ..." of the last update
    strbuf line;      // scratch for rendering
    bool has_rate;    // ema holds a sample
    double ema;       // smoothed steps per second
    double sample_t;  // time and step of the last rate sample
    int64_t sample_step;

    bool drawn;           // something was printed
    bool finished;        // the final line was printed (step reached total, or end ran)
    double last_draw_t;   // time of the last print
    int64_t last_bucket;  // non-TTY: percent bucket of the last line
};

static double mono_clock(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now_s(const et_progress *p) { return p->clock(p->clock_ctx); }

bool et_progress_is_terminal(FILE *out) {
    if (!out || !isatty(fileno(out))) return false;
    const char *term = getenv("TERM");
    return !term || strcmp(term, "dumb") != 0;
}

et_progress *et_progress_new_ex(int64_t total_steps, FILE *out, const et_progress_options *opt) {
    et_progress_options o = opt ? *opt : (et_progress_options){.mode = ET_PROGRESS_AUTO};
    et_progress *p = calloc(1, sizeof(*p));
    ET_ASSERT(p, "out of memory");
    p->label = strdup(o.label ? o.label : "train");
    ET_ASSERT(p->label, "out of memory");
    p->total = total_steps > 0 ? total_steps : 0;
    p->out = out ? out : stderr;
    p->is_tty = o.mode == ET_PROGRESS_TTY ||
                (o.mode == ET_PROGRESS_AUTO && et_progress_is_terminal(p->out));
    p->width = o.width > 0 ? o.width : 20;
    p->columns = o.columns > 0 ? o.columns : 0;
    p->tty_interval = o.tty_interval_secs > 0 ? o.tty_interval_secs : 0.1;
    p->log_percent = o.log_percent > 0 ? o.log_percent : 10.0;
    p->log_interval = o.log_interval_secs > 0 ? o.log_interval_secs : 60.0;
    p->alpha = o.ema_alpha > 0 && o.ema_alpha <= 1 ? o.ema_alpha : 0.3;
    p->sample_secs = o.sample_secs > 0 ? o.sample_secs : 0.1;
    p->clock = o.clock ? o.clock : mono_clock;
    p->clock_ctx = o.clock_ctx;
    p->start_t = p->sample_t = now_s(p);
    p->start_step = p->step = p->sample_step = o.initial_step;
    p->last_bucket = -1;
    sb_printf(&p->metrics, "%s", "");
    return p;
}

et_progress *et_progress_new(int64_t total_steps, FILE *out) {
    return et_progress_new_ex(total_steps, out, NULL);
}

void et_progress_format_time(double secs, char *buf, size_t size) {
    if (!(secs >= 0) || secs >= 3.6e10) {  // NaN, negative, or past 10^7 hours
        snprintf(buf, size, "?");
        return;
    }
    long long s = (long long)secs;
    long long h = s / 3600, m = s % 3600 / 60, sec = s % 60;
    if (h > 0)
        snprintf(buf, size, "%lld:%02lld:%02lld", h, m, sec);
    else
        snprintf(buf, size, "%02lld:%02lld", m, sec);
}

void et_progress_format_value(double v, char *buf, size_t size) {
    if (isnan(v)) {
        snprintf(buf, size, "nan");
    } else if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "inf" : "-inf");
    } else if (fabs(v) >= 1000) {
        static const char units[] = "kMGTPE";
        double s = v / 1000;
        int u = 0;
        while (fabs(s) >= 999.5 && u < 5) {  // 999.7k reads better as 1.0M
            s /= 1000;
            u++;
        }
        if (fabs(s) < 99.95)
            snprintf(buf, size, "%.1f%c", s, units[u]);
        else
            snprintf(buf, size, "%.0f%c", s, units[u]);
    } else {
        snprintf(buf, size, "%.4g", v);
    }
}

static void format_rate(bool has, double rate, char *buf, size_t size) {
    if (!has || !isfinite(rate) || rate < 0) {
        snprintf(buf, size, "? it/s");
    } else if (rate >= 1000) {
        char v[32];
        et_progress_format_value(rate, v, sizeof(v));
        snprintf(buf, size, "%s it/s", v);
    } else if (rate >= 1 || rate == 0) {
        snprintf(buf, size, "%.1f it/s", rate);
    } else {
        snprintf(buf, size, "%.1f s/it", 1.0 / rate);
    }
}

// Renders the line for time `now` into p->line. final: the mean rate over the run instead of
// the smoothed one; a run that ended short of its total shows no ETA but "-- <reason> at step
// N/M" after the metrics.
static void render(et_progress *p, double now, bool final, const char *reason) {
    strbuf *b = &p->line;
    b->len = 0;
    double elapsed = now - p->start_t;
    bool has = p->has_rate;
    double rate = p->ema;
    if (final && elapsed > 0 && p->step > p->start_step) {
        has = true;
        rate = (double)(p->step - p->start_step) / elapsed;
    }
    char el[32], eta[32], rt[48];
    et_progress_format_time(elapsed, el, sizeof(el));
    format_rate(has, rate, rt, sizeof(rt));
    const bool short_end = final && p->total > 0 && p->step < p->total;
    if (p->total > 0) {
        int64_t s = p->step < 0 ? 0 : p->step > p->total ? p->total : p->step;
        int pct = (int)((double)s * 100.0 / (double)p->total);
        int fill = (int)((double)s * p->width / (double)p->total);
        if (s >= p->total)
            et_progress_format_time(0, eta, sizeof(eta));
        else if (has && rate > 0)
            et_progress_format_time((double)(p->total - s) / rate, eta, sizeof(eta));
        else
            snprintf(eta, sizeof(eta), "?");
        sb_printf(b, "%s %3d%%|", p->label, pct);
        for (int i = 0; i < p->width; i++) sb_printf(b, "%c", i < fill ? '#' : '.');
        if (short_end)
            sb_printf(b, "| %lld/%lld [%s, %s]", (long long)p->step, (long long)p->total, el, rt);
        else
            sb_printf(b, "| %lld/%lld [%s<%s, %s]", (long long)p->step, (long long)p->total, el,
                      eta, rt);
    } else {
        sb_printf(b, "%s %lld [%s, %s]", p->label, (long long)p->step, el, rt);
    }
    sb_printf(b, "%s", p->metrics.s);
    if (short_end)
        sb_printf(b, " -- %s at step %lld/%lld", reason && *reason ? reason : "stopped",
                  (long long)p->step, (long long)p->total);
    else if (final && p->total <= 0 && reason && *reason)
        sb_printf(b, " -- %s at step %lld", reason, (long long)p->step);
}

size_t et_progress_render(et_progress *p, char *buf, size_t size) {
    render(p, now_s(p), false, NULL);
    if (size) snprintf(buf, size, "%s", p->line.s);
    return p->line.len;
}

// Prints p->line: in place on a TTY ("\r", the line cut to the terminal width, then "\x1b[K"
// clears what a longer earlier line left), as a full line otherwise (newline: end the TTY
// line).
static void emit(et_progress *p, double now, bool newline) {
    if (p->is_tty) {
        size_t len = p->line.len;
        int cols = p->columns;
        struct winsize ws;
        if (cols <= 0 && ioctl(fileno(p->out), TIOCGWINSZ, &ws) == 0) cols = ws.ws_col;
        if (cols > 1 && len > (size_t)cols - 1) len = (size_t)cols - 1;
        fputc('\r', p->out);
        fwrite(p->line.s, 1, len, p->out);
        fputs("\x1b[K", p->out);
        if (newline) fputc('\n', p->out);
        if (p->out == stderr) et_log_transient_line(!newline);
    } else {
        fputs(p->line.s, p->out);
        fputc('\n', p->out);
    }
    fflush(p->out);
    p->drawn = true;
    p->last_draw_t = now;
}

static int64_t percent_bucket(const et_progress *p) {
    if (p->total <= 0) return -1;
    double pct = 100.0 * (double)p->step / (double)p->total;
    return (int64_t)floor(pct / p->log_percent);
}

void et_progress_update(et_progress *p, int64_t step, int n, const char *const *keys,
                        const double *values) {
    ET_ASSERT(p && n >= 0 && (n == 0 || (keys && values)),
              "et_progress_update needs a bar and n >= 0 keys and values");
    double now = now_s(p);
    p->step = step;
    p->metrics.len = 0;
    sb_printf(&p->metrics, "%s", "");
    for (int i = 0; i < n; i++) {
        char v[48];
        et_progress_format_value(values[i], v, sizeof(v));
        sb_printf(&p->metrics, " %s %s", keys[i], v);
    }
    double dt = now - p->sample_t;
    if (dt >= p->sample_secs && dt > 0) {
        double sample = (double)(step - p->sample_step) / dt;
        p->ema = p->has_rate ? p->alpha * sample + (1 - p->alpha) * p->ema : sample;
        p->has_rate = true;
        p->sample_t = now;
        p->sample_step = step;
    }
    if (p->finished) return;
    if (p->total > 0 && step >= p->total) {  // the final line, once, with the mean rate
        render(p, now, true, NULL);
        emit(p, now, true);
        p->finished = true;
    } else if (p->is_tty) {
        if (!p->drawn || now - p->last_draw_t >= p->tty_interval) {
            render(p, now, false, NULL);
            emit(p, now, false);
        }
    } else {
        int64_t bucket = percent_bucket(p);
        if (!p->drawn || (p->total > 0 && bucket > p->last_bucket) ||
            now - p->last_draw_t >= p->log_interval) {
            render(p, now, false, NULL);
            emit(p, now, false);
            p->last_bucket = bucket;
        }
    }
}

void et_progress_end(et_progress *p, const char *reason) {
    ET_ASSERT(p, "et_progress_end needs a bar");
    if (p->finished) return;
    double now = now_s(p);
    render(p, now, true, reason);
    emit(p, now, true);
    p->finished = true;
}

void et_progress_finish(et_progress *p) { et_progress_end(p, NULL); }

void et_progress_free(et_progress *p) {
    if (!p) return;
    if (p->is_tty && p->drawn && !p->finished) {
        fputc('\n', p->out);
        fflush(p->out);
        if (p->out == stderr) et_log_transient_line(0);
    }
    free(p->metrics.s);
    free(p->line.s);
    free(p->label);
    free(p);
}
