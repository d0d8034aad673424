// tests/test_store.c - the prepared HDF5 store (data/store.h): round trip, layout, damage.
#include <hdf5.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../data/store.h"
#include "test_util.h"

#define S 12  // image size of the test stores
#define D 10  // landmark dim
#define NREC 50

static char g_dir[256];

static void path_in(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_dir, name);
}

static bool file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static int64_t file_size(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

static int rnd(int n) { return (int)(test_uniform() * n); }

static char *rand_string(int maxlen) {
    int len = rnd(maxlen + 1);
    char *s = malloc((size_t)len + 1);
    static const char *pieces[] = {"a", "Z", " ", "7", "\xc3\xa9", "\xe4\xb8\xad", ",", "\n"};
    int k = 0;
    while (k < len) {
        const char *p = pieces[rnd(8)];
        size_t pl = strlen(p);
        if (k + (int)pl > len) break;
        memcpy(s + k, p, pl);
        k += (int)pl;
    }
    s[k] = '\0';
    return s;
}

// Record i of the reference set: a mix of text-only, image, video; with and without
// landmarks; some NULL strings (stored as "").
static void make_record(int i, et_store_record *r) {
    memset(r, 0, sizeof(*r));
    r->n_tokens = rnd(4) == 0 ? 0 : 1 + rnd(300);
    if (r->n_tokens) {
        r->ids = malloc(sizeof(int32_t) * (size_t)r->n_tokens);
        r->labels = malloc(sizeof(int32_t) * (size_t)r->n_tokens);
        for (int64_t t = 0; t < r->n_tokens; t++) {
            r->ids[t] = rnd(128256) - (rnd(20) == 0 ? 300 : 0);
            r->labels[t] = rnd(3) == 0 ? -100 : r->ids[t];
        }
    }
    if (i == 17) {
        r->is_video = true;
        r->n_images = 5;
    } else {
        r->n_images = rnd(3) == 0 ? 0 : 1;
    }
    if (r->n_images) {
        size_t nb = (size_t)r->n_images * S * S * 3;
        r->pixels = malloc(nb);
        for (size_t b = 0; b < nb; b++) r->pixels[b] = (uint8_t)rnd(256);
    }
    r->has_landmarks = rnd(2) == 0;
    if (r->has_landmarks) {
        r->landmarks = malloc(sizeof(float) * D);
        for (int d = 0; d < D; d++) r->landmarks[d] = (float)test_randn();
    }
    r->age = rnd(4) == 0 ? -1 : rnd(90);
    r->label_id = rnd(8) - 1;
    char buf[32];
    snprintf(buf, sizeof(buf), "sample-%d", i);
    r->id = strdup(buf);
    r->source = rnd(5) == 0 ? NULL : rand_string(40);
    r->label = rand_string(12);
    r->reference = rand_string(400);
    r->gender = rnd(3) == 0 ? NULL : strdup(rnd(2) ? "male" : "female");
    r->race = rnd(2) ? NULL : rand_string(8);
}

static const char *nz(const char *s) { return s ? s : ""; }

static void check_same(const et_store_record *a, const et_store_record *b, int i) {
    CHECK(a->n_tokens == b->n_tokens, "record %d: %lld tokens, want %lld", i,
          (long long)a->n_tokens, (long long)b->n_tokens);
    if (a->n_tokens == b->n_tokens && a->n_tokens > 0) {
        CHECK(memcmp(a->ids, b->ids, sizeof(int32_t) * (size_t)a->n_tokens) == 0, "record %d ids",
              i);
        CHECK(memcmp(a->labels, b->labels, sizeof(int32_t) * (size_t)a->n_tokens) == 0,
              "record %d labels", i);
    }
    CHECK(a->n_images == b->n_images && a->is_video == b->is_video, "record %d: %lld images%s", i,
          (long long)a->n_images, a->is_video ? " (video)" : "");
    if (a->n_images == b->n_images && a->n_images > 0)
        CHECK(memcmp(a->pixels, b->pixels, (size_t)a->n_images * S * S * 3) == 0,
              "record %d pixels", i);
    CHECK(a->has_landmarks == b->has_landmarks, "record %d has_landmarks", i);
    if (a->has_landmarks && b->has_landmarks)
        CHECK(memcmp(a->landmarks, b->landmarks, sizeof(float) * D) == 0, "record %d landmarks", i);
    CHECK(!a->has_landmarks || a->landmarks, "record %d landmarks pointer", i);
    CHECK(a->age == b->age && a->label_id == b->label_id, "record %d age %d/%d label_id %d/%d", i,
          a->age, b->age, a->label_id, b->label_id);
    const char *sa[6] = {a->id, a->source, a->label, a->reference, a->gender, a->race};
    const char *sb[6] = {b->id, b->source, b->label, b->reference, b->gender, b->race};
    for (int f = 0; f < 6; f++) {
        CHECK(sa[f] != NULL, "record %d string %d is NULL", i, f);
        CHECK(strcmp(nz(sa[f]), nz(sb[f])) == 0, "record %d string %d: \"%s\" vs \"%s\"", i, f,
              nz(sa[f]), nz(sb[f]));
    }
}

static et_store_record g_ref[NREC];

static et_store_schema test_schema(void) {
    et_store_schema sc = {.image_size = S,
                          .landmark_dim = D,
                          .template_name = "llava_v1",
                          .tokenizer_name = "llama-2 tokenizer.json sha256:abc",
                          .creator = "test_store",
                          .compression = -1};
    return sc;
}

// Write the NREC reference records to path.
static bool write_ref_store(const char *path) {
    et_store_schema sc = test_schema();
    et_store_writer *w = NULL;
    et_status s = et_store_create(path, &sc, &w);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return false;
    }
    for (int i = 0; i < NREC && !s; i++) s = et_store_append(w, &g_ref[i]);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        et_store_writer_abort(w);
        return false;
    }
    s = et_store_writer_close(w);
    CHECK(!s, "%s", et_status_msg(s));
    bool ok = !s;
    et_status_free(s);
    return ok;
}

