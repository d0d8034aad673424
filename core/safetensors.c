// core/safetensors.c - see safetensors.h
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "device.h"
#include "json_util.h"

// Names and paths in messages are clipped so that the interesting part of the message
// (which field, which offsets) survives the 1024-byte message buffer.
#define NM "%.200s"
#define PTH "%.400s"

// ---- dtypes --------------------------------------------------------------------

typedef struct {
    const char *name;
    int size;
    int emo;  // the emotune dtype stored as-is, or -1
} st_dtype;

enum { ST_BOOL, ST_U8, ST_I8, ST_I64 };  // indices into k_dtypes for the converted dtypes

static const st_dtype k_dtypes[] = {
    {"BOOL", 1, -1},    {"U8", 1, ET_U8},   {"I8", 1, -1},        {"I64", 8, -1},
    {"F8_E5M2", 1, -1}, {"F8_E4M3", 1, -1}, {"F8_E8M0", 1, -1},   {"I16", 2, -1},
    {"U16", 2, -1},     {"F16", 2, ET_F16}, {"BF16", 2, ET_BF16}, {"I32", 4, ET_I32},
    {"U32", 4, -1},     {"F32", 4, ET_F32}, {"U64", 8, -1},       {"F64", 8, ET_F64},
};
#define ST_NUM_DTYPES ((int)(sizeof(k_dtypes) / sizeof(k_dtypes[0])))

static int st_dtype_lookup(const char *s) {
    for (int i = 0; i < ST_NUM_DTYPES; i++)
        if (!strcmp(s, k_dtypes[i].name)) return i;
    return -1;
}

static const char *st_name_of_emo(et_dtype dt) {
    for (int i = 0; i < ST_NUM_DTYPES; i++)
        if (k_dtypes[i].emo == (int)dt) return k_dtypes[i].name;
    return NULL;
}

// ---- helpers -------------------------------------------------------------------

static char *st_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    ET_ASSERT(d, "out of host memory copying a string of %zu bytes", n);
    memcpy(d, s, n);
    return d;
}

static void *st_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    ET_ASSERT(p, "out of host memory allocating %zu x %zu bytes", n, size);
    return p;
}

// The offset of the first byte that is not well-formed UTF-8, or len (core/json_util.h).
static size_t utf8_invalid_at(const uint8_t *s, size_t len) { return et_utf8_invalid_at(s, len); }

// A JSON number that is a non-negative integer exactly representable in a double.
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return false;
    double v = j->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0) return false;  // also rejects NaN
    uint64_t u = (uint64_t)v;
    if ((double)u != v) return false;
    *out = u;
    return true;
}

// ---- the refcounted mapping ----------------------------------------------------

typedef struct {
    atomic_int refs;
    uint8_t *base;
    size_t len;
    bool is_mmap;
} st_mapping;

static void mapping_unref(void *ctx) {
    st_mapping *m = ctx;
    if (!m || atomic_fetch_sub(&m->refs, 1) != 1) return;
    if (m->is_mmap)
        munmap(m->base, m->len);
    else
        free(m->base);
    free(m);
}

// ---- the file ------------------------------------------------------------------

