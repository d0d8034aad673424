// tests/test_tblog.c - CRC32C, TensorBoard event files (byte-exact against a file TensorBoard
// wrote, tools/golden/gen_tblog.py), record framing read back with both CRCs checked, file
// naming, buffering, write errors; the JSONL metrics log parsed back with cJSON.
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/fileio.h"
#include "../train/tblog.h"
#include "test_util.h"

#define GOLDEN EMOTUNE_SOURCE_DIR "/tests/golden/tblog/events.out.tfevents.golden"

static char g_dir[64];

static void tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_dir, name);
}

// ---- CRC32C --------------------------------------------------------------------------------

// Bit-at-a-time reference.
static uint32_t crc32c_bitwise(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
    }
    return ~c;
}

static void test_crc32c_known_answers(void) {
    CHECK(et_crc32c(0, "123456789", 9) == 0xe3069283u, "got %08x", et_crc32c(0, "123456789", 9));
    CHECK(et_crc32c(0, "", 0) == 0, "empty");
    // RFC 3720 (iSCSI) appendix B.4 vectors.
    uint8_t b[32];
    memset(b, 0, 32);
    CHECK(et_crc32c(0, b, 32) == 0x8a9136aau, "32 zeros: %08x", et_crc32c(0, b, 32));
    memset(b, 0xff, 32);
    CHECK(et_crc32c(0, b, 32) == 0x62a8ab43u, "32 0xff: %08x", et_crc32c(0, b, 32));
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)i;
    CHECK(et_crc32c(0, b, 32) == 0x46dd794eu, "ascending: %08x", et_crc32c(0, b, 32));
    for (int i = 0; i < 32; i++) b[i] = (uint8_t)(31 - i);
    CHECK(et_crc32c(0, b, 32) == 0x113fdb5cu, "descending: %08x", et_crc32c(0, b, 32));
    CHECK(et_crc32c_mask(0) == 0xa282ead8u, "mask(0)");
    CHECK(
        et_crc32c_mask(0x12345678u) == (((0x12345678u >> 15) | (0x12345678u << 17)) + 0xa282ead8u),
        "mask formula");
}

static void test_crc32c_slicing_matches_bitwise(void) {
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof(buf); i++) buf[i] = (uint8_t)(test_uniform() * 256);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= sizeof(buf); n += 7) {
            uint32_t want = crc32c_bitwise(buf + off, n);
            CHECK(et_crc32c(0, buf + off, n) == want, "off %zu len %zu", off, n);
            size_t h = n / 3;  // chained = one shot
            CHECK(et_crc32c(et_crc32c(0, buf + off, h), buf + off + h, n - h) == want,
                  "chained off %zu len %zu", off, n);
        }
}

// ---- reading records back -------------------------------------------------------------------

typedef struct {
    size_t off, len;  // the record's data in the file buffer
} record;

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

// Splits buf into TFRecords, checking both masked CRCs of each; returns the count (-1 on a
// framing or CRC error, reported through CHECK).
static int read_records(const uint8_t *buf, size_t n, record *out, int max) {
    size_t pos = 0;
    int count = 0;
    while (pos < n) {
        if (n - pos < 12) {
            CHECK(0, "truncated record header at %zu", pos);
            return -1;
        }
        uint64_t len = rd_le(buf + pos, 8);
        uint32_t lcrc = (uint32_t)rd_le(buf + pos + 8, 4);
        if (lcrc != et_crc32c_mask(et_crc32c(0, buf + pos, 8))) {
            CHECK(0, "length CRC mismatch at %zu", pos);
            return -1;
        }
        if (len > n - pos - 12 || n - pos - 12 - len < 4) {
            CHECK(0, "truncated record data at %zu", pos);
            return -1;
        }
        uint32_t dcrc = (uint32_t)rd_le(buf + pos + 12 + len, 4);
        if (dcrc != et_crc32c_mask(et_crc32c(0, buf + pos + 12, (size_t)len))) {
            CHECK(0, "data CRC mismatch at %zu", pos);
            return -1;
        }
        if (count < max) out[count] = (record){pos + 12, (size_t)len};
        count++;
        pos += 12 + len + 4;
    }
    return count;
}

