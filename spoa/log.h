/* log: leveled, one line per event, to stderr. Thread-safe: each line is a
 * single write(2). Lines look like
 *   2026-11-27T03:20:01.123Z info [w1 c17] message
 * where the bracket is the caller's context, if any. */
#ifndef CUTOVER_LOG_H
#define CUTOVER_LOG_H

#include <stdbool.h>

enum log_level { LOGL_ERROR, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

/* Parses "error", "warn", "info" or "debug". Returns false on anything else. */
bool log_parse_level(const char *name, enum log_level *out);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_enabled(LOGL_DEBUG)) log_msg(LOGL_DEBUG, __VA_ARGS__); } while (0)

#endif