typedef struct {
    char *name;
    int dt;  // index into k_dtypes
    int ndim;
    int64_t shape[ET_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end;
} st_entry;

struct et_st_file {
    char *path;
    st_mapping *map;
    const uint8_t *data;  // start of the data buffer (8 + header length)
    int n;
    st_entry *e;   // sorted by (begin, end, name)
    int *by_name;  // indices into e sorted by name
    int n_meta;
    char **meta_key, **meta_val;
};

static int cmp_entry_offset(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

// qsort has no context argument; the name tables being sorted are reached through this.
static _Thread_local char *const *g_sort_names;
static int cmp_idx_by_name(const void *a, const void *b) {
    return strcmp(g_sort_names[*(const int *)a], g_sort_names[*(const int *)b]);
}
static void sort_idx_by_name(int *idx, int n, char *const *names) {
    for (int i = 0; i < n; i++) idx[i] = i;
    g_sort_names = names;
    if (n > 1) qsort(idx, (size_t)n, sizeof(int), cmp_idx_by_name);
    g_sort_names = NULL;
}

// Returns the position in the (name-sorted) idx table of name, or -1.
static int bsearch_name(const int *idx, int n, char *const *names, const char *name) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(names[idx[mid]], name);
        if (!c) return idx[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static void file_free(et_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) free(f->e[i].name);
    free(f->e);
    free(f->by_name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_key[i]);
        free(f->meta_val[i]);
    }
    free(f->meta_key);
    free(f->meta_val);
    mapping_unref(f->map);
    free(f->path);
    free(f);
}

void et_st_close(et_st_file *f) { file_free(f); }

static et_status parse_metadata(et_st_file *f, const cJSON *meta) {
    const char *p = f->path;
    if (!cJSON_IsObject(meta))
        return et_err(ET_ERR_FORMAT, PTH ": __metadata__ is not an object of strings", p);
    int n = cJSON_GetArraySize(meta);
    f->meta_key = st_calloc((size_t)n, sizeof(char *));
    f->meta_val = st_calloc((size_t)n, sizeof(char *));
    for (const cJSON *kv = meta->child; kv; kv = kv->next) {
        if (!cJSON_IsString(kv) || !kv->valuestring)
            return et_err(ET_ERR_FORMAT, PTH ": __metadata__ value of key '" NM "' is not a string",
                          p, kv->string ? kv->string : "");
        f->meta_key[f->n_meta] = st_strdup(kv->string ? kv->string : "");
        f->meta_val[f->n_meta] = st_strdup(kv->valuestring);
        f->n_meta++;
    }
    if (f->n_meta > 1) {
        int *idx = st_calloc((size_t)f->n_meta, sizeof(int));
        sort_idx_by_name(idx, f->n_meta, f->meta_key);
        for (int i = 1; i < f->n_meta; i++) {
            if (!strcmp(f->meta_key[idx[i]], f->meta_key[idx[i - 1]])) {
                et_status s = et_err(ET_ERR_FORMAT, PTH ": duplicate __metadata__ key '" NM "'", p,
                                     f->meta_key[idx[i]]);
                free(idx);
                return s;
            }
        }
        free(idx);
    }
    return NULL;
}

static et_status parse_entry(const char *p, const cJSON *j, st_entry *e) {
    const char *nm = e->name;
    if (!cJSON_IsObject(j))
        return et_err(ET_ERR_FORMAT, PTH ": tensor '" NM "': entry is not an object", p, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dt) || !dt->valuestring)
        return et_err(ET_ERR_FORMAT, PTH ": tensor '" NM "': missing or non-string \"dtype\"", p,
                      nm);
    e->dt = st_dtype_lookup(dt->valuestring);
    if (e->dt < 0)
        return et_err(ET_ERR_FORMAT, PTH ": tensor '" NM "': unknown dtype \"" NM "\"", p, nm,
                      dt->valuestring);
    int64_t size = k_dtypes[e->dt].size;

    if (!cJSON_IsArray(sh))
        return et_err(ET_ERR_FORMAT, PTH ": tensor '" NM "': missing or non-array \"shape\"", p,
                      nm);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ET_MAX_DIMS)
        return et_err(ET_ERR_FORMAT, PTH ": tensor '" NM "': shape has %d dims, more than %d", p,
                      nm, nd, ET_MAX_DIMS);
    e->ndim = 0;
    int64_t bytes_nz = size;  // product of the non-zero dims times the dtype size
    bool has_zero = false;
    for (const cJSON *d = sh->child; d; d = d->next) {
        uint64_t v;
        if (!json_uint(d, &v))
            return et_err(ET_ERR_FORMAT,
                          PTH ": tensor '" NM "': shape[%d] is not a non-negative integer", p, nm,
                          e->ndim);
        e->shape[e->ndim++] = (int64_t)v;
        if (v == 0) {
            has_zero = true;
        } else if (__builtin_mul_overflow(bytes_nz, (int64_t)v, &bytes_nz)) {
            return et_err(ET_ERR_FORMAT,
                          PTH ": tensor '" NM "': shape overflows (numel * dtype size > 2^63)", p,
                          nm);
        }
    }
    int64_t nbytes = has_zero ? 0 : bytes_nz;
    e->numel = nbytes / size;

    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_uint(off->child, &b) ||
        !json_uint(off->child->next, &en))
        return et_err(ET_ERR_FORMAT,
                      PTH ": tensor '" NM "': \"data_offsets\" must be two non-negative integers",
                      p, nm);
    if (b > en)
        return et_err(ET_ERR_FORMAT,
                      PTH ": tensor '" NM "': data_offsets begin %" PRIu64 " > end %" PRIu64, p, nm,
                      b, en);
    if (en - b != (uint64_t)nbytes)
        return et_err(ET_ERR_FORMAT,
                      PTH ": tensor '" NM "': data_offsets span %" PRIu64
                          " bytes but its shape and dtype %s need %" PRId64 " bytes",
                      p, nm, en - b, k_dtypes[e->dt].name, nbytes);
    e->begin = b;
    e->end = en;
    return NULL;
}

