// train/io/hf_weights.c - see loader.h
#include "train/io/hf_weights.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct et_ckpt {
    char path[4096];
    et_st_file *file;   // single file, or
    et_st_index *index; // sharded
};

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

et_status et_ckpt_open(const char *dir, et_ckpt **out) {
    *out = NULL;
    et_ckpt *ck = calloc(1, sizeof(*ck));
    if (!ck) return et_err(ET_ERR_NOMEM, "out of memory opening %s", dir);
    char p[4096];
    et_status s = NULL;
    bool direct = is_file(dir);
    if (direct && ends_with(dir, ".safetensors")) {
        snprintf(ck->path, sizeof ck->path, "%s", dir);
        s = et_st_open(dir, &ck->file);
    } else if (direct && ends_with(dir, ".safetensors.index.json")) {
        snprintf(ck->path, sizeof ck->path, "%s", dir);
        s = et_st_index_open(dir, &ck->index);
    } else if (snprintf(p, sizeof p, "%s/model.safetensors", dir), is_file(p)) {
        snprintf(ck->path, sizeof ck->path, "%s", p);
        s = et_st_open(p, &ck->file);
    } else if (snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir), is_file(p)) {
        snprintf(ck->path, sizeof ck->path, "%s", p);
        s = et_st_index_open(p, &ck->index);
    } else {
        char b1[4096], b2[4096];
        snprintf(b1, sizeof b1, "%s/pytorch_model.bin", dir);
        snprintf(b2, sizeof b2, "%s/pytorch_model.bin.index.json", dir);
        bool pickle = is_file(b1) || is_file(b2) || (direct && ends_with(dir, ".bin"));
        free(ck);
        if (pickle)
            return et_err(ET_ERR_UNSUPPORTED,
                          "%s: only a pickle checkpoint (pytorch_model.bin) is there; emotune "
                          "never loads pickle. Convert it to safetensors first, e.g. in Python: "
                          "AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, "
                          "safe_serialization=True)",
                          dir);
        return et_err(ET_ERR_MISSING,
                      "%s: no model.safetensors or model.safetensors.index.json in the model "
                      "directory",
                      dir);
    }
    if (s) {
        free(ck);
        return s;
    }
    *out = ck;
    return NULL;
}

void et_ckpt_close(et_ckpt *ck) {
    if (!ck) return;
    et_st_close(ck->file);
    et_st_index_close(ck->index);
    free(ck);
}

const char *et_ckpt_path(const et_ckpt *ck) { return ck->path; }

int et_ckpt_num_tensors(const et_ckpt *ck) {
    return ck->file ? et_st_num_tensors(ck->file) : et_st_index_num_tensors(ck->index);
}

const char *et_ckpt_name(const et_ckpt *ck, int i) {
    return ck->file ? et_st_name(ck->file, i) : et_st_index_name(ck->index, i);
}

et_status et_ckpt_info_of(const et_ckpt *ck, const char *name, et_st_info *out) {
    return ck->file ? et_st_info_of(ck->file, name, out)
                    : et_st_index_info_of(ck->index, name, out);
}

static bool float_src(const char *dt) {
    return strcmp(dt, "F32") == 0 || strcmp(dt, "BF16") == 0 || strcmp(dt, "F16") == 0;
}

et_status et_ckpt_load(et_ckpt *ck, const char *name, et_dtype dtype, et_tensor **out) {
    *out = NULL;
    ET_ASSERT(dtype == ET_F32 || dtype == ET_BF16 || dtype == ET_F16,
              "et_ckpt_load: target dtype must be f32, bf16 or f16");
    et_st_info info;
    ET_TRY(et_ckpt_info_of(ck, name, &info));
    if (!float_src(info.dtype))
        return et_err(ET_ERR_FORMAT, "%s: tensor '%s' has dtype %s, expected F32, BF16 or F16",
                      ck->path, name, info.dtype);
    et_tensor *t = NULL;
    ET_TRY(ck->file ? et_st_load(ck->file, name, &t) : et_st_index_load(ck->index, name, &t));
    if (t->dtype != dtype) {
        et_tensor *c = et_empty(dtype, t->ndim, t->shape);
        et_copy_(c, t);
        et_release(t);
        t = c;
    }
    t->requires_grad = false;
    *out = t;
    return NULL;
}

