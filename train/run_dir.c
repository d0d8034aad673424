// train/run_dir.c - see run_dir.h
#include "run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/fileio.h"
#include "../core/log.h"

#define PATH_CAP 4096

struct et_run_lock {
    int fd;
    bool created;  // the claim created the directory
    char dir[PATH_CAP];
    char path[PATH_CAP + 256];
};

// dir without trailing slashes ("/" stays).
static void norm_dir(const char *dir, char *out, size_t cap) {
    snprintf(out, cap, "%s", dir);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/') out[--n] = 0;
}

// Entries of dir other than ".", ".." and the lock file: their count, and the first few names
// ("checkpoints/, config.json, ...") in names. -1 when dir cannot be read (absent: 0).
static int list_content(const char *dir, char *names, size_t cap) {
    if (names && cap) names[0] = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    int n = 0;
    struct dirent *e;
    char p[PATH_CAP + 300];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            !strcmp(e->d_name, ET_RUN_LOCK_NAME))
            continue;
        if (names && n < 4) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            size_t len = strlen(names);
            snprintf(names + len, cap - len, "%s%s%s", n ? ", " : "", e->d_name,
                     et_path_exists(p) == 2 ? "/" : "");
        } else if (names && n == 4) {
            size_t len = strlen(names);
            snprintf(names + len, cap - len, ", ...");
        }
        n++;
    }
    closedir(d);
    return n;
}

// An emotune run leaves at least one of these.
static bool looks_like_run(const char *dir) {
    static const char *const marks[] = {"config.json", "metrics.jsonl", "checkpoints", "tb",
                                        "adapter"};
    char p[PATH_CAP + 64];
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, marks[i]);
        if (et_path_exists(p)) return true;
    }
    return false;
}

// The pid written in a lock file (0 when none).
static long read_pid(int fd) {
    char buf[64];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return 0;
    buf[n] = 0;
    char *end = NULL;
    long pid = strtol(buf, &end, 10);
    return end != buf && pid > 0 ? pid : 0;
}

static et_status held_error(const char *dir, const char *path, long pid) {
    if (pid > 0)
        return et_err(ET_ERR_IO,
                      "%s is in use by another emotune process (pid %ld holds %s): wait for it to "
                      "end or stop it (kill %ld), or choose another train.output_dir",
                      dir, pid, path, pid);
    return et_err(ET_ERR_IO,
                  "%s is in use by another emotune process (it holds %s): wait for it to end, or "
                  "choose another train.output_dir",
                  dir, path);
}

// Read-only probe: an error when another process holds dir's lock.
static et_status probe_lock(const char *dir) {
    char path[PATH_CAP + 32];
    snprintf(path, sizeof path, "%s/%s", dir, ET_RUN_LOCK_NAME);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;  // no lock file: free
    et_status st = NULL;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) st = held_error(dir, path, read_pid(fd));
    } else {
        flock(fd, LOCK_UN);
    }
    close(fd);
    return st;
}

static et_status refuse_content(const char *dir, const char *names) {
    return et_err(ET_ERR_INVALID,
                  "train.output_dir %s already holds a run (%s); nothing was changed. Pass "
                  "--resume to continue it, or --overwrite to move it aside and start fresh (or "
                  "choose another train.output_dir)",
                  dir, names);
}

// Refuses an OVERWRITE of something that is not a run, or of the current directory or "/".
static et_status check_overwritable(const char *dir, const char *names) {
    if (!looks_like_run(dir))
        return et_err(ET_ERR_INVALID,
                      "--overwrite: train.output_dir %s does not look like an emotune run (it "
                      "holds %s but no config.json, metrics.jsonl or checkpoints/); it is left "
                      "as it is: choose another train.output_dir",
                      dir, names);
    char rp[PATH_MAX], cwd[PATH_MAX];
    if (realpath(dir, rp) && getcwd(cwd, sizeof cwd)) {
        size_t n = strlen(rp);
        if (!strcmp(rp, "/") || (!strncmp(cwd, rp, n) && (cwd[n] == 0 || cwd[n] == '/')))
            return et_err(ET_ERR_INVALID,
                          "--overwrite: train.output_dir %s is the current directory or one of "
                          "its parents; it is not moved: choose another train.output_dir",
                          dir);
    }
    return NULL;
}

et_status et_run_dir_check(const char *dir_in, et_run_mode mode) {
    char dir[PATH_CAP];
    norm_dir(dir_in, dir, sizeof dir);
    if (!dir[0]) return et_err(ET_ERR_INVALID, "train.output_dir is empty: name a directory");
    const int kind = et_path_exists(dir);
    if (kind == 1)
        return et_err(ET_ERR_INVALID,
                      "train.output_dir %s exists and is not a directory: choose another path",
                      dir);
    if (kind == 0) return NULL;
    char names[512];
    const int n = list_content(dir, names, sizeof names);
    if (n < 0)
        return et_err(ET_ERR_IO, "train.output_dir %s: cannot read the directory: %s", dir,
                      strerror(errno));
    ET_TRY(probe_lock(dir));
    if (n > 0 && mode == ET_RUN_FRESH) return refuse_content(dir, names);
    if (n > 0 && mode == ET_RUN_OVERWRITE) return check_overwritable(dir, names);
    return NULL;
}

