// core/log.h - leveled logging to stderr.
// defines: et_log, et_log_set_level, et_log_transient_line, ET_LOG_DEBUG/INFO/WARN/ERROR
// The level comes from et_log_set_level or, at first use, from $EMOTUNE_LOG
// (debug|info|warn|error). Thread-safe (one fprintf per line).
// A progress bar redrawn in place on a terminal says so with et_log_transient_line(true)
// while its line is on stderr without a newline; a log line then first clears it ("\r",
// clear to end of line), so warnings never land at the end of the bar.
#ifndef ET_LOG_H
#define ET_LOG_H

typedef enum { ET_LOG_DEBUG = 0, ET_LOG_INFO, ET_LOG_WARN, ET_LOG_ERROR } et_log_level;

void et_log_set_level(et_log_level level);
void et_log_transient_line(int on);
et_log_level et_log_get_level(void);
void et_log(et_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define et_info(...) et_log(ET_LOG_INFO, __VA_ARGS__)
#define et_warn(...) et_log(ET_LOG_WARN, __VA_ARGS__)
#define et_debug(...) et_log(ET_LOG_DEBUG, __VA_ARGS__)
#define et_error_log(...) et_log(ET_LOG_ERROR, __VA_ARGS__)

#endif