static void test_roundtrip(void) {
    char path[512], tmp[600];
    path_in(path, sizeof(path), "ref.h5");
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (!write_ref_store(path)) return;
    CHECK(file_exists(path) && !file_exists(tmp), "committed file at path, no temporary left");
    et_store *st = NULL;
    et_status s = et_store_open(path, &st);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return;
    }
    CHECK(et_store_size(st) == NREC, "size %lld", (long long)et_store_size(st));
    const et_store_schema *sc = et_store_get_schema(st);
    CHECK(sc->image_size == S && sc->landmark_dim == D && sc->compression == 4, "schema");
    CHECK(strcmp(sc->template_name, "llava_v1") == 0, "template %s", sc->template_name);
    CHECK(strcmp(sc->tokenizer_name, "llama-2 tokenizer.json sha256:abc") == 0, "tokenizer");
    CHECK(sc->supervise && !strcmp(sc->supervise, "answers"), "supervise defaults to answers");
    CHECK(strcmp(sc->creator, "test_store") == 0, "creator");
    // Random order, every record, twice.
    int order[2 * NREC];
    for (int i = 0; i < 2 * NREC; i++) order[i] = i % NREC;
    for (int i = 2 * NREC - 1; i > 0; i--) {
        int j = rnd(i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int k = 0; k < 2 * NREC; k++) {
        int i = order[k];
        et_store_record r;
        s = et_store_get(st, i, &r);
        CHECK(!s, "%s", et_status_msg(s));
        if (!s) check_same(&r, &g_ref[i], i);
        et_store_record_free(&r);
        et_status_free(s);
        int64_t nt, ni;
        int kind;
        et_store_lengths(st, i, &nt, &ni, &kind);
        CHECK(nt == g_ref[i].n_tokens && ni == g_ref[i].n_images, "lengths of %d", i);
        CHECK(kind == (g_ref[i].is_video
                           ? ET_STORE_KIND_VIDEO
                           : (g_ref[i].n_images ? ET_STORE_KIND_IMAGE : ET_STORE_KIND_TEXT)),
              "kind of %d", i);
    }
    et_store_record r;
    s = et_store_get(st, NREC, &r);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "index past the end");
    et_status_free(s);
    s = et_store_get(st, -1, &r);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "negative index");
    et_status_free(s);
    et_store_close(st);
}

// Face priors: P bf16 values per sample and the layout string come back exactly; a record
// without priors reads as zeros; a non-finite value is refused on read, naming the sample;
// prior_dim without a layout is refused at create.
static void test_priors(void) {
    char path[512];
    path_in(path, sizeof(path), "priors.h5");
    et_store_schema sc = test_schema();
    sc.prior_dim = 5, sc.prior_layout = "test/1 five values";
    const uint16_t a[5] = {0x3f80, 0xbf00, 0x0000, 0x4049, 0x3c00};  // 1, -0.5, 0, 3.14, ~0.0078
    const uint16_t bad[5] = {0x3f80, 0x7fc0, 0, 0, 0};               // a NaN
    et_store_record recs[3];
    for (int i = 0; i < 3; i++) make_record(i, &recs[i]);
    recs[0].priors = (uint16_t *)a, recs[1].priors = NULL, recs[2].priors = (uint16_t *)bad;
    et_store_writer *w = NULL;
    et_status s = et_store_create(path, &sc, &w);
    for (int i = 0; i < 3 && !s; i++) s = et_store_append(w, &recs[i]);
    if (!s) s = et_store_writer_close(w);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    for (int i = 0; i < 3; i++) recs[i].priors = NULL, et_store_record_free(&recs[i]);
    et_store *st = NULL;
    s = et_store_open(path, &st);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return et_status_free(s);
    const et_store_schema *g = et_store_get_schema(st);
    CHECK(g->prior_dim == 5 && !strcmp(g->prior_layout, "test/1 five values"), "prior schema");
    et_store_record r;
    s = et_store_get(st, 0, &r);
    CHECK(!s && r.priors && !memcmp(r.priors, a, sizeof a), "priors of record 0");
    et_store_record_free(&r), et_status_free(s);
    s = et_store_get(st, 1, &r);
    const uint16_t zero[5] = {0};
    CHECK(!s && r.priors && !memcmp(r.priors, zero, sizeof zero), "record 1 without priors: zeros");
    et_store_record_free(&r), et_status_free(s);
    s = et_store_get(st, 2, &r);
    CHECK(s && strstr(et_status_msg(s), "sample 2: priors[1] is not finite"), "NaN prior: %s",
          et_status_msg(s));
    et_status_free(s);
    et_store_close(st);
    sc.prior_layout = NULL;
    s = et_store_create(path, &sc, &w);
    CHECK(s && strstr(et_status_msg(s), "prior_dim must be in 0..") != NULL, "no layout: %s",
          et_status_msg(s));
    et_status_free(s);
}

