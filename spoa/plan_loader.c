/* SPDX-License-Identifier: Apache-2.0 */
/* plan_loader: YAML (through yamltree) into a validated plan.
 *
 * The loader walks the tree in a fixed order (clients, backends,
 * default_backend, routes, phases, phase, override) and stops at the first error, which it reports as
 * "file:line:column: reason". Everything the plan keeps lives in its arena,
 * the tree in a second arena released before returning, so no error path
 * can leak. */
#include "plan_loader.h"

#include "httpdate.h"
#include "method.h"
#include "plan.h"
#include "plan_types.h"
#include "yamltree.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct route_ref {
	const char *name;
	size_t len;
	int index;
};

struct loader {
	struct plan *plan;
	const char *file;
	char *err;
	size_t errlen;
	plan_routes_check *check_routes;
	const struct ynode **route_node; /* where each route is defined */
	struct route_ref *by_name;       /* routes sorted by name, for lookups */
	const struct ynode **phase_key;  /* per route: its key in the phase being
	                                    loaded, NULL when inherited */
};

__attribute__((format(printf, 3, 4)))
static bool fail(struct loader *l, const struct ynode *at, const char *fmt, ...)
{
	char reason[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	snprintf(l->err, l->errlen, "%s:%u:%u: %s", l->file, at ? at->line : 1,
		 at ? at->column : 1, reason);
	return false;
}

/* A scalar's text fit for a message: printable ASCII, at most 48 bytes. */
static const char *shown(const struct ynode *n, char *buf, size_t cap)
{
	size_t out = 0;

	for (size_t i = 0; i < n->len && out + 4 < cap; i++) {
		unsigned char c = (unsigned char)n->text[i];

		if (out >= 48) {
			memcpy(buf + out, "...", 3);
			out += 3;
			break;
		}
		buf[out++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	buf[out] = '\0';
	return buf;
}

#define SHOW(n) shown((n), (char[64]){ 0 }, 64)

static bool is(const struct ynode *n, const char *text)
{
	return n->kind == YNODE_SCALAR && n->len == strlen(text) && memcmp(n->text, text, n->len) == 0;
}

/* One key a mapping may hold; read_fields fills in where it was found. */
struct field {
	const char *key;
	const struct ynode *key_node, *value;
};

static bool read_fields(struct loader *l, const struct ynode *map, const char *what,
			struct field *fields, size_t nfields)
{
	if (map->kind != YNODE_MAPPING)
		return fail(l, map, "%s must be a mapping", what);
	for (const struct ynode *k = map->first; k && k->next; k = k->next->next) {
		struct field *f = NULL;

		if (k->kind != YNODE_SCALAR)
			return fail(l, k, "keys must be plain strings");
		for (size_t i = 0; i < nfields && !f; i++)
			if (is(k, fields[i].key))
				f = &fields[i];
		if (!f)
			return fail(l, k, "unknown key '%s' in %s", SHOW(k), what);
		if (f->value)
			return fail(l, k, "duplicate key '%s' (first at %u:%u)", f->key,
				    f->key_node->line, f->key_node->column);
		f->key_node = k;
		f->value = k->next;
	}
	return true;
}

static bool require(struct loader *l, const struct ynode *map, const char *what,
		    const struct field *f)
{
	return f->value ? true : fail(l, map, "missing key '%s' in %s", f->key, what);
}

static bool read_string(struct loader *l, const struct ynode *n, const char *what,
			size_t max, const char **out)
{
	if (n->kind != YNODE_SCALAR)
		return fail(l, n, "'%s' must be a string", what);
	if (n->len == 0)
		return fail(l, n, "'%s' must not be empty", what);
	if (n->len > max)
		return fail(l, n, "'%s' is longer than %zu bytes", what, max);
	if (memchr(n->text, '\0', n->len))
		return fail(l, n, "'%s' must not contain NUL", what);
	*out = arena_strndup(&l->plan->arena, n->text, n->len);
	return *out ? true : fail(l, n, "out of memory");
}

/* Names of backends, routes and phases: they reach logs and HAProxy
 * variables, so they are kept to a safe alphabet. */
static bool read_name(struct loader *l, const struct ynode *n, const char *what,
		      const char **out)
{
	if (!read_string(l, n, what, PLAN_MAX_NAME, out))
		return false;
	for (size_t i = 0; i < n->len; i++) {
		char c = n->text[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
			return fail(l, n, "%s '%s' may hold only letters, digits, '_', '-' and '.'",
				    what, SHOW(n));
	}
	return true;
}

static bool all_digits(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return len > 0;
}

static bool read_number(struct loader *l, const struct ynode *n, const char *what,
			unsigned max, unsigned *out)
{
	unsigned long v = 0;

	if (n->kind != YNODE_SCALAR || !n->plain || !all_digits(n->text, n->len))
		return fail(l, n, "'%s' must be a whole number", what);
	for (size_t i = 0; i < n->len; i++) {
		v = v * 10 + (unsigned long)(n->text[i] - '0');
		if (v > max)
			return fail(l, n, "'%s' must be at most %u", what, max);
	}
	*out = (unsigned)v;
	return true;
}

static bool read_bool(struct loader *l, const struct ynode *n, const char *what, bool *out)
{
	if (n->kind == YNODE_SCALAR && n->plain && (is(n, "true") || is(n, "false"))) {
		*out = is(n, "true");
		return true;
	}
	return fail(l, n, "'%s' must be true or false", what);
}

static bool read_list(struct loader *l, const struct ynode *n, const char *what,
		      size_t max)
{
	if (n->kind != YNODE_SEQUENCE)
		return fail(l, n, "'%s' must be a list", what);
	if (n->count == 0)
		return fail(l, n, "'%s' must not be empty", what);
	if (n->count > max)
		return fail(l, n, "'%s' has more than %zu entries", what, max);
	return true;
}

static int find_backend(const struct plan *p, const struct ynode *n)
{
	for (int i = 0; i < p->nbackends; i++)
		if (is(n, p->backends[i]))
			return i;
	return -1;
}

static bool load_backends(struct loader *l, const struct ynode *list,
			  const struct ynode *deflt)
{
	struct plan *p = l->plan;
	const struct ynode *seen[PLAN_MAX_BACKENDS];

	if (!read_list(l, list, "backends", PLAN_MAX_BACKENDS))
		return false;
	p->backends = arena_array(&p->arena, list->count, sizeof(*p->backends));
	if (!p->backends)
		return fail(l, list, "out of memory");
	for (const struct ynode *n = list->first; n; n = n->next) {
		const char *name;
		int dup;

		if (!read_name(l, n, "backend", &name))
			return false;
		dup = find_backend(p, n);
		if (dup >= 0)
			return fail(l, n, "duplicate backend '%s' (first at %u:%u)", name,
				    seen[dup]->line, seen[dup]->column);
		seen[p->nbackends] = n;
		p->backends[p->nbackends++] = name;
	}
	p->default_backend = -1;
	if (deflt) {
		if (deflt->kind != YNODE_SCALAR)
			return fail(l, deflt, "'default_backend' must be a string");
		p->default_backend = find_backend(p, deflt);
		if (p->default_backend < 0)
			return fail(l, deflt, "unknown backend '%s'", SHOW(deflt));
	}
	return true;
}

static bool load_methods(struct loader *l, const struct ynode *list, unsigned *out)
{
	*out = 0;
	if (!read_list(l, list, "methods", 16))
		return false;
	for (const struct ynode *n = list->first; n; n = n->next) {
		unsigned bits = n->kind == YNODE_SCALAR ? method_bit(n->text, n->len) : 0;

		if (is(n, "reads"))
			bits = METHODS_READS;
		else if (is(n, "writes"))
			bits = METHODS_WRITES;
		if (bits == 0 || bits == METHOD_OTHER)
			return fail(l, n, "unknown method '%s' (known: GET, HEAD, POST, PUT, "
				    "PATCH, DELETE, OPTIONS, TRACE, CONNECT, reads, writes)",
				    n->kind == YNODE_SCALAR ? SHOW(n) : "?");
		if (*out & bits)
			return fail(l, n, "method '%s' is listed twice", SHOW(n));
		*out |= bits;
	}
	return true;
}

static bool host_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return false;
	}
	return true;
}

static bool read_date(struct loader *l, const struct ynode *n, const char *what,
		      int64_t *out)
{
	char why[128];

	if (n->kind != YNODE_SCALAR)
		return fail(l, n, "'%s' must be a date", what);
	if (!httpdate_parse(n->text, n->len, out, why, sizeof(why)))
		return fail(l, n, "bad %s '%s': %s", what, SHOW(n), why);
	return true;
}

/* An absolute http or https URL of the bytes RFC 3986 allows: it goes into
 * a Link header between '<' and '>' as it is. */
static bool policy_ok(const char *s, size_t len)
{
	static const char extra[] = "-._~:/?#[]@!$&'()*+,;=%";
	size_t scheme = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;

	if (scheme == 0 || len == scheme || s[scheme] == '/')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c >= '0' && c <= '9') && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') &&
		    (c == '\0' || !strchr(extra, c)))
			return false;
	}
	return true;
}

