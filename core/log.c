// core/log.c - see log.h
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_level = -1;
static _Atomic int g_transient;  // a progress line is on stderr, unterminated

static et_log_level level_from_env(void) {
    const char *s = getenv("EMOTUNE_LOG");
    if (!s) return ET_LOG_INFO;
    if (!strcmp(s, "debug")) return ET_LOG_DEBUG;
    if (!strcmp(s, "warn")) return ET_LOG_WARN;
    if (!strcmp(s, "error")) return ET_LOG_ERROR;
    return ET_LOG_INFO;
}

void et_log_set_level(et_log_level level) { g_level = (int)level; }

void et_log_transient_line(int on) { g_transient = on ? 1 : 0; }

et_log_level et_log_get_level(void) {
    if (g_level < 0) g_level = (int)level_from_env();
    return (et_log_level)g_level;
}

void et_log(et_log_level level, const char *fmt, ...) {
    if (level < et_log_get_level()) return;
    static const char *names[] = {"debug", "info", "warn", "error"};
    char line[2048];
    int n = snprintf(line, sizeof(line), "[emotune %s] ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s%s\n", g_transient ? "\r\x1b[K" : "", line);
}