// ---- catalogue matching ---------------------------------------------------------

enum { P_MISSING, P_SHAPE, P_DTYPE, P_UNEXPECTED, P_KINDS };
static const char *const k_kind_name[P_KINDS] = {"missing", "wrong shape", "wrong dtype",
                                                 "unexpected"};

typedef struct {
    int kind;
    char key[256];     // name with the layer index replaced by "{}"
    char detail[200];  // shapes / dtype, or ""
    long layer;        // -1 when the name has no "layers.N."
    bool done;
} problem;

static void fold_name(const char *name, char *key, size_t n, long *layer) {
    *layer = -1;
    const char *p = strstr(name, "layers.");
    if (p && isdigit((unsigned char)p[7])) {
        const char *d = p + 7, *e = d;
        while (isdigit((unsigned char)*e)) e++;
        if (*e == '.' && e - d < 9) {
            *layer = strtol(d, NULL, 10);
            snprintf(key, n, "%.*s{}%s", (int)(d - name), name, e);
            return;
        }
    }
    snprintf(key, n, "%s", name);
}

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (s->len + (size_t)n + 1 > s->cap) {
        s->cap = (s->len + (size_t)n + 1) * 2;
        char *nb = realloc(s->buf, s->cap);
        ET_ASSERT(nb, "out of host memory");
        s->buf = nb;
    }
    va_start(ap, fmt);
    vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

// One group: problems[i] and every later one with the same kind/key/detail.
static void format_group(problem *pr, int np, int i, sbuf *out, int *count) {
    sbuf layers = {0};
    int cnt = 0;
    long run_start = -1, run_end = -2;
    for (int j = i; j < np; j++) {
        problem *q = &pr[j];
        if (q->done || q->kind != pr[i].kind || strcmp(q->key, pr[i].key) ||
            strcmp(q->detail, pr[i].detail))
            continue;
        q->done = true;
        cnt++;
        if (q->layer < 0) continue;
        if (q->layer == run_end + 1) {
            run_end = q->layer;
            continue;
        }
        if (run_start >= 0)
            sb_add(&layers, run_start == run_end ? "%s%ld" : "%s%ld-%ld", layers.len ? "," : "",
                   run_start, run_end);
        run_start = run_end = q->layer;
    }
    if (run_start >= 0)
        sb_add(&layers, run_start == run_end ? "%s%ld" : "%s%ld-%ld", layers.len ? "," : "",
               run_start, run_end);
    if (pr[i].layer >= 0) {
        const char *hole = strstr(pr[i].key, "{}");
        sb_add(out, "%.*s{%s}%s", (int)(hole - pr[i].key), pr[i].key, layers.buf, hole + 2);
    } else {
        sb_add(out, "%s", pr[i].key);
    }
    if (pr[i].detail[0]) sb_add(out, " %s", pr[i].detail);
    free(layers.buf);
    *count = cnt;
}

static et_status report(const char *path, problem *pr, int np) {
    // Sort-free grouping: visit kinds in order, groups in first-seen order.
    sbuf msg = {0};
    int kind_count[P_KINDS] = {0};
    for (int i = 0; i < np; i++) kind_count[pr[i].kind]++;
    const size_t limit = 1024 - 80 - strlen(path) % 400;
    int shown = 0;
    bool truncated = false;
    for (int k = 0; k < P_KINDS && !truncated; k++) {
        if (!kind_count[k]) continue;
        sb_add(&msg, "%s%s (%d): ", msg.len ? "; " : "", k_kind_name[k], kind_count[k]);
        bool first = true;
        for (int i = 0; i < np; i++) {
            if (pr[i].kind != k || pr[i].done) continue;
            sbuf g = {0};
            int cnt = 0;
            format_group(pr, np, i, &g, &cnt);
            if (msg.len + g.len + 2 > limit) {
                free(g.buf);
                truncated = true;
                break;
            }
            sb_add(&msg, "%s%s", first ? "" : ", ", g.buf);
            free(g.buf);
            first = false;
            shown += cnt;
        }
    }
    if (truncated) sb_add(&msg, " ... (%d more)", np - shown);
    et_status s = et_err(kind_count[P_MISSING] ? ET_ERR_MISSING : ET_ERR_FORMAT,
                         "%s: checkpoint does not match the model: %s", path, msg.buf);
    free(msg.buf);
    return s;
}

