// data/dataset.c - see dataset.h
#include "dataset.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/json_util.h"
#include "../core/rng.h"
#include "npy.h"

// Where one sample's text lies in the file.
typedef struct {
    int64_t off;   // byte offset of its first byte
    int64_t len;   // bytes
    int64_t line;  // 1-based line of its first byte
    int64_t col;   // 1-based column (in bytes) of its first byte
} sample_loc;

struct et_dataset {
    char *name;  // the path (or the memory name), for messages
    int fd;      // -1 for a memory dataset
    char *mem;   // the copied buffer of a memory dataset
    size_t mem_len;
    char *root_real;   // realpath of the data root
    char *root_given;  // the data root made absolute and normalized, as written
    bool require_answer, skip_media_check;
    int64_t landmark_dim;
    double landmark_bound;
    sample_loc *locs;  // (n)
    int64_t n, cap;
};

// ---- small helpers -------------------------------------------------------------

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static bool is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

// Reads len bytes at off into buf (no short reads).
static et_status ds_read_at(const et_dataset *ds, int64_t off, char *buf, size_t len) {
    if (ds->fd < 0) {
        if (off < 0 || (uint64_t)off > ds->mem_len || len > ds->mem_len - (size_t)off)
            return et_err(ET_ERR_IO, "%s: read past the end", ds->name);
        memcpy(buf, ds->mem + off, len);
        return NULL;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(ds->fd, buf + got, len - got, (off_t)(off + (int64_t)got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return et_err(ET_ERR_IO, "%s: read failed: %s", ds->name, strerror(errno));
        if (r == 0)
            return et_err(ET_ERR_IO, "%s: file shrank while reading (changed since it was opened?)",
                          ds->name);
        got += (size_t)r;
    }
    return NULL;
}

// Shortest decimal text that reads back as v (integers without a fraction).
static char *number_text(double v) {
    char buf[64];
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, sizeof(buf), "%lld", (long long)v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof(buf), "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
    }
    return xstrdup(buf);
}

static const char *json_type_name(const cJSON *j) {
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "invalid";
}

// ---- the index pass --------------------------------------------------------------

enum {
    SC_START,        // before '['
    SC_BEFORE_ELEM,  // after '[' or ','
    SC_CONTAINER,    // inside an object/array sample
    SC_STRING,       // inside a top-level string sample
    SC_SCALAR,       // inside a top-level number/literal sample
    SC_AFTER_ELEM,   // after a sample, expecting ',' or ']'
    SC_DONE,         // after the closing ']'
};

#define SC_MAX_DEPTH (1 << 20)

typedef struct {
    et_dataset *ds;
    bool jsonl;
    int state;
    bool after_comma;
    bool in_str, esc;
    uint8_t *stack;  // '{' or '[' per open level of the current sample
    size_t depth, stack_cap;
    int64_t line, line_start;  // current line (1-based) and the offset where it starts
    // current sample (array) or line content (jsonl)
    bool have_start;
    sample_loc cur;
    int64_t last_content;  // jsonl: offset just past the last non-blank byte of the line
} scanner;

static et_status scan_err(const scanner *sc, int64_t off, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static et_status scan_err(const scanner *sc, int64_t off, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return et_err(ET_ERR_FORMAT, "%s:%lld:%lld: %s", sc->ds->name, (long long)sc->line,
                  (long long)(off - sc->line_start + 1), msg);
}

static et_status push_loc(scanner *sc, int64_t end) {
    et_dataset *ds = sc->ds;
    if (ds->n == ds->cap) {
        int64_t cap = ds->cap ? ds->cap * 2 : 1024;
        sample_loc *p = realloc(ds->locs, (size_t)cap * sizeof(*p));
        if (!p) return et_err(ET_ERR_NOMEM, "%s: out of memory indexing samples", ds->name);
        ds->locs = p;
        ds->cap = cap;
    }
    sc->cur.len = end - sc->cur.off;
    ds->locs[ds->n++] = sc->cur;
    sc->have_start = false;
    return NULL;
}

static void begin_sample(scanner *sc, int64_t off) {
    sc->have_start = true;
    sc->cur.off = off;
    sc->cur.line = sc->line;
    sc->cur.col = off - sc->line_start + 1;
}

static et_status scan_jsonl(scanner *sc, const char *p, size_t n, int64_t base) {
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        int64_t off = base + (int64_t)i;
        if (c == '\n') {
            if (sc->have_start) ET_TRY(push_loc(sc, sc->last_content));
            sc->line++;
            sc->line_start = off + 1;
        } else if (!is_ws((unsigned char)c)) {
            if (!sc->have_start) begin_sample(sc, off);
            sc->last_content = off + 1;
        }
    }
    return NULL;
}

static et_status scan_array(scanner *sc, const char *p, size_t n, int64_t base) {
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        int64_t off = base + (int64_t)i;
        switch (sc->state) {
            case SC_START:
                if (is_ws((unsigned char)c)) break;
                if (c != '[') return scan_err(sc, off, "expected '[' to start the JSON array");
                sc->state = SC_BEFORE_ELEM;
                sc->after_comma = false;
                break;
            case SC_BEFORE_ELEM:
                if (is_ws((unsigned char)c)) break;
                if (c == ']') {
                    if (sc->after_comma)
                        return scan_err(sc, off, "trailing comma after sample %lld",
                                        (long long)sc->ds->n - 1);
                    sc->state = SC_DONE;
                    break;
                }
                if (c == ',')
                    return scan_err(sc, off, "unexpected ',' (missing sample %lld)",
                                    (long long)sc->ds->n);
                begin_sample(sc, off);
                if (c == '{' || c == '[') {
                    sc->depth = 0;
                    sc->in_str = sc->esc = false;
                    sc->stack[sc->depth++] = (uint8_t)c;
                    sc->state = SC_CONTAINER;
                } else if (c == '"') {
                    sc->esc = false;
                    sc->state = SC_STRING;
                } else if (c == '}') {
                    return scan_err(sc, off, "unexpected '}'");
                } else {
                    sc->state = SC_SCALAR;
                }
                break;
            case SC_CONTAINER:
                if (sc->in_str) {
                    if (sc->esc)
                        sc->esc = false;
                    else if (c == '\\')
                        sc->esc = true;
                    else if (c == '"')
                        sc->in_str = false;
                    break;
                }
                if (c == '"') {
                    sc->in_str = true;
                } else if (c == '{' || c == '[') {
                    if (sc->depth == sc->stack_cap) {
                        if (sc->stack_cap >= SC_MAX_DEPTH)
                            return scan_err(sc, off, "sample %lld is nested too deeply",
                                            (long long)sc->ds->n);
                        uint8_t *s = realloc(sc->stack, sc->stack_cap * 2);
                        if (!s) return et_err(ET_ERR_NOMEM, "%s: out of memory", sc->ds->name);
                        sc->stack = s;
                        sc->stack_cap *= 2;
                    }
                    sc->stack[sc->depth++] = (uint8_t)c;
                } else if (c == '}' || c == ']') {
                    char open = c == '}' ? '{' : '[';
                    if (sc->stack[sc->depth - 1] != open)
                        return scan_err(sc, off, "'%c' does not match '%c' in sample %lld", c,
                                        sc->stack[sc->depth - 1], (long long)sc->ds->n);
                    if (--sc->depth == 0) {
                        ET_TRY(push_loc(sc, off + 1));
                        sc->state = SC_AFTER_ELEM;
                    }
                }
                break;
            case SC_STRING:
                if (sc->esc)
                    sc->esc = false;
                else if (c == '\\')
                    sc->esc = true;
                else if (c == '"') {
                    ET_TRY(push_loc(sc, off + 1));
                    sc->state = SC_AFTER_ELEM;
                }
                break;
            case SC_SCALAR:
                if (!is_ws((unsigned char)c) && c != ',' && c != ']' && c != '{' && c != '[' &&
                    c != '"')
                    break;
                ET_TRY(push_loc(sc, off));
                sc->state = SC_AFTER_ELEM;
                // fall through: this byte is the separator
                __attribute__((fallthrough));
            case SC_AFTER_ELEM:
                if (is_ws((unsigned char)c)) break;
                if (c == ',') {
                    sc->state = SC_BEFORE_ELEM;
                    sc->after_comma = true;
                } else if (c == ']') {
                    sc->state = SC_DONE;
                } else {
                    return scan_err(sc, off, "expected ',' or ']' after sample %lld",
                                    (long long)sc->ds->n - 1);
                }
                break;
            case SC_DONE:
                if (!is_ws((unsigned char)c))
                    return scan_err(sc, off, "unexpected text after the end of the JSON array");
                break;
        }
        if (c == '\n') {
            sc->line++;
            sc->line_start = off + 1;
        }
    }
    return NULL;
}