/* deprecation: { date: DATE, sunset: DATE, policy: URL } (httpdate.h's dates) */
static bool load_deprecation(struct loader *l, const struct ynode *n, struct route *r)
{
	struct field f[] = { { .key = "date" }, { .key = "sunset" }, { .key = "policy" } };
	struct plan_deprecation *dep = arena_alloc(&l->plan->arena, sizeof(*dep));

	if (!dep)
		return fail(l, n, "out of memory");
	memset(dep, 0, sizeof(*dep));
	if (!read_fields(l, n, "deprecation", f, 3) || !require(l, n, "deprecation", &f[0]) ||
	    !require(l, n, "deprecation", &f[1]) ||
	    !read_date(l, f[0].value, "date", &dep->date) ||
	    !read_date(l, f[1].value, "sunset", &dep->sunset))
		return false;
	if (dep->sunset < dep->date)
		return fail(l, f[1].value, "sunset '%s' is earlier than the deprecation date '%s'",
			    SHOW(f[1].value), SHOW(f[0].value));
	if (f[2].value) {
		if (!read_string(l, f[2].value, "policy", PLAN_MAX_POLICY, &dep->policy))
			return false;
		if (!policy_ok(dep->policy, f[2].value->len))
			return fail(l, f[2].value, "bad policy '%s': an absolute http:// or "
				    "https:// URL, without spaces, quotes or '<>'",
				    SHOW(f[2].value));
	}
	httpdate_sf(dep->date, dep->date_sf);
	httpdate_imf(dep->sunset, dep->sunset_imf);
	r->deprecation = dep;
	return true;
}

