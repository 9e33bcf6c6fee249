/* SPDX-License-Identifier: Apache-2.0 */
/* router: a segment trie compiled from the plan's routes, and decisions.
 *
 * Each trie node stands for a sequence of path segments. Its children are
 * literal segments (sorted, found by binary search, or by a hash index
 * (lit_index.h) when there are LIT_INDEXED or more) and at most one capture
 * child; its three slots hold the routes that end there: exact ("/a/b"),
 * segment tail ("/a/b{rest...}") and directory tail ("/a/b/{rest...}").
 * A request walks the trie depth first, literal before capture before the
 * tails, so the most specific pattern wins; a node is visited at most once
 * per request, so the cost follows the path's depth, not the number of
 * routes. Within a slot, routes with a host come first, then file order;
 * the first whose methods and host fit wins. */
#include "router.h"

#include "lit_index.h"
#include "method.h"
#include "plan_types.h"
#include "shift.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct slot {
	const int *route;  /* route indexes, in priority order; &one when n is 1 */
	int n;
	int one;           /* a slot's only route is kept in the node itself */
};

/* Literal children looked up by hash from this many on; fewer are binary
 * searched (a threshold chosen, not tuned). */
#define LIT_INDEXED 8

struct lit_edge {
	struct span text;
	struct trie_node *node;
};

struct trie_node {
	const struct span *lit_text;  /* nlit, sorted by length, then bytes */
	struct trie_node **lit_node;  /* lit_node[i]: the child for lit_text[i] */
	const struct lit_index *index; /* positions in lit_text; NULL below LIT_INDEXED */
	int nlit;
	struct trie_node *capture;
	struct slot exact, tail_segment, tail_dir;
};

/* Build-time lists, turned into the arrays above by finish(). */
struct build_edge {
	struct lit_edge edge;
	struct build_edge *next;
};

struct build_slot {
	int route;
	struct build_slot *next;
};

struct build_node {
	struct trie_node node;
	struct build_edge *edges;
	struct build_slot *exact, *tail_segment, *tail_dir;
};

static int span_cmp(const struct span *a, const struct span *b)
{
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	return memcmp(a->ptr, b->ptr, a->len);
}

static int edge_cmp(const void *a, const void *b)
{
	return span_cmp(&((const struct lit_edge *)a)->text, &((const struct lit_edge *)b)->text);
}

static struct build_node *new_node(struct arena *a)
{
	return arena_alloc(a, sizeof(struct build_node));
}

/* node.capture and edge nodes point at build_nodes until finish() runs;
 * struct trie_node is the first member, so the pointers convert. */
static struct build_node *as_build(struct trie_node *n)
{
	return (struct build_node *)n;
}

static bool insert(struct arena *a, struct build_node *root, const struct route *r, int index)
{
	const struct pattern *p = &r->pattern;
	struct build_node *n = root;
	struct build_slot *s, **list;

	for (int i = 0; i < p->nsegments; i++) {
		struct build_node *child = NULL;

		if (p->is_capture[i]) {
			if (!n->node.capture) {
				child = new_node(a);
				if (!child)
					return false;
				n->node.capture = &child->node;
			}
			n = as_build(n->node.capture);
			continue;
		}
		for (struct build_edge *e = n->edges; e && !child; e = e->next)
			if (span_cmp(&e->edge.text, &p->segment[i]) == 0)
				child = as_build(e->edge.node);
		if (!child) {
			struct build_edge *e = arena_alloc(a, sizeof(*e));

			child = new_node(a);
			if (!e || !child)
				return false;
			e->edge.text = p->segment[i];
			e->edge.node = &child->node;
			e->next = n->edges;
			n->edges = e;
			n->node.nlit++;
		}
		n = child;
	}
	list = p->tail == TAIL_SEGMENT ? &n->tail_segment
	     : p->tail == TAIL_DIR     ? &n->tail_dir
				       : &n->exact;
	while (*list)
		list = &(*list)->next;
	s = arena_alloc(a, sizeof(*s));
	if (!s)
		return false;
	s->route = index;
	*list = s;
	return true;
}

static bool host_covers(const struct route *wide, const struct route *narrow)
{
	return !wide->host || (narrow->host && wide->host_len == narrow->host_len &&
			       strncasecmp(wide->host, narrow->host, wide->host_len) == 0);
}

/* Methods of narrow that some route of s, among its first `before` ones,
 * takes for every host narrow could see. */
