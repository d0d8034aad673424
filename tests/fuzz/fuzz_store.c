// tests/fuzz/fuzz_store.c - libFuzzer target for the prepared-store reader (data/store.c).
// The input is not an HDF5 file: mutating HDF5's own metadata mostly exercises libhdf5,
// which is not emotune's code (and 1.10 has known memory errors on crafted object headers,
// e.g. a heap overflow in H5O__msg_iterate_real under H5Aexists, that emotune cannot fix).
// Instead the input drives a well-formed HDF5 file written with libhdf5 whose CONTENT is
// hostile: every attribute and dataset of the layout in data/store.h present or missing,
// of the right or a wrong type, of the right length or one off, with offsets, kinds,
// landmark flags, ids, labels, floats and strings taken from the input, chunked with 1 to 7
// rows per chunk, with or without shuffle + deflate, and optionally one chunk overwritten
// with raw input bytes (H5Dwrite_chunk), which reaches the reader's own inflate/unshuffle
// code. Then et_store_open and et_store_get on every sample (with a vocabulary set, every
// other run): each must end in a status or a record whose counts agree with
// et_store_lengths, never in a crash, a sanitizer report or a leak.
// Seeds: tests/fuzz/corpus/store (byte strings: all-zero, consistent stores, damaged ones).
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../data/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const uint8_t *p;
    size_t n;
} src;

static uint8_t u8(src *s) {
    if (!s->n) return 0;
    s->n--;
    return *s->p++;
}
static uint32_t u32(src *s) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v = v << 8 | u8(s);
    return v;
}

static void attr_int(hid_t f, const char *name, hid_t type, const void *v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) H5Awrite(a, type == H5T_IEEE_F64LE ? H5T_NATIVE_DOUBLE : type, v), H5Aclose(a);
    H5Sclose(sp);
}

static void attr_str(hid_t f, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) H5Awrite(a, t, v), H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

// One dataset: rank 1 or 2 (tail = inner extents), rows of element type `type` from vals
// (native `mtype`). A control byte picks: omitted, a wrong element class, one row fewer or
// more, filters, chunk rows; a second may overwrite the first chunk with raw input bytes.
static void dataset(src *s, hid_t f, const char *name, hid_t type, hid_t mtype, size_t elem,
                    int rank, const hsize_t *tail, hsize_t rows, const void *vals) {
    const uint8_t c = u8(s);
    const size_t src_elem = elem;  // bytes per element of vals
    if ((c & 7) == 1) return;      // missing
    if ((c & 7) == 2) {            // the other class: floats for ints, ints for floats
        bool f32 = H5Tget_class(type) == H5T_FLOAT;
        type = f32 ? H5T_STD_I32LE : H5T_IEEE_F32LE;
        mtype = f32 ? H5T_NATIVE_INT32 : H5T_NATIVE_FLOAT;
        elem = 4;
    }
    if ((c & 7) == 3 && rows > 0) rows--;
    const hsize_t written = rows;
    if ((c & 7) == 4) rows++;  // one row more than written (zeros)
    hsize_t dims[4] = {rows, 1, 1, 1}, maxd[4] = {H5S_UNLIMITED, 0, 0, 0}, chunk[4];
    const hsize_t crow = (hsize_t[]){1, 2, 3, 7}[(c >> 6) & 3];
    size_t row_elems = 1;
    chunk[0] = crow;
    for (int i = 1; i < rank; i++) {
        dims[i] = maxd[i] = chunk[i] = tail[i - 1];
        row_elems *= tail[i - 1];
    }
    hid_t sp = H5Screate_simple(rank, dims, maxd);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, rank, chunk);
    if (c & 0x20) H5Pset_shuffle(pl);
    if (c & 0x10) H5Pset_deflate(pl, 1);
    hid_t d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    H5Pclose(pl);
    H5Sclose(sp);
    if (d < 0) return;
    if (written > 0 && vals) {
        hid_t fs = H5Dget_space(d);
        hsize_t start[4] = {0}, cnt[4] = {written, 1, 1, 1};
        for (int i = 1; i < rank; i++) cnt[i] = tail[i - 1];
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
        hid_t ms = H5Screate_simple(rank, cnt, NULL);
        void *buf = (void *)vals;
        void *conv = NULL;
        if ((c & 7) == 2) {  // reinterpret the bytes in the other class
            conv = calloc(written * row_elems, 4);
            memcpy(conv, vals, written * row_elems * (src_elem < 4 ? src_elem : 4));
            buf = conv;
        }
        H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, buf);
        free(conv);
        H5Sclose(ms);
        H5Sclose(fs);
    }
    if ((c & 0x0f) == 0x08 && rows > 0) {  // raw bytes as the first chunk
        size_t len = 1 + u8(s) * 2u;
        uint8_t *raw = malloc(len);
        for (size_t i = 0; i < len; i++) raw[i] = u8(s);
        hsize_t off[4] = {0, 0, 0, 0};
        H5Dwrite_chunk(d, H5P_DEFAULT, u8(s) & 3, off, len, raw);
        free(raw);
    }
    H5Dclose(d);
}

