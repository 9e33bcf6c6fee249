/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

static _Atomic int current_level = LOGL_INFO;
static _Atomic int current_format = LOG_FORMAT_LOGFMT;

static const char *const level_names[] = {
	[LOGL_ERROR] = "error",
	[LOGL_WARN] = "warn",
	[LOGL_INFO] = "info",
	[LOGL_DEBUG] = "debug",
};

bool log_parse_level(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

bool log_parse_format(const char *name, enum log_format *out)
{
	if (strcmp(name, "logfmt") == 0)
		*out = LOG_FORMAT_LOGFMT;
	else if (strcmp(name, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return false;
	return true;
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&current_level, (int)level, memory_order_relaxed);
}

void log_set_format(enum log_format format)
{
	atomic_store_explicit(&current_format, (int)format, memory_order_relaxed);
}

bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&current_level, memory_order_relaxed);
}

static void emit(enum log_level level, const char *event, const char *msg,
		 const struct log_field *fields, size_t nfields)
{
	char line[LINE_MAX_BYTES];
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	struct log_record r = {
		.sec = ts.tv_sec, .msec = ts.tv_nsec / 1000000, .level = level_names[level],
		.event = event, .msg = msg, .fields = fields, .nfields = nfields,
	};
	enum log_format format = atomic_load_explicit(&current_format, memory_order_relaxed);
	size_t len = log_format_line(format, &r, line, sizeof(line));

	/* One write per line, so lines of different threads never interleave. */
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char msg[LINE_MAX_BYTES];
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(level, NULL, msg, NULL, 0);
}

void log_fields(enum log_level level, const char *event, const struct log_field *fields,
		size_t nfields)
{
	if (log_enabled(level))
		emit(level, event, NULL, fields, nfields);
}