static unsigned covered(const struct plan *p, const struct slot *s, int before,
			const struct route *narrow, int *only)
{
	unsigned bits = 0;

	*only = -1;
	for (int i = 0; i < before; i++) {
		const struct route *wide = &p->routes[s->route[i]];

		if (!host_covers(wide, narrow))
			continue;
		if ((wide->methods & narrow->methods) == narrow->methods && *only < 0)
			*only = s->route[i];
		bits |= wide->methods;
	}
	return bits & narrow->methods;
}

static bool make_slot(const struct plan *p, struct arena *a, struct build_slot *list,
		      struct slot *out)
{
	int n = 0, k = 0;
	int *route;

	for (struct build_slot *s = list; s; s = s->next)
		n++;
	if (!n)
		return true;
	route = n == 1 ? &out->one : arena_array(a, (size_t)n, sizeof(*route));
	if (!route)
		return false;
	for (int pass = 0; pass < 2; pass++) /* routes with a host first */
		for (struct build_slot *s = list; s; s = s->next)
			if (!p->routes[s->route].host == (pass == 1))
				route[k++] = s->route;
	out->route = route;
	out->n = n;
	return true;
}

/* A route no request can reach is a plan error. */
static bool check_reachable(const struct plan *p, const struct trie_node *n,
			    int *bad_route, char *why, size_t whylen)
{
	const struct slot *slots[] = { &n->exact, &n->tail_segment, &n->tail_dir };

	for (int s = 0; s < 3; s++) {
		for (int i = 0; i < slots[s]->n; i++) {
			const struct route *r = &p->routes[slots[s]->route[i]];
			int only, unused;
			unsigned left = r->methods & ~covered(p, slots[s], i, r, &only);
			bool by_specific = false;

			if (left && slots[s] == &n->tail_segment) {
				/* "/a{rest...}" sees "/a" after the exact routes and
				 * "/a/..." after the directory-tail ones */
				left &= ~(covered(p, &n->exact, n->exact.n, r, &unused) &
					  covered(p, &n->tail_dir, n->tail_dir.n, r, &unused));
				by_specific = true;
			}
			if (left)
				continue;
			*bad_route = slots[s]->route[i];
			if (by_specific)
				snprintf(why, whylen, "route '%s' can never match: more specific "
					 "routes take all its requests", r->name);
			else if (only >= 0)
				snprintf(why, whylen, "route '%s' can never match: route '%s' "
					 "takes all its requests", r->name, p->routes[only].name);
			else
				snprintf(why, whylen, "route '%s' can never match: the routes "
					 "before it take all its requests", r->name);
			return false;
		}
	}
	return true;
}

/* Turns build lists into sorted arrays, depth first; checks reachability. */
static bool finish(const struct plan *p, struct arena *a, struct build_node *b,
		   int *bad_route, char *why, size_t whylen)
{
	struct trie_node *n = &b->node;
	int k = 0;

	if (n->nlit) {
		struct lit_edge *sorted = arena_array(a, (size_t)n->nlit, sizeof(*sorted));
		struct span *text = arena_array(a, (size_t)n->nlit, sizeof(*text));

		n->lit_node = arena_array(a, (size_t)n->nlit, sizeof(*n->lit_node));
		if (!sorted || !text || !n->lit_node)
			goto oom;
		for (struct build_edge *e = b->edges; e; e = e->next)
			sorted[k++] = e->edge;
		qsort(sorted, (size_t)n->nlit, sizeof(*sorted), edge_cmp);
		for (int i = 0; i < n->nlit; i++) {
			text[i] = sorted[i].text;
			n->lit_node[i] = sorted[i].node;
		}
		n->lit_text = text;
		if (n->nlit >= LIT_INDEXED) {
			n->index = lit_index_build(a, text, n->nlit, lit_index_hash);
			if (!n->index)
				goto oom;
		}
		for (int i = 0; i < n->nlit; i++)
			if (!finish(p, a, as_build(n->lit_node[i]), bad_route, why, whylen))
				return false;
	}
	if (n->capture && !finish(p, a, as_build(n->capture), bad_route, why, whylen))
		return false;
	if (!make_slot(p, a, b->exact, &n->exact) ||
	    !make_slot(p, a, b->tail_segment, &n->tail_segment) ||
	    !make_slot(p, a, b->tail_dir, &n->tail_dir))
		goto oom;
	return check_reachable(p, n, bad_route, why, whylen);
oom:
	*bad_route = -1;
	snprintf(why, whylen, "out of memory");
	return false;
}

bool router_compile(struct plan *p, int *bad_route, char *why, size_t whylen)
{
	struct build_node *root = new_node(&p->arena);

	*bad_route = -1;
	if (!root) {
		snprintf(why, whylen, "out of memory");
		return false;
	}
	for (int i = 0; i < p->nroutes; i++) {
		if (!insert(&p->arena, root, &p->routes[i], i)) {
			snprintf(why, whylen, "out of memory");
			return false;
		}
	}
	if (!finish(p, &p->arena, root, bad_route, why, whylen))
		return false;
	p->root = &root->node;
	return true;
}

