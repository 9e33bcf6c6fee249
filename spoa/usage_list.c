/* SPDX-License-Identifier: Apache-2.0 */
/* usage_list: a reader of the one JSON shape usage_page.c writes (members
 * in any order, unknown ones skipped, strings with the escapes json_out
 * writes), and the merge. */
#include "usage_list.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_buf.h"

#define DEPTH_MAX 8

struct cur {
	const char *p, *end;
};

static void ws(struct cur *c)
{
	while (c->p < c->end && strchr(" \t\r\n", *c->p) && *c->p)
		c->p++;
}

static bool eat(struct cur *c, char ch)
{
	ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return true;
	}
	return false;
}

static bool hexval(char h, unsigned *v)
{
	if (h >= '0' && h <= '9')
		*v = *v * 16 + (unsigned)(h - '0');
	else if ((h | 0x20) >= 'a' && (h | 0x20) <= 'f')
		*v = *v * 16 + (unsigned)((h | 0x20) - 'a' + 10);
	else
		return false;
	return true;
}

/* A string into out (cap bytes, NUL-terminated); out NULL: skipped. Only
 * ASCII escapes: what json_out writes. */
static bool str(struct cur *c, char *out, size_t cap)
{
	size_t n = 0;

	if (!eat(c, '"'))
		return false;
	while (c->p < c->end && *c->p != '"') {
		unsigned char ch = (unsigned char)*c->p++;
		if (ch == '\\') {
			if (c->p >= c->end)
				return false;
			char e = *c->p++;
			unsigned v = 0;
			if (e == 'u') {
				for (int i = 0; i < 4; i++)
					if (c->p >= c->end || !hexval(*c->p++, &v))
						return false;
				if (v >= 0x80)
					return false;
				ch = (unsigned char)v;
			} else if (e == '"' || e == '\\' || e == '/') {
				ch = (unsigned char)e;
			} else {
				return false;
			}
		}
		if (out && n + 1 >= cap)
			return false;
		if (out)
			out[n++] = (char)ch;
	}
	if (out)
		out[n] = '\0';
	return eat(c, '"');
}

static bool num(struct cur *c, double *v)
{
	char buf[64], *end;
	size_t n = 0;

	ws(c);
	while (c->p < c->end && n + 1 < sizeof(buf) && strchr("+-0123456789.eE", *c->p) && *c->p)
		buf[n++] = *c->p++;
	buf[n] = '\0';
	if (n == 0 || !(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
		return false;
	*v = strtod(buf, &end);
	return *end == '\0';
}

static bool skip(struct cur *c, int depth);

/* The members of an object, each handed to member() (which reads its
 * value, or false to have it skipped). */
static bool object(struct cur *c, int depth,
		   bool (*member)(struct cur *c, const char *key, void *arg, bool *ok), void *arg)
{
	char key[64];

	if (depth > DEPTH_MAX || !eat(c, '{'))
		return false;
	if (eat(c, '}'))
		return true;
	do {
		bool ok = true;
		if (!str(c, key, sizeof(key)) || !eat(c, ':'))
			return false;
		if (!(member && member(c, key, arg, &ok)) && !skip(c, depth + 1))
			return false;
		if (!ok)
			return false;
	} while (eat(c, ','));
	return eat(c, '}');
}

static bool skip(struct cur *c, int depth)
{
	double v;

	ws(c);
	if (c->p >= c->end || depth > DEPTH_MAX)
		return false;
	if (*c->p == '{')
		return object(c, depth, NULL, NULL);
	if (*c->p == '"')
		return str(c, NULL, 0);
	if (*c->p == '[') {
		c->p++;
		if (eat(c, ']'))
			return true;
		do {
			if (!skip(c, depth + 1))
				return false;
		} while (eat(c, ','));
		return eat(c, ']');
	}
	for (const char *w = "true\0false\0null\0"; *w; w += strlen(w) + 1) {
		size_t n = strlen(w);
		if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
			c->p += n;
			return true;
		}
	}
	return num(c, &v);
}

/* A time string, or null (""). */
static bool when(struct cur *c, char *out)
{
	ws(c);
	if ((size_t)(c->end - c->p) >= 4 && memcmp(c->p, "null", 4) == 0) {
		c->p += 4;
		out[0] = '\0';
		return true;
	}
	return str(c, out, USAGE_TIME_MAX);
}

static bool count(struct cur *c, uint64_t *out)
{
	double v;

	if (!num(c, &v) || v < 0 || v > 1e19)
		return false;
	*out = (uint64_t)v;
	return true;
}

/* One agent's answer, read into a scratch list before it is added. */
struct reading {
	struct usage_list *l;
	struct listed_client cur;
	bool has_client, has_quiet, has_clients;
	uint64_t requests, other;
	char other_last[USAGE_TIME_MAX];
	double quiet;
	size_t first;   /* where this agent's clients start in l->c */
	bool oom;
};

static bool client_member(struct cur *c, const char *key, void *arg, bool *ok)
{
	struct reading *r = arg;

	if (strcmp(key, "client") == 0) {
		*ok = str(c, r->cur.client, sizeof(r->cur.client));
		r->has_client = *ok;
	} else if (strcmp(key, "requests") == 0) {
		*ok = count(c, &r->cur.requests);
	} else if (strcmp(key, "last_request") == 0) {
		*ok = when(c, r->cur.last);
	} else {
		return false;
	}
	return true;
}

static bool push(struct usage_list *l, const struct listed_client *x)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct listed_client *c = realloc(l->c, cap * sizeof(*c));
		if (!c)
			return false;
		l->c = c;
		l->cap = cap;
	}
	l->c[l->n++] = *x;
	return true;
}

