// tests/test_dataloader.c - the loader (data/dataloader.h) on a small synthetic-face dataset:
// batches do not depend on the worker count, resuming from a saved position gives exactly
// the batches of an uninterrupted run (across epoch boundaries), epochs are reshuffled,
// bad samples are skipped and counted, LLaVA length grouping keeps every sample once; the
// store source (a store prepared from the same JSON gives the same batches; a chunk that
// fails to inflate is skipped and counted); videos (frame directories, per-frame landmarks);
// the bad-input catalogue (each bad input skipped, counted under its reason, named).
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/fileio.h"
#include "../data/dataloader.h"
#include "../data/npy.h"
#include "../data/preprocess.h"
#include "../data/synth.h"
#include "test_util.h"

static char g_dir[256];
static et_tokenizer *g_tok;

static void setup(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/et_test_dataloader_%ld", (long)getpid());
    et_synth_opts o;
    et_synth_opts_default(&o);
    o.n_train = 42, o.n_test = 7, o.size = 32;
    o.n_clips = 5, o.clip_frames = 6;
    et_status st = et_mkdirs(g_dir);
    if (!st) st = et_synth_write_dataset(&o, g_dir);
    if (!st) st = et_tokenizer_load("configs/tiny-emola/tokenizer.json", &g_tok);
    if (st) {
        fprintf(stderr, "setup: %s\n", et_status_msg(st));
        exit(1);
    }
}

static et_loader_opts test_opts(int workers, bool group) {
    et_loader_opts lo = et_loader_opts_default();
    lo.batch_size = 4, lo.max_len = 128, lo.image_size = 32, lo.landmark_dim = 136;
    lo.workers = workers, lo.prefetch = 2, lo.seed = 7, lo.group_by_length = group;
    lo.tmpl = et_template_find("vicuna_v1"), lo.tok = g_tok;
    return lo;
}

static et_loader *make(et_dataset *ds, int workers, bool group) {
    et_loader_opts lo = test_opts(workers, group);
    et_loader *l = NULL;
    et_status st = et_loader_new(ds, &lo, &l);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    return l;
}

static et_dataset *open_train(void) {
    char p[300];
    snprintf(p, sizeof p, "%s/train.json", g_dir);
    et_dataset_opts o = {0};
    o.require_answer = true, o.landmark_dim = 136;
    et_dataset *ds = NULL;
    et_status st = et_dataset_open(p, &o, &ds);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    return ds;
}

// n batches -> indices (4 per batch) and a checksum of ids, pixels and landmarks per batch.
static void run(et_loader *l, int n, int64_t *idx, double *sum) {
    for (int b = 0; b < n; b++) {
        et_batch x;
        et_status st = et_loader_next(l, &x);
        CHECK(!st && x.B == 4, "batch %d: %s", b, st ? et_status_msg(st) : "short");
        if (st) return;
        double s = 0;
        for (int i = 0; i < 4; i++) {
            idx[b * 4 + i] = x.index[i];
            for (int64_t t = 0; t < x.ids[i]->numel; t++)
                s += (t + 1) * (double)ET_DATA(int32_t, x.ids[i])[t] +
                     0.5 * ET_DATA(int32_t, x.labels[i])[t];
        }
        for (int64_t i = 0; i < x.pixels->numel; i += 7) s += ET_DATA(float, x.pixels)[i];
        for (int64_t i = 0; i < x.landmarks->numel; i++) s += ET_DATA(float, x.landmarks)[i];
        sum[b] = s;
        et_batch_free(&x);
    }
}

