// tests/test_eval_tb.c - `emotune eval` writes its metrics to TensorBoard: the run's tb/
// directory (found from <run>/checkpoints/step-N, else train.output_dir), the checkpoint's step
// (state.json, else the directory name), the tags and values read back from the event file
// with et_tblog_read_scalars, undefined metrics left out, and errors that name the checkpoint.
#include <dirent.h>
#include <unistd.h>

#include "../core/fileio.h"
#include "test_util.h"
#include "train/eval/evaluator.h"
#include "train/tblog.h"

static char g_dir[256];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f, "%s", path);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

// Reads every scalar of every event file in dir (in name order; one file expected per call
// here). Returns the count; *out malloc'd.
static int read_dir(const char *dir, et_tblog_scalar_event **out, int *files) {
    *out = NULL;
    *files = 0;
    DIR *d = opendir(dir);
    CHECK(d, "%s exists", dir);
    if (!d) return 0;
    int total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "events.out.tfevents.", 20)) continue;
        (*files)++;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        et_tblog_scalar_event *ev = NULL;
        int n = 0;
        et_status s = et_tblog_read_scalars(path, &ev, &n);
        CHECK(!s, "%s", et_status_msg(s));
        et_status_free(s);
        *out = realloc(*out, sizeof(**out) * (size_t)(total + n + 1));
        memcpy(*out + total, ev, sizeof(*ev) * (size_t)n);
        total += n;
        free(ev);
    }
    closedir(d);
    return total;
}

static const et_tblog_scalar_event *find(const et_tblog_scalar_event *ev, int n, const char *tag) {
    for (int i = 0; i < n; i++)
        if (!strcmp(ev[i].tag, tag)) return &ev[i];
    return NULL;
}

static void test_emotion_metrics_at_checkpoint_step(void) {
    char run[300], ckpt[400], p[500], tb[600];
    snprintf(run, sizeof run, "%s/run", g_dir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/step-00000040", run);
    CHECK(!et_mkdirs(ckpt), "mkdirs");
    snprintf(p, sizeof p, "%s/state.json", ckpt);
    write_text(p, "{\"step\": 40, \"micro_step\": 40}\n");
    et_emo_eval_result r;
    memset(&r, 0, sizeof r);
    r.kind = ET_EVAL_EMOTION;
    r.n_samples = 140;
    r.accuracy = 0.875, r.uar = 0.8125;
    r.n_rouge = 140, r.rouge_l_mean = 0.25, r.rege = 112.5;
    r.f1_mean = NAN;
    char got_dir[600] = "";
    int64_t step = -1;
    // output_dir is elsewhere: the run is told by the checkpoint's path
    et_status s = et_eval_write_tensorboard(ckpt, "/elsewhere", &r, got_dir, sizeof got_dir, &step);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    snprintf(tb, sizeof tb, "%s/tb", run);
    CHECK(!strcmp(got_dir, tb) && step == 40, "%s at %lld", got_dir, (long long)step);
    et_tblog_scalar_event *ev = NULL;
    int files = 0, n = read_dir(tb, &ev, &files);
    CHECK(files == 1 && n == 6, "%d files, %d scalars", files, n);
    struct {
        const char *tag;
        float value;
    } want[] = {{"eval/accuracy", 0.875f}, {"eval/war", 0.875f},  {"eval/uar", 0.8125f},
                {"eval/rouge_l", 0.25f},   {"eval/rege", 112.5f}, {"eval/n_samples", 140.0f}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const et_tblog_scalar_event *e = find(ev, n, want[i].tag);
        CHECK(e && e->step == 40 && e->value == want[i].value, "%s: %s step %lld value %g",
              want[i].tag, e ? "found" : "missing", e ? (long long)e->step : -1LL,
              e ? (double)e->value : 0.0);
    }
    CHECK(!find(ev, n, "eval/f1_mean"), "no AU tags for an emotion eval");
    free(ev);
}

// AU metrics; no references (no ROUGE); no state.json: the step comes from the name; a
// checkpoint outside a run's checkpoints/ writes under output_dir/tb.
static void test_au_metrics_step_from_name(void) {
    char ckpt[400], out[400], tb[500];
    snprintf(ckpt, sizeof ckpt, "%s/loose/step-00000120/", g_dir);
    snprintf(out, sizeof out, "%s/out", g_dir);
    CHECK(!et_mkdirs(ckpt), "mkdirs");
    et_emo_eval_result r;
    memset(&r, 0, sizeof r);
    r.kind = ET_EVAL_AU;
    r.n_samples = 12;
    r.f1_mean = 0.5, r.au_acc_mean = NAN, r.accuracy = r.uar = NAN;
    r.n_rouge = 0, r.rouge_l_mean = NAN, r.rege = NAN;
    int64_t step = -1;
    et_status s = et_eval_write_tensorboard(ckpt, out, &r, NULL, 0, &step);
    CHECK(!s && step == 120, "%s step %lld", et_status_msg(s), (long long)step);
    et_status_free(s);
    snprintf(tb, sizeof tb, "%s/tb", out);
    et_tblog_scalar_event *ev = NULL;
    int files = 0, n = read_dir(tb, &ev, &files);
    CHECK(files == 1 && n == 2, "%d files, %d scalars", files, n);
    const et_tblog_scalar_event *f1 = find(ev, n, "eval/f1_mean");
    CHECK(f1 && f1->step == 120 && f1->value == 0.5f, "eval/f1_mean");
    CHECK(!find(ev, n, "eval/au_acc_mean") && !find(ev, n, "eval/rouge_l") &&
              !find(ev, n, "eval/accuracy"),
          "undefined metrics are left out");
    free(ev);
}

static void test_errors(void) {
    char ckpt[400];
    snprintf(ckpt, sizeof ckpt, "%s/weird/latest", g_dir);
    CHECK(!et_mkdirs(ckpt), "mkdirs");
    et_emo_eval_result r;
    memset(&r, 0, sizeof r);
    r.kind = ET_EVAL_EMOTION;
    et_status s = et_eval_write_tensorboard(ckpt, g_dir, &r, NULL, 0, NULL);
    CHECK(et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), ckpt) &&
              strstr(et_status_msg(s), "step"),
          "%s", et_status_msg(s));
    et_status_free(s);
    // a run directory where tb/ cannot be created: ET_ERR_IO naming it
    char run[400], p[500];
    snprintf(run, sizeof run, "%s/ro/checkpoints/step-00000001", g_dir);
    CHECK(!et_mkdirs(run), "mkdirs");
    snprintf(p, sizeof p, "%s/ro/tb", g_dir);
    write_text(p, "a file where the directory should be");
    s = et_eval_write_tensorboard(run, g_dir, &r, NULL, 0, NULL);
    CHECK(s && strstr(et_status_msg(s), p), "%s", et_status_msg(s));
    et_status_free(s);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/et_eval_tb_XXXXXX");
    if (!mkdtemp(g_dir)) return 1;
    RUN(test_emotion_metrics_at_checkpoint_step);
    RUN(test_au_metrics_step_from_name);
    RUN(test_errors);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return test_summary();
}
