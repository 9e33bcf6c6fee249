/* SPDX-License-Identifier: Apache-2.0 */
/* gate_judge: an HTTP gate's answer against what the gate expects. The JSON
 * reader walks the text once, skipping what the path does not name; it
 * checks the structure it crosses, not every detail of the grammar (an
 * invalid value that the path does not name may go unnoticed). */
#include "gate_judge.h"

#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 16

struct cursor {
	const char *p, *end;
};

static void skip_ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

/* A string at c->p; on success [*s, *s + *n) is its raw text (escapes kept). */
static bool read_str(struct cursor *c, const char **s, size_t *n)
{
	if (c->p >= c->end || *c->p != '"')
		return false;
	*s = ++c->p;
	while (c->p < c->end && *c->p != '"') {
		if (*c->p == '\\')
			c->p++;
		c->p++;
	}
	if (c->p >= c->end)
		return false;
	*n = (size_t)(c->p - *s);
	c->p++;
	return true;
}

static bool skip_value(struct cursor *c, int depth);

/* An object or array at c->p, skipped. */
static bool skip_container(struct cursor *c, int depth)
{
	char close = *c->p == '{' ? '}' : ']';
	bool object = close == '}', first = true;

	if (depth >= JSON_MAX_DEPTH)
		return false;
	c->p++;
	for (;;) {
		skip_ws(c);
		if (c->p < c->end && *c->p == close && first) {
			c->p++;
			return true;
		}
		if (object) {
			const char *k;
			size_t n;

			if (!read_str(c, &k, &n))
				return false;
			skip_ws(c);
			if (c->p >= c->end || *c->p++ != ':')
				return false;
		}
		if (!skip_value(c, depth + 1))
			return false;
		skip_ws(c);
		if (c->p >= c->end)
			return false;
		if (*c->p == close) {
			c->p++;
			return true;
		}
		if (*c->p++ != ',')
			return false;
		first = false;
	}
}

static bool skip_value(struct cursor *c, int depth)
{
	const char *s;
	size_t n;

	skip_ws(c);
	if (c->p >= c->end)
		return false;
	if (*c->p == '{' || *c->p == '[')
		return skip_container(c, depth);
	if (*c->p == '"')
		return read_str(c, &s, &n);
	s = c->p;
	while (c->p < c->end && strchr(",}] \t\r\n", *c->p) == NULL)
		c->p++;
	return c->p > s;
}

/* A JSON number at c->p, whole: strtod would also take "inf" or hex. */
static bool read_number(struct cursor *c, double *out)
{
	char buf[64];
	const char *s = c->p;
	size_t n;
	char *end;

	while (c->p < c->end && strchr("+-0123456789.eE", *c->p) && *c->p)
		c->p++;
	n = (size_t)(c->p - s);
	/* A number inside an object is followed by something: one at the end
	 * of the text may have been cut (gate_http reads a bounded start). */
	if (n == 0 || n >= sizeof(buf) || c->p >= c->end ||
	    !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtod(buf, &end);
	return *end == '\0';
}

bool gate_json_number(const char *json, size_t len, const char *path, double *out)
{
	struct cursor c = { json, json + len };
	int depth = 0;

	for (;;) {
		const char *seg = path, *dot = strchr(path, '.');
		size_t seglen = dot ? (size_t)(dot - path) : strlen(path);
		bool first = true;

		skip_ws(&c);
		if (c.p >= c.end || *c.p != '{' || ++depth > JSON_MAX_DEPTH)
			return false;
		c.p++;
		for (;;) {
			const char *k;
			size_t n;

			skip_ws(&c);
			if (first && c.p < c.end && *c.p == '}')
				return false;
			if (!read_str(&c, &k, &n))
				return false;
			skip_ws(&c);
			if (c.p >= c.end || *c.p++ != ':')
				return false;
			if (n == seglen && memcmp(k, seg, n) == 0)
				break;
			if (!skip_value(&c, depth))
				return false;
			skip_ws(&c);
			if (c.p >= c.end || *c.p != ',')
				return false; /* the object ended without the key */
			c.p++;
			first = false;
		}
		skip_ws(&c);
		if (!dot)
			return read_number(&c, out);
		path = dot + 1;
	}
}

/* The status of an "HTTP/1.x NNN ..." line, or 0. */
static unsigned status_of(const char *r, size_t len)
{
	if (len < 12 || memcmp(r, "HTTP/1.", 7) != 0 || r[8] != ' ')
		return 0;
	for (int i = 9; i < 12; i++)
		if (r[i] < '0' || r[i] > '9')
			return 0;
	return (unsigned)((r[9] - '0') * 100 + (r[10] - '0') * 10 + (r[11] - '0'));
}

bool gate_judge(const struct plan_gate *g, const char *r, size_t len, char *why, size_t whylen)
{
	unsigned status = status_of(r, len);
	const char *body = NULL;
	double v;

	for (size_t i = 0; i + 3 < len && !body; i++)
		if (memcmp(r + i, "\r\n\r\n", 4) == 0)
			body = r + i + 4;
	if (status == 0 || !body) {
		snprintf(why, whylen, "not an HTTP response");
		return false;
	}
	if (status != g->expect_status) {
		snprintf(why, whylen, "status %u, expected %u", status, g->expect_status);
		return false;
	}
	if (!g->json) {
		snprintf(why, whylen, "status %u", status);
		return true;
	}
	if (!gate_json_number(body, len - (size_t)(body - r), g->json, &v)) {
		snprintf(why, whylen, "status %u, no number at %s", status, g->json);
		return false;
	}
	if (g->has_min && v < g->min) {
		snprintf(why, whylen, "status %u, %s %g < %g", status, g->json, v, g->min);
		return false;
	}
	if (g->has_max && v > g->max) {
		snprintf(why, whylen, "status %u, %s %g > %g", status, g->json, v, g->max);
		return false;
	}
	snprintf(why, whylen, "status %u, %s %g within bounds", status, g->json, v);
	return true;
}