static void test_workers_and_resume(void) {
    et_dataset *ds = open_train();
    enum { NB = 25 };  // 10 batches per epoch (42 samples, drop_last): crosses 2 epochs
    int64_t a[NB * 4], b[NB * 4], c[NB * 4];
    double sa[NB], sb[NB], sc[NB];
    et_loader *l0 = make(ds, 0, false), *l2 = make(ds, 3, false);
    run(l0, NB, a, sa);
    run(l2, NB, b, sb);
    CHECK(!memcmp(a, b, sizeof a) && !memcmp(sa, sb, sizeof sa), "batches depend on workers");
    // epochs are permutations, different from each other
    CHECK(memcmp(a, a + 40, 40 * sizeof(int64_t)) != 0, "epoch 1 repeats epoch 0's order");
    // resume after 13 batches (epoch 1, position 12)
    et_loader *r = make(ds, 2, false);
    et_loader *first = make(ds, 2, false);
    run(first, 13, c, sc);
    int64_t e = 0, p = 0;
    et_loader_tell(first, &e, &p);
    CHECK(e == 1 && p == 12, "position after 13 batches: epoch %lld position %lld", (long long)e,
          (long long)p);
    et_loader_seek(r, e, p);
    run(r, NB - 13, c + 13 * 4, sc + 13);
    CHECK(!memcmp(a, c, sizeof a) && !memcmp(sa, sc, sizeof sa),
          "resumed batches differ from the uninterrupted run");
    et_loader_free(l0), et_loader_free(l2), et_loader_free(r), et_loader_free(first);
    et_dataset_close(ds);
}

static void test_grouping_keeps_every_sample(void) {
    et_dataset *ds = open_train();
    et_loader *l = make(ds, 1, true);
    int64_t idx[40];
    double s[10];
    run(l, 10, idx, s);
    int seen[42] = {0};
    for (int i = 0; i < 40; i++) seen[idx[i]]++;
    int dup = 0;
    for (int i = 0; i < 42; i++) dup += seen[i] > 1;
    CHECK(dup == 0, "%d samples seen twice in one grouped epoch", dup);
    et_loader_free(l);
    et_dataset_close(ds);
}

// shuffle_block 7 (one synthetic identity): an epoch visits whole blocks in a shuffled order,
// each block in order; every sample once; the next epoch has another block order.
static void test_shuffle_block(void) {
    et_dataset *ds = open_train();
    et_loader_opts lo = test_opts(1, false);
    lo.shuffle_block = 7, lo.batch_size = 7;
    et_loader *l = NULL;
    et_status st = et_loader_new(ds, &lo, &l);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    int64_t first[2][6];
    for (int e = 0; l && e < 2; e++) {
        int seen[42] = {0};
        for (int b = 0; b < 6; b++) {  // 42 samples = 6 blocks of 7 = 6 batches
            et_batch x;
            st = et_loader_next(l, &x);
            CHECK(!st && x.B == 7, "epoch %d batch %d: %s", e, b, st ? et_status_msg(st) : "short");
            if (st) break;
            first[e][b] = x.index[0];
            CHECK(x.index[0] % 7 == 0, "block starts at %lld", (long long)x.index[0]);
            for (int i = 0; i < 7; i++) {
                CHECK(x.index[i] == x.index[0] + i, "block not in order");
                seen[x.index[i]]++;
            }
            et_batch_free(&x);
        }
        int once = 0;
        for (int i = 0; i < 42; i++) once += seen[i] == 1;
        CHECK(once == 42, "epoch %d: %d of 42 samples seen once", e, once);
    }
    CHECK(memcmp(first[0], first[1], sizeof first[0]) != 0, "epoch 1 repeats epoch 0's blocks");
    bool shuffled = false;
    for (int b = 0; b < 6; b++) shuffled |= first[0][b] != 7 * b;
    CHECK(shuffled, "blocks in dataset order");
    et_loader_free(l);
    et_dataset_close(ds);
}

// ---- store source -------------------------------------------------------------------

static et_store *prepare_store(const char *name, int workers, int64_t *n_bad) {
    char p[400];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    et_dataset *ds = open_train();
    et_loader_opts lo = test_opts(workers, false);
    et_store_schema sc = {.image_size = 32,
                          .landmark_dim = 136,
                          .template_name = "vicuna_v1",
                          .tokenizer_name = "tiny",
                          .creator = "test_dataloader",
                          .compression = 4};
    int64_t n_ok = 0;
    et_status st = et_loader_prepare_store(ds, &lo, &sc, p, &n_ok, n_bad);
    CHECK(!st && n_ok + *n_bad == 42, "prepare: %s (%lld written)", st ? et_status_msg(st) : "",
          (long long)n_ok);
    et_status_free(st);
    et_dataset_close(ds);
    et_store *store = NULL;
    st = et_store_open(p, &store);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    et_status_free(st);
    return store;
}