// Takes dir's lock into lk (dir exists).
static et_status lock_take(const char *dir, et_run_lock *lk) {
    snprintf(lk->dir, sizeof lk->dir, "%s", dir);
    snprintf(lk->path, sizeof lk->path, "%s/%s", dir, ET_RUN_LOCK_NAME);
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = open(lk->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return et_err(ET_ERR_IO, "%s: cannot create the lock file: %s", lk->path,
                          strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            const int e = errno;
            et_status st = e == EWOULDBLOCK
                               ? held_error(dir, lk->path, read_pid(fd))
                               : et_err(ET_ERR_IO, "%s: cannot lock: %s", lk->path, strerror(e));
            close(fd);
            return st;
        }
        // The holder may have removed the file between our open and flock: then we hold a
        // lock on a file nobody else will open; try again with the one at the path.
        struct stat a, b;
        if (fstat(fd, &a) != 0 || stat(lk->path, &b) != 0 || a.st_ino != b.st_ino ||
            a.st_dev != b.st_dev) {
            close(fd);
            continue;
        }
        const long old = read_pid(fd);
        if (old > 0 && old != (long)getpid())
            et_warn("%s: taking over the lock left by pid %ld, which no longer holds it (%s)",
                    lk->path, old,
                    kill((pid_t)old, 0) != 0 && errno == ESRCH ? "not running"
                                                               : "it released or lost it");
        char buf[32];
        const int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
            et_status st =
                et_err(ET_ERR_IO, "%s: cannot write the pid: %s", lk->path, strerror(errno));
            close(fd);
            return st;
        }
        lk->fd = fd;
        return NULL;
    }
    return et_err(ET_ERR_IO, "%s: the lock file keeps changing; is another process starting?",
                  lk->path);
}

static void lock_drop(et_run_lock *lk) {
    unlink(lk->path);  // while still locked: nobody can lock the old file after us
    close(lk->fd);
    lk->fd = -1;
}

// "<dir>.old-YYYYmmdd-HHMMSS", then -2, -3, ... until free.
static et_status aside_name(const char *dir, char *out, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    for (int k = 1; k < 1000; k++) {
        if (k == 1)
            snprintf(out, cap, "%s.old-%s", dir, stamp);
        else
            snprintf(out, cap, "%s.old-%s-%d", dir, stamp, k);
        struct stat sb;
        if (lstat(out, &sb) != 0 && errno == ENOENT) return NULL;
    }
    return et_err(ET_ERR_IO, "%s: no free name to move it aside to (%s*)", dir, out);
}

et_status et_run_dir_claim(const char *dir_in, et_run_mode mode, et_run_lock **out, char *moved_to,
                           size_t cap) {
    *out = NULL;
    if (moved_to && cap) moved_to[0] = 0;
    char dir[PATH_CAP];
    norm_dir(dir_in, dir, sizeof dir);
    ET_TRY(et_run_dir_check(dir, mode));
    et_run_lock *lk = calloc(1, sizeof *lk);
    if (!lk) return et_err(ET_ERR_NOMEM, "out of memory");
    lk->fd = -1;
    lk->created = et_path_exists(dir) == 0;
    et_status st = et_mkdirs(dir);
    if (!st) st = lock_take(dir, lk);
    if (st) {
        if (lk->created) rmdir(dir);
        free(lk);
        return st;
    }
    // again under the lock: another process may have written here since the check
    char names[512];
    const int n = list_content(dir, names, sizeof names);
    if (n > 0 && mode == ET_RUN_FRESH) st = refuse_content(dir, names);
    if (!st && n > 0 && mode == ET_RUN_OVERWRITE) {
        char aside[PATH_CAP + 64];
        st = check_overwritable(dir, names);
        if (!st) st = aside_name(dir, aside, sizeof aside);
        if (!st && rename(dir, aside) != 0)
            st = et_err(ET_ERR_IO, "--overwrite: cannot move %s to %s: %s", dir, aside,
                        strerror(errno));
        if (!st) {
            // our lock moved with the old run: lock the new, empty directory, then drop it
            et_run_lock old = *lk;
            snprintf(old.path, sizeof old.path, "%s/%s", aside, ET_RUN_LOCK_NAME);
            lk->fd = -1;
            lk->created = true;
            st = et_mkdirs(dir);
            if (!st) st = lock_take(dir, lk);
            lock_drop(&old);
            if (moved_to) snprintf(moved_to, cap, "%s", aside);
            if (st) {
                free(lk);
                return et_status_wrap(st, "--overwrite moved the previous run to %s, then", aside);
            }
        }
    }
    if (st) {
        et_run_dir_release(lk);
        return st;
    }
    *out = lk;
    return NULL;
}

void et_run_dir_release(et_run_lock *lk) {
    if (!lk) return;
    if (lk->fd >= 0) lock_drop(lk);
    if (lk->created) rmdir(lk->dir);  // only succeeds when the run left it empty
    free(lk);
}

static void (*g_request)(void);
static const int k_stop_signals[ET_STOP_N_SIGNALS] = {SIGINT, SIGTERM, SIGHUP};

static void on_stop_signal(int sig) {  // write(2) is async-signal-safe
    (void)sig;
    if (g_request) g_request();
    static const char msg[] =
        "\n[emotune] stop requested: finishing the current step and writing a checkpoint "
        "(send the signal again to quit at once)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

void et_stop_signals_install(et_stop_signals *s, void (*request)(void)) {
    g_request = request;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < ET_STOP_N_SIGNALS; i++) {
        // set and read back in one call: ASan's interceptor answers a query (act NULL) by
        // itself and does not report an inherited SIG_IGN
        sigaction(k_stop_signals[i], &sa, &s->old[i]);
        if (k_stop_signals[i] == SIGHUP && s->old[i].sa_handler == SIG_IGN)
            sigaction(k_stop_signals[i], &s->old[i], NULL);  // nohup: stays ignored
    }
}

void et_stop_signals_restore(const et_stop_signals *s) {
    for (int i = 0; i < ET_STOP_N_SIGNALS; i++) sigaction(k_stop_signals[i], &s->old[i], NULL);
}
