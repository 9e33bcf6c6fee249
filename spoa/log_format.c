/* SPDX-License-Identifier: Apache-2.0 */
#include "log_format.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Room kept at the end of the buffer for closing a cut line:
 * ' truncated=true' or ',"truncated":true}', and '\n'. */
#define CLOSING 20

struct out {
	char *p, *limit; /* limit: where values must stop, CLOSING before the end */
	bool cut;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->cut || (size_t)(o->limit - o->p) < n) {
		o->cut = true;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0; /* also stops at the NUL */
	if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || /* overlong, surrogate */
	    (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))     /* overlong, > U+10FFFF */
		return 0;
	return n;
}

/* Writes s as a quoted, escaped string; stops before a character that would
 * not fit whole. */
static void put_quoted(struct out *o, const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	char esc[8];

	o->limit--; /* room for the closing quote */
	put(o, "\"", 1);
	while (*u && !o->cut) {
		size_t n = utf8_len(u);
		if (n == 0) {
			put(o, "\xEF\xBF\xBD", 3); /* U+FFFD */
			u++;
			continue;
		}
		if (n > 1) {
			put(o, (const char *)u, n);
			u += n;
			continue;
		}
		switch (*u) {
		case '"': put(o, "\\\"", 2); break;
		case '\\': put(o, "\\\\", 2); break;
		case '\n': put(o, "\\n", 2); break;
		case '\r': put(o, "\\r", 2); break;
		case '\t': put(o, "\\t", 2); break;
		default:
			if (*u < 0x20 || *u == 0x7F) {
				snprintf(esc, sizeof(esc), "\\u%04x", *u);
				put(o, esc, 6);
			} else {
				put(o, (const char *)u, 1);
			}
		}
		u++;
	}
	o->cut = o->cut || *u; /* anything left over was cut */
	o->limit++;
	*o->p++ = '"';
}

static bool logfmt_bare(const char *s)
{
	if (!*s)
		return false;
	for (const unsigned char *u = (const unsigned char *)s; *u; u++)
		if (*u <= ' ' || *u == '"' || *u == '=' || *u == '\\' || *u >= 0x7F)
			return false; /* non-ASCII is quoted so it is checked as UTF-8 */
	return true;
}

/* Writes the separator and key if they fit with need more bytes (the least
 * the value takes), so a cut line never ends on a bare key. */
static bool put_key(struct out *o, enum log_format format, const char *key, bool first,
		    size_t need)
{
	size_t n = strlen(key) + 4 + need; /* ,"key": or " key=" */

	if (o->cut || (size_t)(o->limit - o->p) < n) {
		o->cut = true;
		return false;
	}
	if (format == LOG_FORMAT_JSON) {
		puts_(o, first ? "{\"" : ",\"");
		puts_(o, key);
		puts_(o, "\":");
	} else {
		if (!first)
			puts_(o, " ");
		puts_(o, key);
		puts_(o, "=");
	}
	return true;
}

/* A string value: key, then the value bare (logfmt, when it may be) or
 * quoted and escaped. */
static void put_str(struct out *o, enum log_format format, const char *key, bool first,
		    const char *s)
{
	if (!s)
		s = "";
	if (format == LOG_FORMAT_LOGFMT && logfmt_bare(s)) {
		if (put_key(o, format, key, first, strlen(s)))
			puts_(o, s);
	} else if (put_key(o, format, key, first, 2)) {
		put_quoted(o, s);
	}
}

static void put_field(struct out *o, enum log_format format, const struct log_field *f)
{
	char num[32];

	switch (f->type) {
	case LOG_FIELD_STR:
		put_str(o, format, f->key, false, f->str);
		return;
	case LOG_FIELD_UINT:
		snprintf(num, sizeof(num), "%llu", f->uint);
		break;
	case LOG_FIELD_INT:
		snprintf(num, sizeof(num), "%lld", f->sint);
		break;
	}
	if (put_key(o, format, f->key, false, strlen(num)))
		puts_(o, num);
}

size_t log_format_line(enum log_format format, const struct log_record *r, char *buf,
		       size_t cap)
{
	struct out o = { buf, buf + cap - CLOSING, false };
	char ts[64];
	struct tm tm;
	time_t sec = (time_t)r->sec;

	gmtime_r(&sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, r->msec);
	put_str(&o, format, "ts", true, ts);
	put_str(&o, format, "level", false, r->level);
	if (r->event)
		put_str(&o, format, "event", false, r->event);
	if (r->msg)
		put_str(&o, format, "msg", false, r->msg);
	for (size_t i = 0; i < r->nfields && !o.cut; i++)
		put_field(&o, format, &r->fields[i]);

	/* The reserved room takes the end; limit no longer applies. */
	o.limit = buf + cap;
	bool cut = o.cut;
	o.cut = false;
	if (cut)
		puts_(&o, format == LOG_FORMAT_JSON ? ",\"truncated\":true" : " truncated=true");
	if (format == LOG_FORMAT_JSON)
		puts_(&o, "}");
	puts_(&o, "\n");
	return (size_t)(o.p - buf);
}