// Chunking and filters, read back with raw HDF5 calls.
static void test_layout_and_compression(void) {
    char path[512], raw[512];
    path_in(path, sizeof(path), "flat.h5");
    path_in(raw, sizeof(raw), "flat_raw.h5");
    for (int level = 0; level <= 4; level += 4) {
        const char *p = level ? path : raw;
        et_store_schema sc = test_schema();
        sc.compression = level;
        sc.image_size = 64;
        et_store_writer *w = NULL;
        et_status s = et_store_create(p, &sc, &w);
        CHECK(!s, "%s", et_status_msg(s));
        if (s) return;
        static uint8_t pix[64 * 64 * 3];
        for (int b = 0; b < 64 * 64 * 3; b++) pix[b] = (uint8_t)(b / 3 % 64 * 4);  // compressible
        int32_t ids[64];
        for (int t = 0; t < 64; t++) ids[t] = 1000 + t % 4;
        et_store_record r = {.n_tokens = 64,
                             .ids = ids,
                             .labels = ids,
                             .n_images = 1,
                             .pixels = pix,
                             .age = -1,
                             .label_id = -1};
        for (int i = 0; i < 200 && !s; i++) s = et_store_append(w, &r);
        CHECK(!s, "%s", et_status_msg(s));
        s = et_store_writer_close(w);
        CHECK(!s, "%s", et_status_msg(s));
        et_status_free(s);
    }
    int64_t raw_pixels = 200LL * 64 * 64 * 3;
    CHECK(file_size(path) > 0 && file_size(path) < raw_pixels / 10,
          "compressed store %lld bytes for %lld bytes of pixels", (long long)file_size(path),
          (long long)raw_pixels);
    CHECK(file_size(raw) > raw_pixels, "uncompressed store %lld bytes", (long long)file_size(raw));

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    CHECK(f >= 0, "H5Fopen");
    const char *names[] = {"pixels", "ids", "labels", "tok_offset", "strings", "landmarks"};
    for (size_t k = 0; f >= 0 && k < sizeof(names) / sizeof(names[0]); k++) {
        hid_t d = H5Dopen2(f, names[k], H5P_DEFAULT);
        hid_t pl = H5Dget_create_plist(d);
        CHECK(H5Pget_layout(pl) == H5D_CHUNKED, "%s is chunked", names[k]);
        int nf = H5Pget_nfilters(pl);
        bool shuffle = false, deflate = false;
        for (int i = 0; i < nf; i++) {
            unsigned flags, cd[4];
            size_t ncd = 4;
            char nm[64];
            H5Z_filter_t fid =
                H5Pget_filter2(pl, (unsigned)i, &flags, &ncd, cd, sizeof(nm), nm, NULL);
            shuffle |= fid == H5Z_FILTER_SHUFFLE;
            deflate |= fid == H5Z_FILTER_DEFLATE;
        }
        CHECK(shuffle && deflate, "%s has shuffle and deflate (%d filters)", names[k], nf);
        if (strcmp(names[k], "pixels") == 0) {
            hsize_t chunk[4] = {0};
            H5Pget_chunk(pl, 4, chunk);
            CHECK(chunk[0] == 1 && chunk[1] == 64 && chunk[2] == 64 && chunk[3] == 3,
                  "pixel chunk is one image: [%llu, %llu, %llu, %llu]",
                  (unsigned long long)chunk[0], (unsigned long long)chunk[1],
                  (unsigned long long)chunk[2], (unsigned long long)chunk[3]);
            hid_t sp = H5Dget_space(d);
            hsize_t maxd[4];
            H5Sget_simple_extent_dims(sp, NULL, maxd);
            CHECK(maxd[0] == H5S_UNLIMITED, "pixels are extendible");
            H5Sclose(sp);
        }
        H5Pclose(pl);
        H5Dclose(d);
    }
    if (f >= 0) {
        hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
        int v = 0;
        H5Aread(a, H5T_NATIVE_INT, &v);
        CHECK(v == ET_STORE_SCHEMA_VERSION, "schema_version attribute %d", v);
        H5Aclose(a);
        H5Fclose(f);
    }
    f = H5Fopen(raw, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f >= 0) {
        hid_t d = H5Dopen2(f, "pixels", H5P_DEFAULT);
        hid_t pl = H5Dget_create_plist(d);
        CHECK(H5Pget_nfilters(pl) == 0, "compression 0 has no filters");
        H5Pclose(pl);
        H5Dclose(d);
        H5Fclose(f);
    }
}

// ---- damaged and foreign files -------------------------------------------------------------

static bool write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static void expect_open_error(const char *path, et_code code, const char *needle,
                              const char *what) {
    et_store *st = NULL;
    et_status s = et_store_open(path, &st);
    CHECK(s != NULL && st == NULL, "%s: open should fail", what);
    if (s) {
        CHECK(et_status_code(s) == code, "%s: code %d, want %d (%s)", what, et_status_code(s), code,
              et_status_msg(s));
        CHECK(strstr(et_status_msg(s), path) != NULL, "%s: message names the file: %s", what,
              et_status_msg(s));
        CHECK(!needle || strstr(et_status_msg(s), needle) != NULL, "%s: message lacks '%s': %s",
              what, needle, et_status_msg(s));
    }
    et_status_free(s);
    et_store_close(st);
}

