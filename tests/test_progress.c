// tests/test_progress.c - the progress bar: exact rendered lines for given steps and times
// (injected clock), ETA and smoothed-rate math, TTY redraw throttling and padding, non-TTY
// line throttling (every N % / M seconds), time and number formatting.
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "../core/status.h"
#include "../train/progress.h"
#include "core/log.h"
#include "test_util.h"

typedef struct {
    double t;
} fake_clock;

static double fake_now(void *ctx) { return ((fake_clock *)ctx)->t; }

// Output captured in memory.
typedef struct {
    char *buf;
    size_t len;
    FILE *fp;
} capture;

static void cap_open(capture *c) {
    c->buf = NULL;
    c->len = 0;
    c->fp = open_memstream(&c->buf, &c->len);
    ET_ASSERT(c->fp, "open_memstream");
}

static const char *cap_text(capture *c) {
    fflush(c->fp);
    return c->buf ? c->buf : "";
}

static void cap_close(capture *c) {
    fclose(c->fp);
    free(c->buf);
}

#define CHECK_STR(got, want) \
    CHECK(!strcmp((got), (want)), "\n    got  [%s]\n    want [%s]", (got), (want))

static et_progress *bar(int64_t total, FILE *out, fake_clock *clk, int tty, int width) {
    et_progress_options o = {.mode = tty ? ET_PROGRESS_TTY : ET_PROGRESS_PLAIN,
                             .width = width,
                             .clock = fake_now,
                             .clock_ctx = clk};
    return et_progress_new_ex(total, out, &o);
}