static bool ignored(const char *name, const et_ckpt_ignore *ig) {
    if (!ig) return false;
    for (int i = 0; i < ig->n_suffix; i++)
        if (ends_with(name, ig->suffix[i])) return true;
    for (int i = 0; i < ig->n_names; i++)
        if (strcmp(name, ig->names[i]) == 0) return true;
    for (int i = 0; i < ig->n_prefix; i++)
        if (strncmp(name, ig->prefix[i], strlen(ig->prefix[i])) == 0) return true;
    return false;
}

et_st_file *et_ckpt_st_file(et_ckpt *ck) { return ck->file; }
et_st_index *et_ckpt_st_index(et_ckpt *ck) { return ck->index; }

et_status et_ckpt_load_all(et_ckpt *ck, int n, const et_ckpt_want *want, et_dtype dtype,
                           int n_ignore_suffix, const char *const *ignore_suffix,
                           int n_ignore_names, const char *const *ignore_names) {
    const et_ckpt_ignore ig = {n_ignore_suffix, ignore_suffix, n_ignore_names, ignore_names, 0,
                               NULL};
    return et_ckpt_load_all_ex(ck, n, want, dtype, &ig);
}

et_status et_ckpt_load_all_ex(et_ckpt *ck, int n, const et_ckpt_want *want, et_dtype dtype,
                              const et_ckpt_ignore *ignore) {
    int nt = et_ckpt_num_tensors(ck);
    problem *pr = calloc((size_t)(n + nt) + 1, sizeof(*pr));
    ET_ASSERT(pr, "out of host memory");
    int np = 0;
    for (int i = 0; i < n; i++) {
        et_st_info info;
        problem *p = &pr[np];
        fold_name(want[i].name, p->key, sizeof p->key, &p->layer);
        et_status s = et_ckpt_info_of(ck, want[i].name, &info);
        if (s) {
            et_status_free(s);
            p->kind = P_MISSING;
            np++;
            continue;
        }
        bool shape_ok = info.ndim == want[i].ndim;
        for (int d = 0; shape_ok && d < info.ndim; d++)
            shape_ok = info.shape[d] == want[i].shape[d];
        if (!shape_ok) {
            char a[80], b[80];
            shape_str(info.ndim, info.shape, a, sizeof a);
            shape_str(want[i].ndim, want[i].shape, b, sizeof b);
            p->kind = P_SHAPE;
            snprintf(p->detail, sizeof p->detail, "%s (expected %s)", a, b);
            np++;
        } else if (!float_src(info.dtype)) {
            p->kind = P_DTYPE;
            snprintf(p->detail, sizeof p->detail, "%s (expected F32, BF16 or F16)", info.dtype);
            np++;
        }
    }
    for (int i = 0; i < nt; i++) {
        const char *name = et_ckpt_name(ck, i);
        if (ignored(name, ignore)) continue;
        bool wanted = false;
        for (int j = 0; j < n && !wanted; j++) wanted = strcmp(name, want[j].name) == 0;
        if (wanted) continue;
        problem *p = &pr[np++];
        p->kind = P_UNEXPECTED;
        fold_name(name, p->key, sizeof p->key, &p->layer);
    }
    if (np) {
        et_status s = report(ck->path, pr, np);
        free(pr);
        return s;
    }
    free(pr);
    et_tensor **tmp = calloc((size_t)n + 1, sizeof(*tmp));
    ET_ASSERT(tmp, "out of host memory");
    for (int i = 0; i < n; i++) {
        et_status s = et_ckpt_load(ck, want[i].name, dtype, &tmp[i]);
        if (s) {
            for (int j = 0; j < i; j++) et_release(tmp[j]);
            free(tmp);
            return s;
        }
    }
    for (int i = 0; i < n; i++) *want[i].dst = tmp[i];
    free(tmp);
    return NULL;
}
