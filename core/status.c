// core/status.c - see status.h
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

et_status et_err(et_code code, const char *fmt, ...) {
    et_error *e = malloc(sizeof(*e));
    if (!e) {
        fprintf(stderr, "emotune: out of memory while reporting an error\n");
        abort();
    }
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return e;
}

et_status et_status_wrap(et_status s, const char *fmt, ...) {
    if (!s) return s;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    char old[sizeof(s->msg)];
    memcpy(old, s->msg, sizeof(old));
    size_t np = strlen(prefix);
    if (np > sizeof(s->msg) - 3) np = sizeof(s->msg) - 3;
    memcpy(s->msg, prefix, np);
    memcpy(s->msg + np, ": ", 2);
    size_t room = sizeof(s->msg) - np - 3;
    size_t no = strnlen(old, room);
    memcpy(s->msg + np + 2, old, no);
    s->msg[np + 2 + no] = '\0';
    return s;
}

const char *et_status_msg(et_status s) { return s ? s->msg : "ok"; }
et_code et_status_code(et_status s) { return s ? s->code : ET_OK; }
void et_status_free(et_status s) { free(s); }

void et_fatal(const char *file, int line, const char *fmt, ...) {
    fprintf(stderr, "emotune: fatal at %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    fflush(stderr);
    abort();
}
