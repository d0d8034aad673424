// train/checkpoint.c - see checkpoint.h
#include "checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../core/fileio.h"
#include "../core/json_util.h"
#include "../core/log.h"
#include "../core/safetensors.h"

#define PATH_CAP 4096

// Test hook: EMOTUNE_CKPT_SLOW_MS sleeps between the files of a checkpoint, so tests can
// kill a run in the middle of a write.
static void slow_hook(void) {
    const char *e = getenv("EMOTUNE_CKPT_SLOW_MS");
    if (!e || !*e) return;
    long ms = strtol(e, NULL, 10);
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// step-NNNNNNNN exactly -> step, else -1.
static int64_t step_of(const char *name) {
    if (strncmp(name, "step-", 5) || strlen(name) != 13) return -1;
    int64_t v = 0;
    for (int i = 5; i < 13; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        v = v * 10 + (name[i] - '0');
    }
    return v;
}

// ---- checksums ----------------------------------------------------------------------

// The files a checkpoint records in state.json's "files" (name -> bytes and CRC-32).
#define N_CKPT_FILES 3
static const char *const ckpt_files[N_CKPT_FILES] = {"trainables.safetensors",
                                                     "optimizer.safetensors", "config.json"};

et_status et_trainckpt_file_crc32(const char *path, uint32_t *crc, int64_t *bytes) {
    *crc = 0, *bytes = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return et_err(errno == ENOENT ? ET_ERR_MISSING : ET_ERR_IO, "%s: cannot open: %s", path,
                      strerror(errno));
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        return et_err(ET_ERR_NOMEM, "%s: out of memory", path);
    }
    uLong c = crc32(0L, Z_NULL, 0);
    size_t got;
    while ((got = fread(buf, 1, CHUNK, f)) > 0) {
        c = crc32(c, buf, (uInt)got);
        *bytes += (int64_t)got;
    }
    const bool bad = ferror(f) != 0;
    fclose(f);
    free(buf);
    if (bad) return et_err(ET_ERR_IO, "%s: read error while checksumming", path);
    *crc = (uint32_t)c;
    return NULL;
}

// Adds {"bytes": N, "crc32": "xxxxxxxx"} for dir/name to files.
static et_status record_file(cJSON *files, const char *dir, const char *name) {
    char p[PATH_CAP + 64], hex[16];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    uint32_t crc = 0;
    int64_t bytes = 0;
    ET_TRY(et_trainckpt_file_crc32(p, &crc, &bytes));
    cJSON *e = cJSON_AddObjectToObject(files, name);
    cJSON_AddNumberToObject(e, "bytes", (double)bytes);
    snprintf(hex, sizeof hex, "%08x", (unsigned)crc);
    cJSON_AddStringToObject(e, "crc32", hex);
    return NULL;
}

// One entry of state.json's "files" against the file on disk.
static et_status verify_file(const char *dir, const char *state_path, const cJSON *e) {
    const char *name = e->string;
    if (!name || !*name || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
        return et_err(ET_ERR_FORMAT, "%s: \"files\" names \"%s\", not a file of the checkpoint",
                      state_path, name ? name : "");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(e, "bytes");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "crc32");
    char *end = NULL;
    unsigned long want = 0;
    if (!cJSON_IsNumber(b) || b->valuedouble < 0 || !cJSON_IsString(c) ||
        strlen(c->valuestring) != 8 || (want = strtoul(c->valuestring, &end, 16), *end))
        return et_err(ET_ERR_FORMAT,
                      "%s: \"files\".\"%s\" needs \"bytes\" (a number) and \"crc32\" (8 hex "
                      "digits)",
                      state_path, name);
    char p[PATH_CAP + 300];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    uint32_t crc = 0;
    int64_t bytes = 0;
    et_status st = et_trainckpt_file_crc32(p, &crc, &bytes);
    if (st) return et_status_wrap(st, "checkpoint %s: state.json lists %s but", dir, name);
    if (bytes != (int64_t)b->valuedouble)
        return et_err(ET_ERR_FORMAT,
                      "%s: %lld bytes, but state.json recorded %lld when the checkpoint was "
                      "written: the file is damaged (restore it, or remove %s to use an earlier "
                      "checkpoint)",
                      p, (long long)bytes, (long long)b->valuedouble, dir);
    if (crc != (uint32_t)want)
        return et_err(ET_ERR_FORMAT,
                      "%s: checksum mismatch (CRC-32 %08x, state.json recorded %08lx when the "
                      "checkpoint was written): the file is damaged (restore it, or remove %s to "
                      "use an earlier checkpoint)",
                      p, (unsigned)crc, want, dir);
    return NULL;
}