static uint8_t *slurp(const char *path, size_t *n) {
    char *buf = NULL;
    et_status s = et_read_file(path, (size_t)1 << 24, &buf, n);
    CHECK(!s, "%s", et_status_msg(s));
    et_status_free(s);
    return (uint8_t *)buf;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

// A minimal protobuf field walker for the first record: finds field `field` (wire type 1 or
// 2) at the top level of msg; returns its payload and length, or NULL.
static const uint8_t *pb_find(const uint8_t *msg, size_t n, int field, size_t *len) {
    size_t i = 0;
    while (i < n) {
        uint64_t key = 0;
        for (int sh = 0; i < n; sh += 7) {
            key |= (uint64_t)(msg[i] & 0x7f) << sh;
            if (!(msg[i++] & 0x80)) break;
        }
        int f = (int)(key >> 3), wt = (int)(key & 7);
        size_t plen;
        if (wt == 0) {
            while (i < n && (msg[i] & 0x80)) i++;
            i++;
            continue;
        } else if (wt == 1) {
            plen = 8;
        } else if (wt == 5) {
            plen = 4;
        } else if (wt == 2) {
            uint64_t l = 0;
            for (int sh = 0; i < n; sh += 7) {
                l |= (uint64_t)(msg[i] & 0x7f) << sh;
                if (!(msg[i++] & 0x80)) break;
            }
            plen = (size_t)l;
        } else {
            return NULL;
        }
        if (plen > n - i) return NULL;
        if (f == field) {
            *len = plen;
            return msg + i;
        }
        i += plen;
    }
    return NULL;
}

// ---- golden: the same events as tools/golden/gen_tblog.py (keep CASES in sync) ----------------

static void write_golden_cases(et_tblog *tb) {
    char long_tag[201] = "long/";
    memset(long_tag + 5, 'x', 195);
    long_tag[200] = '\0';
    const char *config =
        "{\n  \"model\": \"tiny-llava\",\n  \"lr\": 0.0002,\n  \"lora_r\": 8,\n"
        "  \"note\": \"a config long enough for a two-byte length varint (> 127 bytes)\"\n}";
    struct {
        const char *tag;
        int64_t step;
        double value, wall;
    } sc[] = {
        {"train/loss", 0, 2.5, 1700000000.0},
        {"train/loss", 1, 1.0 / 3.0, 1700000000.125},
        {"train/lr", 300, 9.9e-05, 1700000001.5},
        {"train/loss", ((int64_t)1 << 40) + 5, 0.0, 1700000002.75},
        {"edge/neg_zero", 7, -0.0, 1700000003.0},
        {"edge/nan", 8, NAN, 1700000003.0},
        {"edge/inf", 9, INFINITY, 1700000003.0},
        {"edge/-inf", 10, -INFINITY, 1700000003.0},
        {"edge/f32_max", 11, 3.4028234663852886e38, 1700000003.0},
        {"edge/denormal", 12, 1e-45, 1700000003.0},
        {"edge/neg_step", -1, -7.25, 1700000003.0},
        {long_tag, 13, 1.0, 1700000004.0},
        {"\xc3\xa9motion/\xf0\x9f\x98\x80", 14, 42.0, 1700000004.0},
    };
    for (size_t i = 0; i < sizeof(sc) / sizeof(sc[0]); i++) {
        et_tblog_set_wall_time(tb, sc[i].wall);
        et_status s = et_tblog_scalar(tb, sc[i].tag, sc[i].step, sc[i].value);
        CHECK(!s, "%s", et_status_msg(s));
    }
    et_tblog_set_wall_time(tb, 1700000005.5);
    const char *tags[] = {"m/a", "m/b", "m/c"};
    double vals[] = {1.0, -2.0, 1e6};
    CHECK(!et_tblog_scalars(tb, 500, 3, tags, vals), "scalars");
    et_tblog_set_wall_time(tb, 1700000006.0);
    CHECK(!et_tblog_text(tb, "config/text_summary", 0, config), "text");
    CHECK(!et_tblog_text(tb, "empty/text_summary", 3, ""), "empty text");
}

static void test_golden_bytes(void) {
    size_t gn = 0;
    uint8_t *g = slurp(GOLDEN, &gn);
    if (!g) return;
    char path[256];
    tmp_path(path, sizeof(path), "golden_c.tfevents");
    et_tblog *tb = NULL;
    et_tblog_options opt = {.flush_secs = 3600};
    et_status s = et_tblog_open_file(path, &opt, &tb);
    CHECK(!s, "%s", et_status_msg(s));
    if (!tb) {
        free(g);
        return;
    }
    write_golden_cases(tb);
    s = et_tblog_close(tb);
    CHECK(!s, "%s", et_status_msg(s));
    size_t cn = 0;
    uint8_t *c = slurp(path, &cn);
    record gr[32], cr[32];
    int ng = read_records(g, gn, gr, 32), nc = read_records(c, cn, cr, 32);
    CHECK(ng == 17 && nc == 17, "records: golden %d, C %d", ng, nc);
    // Every record after the file_version one, framing included, byte for byte.
    for (int i = 1; i < ng && i < nc; i++) {
        bool same = gr[i].len == cr[i].len &&
                    !memcmp(g + gr[i].off - 12, c + cr[i].off - 12, gr[i].len + 16);
        CHECK(same, "record %d differs (golden %zu bytes, C %zu bytes)", i, gr[i].len, cr[i].len);
        if (!same && getenv("TBLOG_VERBOSE")) {
            for (size_t k = 0; k < cr[i].len; k++) fprintf(stderr, "%02x", c[cr[i].off + k]);
            fprintf(stderr, "\n");
            for (size_t k = 0; k < gr[i].len; k++) fprintf(stderr, "%02x", g[gr[i].off + k]);
            fprintf(stderr, "\n");
        }
    }
    // The whole tail after the first record is identical too.
    if (ng > 1 && nc > 1) {
        size_t gs = gr[1].off - 12, cs = cr[1].off - 12;
        CHECK(gn - gs == cn - cs && !memcmp(g + gs, c + cs, gn - gs), "tail differs");
    }
    // First records: same file_version; the writer names differ.
    if (ng > 0 && nc > 0) {
        size_t gl, cl;
        const uint8_t *gv = pb_find(g + gr[0].off, gr[0].len, 3, &gl);
        const uint8_t *cv = pb_find(c + cr[0].off, cr[0].len, 3, &cl);
        CHECK(gv && cv && gl == 13 && cl == 13 && !memcmp(gv, "brain.Event:2", 13) &&
                  !memcmp(cv, "brain.Event:2", 13),
              "file_version");
        const uint8_t *src = pb_find(c + cr[0].off, cr[0].len, 10, &cl);
        size_t wl = 0;
        const uint8_t *w = src ? pb_find(src, cl, 1, &wl) : NULL;
        CHECK(w && wl == 7 && !memcmp(w, "emotune", 7), "source_metadata.writer");
        const uint8_t *wt = pb_find(c + cr[0].off, cr[0].len, 1, &cl);
        double wall = 0;
        if (wt && cl == 8) memcpy(&wall, wt, 8);
        CHECK(wall > 1.6e9 && wall < 4e9, "first record wall_time %f (the real clock)", wall);
    }
    free(g);
    free(c);
}

// The first record honours a fixed wall time only for later events; check value encoding of
// a double that is not exact in f32 and out-of-range values.
static void test_scalar_encoding(void) {
    char path[256];
    tmp_path(path, sizeof(path), "enc.tfevents");
    et_tblog *tb = NULL;
    et_tblog_options opt = {.flush_secs = 0};
    CHECK(!et_tblog_open_file(path, &opt, &tb), "open");
    if (!tb) return;
    et_tblog_set_wall_time(tb, 1.5);
    double vals[] = {1e39, -1e39, 0x1.fffffefffffffp127, 0.1};
    float want[] = {INFINITY, -INFINITY, 0x1.fffffep127f, 0.1f};
    const char *tags[] = {"a", "b", "c", "d"};
    CHECK(!et_tblog_scalars(tb, 2, 4, tags, vals), "scalars");
    long sz = file_size(path);  // flush_secs = 0: written at once
    CHECK(!et_tblog_close(tb), "close");
    CHECK(sz == file_size(path), "event written before close: %ld vs %ld", sz, file_size(path));
    size_t n;
    uint8_t *b = slurp(path, &n);
    record r[4];
    CHECK(read_records(b, n, r, 4) == 2, "2 records");
    // Event: 09 <wall> 10 02 2a <len> then 4 x (0a 08 0a 01 <tag> 15 <f32>)
    const uint8_t *e = b + r[1].off;
    CHECK(r[1].len == 9 + 2 + 2 + 4 * 10, "event length %zu", r[1].len);
    double wall;
    memcpy(&wall, e + 1, 8);
    CHECK(e[0] == 0x09 && wall == 1.5 && e[9] == 0x10 && e[10] == 2 && e[11] == 0x2a, "head");
    for (int i = 0; i < 4; i++) {
        const uint8_t *v = e + 13 + 10 * i;
        float f;
        memcpy(&f, v + 6, 4);
        CHECK(v[0] == 0x0a && v[1] == 8 && v[4] == tags[i][0] && v[5] == 0x15 &&
                  memcmp(&f, &want[i], 4) == 0,
              "value %d: %g", i, (double)f);
    }
    free(b);
}

// ---- file naming, directory creation, buffering ---------------------------------------------

static void test_open_names_and_dirs(void) {
    char dir[256];
    tmp_path(dir, sizeof(dir), "runs/a/b");
    et_tblog *t1 = NULL, *t2 = NULL;
    et_status s = et_tblog_open(dir, &t1);
    CHECK(!s, "%s", et_status_msg(s));
    s = et_tblog_open(dir, &t2);
    CHECK(!s, "%s", et_status_msg(s));
    if (!t1 || !t2) return;
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    const char *names[2] = {et_tblog_path(t1), et_tblog_path(t2)};
    int counters[2] = {-1, -1};
    for (int i = 0; i < 2; i++) {
        const char *base = strrchr(names[i], '/') + 1;
        CHECK(!strncmp(names[i], dir, strlen(dir)) && base == names[i] + strlen(dir) + 1,
              "%s in %s", names[i], dir);
        long long secs = 0;
        int pid = 0, n = 0;
        char h[256];
        CHECK(sscanf(base, "events.out.tfevents.%10lld.%255[^.].%d.%d%n", &secs, h, &pid,
                     &counters[i], &n) == 4 &&
                  base[n] == '\0',
              "name %s", base);
        CHECK(strlen(base) > 30 && base[20] != '.' && base[30] == '.', "%%010d seconds: %s", base);
        CHECK(secs > 1600000000LL && pid == (int)getpid(), "secs %lld pid %d", secs, pid);
        if (!strchr(host, '.')) CHECK(!strcmp(h, host), "host %s vs %s", h, host);
        CHECK(file_size(names[i]) > 0, "first record written at open");
    }
    CHECK(counters[1] == counters[0] + 1, "counter %d then %d", counters[0], counters[1]);
    CHECK(!et_tblog_close(t1) && !et_tblog_close(t2), "close");
    CHECK(!et_tblog_close(NULL), "close(NULL)");
}

static void test_buffering(void) {
    char path[256];
    tmp_path(path, sizeof(path), "buf.tfevents");
    et_tblog *tb = NULL;
    et_tblog_options opt = {.flush_secs = 3600};
    CHECK(!et_tblog_open_file(path, &opt, &tb), "open");
    if (!tb) return;
    long first = file_size(path);
    CHECK(first > 12 + 16, "first record on disk at open (%ld)", first);
    for (int i = 0; i < 10; i++) CHECK(!et_tblog_scalar(tb, "loss", i, 1.0 / (i + 1)), "scalar");
    CHECK(file_size(path) == first, "buffered: %ld", file_size(path));
    CHECK(!et_tblog_flush(tb), "flush");
    long after = file_size(path);
    CHECK(after > first, "flushed: %ld", after);
    // 64 KiB pending forces a write even with a long flush interval.
    char text[4096];
    memset(text, 'x', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    for (int i = 0; i < 20; i++) CHECK(!et_tblog_text(tb, "t", i, text), "text");
    CHECK(file_size(path) > after + 60000, "64 KiB threshold: %ld", file_size(path));
    CHECK(!et_tblog_close(tb), "close");
    size_t n;
    uint8_t *b = slurp(path, &n);
    record r[40];
    CHECK(read_records(b, n, r, 40) == 1 + 10 + 20, "all records readable");
    free(b);
}

// ---- errors ----------------------------------------------------------------------------------

static void test_open_errors(void) {
    char file[256], dir[300];
    tmp_path(file, sizeof(file), "plainfile");
    FILE *fp = fopen(file, "w");
    fclose(fp);
    snprintf(dir, sizeof(dir), "%s/sub", file);  // a path through a regular file
    et_tblog *tb = (et_tblog *)1;
    et_status s = et_tblog_open(dir, &tb);
    CHECK(s && et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), dir) && !tb, "%s",
          et_status_msg(s));
    et_status_free(s);
    s = et_tblog_open(file, &tb);  // a file, not a directory
    CHECK(s && et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), "not a directory"), "%s",
          et_status_msg(s));
    et_status_free(s);
    s = et_tblog_open("", &tb);
    CHECK(s && et_status_code(s) == ET_ERR_INVALID, "%s", et_status_msg(s));
    et_status_free(s);
    // The first record cannot be written to /dev/full.
    if (access("/dev/full", W_OK) == 0) {
        s = et_tblog_open_file("/dev/full", NULL, &tb);
        CHECK(s && et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), "/dev/full") && !tb,
              "%s", et_status_msg(s));
        et_status_free(s);
    }
}