static bool copy_file(const char *from, const char *to, int64_t max_bytes) {
    FILE *f = fopen(from, "rb");
    if (!f) return false;
    FILE *g = fopen(to, "wb");
    if (!g) {
        fclose(f);
        return false;
    }
    char buf[65536];
    size_t n;
    int64_t total = 0;
    bool ok = true;
    while ((max_bytes < 0 || total < max_bytes) && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (max_bytes >= 0 && total + (int64_t)n > max_bytes) n = (size_t)(max_bytes - total);
        ok &= fwrite(buf, 1, n, g) == n;
        total += (int64_t)n;
    }
    fclose(f);
    return fclose(g) == 0 && ok;
}

// Apply fn to a copy of the reference store opened read-write.
static bool edit_copy(const char *name, char *out, size_t n, void (*fn)(hid_t)) {
    char ref[512];
    path_in(ref, sizeof(ref), "ref.h5");
    path_in(out, n, name);
    if (!copy_file(ref, out, -1)) return false;
    hid_t f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return false;
    fn(f);
    H5Fclose(f);
    return true;
}

static void set_version(hid_t f, int v) {
    hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &v);
    H5Aclose(a);
}
static void set_version_1(hid_t f) { set_version(f, 1); }
static void set_version_3(hid_t f) { set_version(f, 3); }
static void drop_labels(hid_t f) { H5Ldelete(f, "labels", H5P_DEFAULT); }
static void drop_num_samples(hid_t f) { H5Adelete(f, "num_samples"); }

