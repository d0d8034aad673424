// tests/test_loader_stop.c - the loader never waits forever: fewer loadable samples than a
// batch (drop_last) is an error naming the counts, quickly; a stop request (opts.stop)
// interrupts a wait for a worker; an empty store and an all-bad prepare say what is wrong.
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/fileio.h"
#include "../data/dataloader.h"
#include "../data/synth.h"
#include "test_util.h"

static char g_dir[256];
static et_tokenizer *g_tok;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/et_test_loader_stop_%ld", (long)getpid());
    et_synth_opts o;
    et_synth_opts_default(&o);
    o.n_train = 8, o.n_test = 2, o.size = 32;
    et_status st = et_mkdirs(g_dir);
    if (!st) st = et_synth_write_dataset(&o, g_dir);
    if (!st) st = et_tokenizer_load("configs/tiny-emola/tokenizer.json", &g_tok);
    if (st) {
        fprintf(stderr, "setup: %s\n", et_status_msg(st));
        exit(1);
    }
}

// The first n samples of train.json with the images of the first n_bad renamed to `bad`
// (e.g. a missing file), as name.json.
static void write_subset(const char *name, int n, int n_bad, const char *bad) {
    char p[400], *txt = NULL;
    snprintf(p, sizeof p, "%s/train.json", g_dir);
    CHECK(!et_read_file(p, 1 << 24, &txt, NULL));
    // samples are {"id": ..., "image": "images/synth_00000K.png", ...}: rewrite per index
    char out[1 << 16];
    size_t w = 0;
    w += (size_t)snprintf(out + w, sizeof out - w, "[");
    for (int i = 0; i < n; i++) {
        char img[128];
        if (i < n_bad)
            snprintf(img, sizeof img, "%s%d.png", bad, i);
        else
            snprintf(img, sizeof img, "images/synth_%06d.png", i);
        w += (size_t)snprintf(out + w, sizeof out - w,
                              "%s{\"id\": \"s%d\", \"image\": \"%s\", \"conversations\": ["
                              "{\"from\": \"human\", \"value\": \"<image>\\nWhat emotion?\"}, "
                              "{\"from\": \"gpt\", \"value\": \"happy\"}]}",
                              i ? ", " : "", i, img);
    }
    w += (size_t)snprintf(out + w, sizeof out - w, "]");
    free(txt);
    snprintf(p, sizeof p, "%s/%s.json", g_dir, name);
    CHECK(!et_write_file_atomic(p, out, w));
}

static et_dataset *open_json(const char *name) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s.json", g_dir, name);
    et_dataset_opts o = {0};
    o.require_answer = true;
    et_dataset *ds = NULL;
    et_status st = et_dataset_open(p, &o, &ds);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    return ds;
}

static et_loader_opts opts(int workers) {
    et_loader_opts lo = et_loader_opts_default();
    lo.batch_size = 4, lo.max_len = 128, lo.image_size = 32;
    lo.workers = workers, lo.prefetch = 2, lo.seed = 7, lo.drop_last = true;
    lo.tmpl = et_template_find("vicuna_v1"), lo.tok = g_tok;
    return lo;
}

// 5 samples, 2 of them bad, batch 4: no batch can ever form. The loader says so (with the
// counts) at once instead of searching forever, with and without workers.
static void test_fewer_than_a_batch(void) {
    write_subset("five", 5, 2, "missing/");
    write_subset("onegood", 5, 4, "missing/");
    write_subset("allbad", 5, 5, "missing/");
    const char *names[3] = {"five", "onegood", "allbad"};
    const char *want[3] = {("only 3 of the 5 samples load (2 bad, see above), fewer than one "
                            "batch of batch_size 4"),
                           "only 1 of the 5 samples load (4 bad", "no sample loads (all 5 are bad"};
    for (int k = 0; k < 3; k++)
        for (int workers = 0; workers <= 2; workers += 2) {
            et_dataset *ds = open_json(names[k]);
            et_loader_opts lo = opts(workers);
            et_loader *l = NULL;
            CHECK(!et_loader_new(ds, &lo, &l));
            // start mid-epoch too: the error must come within the next whole epoch
            if (k == 0) et_loader_seek(l, 3, 2);
            et_batch b;
            const double t0 = now_s();
            et_status st = et_loader_next(l, &b);
            const double dt = now_s() - t0;
            CHECK(st && strstr(et_status_msg(st), want[k]), "%s, %d workers: %s", names[k], workers,
                  st ? et_status_msg(st) : "a batch");
            CHECK(dt < 1.0, "%s: %.2f s to give up", names[k], dt);
            CHECK(!et_loader_interrupted(l));
            et_status_free(st);
            et_loader_free(l);
            et_dataset_close(ds);
        }
    // 4 good of 5: one batch per epoch, over and over (no false alarm)
    write_subset("fourgood", 5, 1, "missing/");
    et_dataset *ds = open_json("fourgood");
    et_loader_opts lo = opts(1);
    et_loader *l = NULL;
    CHECK(!et_loader_new(ds, &lo, &l));
    for (int i = 0; i < 6; i++) {
        et_batch b;
        et_status st = et_loader_next(l, &b);
        CHECK(!st && b.B == 4, "batch %d: %s", i, et_status_msg(st));
        et_status_free(st);
        et_batch_free(&b);
    }
    et_loader_free(l);
    et_dataset_close(ds);
}