static et_status scan_finish(scanner *sc, int64_t end) {
    if (sc->jsonl) {
        if (sc->have_start) ET_TRY(push_loc(sc, sc->last_content));
        return NULL;
    }
    switch (sc->state) {
        case SC_START:
            return et_err(ET_ERR_FORMAT, "%s: no samples (the file is empty)", sc->ds->name);
        case SC_DONE:
            return NULL;
        case SC_SCALAR:
            return scan_err(sc, end, "end of file after sample %lld: the JSON array has no ']'",
                            (long long)sc->ds->n);
        case SC_CONTAINER:
        case SC_STRING:
            return scan_err(sc, end,
                            "end of file inside sample %lld (which starts at line %lld): "
                            "unterminated %s",
                            (long long)sc->ds->n, (long long)sc->cur.line,
                            sc->state == SC_STRING || sc->in_str ? "string" : "object or array");
        default:
            return scan_err(sc, end, "end of file: the JSON array has no ']'");
    }
}

static et_status scan_chunk(scanner *sc, const char *p, size_t n, int64_t base) {
    return sc->jsonl ? scan_jsonl(sc, p, n, base) : scan_array(sc, p, n, base);
}

// ---- paths -----------------------------------------------------------------------

// Normalizes an absolute path lexically ("//" and "." dropped, ".." pops; ".." at / stays /).
static char *normalize_abs(const char *p) {
    size_t n = strlen(p);
    char *out = malloc(n + 2);
    if (!out) return NULL;
    size_t o = 0;
    const char *s = p;
    while (*s) {
        while (*s == '/') s++;
        if (!*s) break;
        const char *e = s;
        while (*e && *e != '/') e++;
        size_t len = (size_t)(e - s);
        if (len == 1 && s[0] == '.') {
            // skip
        } else if (len == 2 && s[0] == '.' && s[1] == '.') {
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;  // drop the '/'
        } else {
            out[o++] = '/';
            memcpy(out + o, s, len);
            o += len;
        }
        s = e;
    }
    if (o == 0) out[o++] = '/';
    out[o] = '\0';
    return out;
}

// True when path is root or lies below it (both normalized, absolute).
static bool path_within(const char *path, const char *root) {
    size_t r = strlen(root);
    if (r == 1 && root[0] == '/') return path[0] == '/';
    return strncmp(path, root, r) == 0 && (path[r] == '/' || path[r] == '\0');
}

// Does the relative path climb above its start ("a/../../b")?
static bool relative_escapes(const char *p) {
    int64_t depth = 0;
    const char *s = p;
    while (*s) {
        while (*s == '/') s++;
        if (!*s) break;
        const char *e = s;
        while (*e && *e != '/') e++;
        size_t len = (size_t)(e - s);
        if (len == 2 && s[0] == '.' && s[1] == '.') {
            if (--depth < 0) return true;
        } else if (!(len == 1 && s[0] == '.')) {
            depth++;
        }
        s = e;
    }
    return false;
}