// Validates f->map and fills the tables. On error the caller frees f.
static et_status st_parse(et_st_file *f) {
    const char *p = f->path;
    const uint8_t *base = f->map->base;
    size_t len = f->map->len;
    if (len < 8)
        return et_err(ET_ERR_FORMAT,
                      PTH ": file is %zu bytes, shorter than the 8-byte header length", p, len);
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--) hn = (hn << 8) | base[i];
    if (hn > ET_ST_MAX_HEADER)
        return et_err(ET_ERR_FORMAT, PTH ": header length %" PRIu64 " exceeds the limit of %llu", p,
                      hn, ET_ST_MAX_HEADER);
    if (hn > len - 8)
        return et_err(ET_ERR_FORMAT,
                      PTH ": header length %" PRIu64 " runs past the end of the file (%zu bytes)",
                      p, hn, len);
    const uint8_t *h = base + 8;
    if (hn == 0 || h[0] != '{')
        return et_err(ET_ERR_FORMAT, PTH ": header does not start with '{'", p);
    for (size_t i = 0; i < hn; i++) {
        if (h[i] < 0x20 && h[i] != '\t' && h[i] != '\n' && h[i] != '\r')
            return et_err(ET_ERR_FORMAT,
                          PTH ": header contains control byte 0x%02x at offset %zu (invalid JSON)",
                          p, h[i], i);
    }
    size_t bad = utf8_invalid_at(h, hn);
    if (bad != hn)
        return et_err(ET_ERR_FORMAT, PTH ": header is not valid UTF-8 (byte %zu of the header)", p,
                      bad);

    // cJSON wants a NUL-terminated string; the header has no NUL bytes (checked above).
    char *txt = malloc(hn + 1);
    ET_ASSERT(txt, "out of host memory copying a %" PRIu64 "-byte header", hn);
    memcpy(txt, h, hn);
    txt[hn] = '\0';
    // "\u0000" would decode to a NUL byte and cut the name short ("X\u0000evil" -> "X"),
    // so another tool would see a different tensor name: refused, with the string's start.
    const size_t nul = et_json_find_nul_escape(txt, (size_t)hn);
    if (nul != (size_t)hn) {
        size_t q = nul;  // the string's opening quote: a '"' after an even run of backslashes
        while (q > 0) {
            q--;
            size_t bs = 0;
            while (q >= bs + 1 && txt[q - bs - 1] == '\\') bs++;
            if (txt[q] == '"' && bs % 2 == 0) break;
        }
        et_status e = et_err(ET_ERR_FORMAT,
                             PTH
                             ": header string \"%.*s...\" holds the escape \\u0000 (a NUL "
                             "character) at header byte %zu; tensor names and metadata "
                             "must not contain NUL",
                             p, (int)(nul - q - 1 < 120 ? nul - q - 1 : 120), txt + q + 1, nul);
        free(txt);
        return e;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(txt, &end, 0);
    et_status s = NULL;
    if (!root) {
        s = et_err(ET_ERR_FORMAT, PTH ": header is not valid JSON (error near byte %td)", p,
                   end ? end - txt : (ptrdiff_t)-1);
        goto done;
    }
    for (const char *q = end; *q; q++) {
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            s = et_err(ET_ERR_FORMAT, PTH ": header has trailing data after the JSON at byte %td",
                       p, q - txt);
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        s = et_err(ET_ERR_FORMAT, PTH ": header is not a JSON object", p);
        goto done;
    }

    int cap = cJSON_GetArraySize(root);
    f->e = st_calloc((size_t)cap, sizeof(st_entry));
    bool seen_meta = false;
    for (const cJSON *j = root->child; j; j = j->next) {
        const char *key = j->string ? j->string : "";
        if (!strcmp(key, "__metadata__")) {
            if (seen_meta) {
                s = et_err(ET_ERR_FORMAT, PTH ": duplicate __metadata__ entry", p);
                goto done;
            }
            seen_meta = true;
            if ((s = parse_metadata(f, j))) goto done;
            continue;
        }
        for (const unsigned char *c = (const unsigned char *)key; *c; c++)
            if (*c < 0x20 || *c == 0x7f) {
                s = et_err(ET_ERR_FORMAT,
                           PTH
                           ": tensor name '%.*s...' holds the control character 0x%02x "
                           "at byte %d; tensor names must be printable",
                           p, (int)((const char *)c - key < 200 ? (const char *)c - key : 200), key,
                           *c, (int)((const char *)c - key));
                goto done;
            }
        st_entry *e = &f->e[f->n++];
        e->name = st_strdup(key);
        if ((s = parse_entry(p, j, e))) goto done;
    }

    // Duplicate names (cJSON keeps every member of an object, duplicates included).
    f->by_name = st_calloc((size_t)f->n, sizeof(int));
    char **names = st_calloc((size_t)f->n, sizeof(char *));
    qsort(f->e, (size_t)f->n, sizeof(st_entry), cmp_entry_offset);
    for (int i = 0; i < f->n; i++) names[i] = f->e[i].name;
    sort_idx_by_name(f->by_name, f->n, names);
    for (int i = 1; i < f->n && !s; i++) {
        if (!strcmp(names[f->by_name[i]], names[f->by_name[i - 1]]))
            s = et_err(ET_ERR_FORMAT, PTH ": duplicate tensor name '" NM "'", p,
                       names[f->by_name[i]]);
    }
    free(names);
    if (s) goto done;

    // The entries must tile the data buffer: sorted by begin, each starts where the
    // previous one ended, the first at 0.
    uint64_t expect = 0;
    for (int i = 0; i < f->n; i++) {
        const st_entry *e = &f->e[i];
        if (e->begin < expect) {
            s = et_err(ET_ERR_FORMAT,
                       PTH ": tensor '" NM "' data_offsets [%" PRIu64 ", %" PRIu64
                           "] overlap tensor '" NM "', which ends at %" PRIu64,
                       p, e->name, e->begin, e->end, f->e[i - 1].name, expect);
            goto done;
        }
        if (e->begin > expect) {
            s = et_err(ET_ERR_FORMAT,
                       PTH ": gap in the data buffer: tensor '" NM
                           "' data_offsets begin at %" PRIu64 ", expected %" PRIu64,
                       p, e->name, e->begin, expect);
            goto done;
        }
        expect = e->end;
    }
    uint64_t data_len = len - 8 - hn;
    if (expect != data_len) {
        s = et_err(ET_ERR_FORMAT,
                   PTH ": file size %zu does not match 8 + header length %" PRIu64
                       " + data size %" PRIu64 " = %" PRIu64,
                   p, len, hn, expect, 8 + hn + expect);
        goto done;
    }
    f->data = base + 8 + hn;

done:
    cJSON_Delete(root);
    free(txt);
    return s;
}