static volatile sig_atomic_t g_stop;

static void *set_stop_later(void *arg) {
    (void)arg;
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    g_stop = 1;
    return NULL;
}

// A slow worker (EMOTUNE_LOADER_SLOW_MS: 1.5 s per sample) keeps the loader waiting; a stop
// request ends the wait within ~50 ms and et_loader_interrupted says why.
static void test_stop_interrupts_a_wait(void) {
    write_subset("good", 4, 0, "");
    setenv("EMOTUNE_LOADER_SLOW_MS", "1500", 1);
    et_dataset *ds = open_json("good");
    et_loader_opts lo = opts(1);
    g_stop = 0;
    lo.stop = &g_stop;
    et_loader *l = NULL;
    CHECK(!et_loader_new(ds, &lo, &l));
    unsetenv("EMOTUNE_LOADER_SLOW_MS");
    pthread_t th;
    pthread_create(&th, NULL, set_stop_later, NULL);
    et_batch b;
    const double t0 = now_s();
    et_status st = et_loader_next(l, &b);
    const double dt = now_s() - t0;
    pthread_join(th, NULL);
    CHECK(st && et_loader_interrupted(l) && strstr(et_status_msg(st), "interrupted"), "%s",
          st ? et_status_msg(st) : "a batch");
    CHECK(dt >= 0.19 && dt < 0.6, "stopped after %.3f s (the flag was set at 0.2 s)", dt);
    et_status_free(st);
    et_loader_free(l);  // joins the worker once its sample is done
    // a flag already set: the next call returns at once, without workers too
    g_stop = 1;
    lo = opts(0);
    lo.stop = &g_stop;
    CHECK(!et_loader_new(ds, &lo, &l));
    st = et_loader_next(l, &b);
    CHECK(st && et_loader_interrupted(l), "%s", st ? et_status_msg(st) : "a batch");
    et_status_free(st);
    // cleared: the same loader goes on
    g_stop = 0;
    st = et_loader_next(l, &b);
    CHECK(!st && b.B == 4 && !et_loader_interrupted(l), "%s", et_status_msg(st));
    et_status_free(st);
    et_batch_free(&b);
    et_loader_free(l);
    et_dataset_close(ds);
}

// A store with no sample: the message says so (not "0 samples for 1 ranks"). prepare with
// every sample failing writes no store and leaves an existing one as it was.
static void test_empty_store_and_prepare(void) {
    char p[400];
    snprintf(p, sizeof p, "%s/empty.h5", g_dir);
    et_store_schema sc = {.image_size = 32,
                          .landmark_dim = 0,
                          .template_name = "vicuna_v1",
                          .tokenizer_name = "tiny",
                          .creator = "test",
                          .compression = -1};
    et_store_writer *w = NULL;
    et_status st = et_store_create(p, &sc, &w);
    if (!st) st = et_store_writer_close(w);
    CHECK(!st, "%s", et_status_msg(st));
    et_store *s = NULL;
    st = et_store_open(p, &s);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    if (s) {
        et_loader_opts lo = opts(0);
        et_loader *l = NULL;
        st = et_loader_new_store(s, &lo, &l);
        CHECK(st && strstr(et_status_msg(st), "holds no samples") &&
                  !strstr(et_status_msg(st), "ranks"),
              "%s", st ? et_status_msg(st) : "accepted");
        et_status_free(st);
        et_store_close(s);
    }
    // prepare: all bad -> error, no file; an existing store at the path is kept
    et_dataset *ds = open_json("allbad");
    et_loader_opts lo = opts(2);
    int64_t ok = -1, bad = -1;
    snprintf(p, sizeof p, "%s/prepared.h5", g_dir);
    st = et_loader_prepare_store(ds, &lo, &sc, p, &ok, &bad);
    CHECK(st && strstr(et_status_msg(st), "no sample could be prepared (all 5 failed)") &&
              strstr(et_status_msg(st), "image: 5"),
          "%s", st ? et_status_msg(st) : "accepted");
    CHECK(ok == 0 && bad == 5, "ok %lld bad %lld", (long long)ok, (long long)bad);
    CHECK(!et_path_exists(p), "a store was written");
    char tmp[420];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    CHECK(!et_path_exists(tmp), "its temporary file was left");
    et_status_free(st);
    CHECK(!et_write_file_atomic(p, "previous", 8));
    st = et_loader_prepare_store(ds, &lo, &sc, p, &ok, &bad);
    CHECK(st != NULL);
    et_status_free(st);
    char *txt = NULL;
    CHECK(!et_read_file(p, 100, &txt, NULL) && txt && !strcmp(txt, "previous"),
          "the existing file was replaced");
    free(txt);
    et_dataset_close(ds);
}

int main(void) {
    if (chdir(EMOTUNE_SOURCE_DIR)) return 1;
    setup();
    RUN(test_fewer_than_a_batch);
    RUN(test_stop_interrupts_a_wait);
    RUN(test_empty_store_and_prepare);
    et_tokenizer_free(g_tok);
    et_status_free(et_remove_tree(g_dir));
    return test_summary();
}