static bool clients_array(struct cur *c, struct reading *r)
{
	if (!eat(c, '['))
		return false;
	if (eat(c, ']'))
		return true;
	do {
		r->cur = (struct listed_client){ .agents = 1 };
		r->has_client = false;
		if (!object(c, 2, client_member, r) || !r->has_client)
			return false;
		if (!push(r->l, &r->cur)) {
			r->oom = true;
			return false;
		}
	} while (eat(c, ','));
	return eat(c, ']');
}

static bool other_member(struct cur *c, const char *key, void *arg, bool *ok)
{
	struct reading *r = arg;

	if (strcmp(key, "requests") == 0)
		*ok = count(c, &r->other);
	else if (strcmp(key, "last_request") == 0)
		*ok = when(c, r->other_last);
	else
		return false;
	return true;
}

static bool top_member(struct cur *c, const char *key, void *arg, bool *ok)
{
	struct reading *r = arg;

	if (strcmp(key, "quiet_seconds") == 0) {
		*ok = r->has_quiet = num(c, &r->quiet);
	} else if (strcmp(key, "requests") == 0) {
		*ok = count(c, &r->requests);
	} else if (strcmp(key, "clients") == 0) {
		*ok = r->has_clients = clients_array(c, r);
	} else if (strcmp(key, "other") == 0) {
		*ok = object(c, 1, other_member, r);
	} else {
		return false;
	}
	return true;
}

bool usage_list_add(struct usage_list *l, const char *json, size_t len, char *why,
		    size_t whylen)
{
	struct cur c = { json, json + len };
	struct reading r = { .l = l, .first = l->n };

	bool ok = object(&c, 0, top_member, &r);
	ws(&c);
	if (!ok || c.p != c.end || !r.has_quiet || !r.has_clients) {
		l->n = r.first;
		snprintf(why, whylen, r.oom ? "out of memory"
					    : "not a /clients.json answer (quiet_seconds, clients)");
		return false;
	}
	l->requests += r.requests;
	l->other += r.other;
	if (strcmp(r.other_last, l->other_last) > 0)
		snprintf(l->other_last, sizeof(l->other_last), "%s", r.other_last);
	l->quiet = l->agents == 0 || r.quiet < l->quiet ? r.quiet : l->quiet;
	l->agents++;
	l->merged = false;
	return true;
}

static int by_client(const void *a, const void *b)
{
	return strcmp(((const struct listed_client *)a)->client,
		      ((const struct listed_client *)b)->client);
}

/* The fixed time format sorts as text: the most recent first. */
static int by_recency(const void *a, const void *b)
{
	const struct listed_client *x = a, *y = b;
	int t = strcmp(y->last, x->last);

	if (t)
		return t;
	if (x->requests != y->requests)
		return x->requests > y->requests ? -1 : 1;
	return strcmp(x->client, y->client);
}

static void merge(struct usage_list *l)
{
	size_t m = 0;

	if (l->merged)
		return;
	if (l->n > 1)
		qsort(l->c, l->n, sizeof(*l->c), by_client);
	for (size_t i = 0; i < l->n; i++) {
		struct listed_client *x = &l->c[i];
		if (m > 0 && strcmp(l->c[m - 1].client, x->client) == 0) {
			struct listed_client *y = &l->c[m - 1];
			y->requests += x->requests;
			y->agents += x->agents;
			if (strcmp(x->last, y->last) > 0)
				memcpy(y->last, x->last, sizeof(y->last));
		} else {
			l->c[m++] = *x;
		}
	}
	l->n = m;
	if (l->n > 1)
		qsort(l->c, l->n, sizeof(*l->c), by_recency);
	l->merged = true;
}

char *usage_list_text(struct usage_list *l, size_t *len)
{
	struct text_buf t;
	int width = (int)strlen("(other)");

	merge(l);
	if (!text_buf_init(&t, 4096))
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		width = (int)strlen(l->c[i].client) > width ? (int)strlen(l->c[i].client) : width;
	text_buf_printf(&t, "%-*s  %10s  %-24s  %s\n", width, "CLIENT", "REQUESTS",
			"LAST REQUEST (UTC)", "AGENTS");
	for (size_t i = 0; i < l->n; i++)
		text_buf_printf(&t, "%-*s  %10" PRIu64 "  %-24s  %u\n", width, l->c[i].client,
				l->c[i].requests, l->c[i].last[0] ? l->c[i].last : "-",
				l->c[i].agents);
	text_buf_printf(&t, "%-*s  %10" PRIu64 "  %-24s\n", width, "(other)", l->other,
			l->other_last[0] ? l->other_last : "-");
	text_buf_printf(&t, "%zu clients listed, %" PRIu64 " requests on deprecated routes in "
			"all, from %u agents; quiet for %.1f s\n",
			l->n, l->requests, l->agents, l->quiet);
	return text_buf_finish(&t, len);
}

void usage_list_free(struct usage_list *l)
{
	free(l->c);
	*l = (struct usage_list){ 0 };
}