static void test_format_time(void) {
    char b[32];
    struct {
        double s;
        const char *want;
    } cases[] = {{0, "00:00"},        {59.99, "00:59"},
                 {62, "01:02"},       {3599.9, "59:59"},
                 {3600, "1:00:00"},   {3725, "1:02:05"},
                 {36000, "10:00:00"}, {123 * 3600 + 4 * 60 + 5, "123:04:05"},
                 {-1, "?"},           {NAN, "?"},
                 {INFINITY, "?"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        et_progress_format_time(cases[i].s, b, sizeof(b));
        CHECK_STR(b, cases[i].want);
    }
}

static void test_format_value(void) {
    char b[32];
    struct {
        double v;
        const char *want;
    } cases[] = {{1.234, "1.234"}, {1.23456, "1.235"}, {9.9e-05, "9.9e-05"}, {0, "0"},
                 {0.5, "0.5"},     {999.5, "999.5"},   {1000, "1.0k"},       {5123, "5.1k"},
                 {51234, "51.2k"}, {512345, "512k"},   {99960, "100k"},      {999700, "1.0M"},
                 {1.5e6, "1.5M"},  {2.5e9, "2.5G"},    {1e15, "1.0P"},       {-2500, "-2.5k"},
                 {NAN, "nan"},     {INFINITY, "inf"},  {-INFINITY, "-inf"},  {-0.25, "-0.25"}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        et_progress_format_value(cases[i].v, b, sizeof(b));
        CHECK_STR(b, cases[i].want);
    }
}

// The line from the brief, exactly.
static void test_example_line(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {100.0};  // any origin: times are relative to et_progress_new
    et_progress *p = bar(1000, c.fp, &clk, 0, 10);
    clk.t = 162.0;
    const char *keys[] = {"loss", "lr", "tok/s"};
    double vals[] = {1.234, 9.9e-05, 5123};
    et_progress_update(p, 370, 3, keys, vals);
    CHECK_STR(cap_text(&c),
              "train  37%|###.......| 370/1000 [01:02<01:45, 6.0 it/s] loss 1.234 lr 9.9e-05 "
              "tok/s 5.1k\n");
    et_progress_free(p);
    cap_close(&c);
}

// EMA of the rate and the ETA it gives.
static void test_ema_eta(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {0};
    et_progress_options o = {.mode = ET_PROGRESS_PLAIN,
                             .width = 10,
                             .ema_alpha = 0.5,
                             .log_interval_secs = 1e9,
                             .clock = fake_now,
                             .clock_ctx = &clk};
    et_progress *p = et_progress_new_ex(1000, c.fp, &o);
    char line[256];
    clk.t = 10;
    et_progress_update(p, 100, 0, NULL, NULL);  // sample 10/s: ema 10
    et_progress_render(p, line, sizeof(line));
    CHECK_STR(line, "train  10%|#.........| 100/1000 [00:10<01:30, 10.0 it/s]");
    clk.t = 20;
    et_progress_update(p, 300, 0, NULL, NULL);  // sample 20/s: ema 0.5*20 + 0.5*10 = 15
    et_progress_render(p, line, sizeof(line));
    CHECK_STR(line, "train  30%|###.......| 300/1000 [00:20<00:46, 15.0 it/s]");
    clk.t = 20.05;
    et_progress_update(p, 301, 0, NULL, NULL);  // < sample_secs after the last sample: no sample
    et_progress_render(p, line, sizeof(line));
    CHECK_STR(line, "train  30%|###.......| 301/1000 [00:20<00:46, 15.0 it/s]");
    clk.t = 30;
    et_progress_update(p, 320, 0, NULL, NULL);  // sample (320-300)/10 = 2: ema 8.5
    et_progress_render(p, line, sizeof(line));
    CHECK_STR(line, "train  32%|###.......| 320/1000 [00:30<01:20, 8.5 it/s]");
    // Non-TTY lines were printed at the first update and on entering 30 %.
    CHECK_STR(cap_text(&c),
              "train  10%|#.........| 100/1000 [00:10<01:30, 10.0 it/s]\n"
              "train  30%|###.......| 300/1000 [00:20<00:46, 15.0 it/s]\n");
    size_t full = et_progress_render(p, line, 8);  // truncation reports the full length
    CHECK(full == strlen("train  32%|###.......| 320/1000 [00:30<01:20, 8.5 it/s]") &&
              !strcmp(line, "train  "),
          "%zu [%s]", full, line);
    et_progress_free(p);
    cap_close(&c);
}

// TTY: in-place redraws ("\r" ... "\x1b[K"), at most one per tty_interval; the update that
// reaches the total prints the final line (mean rate) once, and finish adds nothing.
static void test_tty_redraw(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {0};
    et_progress *p = bar(100, c.fp, &clk, 1, 10);
    const char *k[] = {"loss"};
    double v;
    clk.t = 1.0;
    v = 2.0;
    et_progress_update(p, 1, 1, k, &v);  // first update draws; rate 1/1
    clk.t = 1.05;
    v = 1.5;
    et_progress_update(p, 2, 1, k, &v);  // 0.05 s later: no redraw
    clk.t = 1.2;
    et_progress_update(p, 3, 0, NULL, NULL);  // sample 10/s: ema 0.3*10 + 0.7*1 = 3.7
    clk.t = 3.0;
    v = 0.5;
    et_progress_update(p, 100, 1, k, &v);  // the final line: mean rate 100/3
    clk.t = 4.0;
    et_progress_finish(p);                 // printed already: nothing
    et_progress_finish(p);                 // idempotent
    et_progress_update(p, 100, 1, k, &v);  // after the end: nothing drawn
    et_progress_free(p);
    CHECK_STR(cap_text(&c),
              "\rtrain   1%|..........| 1/100 [00:01<01:39, 1.0 it/s] loss 2\x1b[K"
              "\rtrain   3%|..........| 3/100 [00:01<00:26, 3.7 it/s]\x1b[K"
              "\rtrain 100%|##########| 100/100 [00:03<00:00, 33.3 it/s] loss 0.5\x1b[K\n");
    cap_close(&c);
}

// Non-TTY: a line on the first update, then one per 10 % crossed.
static void test_non_tty_percent_throttle(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {0};
    et_progress *p = bar(100, c.fp, &clk, 0, 10);
    for (int i = 1; i <= 100; i++) {
        clk.t = i;
        double loss = 1.0 / i;
        const char *k[] = {"loss"};
        et_progress_update(p, i, 1, k, &loss);
    }
    const char *out = cap_text(&c);
    int lines = 0, steps[16];
    for (const char *s = out; (s = strchr(s, '\n')); s++) lines++;
    CHECK(lines == 11, "%d lines:\n%s", lines, out);
    const char *s = out;
    for (int i = 0; i < 11 && i < lines; i++) {
        const char *bar_end = strstr(s, "| ");
        steps[i] = bar_end ? atoi(bar_end + 2) : -1;
        CHECK(steps[i] == (i == 0 ? 1 : 10 * i), "line %d is step %d", i, steps[i]);
        s = strchr(s, '\n') + 1;
    }
    CHECK(strstr(out, "train  50%|#####.....| 50/100 [00:50<00:50, 1.0 it/s] loss 0.02\n"),
          "50%% line:\n%s", out);
    et_progress_finish(p);  // the update at 100/100 printed the final line: once
    out = cap_text(&c);
    const char *fin =
        strstr(out, "train 100%|##########| 100/100 [01:40<00:00, 1.0 it/s] loss 0.01\n");
    CHECK(fin && !strstr(fin + 30, "100/100"), "one final line:\n%s", out);
    lines = 0;
    for (const char *q = out; (q = strchr(q, '\n')); q++) lines++;
    CHECK(lines == 11, "%d lines after finish", lines);
    et_progress_free(p);
    cap_close(&c);
}

// Non-TTY: a line every log_interval seconds when no percent boundary is crossed.
static void test_non_tty_time_throttle(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {0};
    et_progress *p = bar(1000000, c.fp, &clk, 0, 10);
    double ts[] = {1, 30, 60.9, 61, 90, 120, 121, 200};
    int printed[] = {1, 0, 0, 1, 0, 0, 1, 1};
    size_t before = 0;
    for (int i = 0; i < 8; i++) {
        clk.t = ts[i];
        et_progress_update(p, i + 1, 0, NULL, NULL);
        size_t len = strlen(cap_text(&c));
        CHECK((len > before) == (printed[i] != 0), "update at t=%g: printed %d", ts[i],
              len > before);
        before = len;
    }
    et_progress_free(p);  // not a TTY: nothing more
    CHECK(strlen(cap_text(&c)) == before, "free prints nothing");
    cap_close(&c);
}

static void test_unknown_total_and_slow_rate(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {0};
    et_progress *p = bar(0, c.fp, &clk, 0, 10);
    clk.t = 5;
    const char *k[] = {"loss"};
    double v = 2;
    et_progress_update(p, 5, 1, k, &v);
    clk.t = 10;
    et_progress_finish(p);  // mean 5 steps / 10 s
    CHECK_STR(cap_text(&c), "train 5 [00:05, 1.0 it/s] loss 2\ntrain 5 [00:10, 2.0 s/it] loss 2\n");
    et_progress_free(p);
    cap_close(&c);

    cap_open(&c);
    clk.t = 0;
    p = bar(100000, c.fp, &clk, 0, 10);
    clk.t = 3725;
    et_progress_update(p, 1, 0, NULL, NULL);
    CHECK_STR(cap_text(&c),
              "train   0%|..........| 1/100000 [1:02:05<103471:11:15, 3725.0 s/it]\n");
    et_progress_free(p);
    cap_close(&c);
}

static void test_no_rate_yet_and_resume(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {0};
    et_progress *p = bar(100, c.fp, &clk, 0, 10);
    clk.t = 0.05;  // before the first rate sample
    et_progress_update(p, 1, 0, NULL, NULL);
    CHECK_STR(cap_text(&c), "train   1%|..........| 1/100 [00:00<?, ? it/s]\n");
    et_progress_free(p);
    cap_close(&c);

    cap_open(&c);
    clk.t = 50;
    et_progress_options o = {.mode = ET_PROGRESS_PLAIN,
                             .width = 10,
                             .label = "eval",
                             .initial_step = 500,
                             .clock = fake_now,
                             .clock_ctx = &clk};
    p = et_progress_new_ex(1000, c.fp, &o);
    clk.t = 60;
    et_progress_update(p, 600, 0, NULL, NULL);  // 100 steps in 10 s since the resume
    clk.t = 70;
    et_progress_finish(p);  // mean (600 - 500) / 20
    CHECK_STR(cap_text(&c),
              "eval  60%|######....| 600/1000 [00:10<00:40, 10.0 it/s]\n"
              "eval  60%|######....| 600/1000 [00:20, 5.0 it/s] -- stopped at step 600/1000\n");
    et_progress_free(p);
    cap_close(&c);
}

static void test_tty_free_unfinished_and_autodetect(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {0};
    et_progress *p = bar(10, c.fp, &clk, 1, 4);
    clk.t = 1;
    et_progress_update(p, 5, 0, NULL, NULL);
    et_progress_free(p);  // leaves the cursor on a fresh line
    CHECK_STR(cap_text(&c), "\rtrain  50%|##..| 5/10 [00:01<00:01, 5.0 it/s]\x1b[K\n");
    cap_close(&c);

    // A memory stream is not a TTY: auto-detection gives newline-terminated lines; the real
    // monotonic clock is used.
    cap_open(&c);
    p = et_progress_new(10, c.fp);
    et_progress_update(p, 1, 0, NULL, NULL);
    const char *out = cap_text(&c);
    size_t n = strlen(out);
    CHECK(n > 0 && out[0] != '\r' && out[n - 1] == '\n' && !strncmp(out, "train  10%|##", 13),
          "[%s]", out);
    et_progress_free(p);
    cap_close(&c);
}

// TTY lines are cut to the terminal width so they never wrap.
static void test_tty_columns(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {0};
    et_progress_options o = {
        .mode = ET_PROGRESS_TTY, .width = 4, .columns = 21, .clock = fake_now, .clock_ctx = &clk};
    et_progress *p = et_progress_new_ex(10, c.fp, &o);
    clk.t = 1;
    et_progress_update(p, 5, 0, NULL, NULL);
    et_progress_finish(p);
    et_progress_free(p);
    CHECK_STR(cap_text(&c), "\rtrain  50%|##..| 5/1\x1b[K\rtrain  50%|##..| 5/1\x1b[K\n");
    cap_close(&c);
}

// Steps past the total clamp the bar and percentage.
static void test_clamping(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {0};
    et_progress *p = bar(10, c.fp, &clk, 0, 4);
    clk.t = 2;
    et_progress_update(p, 12, 0, NULL, NULL);
    CHECK_STR(cap_text(&c), "train 100%|####| 12/10 [00:02<00:00, 6.0 it/s]\n");
    et_progress_free(p);
    cap_close(&c);
}

// A run that ends short of its total: no ETA (none would be true), the reason and the step.
static void test_interrupted_line(void) {
    capture c;
    cap_open(&c);
    fake_clock clk = {0};
    et_progress *p = bar(20, c.fp, &clk, 0, 10);
    const char *k[] = {"loss"};
    double v = 1.25;
    clk.t = 2;
    et_progress_update(p, 5, 1, k, &v);
    clk.t = 4;
    et_progress_end(p, "interrupted");
    et_progress_end(p, "interrupted");  // once
    CHECK_STR(cap_text(&c),
              "train  25%|##........| 5/20 [00:02<00:06, 2.5 it/s] loss 1.25\n"
              "train  25%|##........| 5/20 [00:04, 1.2 it/s] loss 1.25 -- interrupted at step "
              "5/20\n");
    et_progress_free(p);
    cap_close(&c);

    // On a terminal: the line is redrawn in place with the reason, then ends.
    cap_open(&c);
    clk.t = 0;
    p = bar(20, c.fp, &clk, 1, 4);
    clk.t = 1;
    et_progress_update(p, 4, 0, NULL, NULL);
    clk.t = 2;
    et_progress_end(p, "interrupted");
    et_progress_free(p);
    CHECK_STR(cap_text(&c),
              "\rtrain  20%|....| 4/20 [00:01<00:04, 4.0 it/s]\x1b[K"
              "\rtrain  20%|....| 4/20 [00:02, 2.0 it/s] -- interrupted at step 4/20\x1b[K\n");
    cap_close(&c);

    // A reason on a finished run changes nothing; unknown totals name the step.
    cap_open(&c);
    clk.t = 0;
    p = bar(0, c.fp, &clk, 0, 4);
    clk.t = 1;
    et_progress_update(p, 3, 0, NULL, NULL);
    et_progress_end(p, "interrupted");
    CHECK_STR(cap_text(&c),
              "train 3 [00:01, 3.0 it/s]\ntrain 3 [00:01, 3.0 it/s] -- interrupted at step 3\n");
    et_progress_free(p);
    cap_close(&c);
}

// Zero-initialised options detect: a pseudo-terminal gets in-place redraws, a pipe gets plain
// lines; TERM=dumb counts as no terminal. (The trainer and the evaluator pass options that only
// set a label: they must redraw on a terminal.)
static void test_autodetect_pty_and_pipe(void) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) {
        printf("  (no pseudo-terminal here: pty part skipped)\n");
        if (master >= 0) close(master);
    } else {
        int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
        CHECK(slave >= 0, "open the pty slave");
        FILE *tty = fdopen(slave, "w");
        const char *old = getenv("TERM");
        char *saved = old ? strdup(old) : NULL;
        setenv("TERM", "xterm", 1);
        CHECK(et_progress_is_terminal(tty), "a pty with TERM=xterm is a terminal");
        setenv("TERM", "dumb", 1);
        CHECK(!et_progress_is_terminal(tty), "TERM=dumb is not");
        setenv("TERM", "xterm", 1);
        fake_clock clk = {0};
        et_progress_options o = {
            .label = "eval", .width = 4, .columns = 200, .clock = fake_now, .clock_ctx = &clk};
        et_progress *p = et_progress_new_ex(8, tty, &o);
        clk.t = 1;
        et_progress_update(p, 2, 0, NULL, NULL);
        clk.t = 2;
        et_progress_update(p, 8, 0, NULL, NULL);
        et_progress_finish(p);
        et_progress_free(p);
        fclose(tty);
        if (saved)
            setenv("TERM", saved, 1);
        else
            unsetenv("TERM");
        free(saved);
        char buf[512];
        size_t got = 0;
        struct pollfd pfd = {.fd = master, .events = POLLIN};
        while (got < sizeof(buf) - 1 && poll(&pfd, 1, 200) > 0) {  // the pty hands out pieces
            ssize_t n = read(master, buf + got, sizeof(buf) - 1 - got);
            if (n <= 0) break;
            got += (size_t)n;
        }
        buf[got] = 0;
        // the terminal's line discipline turns "\n" into "\r\n"
        CHECK_STR(buf,
                  "\reval  25%|#...| 2/8 [00:01<00:03, 2.0 it/s]\x1b[K"
                  "\reval 100%|####| 8/8 [00:02<00:00, 4.0 it/s]\x1b[K\r\n");
        close(master);
    }

    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    FILE *w = fdopen(fds[1], "w");
    CHECK(!et_progress_is_terminal(w), "a pipe is not a terminal");
    fake_clock clk = {0};
    et_progress_options o = {.label = "train", .width = 4, .clock = fake_now, .clock_ctx = &clk};
    et_progress *p = et_progress_new_ex(8, w, &o);
    clk.t = 1;
    et_progress_update(p, 2, 0, NULL, NULL);
    clk.t = 2;
    et_progress_update(p, 8, 0, NULL, NULL);
    et_progress_finish(p);
    et_progress_free(p);
    fclose(w);
    char buf[512];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fds[0]);
    CHECK_STR(buf,
              "train  25%|#...| 2/8 [00:01<00:03, 2.0 it/s]\n"
              "train 100%|####| 8/8 [00:02<00:00, 4.0 it/s]\n");
}