static void build(src *s, const char *path) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return;
    const uint8_t flags = u8(s);
    const int64_t n = u8(s) % 5;
    const int32_t S = 1 + u8(s) % 3, D = u8(s) % 4;
    // attributes: right, or taken from the input, or missing, or of another type
    int32_t ver = flags & 1 ? (int32_t)u32(s) : 2, isz = flags & 2 ? (int32_t)u32(s) : S;
    int32_t ldim = flags & 4 ? (int32_t)u32(s) : D;
    int64_t ns = flags & 8 ? (int64_t)(int32_t)u32(s) : n;
    if (!(flags & 0x40)) attr_int(f, "schema_version", H5T_STD_I32LE, &ver);
    attr_int(f, "image_size", H5T_STD_I32LE, &isz);
    attr_int(f, "landmark_dim", H5T_STD_I32LE, &ldim);
    const uint8_t pflags = u8(s);  // priors: P from the input, a layout or not
    int32_t pdim = pflags & 1 ? (int32_t)(pflags >> 1) % 5 : 0;
    if (pflags & 0x80) pdim = (int32_t)u32(s);
    attr_int(f, "prior_dim", H5T_STD_I32LE, &pdim);
    if (flags & 0x80) {
        double dn = (double)ns + 0.5;
        attr_int(f, "num_samples", H5T_IEEE_F64LE, &dn);
    } else {
        attr_int(f, "num_samples", H5T_STD_I64LE, &ns);
    }
    char txt[16];
    size_t tl = u8(s) % 8;
    for (size_t i = 0; i < tl; i++) txt[i] = (char)(u8(s) | 1);
    txt[tl] = '\0';
    attr_str(f, "string_fields", flags & 0x10 ? txt : "id,source,label,reference,gender,race");
    attr_str(f, "template", txt);
    attr_str(f, "tokenizer", "tok");
    if (!(flags & 0x20)) attr_str(f, "creator", "fuzz");
    if (pflags & 0x40) attr_str(f, "prior_layout", "fuzz");
    // per-sample counts -> offsets; kinds from the image counts
    int64_t img_off[6] = {0}, tok_off[6] = {0}, str_off[5 * 6 + 1] = {0};
    uint8_t kind[5], has_lm[5];
    int32_t age[5], label_id[5];
    for (int64_t i = 0; i < n; i++) {
        uint8_t k = u8(s);
        int64_t ni = k % 4;
        img_off[i + 1] = img_off[i] + ni;
        tok_off[i + 1] = tok_off[i] + u8(s) % 9;
        kind[i] = (k & 0x30) == 0x30 ? (uint8_t)(k >> 6) : ni == 0 ? 0 : ni == 1 ? 1 : 2;
        has_lm[i] = u8(s) % 3 == 2 ? (D ? 1 : 0) : (uint8_t)(k >> 7);
        age[i] = (int32_t)u32(s);
        label_id[i] = (int32_t)u32(s);
        for (int j = 0; j < 6; j++) str_off[i * 6 + j + 1] = str_off[i * 6 + j] + u8(s) % 4;
    }
    const uint8_t bad = u8(s);  // one offset replaced by an input value
    if (bad & 1) img_off[u8(s) % (n + 1)] = (int64_t)(int32_t)u32(s);
    if (bad & 2) tok_off[u8(s) % (n + 1)] = (int64_t)(int32_t)u32(s);
    if (bad & 4) str_off[u8(s) % (n * 6 + 1)] = (int64_t)(int32_t)u32(s);
    const hsize_t M = img_off[n] > 0 && img_off[n] < 64 ? (hsize_t)img_off[n] : 0;
    const hsize_t L = tok_off[n] > 0 && tok_off[n] < 4096 ? (hsize_t)tok_off[n] : 0;
    const hsize_t B = str_off[n * 6] > 0 && str_off[n * 6] < 4096 ? (hsize_t)str_off[n * 6] : 0;
    int32_t *ids = calloc(L + 1, 4), *labels = calloc(L + 1, 4);
    for (hsize_t t = 0; t < L; t++) ids[t] = (int32_t)u32(s), labels[t] = (int32_t)u32(s);
    uint8_t *pixels = calloc(M * S * S * 3 + 1, 1), *strings = calloc(B + 1, 1);
    for (hsize_t b = 0; b < M * S * S * 3; b += 7) pixels[b] = u8(s);
    for (hsize_t b = 0; b < B; b++) strings[b] = u8(s);
    float *lm = calloc((size_t)(n * D) + 1, 4);
    for (int64_t k = 0; k < n * D; k++) {
        uint32_t v = u32(s);
        memcpy(&lm[k], &v, 4);
    }
    const hsize_t pix_tail[3] = {(hsize_t)S, (hsize_t)S, 3}, lm_tail[1] = {(hsize_t)D};
    const hsize_t N = (hsize_t)n;
    dataset(s, f, "kind", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, 1, NULL, N, kind);
    dataset(s, f, "has_landmarks", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, 1, NULL, N, has_lm);
    dataset(s, f, "age", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 1, NULL, N, age);
    dataset(s, f, "label_id", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 1, NULL, N, label_id);
    dataset(s, f, "img_offset", H5T_STD_I64LE, H5T_NATIVE_INT64, 8, 1, NULL, N + 1, img_off);
    dataset(s, f, "tok_offset", H5T_STD_I64LE, H5T_NATIVE_INT64, 8, 1, NULL, N + 1, tok_off);
    dataset(s, f, "str_offset", H5T_STD_I64LE, H5T_NATIVE_INT64, 8, 1, NULL, N * 6 + 1, str_off);
    dataset(s, f, "pixels", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, 4, pix_tail, M, pixels);
    dataset(s, f, "ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 1, NULL, L, ids);
    dataset(s, f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 1, NULL, L, labels);
    dataset(s, f, "strings", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, 1, NULL, B, strings);
    if (D > 0 || (flags & 0x40))
        dataset(s, f, "landmarks", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, 2, lm_tail, N, lm);
    const int32_t P = pdim > 0 && pdim < 5 ? pdim : (pflags & 2 ? 3 : 0);
    if (P > 0) {  // bf16 bits from the input (NaN and Inf among them)
        uint16_t *pr = calloc((size_t)(n * P) + 1, 2);
        for (int64_t k = 0; k < n * P; k++) pr[k] = (uint16_t)u32(s);
        const hsize_t pr_tail[1] = {(hsize_t)P};
        dataset(s, f, "priors", H5T_STD_U16LE, H5T_NATIVE_UINT16, 2, 2, pr_tail, N, pr);
        free(pr);
    }
    free(ids), free(labels), free(pixels), free(strings), free(lm);
    H5Fclose(f);
}

