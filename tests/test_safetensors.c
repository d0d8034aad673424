// tests/test_safetensors.c - safetensors reader/writer, python golden file, sharded index,
// and a catalogue of malformed files that must each fail with a precise message.
#include <dirent.h>
#include <inttypes.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/safetensors.h"
#include "test_util.h"

static char g_dir[64];

static void tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_dir, name);
}

// Writes raw bytes to <tmpdir>/name; returns the path in buf.
static void write_bytes(char *buf, size_t n, const char *name, const void *p, size_t len) {
    tmp_path(buf, n, name);
    FILE *fp = fopen(buf, "wb");
    if (!fp) {
        fprintf(stderr, "cannot create %s\n", buf);
        exit(1);
    }
    if (len) fwrite(p, 1, len, fp);
    fclose(fp);
}

// A safetensors file byte by byte: 8-byte LE header length (hlen, or strlen(header) when
// hlen is UINT64_MAX), the header text, then data_len bytes of data (0x11, 0x22, ...).
static void write_st(char *buf, size_t n, const char *name, uint64_t hlen, const char *header,
                     size_t data_len) {
    size_t h = strlen(header);
    size_t len = 8 + h + data_len;
    uint8_t *b = malloc(len);
    uint64_t v = hlen == UINT64_MAX ? h : hlen;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_len; i++) b[8 + h + i] = (uint8_t)(0x11 * (i + 1));
    write_bytes(buf, n, name, b, len);
    free(b);
}

static bool file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

// ---- round trip ----------------------------------------------------------------