static et_loader *make_store(et_store *store, int workers, bool group) {
    et_loader_opts lo = test_opts(workers, group);
    lo.tmpl = NULL, lo.tok = NULL;
    et_loader *l = NULL;
    et_status st = et_loader_new_store(store, &lo, &l);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    et_status_free(st);
    return l;
}

// Batches from the JSON source and from the store prepared from it are the same: indices,
// ids, labels, sample ids and landmarks bit-exact, pixels within the u8 quantisation.
static void test_store_equals_json(void) {
    int64_t n_bad = 0;
    et_store *store = prepare_store("train.h5", 2, &n_bad);
    CHECK(store && n_bad == 0 && et_store_size(store) == 42, "store of 42 samples (%lld bad)",
          (long long)n_bad);
    if (!store) return;
    et_dataset *ds = open_train();
    et_loader *a = make(ds, 2, false), *b = make_store(store, 3, false);
    const float std[3] = {ET_CLIP_STD_R, ET_CLIP_STD_G, ET_CLIP_STD_B};
    double max_pix = 0;
    int mism = 0;
    for (int k = 0; k < 25 && !mism; k++) {  // 2.5 epochs
        et_batch x, y;
        et_status s1 = et_loader_next(a, &x), s2 = et_loader_next(b, &y);
        CHECK(!s1 && !s2 && x.B == 4 && y.B == 4, "batch %d", k);
        if (s1 || s2) {
            et_status_free(s1), et_status_free(s2);
            break;
        }
        for (int i = 0; i < 4; i++) {
            mism += x.index[i] != y.index[i];
            mism += strcmp(x.sample_id[i], y.sample_id[i]) != 0;
            mism += x.ids[i]->numel != y.ids[i]->numel;
            if (x.ids[i]->numel == y.ids[i]->numel) {
                size_t nb = sizeof(int32_t) * (size_t)x.ids[i]->numel;
                mism += memcmp(et_data(x.ids[i]), et_data(y.ids[i]), nb) != 0;
                mism += memcmp(et_data(x.labels[i]), et_data(y.labels[i]), nb) != 0;
            }
        }
        mism += x.n_tokens != y.n_tokens;
        mism += memcmp(et_data(x.landmarks), et_data(y.landmarks),
                       sizeof(float) * (size_t)x.landmarks->numel) != 0;
        const int64_t plane = 32 * 32;
        for (int64_t i = 0; i < x.pixels->numel; i++) {
            double d = fabs((double)ET_DATA(float, x.pixels)[i] - ET_DATA(float, y.pixels)[i]);
            d *= std[(i / plane) % 3];  // in units of the [0, 1] value
            if (d > max_pix) max_pix = d;
        }
        CHECK(!mism, "batch %d differs between JSON and store (index %lld vs %lld)", k,
              (long long)x.index[0], (long long)y.index[0]);
        et_batch_free(&x), et_batch_free(&y);
    }
    CHECK(max_pix <= 0.5 / 255 + 1e-7, "pixels differ by %g (> half a u8 level)", max_pix);
    // resume mid-epoch on the store gives the same continuation
    et_loader *r = make_store(store, 1, false), *u = make_store(store, 0, false);
    int64_t iu[64], ir[64];
    double su[16], sr[16];
    run(u, 16, iu, su);
    et_loader *h = make_store(store, 2, false);
    int64_t ih[64];
    double sh[16];
    run(h, 7, ih, sh);
    int64_t e = 0, pos = 0;
    et_loader_tell(h, &e, &pos);
    et_loader_seek(r, e, pos);
    run(r, 9, ir, sr);
    CHECK(!memcmp(iu + 28, ir, 36 * sizeof(int64_t)) && !memcmp(su + 7, sr, 9 * sizeof(double)),
          "store: resumed batches differ");
    // grouping from the stored lengths keeps every sample once
    et_loader *g = make_store(store, 2, true);
    int64_t ig[40];
    double sg[10];
    run(g, 10, ig, sg);
    int seen[42] = {0}, dup = 0;
    for (int i = 0; i < 40; i++) dup += seen[ig[i]]++ > 0;
    CHECK(dup == 0, "store grouping: %d samples twice in an epoch", dup);
    et_loader_free(a), et_loader_free(b), et_loader_free(r), et_loader_free(u);
    et_loader_free(h), et_loader_free(g);
    et_dataset_close(ds);
    et_store_close(store);
}