et_status et_trainckpt_verify(const char *dir) {
    char p[PATH_CAP + 64];
    snprintf(p, sizeof p, "%s/state.json", dir);
    char *buf = NULL;
    ET_TRY(et_read_file(p, ET_CONFIG_MAX_BYTES, &buf, NULL));
    cJSON *o = cJSON_Parse(buf);
    free(buf);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return et_err(ET_ERR_FORMAT, "%s: not a JSON object", p);
    }
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(o, "files");
    et_status st = NULL;
    if (!files) {
        et_warn("%s has no checksums (written by an older emotune): its files are not verified", p);
    } else if (!cJSON_IsObject(files)) {
        st = et_err(ET_ERR_FORMAT, "%s: \"files\" must be an object (name -> bytes, crc32)", p);
    } else if (!cJSON_GetObjectItemCaseSensitive(files, "trainables.safetensors")) {
        st = et_err(ET_ERR_FORMAT, "%s: \"files\" has no entry for trainables.safetensors", p);
    } else {
        for (const cJSON *e = files->child; e && !st; e = e->next) st = verify_file(dir, p, e);
    }
    cJSON_Delete(o);
    return st;
}

// ---- directories ----------------------------------------------------------------------

void et_trainckpt_cleanup(const char *root) {
    DIR *d = opendir(root);
    if (!d) return;
    struct dirent *e;
    char p[PATH_CAP + 300];
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".tmp-step-", 10) && strncmp(e->d_name, ".del-step-", 10)) continue;
        snprintf(p, sizeof p, "%s/%s", root, e->d_name);
        et_status_free(et_remove_tree(p));
    }
    closedir(d);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

// Sorted steps of the complete checkpoints under root (caller frees).
static int list_steps(const char *root, int64_t **out) {
    *out = NULL;
    DIR *d = opendir(root);
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = step_of(e->d_name);
        if (s < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *nv = realloc(*out, sizeof(int64_t) * (size_t)cap);
            ET_ASSERT(nv, "out of memory");
            *out = nv;
        }
        (*out)[n++] = s;
    }
    closedir(d);
    if (n) qsort(*out, (size_t)n, sizeof(int64_t), cmp_i64);
    return n;
}

static cJSON *state_json(const et_train_state *s) {  // without "files"
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "format", 1);
    cJSON_AddNumberToObject(o, "step", (double)s->step);
    cJSON_AddNumberToObject(o, "micro_step", (double)s->micro_step);
    cJSON_AddNumberToObject(o, "epoch", (double)s->epoch);
    cJSON_AddNumberToObject(o, "position", (double)s->position);
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)s->rng_offset);
    cJSON_AddStringToObject(o, "rng_offset", buf);  // u64: a string keeps every bit
    cJSON_AddNumberToObject(o, "nan_skipped", (double)s->nan_skipped);
    cJSON_AddNumberToObject(o, "bad_samples", (double)s->bad_samples);
    cJSON_AddNumberToObject(o, "tokens", (double)s->tokens);
    cJSON_AddNumberToObject(o, "last_loss", s->last_loss);
    return o;
}

