/* SPDX-License-Identifier: Apache-2.0 */
/* pattern: parsing of path patterns and rewrite templates. */
#include "pattern.h"

#include <stdio.h>
#include <string.h>

bool path_byte_ok(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	switch (c) {
	case '-': case '.': case '_': case '~':                       /* unreserved */
	case '!': case '$': case '&': case '\'': case '(': case ')': /* sub-delims */
	case '*': case '+': case ',': case ';': case '=':
	case ':': case '@': case '%': case '/':
		return true;
	default:
		return false;
	}
}

/* Length of a dot-segment's dots: "." is 1, "%2e%2E" is 2; 0 otherwise. */
static int dots(const char *s, size_t len)
{
	int n = 0;
	size_t i = 0;

	while (i < len) {
		if (s[i] == '.') {
			i++;
		} else if (len - i >= 3 && s[i] == '%' && s[i + 1] == '2' &&
			   (s[i + 2] == 'e' || s[i + 2] == 'E')) {
			i += 3;
		} else {
			return 0;
		}
		n++;
	}
	return n;
}

bool path_has_dot_segment(const char *s, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i == len || s[i] == '/') {
			int n = dots(s + start, i - start);

			if (n == 1 || n == 2)
				return true;
			start = i + 1;
		}
	}
	return false;
}

static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len > CAPTURE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return false;
	}
	return true;
}

static bool fail(char *why, size_t whylen, const char *reason)
{
	snprintf(why, whylen, "%s", reason);
	return false;
}

/* reason_fmt takes one "%.*s" argument: arg[0..arglen). */
static bool failf(char *why, size_t whylen, const char *reason_fmt, const char *arg,
		  size_t arglen)
{
	snprintf(why, whylen, reason_fmt, (int)arglen, arg);
	return false;
}

static bool literal_ok(const char *s, size_t len, char *why, size_t whylen)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '{' || c == '}')
			return failf(why, whylen, "misplaced '%.*s': a capture is '/{name}' or ends "
				    "the path as '{name...}'", s + i, 1);
		if (!path_byte_ok(c) || c == '/') {
			if (c >= 0x21 && c < 0x7f)
				return failf(why, whylen, "character '%.*s' is not allowed in a path",
					    s + i, 1);
			snprintf(why, whylen, "byte 0x%02x is not allowed in a path", c);
			return false;
		}
	}
	return true;
}

static bool add_capture_name(struct pattern *p, int *ncaptures, struct span name,
			     char *why, size_t whylen)
{
	if (!name_ok(name.ptr, name.len))
		return failf(why, whylen, "bad capture name '%.*s' (letters, digits, '_', "
			    "at most 32)", name.ptr, name.len);
	if (pattern_capture(p, name.ptr, name.len) != -2)
		return failf(why, whylen, "capture '%.*s' appears twice", name.ptr, name.len);
	if (++*ncaptures > PATTERN_MAX_CAPTURES) {
		snprintf(why, whylen, "more than %d captures", PATTERN_MAX_CAPTURES);
		return false;
	}
	return true;
}

/* Appends one segment, literal or capture; false past PATTERN_MAX_SEGMENTS. */
static bool add_segment(struct pattern *p, struct span text, bool capture, char *why,
			size_t whylen)
{
	if (p->nsegments == PATTERN_MAX_SEGMENTS) {
		snprintf(why, whylen, "more than %d segments", PATTERN_MAX_SEGMENTS);
		return false;
	}
	p->segment[p->nsegments] = text;
	p->is_capture[p->nsegments++] = capture;
	return true;
}

