// tools/bench/bench_store.c - write and random-read throughput of the prepared HDF5 store.
// Writes a store of N records (default 2000) with one 336x336 image each (a smooth synthetic
// picture plus mild noise, so it compresses about as a photo does), 256 token ids and
// labels, 136 landmark floats and short strings, at deflate level 4 and without
// compression; then reads N records at random indices (one thread, then two threads sharing
// the N reads) and prints records/s, MB/s of pixels and the file size. Reads fetch raw
// chunks under the HDF5 lock and inflate outside it, so two threads scale on 2 free cores.
// Usage: bench_store [N] [dir]   (dir defaults to /tmp; the files are removed afterwards)
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../data/store.h"

#define SIZE 336
#define TOKENS 256
#define LM 136

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t g_rng = 0x243f6a8885a308d3ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 32);
}

static void picture(int i, uint8_t *p) {
    for (int y = 0; y < SIZE; y++)
        for (int x = 0; x < SIZE; x++) {
            int dx = x - SIZE / 2, dy = y - SIZE / 2;
            int face = dx * dx + dy * dy * 2 < 120 * 120;
            for (int c = 0; c < 3; c++) {
                int v = face ? 180 - c * 25 + (dy / 8) : 40 + ((x + y + i * 7) / 6) % 90 + c * 20;
                v += (int)(rnd() % 7) - 3;
                p[((size_t)y * SIZE + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

typedef struct {
    et_store *st;
    int n, count;
    uint64_t seed;
    et_status err;
} reader_t;

static void *reader(void *arg) {
    reader_t *r = arg;
    uint64_t x = r->seed;
    for (int k = 0; k < r->count && !r->err; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        et_store_record rec;
        r->err = et_store_get(r->st, (int64_t)((x >> 32) % (uint64_t)r->n), &rec);
        et_store_record_free(&rec);
    }
    return NULL;
}

static int run(const char *path, int n, int level) {
    et_store_schema sc = {.image_size = SIZE,
                          .landmark_dim = LM,
                          .template_name = "llava_v1",
                          .tokenizer_name = "bench",
                          .creator = "bench_store",
                          .compression = level};
    et_store_writer *w = NULL;
    et_status s = et_store_create(path, &sc, &w);
    if (s) {
        fprintf(stderr, "%s\n", et_status_msg(s));
        return 1;
    }
    uint8_t *pix = malloc((size_t)SIZE * SIZE * 3);
    int32_t ids[TOKENS], labels[TOKENS];
    float lm[LM];
    double t0 = now();
    for (int i = 0; i < n && !s; i++) {
        picture(i, pix);
        for (int t = 0; t < TOKENS; t++) {
            ids[t] = (int32_t)(rnd() % 32000);
            labels[t] = t < TOKENS / 2 ? -100 : ids[t];
        }
        for (int k = 0; k < LM; k++) lm[k] = (float)(rnd() % 1000) / 1000.0f;
        char id[32];
        snprintf(id, sizeof(id), "bench-%d", i);
        et_store_record r = {.id = id,
                             .source = "synthetic",
                             .label = "happiness",
                             .reference = "A smiling face looking at the camera.",
                             .age = 30,
                             .label_id = 3,
                             .n_tokens = TOKENS,
                             .ids = ids,
                             .labels = labels,
                             .n_images = 1,
                             .pixels = pix,
                             .has_landmarks = true,
                             .landmarks = lm};
        s = et_store_append(w, &r);
    }
    if (s) {
        fprintf(stderr, "%s\n", et_status_msg(s));
        et_store_writer_abort(w);
        return 1;
    }
    s = et_store_writer_close(w);
    double t_write = now() - t0;
    free(pix);
    if (s) {
        fprintf(stderr, "%s\n", et_status_msg(s));
        return 1;
    }
    struct stat sb;
    stat(path, &sb);
    double raw_mb = (double)n * SIZE * SIZE * 3 / 1e6;

    et_store *st = NULL;
    t0 = now();
    s = et_store_open(path, &st);
    double t_open = now() - t0;
    if (s) {
        fprintf(stderr, "%s\n", et_status_msg(s));
        return 1;
    }
    // Random indices; drop the page cache effect by reading everything once first is NOT
    // done: the first pass is what a training epoch sees after writing (warm OS cache).
    t0 = now();
    for (int k = 0; k < n && !s; k++) {
        et_store_record r;
        s = et_store_get(st, (int64_t)(rnd() % (uint32_t)n), &r);
        et_store_record_free(&r);
    }
    double t_read = now() - t0;
    reader_t rd[2] = {{st, n, n / 2, 0x9e3779b97f4a7c15ull, NULL},
                      {st, n, n - n / 2, 0xbf58476d1ce4e5b9ull, NULL}};
    pthread_t th[2];
    t0 = now();
    for (int k = 0; k < 2; k++) pthread_create(&th[k], NULL, reader, &rd[k]);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    double t_read2 = now() - t0;
    if (!s) s = rd[0].err ? rd[0].err : rd[1].err;
    et_store_close(st);
    if (s) {
        fprintf(stderr, "%s\n", et_status_msg(s));
        return 1;
    }
    printf(
        "level %d: %d records of %dx%d, file %.1f MB (pixels raw %.1f MB); write %.0f rec/s; "
        "open %.1f ms; random read %.0f rec/s (%.0f MB/s of pixels), 2 threads %.0f rec/s\n",
        level, n, SIZE, SIZE, (double)sb.st_size / 1e6, raw_mb, n / t_write, t_open * 1e3,
        n / t_read, raw_mb / t_read, n / t_read2);
    unlink(path);
    return 0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    if (n < 1) n = 1;
    char path[1024];
    snprintf(path, sizeof(path), "%s/bench_store_%d.h5", dir, (int)getpid());
    int rc = run(path, n, 4);
    if (!rc) rc = run(path, n, 1);
    if (!rc) rc = run(path, n, 0);
    return rc;
}