/* ---- request time: no allocation from here on ---- */

struct walk {
	const struct plan *plan;
	const char *path;
	size_t len;
	unsigned method;
	const char *host;      /* without its port; NULL when absent */
	size_t host_len;
	struct rewrite *rw;    /* its segment[] and tail: the captures */
	int route;
};

static bool pick(struct walk *w, const struct slot *s)
{
	for (int i = 0; i < s->n; i++) {
		const struct route *r = &w->plan->routes[s->route[i]];

		if (!(r->methods & w->method))
			continue;
		if (r->host && !(w->host && w->host_len == r->host_len &&
				 strncasecmp(w->host, r->host, r->host_len) == 0))
			continue;
		w->route = s->route[i];
		return true;
	}
	return false;
}

static const struct trie_node *find_literal(const struct trie_node *n, struct span seg)
{
	int lo = 0, hi = n->nlit;

	if (n->index) {
		int at = lit_index_find(n->index, lit_index_hash(seg.ptr, seg.len), seg.ptr, seg.len);

		return at < 0 ? NULL : n->lit_node[at];
	}
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		int c = span_cmp(&seg, &n->lit_text[mid]);

		if (c == 0)
			return n->lit_node[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* pos is the end of the path or a '/'; depth segments were matched. */
static bool walk(struct walk *w, const struct trie_node *n, size_t pos, int depth)
{
	if (pos == w->len) {
		w->rw->tail = (struct span){ w->path + pos, 0 };
		return pick(w, &n->exact) || pick(w, &n->tail_segment);
	}
	size_t start = pos + 1;
	const char *slash = memchr(w->path + start, '/', w->len - start);
	size_t end = slash ? (size_t)(slash - w->path) : w->len;
	struct span seg = { w->path + start, end - start };

	if (depth < PATTERN_MAX_SEGMENTS) {
		const struct trie_node *child = n->nlit ? find_literal(n, seg) : NULL;

		w->rw->segment[depth] = seg;
		if (child && walk(w, child, end, depth + 1))
			return true;
		if (n->capture && seg.len > 0 && walk(w, n->capture, end, depth + 1))
			return true;
	}
	w->rw->tail = (struct span){ w->path + start, w->len - start };
	if (pick(w, &n->tail_dir))
		return true;
	w->rw->tail = (struct span){ w->path + pos, w->len - pos };
	return pick(w, &n->tail_segment);
}

/* Host without a trailing ":port" (kept for "[v6]" without port). */
static size_t host_name_len(const char *host, size_t len)
{
	size_t i = len;

	while (i > 0 && host[i - 1] >= '0' && host[i - 1] <= '9')
		i--;
	return i > 0 && host[i - 1] == ':' ? i - 1 : len;
}

static struct span part_text(const struct template_part *part, const struct rewrite *rw)
{
	return part->source == TEMPLATE_LITERAL ? part->literal
	     : part->source == CAPTURE_TAIL     ? rw->tail
						: rw->segment[part->source];
}

size_t router_rewrite_len(const struct rewrite *rw)
{
	size_t len = 0;

	for (int i = 0; rw->tpl && i < rw->tpl->parsed.nparts; i++)
		len += part_text(&rw->tpl->parsed.part[i], rw).len;
	return len;
}

unsigned router_rewrite_write(const struct rewrite *rw, char *dst)
{
	size_t len = 0;

	for (int i = 0; rw->tpl && i < rw->tpl->parsed.nparts; i++) {
		const struct template_part *part = &rw->tpl->parsed.part[i];
		struct span s = part_text(part, rw);

		if (part->source != TEMPLATE_LITERAL)
			for (size_t k = 0; k < s.len; k++)
				if (!path_byte_ok((unsigned char)s.ptr[k]))
					return 400;
		memcpy(dst + len, s.ptr, s.len);
		len += s.len;
	}
	if ((len >= 2 && dst[1] == '/') || path_has_dot_segment(dst, len))
		return 400;
	return 0;
}

/* One segment's dot-segment state, fed a byte at a time: what dots() and
 * path_has_dot_segment() decide on the whole string. */
struct dot_state {
	int dots;  /* "." or "%2e" seen in this segment so far */
	int esc;   /* 1 after '%', 2 after "%2" */
	bool other; /* a byte that makes it no dot segment */
};

static bool dot_segment_ends(const struct dot_state *st)
{
	return !st->other && st->esc == 0 && (st->dots == 1 || st->dots == 2);
}

static void dot_feed(struct dot_state *st, char c)
{
	if (st->esc == 0 && c == '.')
		st->dots++;
	else if (st->esc == 0 && c == '%')
		st->esc = 1;
	else if (st->esc == 1 && c == '2')
		st->esc = 2;
	else if (st->esc == 2 && (c == 'e' || c == 'E'))
		st->esc = 0, st->dots++;
	else
		st->other = true;
}

unsigned router_rewrite_refusal(const struct rewrite *rw)
{
	struct dot_state st = { 0 };
	size_t at = 0;

	for (int i = 0; rw->tpl && i < rw->tpl->parsed.nparts; i++) {
		const struct template_part *part = &rw->tpl->parsed.part[i];
		struct span s = part_text(part, rw);

		for (size_t k = 0; k < s.len; k++, at++) {
			char c = s.ptr[k];
			if (part->source != TEMPLATE_LITERAL && !path_byte_ok((unsigned char)c))
				return 400;
			if (at == 1 && c == '/')
				return 400;
			if (c != '/') {
				dot_feed(&st, c);
				continue;
			}
			if (dot_segment_ends(&st))
				return 400;
			st = (struct dot_state){ 0 };
		}
	}
	return dot_segment_ends(&st) ? 400 : 0;
}

void router_refuse(struct decision *d, unsigned status)
{
	d->status = status;
	d->backend_index = -1;
	d->backend = NULL;
	d->path = d->link = NULL;
	d->path_len = d->link_len = 0;
}

/* The action req's client takes on a route split at a->percent; the side
 * recorded in d. */
static const struct action *split_side(const struct plan *plan, const struct route_request *req,
				       const struct action *a, struct decision *d)
{
	struct shift_place at;

	shift_place(&plan->clients, req, a->percent, &at);
	d->side = at.side;
	d->percent = a->percent;
	d->bucket = at.bucket;
	d->forced = at.forced;
	return at.side == SIDE_NEW ? a : a->base;
}

void router_match(const struct plan *plan, int phase_index, const struct route_request *req,
		  struct decision *out, struct rewrite *rw)
{
	struct walk w;
	const struct phase *ph;
	const struct action *a;

	if (phase_index < 0 || phase_index >= plan->nphases)
		phase_index = plan->current;
	ph = &plan->phases[phase_index];
	*out = (struct decision){ .phase = ph->number, .phase_name = ph->name,
				  .phase_index = phase_index, .route_index = -1,
				  .backend_index = -1, .bucket = -1 };
	rw->tpl = NULL; /* segment[] is written before it is read */
	w.route = -1;
	if (req->path && req->path_len > 0 && req->path[0] == '/') {
		w.plan = plan;
		w.path = req->path;
		w.len = req->path_len;
		w.method = method_bit(req->method, req->method_len);
		w.host = req->host;
		w.host_len = req->host ? host_name_len(req->host, req->host_len) : 0;
		w.rw = rw;
		walk(&w, plan->root, 0, 0);
	}
	if (w.route < 0) {
		out->backend_index = plan->default_backend;
		out->backend = plan->default_backend >= 0 ? plan->backends[plan->default_backend]
							  : NULL;
		return;
	}
	a = ph->action[w.route];
	if (a->percent)
		a = split_side(plan, req, a, out);
	out->route_index = w.route;
	out->route = plan->routes[w.route].name;
	if (a->kind == ACTION_BACKEND) {
		out->backend_index = a->backend;
		out->backend = plan->backends[a->backend];
		out->deprecated = a->deprecated;
	} else {
		out->status = a->status;
	}
	rw->tpl = a->tpl;
	rw->link = a->kind != ACTION_BACKEND;
}

void router_decide_in(const struct plan *plan, int phase_index,
		      const struct route_request *req, struct decision *out,
		      char *scratch, size_t scratch_cap)
{
	struct rewrite rw;

	router_match(plan, phase_index, req, out, &rw);
	if (!rw.tpl)
		return;
	size_t len = router_rewrite_len(&rw);
	unsigned refused = len < scratch_cap ? router_rewrite_write(&rw, scratch)
					     : router_rewrite_refusal(&rw);
	if (len >= scratch_cap && !refused)
		refused = 414;
	if (refused) {
		router_refuse(out, refused);
		return;
	}
	scratch[len] = '\0';
	if (rw.link) {
		out->link = scratch;
		out->link_len = len;
	} else {
		out->path = scratch;
		out->path_len = len;
	}
}

void router_decide(const struct plan *plan, const struct route_request *req,
		   struct decision *out, char *scratch, size_t scratch_cap)
{
	router_decide_in(plan, plan->current, req, out, scratch, scratch_cap);
}
