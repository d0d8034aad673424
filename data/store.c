// data/store.c - see store.h
//
// The writer keeps one `col` per dataset: rows are buffered (up to COL_BUF_BYTES) and
// appended with H5Dset_extent + a hyperslab write. The reader loads the per-sample
// columns and offsets once, validates them, and reads one sample's slices per get.
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../core/dtype.h"

#define NSTR 6         // string fields per sample
#define CACHE_SLOTS 8  // decoded chunks kept per small column
static const char *const k_str_fields = "id,source,label,reference,gender,race";
#define COL_BUF_BYTES ((size_t)4 << 20)
#define MAX_IMAGE_SIZE 8192
#define MAX_LANDMARK_DIM 65536
#define MAX_PRIOR_DIM (1 << 22)
#define MAX_ATTR_STRING ((size_t)1 << 20)
// Per-sample sanity limits when reading (a consistent but absurd file fails cleanly).
#define MAX_SAMPLE_TOKENS ((int64_t)1 << 26)
#define MAX_SAMPLE_IMAGES ((int64_t)1 << 16)
#define MAX_SAMPLE_STRING_BYTES ((int64_t)1 << 28)

// ---- HDF5 access: one lock, errors from HDF5's stack ---------------------------------------

static pthread_mutex_t g_h5_lock = PTHREAD_MUTEX_INITIALIZER;

static void h5_lock(void) {
    pthread_mutex_lock(&g_h5_lock);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);  // per thread in thread-safe builds: set every time
}
static void h5_unlock(void) { pthread_mutex_unlock(&g_h5_lock); }

typedef struct {
    char msg[256];
} h5_reason_buf;

static herr_t h5_walk(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    h5_reason_buf *b = data;
    if (e->desc && e->desc[0]) snprintf(b->msg, sizeof(b->msg), "%s", e->desc);  // innermost
    return 0;
}

// The innermost message on HDF5's error stack (then cleared).
static const char *h5_reason(h5_reason_buf *b) {
    b->msg[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, h5_walk, b);
    H5Eclear2(H5E_DEFAULT);
    if (!b->msg[0]) snprintf(b->msg, sizeof(b->msg), "HDF5 call failed");
    return b->msg;
}

static et_status h5_err(et_code code, const char *path, const char *what) {
    h5_reason_buf b;
    return et_err(code, "%s: %s (%s)", path, what, h5_reason(&b));
}

// ---- columns (writer) ----------------------------------------------------------------------

typedef struct {
    const char *name;
    hid_t ds;
    hid_t mtype;  // native memory type (not owned)
    size_t elem;  // bytes per element
    int rank;
    hsize_t tail[3];   // extents after axis 0
    size_t row_bytes;  // elem * prod(tail)
    uint8_t *buf;
    size_t nbuf, cap;  // rows buffered / capacity
    hsize_t rows;      // rows written to the file
} col;

enum {
    C_KIND,
    C_IMG_OFF,
    C_PIXELS,
    C_TOK_OFF,
    C_IDS,
    C_LABELS,
    C_HAS_LM,
    C_LM,
    C_PRIORS,
    C_AGE,
    C_LABEL_ID,
    C_STR_OFF,
    C_STRINGS,
    NCOLS
};

struct et_store_writer {
    char *path, *tmp;
    hid_t file;
    col cols[NCOLS];
    int image_size, landmark_dim, prior_dim, level;
    int64_t n, tokens, images, str_bytes;
    et_status failed;  // first error; the writer is poisoned
};