// Resolves a media path under the root. On failure returns a message fragment in why
// (without the sample prefix) and its code.
static et_code resolve_media(const et_dataset *ds, const char *p, bool allow_dir, char **out,
                             char *why, size_t why_len) {
    *out = NULL;
    if (!*p) {
        snprintf(why, why_len, "empty path");
        return ET_ERR_FORMAT;
    }
    char *cand;
    if (p[0] == '/') {
        char *norm = normalize_abs(p);
        if (!norm) goto nomem;
        bool in = path_within(norm, ds->root_given) || path_within(norm, ds->root_real);
        free(norm);
        if (!in) {
            snprintf(why, why_len, "'%s' escapes the data root %s", p, ds->root_given);
            return ET_ERR_INVALID;
        }
        cand = xstrdup(p);
    } else {
        if (relative_escapes(p)) {
            snprintf(why, why_len, "'%s' escapes the data root %s ('..')", p, ds->root_given);
            return ET_ERR_INVALID;
        }
        size_t n = strlen(ds->root_real) + strlen(p) + 2;
        cand = malloc(n);
        if (cand) snprintf(cand, n, "%s/%s", ds->root_real, p);
    }
    if (!cand) goto nomem;
    char *real = realpath(cand, NULL);
    int err = errno;
    free(cand);
    if (!real) {
        if (err == ENOENT || err == ENOTDIR) {
            snprintf(why, why_len, "'%s': no such file under the data root %s", p, ds->root_given);
            return ET_ERR_MISSING;
        }
        snprintf(why, why_len, "'%s': %s", p, strerror(err));
        return ET_ERR_IO;
    }
    if (!path_within(real, ds->root_real)) {
        snprintf(why, why_len, "'%s' escapes the data root %s (it resolves to %s)", p,
                 ds->root_given, real);
        free(real);
        return ET_ERR_INVALID;
    }
    struct stat st;
    if (stat(real, &st) != 0 || !(S_ISREG(st.st_mode) || (allow_dir && S_ISDIR(st.st_mode)))) {
        snprintf(why, why_len, "'%s' is not a regular file%s", p,
                 allow_dir ? " or a directory of frames" : "");
        free(real);
        return ET_ERR_IO;
    }
    *out = real;
    return ET_OK;
nomem:
    snprintf(why, why_len, "out of memory");
    return ET_ERR_NOMEM;
}

// ---- open / close ----------------------------------------------------------------

static et_status setup_root(et_dataset *ds, const char *root) {
    char *abs_root;
    if (root[0] == '/') {
        abs_root = normalize_abs(root);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd)))
            return et_err(ET_ERR_IO, "%s: getcwd failed: %s", ds->name, strerror(errno));
        size_t n = strlen(cwd) + strlen(root) + 2;
        char *tmp = malloc(n);
        if (!tmp) return et_err(ET_ERR_NOMEM, "%s: out of memory", ds->name);
        snprintf(tmp, n, "%s/%s", cwd, root);
        abs_root = normalize_abs(tmp);
        free(tmp);
    }
    if (!abs_root) return et_err(ET_ERR_NOMEM, "%s: out of memory", ds->name);
    ds->root_given = abs_root;
    ds->root_real = realpath(root, NULL);
    struct stat st;
    if (!ds->root_real || stat(ds->root_real, &st) != 0 || !S_ISDIR(st.st_mode))
        return et_err(ET_ERR_MISSING, "%s: data root %s is not a directory", ds->name, root);
    return NULL;
}

static et_status dataset_init(et_dataset *ds, const char *name, const et_dataset_opts *opts,
                              const char *default_root) {
    ds->fd = -1;
    ds->name = xstrdup(name);
    if (!ds->name) return et_err(ET_ERR_NOMEM, "%s: out of memory", name);
    if (opts) {
        ds->require_answer = opts->require_answer;
        ds->skip_media_check = opts->skip_media_check;
        ds->landmark_dim = opts->landmark_dim;
        ds->landmark_bound = opts->landmark_bound;
        if (opts->landmark_dim < 0)
            return et_err(ET_ERR_INVALID, "%s: landmark_dim %lld < 0", name,
                          (long long)opts->landmark_dim);
    }
    return setup_root(ds, opts && opts->data_root ? opts->data_root : default_root);
}

static void scanner_init(scanner *sc, et_dataset *ds, bool jsonl, int64_t start) {
    memset(sc, 0, sizeof(*sc));
    sc->ds = ds;
    sc->jsonl = jsonl;
    sc->state = SC_START;
    sc->line = 1;
    sc->line_start = start;  // a BOM does not count as a column
}

// Decides the format from the name and the first non-blank byte; returns the BOM length.
static bool detect_jsonl(const char *name, const char *head, size_t n, int64_t *start) {
    *start = 0;
    if (n >= 3 && (uint8_t)head[0] == 0xEF && (uint8_t)head[1] == 0xBB && (uint8_t)head[2] == 0xBF)
        *start = 3;
    if (ends_with(name, ".jsonl")) return true;
    for (size_t i = (size_t)*start; i < n; i++)
        if (!is_ws((unsigned char)head[i])) return head[i] != '[';
    return false;
}

static et_status finish_open(et_dataset *ds) {
    if (ds->n == 0) return et_err(ET_ERR_FORMAT, "%s: no samples", ds->name);
    return NULL;
}