et_status et_trainckpt_write(const char *root, const et_train_state *state, int n,
                             const char *const *names, et_tensor *const *params, et_adamw *opt,
                             const char *config_json, int keep_last, char *dir_out,
                             size_t dir_cap) {
    ET_TRY(et_mkdirs(root));
    et_trainckpt_cleanup(root);
    char tmp[PATH_CAP], fin[PATH_CAP], p[PATH_CAP + 64];
    snprintf(tmp, sizeof tmp, "%s/.tmp-step-%08lld-%ld", root, (long long)state->step,
             (long)getpid());
    snprintf(fin, sizeof fin, "%s/step-%08lld", root, (long long)state->step);
    ET_TRY(et_mkdirs(tmp));
    et_status st = NULL;
    snprintf(p, sizeof p, "%s/trainables.safetensors", tmp);
    st = et_st_save(p, n, names, params, 0, NULL);
    slow_hook();
    if (!st && opt) {
        int ns = 0;
        const char *const *sn = NULL;
        et_tensor *const *stt = NULL;
        et_adamw_state_tensors(opt, &ns, &sn, &stt);
        char stepbuf[32];
        snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)et_adamw_get_step(opt));
        const char *kv[] = {"step", stepbuf};
        snprintf(p, sizeof p, "%s/optimizer.safetensors", tmp);
        st = et_st_save(p, ns, sn, stt, 1, kv);
        slow_hook();
    }
    if (!st && config_json) {
        snprintf(p, sizeof p, "%s/config.json", tmp);
        st = et_write_file_atomic(p, config_json, strlen(config_json));
        slow_hook();
    }
    if (!st) {  // last: it records the size and CRC-32 of every file written above
        cJSON *o = state_json(state);
        cJSON *files = cJSON_AddObjectToObject(o, "files");
        for (int i = 0; i < N_CKPT_FILES && !st; i++) {
            snprintf(p, sizeof p, "%s/%s", tmp, ckpt_files[i]);
            if (et_path_exists(p) == 1) st = record_file(files, tmp, ckpt_files[i]);
        }
        char *text = st ? NULL : cJSON_Print(o);
        cJSON_Delete(o);
        if (text) {
            snprintf(p, sizeof p, "%s/state.json", tmp);
            st = et_write_file_atomic(p, text, strlen(text));
            free(text);
        }
    }
    if (!st) {
        et_fsync_dir(tmp);
        // A checkpoint of this step already exists: move it aside, put the new one in place,
        // and only then delete the old one (restored if the new one cannot take its place).
        char del[PATH_CAP + 64];
        snprintf(del, sizeof del, "%s/.del-step-%08lld-%ld", root, (long long)state->step,
                 (long)getpid());
        const bool replaced = et_path_exists(fin) && rename(fin, del) == 0;
        if (rename(tmp, fin) != 0) {
            st = et_err(ET_ERR_IO, "%s: cannot rename %s: %s", fin, tmp, strerror(errno));
            if (replaced) rename(del, fin);
        } else {
            et_fsync_dir(root);
            if (replaced) et_status_free(et_remove_tree(del));
        }
    }
    if (st) {
        et_status_free(et_remove_tree(tmp));
        return st;
    }
    if (dir_out) snprintf(dir_out, dir_cap, "%s", fin);
    // keep_last: the checkpoint just written and the newest keep_last - 1 before it. Only
    // steps below this one are pruned: a higher step-* (not this run's history) is left alone,
    // and the checkpoint just written is never removed.
    int64_t *steps = NULL;
    int ns = list_steps(root, &steps);
    int below = 0;
    while (below < ns && steps[below] < state->step) below++;
    for (int i = 0; i + (keep_last - 1) < below; i++) {
        char old[PATH_CAP + 64], del[PATH_CAP + 64];
        snprintf(old, sizeof old, "%s/step-%08lld", root, (long long)steps[i]);
        snprintf(del, sizeof del, "%s/.del-step-%08lld-%ld", root, (long long)steps[i],
                 (long)getpid());
        if (rename(old, del) == 0) et_status_free(et_remove_tree(del));
    }
    static bool warned_above;  // once per process
    if (below + 1 < ns && !warned_above) {
        warned_above = true;
        et_warn(
            "%s: checkpoints above step %lld are left as they are (newest: step-%08lld); "
            "--resume starts from the newest",
            root, (long long)state->step, (long long)steps[ns - 1]);
    }
    free(steps);
    return NULL;
}

et_status et_trainckpt_latest(const char *root, char *dir_out, size_t cap, bool *found) {
    *found = false;
    int64_t *steps = NULL;
    int n = list_steps(root, &steps);
    if (n > 0) {
        snprintf(dir_out, cap, "%s/step-%08lld", root, (long long)steps[n - 1]);
        *found = true;
    }
    free(steps);
    return NULL;
}

et_status et_trainckpt_resolve(const char *given, const char *output_dir, char *dir_out,
                               size_t cap) {
    char root[PATH_CAP + 64];
    if (given && *given) {
        char p[PATH_CAP + 64];
        snprintf(p, sizeof p, "%s/trainables.safetensors", given);
        if (et_path_exists(p) == 1) {
            snprintf(dir_out, cap, "%s", given);
            snprintf(p, sizeof p, "%s/state.json", given);
            if (et_path_exists(p) != 1) return NULL;  // not a training checkpoint: no record
            return et_trainckpt_verify(given);
        }
    }
    snprintf(root, sizeof root, "%s/checkpoints", given && *given ? given : output_dir);
    bool found = false;
    ET_TRY(et_trainckpt_latest(root, dir_out, cap, &found));
    if (!found)
        return et_err(ET_ERR_MISSING,
                      "no checkpoint: %s has no step-* directory (train first, or pass "
                      "--checkpoint)",
                      root);
    return et_trainckpt_verify(dir_out);
}

static et_status get_i64(const cJSON *o, const char *key, const char *path, int64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return et_err(ET_ERR_FORMAT, "%s: field \"%s\" missing or not a number", path, key);
    // a whole number in [0, 2^53] (what the writer stores; also keeps the cast defined)
    if (!(v->valuedouble >= 0 && v->valuedouble <= 9007199254740992.0) ||
        (double)(int64_t)v->valuedouble != v->valuedouble)
        return et_err(ET_ERR_FORMAT, "%s: field \"%s\" = %g is not a whole number in [0, 2^53]",
                      path, key, v->valuedouble);
    *out = (int64_t)v->valuedouble;
    return NULL;
}