// Options that do not fit the store are refused up front.
static void test_store_schema_mismatch(void) {
    char p[400];
    snprintf(p, sizeof p, "%s/train.h5", g_dir);
    et_store *store = NULL;
    et_status st = et_store_open(p, &store);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    if (st) return et_status_free(st);
    et_loader_opts lo = test_opts(0, false);
    lo.image_size = 64;
    et_loader *l = NULL;
    st = et_loader_new_store(store, &lo, &l);
    CHECK(st && strstr(et_status_msg(st), "train.h5") && strstr(et_status_msg(st), "64"),
          "image size mismatch: %s", st ? et_status_msg(st) : "accepted");
    et_status_free(st);
    lo = test_opts(0, false);
    lo.landmark_dim = 212;
    st = et_loader_new_store(store, &lo, &l);
    CHECK(st && strstr(et_status_msg(st), "landmark_dim"), "landmark mismatch: %s",
          st ? et_status_msg(st) : "accepted");
    et_status_free(st);
    et_store_close(store);
}

// A record whose pixel chunk no longer inflates is skipped and counted as a store record.
static void test_store_corrupt_chunk(void) {
    char p[400], q[400];
    snprintf(p, sizeof p, "%s/train.h5", g_dir);
    snprintf(q, sizeof q, "%s/flipped.h5", g_dir);
    size_t n = 0;
    char *bytes = NULL;
    et_status st = et_read_file(p, (size_t)1 << 30, &bytes, &n);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    if (st) return et_status_free(st);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "pixels", H5P_DEFAULT);
    hsize_t off[4] = {5, 0, 0, 0}, csize = 0;
    haddr_t addr = 0;
    unsigned mask = 0;
    herr_t r = H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &csize);
    H5Dclose(d), H5Fclose(f);
    CHECK(r >= 0 && csize > 16, "chunk info");
    for (hsize_t i = csize / 3; i < csize / 3 + 16; i++) bytes[addr + i] ^= 0x5A;
    st = et_write_file_atomic(q, bytes, n);
    free(bytes);
    et_store *store = NULL;
    if (!st) st = et_store_open(q, &store);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    if (st) return et_status_free(st);
    et_loader *l = make_store(store, 2, false);
    int64_t idx[40];
    double sm[10];
    run(l, 10, idx, sm);  // 41 good samples: still 10 full batches
    for (int i = 0; i < 40; i++) CHECK(idx[i] != 5, "the damaged record was delivered");
    char rep[1024];
    et_loader_report(l, rep, sizeof rep);
    CHECK(et_loader_bad_samples(l) == 1 && strstr(rep, "store record: 1") &&
              strstr(rep, "flipped.h5") && strstr(rep, "'pixels'"),
          "report: %s", rep);
    et_loader_free(l);
    et_store_close(store);
}

// ---- videos -------------------------------------------------------------------------

static et_dataset *open_json(const char *name) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    et_dataset_opts o = {0};
    o.require_answer = true, o.landmark_dim = 136;
    et_dataset *ds = NULL;
    et_status st = et_dataset_open(p, &o, &ds);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    et_status_free(st);
    return ds;
}

// clips.json with each clip's per-frame landmarks added ("landmark": "landmarks/<id>.npy"),
// as clips_lm.json.
static void write_clips_with_landmarks(void) {
    char p[300], q[300];
    snprintf(p, sizeof p, "%s/clips.json", g_dir);
    snprintf(q, sizeof q, "%s/clips_lm.json", g_dir);
    char *in = NULL;
    size_t n = 0;
    et_status st = et_read_file(p, 1 << 20, &in, &n);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    if (st) return et_status_free(st);
    char *out = malloc(n * 2 + 1024);
    size_t w = 0;
    const char *key = "\"video\":\"clips/";
    for (const char *c = in; *c;) {
        const char *v = strstr(c, key);
        if (!v) {
            w += (size_t)sprintf(out + w, "%s", c);
            break;
        }
        const char *id = v + strlen(key), *end = strchr(id, '"');
        memcpy(out + w, c, (size_t)(end + 1 - c));
        w += (size_t)(end + 1 - c);
        w += (size_t)sprintf(out + w, ",\"landmark\":\"landmarks/%.*s.npy\"", (int)(end - id), id);
        c = end + 1;
    }
    st = et_write_file_atomic(q, out, w);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    et_status_free(st);
    free(in), free(out);
}