static bool load_route(struct loader *l, const struct ynode *n, struct route *r)
{
	struct field f[] = { { .key = "name" }, { .key = "path" }, { .key = "methods" },
			     { .key = "host" }, { .key = "deprecation" } };
	char why[320];

	if (!read_fields(l, n, "route", f, 5) || !require(l, n, "route", &f[0]) ||
	    !require(l, n, "route", &f[1]) || !read_name(l, f[0].value, "route", &r->name))
		return false;
	r->line = n->line;
	r->column = n->column;
	if (!read_string(l, f[1].value, "path", PATTERN_MAX_LEN, &r->path))
		return false;
	if (!pattern_parse(r->path, f[1].value->len, &r->pattern, why, sizeof(why)))
		return fail(l, f[1].value, "bad path '%s': %s", SHOW(f[1].value), why);
	r->methods = METHODS_ALL;
	if (f[2].value && !load_methods(l, f[2].value, &r->methods))
		return false;
	if (f[3].value) {
		if (!read_string(l, f[3].value, "host", PLAN_MAX_HOST, &r->host))
			return false;
		if (!host_ok(r->host, f[3].value->len))
			return fail(l, f[3].value, "bad host '%s': letters, digits, '-' and '.' "
				    "only, no port", SHOW(f[3].value));
		r->host_len = f[3].value->len;
	}
	return !f[4].value || load_deprecation(l, f[4].value, r);
}

static int ref_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	return c ? c : (alen > blen) - (alen < blen);
}

static int by_name_then_index(const void *x, const void *y)
{
	const struct route_ref *a = x, *b = y;
	int c = ref_cmp(a->name, a->len, b->name, b->len);

	return c ? c : a->index - b->index;
}

static const struct ynode *value_of(const struct ynode *map, const char *key)
{
	for (const struct ynode *k = map->first; k && k->next; k = k->next->next)
		if (is(k, key))
			return k->next;
	return map;
}

/* Sorts the routes by name, so that lookups cost log(routes), and refuses a
 * duplicate name at its second use (the earliest such in the file). */
static bool index_routes(struct loader *l, const struct ynode *list)
{
	struct plan *p = l->plan;
	int dup = -1, first = -1;

	l->by_name = arena_array(&p->arena, (size_t)p->nroutes, sizeof(*l->by_name));
	if (!l->by_name)
		return fail(l, list, "out of memory");
	for (int i = 0; i < p->nroutes; i++)
		l->by_name[i] = (struct route_ref){ p->routes[i].name,
						    strlen(p->routes[i].name), i };
	qsort(l->by_name, (size_t)p->nroutes, sizeof(*l->by_name), by_name_then_index);
	for (int run = 0, i = 1; i <= p->nroutes; i++) {
		if (i < p->nroutes && strcmp(l->by_name[run].name, l->by_name[i].name) == 0)
			continue;
		if (i - run > 1 && (dup < 0 || l->by_name[run + 1].index < dup)) {
			first = l->by_name[run].index;
			dup = l->by_name[run + 1].index;
		}
		run = i;
	}
	if (dup >= 0)
		return fail(l, value_of(l->route_node[dup], "name"),
			    "duplicate route '%s' (first at %u:%u)", p->routes[dup].name,
			    p->routes[first].line, p->routes[first].column);
	return true;
}

static bool load_routes(struct loader *l, const struct ynode *list)
{
	struct plan *p = l->plan;
	int bad;
	char why[256];

	if (!read_list(l, list, "routes", PLAN_MAX_ROUTES))
		return false;
	p->routes = arena_array(&p->arena, list->count, sizeof(*p->routes));
	l->route_node = arena_array(&p->arena, list->count, sizeof(*l->route_node));
	if (!p->routes || !l->route_node)
		return fail(l, list, "out of memory");
	for (const struct ynode *n = list->first; n; n = n->next) {
		if (!load_route(l, n, &p->routes[p->nroutes]))
			return false;
		l->route_node[p->nroutes++] = n;
	}
	if (!index_routes(l, list))
		return false;
	if (!l->check_routes(p, &bad, why, sizeof(why)))
		return fail(l, bad >= 0 ? l->route_node[bad] : list, "%s", why);
	return true;
}

