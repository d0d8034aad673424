// train/run_dir.h - a run's output directory: who may write into it, and what a new run does
// with an old one. defines: et_run_mode, et_run_lock, et_run_dir_check, et_run_dir_claim,
//          et_run_dir_release, ET_RUN_LOCK_NAME, et_stop_signals, et_stop_signals_install,
//          et_stop_signals_restore
//
// Contract
// - Modes: ET_RUN_FRESH (the default) refuses a directory that holds anything but a
//   lock file: the message names --resume and --overwrite, and nothing in the directory is
//   touched. ET_RUN_RESUME accepts any directory. ET_RUN_OVERWRITE moves a non-empty
//   directory aside to "<dir>.old-YYYYmmdd-HHMMSS" (then -2, -3, ... when taken), never
//   deleting a file, and starts in a new, empty <dir>; it refuses a directory that does not
//   look like an emotune run (none of config.json, metrics.jsonl, checkpoints/, tb/,
//   adapter/), the current directory and its parents.
// - Lock: <dir>/.emotune.lock holds the pid of the process that writes into <dir>; it is
//   flock()ed (LOCK_EX) while the run lives, so a second process on the same directory stops
//   with a message naming that pid. The kernel drops the flock when a process dies, so a
//   lock file left by a killed run is taken over (with a note naming its pid).
//   The lock file does not count as content.
// - et_run_dir_check: the read-only part (mode against content, a lock held by another
//   process), for a fast refusal before any work. Writes nothing.
// - et_run_dir_claim: creates <dir> if needed, takes the lock, checks again under it, moves
//   the old run aside (OVERWRITE: moved_to receives the new name, "" when nothing moved).
// - et_run_dir_release: unlocks and removes the lock file; when the claim created <dir> and
//   the run left it empty (it failed before writing anything), <dir> is removed too. NULL ok.
// - Not thread-safe; one claim per directory per process.
#ifndef ET_TRAIN_RUN_DIR_H
#define ET_TRAIN_RUN_DIR_H

#include <signal.h>
#include <stddef.h>

#include "../core/status.h"

#define ET_RUN_LOCK_NAME ".emotune.lock"

typedef enum { ET_RUN_FRESH = 0, ET_RUN_RESUME, ET_RUN_OVERWRITE } et_run_mode;

typedef struct et_run_lock et_run_lock;

et_status et_run_dir_check(const char *dir, et_run_mode mode);
et_status et_run_dir_claim(const char *dir, et_run_mode mode, et_run_lock **lock, char *moved_to,
                           size_t cap);
void et_run_dir_release(et_run_lock *lock);

// Stop signals of a run (trainer, pretrain-tower). The first SIGINT / SIGTERM / SIGHUP calls
// request() (which must only set a flag) and prints why the run goes on to a checkpoint; the
// handler is then reset (SA_RESETHAND), so a second signal ends the process at once. SIGHUP
// stays ignored when the process was started ignoring it (nohup); SIGINT and SIGTERM are
// always handled (a shell starts background jobs with SIGINT ignored, and a `kill -INT` of
// such a run must still checkpoint). One set of handlers at a time; restore puts back what
// install found.
#define ET_STOP_N_SIGNALS 3
typedef struct {
    struct sigaction old[ET_STOP_N_SIGNALS];
} et_stop_signals;
void et_stop_signals_install(et_stop_signals *s, void (*request)(void));
void et_stop_signals_restore(const et_stop_signals *s);

#endif