// A write error mid-run (file size limit): reported once, later events dropped, close counts.
static void test_write_error_not_fatal(void) {
    char path[256];
    tmp_path(path, sizeof(path), "limited.tfevents");
    et_tblog *tb = NULL;
    et_tblog_options opt = {.flush_secs = 3600};
    CHECK(!et_tblog_open_file(path, &opt, &tb), "open");
    if (!tb) return;
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    struct rlimit lim = {.rlim_cur = 200, .rlim_max = old.rlim_max};
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    for (int i = 0; i < 20; i++) CHECK(!et_tblog_scalar(tb, "loss", i, i), "buffered");
    et_status s = et_tblog_flush(tb);
    CHECK(s && et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), path), "%s",
          et_status_msg(s));
    et_status_free(s);
    for (int i = 0; i < 3; i++) CHECK(!et_tblog_scalar(tb, "loss", 100 + i, 1), "dropped quietly");
    CHECK(!et_tblog_text(tb, "t", 1, "x"), "dropped quietly");
    CHECK(!et_tblog_flush(tb), "nothing to flush");
    s = et_tblog_close(tb);
    CHECK(s && et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), "4 TensorBoard events"),
          "%s", et_status_msg(s));
    et_status_free(s);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK(file_size(path) <= 200, "size %ld", file_size(path));
}

