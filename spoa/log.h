/* SPDX-License-Identifier: Apache-2.0 */
/* log: leveled records to stderr, one line each, as logfmt (default) or
 * JSON (see log_format.h for the line format). Thread-safe: each line is a
 * single write(2).
 *
 * Plain messages keep their printf form and become msg="...":
 *   log_info("[w1 c17] accepted");
 * Events have a stable name and typed fields, for machines:
 *   log_event(LOGL_INFO, "phase_change", LOG_UINT("from", 3), LOG_STR("plan", path));
 * giving  ts=... level=info event=phase_change from=3 plan=/etc/cutover/plan.yaml */
#ifndef CUTOVER_LOG_H
#define CUTOVER_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "log_format.h"

enum log_level { LOGL_ERROR, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

/* Parses "error", "warn", "info" or "debug". Returns false on anything else. */
bool log_parse_level(const char *name, enum log_level *out);
/* Parses "logfmt" or "json". Returns false on anything else. */
bool log_parse_format(const char *name, enum log_format *out);
void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_fields(enum log_level level, const char *event, const struct log_field *fields,
		size_t nfields);

#define LOG_STR(k, v)  ((struct log_field){ .key = (k), .type = LOG_FIELD_STR, .str = (v) })
#define LOG_UINT(k, v) ((struct log_field){ .key = (k), .type = LOG_FIELD_UINT, .uint = (v) })
#define LOG_INT(k, v)  ((struct log_field){ .key = (k), .type = LOG_FIELD_INT, .sint = (v) })

/* log_event(level, "name", LOG_STR(...), LOG_UINT(...), ...): one event line. */
#define log_event(level, event, ...)                                              \
	log_fields((level), (event), (const struct log_field[]){ __VA_ARGS__ },   \
		   sizeof((const struct log_field[]){ __VA_ARGS__ }) / sizeof(struct log_field))

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) \
	do { if (log_enabled(LOGL_DEBUG)) log_msg(LOGL_DEBUG, __VA_ARGS__); } while (0)

#endif