static et_status run_scan(et_dataset *ds) {
    char *buf = malloc(65536);
    if (!buf) return et_err(ET_ERR_NOMEM, "%s: out of memory", ds->name);
    et_status s = NULL;
    scanner sc;
    size_t got = 0;
    if (ds->fd >= 0) {  // the first chunk decides the format
        for (;;) {
            ssize_t r = pread(ds->fd, buf + got, 65536 - got, (off_t)got);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                s = et_err(ET_ERR_IO, "%s: read failed: %s", ds->name, strerror(errno));
                goto out;
            }
            if (r == 0) break;
            got += (size_t)r;
            if (got == 65536) break;
        }
    } else {
        got = ds->mem_len < 65536 ? ds->mem_len : 65536;
        memcpy(buf, ds->mem, got);
    }
    int64_t start;
    bool jsonl = detect_jsonl(ds->name, buf, got, &start);
    scanner_init(&sc, ds, jsonl, start);
    sc.stack_cap = 64;
    sc.stack = malloc(sc.stack_cap);
    if (!sc.stack) {
        s = et_err(ET_ERR_NOMEM, "%s: out of memory", ds->name);
        goto out;
    }
    if (ds->fd < 0) {
        s = scan_chunk(&sc, ds->mem + start, ds->mem_len - (size_t)start, start);
        if (!s) s = scan_finish(&sc, (int64_t)ds->mem_len);
    } else {
        int64_t off = 0;
        size_t skip = (size_t)start;
        while (!s && got > 0) {
            s = scan_chunk(&sc, buf + skip, got - skip, off + (int64_t)skip);
            off += (int64_t)got;
            skip = 0;
            if (s) break;
            got = 0;
            for (;;) {
                ssize_t r = pread(ds->fd, buf, 65536, (off_t)off);
                if (r < 0 && errno == EINTR) continue;
                if (r < 0) s = et_err(ET_ERR_IO, "%s: read failed: %s", ds->name, strerror(errno));
                if (r > 0) got = (size_t)r;
                break;
            }
        }
        if (!s) s = scan_finish(&sc, off);
    }
    free(sc.stack);
    if (!s) s = finish_open(ds);
out:
    free(buf);
    return s;
}

