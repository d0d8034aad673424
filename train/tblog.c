// train/tblog.c - see tblog.h
#include "tblog.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// ---- CRC32C ---------------------------------------------------------------------------------

static uint32_t g_crc_table[8][256];  // [k][b]: CRC of byte b followed by k zero bytes
static pthread_once_t g_crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        g_crc_table[0][i] = c;
    }
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++) {
            uint32_t c = g_crc_table[k - 1][i];
            g_crc_table[k][i] = (c >> 8) ^ g_crc_table[0][c & 0xff];
        }
}

uint32_t et_crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&g_crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t(*t)[256] = g_crc_table;
    crc = ~crc;
    while (len >= 8) {  // slicing-by-8: eight table lookups per 8 bytes
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        uint32_t hi =
            (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        crc = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
              t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) crc = t[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

uint32_t et_crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// ---- byte buffer and protobuf encoding ------------------------------------------------------

typedef struct {
    uint8_t *p;
    size_t len, cap;
} bytebuf;

static void bb_reserve(bytebuf *b, size_t extra) {
    if (b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    ET_ASSERT(p, "out of memory growing a log buffer to %zu bytes", cap);
    b->p = p;
    b->cap = cap;
}

static void bb_put(bytebuf *b, const void *data, size_t n) {
    bb_reserve(b, n);
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void bb_byte(bytebuf *b, uint8_t v) { bb_put(b, &v, 1); }

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void pb_varint(bytebuf *b, uint64_t v) {
    while (v >= 0x80) {
        bb_byte(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    bb_byte(b, (uint8_t)v);
}

static void pb_le(bytebuf *b, uint64_t v, int nbytes) {
    for (int i = 0; i < nbytes; i++) bb_byte(b, (uint8_t)(v >> (8 * i)));
}

// Wire types: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. Every field number used
// here is < 16, so a tag is one byte.
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };
static void pb_tag(bytebuf *b, int field, int wt) { bb_byte(b, (uint8_t)(field << 3 | wt)); }

static void pb_len_prefix(bytebuf *b, int field, size_t len) {
    pb_tag(b, field, WT_LEN);
    pb_varint(b, len);
}

static void pb_bytes(bytebuf *b, int field, const void *data, size_t len) {
    pb_len_prefix(b, field, len);
    bb_put(b, data, len);
}

// Size of a length-delimited field with a payload of len bytes.
static size_t pb_len_field_size(size_t len) { return 1 + varint_len(len) + len; }

// Field numbers (tensorflow/core/util/event.proto, framework/summary.proto, tensor.proto).
enum {
    EVENT_WALL_TIME = 1,  // double
    EVENT_STEP = 2,       // int64
    EVENT_FILE_VERSION = 3,
    EVENT_SUMMARY = 5,
    EVENT_SOURCE_METADATA = 10,  // SourceMetadata{writer = 1}
    SUMMARY_VALUE = 1,           // repeated Value
    VALUE_TAG = 1,
    VALUE_SIMPLE_VALUE = 2,  // float (in the oneof "value": written even when 0)
    VALUE_TENSOR = 8,
    VALUE_METADATA = 9,
    METADATA_PLUGIN_DATA = 1,  // PluginData{plugin_name = 1, content = 2}
    TENSOR_DTYPE = 1,
    TENSOR_SHAPE = 2,  // TensorShapeProto{dim = 2: Dim{size = 1}}
    TENSOR_STRING_VAL = 8,
    DT_STRING = 7,
};

// double -> f32 with IEEE round-to-nearest-even, without the out-of-range conversion C leaves
// undefined: magnitudes at or past the midpoint between FLT_MAX and 2^128 become infinity.
static float to_f32(double v) {
    if (isfinite(v) && fabs(v) >= 0x1.ffffffp127) return v > 0 ? INFINITY : -INFINITY;
    return (float)v;
}

// Event header fields (wall_time, step) and their size.
static size_t event_head_size(double wall_time, int64_t step) {
    uint64_t wbits;
    memcpy(&wbits, &wall_time, 8);
    return (wbits ? 9 : 0) + (step ? 1 + varint_len((uint64_t)step) : 0);
}

static void event_head(bytebuf *b, double wall_time, int64_t step) {
    uint64_t wbits;
    memcpy(&wbits, &wall_time, 8);
    if (wbits) {  // proto3 omits default (all-zero) scalars
        pb_tag(b, EVENT_WALL_TIME, WT_I64);
        pb_le(b, wbits, 8);
    }
    if (step) {
        pb_tag(b, EVENT_STEP, WT_VARINT);
        pb_varint(b, (uint64_t)step);
    }
}

static size_t tag_size(size_t taglen) { return taglen ? pb_len_field_size(taglen) : 0; }

static size_t scalar_value_size(const char *tag) { return tag_size(strlen(tag)) + 5; }

static void scalar_value(bytebuf *b, const char *tag, double value) {
    size_t taglen = strlen(tag);
    pb_len_prefix(b, SUMMARY_VALUE, scalar_value_size(tag));
    if (taglen) pb_bytes(b, VALUE_TAG, tag, taglen);
    float f = to_f32(value);
    uint32_t bits;
    memcpy(&bits, &f, 4);
    pb_tag(b, VALUE_SIMPLE_VALUE, WT_I32);
    pb_le(b, bits, 4);
}

// tensor{dtype DT_STRING, tensor_shape{dim{size 1}}, string_val text}
static size_t text_tensor_size(size_t textlen) { return 2 + 6 + pb_len_field_size(textlen); }
// metadata{plugin_data{plugin_name "text"}}
static const uint8_t k_text_metadata[] = {
    METADATA_PLUGIN_DATA << 3 | WT_LEN, 6, 1 << 3 | WT_LEN, 4, 't', 'e', 'x', 't'};

static size_t text_value_size(size_t taglen, size_t textlen) {
    return tag_size(taglen) + pb_len_field_size(text_tensor_size(textlen)) +
           pb_len_field_size(sizeof(k_text_metadata));
}

// ---- the event file -------------------------------------------------------------------------

#define TBLOG_MAX_PENDING ((size_t)64 << 10)

struct et_tblog {
    char *path;
    int fd;
    double flush_secs;
    double fixed_wall_time;  // > 0: used instead of the clock
    double last_flush_mono;  // monotonic seconds of the last write to the file
    bytebuf pending;         // framed records not yet written
    bool failed;             // a write failed: later events are dropped
    int64_t dropped;         // events dropped since the failure
};

static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double real_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double wall_now(const et_tblog *tb) {
    return tb->fixed_wall_time > 0 ? tb->fixed_wall_time : real_now();
}

// Frames the record whose data starts at offset `start` of tb->pending (12 bytes were
// reserved before it for the length and its CRC) and appends the data CRC.
static void frame_record(et_tblog *tb, size_t start) {
    uint8_t *hdr = tb->pending.p + start - 12;
    uint64_t len = tb->pending.len - start;
    for (int i = 0; i < 8; i++) hdr[i] = (uint8_t)(len >> (8 * i));
    uint32_t lcrc = et_crc32c_mask(et_crc32c(0, hdr, 8));
    for (int i = 0; i < 4; i++) hdr[8 + i] = (uint8_t)(lcrc >> (8 * i));
    uint32_t dcrc = et_crc32c_mask(et_crc32c(0, tb->pending.p + start, (size_t)len));
    pb_le(&tb->pending, dcrc, 4);
}

// Reserves the record header; returns where the record's data starts.
static size_t begin_record(et_tblog *tb, size_t data_len) {
    bb_reserve(&tb->pending, 12 + data_len + 4);
    tb->pending.len += 12;
    return tb->pending.len;
}

static et_status write_all(et_tblog *tb) {
    size_t off = 0;
    while (off < tb->pending.len) {
        ssize_t w = write(tb->fd, tb->pending.p + off, tb->pending.len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : EIO;
            tb->failed = true;
            tb->pending.len = 0;
            return et_err(ET_ERR_IO,
                          "%s: writing the TensorBoard event file failed (%s); later events "
                          "are dropped",
                          tb->path, strerror(e));
        }
        off += (size_t)w;
    }
    tb->pending.len = 0;
    return NULL;
}

et_status et_tblog_flush(et_tblog *tb) {
    ET_ASSERT(tb, "et_tblog_flush needs a writer from et_tblog_open");
    tb->last_flush_mono = mono_now();
    if (tb->failed || tb->pending.len == 0) return NULL;
    return write_all(tb);
}

// After an event was appended: writes when due.
static et_status maybe_flush(et_tblog *tb) {
    if (tb->pending.len >= TBLOG_MAX_PENDING || tb->flush_secs <= 0 ||
        mono_now() - tb->last_flush_mono >= tb->flush_secs)
        return et_tblog_flush(tb);
    return NULL;
}

static et_status first_record(et_tblog *tb) {
    static const char version[] = "brain.Event:2", writer[] = "emotune";
    double wall = wall_now(tb);
    size_t src = pb_len_field_size(strlen(writer));
    size_t len =
        event_head_size(wall, 0) + pb_len_field_size(strlen(version)) + pb_len_field_size(src);
    size_t start = begin_record(tb, len);
    event_head(&tb->pending, wall, 0);
    pb_bytes(&tb->pending, EVENT_FILE_VERSION, version, strlen(version));
    pb_len_prefix(&tb->pending, EVENT_SOURCE_METADATA, src);
    pb_bytes(&tb->pending, 1, writer, strlen(writer));
    frame_record(tb, start);
    return et_tblog_flush(tb);
}

static et_status open_fd(const char *path, int flags, const et_tblog_options *opt, et_tblog **out,
                         int *err) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
    if (fd < 0) {
        *err = errno;
        return et_err(ET_ERR_IO, "%s: cannot create the TensorBoard event file (%s)", path,
                      strerror(errno));
    }
    et_tblog *tb = calloc(1, sizeof(*tb));
    ET_ASSERT(tb, "out of memory");
    tb->path = strdup(path);
    ET_ASSERT(tb->path, "out of memory");
    tb->fd = fd;
    tb->flush_secs = opt ? opt->flush_secs : ET_TBLOG_DEFAULT_FLUSH_SECS;
    tb->last_flush_mono = mono_now();
    et_status s = first_record(tb);
    if (s) {
        close(fd);
        free(tb->pending.p);
        free(tb->path);
        free(tb);
        return s;
    }
    *out = tb;
    return NULL;
}

et_status et_tblog_open_file(const char *path, const et_tblog_options *opt, et_tblog **out) {
    ET_ASSERT(path && out, "et_tblog_open_file needs a path and an output pointer");
    *out = NULL;
    int err = 0;
    return open_fd(path, O_TRUNC, opt, out, &err);
}

// mkdir -p: creates dir and its missing parents.
static et_status make_dirs(const char *dir) {
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    ET_ASSERT(p, "out of memory");
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            et_status s = et_err(ET_ERR_IO, "%s: cannot create the log directory %s (%s)", dir, p,
                                 strerror(errno));
            free(p);
            return s;
        }
        p[i] = c;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return et_err(ET_ERR_IO, "%s: the log directory is not a directory", dir);
    return NULL;
}

static atomic_int g_file_counter;  // like TensorBoard's per-process file counter

et_status et_tblog_open_ex(const char *dir, const et_tblog_options *opt, et_tblog **out) {
    ET_ASSERT(dir && out, "et_tblog_open needs a directory and an output pointer");
    *out = NULL;
    if (!dir[0]) return et_err(ET_ERR_INVALID, "TensorBoard log directory: empty path");
    ET_TRY(make_dirs(dir));
    char host[256];
    if (gethostname(host, sizeof(host)) != 0 || !host[0]) snprintf(host, sizeof(host), "host");
    host[sizeof(host) - 1] = '\0';
    for (char *c = host; *c; c++)
        if (*c == '/') *c = '_';
    long long secs = (long long)floor(real_now());
    for (int attempt = 0;; attempt++) {
        int counter = atomic_fetch_add(&g_file_counter, 1);
        size_t n = strlen(dir) + strlen(host) + 96;
        char *path = malloc(n);
        ET_ASSERT(path, "out of memory");
        snprintf(path, n, "%s/events.out.tfevents.%010lld.%s.%d.%d", dir, secs, host, (int)getpid(),
                 counter);
        int err = 0;
        et_status s = open_fd(path, O_EXCL, opt, out, &err);
        free(path);
        if (s && err == EEXIST && attempt < 1000) {  // another writer took this name
            et_status_free(s);
            continue;
        }
        return s;
    }
}

et_status et_tblog_open(const char *dir, et_tblog **out) {
    return et_tblog_open_ex(dir, NULL, out);
}

const char *et_tblog_path(const et_tblog *tb) { return tb->path; }

void et_tblog_set_wall_time(et_tblog *tb, double wall_time) {
    tb->fixed_wall_time = wall_time > 0 ? wall_time : 0;
}

et_status et_tblog_scalars(et_tblog *tb, int64_t step, int n, const char *const *tags,
                           const double *values) {
    ET_ASSERT(tb && n >= 0 && (n == 0 || (tags && values)),
              "et_tblog_scalars needs a writer and n >= 0 tags and values");
    if (n == 0) return NULL;
    if (tb->failed) {
        tb->dropped++;
        return NULL;
    }
    size_t sum = 0;
    for (int i = 0; i < n; i++) {
        ET_ASSERT(tags[i], "et_tblog_scalars: tag %d is NULL", i);
        sum += pb_len_field_size(scalar_value_size(tags[i]));
    }
    double wall = wall_now(tb);
    size_t start = begin_record(tb, event_head_size(wall, step) + pb_len_field_size(sum));
    event_head(&tb->pending, wall, step);
    pb_len_prefix(&tb->pending, EVENT_SUMMARY, sum);
    for (int i = 0; i < n; i++) scalar_value(&tb->pending, tags[i], values[i]);
    frame_record(tb, start);
    return maybe_flush(tb);
}

et_status et_tblog_scalar(et_tblog *tb, const char *tag, int64_t step, double value) {
    return et_tblog_scalars(tb, step, 1, &tag, &value);
}

et_status et_tblog_text(et_tblog *tb, const char *tag, int64_t step, const char *text) {
    ET_ASSERT(tb && tag && text, "et_tblog_text needs a writer, a tag and a text");
    if (tb->failed) {
        tb->dropped++;
        return NULL;
    }
    size_t taglen = strlen(tag), textlen = strlen(text);
    size_t vsize = text_value_size(taglen, textlen);
    size_t sum = pb_len_field_size(vsize);
    double wall = wall_now(tb);
    bytebuf *b = &tb->pending;
    size_t start = begin_record(tb, event_head_size(wall, step) + pb_len_field_size(sum));
    event_head(b, wall, step);
    pb_len_prefix(b, EVENT_SUMMARY, sum);
    pb_len_prefix(b, SUMMARY_VALUE, vsize);
    if (taglen) pb_bytes(b, VALUE_TAG, tag, taglen);
    pb_len_prefix(b, VALUE_TENSOR, text_tensor_size(textlen));
    pb_tag(b, TENSOR_DTYPE, WT_VARINT);
    pb_varint(b, DT_STRING);
    static const uint8_t shape_1[] = {2 << 3 | WT_LEN, 2, 1 << 3 | WT_VARINT, 1};  // dim{size 1}
    pb_bytes(b, TENSOR_SHAPE, shape_1, sizeof(shape_1));
    pb_bytes(b, TENSOR_STRING_VAL, text, textlen);
    pb_bytes(b, VALUE_METADATA, k_text_metadata, sizeof(k_text_metadata));
    frame_record(tb, start);
    return maybe_flush(tb);
}

et_status et_tblog_close(et_tblog *tb) {
    if (!tb) return NULL;
    et_status s = et_tblog_flush(tb);
    if (!s && tb->failed)
        s = et_err(ET_ERR_IO, "%s: %lld TensorBoard events were dropped after a write error",
                   tb->path, (long long)tb->dropped);
    if (close(tb->fd) != 0 && !s)
        s = et_err(ET_ERR_IO, "%s: closing the TensorBoard event file failed (%s)", tb->path,
                   strerror(errno));
    free(tb->pending.p);
    free(tb->path);
    free(tb);
    return s;
}

// ---- reading scalars back ---------------------------------------------------------------------

typedef struct {
    const uint8_t *p;
    size_t n, i;
} pb_reader;

static bool rd_varint(pb_reader *r, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 70 && r->i < r->n; shift += 7) {
        uint8_t b = r->p[r->i++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

// The next field: its number, wire type and (wire types 1, 2, 5) payload; varints in *v.
static bool rd_field(pb_reader *r, int *field, int *wt, const uint8_t **data, size_t *len,
                     uint64_t *v) {
    uint64_t key;
    if (!rd_varint(r, &key) || key >> 3 == 0 || key >> 3 > INT32_MAX) return false;
    *field = (int)(key >> 3), *wt = (int)(key & 7);
    size_t size;
    switch (*wt) {
        case 0:
            return rd_varint(r, v);
        case 1:
            size = 8;
            break;
        case 5:
            size = 4;
            break;
        case 2: {
            uint64_t l;
            if (!rd_varint(r, &l) || l > r->n - r->i) return false;
            size = (size_t)l;
            break;
        }
        default:
            return false;  // groups (3, 4) are not used by tensorboard.Event
    }
    if (size > r->n - r->i) return false;
    *data = r->p + r->i, *len = size;
    r->i += size;
    return true;
}

typedef struct {
    et_tblog_scalar_event *v;
    int n, cap;
} scalar_list;

// One Summary.Value; keeps it when it has a simple_value.
static bool read_value(const uint8_t *p, size_t n, int64_t step, double wall, scalar_list *out) {
    pb_reader r = {p, n, 0};
    et_tblog_scalar_event e = {.step = step, .wall_time = wall};
    bool has_value = false;
    while (r.i < r.n) {
        int f, wt;
        const uint8_t *d = NULL;
        size_t l = 0;
        uint64_t v = 0;
        if (!rd_field(&r, &f, &wt, &d, &l, &v)) return false;
        if (f == VALUE_TAG && wt == 2) {
            size_t k = l < sizeof(e.tag) - 1 ? l : sizeof(e.tag) - 1;
            memcpy(e.tag, d, k);
            e.tag[k] = 0;
        } else if (f == VALUE_SIMPLE_VALUE && wt == 5) {
            uint32_t bits =
                (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
            memcpy(&e.value, &bits, 4);
            has_value = true;
        }
    }
    if (!has_value) return true;
    if (out->n == out->cap) {
        out->cap = out->cap ? 2 * out->cap : 64;
        et_tblog_scalar_event *nv = realloc(out->v, sizeof(*nv) * (size_t)out->cap);
        ET_ASSERT(nv, "out of memory");
        out->v = nv;
    }
    out->v[out->n++] = e;
    return true;
}

static bool read_event(const uint8_t *p, size_t n, scalar_list *out) {
    pb_reader r = {p, n, 0};
    int64_t step = 0;
    double wall = 0;
    const uint8_t *summary = NULL;
    size_t summary_len = 0;
    while (r.i < r.n) {  // step and wall time may follow the summary: collect first
        int f, wt;
        const uint8_t *d = NULL;
        size_t l = 0;
        uint64_t v = 0;
        if (!rd_field(&r, &f, &wt, &d, &l, &v)) return false;
        if (f == EVENT_WALL_TIME && wt == 1) memcpy(&wall, d, 8);
        if (f == EVENT_STEP && wt == 0) step = (int64_t)v;
        if (f == EVENT_SUMMARY && wt == 2) summary = d, summary_len = l;
    }
    if (!summary) return true;
    pb_reader s = {summary, summary_len, 0};
    while (s.i < s.n) {
        int f, wt;
        const uint8_t *d = NULL;
        size_t l = 0;
        uint64_t v = 0;
        if (!rd_field(&s, &f, &wt, &d, &l, &v)) return false;
        if (f == SUMMARY_VALUE && wt == 2 && !read_value(d, l, step, wall, out)) return false;
    }
    return true;
}

static uint64_t le_at(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

et_status et_tblog_read_scalars(const char *path, et_tblog_scalar_event **out, int *n_out) {
    ET_ASSERT(path && out && n_out, "et_tblog_read_scalars: NULL argument");
    *out = NULL, *n_out = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return et_err(ET_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
    bytebuf b = {0};
    uint8_t chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0) bb_put(&b, chunk, got);
    bool rerr = ferror(fp) != 0;
    fclose(fp);
    if (rerr) {
        free(b.p);
        return et_err(ET_ERR_IO, "%s: read error", path);
    }
    scalar_list list = {0};
    et_status st = NULL;
    for (size_t pos = 0; pos < b.len && !st;) {
        const uint8_t *h = b.p + pos;
        if (b.len - pos < 12 || (uint32_t)le_at(h + 8, 4) != et_crc32c_mask(et_crc32c(0, h, 8))) {
            st = et_err(ET_ERR_FORMAT, "%s: record at byte %zu: bad or cut length header", path,
                        pos);
            break;
        }
        uint64_t len = le_at(h, 8);
        if (len > b.len - pos - 12 || b.len - pos - 12 - len < 4) {
            st = et_err(ET_ERR_FORMAT, "%s: record at byte %zu: cut short (%llu bytes announced)",
                        path, pos, (unsigned long long)len);
            break;
        }
        if ((uint32_t)le_at(h + 12 + len, 4) != et_crc32c_mask(et_crc32c(0, h + 12, (size_t)len)))
            st = et_err(ET_ERR_FORMAT, "%s: record at byte %zu: data CRC mismatch", path, pos);
        else if (!read_event(h + 12, (size_t)len, &list))
            st =
                et_err(ET_ERR_FORMAT, "%s: record at byte %zu: not a tensorboard.Event", path, pos);
        pos += 12 + (size_t)len + 4;
    }
    free(b.p);
    if (st) {
        free(list.v);
        return st;
    }
    *out = list.v, *n_out = list.n;
    return NULL;
}

// ---- JSONL metrics log -----------------------------------------------------------------------

struct et_metrics_log {
    char *path;
    FILE *fp;
    bytebuf line;
};

et_status et_metrics_log_open(const char *path, bool append, et_metrics_log **out) {
    ET_ASSERT(path && out, "et_metrics_log_open needs a path and an output pointer");
    *out = NULL;
    FILE *fp = fopen(path, append ? "a" : "w");
    if (!fp)
        return et_err(ET_ERR_IO, "%s: cannot open the metrics log for %s (%s)", path,
                      append ? "appending" : "writing", strerror(errno));
    et_metrics_log *log = calloc(1, sizeof(*log));
    ET_ASSERT(log, "out of memory");
    log->path = strdup(path);
    ET_ASSERT(log->path, "out of memory");
    log->fp = fp;
    *out = log;
    return NULL;
}

static void json_string(bytebuf *b, const char *s) {
    bb_byte(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            bb_byte(b, '\\');
            bb_byte(b, c);
        } else if (c == '\n') {
            bb_put(b, "\\n", 2);
        } else if (c == '\t') {
            bb_put(b, "\\t", 2);
        } else if (c == '\r') {
            bb_put(b, "\\r", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char esc[8];
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            bb_put(b, esc, 6);
        } else {
            bb_byte(b, c);
        }
    }
    bb_byte(b, '"');
}

static void json_number(bytebuf *b, double v) {
    char num[40];
    if (!isfinite(v))
        snprintf(num, sizeof(num), "null");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        snprintf(num, sizeof(num), "%.0f", v);
    else
        snprintf(num, sizeof(num), "%.9g", v);
    bb_put(b, num, strlen(num));
}

et_status et_metrics_log_write(et_metrics_log *log, int64_t step, int n, const char *const *keys,
                               const double *values) {
    ET_ASSERT(log && n >= 0 && (n == 0 || (keys && values)),
              "et_metrics_log_write needs a log and n >= 0 keys and values");
    bytebuf *b = &log->line;
    b->len = 0;
    char head[40];
    snprintf(head, sizeof(head), "{\"step\":%lld", (long long)step);
    bb_put(b, head, strlen(head));
    for (int i = 0; i < n; i++) {
        ET_ASSERT(keys[i], "et_metrics_log_write: key %d is NULL", i);
        bb_byte(b, ',');
        json_string(b, keys[i]);
        bb_byte(b, ':');
        json_number(b, values[i]);
    }
    bb_put(b, "}\n", 2);
    if (fwrite(b->p, 1, b->len, log->fp) != b->len || fflush(log->fp) != 0) {
        int e = errno;
        clearerr(log->fp);
        return et_err(ET_ERR_IO, "%s: writing the metrics log failed at step %lld (%s)", log->path,
                      (long long)step, strerror(e));
    }
    return NULL;
}

et_status et_metrics_log_close(et_metrics_log *log) {
    if (!log) return NULL;
    et_status s = NULL;
    if (fclose(log->fp) != 0)
        s = et_err(ET_ERR_IO, "%s: closing the metrics log failed (%s)", log->path,
                   strerror(errno));
    free(log->line.p);
    free(log->path);
    free(log);
    return s;
}