static void set_i64(hid_t f, const char *ds, hsize_t at, int64_t v) {
    hid_t d = H5Dopen2(f, ds, H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t one = 1;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &one, NULL);
    H5Dwrite(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, &v);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
}
static void offsets_decrease(hid_t f) { set_i64(f, "tok_offset", 10, 0); }
static void offsets_past_end(hid_t f) {
    hid_t d = H5Dopen2(f, "tok_offset", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t n;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    set_i64(f, "tok_offset", n - 1, 1 << 30);
}
static void image_offset_wrong(hid_t f) {
    hid_t d = H5Dopen2(f, "img_offset", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    hsize_t n;
    H5Sget_simple_extent_dims(sp, &n, NULL);
    H5Sclose(sp);
    H5Dclose(d);
    set_i64(f, "img_offset", n - 1, 3);  // points before the end of pixels
}
static void shrink_age(hid_t f) {
    hid_t d = H5Dopen2(f, "age", H5P_DEFAULT);
    hsize_t n = 7;
    H5Dset_extent(d, &n);
    H5Dclose(d);
}
static void kind_mismatch(hid_t f) {
    hid_t d = H5Dopen2(f, "kind", H5P_DEFAULT);
    hid_t fs = H5Dget_space(d);
    hsize_t one = 1, at = 17;  // the video record
    hid_t ms = H5Screate_simple(1, &one, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, &at, NULL, &one, NULL);
    uint8_t v = ET_STORE_KIND_IMAGE;
    H5Dwrite(d, H5T_NATIVE_UINT8, ms, fs, H5P_DEFAULT, &v);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(d);
}
static void ids_as_float(hid_t f) {
    H5Ldelete(f, "ids", H5P_DEFAULT);
    hsize_t n = 0, mx = H5S_UNLIMITED, ch = 16;
    hid_t sp = H5Screate_simple(1, &n, &mx);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 1, &ch);
    hid_t d = H5Dcreate2(f, "ids", H5T_IEEE_F32LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Dclose(d);
    H5Pclose(pl);
    H5Sclose(sp);
}

// A chunk of 'age' stored as 1 byte with its filters marked as skipped: libhdf5 1.10 would
// copy 16384 bytes out of it (fuzz_store's heap overflow); the reader checks it first.
static void short_age_chunk(hid_t f) {
    hid_t d = H5Dopen2(f, "age", H5P_DEFAULT);
    hid_t pl = H5Dget_create_plist(d);
    const int nf = H5Pget_nfilters(pl);
    H5Pclose(pl);
    hsize_t off[1] = {0};
    uint8_t one = 7;
    H5Dwrite_chunk(d, H5P_DEFAULT, (1u << nf) - 1, off, 1, &one);
    H5Dclose(d);
}

static void test_bad_files(void) {
    char path[512];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);  // the test's own raw calls stay quiet too

    path_in(path, sizeof(path), "missing.h5");
    expect_open_error(path, ET_ERR_MISSING, NULL, "missing file");

    path_in(path, sizeof(path), "text.h5");
    CHECK(write_bytes(path, "just some text, not HDF5\n", 25), "write");
    expect_open_error(path, ET_ERR_FORMAT, "not an HDF5 file", "text file");

    path_in(path, sizeof(path), "empty.h5");
    CHECK(write_bytes(path, "", 0), "write");
    expect_open_error(path, ET_ERR_FORMAT, NULL, "empty file");

    char ref[512];
    path_in(ref, sizeof(ref), "ref.h5");
    int64_t full = file_size(ref);
    path_in(path, sizeof(path), "truncated.h5");
    CHECK(copy_file(ref, path, full / 2), "copy");
    expect_open_error(path, ET_ERR_FORMAT, NULL, "truncated store");
    CHECK(copy_file(ref, path, 700), "copy");
    expect_open_error(path, ET_ERR_FORMAT, NULL, "store cut after the superblock");

    if (edit_copy("v1.h5", path, sizeof(path), set_version_1))
        expect_open_error(path, ET_ERR_UNSUPPORTED,
                          "schema_version 1, written before stores held face priors; this build "
                          "reads version 2: prepare the data again",
                          "old version");
    if (edit_copy("v3.h5", path, sizeof(path), set_version_3))
        expect_open_error(path, ET_ERR_UNSUPPORTED, "schema_version 3", "wrong version");
    if (edit_copy("nolabels.h5", path, sizeof(path), drop_labels))
        expect_open_error(path, ET_ERR_FORMAT, "'labels'", "missing dataset");
    if (edit_copy("unfinished.h5", path, sizeof(path), drop_num_samples))
        expect_open_error(path, ET_ERR_FORMAT, "'num_samples'", "no num_samples");
    if (edit_copy("decreasing.h5", path, sizeof(path), offsets_decrease))
        expect_open_error(path, ET_ERR_FORMAT, "'tok_offset' decreases", "decreasing offsets");
    if (edit_copy("pastend.h5", path, sizeof(path), offsets_past_end))
        expect_open_error(path, ET_ERR_FORMAT, "'tok_offset' ends at", "offsets past the end");
    if (edit_copy("imgoff.h5", path, sizeof(path), image_offset_wrong))
        expect_open_error(path, ET_ERR_FORMAT, "'img_offset'", "image offsets");
    if (edit_copy("shortage.h5", path, sizeof(path), shrink_age))
        expect_open_error(path, ET_ERR_FORMAT, "'age'", "short column");
    if (edit_copy("kind.h5", path, sizeof(path), kind_mismatch))
        expect_open_error(path, ET_ERR_FORMAT, "'kind'", "kind disagrees with images");
    if (edit_copy("shortchunk.h5", path, sizeof(path), short_age_chunk))
        expect_open_error(
            path, ET_ERR_FORMAT,
            "cannot read dataset 'age' (chunk at row 0 decodes to 1 bytes, not 16384)",
            "a stored chunk shorter than the chunk");
    if (edit_copy("floatids.h5", path, sizeof(path), ids_as_float))
        expect_open_error(path, ET_ERR_FORMAT, "'ids'", "wrong element type");

    // An HDF5 file made with raw calls: the attributes, but no datasets.
    path_in(path, sizeof(path), "nodata.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const char *an[] = {"schema_version", "image_size", "landmark_dim", "num_samples"};
    int av[] = {ET_STORE_SCHEMA_VERSION, S, 0, 0};
    for (int i = 0; i < 4; i++) {
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, an[i], H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT, &av[i]);
        H5Aclose(a);
        H5Sclose(sp);
    }
    hid_t t = H5Tcopy(H5T_C_S1);  // a variable-length string, as h5py writes
    H5Tset_size(t, H5T_VARIABLE);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "string_fields", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    const char *fields = "id,source,label,reference,gender,race";
    H5Awrite(a, t, &fields);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    H5Fclose(f);
    expect_open_error(path, ET_ERR_FORMAT, "dataset 'kind' is missing", "no datasets");

    // A plain HDF5 file without our attributes.
    path_in(path, sizeof(path), "foreign.h5");
    f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    expect_open_error(path, ET_ERR_FORMAT, "'schema_version'", "foreign HDF5 file");
}

// Flip bytes inside the compressed pixel data: open or get must fail cleanly.
static void test_corrupt_chunk(void) {
    char ref[512], path[512];
    path_in(ref, sizeof(ref), "ref.h5");
    path_in(path, sizeof(path), "flipped.h5");
    CHECK(copy_file(ref, path, -1), "copy");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "pixels", H5P_DEFAULT);
    haddr_t addr = 0;
    hsize_t csize = 0;
    hsize_t off[4] = {3, 0, 0, 0};
    // Where is the chunk of image 3? (H5Dget_chunk_info arrived in 1.10.5.)
    hid_t fs = H5Dget_space(d);
    unsigned mask;
    herr_t r = H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &csize);
    H5Sclose(fs);
    H5Dclose(d);
    H5Fclose(f);
    CHECK(r >= 0 && csize > 0, "chunk info");
    if (r < 0 || csize == 0) return;
    FILE *fp = fopen(path, "r+b");
    fseek(fp, (long)(addr + csize / 2), SEEK_SET);
    uint8_t junk[32];
    memset(junk, 0xA5, sizeof(junk));
    fwrite(junk, 1, csize / 2 < 32 ? csize / 2 : 32, fp);
    fclose(fp);
    et_store *st = NULL;
    et_status s = et_store_open(path, &st);
    CHECK(!s, "damage in pixel data is found on read, not open: %s", et_status_msg(s));
    int bad = 0;
    for (int64_t i = 0; st && i < et_store_size(st); i++) {
        et_store_record rec;
        et_status g = et_store_get(st, i, &rec);
        if (g) {
            bad++;
            CHECK(et_status_code(g) == ET_ERR_FORMAT && strstr(et_status_msg(g), "'pixels'"),
                  "sample %lld: %s", (long long)i, et_status_msg(g));
        }
        et_status_free(g);
        et_store_record_free(&rec);
    }
    CHECK(bad == 1, "%d samples failed to read, want exactly 1", bad);
    et_status_free(s);
    et_store_close(st);
}