static char g_path[64];

static void remove_tmp(void) { unlink(g_path); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_path[0]) {
        snprintf(g_path, sizeof g_path, "/tmp/et_fuzz_store_%d.h5", (int)getpid());
        atexit(remove_tmp);
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    }
    src in = {data, size};
    build(&in, g_path);
    et_store *s = NULL;
    et_status st = et_store_open(g_path, &s);
    const bool verbose = getenv("ET_FUZZ_VERBOSE") != NULL;  // to check what a seed reaches
    if (verbose) fprintf(stderr, "open: %s\n", et_status_msg(st));
    if (st) {
        if (s) __builtin_trap();  // no store on failure
        et_status_free(st);
        return 0;
    }
    if (size & 1) et_store_set_vocab(s, 1000, -200);
    const et_store_schema *sc = et_store_get_schema(s);
    if (sc->image_size < 1 || sc->image_size > 8192 || sc->landmark_dim < 0 ||
        sc->landmark_dim > 65536)
        __builtin_trap();
    const int64_t n = et_store_size(s);
    if (n < 0) __builtin_trap();
    for (int64_t i = 0; i < n; i++) {
        int64_t nt = 0, ni = 0;
        int kind = 0;
        et_store_lengths(s, i, &nt, &ni, &kind);
        et_store_record r;
        st = et_store_get(s, i, &r);
        if (verbose) fprintf(stderr, "sample %lld: %s\n", (long long)i, et_status_msg(st));
        if (st) {
            if (r.ids || r.labels || r.pixels || r.landmarks || r.id) __builtin_trap();
            et_status_free(st);
            continue;
        }
        if (r.n_tokens != nt || r.n_images != ni) __builtin_trap();
        volatile int64_t acc = 0;
        for (int64_t t = 0; t < r.n_tokens; t++) acc += (int64_t)r.ids[t] + r.labels[t];
        const size_t px = (size_t)r.n_images * (size_t)sc->image_size * sc->image_size * 3;
        for (size_t p = 0; p < px; p++) acc += r.pixels[p];
        if (r.has_landmarks)
            for (int d = 0; d < sc->landmark_dim; d++) acc += (int64_t)(r.landmarks[d] != 0);
        acc += (int64_t)strlen(r.id) + (int64_t)strlen(r.source) + (int64_t)strlen(r.label) +
               (int64_t)strlen(r.reference) + (int64_t)strlen(r.gender) + (int64_t)strlen(r.race);
        (void)acc;
        et_store_record_free(&r);
    }
    et_store_close(s);
    return 0;
}
