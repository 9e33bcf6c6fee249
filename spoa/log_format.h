/* SPDX-License-Identifier: Apache-2.0 */
/* log_format: renders one log record as one line of logfmt or of JSON. Pure:
 * no I/O, no clock, no allocation.
 *
 * logfmt:  ts=2026-11-27T03:20:01.123Z level=info event=phase_change from=3 plan=/etc/x.yaml
 * JSON:    {"ts":"2026-11-27T03:20:01.123Z","level":"info","event":"phase_change","from":3,...}
 *
 * Keys come in this order: ts, level, event (if any), msg (if any), then the
 * fields in the caller's order. Keys are the caller's identifiers
 * ([a-z0-9_]) and are written as given; values are escaped: in logfmt a value
 * is bare when it is non-empty and has no space, '"', '=', '\\' or control
 * byte, else it is quoted with \" \\ \n \r \t and \u00XX escapes, as in
 * JSON. Bytes that are not valid UTF-8 become U+FFFD in both formats, so a
 * JSON line always parses. A line longer than the buffer is cut inside a
 * value (never inside an escape), closed properly, and gets truncated=true. */
#ifndef CUTOVER_LOG_FORMAT_H
#define CUTOVER_LOG_FORMAT_H

#include <stddef.h>

enum log_format { LOG_FORMAT_LOGFMT, LOG_FORMAT_JSON };

enum log_field_type { LOG_FIELD_STR, LOG_FIELD_UINT, LOG_FIELD_INT };

struct log_field {
	const char *key;
	enum log_field_type type;
	union {
		const char *str; /* NULL is written as an empty string */
		unsigned long long uint;
		long long sint;
	};
};

struct log_record {
	long long sec; /* wall clock, seconds since the epoch (UTC) */
	long msec;     /* 0 to 999 */
	const char *level;
	const char *event; /* NULL: a plain message */
	const char *msg;   /* NULL: none */
	const struct log_field *fields;
	size_t nfields;
};

/* Smallest buffer log_format_line accepts. */
#define LOG_LINE_MIN 128

/* Writes r into buf (cap >= LOG_LINE_MIN bytes) as one line ending in '\n',
 * not NUL-terminated. Returns its length. */
size_t log_format_line(enum log_format format, const struct log_record *r, char *buf,
		       size_t cap);

#endif
