// tools/bench/bench_loader.c - loader throughput on a prepared HDF5 store (emotune's side of
// tools/bench/bench_loader.py, which runs it alternately with a PyTorch DataLoader over h5py).
// Usage:
//   bench_loader prepare STORE [N]   synthesize N faces at 336 px (default 800; exact
//                                    landmarks), prepare them into STORE (template "plain",
//                                    configs/tiny-emola tokenizer, 136 landmarks, deflate 4)
//   bench_loader run STORE [WORKERS] [BATCH] [EPOCHS]
//                                    one timed pass: et_loader_new_store with WORKERS threads
//                                    (2), batches of BATCH (16), shuffled, drop_last, EPOCHS
//                                    epochs (1); prints samples/s and a checksum of the batches
// Run from the repository root (the tokenizer path is relative).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../core/fileio.h"
#include "../../data/dataloader.h"
#include "../../data/synth.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int die(et_status st) {
    fprintf(stderr, "bench_loader: %s\n", et_status_msg(st));
    et_status_free(st);
    return 1;
}

static int prepare(const char *store, int n) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s.synth", store);
    et_synth_opts o;
    et_synth_opts_default(&o);
    o.n_train = n, o.n_test = 1, o.size = 336;
    double t0 = now();
    et_status st = et_mkdirs(dir);
    if (!st) st = et_synth_write_dataset(&o, dir);
    if (st) return die(st);
    double t1 = now();
    et_tokenizer *tok = NULL;
    st = et_tokenizer_load("configs/tiny-emola/tokenizer.json", &tok);
    char json[600];
    snprintf(json, sizeof json, "%s/train.json", dir);
    et_dataset_opts dopt = {.require_answer = true, .landmark_dim = 136};
    et_dataset *ds = NULL;
    if (!st) st = et_dataset_open(json, &dopt, &ds);
    int64_t ok = 0, bad = 0;
    if (!st) {
        et_loader_opts lo = et_loader_opts_default();
        lo.max_len = 2048, lo.image_size = 336, lo.pad_to_square = true, lo.landmark_dim = 136;
        lo.workers = 2, lo.tmpl = et_template_find("plain"), lo.tok = tok;
        et_store_schema sc = {.image_size = 336,
                              .landmark_dim = 136,
                              .template_name = "plain",
                              .tokenizer_name = "configs/tiny-emola/tokenizer.json",
                              .creator = "bench_loader",
                              .compression = 4};
        st = et_loader_prepare_store(ds, &lo, &sc, store, &ok, &bad);
    }
    et_dataset_close(ds);
    et_tokenizer_free(tok);
    et_status_free(et_remove_tree(dir));
    if (st) return die(st);
    printf("prepared %lld samples (%lld bad) into %s: synth %.1f s, prepare %.1f s\n",
           (long long)ok, (long long)bad, store, t1 - t0, now() - t1);
    return 0;
}

static int run(const char *path, int workers, int batch, int epochs) {
    et_store *store = NULL;
    et_status st = et_store_open(path, &store);
    if (st) return die(st);
    et_loader_opts lo = et_loader_opts_default();
    lo.batch_size = batch, lo.max_len = 2048, lo.image_size = 336, lo.landmark_dim = 136;
    lo.workers = workers, lo.prefetch = 4, lo.seed = 1;
    et_loader *l = NULL;
    double t0 = now();
    st = et_loader_new_store(store, &lo, &l);
    if (st) {
        et_store_close(store);
        return die(st);
    }
    const int64_t n_batches = et_loader_epoch_samples(l) / batch * epochs;
    int64_t samples = 0;
    double sum = 0;
    for (int64_t b = 0; b < n_batches && !st; b++) {
        et_batch x;
        st = et_loader_next(l, &x);
        if (st) break;
        samples += x.B;
        sum += ET_DATA(float, x.pixels)[b % 1000] + ET_DATA(float, x.landmarks)[0] +
               (double)x.n_tokens;
        et_batch_free(&x);
    }
    double dt = now() - t0;
    et_loader_free(l);
    et_store_close(store);
    if (st) return die(st);
    printf("samples %lld seconds %.3f samples_per_s %.1f checksum %.6g\n", (long long)samples, dt,
           (double)samples / dt, sum);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "prepare"))
        return prepare(argv[2], argc > 3 ? atoi(argv[3]) : 800);
    if (argc >= 3 && !strcmp(argv[1], "run"))
        return run(argv[2], argc > 3 ? atoi(argv[3]) : 2, argc > 4 ? atoi(argv[4]) : 16,
                   argc > 5 ? atoi(argv[5]) : 1);
    fprintf(stderr,
            "usage: bench_loader prepare STORE [N] | bench_loader run STORE [WORKERS] [BATCH] "
            "[EPOCHS]\n");
    return 2;
}