// ---- JSONL metrics log -----------------------------------------------------------------------

// Reads path and parses each line with cJSON; returns the number of lines.
static int parse_lines(const char *path, cJSON **out, int max) {
    size_t n;
    char *buf = (char *)slurp(path, &n);
    if (!buf) return -1;
    int count = 0;
    char *line = buf;
    while (*line) {
        char *nl = strchr(line, '\n');
        CHECK(nl, "line %d ends with a newline", count + 1);
        if (!nl) break;
        *nl = '\0';
        cJSON *j = cJSON_Parse(line);
        CHECK(j && cJSON_IsObject(j), "line %d parses: %s", count + 1, line);
        if (count < max)
            out[count] = j;
        else
            cJSON_Delete(j);
        count++;
        line = nl + 1;
    }
    free(buf);
    return count;
}

static void test_metrics_jsonl(void) {
    char path[256];
    tmp_path(path, sizeof(path), "metrics.jsonl");
    et_metrics_log *log = NULL;
    CHECK(!et_metrics_log_open(path, false, &log), "open");
    if (!log) return;
    const char *keys[] = {"loss", "lr", "tokens", "grad_norm", "inf", "ninf", "big", "third"};
    double v1[] = {1.234, 9.9e-05, 123456789.0, NAN, INFINITY, -INFINITY, 1e300, 1.0 / 3.0};
    CHECK(!et_metrics_log_write(log, 370, 8, keys, v1), "write");
    double v2[] = {0.5, -0.0, 9007199254740993.0, 2.0, 3.0, -4.5, 1e-300, 2.0 / 3.0};
    CHECK(!et_metrics_log_write(log, 371, 8, keys, v2), "write");
    CHECK(!et_metrics_log_write(log, 372, 0, NULL, NULL), "no metrics");
    // Flushed per line: the file holds all three lines before close.
    cJSON *l[8] = {0};
    CHECK(parse_lines(path, l, 8) == 3, "3 lines before close");
    for (int i = 0; i < 3; i++) cJSON_Delete(l[i]);
    CHECK(!et_metrics_log_close(log), "close");

    size_t n;
    char *raw = (char *)slurp(path, &n);
    const char *want1 =
        "{\"step\":370,\"loss\":1.234,\"lr\":9.9e-05,\"tokens\":123456789,\"grad_norm\":null,"
        "\"inf\":null,\"ninf\":null,\"big\":1e+300,\"third\":0.333333333}\n";
    CHECK(raw && !strncmp(raw, want1, strlen(want1)), "line 1:\n%s", raw ? raw : "");
    free(raw);

    memset(l, 0, sizeof(l));
    CHECK(parse_lines(path, l, 8) == 3, "3 lines");
    if (l[0] && l[1] && l[2]) {
        CHECK(cJSON_GetObjectItem(l[0], "step")->valuedouble == 370, "step");
        CHECK(cJSON_GetObjectItem(l[0], "loss")->valuedouble == 1.234, "loss");
        CHECK(cJSON_GetObjectItem(l[0], "lr")->valuedouble == 9.9e-05, "lr");
        CHECK(cJSON_GetObjectItem(l[0], "tokens")->valuedouble == 123456789.0, "tokens");
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(l[0], "grad_norm")), "NaN -> null");
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(l[0], "inf")), "Inf -> null");
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(l[0], "ninf")), "-Inf -> null");
        CHECK(cJSON_GetObjectItem(l[0], "big")->valuedouble == 1e300, "1e300");
        // %.9g round-trips an f32.
        CHECK((float)cJSON_GetObjectItem(l[0], "third")->valuedouble == (float)(1.0 / 3.0), "1/3");
        CHECK((float)cJSON_GetObjectItem(l[1], "third")->valuedouble == (float)(2.0 / 3.0), "2/3");
        CHECK(cJSON_GetObjectItem(l[1], "lr")->valuedouble == 0, "-0");
        // 2^53 is past the exact-integer range: %.9g.
        CHECK(cJSON_GetObjectItem(l[1], "tokens")->valuedouble == 9.00719925e15, "2^53");
        CHECK(cJSON_GetObjectItem(l[1], "big")->valuedouble == 1e-300, "1e-300");
        CHECK(cJSON_GetArraySize(l[2]) == 1 && cJSON_GetObjectItem(l[2], "step")->valueint == 372,
              "step only");
        // Keys keep the caller's order after "step".
        cJSON *it = l[0]->child;
        CHECK(it && !strcmp(it->string, "step"), "first key");
        for (int i = 0; i < 8 && it; i++) {
            it = it->next;
            CHECK(it && !strcmp(it->string, keys[i]), "key %d", i);
        }
    }
    for (int i = 0; i < 3; i++) cJSON_Delete(l[i]);
}