static et_status open_mapping(st_mapping *m, const char *path, et_st_file **out) {
    et_st_file *f = st_calloc(1, sizeof(*f));
    f->path = st_strdup(path);
    f->map = m;
    et_status s = st_parse(f);
    if (s) {
        file_free(f);
        return s;
    }
    *out = f;
    return NULL;
}

et_status et_st_open(const char *path, et_st_file **out) {
    ET_ASSERT(path && out, "et_st_open needs a path and an output pointer");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return et_err(ET_ERR_IO, "cannot open " PTH ": %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        et_status s = et_err(ET_ERR_IO, "cannot stat " PTH ": %s", path, strerror(errno));
        close(fd);
        return s;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return et_err(ET_ERR_IO, PTH ": not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    if (len < 8) {
        close(fd);
        return et_err(ET_ERR_FORMAT,
                      PTH ": file is %zu bytes, shorter than the 8-byte header length", path, len);
    }
    // Private and writable: tensors viewing the mapping may be updated in place without
    // the writes reaching the file.
    void *addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (addr == MAP_FAILED)
        return et_err(ET_ERR_IO, "cannot mmap " PTH ": %s", path, strerror(err));
    st_mapping *m = st_calloc(1, sizeof(*m));
    atomic_init(&m->refs, 1);
    m->base = addr;
    m->len = len;
    m->is_mmap = true;
    return open_mapping(m, path, out);
}

et_status et_st_open_memory(const void *buf, size_t len, const char *name, et_st_file **out) {
    ET_ASSERT(out && (buf || !len), "et_st_open_memory needs a buffer and an output pointer");
    *out = NULL;
    if (!name) name = "<memory>";
    st_mapping *m = st_calloc(1, sizeof(*m));
    atomic_init(&m->refs, 1);
    m->base = malloc(len ? len : 1);
    ET_ASSERT(m->base, "out of host memory copying %zu bytes", len);
    if (len) memcpy(m->base, buf, len);
    m->len = len;
    m->is_mmap = false;
    return open_mapping(m, name, out);
}

const char *et_st_path(const et_st_file *f) { return f->path; }
int et_st_num_tensors(const et_st_file *f) { return f->n; }
const char *et_st_name(const et_st_file *f, int i) {
    return i >= 0 && i < f->n ? f->e[i].name : NULL;
}

int et_st_find(const et_st_file *f, const char *name) {
    if (!name || !f->n) return -1;
    // by_name holds indices into e; bsearch_name wants a name table indexed the same way.
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->e[f->by_name[mid]].name, name);
        if (!c) return f->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static void fill_info(const st_entry *e, et_st_info *out) {
    memset(out, 0, sizeof(*out));
    out->name = e->name;
    snprintf(out->dtype, sizeof(out->dtype), "%s", k_dtypes[e->dt].name);
    out->ndim = e->ndim;
    memcpy(out->shape, e->shape, sizeof(int64_t) * (size_t)e->ndim);
    out->begin = e->begin;
    out->end = e->end;
}

static et_status missing(const et_st_file *f, const char *name) {
    return et_err(ET_ERR_MISSING, PTH ": no tensor named '" NM "'", f->path,
                  name ? name : "(null)");
}

et_status et_st_info_of(const et_st_file *f, const char *name, et_st_info *out) {
    int i = et_st_find(f, name);
    if (i < 0) return missing(f, name);
    fill_info(&f->e[i], out);
    return NULL;
}

et_status et_st_load(et_st_file *f, const char *name, et_tensor **out) {
    ET_ASSERT(f && out, "et_st_load needs a file and an output pointer");
    *out = NULL;
    int i = et_st_find(f, name);
    if (i < 0) return missing(f, name);
    const st_entry *e = &f->e[i];
    const st_dtype *d = &k_dtypes[e->dt];
    const uint8_t *src = f->data + e->begin;
    size_t nbytes = (size_t)(e->end - e->begin);
    et_tensor *t = NULL;
    if (d->emo >= 0) {
        if ((uintptr_t)src % (uintptr_t)d->size == 0) {
            atomic_fetch_add(&f->map->refs, 1);
            t = et_wrap_external((et_dtype)d->emo, e->ndim, e->shape, (void *)src, mapping_unref,
                                 f->map);
        } else {
            t = et_empty((et_dtype)d->emo, e->ndim, e->shape);
            if (nbytes) memcpy(et_data(t), src, nbytes);
        }
    } else if (e->dt == ST_I64) {
        t = et_empty(ET_I32, e->ndim, e->shape);
        int32_t *dst = et_data(t);
        for (int64_t k = 0; k < e->numel; k++) {
            int64_t v;
            memcpy(&v, src + 8 * k, 8);
            if (v < INT32_MIN || v > INT32_MAX) {
                et_release(t);
                return et_err(ET_ERR_FORMAT,
                              PTH ": tensor '" NM "': I64 value %" PRId64 " at element %" PRId64
                                  " does not fit in i32",
                              f->path, e->name, v, k);
            }
            dst[k] = (int32_t)v;
        }
    } else if (e->dt == ST_BOOL) {
        t = et_empty(ET_U8, e->ndim, e->shape);
        uint8_t *dst = et_data(t);
        for (int64_t k = 0; k < e->numel; k++) dst[k] = src[k] != 0;
    } else if (e->dt == ST_I8) {
        t = et_empty(ET_U8, e->ndim, e->shape);
        uint8_t *dst = et_data(t);
        for (int64_t k = 0; k < e->numel; k++) {
            int8_t v = (int8_t)src[k];
            if (v < 0) {
                et_release(t);
                return et_err(ET_ERR_FORMAT,
                              PTH ": tensor '" NM "': I8 value %d at element %" PRId64
                                  " is negative and cannot be loaded as u8",
                              f->path, e->name, v, k);
            }
            dst[k] = (uint8_t)v;
        }
    } else {
        return et_err(ET_ERR_UNSUPPORTED,
                      PTH ": tensor '" NM
                          "' has dtype %s, which emotune cannot load "
                          "(supported: F32 BF16 F16 I32 U8 F64; I64, BOOL and I8 are converted)",
                      f->path, e->name, d->name);
    }
    *out = t;
    return NULL;
}

const char *et_st_metadata(const et_st_file *f, const char *key) {
    if (!key) return NULL;
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta_key[i], key)) return f->meta_val[i];
    return NULL;
}
int et_st_num_metadata(const et_st_file *f) { return f->n_meta; }
const char *et_st_metadata_key(const et_st_file *f, int i) {
    return i >= 0 && i < f->n_meta ? f->meta_key[i] : NULL;
}