static void test_roundtrip_all_dtypes(void) {
    char path[256];
    tmp_path(path, sizeof(path), "rt.safetensors");
    enum { NT = 9 };
    const char *names[NT] = {"w.f32", "w.bf16", "w.f16", "w.i32", "w.u8",
                             "w.f64", "scalar", "empty", "empty0"};
    et_tensor *t[NT];
    t[0] = test_rand_tensor(ET_F32, 2, (int64_t[]){2, 3}, 1.0);
    t[1] = test_rand_tensor(ET_BF16, 1, (int64_t[]){5}, 1.0);  // odd byte count
    t[2] = test_rand_tensor(ET_F16, 1, (int64_t[]){3}, 1.0);
    t[3] = et_empty(ET_I32, 1, (int64_t[]){7});
    for (int i = 0; i < 7; i++) ET_DATA(int32_t, t[3])[i] = (i - 3) * 1000003;
    t[4] = et_empty(ET_U8, 1, (int64_t[]){3});
    for (int i = 0; i < 3; i++) ET_DATA(uint8_t, t[4])[i] = (uint8_t)(i * 100 + 7);
    t[5] = test_rand_tensor(ET_F64, 2, (int64_t[]){2, 2}, 1e10);
    t[6] = et_full(ET_F32, 0, NULL, 3.25);
    t[7] = et_zeros(ET_BF16, 2, (int64_t[]){0, 4});
    t[8] = et_zeros(ET_F64, 3, (int64_t[]){2, 0, 5});
    const char *meta[] = {"format", "pt", "note", "quote \" backslash \\ tab \t", "empty", ""};
    et_status s = et_st_save(path, NT, names, t, 3, meta);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    CHECK(!file_exists(tmp), "temporary file left behind");

    et_st_file *f = NULL;
    s = et_st_open(path, &f);
    CHECK(!s, "%s", et_status_msg(s));
    if (s) {
        et_status_free(s);
        for (int i = 0; i < NT; i++) et_release(t[i]);
        return;
    }
    CHECK(et_st_num_tensors(f) == NT);
    CHECK(et_st_metadata(f, "format") && !strcmp(et_st_metadata(f, "format"), "pt"));
    CHECK(et_st_metadata(f, "note") &&
          !strcmp(et_st_metadata(f, "note"), "quote \" backslash \\ tab \t"));
    CHECK(et_st_metadata(f, "empty") && !strcmp(et_st_metadata(f, "empty"), ""));
    CHECK(et_st_metadata(f, "nope") == NULL);
    CHECK(et_st_num_metadata(f) == 3);

    et_tensor *back[NT];
    for (int i = 0; i < NT; i++) {
        s = et_st_load(f, names[i], &back[i]);
        CHECK(!s, "%s", et_status_msg(s));
        et_status_free(s);
    }
    // Names come back in data-offset order: dtype size desc, then name.
    uint64_t prev_end = 0;
    for (int i = 0; i < NT; i++) {
        et_st_info info;
        s = et_st_info_of(f, et_st_name(f, i), &info);
        CHECK(!s);
        CHECK(info.begin == prev_end, "tensor %s begins at %" PRIu64, info.name, info.begin);
        prev_end = info.end;
    }
    CHECK(!strcmp(et_st_name(f, 0), "empty0") && !strcmp(et_st_name(f, 1), "w.f64"));
    CHECK(!strcmp(et_st_name(f, NT - 1), "w.u8"));
    et_st_close(f);  // the loaded tensors keep the mapping alive

    for (int i = 0; i < NT; i++) {
        if (!back[i]) continue;
        CHECK(back[i]->dtype == t[i]->dtype, "%s dtype", names[i]);
        CHECK(back[i]->ndim == t[i]->ndim, "%s ndim", names[i]);
        CHECK(et_same_shape(back[i], t[i]), "%s shape", names[i]);
        CHECK(!memcmp(et_data(back[i]), et_data(t[i]), et_nbytes(t[i])), "%s bytes", names[i]);
        // The written file is aligned: every emotune dtype loads as a zero-copy view.
        CHECK(back[i]->storage->release != NULL, "%s should be a view of the mapping", names[i]);
        et_release(back[i]);
    }
    CHECK(ET_DATA(float, t[6])[0] == 3.25f);

    // Overwrite in place (rename over an existing file).
    s = et_st_save(path, 1, names, t, 0, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    s = et_st_open(path, &f);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (f) {
        CHECK(et_st_num_tensors(f) == 1);
        CHECK(et_st_metadata(f, "format") == NULL);
        et_st_close(f);
    }
    for (int i = 0; i < NT; i++) et_release(t[i]);
    unlink(path);
}

static void test_alignment(void) {
    char path[256];
    tmp_path(path, sizeof(path), "align.safetensors");
    // Sizes chosen so that an unsorted layout would misalign: 3 bytes, 5 halves, ...
    const char *names[] = {"a_u8", "b_bf16", "c_f64", "d_f32", "e_f16", "f_i32", "g_f64"};
    et_tensor *t[7] = {
        et_zeros(ET_U8, 1, (int64_t[]){3}),     et_zeros(ET_BF16, 1, (int64_t[]){5}),
        et_zeros(ET_F64, 1, (int64_t[]){3}),    et_zeros(ET_F32, 1, (int64_t[]){7}),
        et_zeros(ET_F16, 1, (int64_t[]){1}),    et_zeros(ET_I32, 1, (int64_t[]){1}),
        et_zeros(ET_F64, 2, (int64_t[]){1, 1}),
    };
    for (int r = 0; r < 3; r++) {
        const char *kv[] = {"k", r == 0 ? "" : r == 1 ? "x" : "xyzw"};  // vary header length
        et_status s = et_st_save(path, 7, names, t, 1, kv);
        CHECK(!s, "%s", et_status_msg(s));
        et_status_free(s);
        FILE *fp = fopen(path, "rb");
        uint8_t lb[8] = {0};
        CHECK(fp && fread(lb, 1, 8, fp) == 8);
        if (fp) fclose(fp);
        uint64_t hn = 0;
        for (int i = 7; i >= 0; i--) hn = (hn << 8) | lb[i];
        CHECK((8 + hn) % 8 == 0, "data buffer starts at %" PRIu64, 8 + hn);
        et_st_file *f = NULL;
        s = et_st_open(path, &f);
        CHECK(!s, "%s", et_status_msg(s));
        et_status_free(s);
        if (!f) continue;
        for (int i = 0; i < et_st_num_tensors(f); i++) {
            et_st_info info;
            et_status_free(et_st_info_of(f, et_st_name(f, i), &info));
            int sz = et_dtype_size(et_dtype_from_name(info.dtype));
            uint64_t at = 8 + hn + info.begin;
            CHECK(at % sz == 0, "%s (%s) at file offset %" PRIu64, info.name, info.dtype, at);
            if (sz == 8) CHECK(at % 8 == 0);
            et_tensor *x = NULL;
            et_status_free(et_st_load(f, info.name, &x));
            CHECK(x && x->storage->release != NULL, "%s not zero-copy", info.name);
            CHECK(x && (uintptr_t)et_data(x) % sz == 0);
            et_release(x);
        }
        et_st_close(f);
    }
    for (int i = 0; i < 7; i++) et_release(t[i]);
    unlink(path);
}

static void test_unaligned_copy_and_private_writes(void) {
    char path[256];
    // Header of length 61 puts the data at file offset 69: not 4-aligned -> copied.
    const char *h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}     ";
    CHECK(strlen(h) % 4 != 0);
    write_st(path, sizeof(path), "unaligned.safetensors", UINT64_MAX, h, 8);
    et_st_file *f = NULL;
    et_status s = et_st_open(path, &f);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (!f) return;
    et_tensor *a = NULL;
    s = et_st_load(f, "a", &a);
    CHECK(!s && a, "%s", et_status_msg(s));
    et_status_free(s);
    if (a) {
        CHECK(a->storage->release == NULL, "unaligned data must be copied");
        uint8_t want[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
        CHECK(!memcmp(et_data(a), want, 8));
        et_release(a);
    }
    // Missing tensor: ET_ERR_MISSING naming file and tensor.
    et_st_info info;
    s = et_st_info_of(f, "nope", &info);
    CHECK(et_status_code(s) == ET_ERR_MISSING && strstr(et_status_msg(s), "nope") &&
              strstr(et_status_msg(s), "unaligned.safetensors"),
          "%s", et_status_msg(s));
    et_status_free(s);
    s = et_st_load(f, "nope", &a);
    CHECK(et_status_code(s) == ET_ERR_MISSING && a == NULL);
    et_status_free(s);
    CHECK(et_st_find(f, "a") == 0 && et_st_find(f, "b") == -1);
    CHECK(et_st_name(f, 1) == NULL && et_st_name(f, -1) == NULL);
    et_st_close(f);
    unlink(path);

    // A zero-copy view may be written in place; the file does not change.
    tmp_path(path, sizeof(path), "private.safetensors");
    et_tensor *x = et_full(ET_F32, 1, (int64_t[]){4}, 1.5);
    const char *nm = "x";
    et_status_free(et_st_save(path, 1, &nm, &x, 0, NULL));
    et_release(x);
    f = NULL;
    et_status_free(et_st_open(path, &f));
    CHECK(f != NULL);
    if (!f) return;
    et_status_free(et_st_load(f, "x", &x));
    CHECK(x && x->storage->release != NULL);
    if (x) ET_DATA(float, x)[0] = -9.0f;
    et_st_close(f);
    et_release(x);
    et_status_free(et_st_open(path, &f));
    et_status_free(et_st_load(f, "x", &x));
    CHECK(x && ET_DATA(float, x)[0] == 1.5f, "the file was modified");
    et_release(x);
    et_st_close(f);
    unlink(path);
}

static void test_save_rejects(void) {
    char path[256];
    tmp_path(path, sizeof(path), "rej.safetensors");
    et_tensor *a = et_zeros(ET_F32, 1, (int64_t[]){2});
    et_tensor *b = et_zeros(ET_BF16, 1, (int64_t[]){2});
    et_tensor *ts[2] = {a, b};
    const char *dup[2] = {"w", "w"};
    et_status s = et_st_save(path, 2, dup, ts, 0, NULL);
    CHECK(et_status_code(s) == ET_ERR_INVALID && strstr(et_status_msg(s), "duplicate"), "%s",
          et_status_msg(s));
    et_status_free(s);
    const char *meta_name[2] = {"__metadata__", "w"};
    s = et_st_save(path, 2, meta_name, ts, 0, NULL);
    CHECK(s && strstr(et_status_msg(s), "__metadata__"), "%s", et_status_msg(s));
    et_status_free(s);
    const char *empty_name[2] = {"", "w"};
    s = et_st_save(path, 2, empty_name, ts, 0, NULL);
    CHECK(s != NULL);
    et_status_free(s);
    const char *ctl_name[2] = {"a\nb", "w"};  // the reader would refuse it
    s = et_st_save(path, 2, ctl_name, ts, 0, NULL);
    CHECK(s && strstr(et_status_msg(s), "control-character name"), "%s", et_status_msg(s));
    et_status_free(s);
    const char *ok[2] = {"a", "b"};
    const char *kv[4] = {"k", "1", "k", "2"};
    s = et_st_save(path, 2, ok, ts, 2, kv);
    CHECK(s && strstr(et_status_msg(s), "duplicate metadata key"), "%s", et_status_msg(s));
    et_status_free(s);
    CHECK(!file_exists(path), "a rejected save must not create the file");
    // A directory that does not exist: an IO error, nothing created.
    s = et_st_save("/nonexistent-dir-et/x.safetensors", 2, ok, ts, 0, NULL);
    CHECK(et_status_code(s) == ET_ERR_IO, "%s", et_status_msg(s));
    et_status_free(s);
    // No tensors at all is a valid file.
    s = et_st_save(path, 0, NULL, NULL, 0, NULL);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    et_st_file *f = NULL;
    s = et_st_open(path, &f);
    CHECK(!s && f && et_st_num_tensors(f) == 0, "%s", et_status_msg(s));
    et_status_free(s);
    et_st_close(f);
    unlink(path);
    et_release(a);
    et_release(b);
}

// ---- the file written by the python package ------------------------------------

static et_tensor *golden_load(et_st_file *f, const char *name, et_dtype dt, int ndim,
                              const int64_t *shape) {
    et_tensor *t = NULL;
    et_status s = et_st_load(f, name, &t);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (!t) return NULL;
    CHECK(t->dtype == dt, "%s: dtype %s", name, et_dtype_name(t->dtype));
    CHECK(t->ndim == ndim, "%s: ndim %d", name, t->ndim);
    for (int i = 0; i < ndim && i < t->ndim; i++)
        CHECK(t->shape[i] == shape[i], "%s dim %d", name, i);
    return t;
}

static void test_python_golden(void) {
    const char *path = "tests/golden/st_python.safetensors";
    et_st_file *f = NULL;
    et_status s = et_st_open(path, &f);
    CHECK(!s, "%s (regenerate with python3 tools/golden/gen_safetensors.py)", et_status_msg(s));
    et_status_free(s);
    if (!f) return;
    CHECK(et_st_num_tensors(f) == 14);
    CHECK(et_st_metadata(f, "format") && !strcmp(et_st_metadata(f, "format"), "pt"));

    et_tensor *t = golden_load(f, "f32", ET_F32, 2, (int64_t[]){2, 3});
    for (int i = 0; t && i < 6; i++) CHECK(ET_DATA(float, t)[i] == 0.5f * i - 1.0f);
    CHECK(t && t->storage->release != NULL, "f32 should be zero-copy");
    et_release(t);

    t = golden_load(f, "f64", ET_F64, 1, (int64_t[]){3});
    if (t) {
        CHECK(ET_DATA(double, t)[0] == 1.0 / 3.0);
        CHECK(ET_DATA(double, t)[1] == -2.25);
        CHECK(ET_DATA(double, t)[2] == 1e300);
    }
    et_release(t);

    t = golden_load(f, "bf16", ET_BF16, 1, (int64_t[]){4});
    if (t) {
        const uint16_t *h = ET_DATA(uint16_t, t);
        CHECK(et_bf16_to_f32(h[0]) == 1.0f);
        CHECK(et_bf16_to_f32(h[1]) == -2.5f);
        CHECK(et_bf16_to_f32(h[2]) == 0.0078125f);
        CHECK(h[3] == 0x7f7f, "bf16 max bits %04x", h[3]);
    }
    et_release(t);

    t = golden_load(f, "f16", ET_F16, 2, (int64_t[]){2, 2});
    if (t) {
        const uint16_t *h = ET_DATA(uint16_t, t);
        CHECK(h[0] == 0x3c00 && h[1] == 0xb800 && h[2] == 0x7bff && h[3] == 0x0001,
              "f16 bits %04x %04x %04x %04x", h[0], h[1], h[2], h[3]);
    }
    et_release(t);

    t = golden_load(f, "i32", ET_I32, 1, (int64_t[]){3});
    if (t) {
        CHECK(ET_DATA(int32_t, t)[0] == -7 && ET_DATA(int32_t, t)[1] == 0 &&
              ET_DATA(int32_t, t)[2] == 2147483647);
    }
    et_release(t);

    t = golden_load(f, "i64", ET_I32, 2, (int64_t[]){2, 2});
    if (t) {
        const int32_t *v = ET_DATA(int32_t, t);
        CHECK(v[0] == 0 && v[1] == -1 && v[2] == INT32_MAX && v[3] == INT32_MIN);
    }
    et_release(t);

    t = golden_load(f, "u8", ET_U8, 1, (int64_t[]){4});
    if (t) {
        const uint8_t *v = ET_DATA(uint8_t, t);
        CHECK(v[0] == 0 && v[1] == 1 && v[2] == 200 && v[3] == 255);
    }
    et_release(t);

    t = golden_load(f, "i8", ET_U8, 1, (int64_t[]){3});
    if (t) {
        const uint8_t *v = ET_DATA(uint8_t, t);
        CHECK(v[0] == 0 && v[1] == 5 && v[2] == 127);
    }
    et_release(t);

    t = golden_load(f, "bool", ET_U8, 1, (int64_t[]){5});
    if (t) {
        const uint8_t *v = ET_DATA(uint8_t, t);
        CHECK(v[0] == 1 && v[1] == 0 && v[2] == 1 && v[3] == 1 && v[4] == 0);
    }
    et_release(t);

    t = golden_load(f, "scalar", ET_F32, 0, NULL);
    if (t) CHECK(t->numel == 1 && ET_DATA(float, t)[0] == 42.0f);
    et_release(t);

    t = golden_load(f, "empty", ET_F32, 2, (int64_t[]){0, 3});
    if (t) CHECK(t->numel == 0);
    et_release(t);

    // Load-time errors name the file, the tensor and what is wrong.
    t = NULL;
    s = et_st_load(f, "i64_big", &t);
    CHECK(s && t == NULL && strstr(et_status_msg(s), "i64_big") &&
              strstr(et_status_msg(s), "1099511627776") && strstr(et_status_msg(s), "i32") &&
              strstr(et_status_msg(s), "st_python.safetensors"),
          "%s", et_status_msg(s));
    et_status_free(s);
    s = et_st_load(f, "i8_neg", &t);
    CHECK(s && t == NULL && strstr(et_status_msg(s), "i8_neg") && strstr(et_status_msg(s), "-4"),
          "%s", et_status_msg(s));
    et_status_free(s);
    s = et_st_load(f, "i16", &t);
    CHECK(et_status_code(s) == ET_ERR_UNSUPPORTED && t == NULL &&
              strstr(et_status_msg(s), "'i16'") && strstr(et_status_msg(s), "I16"),
          "%s", et_status_msg(s));
    et_status_free(s);
    et_st_info info;
    s = et_st_info_of(f, "i16", &info);
    CHECK(!s && !strcmp(info.dtype, "I16") && info.ndim == 1 && info.shape[0] == 2 &&
          info.end - info.begin == 4);
    et_status_free(s);
    et_st_close(f);

    // Same bytes through the in-memory entry point.
    FILE *fp = fopen(path, "rb");
    CHECK(fp != NULL);
    if (!fp) return;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    s = et_st_open_memory(buf, n, "golden-in-memory", &f);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (f) {
        CHECK(et_st_num_tensors(f) == 14);
        t = golden_load(f, "bf16", ET_BF16, 1, (int64_t[]){4});
        et_st_close(f);
        if (t) CHECK(et_bf16_to_f32(ET_DATA(uint16_t, t)[1]) == -2.5f);
        et_release(t);
    }
}

// ---- sharded index -------------------------------------------------------------

static void write_text(char *buf, size_t n, const char *name, const char *text) {
    write_bytes(buf, n, name, text, strlen(text));
}

static void check_index_err(const char *name, const char *json, const char *want) {
    char path[256];
    write_text(path, sizeof(path), name, json);
    et_st_index *ix = NULL;
    et_status s = et_st_index_open(path, &ix);
    CHECK(s && ix == NULL && strstr(et_status_msg(s), want) && strstr(et_status_msg(s), name),
          "%s: want '%s', got: %s", name, want, et_status_msg(s));
    et_status_free(s);
    et_st_index_close(ix);
    unlink(path);
}

static void test_sharded_index(void) {
    char p1[256], p2[256], pix[256];
    tmp_path(p1, sizeof(p1), "model-00001-of-00002.safetensors");
    tmp_path(p2, sizeof(p2), "model-00002-of-00002.safetensors");
    et_tensor *a = test_rand_tensor(ET_F32, 2, (int64_t[]){3, 4}, 1.0);
    et_tensor *b = test_rand_tensor(ET_BF16, 1, (int64_t[]){6}, 1.0);
    et_tensor *c = test_rand_tensor(ET_F16, 0, NULL, 1.0);
    const char *n1[] = {"layer.0.w", "layer.0.b"};
    et_tensor *t1[] = {a, b};
    const char *n2[] = {"layer.1.w"};
    et_tensor *t2[] = {c};
    const char *kv[] = {"format", "pt"};
    et_status s = et_st_save(p1, 2, n1, t1, 1, kv);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    s = et_st_save(p2, 1, n2, t2, 1, kv);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    write_text(pix, sizeof(pix), "model.safetensors.index.json",
               "{\"metadata\": {\"total_size\": 62},\n \"weight_map\": {\n"
               "  \"layer.0.b\": \"model-00001-of-00002.safetensors\",\n"
               "  \"layer.0.w\": \"model-00001-of-00002.safetensors\",\n"
               "  \"layer.1.w\": \"model-00002-of-00002.safetensors\"}}\n");
    et_st_index *ix = NULL;
    s = et_st_index_open(pix, &ix);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    if (ix) {
        CHECK(et_st_index_num_tensors(ix) == 3);
        CHECK(!strcmp(et_st_index_name(ix, 0), "layer.0.b"));
        CHECK(!strcmp(et_st_index_name(ix, 2), "layer.1.w"));
        CHECK(et_st_index_name(ix, 3) == NULL);
        et_tensor *want[3] = {b, a, c};
        et_tensor *got[3] = {NULL, NULL, NULL};
        for (int i = 0; i < 3; i++) {
            s = et_st_index_load(ix, et_st_index_name(ix, i), &got[i]);
            CHECK(!s, "%s", et_status_msg(s));
            et_status_free(s);
        }
        et_st_info info;
        s = et_st_index_info_of(ix, "layer.1.w", &info);
        CHECK(!s && !strcmp(info.dtype, "F16") && info.ndim == 0);
        et_status_free(s);
        et_tensor *none = NULL;
        s = et_st_index_load(ix, "layer.9.w", &none);
        CHECK(et_status_code(s) == ET_ERR_MISSING && strstr(et_status_msg(s), "layer.9.w") &&
              none == NULL);
        et_status_free(s);
        et_st_index_close(ix);  // tensors outlive the index
        for (int i = 0; i < 3; i++) {
            CHECK(got[i] && got[i]->dtype == want[i]->dtype && et_same_shape(got[i], want[i]) &&
                      !memcmp(et_data(got[i]), et_data(want[i]), et_nbytes(want[i])),
                  "tensor %d", i);
            et_release(got[i]);
        }
    }

    // Index errors.
    check_index_err("bad1.index.json", "{\"metadata\":{}}", "weight_map");
    check_index_err("bad2.index.json", "{\"weight_map\":[1,2]}", "weight_map");
    check_index_err("bad3.index.json", "{\"weight_map\":{\"w\":\"../etc/passwd\"}}", "shard");
    check_index_err("bad4.index.json", "{\"weight_map\":{\"w\":\"sub/model.safetensors\"}}",
                    "sub/model.safetensors");
    check_index_err("bad5.index.json", "{\"weight_map\":{\"w\":\"model-missing.safetensors\"}}",
                    "model-missing.safetensors");
    check_index_err("bad6.index.json",
                    "{\"weight_map\":{\"layer.7.w\":\"model-00001-of-00002.safetensors\"}}",
                    "layer.7.w");
    check_index_err("bad7.index.json",
                    "{\"weight_map\":{\"layer.0.w\":\"model-00001-of-00002.safetensors\","
                    "\"layer.0.w\":\"model-00001-of-00002.safetensors\"}}",
                    "duplicate");
    check_index_err("bad8.index.json", "{\"weight_map\":{\"w\":5}}", "not a string");
    check_index_err("bad9.index.json", "{\"weight_map\":", "JSON");
    check_index_err("bad10.index.json", "{\"metadata\":{\"total_size\":-1},\"weight_map\":{}}",
                    "total_size");
    et_st_index *none = NULL;
    s = et_st_index_open("/nonexistent-dir-et/model.safetensors.index.json", &none);
    CHECK(et_status_code(s) == ET_ERR_IO && none == NULL);
    et_status_free(s);

    unlink(p1);
    unlink(p2);
    unlink(pix);
    et_release(a);
    et_release(b);
    et_release(c);
}

// ---- the catalogue of malformed files ------------------------------------------

typedef struct {
    const char *name;    // file name (also checked to appear in the message)
    uint64_t hlen;       // UINT64_MAX: the header's length
    const char *header;  // header text
    size_t data_len;     // data bytes appended
    const char *want;    // substring the error must contain
} bad_case;

#define T(dt, shape, off) "{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":" off "}"
#define AUTO UINT64_MAX

static const bad_case k_bad[] = {
    {"len_short.st", 0, NULL, 0, "shorter than the 8-byte header length"},
    {"len_huge.st", 100000001ull, "{}", 0, "header length 100000001 exceeds the limit"},
    {"len_past_eof.st", 64, "{}", 0, "header length 64 runs past the end of the file"},
    {"len_zero.st", 0, "", 0, "does not start with '{'"},
    {"not_object.st", AUTO, "[1,2,3] ", 0, "does not start with '{'"},
    {"bad_utf8.st", AUTO, "{\"\xff\xfe\":" T("F32", "[1]", "[0,4]") "}", 4, "not valid UTF-8"},
    {"overlong_utf8.st", AUTO, "{\"\xc0\xaf\":" T("F32", "[1]", "[0,4]") "}", 4, "UTF-8"},
    {"control_byte.st", AUTO, "{\"a\x01\":" T("F32", "[1]", "[0,4]") "}", 4, "control byte 0x01"},
    {"bad_json.st", AUTO, "{\"a\": {\"dtype\":", 0, "not valid JSON"},
    {"trailing.st", AUTO, "{} {}", 0, "trailing data"},
    {"entry_not_object.st", AUTO, "{\"a\":[1,2]}", 0, "tensor 'a': entry is not an object"},
    {"no_dtype.st", AUTO, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"dtype\""},
    {"dtype_not_string.st", AUTO, "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
     "\"dtype\""},
    {"unknown_dtype.st", AUTO, "{\"a\":" T("F17", "[1]", "[0,4]") "}", 4, "unknown dtype \"F17\""},
    {"no_shape.st", AUTO, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "\"shape\""},
    {"shape_negative.st", AUTO, "{\"a\":" T("F32", "[2,-1]", "[0,4]") "}", 4,
     "shape[1] is not a non-negative integer"},
    {"shape_fraction.st", AUTO, "{\"a\":" T("F32", "[1.5]", "[0,4]") "}", 4,
     "shape[0] is not a non-negative integer"},
    {"shape_string.st", AUTO, "{\"a\":" T("F32", "[\"1\"]", "[0,4]") "}", 4, "shape[0]"},
    {"shape_huge.st", AUTO, "{\"a\":" T("F32", "[1e300]", "[0,4]") "}", 4, "shape[0]"},
    {"too_many_dims.st", AUTO, "{\"a\":" T("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4,
     "shape has 9 dims, more than 8"},
    {"shape_overflow.st", AUTO,
     "{\"a\":" T("F32", "[4294967296,4294967296,4294967296]", "[0,4]") "}", 4, "overflows"},
    {"shape_overflow_zero.st", AUTO, "{\"a\":" T("F64", "[4294967296,4294967296,0]", "[0,0]") "}",
     0, "overflows"},
    {"no_offsets.st", AUTO, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets"},
    {"offsets_three.st", AUTO, "{\"a\":" T("F32", "[1]", "[0,4,8]") "}", 4,
     "\"data_offsets\" must be two non-negative integers"},
    {"offsets_negative.st", AUTO, "{\"a\":" T("F32", "[1]", "[-4,0]") "}", 4,
     "\"data_offsets\" must be two"},
    {"offsets_reversed.st", AUTO, "{\"a\":" T("F32", "[0]", "[4,0]") "}", 4,
     "data_offsets begin 4 > end 0"},
    {"offsets_size.st", AUTO, "{\"a\":" T("F32", "[2]", "[0,4]") "}", 4,
     "data_offsets span 4 bytes but its shape and dtype F32 need 8 bytes"},
    {"overlap.st", AUTO, "{\"a\":" T("F32", "[2]", "[0,8]") ",\"b\":" T("F32", "[2]", "[4,12]") "}",
     12, "overlap"},
    {"gap.st", AUTO, "{\"a\":" T("F32", "[1]", "[0,4]") ",\"b\":" T("F32", "[1]", "[8,12]") "}", 12,
     "gap"},
    {"first_not_zero.st", AUTO, "{\"a\":" T("U8", "[2]", "[2,4]") "}", 4, "expected 0"},
    {"file_too_long.st", AUTO, "{\"a\":" T("F32", "[1]", "[0,4]") "}", 5, "file size"},
    {"file_too_short.st", AUTO, "{\"a\":" T("F32", "[2]", "[0,8]") "}", 7, "file size"},
    {"duplicate.st", AUTO,
     "{\"a\":" T("F32", "[1]", "[0,4]") ",\"a\":" T("F32", "[1]", "[4,8]") "}", 8,
     "duplicate tensor name 'a'"},
    {"meta_not_object.st", AUTO, "{\"__metadata__\":[\"pt\"]}", 0, "__metadata__"},
    {"meta_not_string.st", AUTO, "{\"__metadata__\":{\"format\":1}}", 0,
     "__metadata__ value of key 'format' is not a string"},
    {"meta_duplicate_key.st", AUTO, "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0,
     "duplicate __metadata__ key 'k'"},
    {"meta_twice.st", AUTO, "{\"__metadata__\":{},\"__metadata__\":{}}", 0,
     "duplicate __metadata__"},
    // issue 12: "X\u0000evil" would load as "X"; escaped control characters in a name
    {"nul_name.st", AUTO, "{\"X\\u0000evil\":" T("F32", "[1]", "[0,4]") "}", 4,
     "header string \"X...\" holds the escape \\u0000 (a NUL character) at header byte 3; "
     "tensor names and metadata must not contain NUL"},
    {"nul_meta.st", AUTO, "{\"__metadata__\":{\"k\":\"v\\u0000w\"}}", 0,
     "header string \"v...\" holds the escape \\u0000"},
    {"ctl_name.st", AUTO, "{\"ab\\u0007\":" T("F32", "[1]", "[0,4]") "}", 4,
     "tensor name 'ab...' holds the control character 0x07 at byte 2; tensor names must be "
     "printable"},
    {"newline_name.st", AUTO, "{\"a\\nb\":" T("F32", "[1]", "[0,4]") "}", 4,
     "holds the control character 0x0a at byte 1"},
};

static void test_malformed_catalogue(void) {
    int n = (int)(sizeof(k_bad) / sizeof(k_bad[0]));
    CHECK(n >= 14);
    for (int i = 0; i < n; i++) {
        const bad_case *c = &k_bad[i];
        char path[256];
        if (!c->header) {
            write_bytes(path, sizeof(path), c->name, "\x08\x00\x00\x00\x00", 5);
        } else {
            write_st(path, sizeof(path), c->name, c->hlen, c->header, c->data_len);
        }
        et_st_file *f = NULL;
        et_status s = et_st_open(path, &f);
        CHECK(s != NULL && f == NULL, "%s: opened a malformed file", c->name);
        if (s) {
            CHECK(et_status_code(s) == ET_ERR_FORMAT, "%s: code %d", c->name, et_status_code(s));
            CHECK(strstr(et_status_msg(s), c->want) != NULL, "%s: want '%s', got: %s", c->name,
                  c->want, et_status_msg(s));
            CHECK(strstr(et_status_msg(s), c->name) != NULL, "%s: file not named: %s", c->name,
                  et_status_msg(s));
        }
        et_status_free(s);
        et_st_close(f);

        // The in-memory entry point reports the same thing.
        FILE *fp = fopen(path, "rb");
        static char buf[1 << 16];
        size_t len = fp ? fread(buf, 1, sizeof(buf), fp) : 0;
        if (fp) fclose(fp);
        s = et_st_open_memory(buf, len, c->name, &f);
        CHECK(s && f == NULL && strstr(et_status_msg(s), c->want), "%s (memory): %s", c->name,
              et_status_msg(s));
        et_status_free(s);
        et_st_close(f);
        unlink(path);
    }
    // A path that is not a file.
    et_st_file *f = NULL;
    et_status s = et_st_open(g_dir, &f);
    CHECK(s && f == NULL && strstr(et_status_msg(s), "regular file"), "%s", et_status_msg(s));
    et_status_free(s);
    s = et_st_open("/nonexistent-dir-et/x.safetensors", &f);
    CHECK(et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), "x.safetensors"));
    et_status_free(s);
}

// Well-formed edge cases the reader must accept.
static void test_accepts_edge_cases(void) {
    static const struct {
        const char *name, *header;
        size_t data_len;
        int ntensors;
    } ok[] = {
        {"empty_header.st", "{}", 0, 0},
        {"padded.st", "{}      ", 0, 0},
        {"metadata_only.st", "{\"__metadata__\":{\"a\":\"b\"}}", 0, 0},
        {"two_empty_same_offset.st",
         "{\"a\":" T("F32", "[0]", "[0,0]") ",\"b\":" T("BF16", "[3,0]", "[0,0]") ",\"c\":" T(
             "U8", "[2]", "[0,2]") "}",
         2, 3},
        {"unicode_name.st", "{\"\xc3\xa9t\xc3\xa9\":" T("U8", "[1]", "[0,1]") "}", 1, 1},
        {"extra_field.st",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],"
         "\"x\":1}}",
         1, 1},
        {"unsorted_entries.st",
         "{\"b\":" T("U8", "[1]", "[1,2]") ",\"a\":" T("U8", "[1]", "[0,1]") "}", 2, 2},
        {"fp8.st", "{\"a\":" T("F8_E4M3", "[2]", "[0,2]") "}", 2, 1},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char path[256];
        write_st(path, sizeof(path), ok[i].name, AUTO, ok[i].header, ok[i].data_len);
        et_st_file *f = NULL;
        et_status s = et_st_open(path, &f);
        CHECK(!s, "%s: %s", ok[i].name, et_status_msg(s));
        et_status_free(s);
        if (f) {
            CHECK(et_st_num_tensors(f) == ok[i].ntensors, "%s", ok[i].name);
            for (int k = 0; k < et_st_num_tensors(f); k++) {
                et_tensor *t = NULL;
                s = et_st_load(f, et_st_name(f, k), &t);
                if (!strcmp(ok[i].name, "fp8.st"))
                    CHECK(et_status_code(s) == ET_ERR_UNSUPPORTED &&
                          strstr(et_status_msg(s), "F8_E4M3"));
                else
                    CHECK(!s && t, "%s: %s", ok[i].name, et_status_msg(s));
                et_status_free(s);
                et_release(t);
            }
            if (!strcmp(ok[i].name, "unsorted_entries.st"))
                CHECK(!strcmp(et_st_name(f, 0), "a") && !strcmp(et_st_name(f, 1), "b"));
            et_st_close(f);
        }
        unlink(path);
    }
}

static void cleanup_dir(void) {
    DIR *d = opendir(g_dir);
    if (d) {
        struct dirent *e;
        char p[512];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof(p), "%s/%s", g_dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(g_dir);
}

int main(void) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/et_st_test_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_roundtrip_all_dtypes);
    RUN(test_alignment);
    RUN(test_unaligned_copy_and_private_writes);
    RUN(test_save_rejects);
    RUN(test_python_golden);
    RUN(test_sharded_index);
    RUN(test_malformed_catalogue);
    RUN(test_accepts_edge_cases);
    cleanup_dir();
    return test_summary();
}