et_status et_dataset_open(const char *path, const et_dataset_opts *opts, et_dataset **out) {
    *out = NULL;
    et_dataset *ds = calloc(1, sizeof(*ds));
    if (!ds) return et_err(ET_ERR_NOMEM, "%s: out of memory", path);
    char *dir = xstrdup(path);
    if (!dir) {
        free(ds);
        return et_err(ET_ERR_NOMEM, "%s: out of memory", path);
    }
    et_status s = dataset_init(ds, path, opts, dirname(dir));
    free(dir);
    if (s) goto fail;
    ds->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ds->fd < 0) {
        s = et_err(errno == ENOENT ? ET_ERR_MISSING : ET_ERR_IO, "%s: cannot open: %s", path,
                   strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(ds->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s = et_err(ET_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    s = run_scan(ds);
    if (s) goto fail;
    *out = ds;
    return NULL;
fail:
    et_dataset_close(ds);
    return s;
}

et_status et_dataset_open_memory(const void *buf, size_t len, const char *name,
                                 const et_dataset_opts *opts, et_dataset **out) {
    *out = NULL;
    et_dataset *ds = calloc(1, sizeof(*ds));
    if (!ds) return et_err(ET_ERR_NOMEM, "%s: out of memory", name);
    et_status s = dataset_init(ds, name, opts, ".");
    if (s) goto fail;
    ds->mem = malloc(len ? len : 1);
    if (!ds->mem) {
        s = et_err(ET_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    if (len) memcpy(ds->mem, buf, len);
    ds->mem_len = len;
    s = run_scan(ds);
    if (s) goto fail;
    *out = ds;
    return NULL;
fail:
    et_dataset_close(ds);
    return s;
}

void et_dataset_close(et_dataset *ds) {
    if (!ds) return;
    if (ds->fd >= 0) close(ds->fd);
    free(ds->mem);
    free(ds->name);
    free(ds->root_real);
    free(ds->root_given);
    free(ds->locs);
    free(ds);
}

int64_t et_dataset_size(const et_dataset *ds) { return ds->n; }
const char *et_dataset_name(const et_dataset *ds) { return ds->name; }

// ---- one sample --------------------------------------------------------------------

void et_sample_free(et_sample *s) {
    if (!s) return;
    free(s->id);
    free(s->image);
    free(s->video);
    free(s->landmark_path);
    free(s->landmark);
    free(s->age);
    free(s->gender);
    free(s->race);
    free(s->label);
    free(s->gpt4);
    free(s->source);
    for (int i = 0; i < s->n_turns; i++) {
        free(s->turns[i].from);
        free(s->turns[i].value);
    }
    free(s->turns);
    memset(s, 0, sizeof(*s));
    s->age_years = NAN;
}

const char *et_sample_answer(const et_sample *s) {
    for (int i = 0; i < s->n_turns; i++)
        if (s->turns[i].role == ET_ROLE_ASSISTANT) return s->turns[i].value;
    return NULL;
}

typedef struct {
    const et_dataset *ds;
    const sample_loc *loc;
    int64_t index;
    et_sample *out;
    const char *text;  // the sample's JSON text (loc->len bytes)
} ctx;

static et_status sample_err(const ctx *c, et_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static et_status sample_err(const ctx *c, et_code code, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->out->id)
        return et_err(code, "%s:%lld: sample %lld (id \"%.100s\"): %s", c->ds->name,
                      (long long)c->loc->line, (long long)c->index, c->out->id, msg);
    return et_err(code, "%s:%lld: sample %lld: %s", c->ds->name, (long long)c->loc->line,
                  (long long)c->index, msg);
}

#define OOM(c) sample_err((c), ET_ERR_NOMEM, "out of memory")

// Optional string field: absent/null -> NULL; a string -> copy; else a type error.
static et_status get_str(const ctx *c, const cJSON *obj, const char *key, char **dst,
                         const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsString(v))
        return sample_err(c, ET_ERR_FORMAT, "field '%s%s' must be a string, got %s", where, key,
                          json_type_name(v));
    *dst = xstrdup(v->valuestring);
    return *dst ? NULL : OOM(c);
}

// A string or a number (-> its decimal text).
static et_status get_str_or_num(const ctx *c, const cJSON *obj, const char *key, char **dst,
                                const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsNumber(v))
        *dst = number_text(v->valuedouble);
    else if (cJSON_IsString(v))
        *dst = xstrdup(v->valuestring);
    else
        return sample_err(c, ET_ERR_FORMAT, "field '%s%s' must be a string or a number, got %s",
                          where, key, json_type_name(v));
    return *dst ? NULL : OOM(c);
}

static et_status get_media(const ctx *c, const cJSON *obj, const char *key, char **dst) {
    char *rel = NULL;
    ET_TRY(get_str(c, obj, key, &rel, ""));
    if (!rel) return NULL;
    if (c->ds->skip_media_check) {
        *dst = rel;
        return NULL;
    }
    char why[PATH_MAX + 256];
    // a video may be a directory of frame images (data/video.h)
    et_code code = resolve_media(c->ds, rel, !strcmp(key, "video"), dst, why, sizeof(why));
    free(rel);
    if (code != ET_OK) return sample_err(c, code, "field '%s': %s", key, why);
    return NULL;
}

// Values outside [-landmark_bound, landmark_bound] (when set): pixel coordinates where
// normalised ones are expected.
static et_status check_landmark_range(const ctx *c, const char *what) {
    const double b = c->ds->landmark_bound;
    for (int64_t i = 0; b > 0 && i < c->out->n_landmark; i++)
        if (fabs(c->out->landmark[i]) > b)
            return sample_err(c, ET_ERR_FORMAT,
                              "field 'landmark': %s holds %g at index %lld, outside [-%g, %g]: "
                              "landmarks are normalised image coordinates, x / width * 2 - 1 "
                              "(pixel coordinates?)",
                              what, (double)c->out->landmark[i], (long long)i, b, b);
    return NULL;
}

static et_status check_landmark_dim(const ctx *c, const char *what) {
    int64_t want = c->ds->landmark_dim;
    if (want && c->out->n_landmark != want)
        return sample_err(c, ET_ERR_FORMAT, "field 'landmark': %s has %lld floats, expected %lld",
                          what, (long long)c->out->n_landmark, (long long)want);
    return check_landmark_range(c, what);
}

static et_status get_landmark(const ctx *c, const cJSON *obj) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "landmark");
    if (!v || cJSON_IsNull(v)) return NULL;
    et_sample *o = c->out;
    if (cJSON_IsString(v)) {
        char why[PATH_MAX + 256];
        et_code code =
            resolve_media(c->ds, v->valuestring, false, &o->landmark_path, why, sizeof(why));
        if (code != ET_OK) return sample_err(c, code, "field 'landmark': %s", why);
        int ndim;
        int64_t shape[ET_NPY_MAX_DIMS];
        et_status s = et_npy_read_f32(o->landmark_path, &o->landmark, &ndim, shape);
        if (s) {
            et_status e =
                sample_err(c, et_status_code(s), "field 'landmark': %s", et_status_msg(s));
            et_status_free(s);
            return e;
        }
        int64_t count = 1;
        for (int i = 0; i < ndim; i++) count *= shape[i];
        for (int64_t i = 0; i < count; i++)
            if (!isfinite(o->landmark[i]))
                return sample_err(c, ET_ERR_FORMAT,
                                  "field 'landmark': %s holds %s at index %lld (landmarks must "
                                  "be finite numbers)",
                                  o->landmark_path, isnan(o->landmark[i]) ? "NaN" : "Inf",
                                  (long long)i);
        o->n_landmark = 1;
        char shp[160];
        int k = snprintf(shp, sizeof(shp), "'%s' of shape (", v->valuestring);
        for (int i = 0; i < ndim; i++) {
            o->n_landmark *= shape[i];
            if (k < (int)sizeof(shp))
                k += snprintf(shp + k, sizeof(shp) - (size_t)k, "%s%lld", i ? ", " : "",
                              (long long)shape[i]);
        }
        if (k < (int)sizeof(shp)) snprintf(shp + k, sizeof(shp) - (size_t)k, ")");
        // a video's landmarks may be per frame: [T, landmark_dim]
        const int64_t want = c->ds->landmark_dim;
        if (o->video && want > 0 && ndim == 2 && shape[1] == want && shape[0] >= 1) {
            o->landmark_frames = shape[0];
            return check_landmark_range(c, shp);
        }
        return check_landmark_dim(c, shp);
    }
    if (!cJSON_IsArray(v))
        return sample_err(c, ET_ERR_FORMAT,
                          "field 'landmark' must be a .npy path or a list of numbers, got %s",
                          json_type_name(v));
    // count, then copy: numbers and lists of numbers, flattened
    int64_t n = 0, i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (cJSON_IsNumber(e)) {
            if (fabs(e->valuedouble) > FLT_MAX)
                return sample_err(c, ET_ERR_FORMAT, "field 'landmark'[%lld] = %g is out of range",
                                  (long long)i, e->valuedouble);
            n++;
        } else if (cJSON_IsArray(e)) {
            for (const cJSON *f = e->child; f; f = f->next) {
                if (!cJSON_IsNumber(f))
                    return sample_err(c, ET_ERR_FORMAT,
                                      "field 'landmark'[%lld] must hold numbers, got %s",
                                      (long long)i, json_type_name(f));
                if (fabs(f->valuedouble) > FLT_MAX)
                    return sample_err(c, ET_ERR_FORMAT,
                                      "field 'landmark'[%lld] holds %g, out of range", (long long)i,
                                      f->valuedouble);
                n++;
            }
        } else {
            return sample_err(c, ET_ERR_FORMAT,
                              "field 'landmark'[%lld] must be a number or a list of numbers, got "
                              "%s",
                              (long long)i, json_type_name(e));
        }
    }
    if (n == 0) return sample_err(c, ET_ERR_FORMAT, "field 'landmark' is an empty list");
    o->landmark = malloc((size_t)n * sizeof(float));
    if (!o->landmark) return OOM(c);
    int64_t k = 0;
    for (const cJSON *e = v->child; e; e = e->next) {
        if (cJSON_IsNumber(e))
            o->landmark[k++] = (float)e->valuedouble;
        else
            for (const cJSON *f = e->child; f; f = f->next)
                o->landmark[k++] = (float)f->valuedouble;
    }
    o->n_landmark = n;
    return check_landmark_dim(c, "the inline list");
}