static int find_route(const struct loader *l, const struct ynode *n)
{
	int lo = 0, hi = l->plan->nroutes;

	if (n->kind != YNODE_SCALAR)
		return -1;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		const struct route_ref *r = &l->by_name[mid];
		int c = ref_cmp(n->text, n->len, r->name, r->len);

		if (c == 0)
			return r->index;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

static bool load_template(struct loader *l, const struct ynode *n, const char *what,
			  const struct route *r, const struct template **out)
{
	struct template *t = arena_alloc(&l->plan->arena, sizeof(*t));
	char why[320];

	if (!t)
		return fail(l, n, "out of memory");
	if (!read_string(l, n, what, PATTERN_MAX_LEN, &t->text))
		return false;
	if (!template_parse(t->text, n->len, &r->pattern, &t->parsed, why, sizeof(why)))
		return fail(l, n, "bad %s '%s': %s", what, SHOW(n), why);
	*out = t;
	return true;
}

/* percent: 1..99 of the clients (absent: every client, percent 0). */
static bool load_percent(struct loader *l, const struct ynode *n, struct action *a)
{
	if (!n)
		return true;
	if (!read_number(l, n, "percent", 100, &a->percent))
		return false;
	if (a->percent < 1 || a->percent > 99)
		return fail(l, n, "'percent' must be 1 to 99 (leave it out for every client)");
	return true;
}

/* A duration of whole seconds: digits then 's' or 'm' (5s, 2m), within
 * 1 to max seconds. */
static bool read_seconds(struct loader *l, const struct ynode *n, const char *what,
			 unsigned max, unsigned *out)
{
	unsigned long v = 0, unit;
	size_t digits = n->kind == YNODE_SCALAR ? n->len - 1 : 0;

	if (n->kind != YNODE_SCALAR || !n->plain || n->len < 2 || n->len > 8 ||
	    !all_digits(n->text, digits) || (n->text[digits] != 's' && n->text[digits] != 'm'))
		return fail(l, n, "'%s' must be a duration in whole seconds, such as 5s or 2m",
			    what);
	unit = n->text[digits] == 'm' ? 60 : 1;
	for (size_t i = 0; i < digits; i++)
		v = v * 10 + (unsigned long)(n->text[i] - '0');
	v *= unit;
	if (v < 1 || v > max)
		return fail(l, n, "'%s' must be from 1s to %us", what, max);
	*out = (unsigned)v;
	return true;
}

/* read_your_writes: { after: [ROUTE...], for: DURATION, backend: B,
 * rewrite: TEMPLATE } on route r's backend action a. Where the `after`
 * routes go is checked by check_ryw, once the phase is loaded. */
static bool load_ryw(struct loader *l, const struct ynode *n, const struct route *r,
		     const struct action *a, const struct read_your_writes **out)
{
	struct plan *p = l->plan;
	struct field f[] = { { .key = "after" }, { .key = "for" }, { .key = "backend" },
			     { .key = "rewrite" } };
	struct read_your_writes *y = arena_alloc(&p->arena, sizeof(*y));
	int self = (int)(r - p->routes);

	if (!y)
		return fail(l, n, "out of memory");
	if (p->clients.key == CLIENT_KEY_NONE)
		return fail(l, n, "'read_your_writes' needs the plan's 'clients' block "
			    "(who a client is)");
	if (!read_fields(l, n, "read_your_writes", f, 4))
		return false;
	for (int i = 0; i < 3; i++)
		if (!require(l, n, "read_your_writes", &f[i]))
			return false;
	if (!read_list(l, f[0].value, "after", PLAN_MAX_RYW_AFTER))
		return false;
	for (const struct ynode *k = f[0].value->first; k; k = k->next) {
		int w = find_route(l, k);

		if (w < 0)
			return fail(l, k, "unknown route '%s'", k->kind == YNODE_SCALAR ? SHOW(k) : "?");
		if (w == self)
			return fail(l, k, "'after' names route '%s' itself", r->name);
		for (int i = 0; i < y->nafter; i++)
			if (y->after[i] == w)
				return fail(l, k, "route '%s' is listed twice", p->routes[w].name);
		y->after[y->nafter++] = w;
	}
	if (!read_seconds(l, f[1].value, "for", PLAN_MAX_RYW_SECONDS, &y->seconds))
		return false;
	if (f[2].value->kind != YNODE_SCALAR)
		return fail(l, f[2].value, "'backend' must be a string");
	y->backend = find_backend(p, f[2].value);
	if (y->backend < 0)
		return fail(l, f[2].value, "unknown backend '%s'", SHOW(f[2].value));
	if (f[3].value && !load_template(l, f[3].value, "rewrite", r, &y->tpl))
		return false;
	if (y->backend == a->backend && !y->tpl == !a->tpl &&
	    (!y->tpl || strcmp(y->tpl->text, a->tpl->text) == 0))
		return fail(l, n, "read_your_writes sends reads where the action already does");
	*out = y;
	return true;
}

/* A route's action in a phase: a backend name, or a mapping. */
static bool load_action(struct loader *l, const struct ynode *n, const struct route *r,
			struct action *a)
{
	const struct plan *p = l->plan;
	struct field f[] = { { .key = "backend" }, { .key = "rewrite" },
			     { .key = "deprecated" }, { .key = "status" }, { .key = "link" },
			     { .key = "percent" }, { .key = "read_your_writes" } };
	const struct ynode *backend = n;

	if (n->kind != YNODE_SCALAR) {
		if (!read_fields(l, n, "route action", f, 7) || !load_percent(l, f[5].value, a))
			return false;
		if (f[0].value && f[3].value)
			return fail(l, f[3].key_node, "'backend' and 'status' exclude each other");
		if (!f[0].value && !f[3].value)
			return fail(l, n, "route action needs 'backend' or 'status'");
		backend = f[0].value;
	}
	if (backend) {
		a->kind = ACTION_BACKEND;
		if (backend->kind != YNODE_SCALAR)
			return fail(l, backend, "'backend' must be a string");
		a->backend = find_backend(p, backend);
		if (a->backend < 0)
			return fail(l, backend, "unknown backend '%s'", SHOW(backend));
		if (f[4].value)
			return fail(l, f[4].key_node, "'link' needs status 410");
		if (f[2].value && !read_bool(l, f[2].value, "deprecated", &a->deprecated))
			return false;
		if (a->deprecated && !r->deprecation)
			return fail(l, f[2].value, "route '%s' is deprecated here but has no "
				    "'deprecation' block (date and sunset)", r->name);
		if (f[1].value && !load_template(l, f[1].value, "rewrite", r, &a->tpl))
			return false;
		return !f[6].value || load_ryw(l, f[6].value, r, a, &a->ryw);
	}
	a->kind = ACTION_STATUS;
	if (f[6].value)
		return fail(l, f[6].key_node, "'read_your_writes' needs 'backend'");
	if (f[1].value)
		return fail(l, f[1].key_node, "'rewrite' needs 'backend'");
	if (f[2].value)
		return fail(l, f[2].key_node, "'deprecated' needs 'backend'");
	if (!read_number(l, f[3].value, "status", 999, &a->status))
		return false;
	if (a->status != 404 && a->status != 410)
		return fail(l, f[3].value, "'status' must be 404 or 410");
	if (f[4].value && a->status != 410)
		return fail(l, f[4].key_node, "'link' needs status 410");
	return !f[4].value || load_template(l, f[4].value, "link", r, &a->tpl);
}

static bool same_template(const struct template *a, const struct template *b)
{
	return !a == !b && (!a || strcmp(a->text, b->text) == 0);
}

static bool same_ryw(const struct read_your_writes *a, const struct read_your_writes *b)
{
	if (!a || !b)
		return !a && !b;
	return a->nafter == b->nafter &&
	       memcmp(a->after, b->after, (size_t)a->nafter * sizeof(a->after[0])) == 0 &&
	       a->seconds == b->seconds && a->backend == b->backend &&
	       same_template(a->tpl, b->tpl);
}

/* The same request handling, whatever the share of clients. */
static bool same_handling(const struct action *a, const struct action *b)
{
	return a->kind == b->kind && a->backend == b->backend && a->deprecated == b->deprecated &&
	       a->status == b->status && same_template(a->tpl, b->tpl) && same_ryw(a->ryw, b->ryw);
}

static bool same_action(const struct action *a, const struct action *b)
{
	return a->percent == b->percent && same_handling(a, b);
}

/* A split action's base: the route's last unsplit action before it, which
 * the clients outside its share keep; it must differ from the split one. */
static bool split_base(struct loader *l, const struct ynode *at, int route,
		       const struct phase *prev, struct action *a)
{
	const struct plan *p = l->plan;

	if (!a->percent)
		return true;
	if (p->clients.key == CLIENT_KEY_NONE)
		return fail(l, at, "'percent' needs the plan's 'clients' block: it says who "
			    "a client is");
	if (!prev)
		return fail(l, at, "'percent' needs a phase before it: the other clients keep "
			    "the route's action there");
	a->base = prev->action[route]->percent ? prev->action[route]->base
					       : prev->action[route];
	if (same_handling(a, a->base))
		return fail(l, at, "route '%s' with 'percent' does what its other clients "
			    "already do (its action before the split)", p->routes[route].name);
	return true;
}


/* A plain decimal number: optional '-' when negative is allowed, digits,
 * optionally a '.' and more digits. */
static bool read_decimal(struct loader *l, const struct ynode *n, const char *what,
			 bool negative, double max, double *out)
{
	size_t i = 0, digits = 0;
	char buf[32];

	if (n->kind != YNODE_SCALAR || !n->plain || n->len == 0 || n->len >= sizeof(buf))
		return fail(l, n, "'%s' must be a number", what);
	if (negative && n->text[0] == '-')
		i++;
	for (; i < n->len && n->text[i] >= '0' && n->text[i] <= '9'; i++)
		digits++;
	if (i < n->len && n->text[i] == '.' && digits > 0)
		for (i++; i < n->len && n->text[i] >= '0' && n->text[i] <= '9'; i++)
			digits++;
	if (i != n->len || digits == 0)
		return fail(l, n, "'%s' must be a number%s", what,
			    negative ? "" : " of seconds, 0 or more");
	memcpy(buf, n->text, n->len);
	buf[n->len] = '\0';
	*out = strtod(buf, NULL);
	if (*out > max || *out < -max)
		return fail(l, n, "'%s' must be at most %g", what, max);
	return true;
}

/* http://ADDRESS[:PORT]/PATH with a numeric address (or localhost): a gate
 * never waits on a name lookup. */
static bool parse_gate_url(struct loader *l, const struct ynode *n, struct plan_gate *g)
{
	const char *u = g->url, *host, *end;
	size_t hlen;
	unsigned char bin[16];

	if (strncmp(u, "http://", 7) != 0)
		return fail(l, n, "gate url '%s' must start with http://", SHOW(n));
	host = u + 7;
	if (*host == '[') {
		end = strchr(host, ']');
		if (!end)
			return fail(l, n, "gate url '%s': unclosed '['", SHOW(n));
		hlen = (size_t)(end - host - 1);
		host++;
		end++;
	} else {
		end = host + strcspn(host, ":/");
		hlen = (size_t)(end - host);
	}
	if (hlen == 0 || hlen >= sizeof(g->host))
		return fail(l, n, "gate url '%s' needs an address", SHOW(n));
	memcpy(g->host, host, hlen);
	g->host[hlen] = '\0';
	if (strcmp(g->host, "localhost") == 0)
		snprintf(g->host, sizeof(g->host), "127.0.0.1");
	if (inet_pton(AF_INET, g->host, bin) != 1 && inet_pton(AF_INET6, g->host, bin) != 1)
		return fail(l, n, "gate url '%s': the host must be an IP address or localhost "
			    "(a gate does no name lookups)", SHOW(n));
	g->port = 80;
	if (*end == ':') {
		unsigned long port = 0;
		const char *p = end + 1;

		for (; *p >= '0' && *p <= '9' && port <= 65535; p++)
			port = port * 10 + (unsigned long)(*p - '0');
		if (p == end + 1 || port == 0 || port > 65535 || (*p && *p != '/'))
			return fail(l, n, "gate url '%s': bad port", SHOW(n));
		g->port = (unsigned)port;
		end = p;
	}
	g->path = *end ? end : "/";
	for (const char *p = g->path; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
			return fail(l, n, "gate url '%s': the path may not hold spaces, '#', "
				    "control or non-ASCII bytes", SHOW(n));
	return true;
}

static bool load_gate(struct loader *l, const struct ynode *n, struct plan_gate *g)
{
	struct field f[] = { { .key = "http" }, { .key = "min_time_in_previous" },
			     { .key = "expect" }, { .key = "json" }, { .key = "min" },
			     { .key = "max" }, { .key = "timeout" }, { .key = "interval" },
			     { .key = "name" } };
	char label[PLAN_MAX_NAME + 160];

	if (!read_fields(l, n, "gate", f, 9))
		return false;
	g->line = n->line;
	g->column = n->column;
	g->timeout = 2;
	g->interval = 1;
	if (!f[0].value == !f[1].value)
		return fail(l, n, "a gate is either 'http' or 'min_time_in_previous'");
	if (f[6].value && (!read_decimal(l, f[6].value, "timeout", false, 60, &g->timeout)))
		return false;
	if (f[6].value && g->timeout <= 0)
		return fail(l, f[6].value, "'timeout' must be more than 0");
	if (f[7].value && (!read_decimal(l, f[7].value, "interval", false, 3600, &g->interval)))
		return false;
	if (f[7].value && g->interval < 0.1)
		return fail(l, f[7].value, "'interval' must be at least 0.1");
	if (f[8].value && !read_name(l, f[8].value, "gate", &g->label))
		return false;
	if (f[1].value) {
		g->kind = PLAN_GATE_MIN_TIME;
		for (int i = 2; i < 6; i++)
			if (f[i].value)
				return fail(l, f[i].key_node, "'%s' belongs to an http gate",
					    f[i].key);
		if (!read_decimal(l, f[1].value, "min_time_in_previous", false,
				  PLAN_MAX_GATE_SECONDS, &g->seconds))
			return false;
		snprintf(label, sizeof(label), "min_time_in_previous %gs", g->seconds);
	} else {
		g->kind = PLAN_GATE_HTTP;
		if (!read_string(l, f[0].value, "http", 1024, &g->url) ||
		    !parse_gate_url(l, f[0].value, g))
			return false;
		g->expect_status = 200;
		if (f[2].value && !read_number(l, f[2].value, "expect", 599, &g->expect_status))
			return false;
		if (g->expect_status < 100)
			return fail(l, f[2].value, "'expect' must be an HTTP status, 100 to 599");
		if (f[3].value && !read_string(l, f[3].value, "json", 256, &g->json))
			return false;
		if ((f[4].value || f[5].value) && !f[3].value)
			return fail(l, f[4].value ? f[4].key_node : f[5].key_node,
				    "'%s' needs 'json', the field it bounds",
				    f[4].value ? "min" : "max");
		if (f[3].value && !f[4].value && !f[5].value)
			return fail(l, f[3].key_node, "'json' needs 'min' or 'max'");
		g->has_min = f[4].value != NULL;
		g->has_max = f[5].value != NULL;
		if ((g->has_min && !read_decimal(l, f[4].value, "min", true, 1e15, &g->min)) ||
		    (g->has_max && !read_decimal(l, f[5].value, "max", true, 1e15, &g->max)))
			return false;
		if (g->has_min && g->has_max && g->min > g->max)
			return fail(l, f[4].value, "'min' %g is above 'max' %g", g->min, g->max);
		snprintf(label, sizeof(label), "http %s%s%s", g->url, g->json ? " " : "",
			 g->json ? g->json : "");
	}
	if (!g->label)
		g->label = arena_strndup(&l->plan->arena, label, strlen(label));
	return g->label ? true : fail(l, n, "out of memory");
}

static bool load_gates(struct loader *l, const struct ynode *list, struct phase *ph)
{
	struct plan_gate *gates;

	if (!read_list(l, list, "gates", PLAN_MAX_GATES))
		return false;
	gates = arena_array(&l->plan->arena, list->count, sizeof(*gates));
	if (!gates)
		return fail(l, list, "out of memory");
	for (const struct ynode *n = list->first; n; n = n->next) {
		memset(&gates[ph->ngates], 0, sizeof(gates[0]));
		if (!load_gate(l, n, &gates[ph->ngates]))
			return false;
		ph->ngates++;
	}
	ph->gates = gates;
	return true;
}

/* The read_your_writes blocks the phase at index declares, once its
 * actions are known: their `after` routes go, in this phase, to a backend,
 * one and the same, which the block then follows (written_to). Inherited
 * blocks keep theirs: they follow the writes that went where the writes
 * went when they were written, wherever the writes go now. Fills the
 * plan's marks. */
static bool check_ryw(struct loader *l, const struct ynode *n, int index)
{
	struct plan *p = l->plan;
	struct phase *ph = &p->phases[index];
	bool *marks = (bool *)p->ryw_marks; /* the loader's own, arena memory */

	for (int r = 0; r < p->nroutes; r++) {
		/* Declared here: its route is listed in this phase. Arena memory. */
		struct read_your_writes *y = (struct read_your_writes *)ph->action[r]->ryw;

		if (!y || !l->phase_key[r])
			continue;
		for (int i = 0; i < y->nafter; i++) {
			const struct action *wa = ph->action[y->after[i]];
			const char *wname = p->routes[y->after[i]].name;

			if (wa->kind != ACTION_BACKEND)
				return fail(l, l->phase_key[r], "read_your_writes of route '%s' is "
					    "after route '%s', which goes to no backend in phase %u",
					    p->routes[r].name, wname, ph->number);
			if (i > 0 && wa->backend != y->written_to)
				return fail(l, l->phase_key[r], "read_your_writes of route '%s' is "
					    "after routes that go to different backends in phase %u "
					    "('%s' to %s, '%s' to %s): one block follows one backend",
					    p->routes[r].name, ph->number,
					    p->routes[y->after[0]].name, p->backends[y->written_to],
					    wname, p->backends[wa->backend]);
			y->written_to = wa->backend;
			if (!marks)
				marks = arena_array(&p->arena, (size_t)p->nroutes, sizeof(*marks));
			if (!marks)
				return fail(l, n, "out of memory");
			marks[y->after[i]] = true;
		}
	}
	p->ryw_marks = marks;
	return true;
}

static bool load_phase(struct loader *l, const struct ynode *n, int index)
{
	struct plan *p = l->plan;
	struct phase *ph = &p->phases[index];
	const struct phase *prev = index > 0 ? &p->phases[index - 1] : NULL;
	struct field f[] = { { .key = "number" }, { .key = "name" }, { .key = "description" },
			     { .key = "routes" }, { .key = "one_way" }, { .key = "gates" } };

	if (!read_fields(l, n, "phase", f, 6) || !require(l, n, "phase", &f[0]) ||
	    !require(l, n, "phase", &f[1]) ||
	    !read_number(l, f[0].value, "number", PLAN_MAX_PHASE_NUMBER, &ph->number) ||
	    !read_name(l, f[1].value, "phase", &ph->name))
		return false;
	if (prev && ph->number <= prev->number)
		return fail(l, f[0].value, "phase number %u must be greater than %u, the "
			    "number of the phase before it", ph->number, prev->number);
	if (all_digits(f[1].value->text, f[1].value->len))
		return fail(l, f[1].value, "phase name '%s' must not be a number", ph->name);
	for (int i = 0; i < index; i++)
		if (strcmp(p->phases[i].name, ph->name) == 0)
			return fail(l, f[1].value, "duplicate phase '%s' (phase %u has that name)",
				    ph->name, p->phases[i].number);
	if (f[2].value && !read_string(l, f[2].value, "description", PLAN_MAX_DESCRIPTION,
				       &ph->description))
		return false;
	if (f[4].value && !read_bool(l, f[4].value, "one_way", &ph->one_way))
		return false;
	if (f[5].value && !load_gates(l, f[5].value, ph))
		return false;

	ph->action = arena_array(&p->arena, (size_t)p->nroutes, sizeof(*ph->action));
	if (!ph->action)
		return fail(l, n, "out of memory");
	if (prev)
		memcpy(ph->action, prev->action, (size_t)p->nroutes * sizeof(*ph->action));
	memset(l->phase_key, 0, (size_t)p->nroutes * sizeof(*l->phase_key));
	if (f[3].value) {
		const struct ynode *map = f[3].value;

		if (map->kind != YNODE_MAPPING)
			return fail(l, map, "'routes' of a phase must be a mapping");
		for (const struct ynode *k = map->first; k && k->next; k = k->next->next) {
			int r = find_route(l, k);
			struct action *a;

			if (r >= 0)
				l->phase_key[r] = k;

			if (r < 0)
				return fail(l, k, "unknown route '%s'",
					    k->kind == YNODE_SCALAR ? SHOW(k) : "?");
			if (ph->action[r] && (!prev || ph->action[r] != prev->action[r]))
				return fail(l, k, "route '%s' appears twice in phase %u",
					    p->routes[r].name, ph->number);
			a = arena_alloc(&p->arena, sizeof(*a));
			if (!a)
				return fail(l, k, "out of memory");
			if (!load_action(l, k->next, &p->routes[r], a) ||
			    !split_base(l, value_of(k->next, "percent"), r, prev, a))
				return false;
			if (prev && same_action(a, prev->action[r]))
				return fail(l, k->next, "route '%s' does the same as in phase %u; "
					    "leave it out to inherit", p->routes[r].name,
					    prev->number);
			ph->action[r] = a;
		}
	}
	for (int r = 0; r < p->nroutes; r++)
		if (!ph->action[r])
			return fail(l, n, "the first phase must say where every route goes; "
				    "route '%s' is missing", p->routes[r].name);
	return check_ryw(l, n, index);
}

static bool load_phases(struct loader *l, const struct ynode *list)
{
	struct plan *p = l->plan;

	if (!read_list(l, list, "phases", PLAN_MAX_PHASES))
		return false;
	p->phases = arena_array(&p->arena, list->count, sizeof(*p->phases));
	l->phase_key = arena_array(&p->arena, (size_t)p->nroutes, sizeof(*l->phase_key));
	if (!p->phases || !l->phase_key)
		return fail(l, list, "out of memory");
	for (const struct ynode *n = list->first; n; n = n->next) {
		if (!load_phase(l, n, p->nphases))
			return false;
		p->nphases++;
	}
	return true;
}

/* Also the phase lookup of plan.h, for --explain --phase. */
int plan_phase_lookup(const struct plan *plan, const char *number_or_name)
{
	size_t len = strlen(number_or_name);

	if (all_digits(number_or_name, len)) {
		unsigned long n;

		if (len > 9) /* beyond PLAN_MAX_PHASE_NUMBER whatever its zeros */
			return -1;
		n = strtoul(number_or_name, NULL, 10);
		for (int i = 0; i < plan->nphases; i++)
			if (plan->phases[i].number == n)
				return i;
		return -1;
	}
	for (int i = 0; i < plan->nphases; i++)
		if (strcmp(plan->phases[i].name, number_or_name) == 0)
			return i;
	return -1;
}

/* override: { allow_back_across: PHASE, reason: TEXT } */
static bool load_override(struct loader *l, const struct ynode *n)
{
	struct plan *p = l->plan;
	struct field f[] = { { .key = "allow_back_across" }, { .key = "reason" } };
	char buf[PLAN_MAX_NAME + 1];
	const struct ynode *v;

	p->override_back_across = -1;
	if (!n)
		return true;
	if (!read_fields(l, n, "override", f, 2) || !require(l, n, "override", &f[0]) ||
	    !require(l, n, "override", &f[1]) ||
	    !read_string(l, f[1].value, "reason", PLAN_MAX_DESCRIPTION, &p->override_reason))
		return false;
	v = f[0].value;
	if (v->kind != YNODE_SCALAR || v->len == 0 || v->len > PLAN_MAX_NAME ||
	    memchr(v->text, '\0', v->len))
		return fail(l, v, "'allow_back_across' must be a phase number or name");
	memcpy(buf, v->text, v->len);
	buf[v->len] = '\0';
	p->override_back_across = plan_phase_lookup(p, buf);
	if (p->override_back_across < 0)
		return fail(l, v, "phase '%s' is not in the plan", SHOW(v));
	if (!p->phases[p->override_back_across].one_way)
		return fail(l, v, "phase '%s' is not one_way: there is no door to override",
			    SHOW(v));
	return true;
}

/* An HTTP header name (RFC 9110 token): it names what HAProxy sends. */
static bool header_name_ok(const char *s, size_t len)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c >= '0' && c <= '9') && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') &&
		    (c == '\0' || !strchr(extra, c)))
			return false;
	}
	return len > 0;
}