// ---- writer behaviour ----------------------------------------------------------------------

static void test_writer_errors(void) {
    char path[512], tmp[600];
    path_in(path, sizeof(path), "bad_writer.h5");
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    et_store_schema sc = test_schema();
    et_store_writer *w = NULL;
    et_status s = et_store_create(path, &sc, &w);
    CHECK(!s && file_exists(tmp), "writer writes to path.tmp");
    et_status_free(s);
    if (!w) return;
    s = et_store_append(w, &g_ref[0]);
    CHECK(!s, "%s", et_status_msg(s));
    et_store_record bad = {.is_video = true, .n_images = 0};
    s = et_store_append(w, &bad);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "a video without frames: %s", et_status_msg(s));
    et_status_free(s);
    s = et_store_append(w, &g_ref[1]);
    CHECK(s != NULL, "a failed writer refuses more records");
    et_status_free(s);
    s = et_store_writer_close(w);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "close reports the first error: %s",
          et_status_msg(s));
    et_status_free(s);
    CHECK(!file_exists(path) && !file_exists(tmp), "nothing left behind after a failed write");

    // Landmarks in a store without landmark_dim.
    sc.landmark_dim = 0;
    s = et_store_create(path, &sc, &w);
    CHECK(!s, "%s", et_status_msg(s));
    et_store_record lm = {.has_landmarks = true, .landmarks = (float[1]){1.0f}};
    s = et_store_append(w, &lm);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "landmarks without landmark_dim");
    et_status_free(s);
    et_store_writer_abort(w);
    CHECK(!file_exists(path) && !file_exists(tmp), "abort leaves nothing");

    // Abort does not touch an existing store at path.
    char ref[512];
    path_in(ref, sizeof(ref), "ref.h5");
    CHECK(copy_file(ref, path, -1), "copy");
    int64_t before = file_size(path);
    sc = test_schema();
    s = et_store_create(path, &sc, &w);
    CHECK(!s, "%s", et_status_msg(s));
    if (w) {
        et_store_append(w, &g_ref[2]);
        et_store_writer_abort(w);
    }
    CHECK(file_size(path) == before && !file_exists(tmp), "existing store kept");

    // Bad schema and an unwritable place.
    sc.image_size = 0;
    s = et_store_create(path, &sc, &w);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID && w == NULL, "image_size 0");
    et_status_free(s);
    sc = test_schema();
    path_in(path, sizeof(path), "no/such/dir/x.h5");
    s = et_store_create(path, &sc, &w);
    CHECK(s && et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), "x.h5.tmp"),
          "unwritable: %s", et_status_msg(s));
    et_status_free(s);

    // An empty store is valid.
    path_in(path, sizeof(path), "empty_store.h5");
    s = et_store_create(path, &sc, &w);
    CHECK(!s, "%s", et_status_msg(s));
    s = et_store_writer_close(w);
    CHECK(!s, "%s", et_status_msg(s));
    et_store *st = NULL;
    s = et_store_open(path, &st);
    CHECK(!s && et_store_size(st) == 0, "empty store: %s", et_status_msg(s));
    et_status_free(s);
    et_store_close(st);
}

// Many records: the writer's column buffers flush several times.
static void test_many_records(void) {
    char path[512];
    path_in(path, sizeof(path), "many.h5");
    et_store_schema sc = {.image_size = 4, .landmark_dim = 3, .compression = 1, .supervise = "all"};
    et_store_writer *w = NULL;
    et_status s = et_store_create(path, &sc, &w);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return;
    const int n = 30000;
    int32_t ids[40];
    uint8_t pix[4 * 4 * 3];
    float lm[3];
    for (int i = 0; i < n && !s; i++) {
        for (int t = 0; t < 40; t++) ids[t] = i * 7 + t;
        memset(pix, i & 0xff, sizeof(pix));
        lm[0] = (float)i;
        lm[1] = lm[2] = -1.0f;
        char id[32];
        snprintf(id, sizeof(id), "#%d", i);
        et_store_record r = {.id = id,
                             .n_tokens = 1 + i % 40,
                             .ids = ids,
                             .labels = ids,
                             .n_images = i % 2,
                             .pixels = pix,
                             .has_landmarks = i % 3 == 0,
                             .landmarks = lm,
                             .age = i % 100,
                             .label_id = i % 7};
        s = et_store_append(w, &r);
    }
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    s = et_store_writer_close(w);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    et_store *st = NULL;
    s = et_store_open(path, &st);
    CHECK(!s && et_store_size(st) == n, "%s", et_status_msg(s));
    CHECK(st && !strcmp(et_store_get_schema(st)->supervise, "all"), "supervise attribute");
    for (int k = 0; st && k < 300; k++) {
        int i = rnd(n);
        et_store_record r;
        s = et_store_get(st, i, &r);
        CHECK(!s, "%s", et_status_msg(s));
        if (s) break;
        char id[32];
        snprintf(id, sizeof(id), "#%d", i);
        CHECK(strcmp(r.id, id) == 0 && r.n_tokens == 1 + i % 40 && r.ids[0] == i * 7 &&
                  r.ids[r.n_tokens - 1] == i * 7 + r.n_tokens - 1 && r.age == i % 100 &&
                  r.label_id == i % 7 && r.n_images == i % 2 &&
                  (!r.n_images || r.pixels[47] == (i & 0xff)) && r.has_landmarks == (i % 3 == 0) &&
                  (!r.has_landmarks || r.landmarks[0] == i),
              "record %d", i);
        et_store_record_free(&r);
    }
    et_status_free(s);
    et_store_close(st);
}