static et_status get_attributes(const ctx *c, const cJSON *obj) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "attributes");
    if (!a || cJSON_IsNull(a)) return NULL;
    if (!cJSON_IsObject(a))
        return sample_err(c, ET_ERR_FORMAT, "field 'attributes' must be an object, got %s",
                          json_type_name(a));
    et_sample *o = c->out;
    o->has_attributes = true;
    ET_TRY(get_str_or_num(c, a, "age", &o->age, "attributes."));
    if (o->age) {
        char *end;
        double v = strtod(o->age, &end);
        while (*end && is_ws((unsigned char)*end)) end++;
        if (end != o->age && !*end && isfinite(v)) o->age_years = v;
    }
    ET_TRY(get_str(c, a, "gender", &o->gender, "attributes."));
    ET_TRY(get_str(c, a, "race", &o->race, "attributes."));
    return NULL;
}

static bool blank(const char *s) {
    for (; *s; s++)
        if (!is_ws((unsigned char)*s)) return false;
    return true;
}

static et_status get_conversations(const ctx *c, const cJSON *obj) {
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(obj, "conversations");
    if (!conv || cJSON_IsNull(conv)) {
        if (c->ds->require_answer)
            return sample_err(c, ET_ERR_FORMAT, "no 'conversations' (required for training)");
        return NULL;
    }
    if (!cJSON_IsArray(conv))
        return sample_err(c, ET_ERR_FORMAT, "field 'conversations' must be an array, got %s",
                          json_type_name(conv));
    int n = cJSON_GetArraySize(conv);
    et_sample *o = c->out;
    if (n > 0) {
        o->turns = calloc((size_t)n, sizeof(et_turn));
        if (!o->turns) return OOM(c);
    }
    bool answered = false;
    int i = 0;
    for (const cJSON *t = conv->child; t; t = t->next, i++) {
        if (!cJSON_IsObject(t))
            return sample_err(c, ET_ERR_FORMAT, "conversations[%d] must be an object, got %s", i,
                              json_type_name(t));
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(t, "from");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(t, "value");
        if (!cJSON_IsString(from))
            return sample_err(c, ET_ERR_FORMAT, "conversations[%d].from must be a string, got %s",
                              i, from ? json_type_name(from) : "nothing");
        if (!cJSON_IsString(value))
            return sample_err(c, ET_ERR_FORMAT, "conversations[%d].value must be a string, got %s",
                              i, value ? json_type_name(value) : "nothing");
        const size_t vlen = strlen(value->valuestring);
        const size_t bad = et_utf8_invalid_at((const unsigned char *)value->valuestring, vlen);
        if (bad != vlen)
            return sample_err(c, ET_ERR_FORMAT,
                              "conversations[%d].value is not valid UTF-8 (byte 0x%02x at byte "
                              "%zu of the text); fix the file's encoding",
                              i, (unsigned char)value->valuestring[bad], bad);
        const char *f = from->valuestring;
        et_role role;
        if (!strcmp(f, "human") || !strcmp(f, "user"))
            role = ET_ROLE_USER;
        else if (!strcmp(f, "gpt") || !strcmp(f, "assistant"))
            role = ET_ROLE_ASSISTANT;
        else if (!strcmp(f, "system"))
            role = ET_ROLE_SYSTEM;
        else
            return sample_err(c, ET_ERR_FORMAT,
                              "conversations[%d].from is '%.40s' (expected human, user, gpt, "
                              "assistant or system)",
                              i, f);
        // expected: [system] user assistant user assistant ...
        int first = o->n_turns > 0 && o->turns[0].role == ET_ROLE_SYSTEM ? 1 : 0;
        et_role want = ((i - first) % 2 == 0) ? ET_ROLE_USER : ET_ROLE_ASSISTANT;
        if (role == ET_ROLE_SYSTEM && i != 0)
            return sample_err(c, ET_ERR_FORMAT,
                              "conversations[%d] is a system turn; only the first turn may be", i);
        if (role != ET_ROLE_SYSTEM && role != want)
            return sample_err(c, ET_ERR_FORMAT,
                              "conversations[%d] is from '%.40s' but a %s turn was expected "
                              "(turns must alternate human, gpt, human, ...)",
                              i, f, want == ET_ROLE_USER ? "human" : "gpt");
        et_turn *tt = &o->turns[o->n_turns];
        tt->role = role;
        tt->from = xstrdup(f);
        tt->value = xstrdup(value->valuestring);
        o->n_turns++;
        if (!tt->from || !tt->value) return OOM(c);
        if (role == ET_ROLE_ASSISTANT && !blank(tt->value)) answered = true;
    }
    if (c->ds->require_answer && !answered)
        return sample_err(c, ET_ERR_FORMAT,
                          "no answer: conversations has no gpt turn with non-empty text");
    return NULL;
}

// Line and column (1-based) of byte pos of a sample's text.
static void pos_to_line_col(const sample_loc *loc, const char *text, int64_t pos, int64_t *line,
                            int64_t *col) {
    *line = loc->line;
    int64_t last_nl = -1;
    for (int64_t i = 0; i < pos; i++)
        if (text[i] == '\n') {
            (*line)++;
            last_nl = i;
        }
    *col = last_nl < 0 ? loc->col + pos : pos - last_nl;
}