static et_status read_state(const char *path, et_train_state *s) {
    char *buf = NULL;
    ET_TRY(et_read_file(path, ET_CONFIG_MAX_BYTES, &buf, NULL));
    cJSON *o = cJSON_Parse(buf);
    free(buf);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return et_err(ET_ERR_FORMAT, "%s: not a JSON object", path);
    }
    et_status st = et_json_check_unique(o, path);
    int64_t fmt = 0;
    memset(s, 0, sizeof *s);
    if (!st) st = get_i64(o, "format", path, &fmt);
    if (!st && fmt != 1)
        st = et_err(ET_ERR_UNSUPPORTED, "%s: format %lld (expected 1)", path, (long long)fmt);
    if (!st) st = get_i64(o, "step", path, &s->step);
    if (!st) st = get_i64(o, "micro_step", path, &s->micro_step);
    if (!st) st = get_i64(o, "epoch", path, &s->epoch);
    if (!st) st = get_i64(o, "position", path, &s->position);
    if (!st) st = get_i64(o, "nan_skipped", path, &s->nan_skipped);
    if (!st) st = get_i64(o, "bad_samples", path, &s->bad_samples);
    if (!st) st = get_i64(o, "tokens", path, &s->tokens);
    if (!st) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "rng_offset");
        char *end = NULL;
        if (!cJSON_IsString(r) || !*r->valuestring ||
            (s->rng_offset = strtoull(r->valuestring, &end, 10), *end))
            st = et_err(ET_ERR_FORMAT, "%s: field \"rng_offset\" missing or not a decimal string",
                        path);
    }
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "last_loss");
    s->last_loss = cJSON_IsNumber(l) ? l->valuedouble : 0;
    cJSON_Delete(o);
    return st;
}

// Checks that every tensor is in f with its shape; lists the problems.
static et_status check_tensors(et_st_file *f, const char *path, int n, const char *const *names,
                               et_tensor *const *ts) {
    char problems[900] = "";
    for (int i = 0; i < n; i++) {
        et_st_info info;
        et_status s = et_st_info_of(f, names[i], &info);
        bool ok = !s && info.ndim == ts[i]->ndim &&
                  !strcmp(info.dtype, ts[i]->dtype == ET_F32 ? "F32" : info.dtype);
        for (int d = 0; ok && d < info.ndim; d++) ok = info.shape[d] == ts[i]->shape[d];
        et_status_free(s);
        if (!ok) {
            size_t len = strlen(problems);
            if (len + 8 < sizeof problems)
                snprintf(problems + len, sizeof problems - len, "%s%s", len ? ", " : "", names[i]);
        }
    }
    if (problems[0])
        return et_err(ET_ERR_FORMAT, "%s: missing, mis-shaped or wrong-dtype tensors: %s", path,
                      problems);
    return NULL;
}

static void copy_all(et_st_file *f, int n, const char *const *names, et_tensor *const *ts) {
    for (int i = 0; i < n; i++) {
        et_tensor *t = NULL;
        et_status s = et_st_load(f, names[i], &t);
        ET_ASSERT(!s, "checked tensor failed to load");
        et_copy_(ts[i], t);
        et_release(t);
    }
}

et_status et_trainckpt_read(const char *dir, et_train_state *state, int n, const char *const *names,
                            et_tensor *const *params, et_adamw *opt) {
    char p[PATH_CAP + 64], po[PATH_CAP + 64];
    et_train_state s;
    snprintf(p, sizeof p, "%s/state.json", dir);
    ET_TRY(read_state(p, &s));
    ET_TRY(et_trainckpt_verify(dir));
    snprintf(p, sizeof p, "%s/trainables.safetensors", dir);
    et_st_file *ft = NULL, *fo = NULL;
    ET_TRY(et_st_open(p, &ft));
    et_status st = check_tensors(ft, p, n, names, params);
    int ns = 0;
    const char *const *sn = NULL;
    et_tensor *const *stt = NULL;
    int64_t opt_step = 0;
    if (!st && opt) {
        snprintf(po, sizeof po, "%s/optimizer.safetensors", dir);
        st = et_st_open(po, &fo);
        if (!st) {
            et_adamw_state_tensors(opt, &ns, &sn, &stt);
            st = check_tensors(fo, po, ns, sn, stt);
        }
        if (!st) {
            const char *v = et_st_metadata(fo, "step");
            char *end = NULL;
            if (!v || (opt_step = strtoll(v, &end, 10), *end || opt_step < 0))
                st = et_err(ET_ERR_FORMAT, "%s: metadata \"step\" missing or invalid", po);
        }
    }
    if (!st) {
        copy_all(ft, n, names, params);
        if (opt) {
            copy_all(fo, ns, sn, stt);
            et_adamw_set_step(opt, opt_step);
        }
        *state = s;
    }
    et_st_close(ft);
    et_st_close(fo);
    return st;
}
