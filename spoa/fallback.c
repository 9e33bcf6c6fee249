/* SPDX-License-Identifier: Apache-2.0 */
/* fallback: the map of the plan's current phase (format in fallback.h). */
#include "fallback.h"

#include "method.h"
#include "plan_types.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Every plan is expressible: a route has at most PATTERN_MAX_CAPTURES
 * captures, each one back-reference at most, and HAProxy knows \1 to \9. */
_Static_assert(PATTERN_MAX_CAPTURES <= 9, "a capture needs a back-reference");

/* HAProxy reads a map file line into a buffer of tune.bufsize (16384 by
 * default). The longest line a valid plan can give, counted generously:
 * every literal byte escaped (2 bytes), each segment's group syntax, every
 * method named, the host escaped, the template with a back-reference per
 * part, and the names. */
#define LONGEST_LINE (2 * PATTERN_MAX_LEN + 8 * PATTERN_MAX_SEGMENTS + 64 + \
		      2 * PLAN_MAX_HOST + 16 + PATTERN_MAX_LEN + 2 * TEMPLATE_MAX_PARTS + \
		      2 * PLAN_MAX_NAME + 16)
_Static_assert(LONGEST_LINE < 16384, "a map line must fit HAProxy's buffer");

struct sorting {
	const struct plan *plan;
	int route;
};

/* What a pattern has at segment i: a literal (0, text in *lit), a capture
 * (1), or, past its segments, its end: exact (2), "/{rest...}" (3) or
 * "{rest...}" glued to the last segment (4). This is the router's order at
 * each trie node: literal child, capture child, then the slots. */
static int shape(const struct pattern *p, int i, struct span *lit)
{
	if (i < p->nsegments) {
		*lit = p->segment[i];
		return p->is_capture[i] ? 1 : 0;
	}
	return p->tail == TAIL_NONE ? 2 : p->tail == TAIL_DIR ? 3 : 4;
}

/* Precedence: more specific pattern first; among equal shapes, routes with
 * a host, then file order. Two patterns with different literals at the same
 * place never match the same request; their order only keeps the output
 * stable. */
static int precedence(const void *va, const void *vb)
{
	const struct sorting *a = va, *b = vb;
	const struct route *ra = &a->plan->routes[a->route];
	const struct route *rb = &b->plan->routes[b->route];

	for (int i = 0;; i++) {
		struct span la = { 0 }, lb = { 0 };
		int sa = shape(&ra->pattern, i, &la), sb = shape(&rb->pattern, i, &lb);

		if (sa != sb)
			return sa - sb;
		if (sa >= 2)
			break;
		if (sa == 0 && (la.len != lb.len || memcmp(la.ptr, lb.ptr, la.len) != 0)) {
			if (la.len != lb.len)
				return la.len < lb.len ? -1 : 1;
			return memcmp(la.ptr, lb.ptr, la.len);
		}
	}
	if (!ra->host != !rb->host)
		return ra->host ? -1 : 1;
	return a->route - b->route;
}

/* Regex literal: every byte but letters and digits escaped. */
static void put_literal(FILE *out, const char *s, size_t len, bool lower)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (lower && c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')))
			fputc('\\', out);
		fputc(c, out);
	}
}

static void put_methods(FILE *out, unsigned methods)
{
	static const struct { unsigned bit; const char *name; } known[] = {
		{ METHOD_GET, "GET" }, { METHOD_HEAD, "HEAD" }, { METHOD_POST, "POST" },
		{ METHOD_PUT, "PUT" }, { METHOD_PATCH, "PATCH" }, { METHOD_DELETE, "DELETE" },
		{ METHOD_OPTIONS, "OPTIONS" }, { METHOD_TRACE, "TRACE" },
		{ METHOD_CONNECT, "CONNECT" },
	};
	bool first = true;

	if (methods == METHODS_ALL) {
		fputs("[^\\x20]+", out);
		return;
	}
	/* a plan names methods only; METHOD_OTHER comes with all of them */
	fputs("(?:", out);
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (!(methods & known[i].bit))
			continue;
		fprintf(out, "%s%s", first ? "" : "|", known[i].name);
		first = false;
	}
	fputc(')', out);
}

/* Marks the captures tpl refers to: used[segment index], and
 * used[PATTERN_MAX_SEGMENTS] for the tail. Only those get a regex group. */