static et_status parse_sample(const ctx *c, const cJSON *j) {
    et_sample *o = c->out;
    if (!cJSON_IsObject(j))
        return sample_err(c, ET_ERR_FORMAT, "a sample must be a JSON object, got %s",
                          json_type_name(j));
    ET_TRY(get_str_or_num(c, j, "id", &o->id, ""));
    // cJSON would cut a string at a \u0000 escape, and keep the first of duplicate keys
    // where Python's json keeps the last: both make the sample mean something else here
    const size_t nul = et_json_find_nul_escape(c->text, (size_t)c->loc->len);
    if (nul != (size_t)c->loc->len) {
        int64_t line, col;
        pos_to_line_col(c->loc, c->text, (int64_t)nul, &line, &col);
        return sample_err(c, ET_ERR_FORMAT,
                          "a string holds the escape \\u0000 (a NUL character) at line %lld, "
                          "column %lld, which would cut its text short; remove it",
                          (long long)line, (long long)col);
    }
    char path[200];
    const char *dup = et_json_find_duplicate(j, path, sizeof path);
    if (dup)
        return sample_err(c, ET_ERR_FORMAT,
                          "duplicate key \"%.60s\" at %s (Python's json would take the last one, "
                          "emotune the first: remove one of them)",
                          dup, path);
    ET_TRY(get_media(c, j, "image", &o->image));
    ET_TRY(get_media(c, j, "video", &o->video));
    ET_TRY(get_attributes(c, j));
    ET_TRY(get_str_or_num(c, j, "label", &o->label, ""));
    ET_TRY(get_str(c, j, "gpt4", &o->gpt4, ""));
    ET_TRY(get_str(c, j, "source", &o->source, ""));
    ET_TRY(get_conversations(c, j));
    ET_TRY(get_landmark(c, j));
    return NULL;
}

et_status et_dataset_get(const et_dataset *ds, int64_t index, et_sample *out) {
    memset(out, 0, sizeof(*out));
    out->age_years = NAN;
    if (index < 0 || index >= ds->n)
        return et_err(ET_ERR_INVALID, "%s: sample index %lld out of range [0, %lld)", ds->name,
                      (long long)index, (long long)ds->n);
    const sample_loc *loc = &ds->locs[index];
    out->index = index;
    ctx c = {ds, loc, index, out, NULL};
    if (loc->len > ET_DATASET_MAX_SAMPLE_BYTES)
        return sample_err(&c, ET_ERR_NOMEM, "%lld bytes of JSON, more than the %lld-byte limit",
                          (long long)loc->len, (long long)ET_DATASET_MAX_SAMPLE_BYTES);
    char *text = malloc((size_t)loc->len + 1);
    if (!text) return OOM(&c);
    et_status s = ds_read_at(ds, loc->off, text, (size_t)loc->len);
    if (s) {
        free(text);
        return s;
    }
    text[loc->len] = '\0';
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, (size_t)loc->len, &end, 0);
    int64_t bad = -1;
    const char *what = "JSON syntax error";
    char deep[80];
    if (!j) {
        bad = end ? (int64_t)(end - text) : 0;
        if (et_json_too_deep(text, (size_t)bad + 1)) {
            snprintf(deep, sizeof deep, "JSON nesting deeper than %d levels (the parser's limit)",
                     ET_JSON_MAX_DEPTH);
            what = deep;
        }
    } else {
        int64_t p = (int64_t)(end - text);
        while (p < loc->len && is_ws((unsigned char)text[p])) p++;
        if (p < loc->len) {
            bad = p;
            what = "JSON syntax error: unexpected text after the sample";
        }
    }
    if (bad >= 0) {
        int64_t line, col;
        pos_to_line_col(loc, text, bad, &line, &col);
        s = et_err(ET_ERR_FORMAT, "%s:%lld:%lld: sample %lld: %s", ds->name, (long long)line,
                   (long long)col, (long long)index, what);
        cJSON_Delete(j);
        free(text);
        return s;
    }
    c.text = text;
    s = parse_sample(&c, j);
    free(text);
    cJSON_Delete(j);
    if (s) et_sample_free(out);
    return s;
}

// ---- lengths for grouping -----------------------------------------------------------

// Python's str.isspace() for the code point at p (UTF-8); *len gets its byte length.
static bool py_space(const unsigned char *p, const unsigned char *end, int *len) {
    unsigned c = p[0];
    *len = 1;
    if (c < 0x80) return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20);
    uint32_t cp;
    int n;
    if ((c & 0xe0) == 0xc0) {
        cp = c & 0x1f;
        n = 2;
    } else if ((c & 0xf0) == 0xe0) {
        cp = c & 0x0f;
        n = 3;
    } else if ((c & 0xf8) == 0xf0) {
        cp = c & 0x07;
        n = 4;
    } else {
        return false;  // a stray continuation byte: part of a word
    }
    if (end - p < n) return false;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return false;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    *len = n;
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

static int64_t count_words(const char *s) {
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    int64_t words = 0;
    bool in_word = false;
    while (p < end) {
        int len;
        bool sp = py_space(p, end, &len);
        if (!sp && !in_word) words++;
        in_word = !sp;
        p += len;
    }
    return words;
}

et_status et_dataset_modality_lengths(const et_dataset *ds, int64_t *lengths) {
    for (int64_t i = 0; i < ds->n; i++) {
        const sample_loc *loc = &ds->locs[i];
        lengths[i] = 0;
        if (loc->len > ET_DATASET_MAX_SAMPLE_BYTES) continue;
        char *text = malloc((size_t)loc->len + 1);
        if (!text) return et_err(ET_ERR_NOMEM, "%s: out of memory", ds->name);
        et_status s = ds_read_at(ds, loc->off, text, (size_t)loc->len);
        if (s) {
            free(text);
            return s;
        }
        cJSON *j = cJSON_ParseWithLengthOpts(text, (size_t)loc->len, NULL, 0);
        free(text);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            continue;
        }
        int64_t words = 0;
        const cJSON *conv = cJSON_GetObjectItemCaseSensitive(j, "conversations");
        if (cJSON_IsArray(conv))
            for (const cJSON *t = conv->child; t; t = t->next) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, "value");
                if (cJSON_IsString(v)) words += count_words(v->valuestring);
            }
        const cJSON *img = cJSON_GetObjectItemCaseSensitive(j, "image");
        const cJSON *vid = cJSON_GetObjectItemCaseSensitive(j, "video");
        bool media = (img && !cJSON_IsNull(img)) || (vid && !cJSON_IsNull(vid));
        lengths[i] = media ? words : -words;
        cJSON_Delete(j);
    }
    return NULL;
}