// Readers on several threads (the store serialises HDF5 calls).
typedef struct {
    et_store *st;
    int seed, failures;
} reader_arg;

static void *reader_main(void *p) {
    reader_arg *a = p;
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(a->seed + 1);
    for (int k = 0; k < 200; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int i = (int)(x % NREC);
        et_store_record r;
        et_status s = et_store_get(a->st, i, &r);
        const et_store_record *e = &g_ref[i];
        if (s || r.n_tokens != e->n_tokens || r.n_images != e->n_images ||
            (r.n_tokens && memcmp(r.ids, e->ids, 4 * (size_t)r.n_tokens)) ||
            (r.n_images && memcmp(r.pixels, e->pixels, (size_t)r.n_images * S * S * 3)) ||
            strcmp(r.id, e->id) != 0)
            a->failures++;
        et_status_free(s);
        et_store_record_free(&r);
    }
    return NULL;
}

static void test_threads(void) {
    char path[512];
    path_in(path, sizeof(path), "ref.h5");
    et_store *st = NULL;
    et_status s = et_store_open(path, &st);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return;
    }
    pthread_t th[4];
    reader_arg args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (reader_arg){.st = st, .seed = t};
        pthread_create(&th[t], NULL, reader_main, &args[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK(args[t].failures == 0, "thread %d: %d mismatches", t, args[t].failures);
    }
    et_store_close(st);
}

// ---- tokens and landmarks a model cannot take (issue 12) ---------------------------------

// Samples: 0 fine, 1 a label past the vocabulary, 2 an id past it, 3 NaN landmarks,
// 4 the <image> placeholder (-200) and labels -100: fine, 5 a negative label.
static bool write_token_store(const char *path) {
    et_store_schema sc = {.image_size = S, .landmark_dim = D, .compression = 0};
    et_store_writer *w = NULL;
    et_status st = et_store_create(path, &sc, &w);
    CHECK(!st, "%s", et_status_msg(st));
    if (st) return false;
    for (int i = 0; i < 6 && !st; i++) {
        int32_t ids[4] = {1, 5, 9, 2}, labels[4] = {-100, 5, 9, 2};
        float lm[D] = {0};
        if (i == 1) labels[2] = 5000;
        if (i == 2) ids[1] = 1024;
        if (i == 3) lm[4] = NAN;
        if (i == 4) ids[0] = -200;
        if (i == 5) labels[3] = -1;
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        et_store_record r = {.id = id,
                             .n_tokens = 4,
                             .ids = ids,
                             .labels = labels,
                             .age = -1,
                             .label_id = -1,
                             .has_landmarks = true,
                             .landmarks = lm};
        st = et_store_append(w, &r);
    }
    if (st) {
        CHECK(0, "append: %s", et_status_msg(st));
        et_status_free(st);
        et_store_writer_abort(w);
        return false;
    }
    st = et_store_writer_close(w);
    CHECK(!st, "%s", et_status_msg(st));
    et_status_free(st);
    return true;
}

static void test_token_range(void) {
    char path[512];
    path_in(path, sizeof path, "tokens.h5");
    if (!write_token_store(path)) return;
    et_store *st = NULL;
    et_status s = et_store_open(path, &st);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) return;
    char want[6][1024];
    snprintf(want[1], sizeof want[1],
             "%s: sample 1: label 5000 at token 2 is outside the vocabulary [0, 1024) and is not "
             "-100 (ignored); the store was prepared with another tokenizer or is damaged: "
             "prepare it again with this config",
             path);
    snprintf(want[2], sizeof want[2],
             "%s: sample 2: token id 1024 at token 1 is outside the vocabulary [0, 1024); the "
             "store",
             path);
    snprintf(want[3], sizeof want[3],
             "%s: sample 3: landmarks[4] is NaN (landmarks must be finite numbers", path);
    snprintf(want[5], sizeof want[5], "%s: sample 5: label -1 at token 3 is outside", path);
    for (int pass = 0; pass < 2; pass++) {
        // pass 0: no vocabulary set, only the landmarks are checked; pass 1: vocab 1024
        if (pass) et_store_set_vocab(st, 1024, -200);
        for (int i = 0; i < 6; i++) {
            et_store_record r;
            s = et_store_get(st, i, &r);
            bool bad = i == 3 || (pass && (i == 1 || i == 2 || i == 5));
            if (bad) {
                CHECK(s && et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), want[i]),
                      "pass %d sample %d: got '%s', want '%s'", pass, i, et_status_msg(s), want[i]);
                CHECK(!r.ids && !r.labels && !r.landmarks, "record not zeroed");
            } else {
                CHECK(!s && r.n_tokens == 4, "pass %d sample %d: %s", pass, i, et_status_msg(s));
            }
            et_status_free(s);
            et_store_record_free(&r);
        }
    }
    et_store_close(st);
}