// ---- the writer ----------------------------------------------------------------

typedef struct {
    char *p;
    size_t len, cap;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        ET_ASSERT(q, "out of host memory building a %zu-byte header", cap);
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_fmt(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(strbuf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    ET_ASSERT(n >= 0 && (size_t)n < sizeof(tmp), "sb_fmt is for short numbers only");
    sb_put(b, tmp, (size_t)n);
}
// A JSON string literal: quotes, backslashes and control characters escaped; UTF-8 kept.
static void sb_json_str(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const char *c = s; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (u == '"' || u == '\\') {
            char esc[2] = {'\\', (char)u};
            sb_put(b, esc, 2);
        } else if (u < 0x20) {
            sb_fmt(b, "\\u%04x", u);
        } else {
            sb_put(b, c, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static _Thread_local const char *const *g_save_names;
static _Thread_local et_tensor *const *g_save_tensors;
static int cmp_save_order(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    size_t si = et_dtype_size(g_save_tensors[i]->dtype),
           sj = et_dtype_size(g_save_tensors[j]->dtype);
    if (si != sj) return si > sj ? -1 : 1;
    return strcmp(g_save_names[i], g_save_names[j]);
}
static int cmp_save_name(const void *a, const void *b) {
    return strcmp(g_save_names[*(const int *)a], g_save_names[*(const int *)b]);
}

static bool write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static bool valid_name(const char *s) {
    return s && *s && utf8_invalid_at((const uint8_t *)s, strlen(s)) == strlen(s);
}

// A tensor name the reader accepts (st_parse refuses control characters in names).
static bool valid_tensor_name(const char *s) {
    if (!valid_name(s)) return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f) return false;
    return true;
}

static et_status st_save_host(const char *path, int n, const char *const *names,
                              et_tensor *const *tensors, int n_meta, const char *const *meta_kv);

et_status et_st_save(const char *path, int n, const char *const *names, et_tensor *const *tensors,
                     int n_meta, const char *const *meta_kv) {
    if (n <= 0 || !tensors || !et_on_device(n, tensors))
        return st_save_host(path, n, names, tensors, n_meta, meta_kv);
    // Device tensors (GPU trainables, optimizer state) are staged through host copies.
    et_tensor **host = st_calloc((size_t)n, sizeof *host);
    for (int i = 0; i < n; i++)
        host[i] = !tensors[i]                         ? NULL
                  : tensors[i]->device.type == ET_CPU ? et_retain(tensors[i])
                                                      : et_to_device(tensors[i], et_cpu());
    et_status st = st_save_host(path, n, names, host, n_meta, meta_kv);
    for (int i = 0; i < n; i++) et_release(host[i]);
    free(host);
    return st;
}

static et_status st_save_host(const char *path, int n, const char *const *names,
                              et_tensor *const *tensors, int n_meta, const char *const *meta_kv) {
    ET_ASSERT(path, "et_st_save needs a path");
    if (n < 0 || n_meta < 0 || (n > 0 && (!names || !tensors)) || (n_meta > 0 && !meta_kv))
        return et_err(ET_ERR_INVALID, "saving " PTH ": bad tensor or metadata arrays", path);
    for (int i = 0; i < n; i++) {
        if (!valid_tensor_name(names[i]))
            return et_err(ET_ERR_INVALID,
                          "saving " PTH
                          ": tensor %d has an empty, NULL, non-UTF-8 or control-character name",
                          path, i);
        if (!strcmp(names[i], "__metadata__"))
            return et_err(ET_ERR_INVALID, "saving " PTH ": '__metadata__' is not a tensor name",
                          path);
        const et_tensor *t = tensors[i];
        if (!t)
            return et_err(ET_ERR_INVALID, "saving " PTH ": tensor '" NM "' is NULL", path,
                          names[i]);
        if (t->device.type != ET_CPU)
            return et_err(ET_ERR_INVALID, "saving " PTH ": tensor '" NM "' is not on the CPU", path,
                          names[i]);
        if (!st_name_of_emo(t->dtype))
            return et_err(ET_ERR_INVALID, "saving " PTH ": tensor '" NM "' has an unknown dtype",
                          path, names[i]);
    }
    for (int i = 0; i < 2 * n_meta; i++)
        if (!valid_name(meta_kv[i]) && !(i % 2 && meta_kv[i] && !*meta_kv[i]))
            return et_err(ET_ERR_INVALID, "saving " PTH ": metadata %s %d is NULL or not UTF-8",
                          path, i % 2 ? "value" : "key", i / 2);
    for (int i = 0; i < n_meta; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(meta_kv[2 * i], meta_kv[2 * j]))
                return et_err(ET_ERR_INVALID, "saving " PTH ": duplicate metadata key '" NM "'",
                              path, meta_kv[2 * i]);

    int *order = st_calloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) order[i] = i;
    g_save_names = names;
    g_save_tensors = tensors;
    if (n > 1) qsort(order, (size_t)n, sizeof(int), cmp_save_name);
    for (int i = 1; i < n; i++) {
        if (!strcmp(names[order[i]], names[order[i - 1]])) {
            et_status s = et_err(ET_ERR_INVALID, "saving " PTH ": duplicate tensor name '" NM "'",
                                 path, names[order[i]]);
            free(order);
            g_save_names = NULL;
            g_save_tensors = NULL;
            return s;
        }
    }
    if (n > 1) qsort(order, (size_t)n, sizeof(int), cmp_save_order);
    g_save_names = NULL;
    g_save_tensors = NULL;

    strbuf h = {0};
    sb_str(&h, "{");
    bool first = true;
    if (n_meta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_str(&h, meta_kv[2 * i]);
            sb_str(&h, ":");
            sb_json_str(&h, meta_kv[2 * i + 1]);
        }
        sb_str(&h, "}");
        first = false;
    }
    uint64_t off = 0;
    for (int k = 0; k < n; k++) {
        const et_tensor *t = tensors[order[k]];
        if (!first) sb_str(&h, ",");
        first = false;
        sb_json_str(&h, names[order[k]]);
        sb_str(&h, ":{\"dtype\":");
        sb_json_str(&h, st_name_of_emo(t->dtype));
        sb_str(&h, ",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) sb_fmt(&h, d ? ",%" PRId64 : "%" PRId64, t->shape[d]);
        uint64_t nb = et_nbytes(t);
        sb_fmt(&h, "],\"data_offsets\":[%" PRIu64 ",", off);
        sb_fmt(&h, "%" PRIu64 "]}", off + nb);
        off += nb;
    }
    sb_str(&h, "}");
    while (h.len % 8) sb_str(&h, " ");

    et_status s = NULL;
    size_t plen = strlen(path) + 32;
    char *tmp = st_calloc(plen, 1);
    snprintf(tmp, plen, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s = et_err(ET_ERR_IO, "saving " PTH ": cannot create " PTH ": %s", path, tmp,
                   strerror(errno));
        goto out;
    }
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    bool ok = write_all(fd, lenb, 8) && write_all(fd, h.p, h.len);
    for (int k = 0; k < n && ok; k++) {
        const et_tensor *t = tensors[order[k]];
        ok = write_all(fd, et_data(t), et_nbytes(t));
    }
    if (!ok || fsync(fd) != 0) {
        s = et_err(ET_ERR_IO, "saving " PTH ": writing " PTH " failed: %s", path, tmp,
                   strerror(errno));
        close(fd);
        unlink(tmp);
        goto out;
    }
    if (close(fd) != 0) {
        s = et_err(ET_ERR_IO, "saving " PTH ": closing " PTH " failed: %s", path, tmp,
                   strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        s = et_err(ET_ERR_IO, "saving " PTH ": renaming " PTH " failed: %s", path, tmp,
                   strerror(errno));
        unlink(tmp);
        goto out;
    }
    // Make the rename durable (best effort: some filesystems refuse to fsync a directory).
    {
        const char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
        if (dir) {
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                (void)fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
out:
    free(tmp);
    free(h.p);
    free(order);
    return s;
}

// ---- sharded checkpoints -------------------------------------------------------

struct et_st_index {
    char *path;
    int n_shards;
    et_st_file **shards;
    int n;
    char **names;   // weight_map order
    int *shard_of;  // per tensor
    int *by_name;   // indices into names sorted by name
};

void et_st_index_close(et_st_index *ix) {
    if (!ix) return;
    for (int i = 0; i < ix->n_shards; i++) et_st_close(ix->shards[i]);
    free(ix->shards);
    for (int i = 0; i < ix->n; i++) free(ix->names[i]);
    free(ix->names);
    free(ix->shard_of);
    free(ix->by_name);
    free(ix->path);
    free(ix);
}

static et_status read_small_file(const char *path, size_t limit, char **out, size_t *out_len) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return et_err(ET_ERR_IO, "cannot open " PTH ": %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return et_err(ET_ERR_IO, PTH ": not a readable regular file", path);
    }
    if ((uint64_t)st.st_size > limit) {
        close(fd);
        return et_err(ET_ERR_FORMAT, PTH ": %lld bytes, more than the %zu-byte limit", path,
                      (long long)st.st_size, limit);
    }
    size_t len = (size_t)st.st_size;
    char *buf = malloc(len + 1);
    ET_ASSERT(buf, "out of host memory reading %zu bytes", len);
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != len) {
        free(buf);
        return et_err(ET_ERR_IO, "reading " PTH " failed (short read)", path);
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return NULL;
}

static bool plain_shard_name(const char *s) {
    return *s && !strchr(s, '/') && !strchr(s, '\\') && !strstr(s, "..");
}

et_status et_st_index_open(const char *path, et_st_index **out) {
    ET_ASSERT(path && out, "et_st_index_open needs a path and an output pointer");
    *out = NULL;
    char *txt = NULL;
    size_t len = 0;
    ET_TRY(read_small_file(path, ET_ST_MAX_HEADER, &txt, &len));
    et_status s = NULL;
    cJSON *root = NULL;
    char **shard_names = NULL;
    int *shard_idx = NULL;
    char *dir = NULL;
    et_st_index *ix = st_calloc(1, sizeof(*ix));
    ix->path = st_strdup(path);

    if (memchr(txt, 0, len) || utf8_invalid_at((const uint8_t *)txt, len) != len) {
        s = et_err(ET_ERR_FORMAT, PTH ": not valid UTF-8 JSON", path);
        goto done;
    }
    root = cJSON_ParseWithLength(txt, len);
    if (!cJSON_IsObject(root)) {
        s = et_err(ET_ERR_FORMAT, PTH ": not a JSON object", path);
        goto done;
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (meta) {
        const cJSON *ts =
            cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, "total_size") : NULL;
        uint64_t v;
        if (!cJSON_IsObject(meta) || (ts && !json_uint(ts, &v))) {
            s = et_err(ET_ERR_FORMAT,
                       PTH
                       ": \"metadata\" must be an object whose total_size is a non-negative "
                       "integer",
                       path);
            goto done;
        }
    }
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        s = et_err(ET_ERR_FORMAT,
                   PTH
                   ": missing or invalid \"weight_map\" (must be an object of tensor name -> "
                   "shard file name)",
                   path);
        goto done;
    }
    int cap = cJSON_GetArraySize(wm);
    ix->names = st_calloc((size_t)cap, sizeof(char *));
    ix->shard_of = st_calloc((size_t)cap, sizeof(int));
    shard_names = st_calloc((size_t)cap, sizeof(char *));  // per tensor, borrowed from root
    for (const cJSON *j = wm->child; j; j = j->next) {
        const char *name = j->string ? j->string : "";
        if (!cJSON_IsString(j) || !j->valuestring) {
            s = et_err(ET_ERR_FORMAT, PTH ": weight_map entry for tensor '" NM "' is not a string",
                       path, name);
            goto done;
        }
        if (!plain_shard_name(j->valuestring)) {
            s = et_err(ET_ERR_FORMAT,
                       PTH ": tensor '" NM "' maps to shard \"" NM
                           "\", which is not a plain file "
                           "name in the index's directory (no '/' or \"..\")",
                       path, name, j->valuestring);
            goto done;
        }
        shard_names[ix->n] = j->valuestring;
        ix->names[ix->n++] = st_strdup(name);
    }
    ix->by_name = st_calloc((size_t)ix->n, sizeof(int));
    sort_idx_by_name(ix->by_name, ix->n, ix->names);
    for (int i = 1; i < ix->n; i++) {
        if (!strcmp(ix->names[ix->by_name[i]], ix->names[ix->by_name[i - 1]])) {
            s = et_err(ET_ERR_FORMAT, PTH ": duplicate tensor name '" NM "' in weight_map", path,
                       ix->names[ix->by_name[i]]);
            goto done;
        }
    }

    // Distinct shards, each opened once.
    shard_idx = st_calloc((size_t)ix->n, sizeof(int));
    sort_idx_by_name(shard_idx, ix->n, shard_names);
    ix->shards = st_calloc((size_t)ix->n, sizeof(et_st_file *));
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    for (int k = 0; k < ix->n; k++) {
        int i = shard_idx[k];
        if (k > 0 && !strcmp(shard_names[i], shard_names[shard_idx[k - 1]])) {
            ix->shard_of[i] = ix->shard_of[shard_idx[k - 1]];
            continue;
        }
        size_t plen = dlen + strlen(shard_names[i]) + 1;
        free(dir);
        dir = st_calloc(plen, 1);
        memcpy(dir, path, dlen);
        memcpy(dir + dlen, shard_names[i], plen - dlen);
        s = et_st_open(dir, &ix->shards[ix->n_shards]);
        if (s) {
            s = et_status_wrap(s, PTH ": shard '" NM "' (listed for tensor '" NM "')", path,
                               shard_names[i], ix->names[i]);
            goto done;
        }
        ix->shard_of[i] = ix->n_shards++;
    }
    for (int i = 0; i < ix->n; i++) {
        const et_st_file *sf = ix->shards[ix->shard_of[i]];
        if (et_st_find(sf, ix->names[i]) < 0) {
            s = et_err(ET_ERR_MISSING,
                       PTH ": tensor '" NM "' is listed in weight_map under shard '" NM
                           "', but that shard has no such tensor",
                       path, ix->names[i], shard_names[i]);
            goto done;
        }
    }

done:
    free(dir);
    free(shard_idx);
    free(shard_names);
    cJSON_Delete(root);
    free(txt);
    if (s) {
        et_st_index_close(ix);
        return s;
    }
    *out = ix;
    return NULL;
}

int et_st_index_num_tensors(const et_st_index *ix) { return ix->n; }
const char *et_st_index_name(const et_st_index *ix, int i) {
    return i >= 0 && i < ix->n ? ix->names[i] : NULL;
}
int et_st_index_find(const et_st_index *ix, const char *name) {
    if (!name) return -1;
    return bsearch_name(ix->by_name, ix->n, ix->names, name);
}

et_status et_st_index_info_of(const et_st_index *ix, const char *name, et_st_info *out) {
    int i = et_st_index_find(ix, name);
    if (i < 0)
        return et_err(ET_ERR_MISSING, PTH ": no tensor named '" NM "' in weight_map", ix->path,
                      name ? name : "(null)");
    return et_st_info_of(ix->shards[ix->shard_of[i]], name, out);
}

et_status et_st_index_load(et_st_index *ix, const char *name, et_tensor **out) {
    ET_ASSERT(ix && out, "et_st_index_load needs an index and an output pointer");
    *out = NULL;
    int i = et_st_index_find(ix, name);
    if (i < 0)
        return et_err(ET_ERR_MISSING, PTH ": no tensor named '" NM "' in weight_map", ix->path,
                      name ? name : "(null)");
    return et_st_load(ix->shards[ix->shard_of[i]], name, out);
}