static void captures_used(const struct template *tpl, bool used[PATTERN_MAX_SEGMENTS + 1])
{
	for (int i = 0; tpl && i < tpl->parsed.nparts; i++) {
		int src = tpl->parsed.part[i].source;

		if (src != TEMPLATE_LITERAL)
			used[src == CAPTURE_TAIL ? PATTERN_MAX_SEGMENTS : src] = true;
	}
}

/* The key of route r: anchored, methods, host, path; a capturing group for
 * each capture tpl uses, in pattern order. */
static void put_key(FILE *out, const struct route *r, const struct template *tpl)
{
	const struct pattern *p = &r->pattern;
	bool used[PATTERN_MAX_SEGMENTS + 1] = { false };

	captures_used(tpl, used);
	fputc('^', out);
	put_methods(out, r->methods);
	fputs("\\x20", out);
	if (r->host)
		put_literal(out, r->host, r->host_len, true);
	else
		fputs("[^\\x20]*", out);
	fputs("\\x20", out);
	for (int i = 0; i < p->nsegments; i++) {
		fputc('/', out);
		if (!p->is_capture[i])
			put_literal(out, p->segment[i].ptr, p->segment[i].len, false);
		else
			fputs(used[i] ? "([^/]+)" : "[^/]+", out);
	}
	const char *open = used[PATTERN_MAX_SEGMENTS] ? "(" : "(?:";
	if (p->tail == TAIL_DIR)
		fprintf(out, "/%s.*)", open);
	else if (p->tail == TAIL_SEGMENT)
		fprintf(out, "%s|/.*)", open); /* the group always takes part */
	fputc('$', out);
}

/* The template with each capture as its back-reference; groups are
 * numbered in the order of the captures in the pattern. */
static void put_template(FILE *out, const struct pattern *p, const struct template *tpl)
{
	bool used[PATTERN_MAX_SEGMENTS + 1] = { false };
	int group[PATTERN_MAX_SEGMENTS + 1] = { 0 };
	int n = 0;

	captures_used(tpl, used);
	for (int i = 0; i < p->nsegments; i++)
		if (p->is_capture[i] && used[i])
			group[i] = ++n;
	if (used[PATTERN_MAX_SEGMENTS])
		group[PATTERN_MAX_SEGMENTS] = ++n;
	for (int i = 0; i < tpl->parsed.nparts; i++) {
		const struct template_part *part = &tpl->parsed.part[i];

		if (part->source == TEMPLATE_LITERAL)
			fwrite(part->literal.ptr, 1, part->literal.len, out);
		else
			fprintf(out, "\\%d", group[part->source == CAPTURE_TAIL ? PATTERN_MAX_SEGMENTS
										: part->source]);
	}
}

int fallback_write_map(const struct plan *plan, FILE *out)
{
	const struct phase *ph = &plan->phases[plan->current];
	struct sorting *order = calloc((size_t)plan->nroutes, sizeof(*order));

	if (!order)
		return -1;
	for (int i = 0; i < plan->nroutes; i++)
		order[i] = (struct sorting){ plan, i };
	qsort(order, (size_t)plan->nroutes, sizeof(*order), precedence);

	fprintf(out, "# cutover fallback map, written by cutover-spoa from %s: phase %u (%s).\n"
		     "# Do not edit: the agent rewrites it for every plan it accepts.\n"
		     "# key <method> <host> <path>; value phase|route|backend|status|"
		     "deprecated|path-or-link\n",
		plan->file ? plan->file : "the plan", ph->number, ph->name);
	for (int k = 0; k < plan->nroutes; k++) {
		const struct route *r = &plan->routes[order[k].route];
		const struct action *a = ph->action[order[k].route];

		if (a->percent) /* the map cannot hash clients: all keep the old side */
			a = a->base;

		put_key(out, r, a->tpl);
		fprintf(out, " %u|%s|", ph->number, r->name);
		if (a->kind == ACTION_BACKEND)
			fprintf(out, "%s||%s|", plan->backends[a->backend],
				a->deprecated ? r->deprecation->date_sf : "");
		else
			fprintf(out, "|%u||", a->status);
		if (a->tpl)
			put_template(out, &r->pattern, a->tpl);
		fputc('\n', out);
	}
	fprintf(out, "^ %u||%s|||\n", ph->number,
		plan->default_backend >= 0 ? plan->backends[plan->default_backend] : "");
	free(order);
	if (fflush(out) != 0 || ferror(out))
		return -1;
	return plan->nroutes + 1;
}
