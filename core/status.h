// core/status.h - the status/error model.
// defines: et_status, et_err, et_status_ok, et_status_free, ET_CHECK, ET_ASSERT, ET_TRY
//
// Two kinds of failure (DESIGN.md "Errors"):
// - Input that comes from the user (files, configs, data, checkpoints) is never trusted.
//   Functions that read it return an et_status: NULL on success, or a heap-allocated
//   error whose message names the file and the field. The caller owns it and either
//   reports it (et_status_msg) and frees it (et_status_free), or adds context and
//   passes it on (et_status_wrap).
// - Programmer errors (a shape mismatch inside an op, a NULL tensor) abort through
//   ET_ASSERT with file:line and a sentence saying what was expected.
#ifndef ET_STATUS_H
#define ET_STATUS_H

#include <stdarg.h>
#include <stdbool.h>

typedef enum {
    ET_OK = 0,
    ET_ERR_IO,       // open/read/write/mmap failed
    ET_ERR_FORMAT,   // malformed or hostile file contents
    ET_ERR_INVALID,  // bad argument or config value
    ET_ERR_MISSING,  // a named thing (tensor, key, file) does not exist
    ET_ERR_NOMEM,    // allocation failed or a size limit was exceeded
    ET_ERR_UNSUPPORTED,
} et_code;

typedef struct et_error {
    et_code code;
    char msg[1024];
} et_error;

// NULL means success.
typedef et_error *et_status;

// Make an error with a printf-style message. Never returns NULL.
et_status et_err(et_code code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Prefix context to an existing error ("reading config.json: " + old message); returns s.
et_status et_status_wrap(et_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *et_status_msg(et_status s);  // "ok" for NULL
et_code et_status_code(et_status s);     // ET_OK for NULL
void et_status_free(et_status s);

// Propagate an error to the caller.
#define ET_TRY(expr)                     \
    do {                                 \
        et_status et_try_s_ = (expr);    \
        if (et_try_s_) return et_try_s_; \
    } while (0)

// Programmer-error check: aborts with file:line, the condition and an explanation.
void et_fatal(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
#define ET_ASSERT(cond, ...)                                    \
    do {                                                        \
        if (!(cond)) et_fatal(__FILE__, __LINE__, __VA_ARGS__); \
    } while (0)

#endif
