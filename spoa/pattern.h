/* SPDX-License-Identifier: Apache-2.0 */
/* pattern: the path patterns and templates of a plan, parsed.
 *
 * A pattern is '/'-separated segments, each a literal or a capture "{name}"
 * (one non-empty segment), optionally ended by a tail capture "{name...}":
 *   /query/api/squids/{id}      exact: four segments, the last captured
 *   /query/api/squids{rest...}  squids, then the end or "/..." (rest keeps its '/')
 *   /query/{rest...}            query, then "/" and anything (rest after the '/')
 * A template is literal text and "{name}" references to a pattern's captures.
 * Pure string parsing: no allocation, no I/O. */
#ifndef CUTOVER_PATTERN_H
#define CUTOVER_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#define PATTERN_MAX_LEN 1024
#define PATTERN_MAX_SEGMENTS 32
#define PATTERN_MAX_CAPTURES 8
#define CAPTURE_NAME_MAX 32
#define TEMPLATE_MAX_PARTS 32

struct span {
	const char *ptr;
	size_t len;
};

enum tail_kind {
	TAIL_NONE,
	TAIL_SEGMENT, /* "squids{rest...}": the end, or '/' and anything; rest keeps the '/' */
	TAIL_DIR,     /* "/{rest...}": '/' and anything; rest is what follows the '/' */
};

struct pattern {
	int nsegments;
	struct span segment[PATTERN_MAX_SEGMENTS];  /* literal text, or capture name */
	bool is_capture[PATTERN_MAX_SEGMENTS];
	enum tail_kind tail;
	struct span tail_name;
};

/* Where a capture's text comes from when a request matches. */
#define CAPTURE_TAIL (-1)

/* Parses s[0..len). On error returns false and writes the reason to why. */
bool pattern_parse(const char *s, size_t len, struct pattern *out, char *why, size_t whylen);

/* Segment index of the capture called name, CAPTURE_TAIL for the tail
 * capture, or -2 when the pattern has no such capture. */
int pattern_capture(const struct pattern *p, const char *name, size_t len);

/* Writes the pattern's capture names, comma-separated, to buf. */
void pattern_capture_list(const struct pattern *p, char *buf, size_t cap);

struct template_part {
	struct span literal; /* used when source == TEMPLATE_LITERAL */
	int source;          /* TEMPLATE_LITERAL, CAPTURE_TAIL or a segment index */
};

#define TEMPLATE_LITERAL (-2)

struct template_parsed {
	int nparts;
	struct template_part part[TEMPLATE_MAX_PARTS];
};

/* Parses template s[0..len) against pattern p: every reference must name
 * one of p's captures, literals may hold only path characters, and the
 * result must start with a single '/'. */
bool template_parse(const char *s, size_t len, const struct pattern *p,
		    struct template_parsed *out, char *why, size_t whylen);

/* True for the bytes a rewritten path may hold: RFC 3986 pchar, '/' and '%'.
 * Excludes controls, space, '?', '#', '\\', non-ASCII and the like. */
bool path_byte_ok(unsigned char c);

/* True when some '/'-separated segment of s is "." or "..", also when
 * written with %2e. */
bool path_has_dot_segment(const char *s, size_t len);

#endif