bool pattern_parse(const char *s, size_t len, struct pattern *p, char *why, size_t whylen)
{
	int ncaptures = 0;
	size_t pos = 0;

	memset(p, 0, sizeof(*p));
	if (len > PATTERN_MAX_LEN) {
		snprintf(why, whylen, "longer than %d bytes", PATTERN_MAX_LEN);
		return false;
	}
	if (len == 0 || s[0] != '/')
		return fail(why, whylen, "must start with '/'");
	while (pos < len) {
		/* s[pos] == '/': one segment follows, up to the next '/' */
		size_t start = pos + 1, end = start;

		while (end < len && s[end] != '/')
			end++;
		if (end == start)
			return fail(why, whylen, "empty segment ('//' or a trailing '/')");
		const char *seg = s + start;
		size_t seglen = end - start;
		const char *brace = memchr(seg, '{', seglen);

		if (brace) {
			size_t lit = (size_t)(brace - seg);
			bool tail = seglen - lit > 5 && memcmp(s + end - 4, "...}", 4) == 0;
			struct span name = { brace + 1, seglen - lit - (tail ? 5 : 2) };

			if (s[end - 1] != '}' || (!tail && lit > 0) || (tail && end != len))
				return failf(why, whylen, "misplaced '{' in '%.*s': a capture is "
					    "'/{name}' or ends the path as '{name...}'", seg, seglen);
			if (!add_capture_name(p, &ncaptures, name, why, whylen))
				return false;
			if (!literal_ok(seg, lit, why, whylen))
				return false;
			if (dots(seg, lit) == 1 || dots(seg, lit) == 2)
				return failf(why, whylen, "'%.*s' segments are not allowed", seg, lit);
			if (tail) {
				if (lit > 0) {
					if (!add_segment(p, (struct span){ seg, lit }, false, why, whylen))
						return false;
					p->tail = TAIL_SEGMENT;
				} else {
					p->tail = TAIL_DIR;
				}
				p->tail_name = name;
			} else if (!add_segment(p, name, true, why, whylen)) {
				return false;
			}
		} else {
			if (!literal_ok(seg, seglen, why, whylen))
				return false;
			if (dots(seg, seglen) == 1 || dots(seg, seglen) == 2)
				return failf(why, whylen, "'%.*s' segments are not allowed", seg, seglen);
			if (!add_segment(p, (struct span){ seg, seglen }, false, why, whylen))
				return false;
		}
		pos = end;
	}
	return true;
}

int pattern_capture(const struct pattern *p, const char *name, size_t len)
{
	for (int i = 0; i < p->nsegments; i++)
		if (p->is_capture[i] && p->segment[i].len == len &&
		    memcmp(p->segment[i].ptr, name, len) == 0)
			return i;
	if (p->tail != TAIL_NONE && p->tail_name.len == len &&
	    memcmp(p->tail_name.ptr, name, len) == 0)
		return CAPTURE_TAIL;
	return -2;
}

void pattern_capture_list(const struct pattern *p, char *buf, size_t cap)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i <= p->nsegments; i++) {
		const struct span *name = NULL;

		if (i < p->nsegments && p->is_capture[i])
			name = &p->segment[i];
		else if (i == p->nsegments && p->tail != TAIL_NONE)
			name = &p->tail_name;
		if (!name || used >= cap)
			continue;
		int n = snprintf(buf + used, cap - used, "%s%.*s", used ? ", " : "",
				 (int)name->len, name->ptr);
		if (n > 0)
			used += (size_t)n;
	}
	if (!used)
		snprintf(buf, cap, "none");
}

bool template_parse(const char *s, size_t len, const struct pattern *p,
		    struct template_parsed *out, char *why, size_t whylen)
{
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	if (len > PATTERN_MAX_LEN) {
		snprintf(why, whylen, "longer than %d bytes", PATTERN_MAX_LEN);
		return false;
	}
	if (len < 2 || s[0] != '/' || s[1] == '/' || s[1] == '{')
		return fail(why, whylen, "must start with '/' and a literal path character");
	while (pos < len) {
		struct template_part *part = &out->part[out->nparts];

		if (out->nparts == TEMPLATE_MAX_PARTS) {
			snprintf(why, whylen, "more than %d parts", TEMPLATE_MAX_PARTS);
			return false;
		}
		if (s[pos] == '{') {
			const char *close = memchr(s + pos, '}', len - pos);
			size_t namelen;

			if (!close)
				return fail(why, whylen, "'{' without '}'");
			namelen = (size_t)(close - (s + pos)) - 1;
			part->source = pattern_capture(p, s + pos + 1, namelen);
			if (part->source == -2) {
				char list[256];

				pattern_capture_list(p, list, sizeof(list));
				snprintf(why, whylen, "capture '%.*s' is not in the path (it has: %s)",
					 (int)namelen, s + pos + 1, list);
				return false;
			}
			pos += namelen + 2;
		} else {
			size_t end = pos;

			while (end < len && s[end] != '{')
				end++;
			for (size_t i = pos; i < end; i++) {
				unsigned char c = (unsigned char)s[i];

				if (c == '}')
					return fail(why, whylen, "'}' without '{'");
				if (!path_byte_ok(c)) {
					if (c >= 0x21 && c < 0x7f)
						return failf(why, whylen, "character '%.*s' is not "
							    "allowed in a path", s + i, 1);
					snprintf(why, whylen, "byte 0x%02x is not allowed in a path", c);
					return false;
				}
			}
			part->source = TEMPLATE_LITERAL;
			part->literal = (struct span){ s + pos, end - pos };
			pos = end;
		}
		out->nparts++;
	}
	return true;
}