// synth's clips: frame directories with per-frame landmarks [6, 136]. T = 4 frames each,
// the landmark row is the mean of the sampled frames' rows; the store gives the same.
static void test_video_clips(void) {
    write_clips_with_landmarks();
    et_dataset *ds = open_json("clips_lm.json");
    if (!ds) return;
    et_loader_opts lo = test_opts(2, false);
    lo.batch_size = 5, lo.video_frames = 4, lo.shuffle = false;
    et_loader *l = NULL;
    et_status st = et_loader_new(ds, &lo, &l);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    et_batch x;
    memset(&x, 0, sizeof x);
    if (!st) st = et_loader_next(l, &x);
    CHECK(!st && x.B == 5 && x.n_video == 5 && x.video && !x.pixels,
          "clips batch: %s (B %d, %d videos)", st ? et_status_msg(st) : "", x.B, x.n_video);
    if (st || !x.video) {
        et_status_free(st);
        et_loader_free(l), et_dataset_close(ds);
        return;
    }
    CHECK(x.video->ndim == 5 && x.video->shape[0] == 5 && x.video->shape[1] == 4 &&
              x.video->shape[2] == 3 && x.video->shape[3] == 32,
          "video shape");
    for (int b = 0; b < 5; b++) CHECK(x.video_row[b] == b, "video_row[%d] = %d", b, x.video_row[b]);
    // frame 0 (source frame 0) of clip 0 equals its first frame image, preprocessed
    char fp[400];
    snprintf(fp, sizeof fp, "%s/clips/%s/frame_000.png", g_dir, x.sample_id[0]);
    et_image img;
    et_image_opts io = {0};
    st = et_image_decode_file(fp, &io, &img);
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    if (!st) {
        et_clip_preproc pp;
        et_clip_preproc_default(&pp, 32);
        et_tensor *f = NULL;
        st = et_clip_preprocess(&img, &pp, NULL, &f);
        et_image_free(&img);
        CHECK(!st && !memcmp(et_data(f), et_data(x.video), sizeof(float) * 3 * 32 * 32),
              "frame 0 differs from the preprocessed frame image");
        et_release(f);
    }
    et_status_free(st);
    // landmark row: mean of rows 0, 1, 3, 5 (np.linspace(0, 5, 4, dtype=int))
    char lp[400];
    snprintf(lp, sizeof lp, "%s/landmarks/%s.npy", g_dir, x.sample_id[0]);
    float *lm = NULL;
    int nd = 0;
    int64_t shape[8];
    st = et_npy_read_f32(lp, &lm, &nd, shape);
    CHECK(!st && nd == 2 && shape[0] == 6 && shape[1] == 136, "clip landmarks [6, 136]");
    if (!st) {
        float want =
            (((0.0f + lm[0 * 136 + 7]) + lm[1 * 136 + 7]) + lm[3 * 136 + 7]) + lm[5 * 136 + 7];
        want /= 4.0f;
        CHECK(ET_DATA(float, x.landmarks)[7] == want, "landmark row %g, want the mean %g",
              ET_DATA(float, x.landmarks)[7], want);
    }
    free(lm);
    et_status_free(st);
    // the store prepared from the clips (6 stored frames -> 4) gives the same batch
    char sp[400];
    snprintf(sp, sizeof sp, "%s/clips.h5", g_dir);
    et_store_schema sc = {.image_size = 32, .landmark_dim = 136, .compression = 4};
    int64_t ok = 0, bad = 0;
    lo.video_frames = 6;  // keep every frame in the store
    st = et_loader_prepare_store(ds, &lo, &sc, sp, &ok, &bad);
    CHECK(!st && ok == 5 && bad == 0, "prepare clips: %s", st ? et_status_msg(st) : "");
    et_store *store = NULL;
    if (!st) st = et_store_open(sp, &store);
    if (!st) {
        int64_t nt = 0, ni = 0;
        int kind = 0;
        et_store_lengths(store, 0, &nt, &ni, &kind);
        CHECK(kind == ET_STORE_KIND_VIDEO && ni == 6, "stored clip: kind %d, %lld frames", kind,
              (long long)ni);
        lo.video_frames = 4, lo.tmpl = NULL, lo.tok = NULL;
        et_loader *ls = NULL;
        st = et_loader_new_store(store, &lo, &ls);
        et_batch y;
        if (!st) st = et_loader_next(ls, &y);
        CHECK(!st && y.n_video == 5, "store clips batch: %s", st ? et_status_msg(st) : "");
        if (!st) {
            CHECK(
                !memcmp(et_data(x.video), et_data(y.video), sizeof(float) * (size_t)x.video->numel),
                "store video frames differ from the JSON source's");
            // landmarks: prepared with 6 frames (mean of all rows) vs 4 sampled: not equal
            // in general; the store keeps the prepared row
            et_batch_free(&y);
        }
        et_loader_free(ls);
    }
    et_status_free(st);
    et_store_close(store);
    et_batch_free(&x);
    et_loader_free(l);
    et_dataset_close(ds);
}