/* clients: { key: <header name> | src, salt: <string>, track: <count> } */
static bool load_clients(struct loader *l, const struct ynode *n)
{
	struct plan_clients *c = &l->plan->clients;
	struct field f[] = { { .key = "key" }, { .key = "salt" }, { .key = "track" } };

	c->salt = "";
	c->track = PLAN_DEFAULT_TRACKED_CLIENTS;
	if (!n)
		return true;
	if (!read_fields(l, n, "clients", f, 3) || !require(l, n, "clients", &f[0]) ||
	    !read_string(l, f[0].value, "key", PLAN_MAX_NAME, &c->header))
		return false;
	if (is(f[0].value, "src")) {
		c->key = CLIENT_KEY_SRC;
		c->header = NULL;
	} else if (header_name_ok(c->header, f[0].value->len)) {
		c->key = CLIENT_KEY_HEADER;
	} else {
		return fail(l, f[0].value, "bad key '%s': a header name or src", SHOW(f[0].value));
	}
	if (f[1].value && !read_string(l, f[1].value, "salt", PLAN_MAX_SALT, &c->salt))
		return false;
	if (f[2].value && !read_number(l, f[2].value, "track", PLAN_MAX_TRACKED_CLIENTS, &c->track))
		return false;
	if (c->track == 0)
		return fail(l, f[2].value, "'track' must be at least 1");
	return true;
}

