/* SPDX-License-Identifier: Apache-2.0 */
/* json_out: append-only JSON writer. */
#include "json_out.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put(struct json_out *j, const char *s, size_t n)
{
	if (j->failed)
		return;
	if (j->len + n + 1 > j->cap) {
		size_t cap = j->cap ? j->cap : 256;
		char *b;

		while (cap < j->len + n + 1)
			cap *= 2;
		b = realloc(j->buf, cap);
		if (!b) {
			j->failed = true;
			return;
		}
		j->buf = b;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void putf(struct json_out *j, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(j, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A value or key at this level: a comma before all but the first. */
static void item(struct json_out *j)
{
	if (j->comma)
		put(j, ",", 1);
	j->comma = true;
}

void json_out_open(struct json_out *j, char bracket)
{
	item(j);
	put(j, &bracket, 1);
	j->comma = false;
}

void json_out_close(struct json_out *j, char bracket)
{
	put(j, &bracket, 1);
	j->comma = true;
}

static void quoted(struct json_out *j, const char *s)
{
	put(j, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			putf(j, "\\%c", c);
		else if (c < 0x20)
			putf(j, "\\u%04x", c);
		else
			put(j, s, 1);
	}
	put(j, "\"", 1);
}

void json_out_key(struct json_out *j, const char *key)
{
	item(j);
	quoted(j, key);
	put(j, ":", 1);
	j->comma = false;
}

void json_out_str(struct json_out *j, const char *s)
{
	item(j);
	if (s)
		quoted(j, s);
	else
		put(j, "null", 4);
}

void json_out_num(struct json_out *j, double v)
{
	item(j);
	putf(j, "%.15g", v);
}

void json_out_uint(struct json_out *j, unsigned long long v)
{
	item(j);
	putf(j, "%llu", v);
}

void json_out_bool(struct json_out *j, bool v)
{
	item(j);
	put(j, v ? "true" : "false", v ? 4 : 5);
}

char *json_out_done(struct json_out *j, size_t *len)
{
	if (j->failed || !j->buf) {
		free(j->buf);
		j->buf = NULL;
		return NULL;
	}
	*len = j->len;
	return j->buf;
}

char *json_out_done_line(struct json_out *j, size_t *len)
{
	char *text = json_out_done(j, len), *line = text ? realloc(text, *len + 2) : NULL;

	if (!line) {
		free(text);
		return NULL;
	}
	line[(*len)++] = '\n';
	line[*len] = '\0';
	return line;
}