static void test_metrics_append_and_escaping(void) {
    char path[256];
    tmp_path(path, sizeof(path), "append.jsonl");
    et_metrics_log *log = NULL;
    const char *k1[] = {"loss"};
    double v1[] = {2.0};
    CHECK(!et_metrics_log_open(path, false, &log), "open");
    CHECK(!et_metrics_log_write(log, 1, 1, k1, v1), "write");
    CHECK(!et_metrics_log_close(log), "close");
    // Resume: append continues the file.
    const char *k2[] = {"we\"ird\\key\n\t\x01", "caf\xc3\xa9"};
    double v2[] = {3.5, -1e-7};
    CHECK(!et_metrics_log_open(path, true, &log), "open append");
    CHECK(!et_metrics_log_write(log, 2, 2, k2, v2), "write");
    CHECK(!et_metrics_log_close(log), "close");
    cJSON *l[4] = {0};
    CHECK(parse_lines(path, l, 4) == 2, "2 lines after append");
    if (l[0] && l[1]) {
        CHECK(cJSON_GetObjectItem(l[0], "loss")->valuedouble == 2.0, "line 1 kept");
        cJSON *w = cJSON_GetObjectItem(l[1], k2[0]);
        CHECK(w && w->valuedouble == 3.5, "escaped key round-trips");
        cJSON *c = cJSON_GetObjectItem(l[1], k2[1]);
        CHECK(c && c->valuedouble == -1e-7, "UTF-8 key");
    }
    for (int i = 0; i < 2; i++) cJSON_Delete(l[i]);
    // Not append: truncates.
    CHECK(!et_metrics_log_open(path, false, &log), "open");
    CHECK(!et_metrics_log_close(log), "close");
    CHECK(file_size(path) == 0, "truncated");
}