// A chunked dataset made by hand: rows of `elem` bytes (rank 1, or 4 = [rows, S, S, 3]).
// raw > 0: chunk 0 is then rewritten as `raw` zero bytes with H5Dwrite_chunk (same handle).
static void hand_ds(hid_t f, const char *name, hid_t type, int rank, hsize_t rows, const void *data,
                    size_t raw) {
    hsize_t dims[4] = {rows, S, S, 3}, maxd[4] = {H5S_UNLIMITED, S, S, 3}, ch[4] = {1, S, S, 3};
    hid_t sp = H5Screate_simple(rank, dims, maxd), pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, rank, ch);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    if (rows) H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (raw) {
        hsize_t off[4] = {0};
        uint8_t *junk = calloc(raw, 1);
        CHECK(H5Dwrite_chunk(d, H5P_DEFAULT, 0, off, raw, junk) >= 0, "direct chunk write");
        free(junk);
    }
    H5Dclose(d), H5Pclose(pl), H5Sclose(sp);
}

// An unfiltered chunk whose index records more bytes than the chunk holds (written in the
// session that made the file): H5Dread_chunk copies the recorded size while
// H5Dget_chunk_storage_size reports the nominal one; fuzz_store found the overflow. The
// reader sizes its buffer by the larger and refuses the chunk.
static void test_chunk_size_disagrees(void) {
    char path[512];
    path_in(path, sizeof path, "bigchunk.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const char *an[] = {"schema_version", "image_size", "landmark_dim"};
    const int av[] = {ET_STORE_SCHEMA_VERSION, S, 0};
    for (int i = 0; i < 4; i++) {
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, i < 3 ? an[i] : "num_samples",
                             i < 3 ? H5T_STD_I32LE : H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        const int64_t one = 1;
        H5Awrite(a, i < 3 ? H5T_NATIVE_INT : H5T_NATIVE_INT64, i < 3 ? (const void *)&av[i] : &one);
        H5Aclose(a), H5Sclose(sp);
    }
    const char *sn[] = {"string_fields", "template", "tokenizer", "creator"};
    const char *sv[] = {"id,source,label,reference,gender,race", "t", "k", "c"};
    for (int i = 0; i < 4; i++) {
        hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
        H5Tset_size(t, strlen(sv[i]) + 1);
        hid_t a = H5Acreate2(f, sn[i], t, sp, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, sv[i]);
        H5Aclose(a), H5Sclose(sp), H5Tclose(t);
    }
    const uint8_t zero8 = 0;
    const int32_t ids[2] = {5, 6}, minus1 = -1;
    const int64_t off0[2] = {0, 0}, tok[2] = {0, 2}, str[7] = {0};
    hand_ds(f, "kind", H5T_NATIVE_UINT8, 1, 1, &zero8, 0);
    hand_ds(f, "has_landmarks", H5T_NATIVE_UINT8, 1, 1, &zero8, 0);
    hand_ds(f, "age", H5T_NATIVE_INT32, 1, 1, &minus1, 0);
    hand_ds(f, "label_id", H5T_NATIVE_INT32, 1, 1, &minus1, 0);
    hand_ds(f, "img_offset", H5T_NATIVE_INT64, 1, 2, off0, 0);
    hand_ds(f, "tok_offset", H5T_NATIVE_INT64, 1, 2, tok, 0);
    hand_ds(f, "str_offset", H5T_NATIVE_INT64, 1, 7, str, 0);
    hand_ds(f, "pixels", H5T_NATIVE_UINT8, 4, 0, NULL, 0);
    hand_ds(f, "ids", H5T_NATIVE_INT32, 1, 2, ids, 127);  // index: 127 bytes; nominal: 4
    hand_ds(f, "labels", H5T_NATIVE_INT32, 1, 2, ids, 0);
    hand_ds(f, "strings", H5T_NATIVE_UINT8, 1, 0, NULL, 0);
    H5Fclose(f);
    et_store *st = NULL;
    et_status s = et_store_open(path, &st);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        return;
    }
    et_store_record r;
    s = et_store_get(st, 0, &r);
    CHECK(
        s && strstr(et_status_msg(s),
                    "sample 0: cannot read dataset 'ids' (stored chunk has the wrong size, row 0)"),
        "got '%s'", et_status_msg(s));
    et_status_free(s);
    et_store_record_free(&r);
    et_store_close(st);
}

int main(void) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/et_store_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    for (int i = 0; i < NREC; i++) make_record(i, &g_ref[i]);
    RUN(test_roundtrip);
    RUN(test_priors);
    RUN(test_layout_and_compression);
    RUN(test_bad_files);
    RUN(test_corrupt_chunk);
    RUN(test_token_range);
    RUN(test_chunk_size_disagrees);
    RUN(test_writer_errors);
    RUN(test_many_records);
    RUN(test_threads);
    for (int i = 0; i < NREC; i++) et_store_record_free(&g_ref[i]);
    if (!getenv("KEEP")) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    }
    return test_summary();
}