// A warning logged while the bar is drawn in place on stderr first clears the bar's line,
// so it starts on a clean line (the bar redraws at its next update).
static void test_log_clears_tty_line(void) {
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    fflush(stderr);
    int saved = dup(2);
    CHECK(dup2(fds[1], 2) == 2, "dup2");
    fake_clock clk = {0};
    et_progress_options o = {.label = "train", .mode = ET_PROGRESS_TTY, .width = 4,
                             .columns = 200, .clock = fake_now, .clock_ctx = &clk};
    et_progress *p = et_progress_new_ex(8, stderr, &o);
    clk.t = 1;
    et_progress_update(p, 2, 0, NULL, NULL);
    et_warn("step 2 skipped");
    et_progress_free(p);  // unfinished: ends the line, and log lines stop clearing
    et_warn("after");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[512];
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = 0;
    close(fds[0]);
    CHECK_STR(buf,
              "\rtrain  25%|#...| 2/8 [00:01<00:03, 2.0 it/s]\x1b[K"
              "\r\x1b[K[emotune warn] step 2 skipped\n"
              "\n[emotune warn] after\n");
}

int main(void) {
    RUN(test_log_clears_tty_line);
    RUN(test_format_time);
    RUN(test_format_value);
    RUN(test_example_line);
    RUN(test_ema_eta);
    RUN(test_tty_redraw);
    RUN(test_non_tty_percent_throttle);
    RUN(test_non_tty_time_throttle);
    RUN(test_unknown_total_and_slow_rate);
    RUN(test_no_rate_yet_and_resume);
    RUN(test_tty_free_unfinished_and_autodetect);
    RUN(test_tty_columns);
    RUN(test_clamping);
    RUN(test_interrupted_line);
    RUN(test_autodetect_pty_and_pipe);
    return test_summary();
}