static void test_metrics_errors(void) {
    char path[256];
    tmp_path(path, sizeof(path), "no/such/dir/m.jsonl");
    et_metrics_log *log = (et_metrics_log *)1;
    et_status s = et_metrics_log_open(path, false, &log);
    CHECK(s && et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), path) && !log, "%s",
          et_status_msg(s));
    et_status_free(s);
    if (access("/dev/full", W_OK) == 0) {
        CHECK(!et_metrics_log_open("/dev/full", false, &log), "open /dev/full");
        const char *k[] = {"loss"};
        double v[] = {1};
        s = et_metrics_log_write(log, 5, 1, k, v);
        CHECK(s && et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), "/dev/full") &&
                  strstr(et_status_msg(s), "step 5"),
              "%s", et_status_msg(s));
        et_status_free(s);
        et_status_free(et_metrics_log_close(log));
    }
    CHECK(!et_metrics_log_close(NULL), "close(NULL)");
}

// et_tblog_read_scalars: the golden file written by TensorBoard reads back as the cases were
// written (values rounded to f32, steps incl. 2^40 + 5 and -1, wall times, the UTF-8 tag; the
// text events are skipped); a flipped byte or a cut file is an ET_ERR_FORMAT naming the record.
static void test_read_scalars(void) {
    et_tblog_scalar_event *ev = NULL;
    int n = 0;
    et_status s = et_tblog_read_scalars(GOLDEN, &ev, &n);
    CHECK(!s, "%s", et_status_msg(s));
    CHECK(n == 16, "golden: %d scalars", n);
    if (n == 16) {
        CHECK(!strcmp(ev[0].tag, "train/loss") && ev[0].step == 0 && ev[0].value == 2.5f &&
                  ev[0].wall_time == 1700000000.0,
              "0: %s %lld %g %f", ev[0].tag, (long long)ev[0].step, (double)ev[0].value,
              ev[0].wall_time);
        CHECK(ev[1].value == (float)(1.0 / 3.0) && ev[1].wall_time == 1700000000.125, "1");
        CHECK(!strcmp(ev[2].tag, "train/lr") && ev[2].step == 300 && ev[2].value == 9.9e-05f, "2");
        CHECK(ev[3].step == ((int64_t)1 << 40) + 5 && ev[3].value == 0.0f, "3: big step");
        CHECK(isnan(ev[5].value) && isinf(ev[6].value) && ev[7].value < 0 && isinf(ev[7].value),
              "nan / inf / -inf");
        CHECK(!strcmp(ev[10].tag, "edge/neg_step") && ev[10].step == -1 && ev[10].value == -7.25f,
              "negative step: %lld", (long long)ev[10].step);
        CHECK(strlen(ev[11].tag) == 200 && !strncmp(ev[11].tag, "long/xxx", 8), "long tag");
        CHECK(!strcmp(ev[12].tag, "\xc3\xa9motion/\xf0\x9f\x98\x80") && ev[12].value == 42.0f,
              "utf-8 tag");
        CHECK(!strcmp(ev[13].tag, "m/a") && !strcmp(ev[15].tag, "m/c") && ev[15].step == 500 &&
                  ev[15].value == 1e6f && ev[14].value == -2.0f,
              "one event with 3 values");
    }
    free(ev);

    // write -> read with this writer, then damage the file
    char path[256];
    tmp_path(path, sizeof(path), "readback.tfevents");
    et_tblog *tb = NULL;
    CHECK(!et_tblog_open_file(path, NULL, &tb), "open");
    if (!tb) return;
    const char *tags[] = {"eval/accuracy", "eval/uar"};
    double vals[] = {0.875, 0.5};
    CHECK(!et_tblog_scalars(tb, 40, 2, tags, vals), "scalars");
    CHECK(!et_tblog_text(tb, "note", 40, "skipped by the reader"), "text");
    CHECK(!et_tblog_scalar(tb, "eval/rouge_l", 80, 0.25), "scalar");
    CHECK(!et_tblog_close(tb), "close");
    ev = NULL;
    s = et_tblog_read_scalars(path, &ev, &n);
    CHECK(!s && n == 3, "%d: %s", n, et_status_msg(s));
    if (!s && n == 3)
        CHECK(!strcmp(ev[0].tag, "eval/accuracy") && ev[0].step == 40 && ev[0].value == 0.875f &&
                  !strcmp(ev[1].tag, "eval/uar") && ev[1].value == 0.5f &&
                  !strcmp(ev[2].tag, "eval/rouge_l") && ev[2].step == 80 && ev[2].value == 0.25f,
              "read back");
    free(ev);
    size_t len = 0;
    uint8_t *b = slurp(path, &len);
    if (!b) return;
    FILE *fp = fopen(path, "wb");
    b[len - 6] ^= 0x40;  // inside the last record's data
    fwrite(b, 1, len, fp);
    fclose(fp);
    s = et_tblog_read_scalars(path, &ev, &n);
    CHECK(et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), "CRC") &&
              strstr(et_status_msg(s), path) && ev == NULL && n == 0,
          "flipped byte: %s", et_status_msg(s));
    et_status_free(s);
    fp = fopen(path, "wb");
    b[len - 6] ^= 0x40;
    fwrite(b, 1, len - 3, fp);  // cut
    fclose(fp);
    s = et_tblog_read_scalars(path, &ev, &n);
    CHECK(et_status_code(s) == ET_ERR_FORMAT && strstr(et_status_msg(s), "cut short"),
          "cut file: %s", et_status_msg(s));
    et_status_free(s);
    free(b);
    s = et_tblog_read_scalars("/nonexistent/events", &ev, &n);
    CHECK(et_status_code(s) == ET_ERR_IO && strstr(et_status_msg(s), "/nonexistent/events"),
          "missing file");
    et_status_free(s);
}

int main(void) {
    snprintf(g_dir, sizeof(g_dir), "/tmp/et_tblog_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_crc32c_known_answers);
    RUN(test_crc32c_slicing_matches_bitwise);
    RUN(test_golden_bytes);
    RUN(test_scalar_encoding);
    RUN(test_read_scalars);
    RUN(test_open_names_and_dirs);
    RUN(test_buffering);
    RUN(test_open_errors);
    RUN(test_write_error_not_fatal);
    RUN(test_metrics_jsonl);
    RUN(test_metrics_append_and_escaping);
    RUN(test_metrics_errors);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return test_summary();
}