static et_status col_create(et_store_writer *w, col *c, const char *name, hid_t ftype, hid_t mtype,
                            size_t elem, int rank, const hsize_t *tail, hsize_t chunk0) {
    memset(c, 0, sizeof(*c));
    c->name = name;
    c->mtype = mtype;
    c->elem = elem;
    c->rank = rank;
    c->row_bytes = elem;
    hsize_t dims[4] = {0}, maxdims[4] = {H5S_UNLIMITED}, chunk[4] = {chunk0};
    for (int d = 1; d < rank; d++) {
        c->tail[d - 1] = tail[d - 1];
        dims[d] = maxdims[d] = chunk[d] = tail[d - 1];
        c->row_bytes *= (size_t)tail[d - 1];
    }
    c->cap = COL_BUF_BYTES / c->row_bytes;
    if (c->cap < 1) c->cap = 1;
    c->buf = malloc(c->cap * c->row_bytes);
    if (!c->buf) return et_err(ET_ERR_NOMEM, "%s: out of memory", w->path);
    hid_t space = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    bool ok = space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0;
    if (ok && w->level > 0)
        ok = H5Pset_shuffle(dcpl) >= 0 && H5Pset_deflate(dcpl, (unsigned)w->level) >= 0;
    if (ok) {
        c->ds = H5Dcreate2(w->file, name, ftype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
        ok = c->ds >= 0;
    }
    if (dcpl >= 0) H5Pclose(dcpl);
    if (space >= 0) H5Sclose(space);
    if (!ok) {
        c->ds = 0;
        h5_reason_buf b;
        return et_err(ET_ERR_IO, "%s: cannot create dataset '%s' (%s)", w->tmp, name,
                      h5_reason(&b));
    }
    return NULL;
}

// Append n rows from data straight to the file.
static et_status col_write(et_store_writer *w, col *c, const void *data, size_t n) {
    if (n == 0) return NULL;
    hsize_t dims[4] = {c->rows + n}, start[4] = {c->rows}, count[4] = {n};
    for (int d = 1; d < c->rank; d++) {
        dims[d] = count[d] = c->tail[d - 1];
        start[d] = 0;
    }
    bool ok = H5Dset_extent(c->ds, dims) >= 0;
    hid_t fs = ok ? H5Dget_space(c->ds) : -1;
    hid_t ms = ok ? H5Screate_simple(c->rank, count, NULL) : -1;
    ok = ok && fs >= 0 && ms >= 0 &&
         H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
         H5Dwrite(c->ds, c->mtype, ms, fs, H5P_DEFAULT, data) >= 0;
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (!ok) {
        h5_reason_buf b;
        return et_err(ET_ERR_IO, "%s: cannot write dataset '%s' (%s)", w->tmp, c->name,
                      h5_reason(&b));
    }
    c->rows += n;
    return NULL;
}

static et_status col_flush(et_store_writer *w, col *c) {
    et_status s = col_write(w, c, c->buf, c->nbuf);
    if (!s) c->nbuf = 0;
    return s;
}

static et_status col_push(et_store_writer *w, col *c, const void *data, size_t n) {
    if (c->nbuf + n > c->cap) ET_TRY(col_flush(w, c));
    if (n > c->cap) return col_write(w, c, data, n);
    if (n) memcpy(c->buf + c->nbuf * c->row_bytes, data, n * c->row_bytes);
    c->nbuf += n;
    return NULL;
}

static void writer_free(et_store_writer *w, bool remove_tmp) {
    for (int i = 0; i < NCOLS; i++) {
        if (w->cols[i].ds > 0) H5Dclose(w->cols[i].ds);
        free(w->cols[i].buf);
    }
    if (w->file > 0) H5Fclose(w->file);
    if (remove_tmp && w->tmp) unlink(w->tmp);
    et_status_free(w->failed);
    free(w->path);
    free(w->tmp);
    free(w);
}

static et_status write_attr_i64(hid_t loc, const char *name, hid_t ftype, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp >= 0 ? H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    bool ok = a >= 0 && H5Awrite(a, H5T_NATIVE_INT64, &v) >= 0;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return ok ? NULL : et_err(ET_ERR_IO, "attribute '%s'", name);
}

static et_status write_attr_str(hid_t loc, const char *name, const char *v) {
    if (!v) v = "";
    size_t len = strlen(v);
    hid_t t = H5Tcopy(H5T_C_S1);
    bool ok = t >= 0 && H5Tset_size(t, len + 1) >= 0 && H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0 &&
              H5Tset_cset(t, H5T_CSET_UTF8) >= 0;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = ok && sp >= 0 ? H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = a >= 0 && H5Awrite(a, t, v) >= 0;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return ok ? NULL : et_err(ET_ERR_IO, "attribute '%s'", name);
}

static et_status create_locked(const char *path, const et_store_schema *sc, et_store_writer *w) {
    size_t plen = strlen(path);
    w->path = strdup(path);
    w->tmp = malloc(plen + 5);
    if (!w->path || !w->tmp) return et_err(ET_ERR_NOMEM, "%s: out of memory", path);
    memcpy(w->tmp, path, plen);
    memcpy(w->tmp + plen, ".tmp", 5);
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        w->file = 0;
        return h5_err(ET_ERR_IO, w->tmp, "cannot create the HDF5 file");
    }
    et_status s = NULL;
    const struct {
        const char *name;
        int64_t v;
        hid_t t;
    } ints[] = {{"schema_version", ET_STORE_SCHEMA_VERSION, H5T_STD_I32LE},
                {"image_size", sc->image_size, H5T_STD_I32LE},
                {"landmark_dim", sc->landmark_dim, H5T_STD_I32LE},
                {"prior_dim", sc->prior_dim, H5T_STD_I32LE},
                {"compression", w->level, H5T_STD_I32LE}};
    for (size_t i = 0; !s && i < sizeof(ints) / sizeof(ints[0]); i++)
        s = write_attr_i64(w->file, ints[i].name, ints[i].t, ints[i].v);
    if (!s) s = write_attr_str(w->file, "string_fields", k_str_fields);
    if (!s) s = write_attr_str(w->file, "template", sc->template_name);
    if (!s) s = write_attr_str(w->file, "tokenizer", sc->tokenizer_name);
    if (!s)
        s = write_attr_str(w->file, "supervise",
                           sc->supervise && sc->supervise[0] ? sc->supervise : "answers");
    if (!s) s = write_attr_str(w->file, "creator", sc->creator);
    if (!s) s = write_attr_str(w->file, "prior_layout", sc->prior_dim ? sc->prior_layout : "");
    if (s) {
        et_status r = h5_err(ET_ERR_IO, w->tmp, et_status_msg(s));
        et_status_free(s);
        return r;
    }
    hsize_t S = (hsize_t)sc->image_size, D = (hsize_t)sc->landmark_dim;
    hsize_t pix_tail[3] = {S, S, 3}, lm_tail[1] = {D};
    hsize_t lm_chunk = D ? 16384 / D : 1;
    if (lm_chunk < 1) lm_chunk = 1;
    col *c = w->cols;
    ET_TRY(col_create(w, &c[C_KIND], "kind", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, 1, NULL, 4096));
    ET_TRY(col_create(w, &c[C_IMG_OFF], "img_offset", H5T_STD_I64LE, H5T_NATIVE_INT64, 8, 1, NULL,
                      4096));
    ET_TRY(
        col_create(w, &c[C_PIXELS], "pixels", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, 4, pix_tail, 1));
    ET_TRY(col_create(w, &c[C_TOK_OFF], "tok_offset", H5T_STD_I64LE, H5T_NATIVE_INT64, 8, 1, NULL,
                      4096));
    ET_TRY(col_create(w, &c[C_IDS], "ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 1, NULL, 16384));
    ET_TRY(
        col_create(w, &c[C_LABELS], "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 1, NULL, 16384));
    ET_TRY(col_create(w, &c[C_HAS_LM], "has_landmarks", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, 1, NULL,
                      4096));
    if (D > 0)
        ET_TRY(col_create(w, &c[C_LM], "landmarks", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, 2, lm_tail,
                          lm_chunk));
    if (sc->prior_dim > 0) {  // bf16 bits; chunks of about 64 KiB
        hsize_t pr_tail[1] = {(hsize_t)sc->prior_dim}, pr_chunk = 32768 / (hsize_t)sc->prior_dim;
        ET_TRY(col_create(w, &c[C_PRIORS], "priors", H5T_STD_U16LE, H5T_NATIVE_UINT16, 2, 2,
                          pr_tail, pr_chunk ? pr_chunk : 1));
    }
    ET_TRY(col_create(w, &c[C_AGE], "age", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 1, NULL, 4096));
    ET_TRY(col_create(w, &c[C_LABEL_ID], "label_id", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 1, NULL,
                      4096));
    ET_TRY(col_create(w, &c[C_STR_OFF], "str_offset", H5T_STD_I64LE, H5T_NATIVE_INT64, 8, 1, NULL,
                      4096));
    ET_TRY(
        col_create(w, &c[C_STRINGS], "strings", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, 1, NULL, 65536));
    int64_t zero = 0;
    ET_TRY(col_push(w, &c[C_IMG_OFF], &zero, 1));
    ET_TRY(col_push(w, &c[C_TOK_OFF], &zero, 1));
    ET_TRY(col_push(w, &c[C_STR_OFF], &zero, 1));
    return NULL;
}

et_status et_store_create(const char *path, const et_store_schema *schema, et_store_writer **out) {
    *out = NULL;
    if (!schema || schema->image_size < 1 || schema->image_size > MAX_IMAGE_SIZE)
        return et_err(ET_ERR_INVALID, "%s: image_size must be in 1..%d, got %d", path,
                      MAX_IMAGE_SIZE, schema ? schema->image_size : 0);
    if (schema->landmark_dim < 0 || schema->landmark_dim > MAX_LANDMARK_DIM)
        return et_err(ET_ERR_INVALID, "%s: landmark_dim must be in 0..%d, got %d", path,
                      MAX_LANDMARK_DIM, schema->landmark_dim);
    if (schema->prior_dim < 0 || schema->prior_dim > MAX_PRIOR_DIM ||
        (schema->prior_dim > 0 && (!schema->prior_layout || !schema->prior_layout[0])))
        return et_err(ET_ERR_INVALID, "%s: prior_dim must be in 0..%d with a prior_layout, got %d",
                      path, MAX_PRIOR_DIM, schema->prior_dim);
    if (schema->compression > 9)
        return et_err(ET_ERR_INVALID, "%s: compression must be 0..9, got %d", path,
                      schema->compression);
    et_store_writer *w = calloc(1, sizeof(*w));
    if (!w) return et_err(ET_ERR_NOMEM, "%s: out of memory", path);
    w->image_size = schema->image_size;
    w->landmark_dim = schema->landmark_dim;
    w->prior_dim = schema->prior_dim;
    w->level = schema->compression < 0 ? 4 : schema->compression;
    h5_lock();
    et_status s = create_locked(path, schema, w);
    if (s) writer_free(w, true);
    h5_unlock();
    if (!s) *out = w;
    return s;
}

static et_status check_record(const et_store_writer *w, const et_store_record *r) {
    if (r->n_tokens < 0 || (r->n_tokens > 0 && (!r->ids || !r->labels)))
        return et_err(ET_ERR_INVALID, "%s: record %lld: %lld tokens without ids/labels", w->path,
                      (long long)w->n, (long long)r->n_tokens);
    if (r->n_images < 0 || (r->n_images > 0 && !r->pixels) || (!r->is_video && r->n_images > 1) ||
        (r->is_video && r->n_images < 1) || r->n_images > MAX_SAMPLE_IMAGES)
        return et_err(ET_ERR_INVALID, "%s: record %lld: %lld images%s%s", w->path, (long long)w->n,
                      (long long)r->n_images, r->is_video ? " in a video" : "",
                      r->n_images > 0 && !r->pixels ? " without pixels" : "");
    if (r->has_landmarks && (w->landmark_dim == 0 || !r->landmarks))
        return et_err(ET_ERR_INVALID,
                      "%s: record %lld has landmarks but the store has landmark_dim %d%s", w->path,
                      (long long)w->n, w->landmark_dim, r->landmarks ? "" : " (NULL)");
    return NULL;
}

static et_status append_locked(et_store_writer *w, const et_store_record *r) {
    col *c = w->cols;
    uint8_t kind = r->is_video ? ET_STORE_KIND_VIDEO
                               : (r->n_images ? ET_STORE_KIND_IMAGE : ET_STORE_KIND_TEXT);
    ET_TRY(col_push(w, &c[C_KIND], &kind, 1));
    ET_TRY(col_push(w, &c[C_PIXELS], r->pixels, (size_t)r->n_images));
    int64_t off = w->images + r->n_images;
    ET_TRY(col_push(w, &c[C_IMG_OFF], &off, 1));
    ET_TRY(col_push(w, &c[C_IDS], r->ids, (size_t)r->n_tokens));
    ET_TRY(col_push(w, &c[C_LABELS], r->labels, (size_t)r->n_tokens));
    off = w->tokens + r->n_tokens;
    ET_TRY(col_push(w, &c[C_TOK_OFF], &off, 1));
    uint8_t has = r->has_landmarks ? 1 : 0;
    ET_TRY(col_push(w, &c[C_HAS_LM], &has, 1));
    if (w->landmark_dim > 0) {
        if (has) {
            ET_TRY(col_push(w, &c[C_LM], r->landmarks, 1));
        } else {
            if (c[C_LM].nbuf + 1 > c[C_LM].cap) ET_TRY(col_flush(w, &c[C_LM]));
            memset(c[C_LM].buf + c[C_LM].nbuf * c[C_LM].row_bytes, 0, c[C_LM].row_bytes);
            c[C_LM].nbuf++;
        }
    }
    if (w->prior_dim > 0) {
        if (r->priors) {
            ET_TRY(col_push(w, &c[C_PRIORS], r->priors, 1));
        } else {
            if (c[C_PRIORS].nbuf + 1 > c[C_PRIORS].cap) ET_TRY(col_flush(w, &c[C_PRIORS]));
            memset(c[C_PRIORS].buf + c[C_PRIORS].nbuf * c[C_PRIORS].row_bytes, 0,
                   c[C_PRIORS].row_bytes);
            c[C_PRIORS].nbuf++;
        }
    }
    ET_TRY(col_push(w, &c[C_AGE], &r->age, 1));
    ET_TRY(col_push(w, &c[C_LABEL_ID], &r->label_id, 1));
    const char *strs[NSTR] = {r->id, r->source, r->label, r->reference, r->gender, r->race};
    int64_t sb = w->str_bytes;
    for (int f = 0; f < NSTR; f++) {
        size_t len = strs[f] ? strlen(strs[f]) : 0;
        ET_TRY(col_push(w, &c[C_STRINGS], strs[f], len));
        sb += (int64_t)len;
        ET_TRY(col_push(w, &c[C_STR_OFF], &sb, 1));
    }
    w->str_bytes = sb;
    w->images += r->n_images;
    w->tokens += r->n_tokens;
    w->n++;
    return NULL;
}

et_status et_store_append(et_store_writer *w, const et_store_record *rec) {
    if (w->failed)
        return et_err(et_status_code(w->failed), "%s: writer failed earlier: %s", w->path,
                      et_status_msg(w->failed));
    et_status s = check_record(w, rec);
    if (!s) {
        h5_lock();
        s = append_locked(w, rec);
        h5_unlock();
    }
    if (s) w->failed = et_err(et_status_code(s), "%s", et_status_msg(s));
    return s;
}

void et_store_writer_abort(et_store_writer *w) {
    if (!w) return;
    h5_lock();
    writer_free(w, true);
    h5_unlock();
}

static et_status fsync_path(const char *path, bool dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return et_err(ET_ERR_IO, "%s: cannot open to fsync: %s", path, strerror(errno));
    int r = fsync(fd);
    int e = errno;
    close(fd);
    // Some file systems cannot fsync a directory (EINVAL); the file itself is what counts.
    if (r != 0 && !(dir && (e == EINVAL || e == EBADF)))
        return et_err(ET_ERR_IO, "%s: fsync failed: %s", path, strerror(e));
    return NULL;
}

et_status et_store_writer_close(et_store_writer *w) {
    if (w->failed) {
        et_status s = w->failed;
        w->failed = NULL;
        et_store_writer_abort(w);
        return s;
    }
    h5_lock();
    et_status s = NULL;
    for (int i = 0; !s && i < NCOLS; i++)
        if (w->cols[i].ds > 0) s = col_flush(w, &w->cols[i]);
    if (!s) {
        s = write_attr_i64(w->file, "num_samples", H5T_STD_I64LE, w->n);
        if (s) {
            et_status r = h5_err(ET_ERR_IO, w->tmp, et_status_msg(s));
            et_status_free(s);
            s = r;
        }
    }
    for (int i = 0; i < NCOLS; i++) {
        if (w->cols[i].ds > 0 && H5Dclose(w->cols[i].ds) < 0 && !s)
            s = h5_err(ET_ERR_IO, w->tmp, "closing a dataset");
        w->cols[i].ds = 0;
    }
    if (w->file > 0 && H5Fclose(w->file) < 0 && !s) s = h5_err(ET_ERR_IO, w->tmp, "closing");
    w->file = 0;
    if (!s) s = fsync_path(w->tmp, false);
    if (!s && rename(w->tmp, w->path) != 0)
        s = et_err(ET_ERR_IO, "%s: cannot rename %s to it: %s", w->path, w->tmp, strerror(errno));
    if (!s) {
        char *d = strdup(w->path);
        if (d) {
            s = fsync_path(dirname(d), true);
            free(d);
        }
    }
    writer_free(w, s != NULL);
    h5_unlock();
    return s;
}

// ---- reading -------------------------------------------------------------------------------

// How a data dataset is read: raw chunks (fetched under the lock, inflated outside it) when
// its layout is one this file can decode, else H5Dread under the lock.
typedef struct {
    hid_t d;
    const char *name;
    hid_t mtype;  // native memory type
    int rank;
    hsize_t tail[3];   // extents after axis 0
    size_t elem;       // bytes per element
    size_t row_bytes;  // elem * prod(tail)
    bool raw;          // chunked, whole rows per chunk, filters none | [shuffle] deflate
    bool shuffle, deflate;
    hsize_t chunk_rows;  // rows per chunk (raw only)
    // Decoded chunks of the small columns (ids, labels, strings, landmarks: many samples
    // per chunk), least recently used replaced; guarded by mu, not by the HDF5 lock.
    bool cached;
    pthread_mutex_t mu;
    uint64_t tick;
    struct {
        hsize_t row0;
        uint8_t *data;  // chunk bytes, or NULL
        uint64_t used;
    } slot[CACHE_SLOTS];
} dsinfo;

struct et_store {
    char *path;
    hid_t file, pixels, ids, labels, landmarks, priors, strings;
    dsinfo di_pixels, di_ids, di_labels, di_landmarks, di_priors, di_strings;
    et_store_schema schema;
    char *template_name, *tokenizer_name, *creator, *supervise, *prior_layout;
    int64_t n;
    uint8_t *kind, *has_lm;      // [n]
    int32_t *age, *label_id;     // [n]
    int64_t *img_off, *tok_off;  // [n + 1]
    int64_t *str_off;            // [n * NSTR + 1]
    int64_t vocab_size;          // > 0: ids and labels are range-checked by et_store_get
    int32_t placeholder;         // the one id allowed outside [0, vocab_size)
};

static void ds_release(dsinfo *di) {
    if (!di->cached) return;
    for (int k = 0; k < CACHE_SLOTS; k++) free(di->slot[k].data);
    pthread_mutex_destroy(&di->mu);
    di->cached = false;
}

static void store_free_locked(et_store *s) {
    ds_release(&s->di_pixels), ds_release(&s->di_ids), ds_release(&s->di_labels);
    ds_release(&s->di_landmarks), ds_release(&s->di_strings), ds_release(&s->di_priors);
    hid_t h[] = {s->pixels, s->ids, s->labels, s->landmarks, s->priors, s->strings};
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
        if (h[i] > 0) H5Dclose(h[i]);
    if (s->file > 0) H5Fclose(s->file);
    free(s->path);
    free(s->template_name);
    free(s->supervise);
    free(s->tokenizer_name);
    free(s->creator);
    free(s->prior_layout);
    free(s->kind);
    free(s->has_lm);
    free(s->age);
    free(s->label_id);
    free(s->img_off);
    free(s->tok_off);
    free(s->str_off);
    free(s);
}

void et_store_close(et_store *s) {
    if (!s) return;
    h5_lock();
    store_free_locked(s);
    h5_unlock();
}

static et_status read_attr_int(et_store *s, const char *name, bool required, int64_t *v,
                               bool *present) {
    if (present) *present = false;
    htri_t ex = H5Aexists(s->file, name);
    if (ex <= 0) {
        H5Eclear2(H5E_DEFAULT);
        if (!required) return NULL;
        return et_err(
            ET_ERR_FORMAT, "%s: attribute '%s' is missing (not an emotune store%s)", s->path, name,
            strcmp(name, "num_samples") == 0 ? ", or one whose writer never finished" : "?");
    }
    hid_t a = H5Aopen(s->file, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    bool ok = t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_INTEGER &&
              H5Sget_simple_extent_npoints(sp) == 1;
    if (ok) ok = H5Aread(a, H5T_NATIVE_INT64, v) >= 0;
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    if (!ok) {
        H5Eclear2(H5E_DEFAULT);
        return et_err(ET_ERR_FORMAT, "%s: attribute '%s' is not a single integer", s->path, name);
    }
    if (present) *present = true;
    return NULL;
}

// A string attribute (fixed-length or variable-length); missing -> "".
static et_status read_attr_str(et_store *s, const char *name, char **out) {
    *out = NULL;
    htri_t ex = H5Aexists(s->file, name);
    if (ex <= 0) {
        H5Eclear2(H5E_DEFAULT);
        *out = strdup("");
        return *out ? NULL : et_err(ET_ERR_NOMEM, "%s: out of memory", s->path);
    }
    hid_t a = H5Aopen(s->file, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
    bool ok =
        t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_STRING && H5Sget_simple_extent_npoints(sp) == 1;
    char *res = NULL;
    if (ok && H5Tis_variable_str(t) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        char *p = NULL;
        ok = mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 &&
             H5Tset_cset(mt, H5Tget_cset(t)) >= 0 && H5Aread(a, mt, &p) >= 0;
        if (ok) {
            res = strdup(p ? p : "");
            H5free_memory(p);
        }
        if (mt >= 0) H5Tclose(mt);
    } else if (ok) {
        size_t size = H5Tget_size(t);
        ok = size > 0 && size <= MAX_ATTR_STRING;
        hid_t mt = ok ? H5Tcopy(H5T_C_S1) : -1;
        res = ok ? calloc(size + 1, 1) : NULL;
        ok = ok && res && mt >= 0 && H5Tset_size(mt, size) >= 0 &&
             H5Tset_cset(mt, H5Tget_cset(t)) >= 0 && H5Aread(a, mt, res) >= 0;
        if (mt >= 0) H5Tclose(mt);
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    if (!ok || !res) {
        free(res);
        H5Eclear2(H5E_DEFAULT);
        return et_err(ET_ERR_FORMAT, "%s: attribute '%s' is not a string", s->path, name);
    }
    *out = res;
    return NULL;
}

// Open dataset `name` and check its element class/size and rank; dims gets its extents.
static et_status open_ds(et_store *s, const char *name, H5T_class_t cls, size_t size, int rank,
                         hsize_t *dims, hid_t *out) {
    *out = 0;
    htri_t ex = H5Lexists(s->file, name, H5P_DEFAULT);
    if (ex <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return et_err(ET_ERR_FORMAT, "%s: dataset '%s' is missing", s->path, name);
    }
    hid_t d = H5Dopen2(s->file, name, H5P_DEFAULT);
    if (d < 0) return h5_err(ET_ERR_FORMAT, s->path, "cannot open a dataset");
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    et_status st = NULL;
    if (t < 0 || sp < 0) {
        st = h5_err(ET_ERR_FORMAT, s->path, "cannot read a dataset's type");
    } else if (H5Tget_class(t) != cls || H5Tget_size(t) != size) {
        st = et_err(ET_ERR_FORMAT, "%s: dataset '%s' has elements of the wrong type (want %s%zu)",
                    s->path, name, cls == H5T_FLOAT ? "float" : (cls == H5T_INTEGER ? "int" : "?"),
                    size * 8);
    } else if (H5Sget_simple_extent_ndims(sp) != rank) {
        st = et_err(ET_ERR_FORMAT, "%s: dataset '%s' has %d dimensions, want %d", s->path, name,
                    H5Sget_simple_extent_ndims(sp), rank);
    } else {
        H5Sget_simple_extent_dims(sp, dims, NULL);
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (st) {
        H5Dclose(d);
        H5Eclear2(H5E_DEFAULT);
        return st;
    }
    *out = d;
    return NULL;
}

// libhdf5 (1.10) trusts a stored chunk's size: a chunk that decodes (no filter, shuffle, or
// deflate) to fewer bytes than the chunk holds is copied past the end of its buffer (heap
// overflow in H5VM_memcpyvv, found by tests/fuzz/fuzz_store.c on a damaged store). So before
// H5Dread on a chunked dataset, every allocated chunk covering rows [start, start + n) is
// checked to decode to exactly the chunk's bytes: stored size when only shuffle (which keeps
// the size) or nothing applies, the inflated size (zlib, here) when deflate applies. Chunks
// under other filters are left to HDF5. -1 (with an error pushed for h5_reason) when one
// does not fit.
static herr_t check_stored_chunks(hid_t d, int rank, hsize_t start, hsize_t n) {
    hid_t pl = H5Dget_create_plist(d), t = H5Dget_type(d);
    herr_t r = 0;
    char why[160] = "";
    hsize_t chunk[4] = {0};
    if (pl < 0 || t < 0) {
        r = -1;
    } else if (H5Pget_layout(pl) == H5D_CHUNKED && H5Pget_chunk(pl, rank, chunk) == rank &&
               chunk[0] >= 1) {
        int nf = H5Pget_nfilters(pl);
        if (nf < 0 || nf > 16) nf = 16;  // unknown: no chunk is then checked
        H5Z_filter_t ids[16];
        for (int f = 0; f < nf; f++) {
            unsigned flags = 0, cd[8];
            size_t ncd = 8;
            ids[f] = H5Pget_filter2(pl, (unsigned)f, &flags, &ncd, cd, 0, NULL, NULL);
        }
        hsize_t bytes = H5Tget_size(t);
        for (int i = 0; i < rank; i++) bytes *= chunk[i];
        for (hsize_t row0 = start / chunk[0] * chunk[0]; r >= 0 && row0 < start + n;
             row0 += chunk[0]) {
            hsize_t off[4] = {row0, 0, 0, 0}, size = 0;
            haddr_t addr = HADDR_UNDEF;
            unsigned mask = 0;
            if (H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size) < 0) {
                r = -1;
                break;
            }
            if (addr == HADDR_UNDEF) continue;  // never written: HDF5 supplies the fill value
            bool deflate = false, other = false;
            for (int f = 0; f < nf && f < 32; f++) {
                if (mask & (1u << f)) continue;  // skipped for this chunk
                if (ids[f] == H5Z_FILTER_DEFLATE)
                    deflate = true;
                else if (ids[f] != H5Z_FILTER_SHUFFLE)
                    other = true;
            }
            if (other || nf >= 16) continue;
            hsize_t got = size;
            if (deflate) {
                uint8_t *raw =
                    size <= bytes + (bytes >> 3) + 4096 ? malloc((size_t)size + 1) : NULL;
                uint8_t *dec = raw ? malloc((size_t)bytes + 1) : NULL;
                uLongf len = (uLongf)bytes + 1;  // one spare byte shows a chunk too long
                unsigned m2 = 0;
                got = 0;
                if (dec && H5Dread_chunk(d, H5P_DEFAULT, off, &m2, raw) >= 0 &&
                    uncompress(dec, &len, raw, (uLong)size) == Z_OK)
                    got = len;
                free(raw), free(dec);
            }
            if (got != bytes) {
                snprintf(why, sizeof why, "chunk at row %llu decodes to %llu bytes, not %llu",
                         (unsigned long long)row0, (unsigned long long)got,
                         (unsigned long long)bytes);
                r = -1;
            }
        }
    }
    if (t >= 0) H5Tclose(t);
    if (pl >= 0) H5Pclose(pl);
    if (why[0])  // after the closes: every HDF5 call clears the error stack
        H5Epush2(H5E_DEFAULT, __FILE__, __func__, __LINE__, H5E_ERR_CLS, H5E_DATASET, H5E_BADVALUE,
                 "%s", why);
    return r;
}

// Read rows [start, start + n) of a dataset (trailing dims whole) into buf.
static herr_t read_rows(hid_t d, hid_t mtype, int rank, const hsize_t *tail, hsize_t start,
                        hsize_t n, void *buf) {
    if (n == 0) return 0;
    if (check_stored_chunks(d, rank, start, n) < 0) return -1;
    hsize_t st[4] = {start}, cnt[4] = {n};
    for (int i = 1; i < rank; i++) {
        st[i] = 0;
        cnt[i] = tail[i - 1];
    }
    hid_t fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(rank, cnt, NULL);
    herr_t r = -1;
    if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, st, NULL, cnt, NULL) >= 0)
        r = H5Dread(d, mtype, ms, fs, H5P_DEFAULT, buf);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return r;
}

// A whole 1-D dataset of exactly n elements into a new array.
static et_status load_column(et_store *s, const char *name, H5T_class_t cls, size_t size,
                             hid_t mtype, int64_t n, void **out) {
    *out = NULL;
    hid_t d;
    hsize_t dims[1];
    ET_TRY(open_ds(s, name, cls, size, 1, dims, &d));
    et_status st = NULL;
    if ((int64_t)dims[0] != n) {
        st = et_err(ET_ERR_FORMAT, "%s: dataset '%s' has %llu entries, want %lld", s->path, name,
                    (unsigned long long)dims[0], (long long)n);
    } else {
        *out = malloc((size_t)(n > 0 ? n : 1) * size);
        if (!*out)
            st = et_err(ET_ERR_NOMEM, "%s: out of memory for dataset '%s' (%lld entries)", s->path,
                        name, (long long)n);
        else if (read_rows(d, mtype, 1, NULL, 0, (hsize_t)n, *out) < 0) {
            h5_reason_buf b;
            st = et_err(ET_ERR_FORMAT, "%s: cannot read dataset '%s' (%s)", s->path, name,
                        h5_reason(&b));
        }
    }
    H5Dclose(d);
    if (st) {
        free(*out);
        *out = NULL;
    }
    return st;
}

static et_status check_offsets(const et_store *s, const char *name, const int64_t *off, int64_t n,
                               int64_t data_len, const char *data_name) {
    if (off[0] != 0)
        return et_err(ET_ERR_FORMAT, "%s: dataset '%s' starts at %lld, not 0", s->path, name,
                      (long long)off[0]);
    for (int64_t i = 0; i < n; i++)
        if (off[i + 1] < off[i])
            return et_err(ET_ERR_FORMAT,
                          "%s: dataset '%s' decreases at entry %lld (%lld after %lld)", s->path,
                          name, (long long)(i + 1), (long long)off[i + 1], (long long)off[i]);
    if (off[n] != data_len)
        return et_err(ET_ERR_FORMAT,
                      "%s: dataset '%s' ends at %lld but dataset '%s' has %lld entries", s->path,
                      name, (long long)off[n], data_name, (long long)data_len);
    return NULL;
}

// Fills di for dataset d (under the lock). Raw chunk reads are used when the dataset is
// chunked with whole rows per chunk (chunk = [c, tail...]), its file type equals the native
// memory type (so chunk bytes are the values), and its filter pipeline is empty, deflate, or
// shuffle then deflate; anything else reads through H5Dread.
static void ds_describe(dsinfo *di, hid_t d, const char *name, hid_t mtype, size_t elem, int rank,
                        const hsize_t *tail) {
    memset(di, 0, sizeof(*di));
    di->d = d, di->name = name, di->mtype = mtype, di->elem = elem, di->rank = rank;
    di->row_bytes = elem;
    for (int i = 1; i < rank; i++) {
        di->tail[i - 1] = tail[i - 1];
        di->row_bytes *= (size_t)tail[i - 1];
    }
    hid_t pl = H5Dget_create_plist(d), t = H5Dget_type(d);
    bool ok = pl >= 0 && t >= 0 && H5Pget_layout(pl) == H5D_CHUNKED && H5Tequal(t, mtype) > 0;
    hsize_t chunk[4] = {0};
    if (ok) ok = H5Pget_chunk(pl, rank, chunk) == rank && chunk[0] >= 1;
    for (int i = 1; ok && i < rank; i++) ok = chunk[i] == tail[i - 1];
    int nf = ok ? H5Pget_nfilters(pl) : -1;
    if (nf < 0 || nf > 2) ok = false;
    for (int f = 0; ok && f < nf; f++) {
        unsigned flags = 0, cd[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(pl, (unsigned)f, &flags, &ncd, cd, 0, NULL, NULL);
        if (id == H5Z_FILTER_SHUFFLE && f == 0 && nf == 2)
            di->shuffle = true;
        else if (id == H5Z_FILTER_DEFLATE && f == nf - 1)
            di->deflate = true;
        else
            ok = false;
    }
    // a chunk must fit comfortably in memory
    if (ok && chunk[0] > ((hsize_t)1 << 30) / di->row_bytes) ok = false;
    di->raw = ok;
    di->chunk_rows = ok ? chunk[0] : 0;
    di->cached = ok && chunk[0] > 1 && chunk[0] * di->row_bytes <= ((size_t)1 << 20);
    if (di->cached) pthread_mutex_init(&di->mu, NULL);
    if (t >= 0) H5Tclose(t);
    if (pl >= 0) H5Pclose(pl);
    H5Eclear2(H5E_DEFAULT);
}

static et_status open_locked(et_store *s) {
    htri_t is = H5Fis_hdf5(s->path);
    if (is <= 0) {
        h5_reason_buf b;
        h5_reason(&b);
        return et_err(ET_ERR_FORMAT, "%s: not an HDF5 file (no HDF5 signature)", s->path);
    }
    s->file = H5Fopen(s->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (s->file < 0) {
        s->file = 0;
        return h5_err(ET_ERR_FORMAT, s->path, "cannot open the HDF5 file, truncated or corrupt");
    }
    int64_t version = 0, size = 0, dim = 0, n = 0, level = -1;
    ET_TRY(read_attr_int(s, "schema_version", true, &version, NULL));
    if (version == 1)
        return et_err(ET_ERR_UNSUPPORTED,
                      "%s: store schema_version 1, written before stores held face priors; this "
                      "build reads version %d: prepare the data again (emotune prepare)",
                      s->path, ET_STORE_SCHEMA_VERSION);
    if (version != ET_STORE_SCHEMA_VERSION)
        return et_err(ET_ERR_UNSUPPORTED,
                      "%s: store schema_version %lld, this build reads version %d (prepare the "
                      "data again with this build)",
                      s->path, (long long)version, ET_STORE_SCHEMA_VERSION);
    int64_t pdim = 0;
    ET_TRY(read_attr_int(s, "prior_dim", false, &pdim, NULL));  // missing: none
    if (pdim < 0 || pdim > MAX_PRIOR_DIM)
        return et_err(ET_ERR_FORMAT, "%s: attribute 'prior_dim' is %lld, want 0..%d", s->path,
                      (long long)pdim, MAX_PRIOR_DIM);
    ET_TRY(read_attr_str(s, "prior_layout", &s->prior_layout));
    if (pdim > 0 && !s->prior_layout[0])
        return et_err(ET_ERR_FORMAT, "%s: attribute 'prior_layout' is empty but prior_dim is %lld",
                      s->path, (long long)pdim);
    s->schema.prior_dim = (int)pdim;
    s->schema.prior_layout = s->prior_layout;
    ET_TRY(read_attr_int(s, "image_size", true, &size, NULL));
    ET_TRY(read_attr_int(s, "landmark_dim", true, &dim, NULL));
    ET_TRY(read_attr_int(s, "num_samples", true, &n, NULL));
    bool has_level = false;
    ET_TRY(read_attr_int(s, "compression", false, &level, &has_level));
    if (size < 1 || size > MAX_IMAGE_SIZE)
        return et_err(ET_ERR_FORMAT, "%s: attribute 'image_size' is %lld, want 1..%d", s->path,
                      (long long)size, MAX_IMAGE_SIZE);
    if (dim < 0 || dim > MAX_LANDMARK_DIM)
        return et_err(ET_ERR_FORMAT, "%s: attribute 'landmark_dim' is %lld, want 0..%d", s->path,
                      (long long)dim, MAX_LANDMARK_DIM);
    if (n < 0 || n > ((int64_t)1 << 40) / NSTR)
        return et_err(ET_ERR_FORMAT, "%s: attribute 'num_samples' is %lld", s->path, (long long)n);
    char *fields = NULL;
    ET_TRY(read_attr_str(s, "string_fields", &fields));
    bool fields_ok = strcmp(fields, k_str_fields) == 0;
    et_status st =
        fields_ok ? NULL
                  : et_err(ET_ERR_FORMAT, "%s: attribute 'string_fields' is \"%s\", want \"%s\"",
                           s->path, fields, k_str_fields);
    free(fields);
    if (st) return st;
    ET_TRY(read_attr_str(s, "template", &s->template_name));
    ET_TRY(read_attr_str(s, "tokenizer", &s->tokenizer_name));
    ET_TRY(read_attr_str(s, "creator", &s->creator));
    ET_TRY(read_attr_str(s, "supervise", &s->supervise));
    if (!s->supervise[0]) {  // written before the attribute existed
        free(s->supervise);
        s->supervise = strdup("answers");
        if (!s->supervise) return et_err(ET_ERR_NOMEM, "%s: out of memory", s->path);
    }
    s->n = n;
    s->schema.image_size = (int)size;
    s->schema.landmark_dim = (int)dim;
    s->schema.compression = has_level ? (int)level : -1;
    s->schema.template_name = s->template_name;
    s->schema.tokenizer_name = s->tokenizer_name;
    s->schema.creator = s->creator;
    s->schema.supervise = s->supervise;

    ET_TRY(load_column(s, "kind", H5T_INTEGER, 1, H5T_NATIVE_UINT8, n, (void **)&s->kind));
    ET_TRY(
        load_column(s, "has_landmarks", H5T_INTEGER, 1, H5T_NATIVE_UINT8, n, (void **)&s->has_lm));
    ET_TRY(load_column(s, "age", H5T_INTEGER, 4, H5T_NATIVE_INT32, n, (void **)&s->age));
    ET_TRY(load_column(s, "label_id", H5T_INTEGER, 4, H5T_NATIVE_INT32, n, (void **)&s->label_id));
    ET_TRY(load_column(s, "img_offset", H5T_INTEGER, 8, H5T_NATIVE_INT64, n + 1,
                       (void **)&s->img_off));
    ET_TRY(load_column(s, "tok_offset", H5T_INTEGER, 8, H5T_NATIVE_INT64, n + 1,
                       (void **)&s->tok_off));
    ET_TRY(load_column(s, "str_offset", H5T_INTEGER, 8, H5T_NATIVE_INT64, n * NSTR + 1,
                       (void **)&s->str_off));

    hsize_t dims[4];
    ET_TRY(open_ds(s, "pixels", H5T_INTEGER, 1, 4, dims, &s->pixels));
    hsize_t pix_tail[3] = {(hsize_t)size, (hsize_t)size, 3}, lm_tail[1] = {(hsize_t)dim};
    if (dims[1] != (hsize_t)size || dims[2] != (hsize_t)size || dims[3] != 3)
        return et_err(ET_ERR_FORMAT,
                      "%s: dataset 'pixels' is [%llu, %llu, %llu, %llu], want [M, %lld, %lld, 3]",
                      s->path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                      (unsigned long long)dims[2], (unsigned long long)dims[3], (long long)size,
                      (long long)size);
    ET_TRY(check_offsets(s, "img_offset", s->img_off, n, (int64_t)dims[0], "pixels"));
    ET_TRY(open_ds(s, "ids", H5T_INTEGER, 4, 1, dims, &s->ids));
    ET_TRY(check_offsets(s, "tok_offset", s->tok_off, n, (int64_t)dims[0], "ids"));
    ET_TRY(open_ds(s, "labels", H5T_INTEGER, 4, 1, dims, &s->labels));
    if ((int64_t)dims[0] != s->tok_off[n])
        return et_err(ET_ERR_FORMAT, "%s: dataset 'labels' has %llu entries but 'ids' has %lld",
                      s->path, (unsigned long long)dims[0], (long long)s->tok_off[n]);
    ET_TRY(open_ds(s, "strings", H5T_INTEGER, 1, 1, dims, &s->strings));
    ET_TRY(check_offsets(s, "str_offset", s->str_off, n * NSTR, (int64_t)dims[0], "strings"));
    if (dim > 0) {
        ET_TRY(open_ds(s, "landmarks", H5T_FLOAT, 4, 2, dims, &s->landmarks));
        if ((int64_t)dims[0] != n || (int64_t)dims[1] != dim)
            return et_err(ET_ERR_FORMAT,
                          "%s: dataset 'landmarks' is [%llu, %llu], want [%lld, %lld]", s->path,
                          (unsigned long long)dims[0], (unsigned long long)dims[1], (long long)n,
                          (long long)dim);
    }
    if (pdim > 0) {
        ET_TRY(open_ds(s, "priors", H5T_INTEGER, 2, 2, dims, &s->priors));
        if ((int64_t)dims[0] != n || (int64_t)dims[1] != pdim)
            return et_err(ET_ERR_FORMAT, "%s: dataset 'priors' is [%llu, %llu], want [%lld, %lld]",
                          s->path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                          (long long)n, (long long)pdim);
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t ni = s->img_off[i + 1] - s->img_off[i];
        int k = s->kind[i];
        bool ok = (k == ET_STORE_KIND_TEXT && ni == 0) || (k == ET_STORE_KIND_IMAGE && ni == 1) ||
                  (k == ET_STORE_KIND_VIDEO && ni >= 1);
        if (!ok)
            return et_err(ET_ERR_FORMAT,
                          "%s: dataset 'kind': sample %lld is kind %d with %lld images", s->path,
                          (long long)i, k, (long long)ni);
        if (s->has_lm[i] > 1 || (s->has_lm[i] && dim == 0))
            return et_err(
                ET_ERR_FORMAT,
                "%s: dataset 'has_landmarks': sample %lld has value %d (landmark_dim %lld)",
                s->path, (long long)i, s->has_lm[i], (long long)dim);
    }
    ds_describe(&s->di_pixels, s->pixels, "pixels", H5T_NATIVE_UINT8, 1, 4, pix_tail);
    ds_describe(&s->di_ids, s->ids, "ids", H5T_NATIVE_INT32, 4, 1, NULL);
    ds_describe(&s->di_labels, s->labels, "labels", H5T_NATIVE_INT32, 4, 1, NULL);
    ds_describe(&s->di_strings, s->strings, "strings", H5T_NATIVE_UINT8, 1, 1, NULL);
    if (dim > 0)
        ds_describe(&s->di_landmarks, s->landmarks, "landmarks", H5T_NATIVE_FLOAT, 4, 2, lm_tail);
    if (pdim > 0) {
        hsize_t pr_tail[1] = {(hsize_t)pdim};
        ds_describe(&s->di_priors, s->priors, "priors", H5T_NATIVE_UINT16, 2, 2, pr_tail);
    }
    return NULL;
}

et_status et_store_open(const char *path, et_store **out) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        return et_err(e == ENOENT ? ET_ERR_MISSING : ET_ERR_IO, "%s: cannot open store: %s", path,
                      strerror(e));
    }
    if (!S_ISREG(sb.st_mode))
        return et_err(ET_ERR_IO, "%s: cannot open store: not a regular file", path);
    et_store *s = calloc(1, sizeof(*s));
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return et_err(ET_ERR_NOMEM, "%s: out of memory", path);
    }
    h5_lock();
    et_status st = open_locked(s);
    if (st) store_free_locked(s);
    h5_unlock();
    if (!st) *out = s;
    return st;
}

int64_t et_store_size(const et_store *s) { return s->n; }

const char *et_store_path(const et_store *s) { return s->path; }

const et_store_schema *et_store_get_schema(const et_store *s) { return &s->schema; }

void et_store_lengths(const et_store *s, int64_t i, int64_t *n_tokens, int64_t *n_images,
                      int *kind) {
    ET_ASSERT(i >= 0 && i < s->n, "et_store_lengths: index %lld outside [0, %lld)", (long long)i,
              (long long)s->n);
    if (n_tokens) *n_tokens = s->tok_off[i + 1] - s->tok_off[i];
    if (n_images) *n_images = s->img_off[i + 1] - s->img_off[i];
    if (kind) *kind = s->kind[i];
}

void et_store_record_free(et_store_record *r) {
    if (!r) return;
    char *strs[NSTR] = {r->id, r->source, r->label, r->reference, r->gender, r->race};
    for (int f = 0; f < NSTR; f++) free(strs[f]);
    free(r->ids);
    free(r->labels);
    free(r->pixels);
    free(r->landmarks);
    free(r->priors);
    memset(r, 0, sizeof(*r));
}

static et_status read_fail(const et_store *s, int64_t i, const char *name) {
    h5_reason_buf b;
    return et_err(ET_ERR_FORMAT, "%s: sample %lld: cannot read dataset '%s' (%s)", s->path,
                  (long long)i, name, h5_reason(&b));
}

// One chunk's stored bytes (under the lock).
typedef struct {
    hsize_t row0;  // first row of the chunk
    uint8_t *raw;
    size_t n_raw;
    uint32_t mask;  // filters skipped for this chunk (bit f = filter f)
} raw_chunk;

// Decodes a raw chunk into out (chunk_bytes): inflate, then unshuffle, as the pipeline and
// the chunk's filter mask say. tmp has chunk_bytes of scratch. NULL or a reason.
static const char *decode_chunk(const dsinfo *di, const raw_chunk *c, uint8_t *out, uint8_t *tmp,
                                size_t chunk_bytes) {
    const int n_filters = (di->shuffle ? 1 : 0) + (di->deflate ? 1 : 0);
    const bool do_shuffle = di->shuffle && !(c->mask & 1u);
    const bool do_deflate = di->deflate && !(c->mask & (1u << (n_filters - 1)));
    uint8_t *dst = do_shuffle ? tmp : out;
    if (do_deflate) {
        uLongf n = (uLongf)chunk_bytes;
        int z = uncompress(dst, &n, c->raw, (uLong)c->n_raw);
        if (z != Z_OK)
            return z == Z_BUF_ERROR ? "chunk inflates to more than its size"
                                    : "chunk fails to inflate (zlib: corrupt data)";
        if (n != chunk_bytes) return "chunk inflates to fewer bytes than its size";
    } else {
        if (c->n_raw != chunk_bytes) return "stored chunk has the wrong size";
        memcpy(dst, c->raw, chunk_bytes);
    }
    if (do_shuffle) {  // byte b of element e is at b * n_elem + e
        const size_t es = di->elem, ne = chunk_bytes / es;
        if (es == 1) {
            memcpy(out, tmp, chunk_bytes);
        } else {
            for (size_t b = 0; b < es; b++) {
                const uint8_t *src = tmp + b * ne;
                for (size_t e = 0; e < ne; e++) out[e * es + b] = src[e];
            }
        }
    }
    return NULL;
}

// Rows [start, start + n) of a dataset into buf. Raw layouts: the covering chunks are
// fetched under the lock (H5Dread_chunk) and decoded outside it, so decompression runs in
// parallel across threads; other layouts: H5Dread under the lock.
static et_status read_ds(const et_store *s, dsinfo *di, int64_t sample, hsize_t start, hsize_t n,
                         void *buf) {
    if (n == 0) return NULL;
    if (!di->raw) {
        h5_lock();
        herr_t r = read_rows(di->d, di->mtype, di->rank, di->tail, start, n, buf);
        et_status st = r < 0 ? read_fail(s, sample, di->name) : NULL;
        h5_unlock();
        return st;
    }
    const hsize_t cr = di->chunk_rows, k0 = start / cr, k1 = (start + n - 1) / cr;
    const size_t chunk_bytes = (size_t)cr * di->row_bytes;
    uint8_t *dec = NULL, *tmp = NULL;
    et_status st = NULL;
    for (hsize_t k = k0; k <= k1 && !st; k++) {
        const hsize_t row0 = k * cr;
        const hsize_t a = start > row0 ? start : row0;
        const hsize_t b = start + n < row0 + cr ? start + n : row0 + cr;
        uint8_t *dst = (uint8_t *)buf + (size_t)(a - start) * di->row_bytes;
        const size_t off = (size_t)(a - row0) * di->row_bytes,
                     len = (size_t)(b - a) * di->row_bytes;
        if (di->cached) {
            bool hit = false;
            pthread_mutex_lock(&di->mu);
            for (int c = 0; c < CACHE_SLOTS && !hit; c++)
                if (di->slot[c].data && di->slot[c].row0 == row0) {
                    memcpy(dst, di->slot[c].data + off, len);
                    di->slot[c].used = ++di->tick;
                    hit = true;
                }
            pthread_mutex_unlock(&di->mu);
            if (hit) continue;
        }
        raw_chunk rc = {.row0 = row0};
        hsize_t o[4] = {row0, 0, 0, 0}, sz = 0, sz_index = 0;
        haddr_t addr = HADDR_UNDEF;
        unsigned mask = 0;
        h5_lock();
        // H5Dread_chunk copies the size the chunk index records, which for an unfiltered
        // dataset can differ from H5Dget_chunk_storage_size's (a damaged or hand-made file;
        // found by tests/fuzz/fuzz_store.c): the buffer must hold the larger of the two.
        if (H5Dget_chunk_storage_size(di->d, o, &sz) < 0 ||
            H5Dget_chunk_info_by_coord(di->d, o, &mask, &addr, &sz_index) < 0)
            sz = 0;
        if (sz_index > sz) sz = sz_index;
        if (sz == 0 || sz > (hsize_t)chunk_bytes + (chunk_bytes >> 3) + 4096) {
            st = sz ? et_err(ET_ERR_FORMAT,
                             "%s: sample %lld: cannot read dataset '%s' (chunk at row %llu "
                             "has %llu stored bytes for %zu)",
                             s->path, (long long)sample, di->name, (unsigned long long)row0,
                             (unsigned long long)sz, chunk_bytes)
                    : read_fail(s, sample, di->name);
        } else if (!(rc.raw = malloc((size_t)sz))) {
            st = et_err(ET_ERR_NOMEM, "%s: out of memory", s->path);
        } else {
            rc.n_raw = (size_t)sz;
            if (H5Dread_chunk(di->d, H5P_DEFAULT, o, &rc.mask, rc.raw) < 0)
                st = read_fail(s, sample, di->name);
        }
        h5_unlock();
        if (!st && !dec) dec = malloc(chunk_bytes);
        if (!st && di->shuffle && !tmp) tmp = malloc(chunk_bytes);
        if (!st && (!dec || (di->shuffle && !tmp)))
            st = et_err(ET_ERR_NOMEM, "%s: out of memory", s->path);
        const char *why = st ? NULL : decode_chunk(di, &rc, dec, tmp, chunk_bytes);
        free(rc.raw);
        if (why)
            st = et_err(ET_ERR_FORMAT, "%s: sample %lld: cannot read dataset '%s' (%s, row %llu)",
                        s->path, (long long)sample, di->name, why, (unsigned long long)row0);
        if (st) break;
        memcpy(dst, dec + off, len);
        if (di->cached) {  // hand the decoded chunk to the cache (LRU slot)
            pthread_mutex_lock(&di->mu);
            int v = 0;
            for (int c = 1; c < CACHE_SLOTS; c++)
                if (!di->slot[c].data || (di->slot[v].data && di->slot[c].used < di->slot[v].used))
                    v = c;
            uint8_t *old = di->slot[v].data;
            di->slot[v].data = dec, di->slot[v].row0 = row0, di->slot[v].used = ++di->tick;
            pthread_mutex_unlock(&di->mu);
            dec = old;  // reuse the evicted buffer (or allocate anew)
        }
    }
    free(dec), free(tmp);
    return st;
}

// With a vocabulary set (et_store_set_vocab): every id in [0, vocab) or the placeholder,
// every label in [0, vocab) or -100. Anything else would index past the embedding or the
// loss's logits.
static et_status check_tokens(const et_store *s, int64_t i, const et_store_record *r) {
    if (s->vocab_size <= 0) return NULL;
    for (int64_t t = 0; t < r->n_tokens; t++) {
        const int32_t id = r->ids[t], lb = r->labels[t];
        const bool id_ok = (id >= 0 && id < s->vocab_size) || id == s->placeholder;
        const bool lb_ok = (lb >= 0 && lb < s->vocab_size) || lb == -100;
        if (!id_ok || !lb_ok)
            return et_err(ET_ERR_FORMAT,
                          "%s: sample %lld: %s %d at token %lld is outside the vocabulary [0, "
                          "%lld)%s; the store was prepared with another tokenizer or is damaged: "
                          "prepare it again with this config",
                          s->path, (long long)i, id_ok ? "label" : "token id", id_ok ? lb : id,
                          (long long)t, (long long)s->vocab_size,
                          id_ok ? " and is not -100 (ignored)" : "");
    }
    return NULL;
}

void et_store_set_vocab(et_store *s, int64_t vocab_size, int32_t placeholder) {
    s->vocab_size = vocab_size > 0 ? vocab_size : 0;
    s->placeholder = placeholder;
}

static et_status get_sample(et_store *s, int64_t i, et_store_record *r) {
    int64_t t0 = s->tok_off[i], nt = s->tok_off[i + 1] - t0;
    int64_t p0 = s->img_off[i], np = s->img_off[i + 1] - p0;
    int64_t s0 = s->str_off[i * NSTR], ns = s->str_off[(i + 1) * NSTR] - s0;
    if (nt > MAX_SAMPLE_TOKENS || np > MAX_SAMPLE_IMAGES || ns > MAX_SAMPLE_STRING_BYTES)
        return et_err(ET_ERR_FORMAT,
                      "%s: sample %lld is too large (%lld tokens, %lld images, "
                      "%lld string bytes)",
                      s->path, (long long)i, (long long)nt, (long long)np, (long long)ns);
    r->age = s->age[i];
    r->label_id = s->label_id[i];
    r->is_video = s->kind[i] == ET_STORE_KIND_VIDEO;
    r->n_tokens = nt;
    r->n_images = np;
    r->has_landmarks = s->has_lm[i] != 0;
    size_t S = (size_t)s->schema.image_size;
    if (nt > 0) {
        r->ids = malloc((size_t)nt * 4);
        r->labels = malloc((size_t)nt * 4);
        if (!r->ids || !r->labels) return et_err(ET_ERR_NOMEM, "%s: out of memory", s->path);
        ET_TRY(read_ds(s, &s->di_ids, i, (hsize_t)t0, (hsize_t)nt, r->ids));
        ET_TRY(read_ds(s, &s->di_labels, i, (hsize_t)t0, (hsize_t)nt, r->labels));
        ET_TRY(check_tokens(s, i, r));
    }
    if (np > 0) {
        r->pixels = malloc((size_t)np * S * S * 3);
        if (!r->pixels)
            return et_err(ET_ERR_NOMEM, "%s: out of memory for %lld images", s->path,
                          (long long)np);
        ET_TRY(read_ds(s, &s->di_pixels, i, (hsize_t)p0, (hsize_t)np, r->pixels));
    }
    if (r->has_landmarks) {
        size_t D = (size_t)s->schema.landmark_dim;
        r->landmarks = malloc(D * sizeof(float));
        if (!r->landmarks) return et_err(ET_ERR_NOMEM, "%s: out of memory", s->path);
        ET_TRY(read_ds(s, &s->di_landmarks, i, (hsize_t)i, 1, r->landmarks));
        for (size_t d = 0; d < D; d++)
            if (!isfinite(r->landmarks[d]))
                return et_err(ET_ERR_FORMAT,
                              "%s: sample %lld: landmarks[%zu] is %s (landmarks must be finite "
                              "numbers; prepare the store again from fixed landmarks)",
                              s->path, (long long)i, d, isnan(r->landmarks[d]) ? "NaN" : "Inf");
    }
    if (s->schema.prior_dim > 0) {
        const size_t P = (size_t)s->schema.prior_dim;
        r->priors = malloc(P * sizeof(uint16_t));
        if (!r->priors) return et_err(ET_ERR_NOMEM, "%s: out of memory", s->path);
        ET_TRY(read_ds(s, &s->di_priors, i, (hsize_t)i, 1, r->priors));
        for (size_t d = 0; d < P; d++)
            if (!isfinite(et_bf16_to_f32(r->priors[d])))
                return et_err(ET_ERR_FORMAT,
                              "%s: sample %lld: priors[%zu] is not finite (prepare the store "
                              "again)",
                              s->path, (long long)i, d);
    }
    char *bytes = malloc((size_t)ns + 1);
    if (!bytes) return et_err(ET_ERR_NOMEM, "%s: out of memory", s->path);
    et_status st = read_ds(s, &s->di_strings, i, (hsize_t)s0, (hsize_t)ns, bytes);
    if (st) {
        free(bytes);
        return st;
    }
    char **dst[NSTR] = {&r->id, &r->source, &r->label, &r->reference, &r->gender, &r->race};
    for (int f = 0; f < NSTR; f++) {
        int64_t a = s->str_off[i * NSTR + f] - s0, b = s->str_off[i * NSTR + f + 1] - s0;
        *dst[f] = malloc((size_t)(b - a) + 1);
        if (!*dst[f]) {
            st = et_err(ET_ERR_NOMEM, "%s: out of memory", s->path);
            break;
        }
        memcpy(*dst[f], bytes + a, (size_t)(b - a));
        (*dst[f])[b - a] = '\0';
    }
    free(bytes);
    return st;
}

et_status et_store_get(et_store *s, int64_t i, et_store_record *out) {
    memset(out, 0, sizeof(*out));
    if (i < 0 || i >= s->n)
        return et_err(ET_ERR_INVALID, "%s: sample %lld outside [0, %lld)", s->path, (long long)i,
                      (long long)s->n);
    et_status st = get_sample(s, i, out);
    if (st) et_store_record_free(out);
    return st;
}