// ---- mixtures ----------------------------------------------------------------------

struct et_mixture {
    int n;
    et_dataset **ds;  // (n), borrowed
    int64_t *count;   // (n) samples drawn per epoch
    int64_t total;
    int32_t *which;  // (total) dataset of each position
    int64_t *idx;    // (total) sample index in it
};

static uint64_t mix64(uint64_t z) {  // splitmix64's finalizer
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Uniform integer in [0, bound) from stream `key`, draw number pos.
static uint64_t draw_below(uint64_t key, uint64_t pos, uint64_t bound) {
    uint64_t u = (uint64_t)et_rng_u32(key, 2 * pos) << 32 | et_rng_u32(key, 2 * pos + 1);
    return (uint64_t)(((unsigned __int128)u * bound) >> 64);
}

et_status et_mixture_create(et_dataset *const *datasets, const double *weights, int n,
                            et_mixture **out) {
    *out = NULL;
    if (n < 1) return et_err(ET_ERR_INVALID, "mixture: no datasets");
    et_mixture *m = calloc(1, sizeof(*m));
    if (!m) return et_err(ET_ERR_NOMEM, "mixture: out of memory");
    m->n = n;
    m->ds = calloc((size_t)n, sizeof(*m->ds));
    m->count = calloc((size_t)n, sizeof(*m->count));
    if (!m->ds || !m->count) {
        et_mixture_free(m);
        return et_err(ET_ERR_NOMEM, "mixture: out of memory");
    }
    for (int i = 0; i < n; i++) {
        double w = weights[i];
        m->ds[i] = datasets[i];
        if (!(w >= 0) || !isfinite(w)) {
            et_mixture_free(m);
            return et_err(ET_ERR_INVALID, "mixture: weight %g of %s must be finite and >= 0", w,
                          et_dataset_name(datasets[i]));
        }
        double c = round(w * (double)et_dataset_size(datasets[i]));
        if (c > (double)((int64_t)1 << 40)) {
            et_mixture_free(m);
            return et_err(ET_ERR_INVALID, "mixture: weight %g of %s draws too many samples", w,
                          et_dataset_name(datasets[i]));
        }
        m->count[i] = (int64_t)c;
        m->total += m->count[i];
    }
    if (m->total == 0) {
        et_mixture_free(m);
        return et_err(ET_ERR_INVALID, "mixture: the weights draw no samples");
    }
    m->which = malloc((size_t)m->total * sizeof(*m->which));
    m->idx = malloc((size_t)m->total * sizeof(*m->idx));
    if (!m->which || !m->idx) {
        et_mixture_free(m);
        return et_err(ET_ERR_NOMEM, "mixture: out of memory for %lld entries", (long long)m->total);
    }
    et_status s = et_mixture_epoch(m, 0, 0);
    if (s) {
        et_mixture_free(m);
        return s;
    }
    *out = m;
    return NULL;
}

void et_mixture_free(et_mixture *m) {
    if (!m) return;
    free(m->ds);
    free(m->count);
    free(m->which);
    free(m->idx);
    free(m);
}

et_status et_mixture_epoch(et_mixture *m, uint64_t seed, int64_t epoch) {
    uint64_t key = mix64(seed ^ mix64((uint64_t)epoch ^ 0x6d697874757265ull));  // "mixture"
    int64_t k = 0;
    for (int d = 0; d < m->n; d++) {
        int64_t size = et_dataset_size(m->ds[d]);
        int64_t full = m->count[d] / size, rem = m->count[d] % size;
        for (int64_t r = 0; r < full; r++)
            for (int64_t i = 0; i < size; i++) {
                m->which[k] = d;
                m->idx[k++] = i;
            }
        if (rem == 0) continue;
        // a seeded subset of rem distinct samples: the first rem of a partial Fisher-Yates
        int64_t *perm = malloc((size_t)size * sizeof(*perm));
        if (!perm) return et_err(ET_ERR_NOMEM, "mixture: out of memory");
        for (int64_t i = 0; i < size; i++) perm[i] = i;
        uint64_t dkey = mix64(key ^ mix64((uint64_t)d + 1));
        for (int64_t i = 0; i < rem; i++) {
            int64_t j = i + (int64_t)draw_below(dkey, (uint64_t)i, (uint64_t)(size - i));
            int64_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int64_t i = 0; i < rem; i++) {
            m->which[k] = d;
            m->idx[k++] = perm[i];
        }
        free(perm);
    }
    ET_ASSERT(k == m->total, "mixture: filled %lld of %lld entries", (long long)k,
              (long long)m->total);
    uint64_t skey = mix64(key ^ 0x73687566666c65ull);  // "shuffle"
    for (int64_t i = m->total - 1; i > 0; i--) {
        int64_t j = (int64_t)draw_below(skey, (uint64_t)i, (uint64_t)i + 1);
        int32_t tw = m->which[i];
        m->which[i] = m->which[j];
        m->which[j] = tw;
        int64_t ti = m->idx[i];
        m->idx[i] = m->idx[j];
        m->idx[j] = ti;
    }
    return NULL;
}

int64_t et_mixture_size(const et_mixture *m) { return m->total; }

void et_mixture_locate(const et_mixture *m, int64_t i, int *dataset, int64_t *index) {
    ET_ASSERT(i >= 0 && i < m->total, "et_mixture_locate: position %lld outside [0, %lld)",
              (long long)i, (long long)m->total);
    *dataset = m->which[i];
    *index = m->idx[i];
}