static bool load_current(struct loader *l, const struct ynode *n)
{
	char buf[PLAN_MAX_NAME + 1];
	struct plan *p = l->plan;

	if (n->kind != YNODE_SCALAR || n->len == 0 || n->len > PLAN_MAX_NAME ||
	    memchr(n->text, '\0', n->len))
		return fail(l, n, "'phase' must be a phase number or name");
	memcpy(buf, n->text, n->len);
	buf[n->len] = '\0';
	p->current = plan_phase_lookup(p, buf);
	if (p->current < 0)
		return fail(l, n, "phase '%s' is not in the plan (phases %u to %u)", SHOW(n),
			    p->phases[0].number, p->phases[p->nphases - 1].number);
	p->desired = p->current;
	return true;
}

static bool load_root(struct loader *l, const struct ynode *root)
{
	struct field f[] = { { .key = "phase" }, { .key = "backends" },
			     { .key = "default_backend" }, { .key = "routes" }, { .key = "phases" },
			     { .key = "override" }, { .key = "clients" } };

	if (!root)
		return fail(l, NULL, "the plan is empty");
	if (root->kind != YNODE_MAPPING)
		return fail(l, root, "the plan must be a mapping");
	if (!read_fields(l, root, "the plan", f, 7))
		return false;
	for (size_t i = 0; i < 5; i++)
		if (i != 2 && !require(l, root, "the plan", &f[i]))
			return false;
	return load_clients(l, f[6].value) &&
	       load_backends(l, f[1].value, f[2].value) && load_routes(l, f[3].value) &&
	       load_phases(l, f[4].value) && load_current(l, f[0].value) &&
	       load_override(l, f[5].value);
}

struct plan *plan_loader_build(const char *name, const char *data, size_t len,
			       plan_routes_check *check_routes, char *err, size_t errlen)
{
	struct loader l = { .file = name, .err = err, .errlen = errlen,
			    .check_routes = check_routes };
	struct arena tree = { 0 };
	struct ytree_error ye;
	struct ynode *root;
	bool ok;

	if (errlen)
		err[0] = '\0';
	l.plan = calloc(1, sizeof(*l.plan));
	if (!l.plan) {
		snprintf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	if (len > PLAN_MAX_FILE_SIZE) {
		ok = fail(&l, NULL, "the plan is larger than %zu bytes", PLAN_MAX_FILE_SIZE);
	} else if (!ytree_parse(&tree, data, len, &root, &ye)) {
		snprintf(err, errlen, "%s:%u:%u: %s", name, ye.line, ye.column, ye.reason);
		ok = false;
	} else {
		l.plan->file = arena_strndup(&l.plan->arena, name, strlen(name));
		ok = l.plan->file ? load_root(&l, root) : fail(&l, NULL, "out of memory");
	}
	arena_release(&tree);
	if (!ok) {
		arena_release(&l.plan->arena);
		free(l.plan);
		return NULL;
	}
	return l.plan;
}