// ---- the bad-input catalogue ----------------------------------------------------------

// Each bad input, in a dataset of [good, bad, good]: skipped, counted under its reason, and
// the report's message names the offending file (or field).
static void test_bad_input_catalogue(void) {
    char p[400];
    // media for the catalogue
    snprintf(p, sizeof p, "%s/landmarks/wrong_shape.npy", g_dir);
    static float lm[68 * 3];
    et_status st = et_npy_write_f32(p, lm, 2, (int64_t[]){68, 3});
    CHECK(!st, "%s", st ? et_status_msg(st) : "");
    et_status_free(st);
    snprintf(p, sizeof p, "%s/garbage.mp4", g_dir);
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 4096; i++) fputc((i * 7919) & 0xff, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/empty_dir", g_dir);
    et_status_free(et_mkdirs(p));
    snprintf(p, sizeof p, "%s/frames_bad", g_dir);
    et_status_free(et_mkdirs(p));
    snprintf(p, sizeof p, "%s/frames_bad/f1.png", g_dir);
    f = fopen(p, "wb");
    fputs("not a png", f);
    fclose(f);
#define GOOD(id)                                                                       \
    "{\"id\":\"" id                                                                    \
    "\",\"image\":\"images/synth_000001.png\",\"landmark\":"                           \
    "\"landmarks/synth_000001.npy\",\"conversations\":[{\"from\":\"human\",\"value\":" \
    "\"<image>\\nemotion?\"},{\"from\":\"gpt\",\"value\":\"fear\"}]}"
#define CONV                                                                                      \
    "\"conversations\":[{\"from\":\"human\",\"value\":\"<video>\\nemotion?\"},{\"from\":\"gpt\"," \
    "\"value\":\"fear\"}]"
#define LM ",\"landmark\":\"landmarks/synth_000001.npy\""
    static const struct {
        const char *what, *sample, *reason, *names;
    } cases[] = {
        {"landmark .npy of the wrong shape",
         "{\"id\":\"b\",\"image\":\"images/synth_000002.png\",\"landmark\":"
         "\"landmarks/wrong_shape.npy\"," CONV "}",
         "landmarks: 1", "wrong_shape.npy' of shape (68, 3)"},
        {"missing landmark file",
         "{\"id\":\"b\",\"image\":\"images/synth_000002.png\",\"landmark\":\"landmarks/"
         "nope.npy\"," CONV "}",
         "landmarks: 1", "landmarks/nope.npy"},
        {"unreadable video (garbage .mp4)",
         "{\"id\":\"b\",\"video\":\"garbage.mp4\"" LM "," CONV "}", "video: 1", "garbage.mp4"},
        {"missing video dir", "{\"id\":\"b\",\"video\":\"clips/no_such_clip\"" LM "," CONV "}",
         "video: 1", "clips/no_such_clip"},
        {"video dir without frames", "{\"id\":\"b\",\"video\":\"empty_dir\"" LM "," CONV "}",
         "video: 1", "empty_dir"},
        {"video dir with a corrupt frame", "{\"id\":\"b\",\"video\":\"frames_bad\"" LM "," CONV "}",
         "video: 1", "f1.png"},
        {"video escaping the root", "{\"id\":\"b\",\"video\":\"../..\"" LM "," CONV "}", "video: 1",
         "escapes the data root"},
        {"<video> without a video field", "{\"id\":\"b\"" LM "," CONV "}", "video: 1",
         "no \"video\" field"},
        {"missing image", "{\"id\":\"b\",\"image\":\"images/nope.png\"" LM "," CONV "}", "image: 1",
         "images/nope.png"},
        {"wrong field type", "{\"id\":\"b\",\"image\":7" LM "," CONV "}", "image: 1",
         "field 'image'"},
        {"no answer", "{\"id\":\"b\",\"conversations\":[{\"from\":\"human\",\"value\":\"hi\"}]}",
         "invalid sample: 1", "no answer"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char json[2048];
        snprintf(json, sizeof json, "[\n" GOOD("g1") ",\n%s,\n" GOOD("g2") "\n]\n",
                 cases[k].sample);
        snprintf(p, sizeof p, "%s/catalogue.json", g_dir);
        st = et_write_file_atomic(p, json, strlen(json));
        et_dataset *ds = st ? NULL : open_json("catalogue.json");
        et_status_free(st);
        if (!ds) continue;
        et_loader_opts lo = test_opts(k % 2 ? 2 : 0, false);
        lo.batch_size = 2, lo.video_frames = 2, lo.shuffle = false;
        et_loader *l = NULL;
        st = et_loader_new(ds, &lo, &l);
        et_batch x;
        memset(&x, 0, sizeof x);
        if (!st) st = et_loader_next(l, &x);
        CHECK(!st && x.B == 2 && !strcmp(x.sample_id[0], "g1") && !strcmp(x.sample_id[1], "g2"),
              "%s: the good samples: %s", cases[k].what, st ? et_status_msg(st) : "");
        char rep[1024] = "";
        if (l) et_loader_report(l, rep, sizeof rep);
        CHECK(l && et_loader_bad_samples(l) == 1 && strstr(rep, cases[k].reason) &&
                  strstr(rep, cases[k].names) && strstr(rep, "catalogue.json"),
              "%s: want \"%s\" naming \"%s\", report: %s", cases[k].what, cases[k].reason,
              cases[k].names, rep);
        et_status_free(st);
        et_batch_free(&x);
        et_loader_free(l);
        et_dataset_close(ds);
    }
#undef GOOD
#undef CONV
#undef LM
}

static void test_bad_samples_skipped(void) {
    char p[400];
    snprintf(p, sizeof p, "%s/images/synth_000003.png", g_dir);
    FILE *f = fopen(p, "wb");
    fputs("garbage", f);
    fclose(f);
    et_dataset *ds = open_train();
    et_loader *l = make(ds, 2, false);
    int64_t idx[40];
    double s[10];
    run(l, 10, idx, s);  // one epoch minus the bad sample: still 10 full batches of 41
    for (int i = 0; i < 40; i++) CHECK(idx[i] != 3, "the corrupt sample was delivered");
    CHECK(et_loader_bad_samples(l) == 1, "bad samples %lld", (long long)et_loader_bad_samples(l));
    char rep[1024];
    et_loader_report(l, rep, sizeof rep);
    CHECK(strstr(rep, "image: 1") && strstr(rep, "synth_000003.png"), "report: %s", rep);
    et_loader_free(l);
    et_dataset_close(ds);
}

int main(void) {
    setup();
    RUN(test_workers_and_resume);
    RUN(test_shuffle_block);
    RUN(test_grouping_keeps_every_sample);
    RUN(test_store_equals_json);
    RUN(test_store_schema_mismatch);
    RUN(test_store_corrupt_chunk);
    RUN(test_video_clips);
    RUN(test_bad_input_catalogue);
    RUN(test_bad_samples_skipped);
    et_tokenizer_free(g_tok);
    et_status_free(et_remove_tree(g_dir));
    return test_summary();
}
