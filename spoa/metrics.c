/* SPDX-License-Identifier: Apache-2.0 */
#include "metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/random.h>

#include "client_key.h"
#include "client_usage.h"
#include "json_out.h"
#include "plan.h"
#include "plan_types.h"
#include "router.h"
#include "text_buf.h"

#define LABEL_MAX 65    /* plan names are at most 64 bytes */
#define STATUS_SLOTS 15 /* DISCONNECT statuses 0..13, then 99 for anything else */
#define BUCKETS 9       /* finite histogram buckets; one more for +Inf */

typedef _Atomic uint64_t counter;

/* What a decision on a route ended in: what the phase says for the route
 * (its backend, or its 404/410; for "no route", the default backend), what
 * the old side of a split route keeps, or the router refused the rewrite
 * with 400 or 414. */
enum outcome { OUTCOME_ACTION, OUTCOME_OLD, OUTCOME_400, OUTCOME_414, OUTCOMES };

/* The sides of a split route, as cutover_split_decisions_total names them. */
enum { SPLIT_NEW, SPLIT_OLD, SPLIT_SIDES };
static const char *const side_names[SPLIT_SIDES] = { "new", "old" };

/* The counters for the plan a worker holds: (nroutes + 1) x OUTCOMES, the
 * last row for "no route matched"; and nroutes x SPLIT_SIDES decisions on
 * routes split between clients, by side. */
struct bound {
	const struct plan *plan;
	int phase;   /* index of plan's current phase */
	int nroutes;
	counter *decisions;
	counter *split;
};

struct metrics_worker {
	struct metrics_worker *next;
	counter frames[METRICS_FRAME_KINDS];
	counter errors[STATUS_SLOTS];
	counter opened, closed;
	counter unbound;             /* decisions while no counters were bound */
	counter buckets[BUCKETS + 1];
	counter duration_ns;
	struct bound bound;          /* written under lock, by the worker only */
	struct client_usage *usage;  /* replaced under lock, by the worker only */
};

/* One label set of cutover_decisions_total and its count. */
struct row {
	unsigned phase;
	unsigned status; /* 0: the decision named a backend (or none) */
	char route[LABEL_MAX];
	char backend[LABEL_MAX];
	uint64_t count;
};

/* Rows found by name: open addressing over an index of row numbers. */
struct table {
	struct row *rows;
	size_t n, cap, max;
	int32_t *index; /* -1: empty; slots is a power of two, > 2 n */
	size_t slots;
};

static const uint64_t bucket_ns[BUCKETS] = { 250, 500, 1000, 2500, 5000,
					     10000, 25000, 100000, 1000000 };

static const char *const frame_names[METRICS_FRAME_KINDS] = {
	[METRICS_FRAME_HAPROXY_HELLO] = "haproxy_hello",
	[METRICS_FRAME_NOTIFY] = "notify",
	[METRICS_FRAME_HAPROXY_DISCONNECT] = "haproxy_disconnect",
	[METRICS_FRAME_UNKNOWN] = "unknown",
	[METRICS_FRAME_AGENT_HELLO] = "agent_hello",
	[METRICS_FRAME_ACK] = "ack",
	[METRICS_FRAME_AGENT_DISCONNECT] = "agent_disconnect",
};

/* lock guards every worker's bound, the totals and the process facts. The
 * decision path never takes it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct metrics_worker *workers; /* registered before workers start */
static struct table totals = { .max = METRICS_TOTALS_MAX };
/* cutover_split_decisions_total by name: rows with the side as backend. */
static struct table split_totals = { .max = METRICS_TOTALS_MAX };
static uint64_t totals_overflow;       /* folded decisions that found no row */
static uint64_t started_ns;            /* metrics_now_ns() at the first worker */

static struct {
	const char *version;
	const char *revision; /* git describe, or the version */
	char hash[65];
	unsigned phase, desired;              /* effective and desired numbers */
	char phase_name[65], desired_name[65];
	char waiting[256], waiting_why[256];  /* the gate the next step waits on */
	uint64_t generation, accepted, rejected;
	bool last_ok, listening;
	double last_time;
} facts = { .version = "unknown", .revision = "unknown" };

/* ---- the decision path: single writer, no lock ---- */

static inline void bump(counter *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static inline void add(counter *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline uint64_t get(counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void metrics_frame(struct metrics_worker *m, enum metrics_frame kind)
{
	bump(&m->frames[kind]);
}

void metrics_protocol_error(struct metrics_worker *m, unsigned status)
{
	bump(&m->errors[status < STATUS_SLOTS - 1 ? status : STATUS_SLOTS - 1]);
}

void metrics_conn_opened(struct metrics_worker *m)
{
	bump(&m->opened);
}

void metrics_conn_closed(struct metrics_worker *m)
{
	bump(&m->closed);
}

void metrics_decision(struct metrics_worker *m, const struct decision *d, uint64_t nanoseconds)
{
	const struct bound *b = &m->bound;
	int r = d->route_index < 0 ? b->nroutes : d->route_index;
	enum outcome o = d->status == 400 ? OUTCOME_400
		       : d->status == 414 ? OUTCOME_414
		       : d->side == SIDE_OLD ? OUTCOME_OLD : OUTCOME_ACTION;
	int k = 0;

	if (b->decisions && r <= b->nroutes)
		bump(&b->decisions[r * OUTCOMES + o]);
	else
		bump(&m->unbound);
	if (d->side != SIDE_NONE && b->split && r < b->nroutes)
		bump(&b->split[r * SPLIT_SIDES + (d->side == SIDE_OLD ? SPLIT_OLD : SPLIT_NEW)]);
	while (k < BUCKETS && nanoseconds > bucket_ns[k])
		k++;
	bump(&m->buckets[k]);
	add(&m->duration_ns, nanoseconds);
}

void metrics_deprecated(struct metrics_worker *m, const struct route_request *req,
			double unix_time)
{
	char key[CLIENT_KEY_MAX + 1];
	size_t len = 0;

	if (!m->usage)
		return;
	if (m->bound.plan)
		len = client_key(&m->bound.plan->clients, req, key, sizeof(key));
	client_usage_count(m->usage, key, len, (int64_t)(unix_time * 1000.0), metrics_now_ns());
}

uint64_t metrics_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- name-keyed rows ---- */

static uint64_t key_hash(unsigned phase, unsigned status, const char *route, const char *backend)
{
	uint64_t h = 1469598103934665603u ^ phase ^ ((uint64_t)status << 32);

	for (const char *s = route; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211u;
	h = (h ^ 0xff) * 1099511628211u;
	for (const char *s = backend; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211u;
	return h;
}

static bool table_grow_index(struct table *t)
{
	size_t slots = t->slots ? 2 * t->slots : 256;
	int32_t *index = malloc(slots * sizeof(*index));

	if (!index)
		return false;
	memset(index, 0xff, slots * sizeof(*index));
	for (size_t i = 0; i < t->n; i++) {
		const struct row *r = &t->rows[i];
		size_t s = key_hash(r->phase, r->status, r->route, r->backend) & (slots - 1);
		while (index[s] >= 0)
			s = (s + 1) & (slots - 1);
		index[s] = (int32_t)i;
	}
	free(t->index);
	t->index = index;
	t->slots = slots;
	return true;
}

/* Adds count to the row of these labels, made if needed. False when the
 * table is full (t->max rows) or out of memory: the count is not added. */
static bool table_add(struct table *t, unsigned phase, unsigned status, const char *route,
		      const char *backend, uint64_t count)
{
	if (2 * (t->n + 1) > t->slots && !table_grow_index(t))
		return false;
	size_t s = key_hash(phase, status, route, backend) & (t->slots - 1);
	for (; t->index[s] >= 0; s = (s + 1) & (t->slots - 1)) {
		struct row *r = &t->rows[t->index[s]];
		if (r->phase == phase && r->status == status && strcmp(r->route, route) == 0 &&
		    strcmp(r->backend, backend) == 0) {
			r->count += count;
			return true;
		}
	}
	if (t->n == t->max)
		return false;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		struct row *rows = realloc(t->rows, cap * sizeof(*rows));
		if (!rows)
			return false;
		t->rows = rows;
		t->cap = cap;
	}
	struct row *r = &t->rows[t->n];
	*r = (struct row){ .phase = phase, .status = status, .count = count };
	snprintf(r->route, sizeof(r->route), "%s", route);
	snprintf(r->backend, sizeof(r->backend), "%s", backend);
	t->index[s] = (int32_t)t->n++;
	return true;
}

static void table_free(struct table *t)
{
	free(t->rows);
	free(t->index);
	*t = (struct table){ .max = t->max };
}

/* Adds b's counts to t by name; what does not fit goes to *overflow. */
static void fold(struct table *t, const struct bound *b, uint64_t *overflow)
{
	const struct plan *p = b->plan;
	unsigned phase = plan_phase_number(p, b->phase);
	int deflt = plan_default_backend_index(p);

	for (int r = 0; r <= b->nroutes; r++) {
		for (int o = 0; o < OUTCOMES; o++) {
			uint64_t n = get(&b->decisions[r * OUTCOMES + o]);
			if (n == 0)
				continue;
			unsigned status = o == OUTCOME_400 ? 400 : o == OUTCOME_414 ? 414 : 0;
			int backend = deflt;
			if (r < b->nroutes && (o == OUTCOME_ACTION || o == OUTCOME_OLD))
				backend = plan_route_side_backend(p, b->phase, r, o == OUTCOME_OLD,
								  &status);
			else if (r < b->nroutes)
				backend = -1;
			if (!table_add(t, phase, status, r < b->nroutes ? plan_route_name(p, r) : "",
				       backend >= 0 ? plan_backend_name(p, backend) : "", n))
				*overflow += n;
		}
	}
}

/* Adds b's split counts to t by name (the side in the backend field). */
static void fold_split(struct table *t, const struct bound *b, uint64_t *overflow)
{
	const struct plan *p = b->plan;
	unsigned phase = plan_phase_number(p, b->phase);

	for (int r = 0; r < b->nroutes; r++) {
		for (int side = 0; side < SPLIT_SIDES; side++) {
			uint64_t n = get(&b->split[r * SPLIT_SIDES + side]);
			if (n && !table_add(t, phase, 0, plan_route_name(p, r), side_names[side], n))
				*overflow += n;
		}
	}
}

/* ---- binding a worker to its plan ---- */

struct metrics_worker *metrics_worker_new(void)
{
	struct metrics_worker *m = calloc(1, sizeof(*m));

	if (m) {
		pthread_mutex_lock(&lock);
		if (started_ns == 0)
			started_ns = metrics_now_ns();
		m->next = workers;
		workers = m;
		pthread_mutex_unlock(&lock);
	}
	return m;
}

/* Clients choose their keys: the table's hash gets a seed they cannot know. */
static uint64_t random_seed(void)
{
	uint64_t seed;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = metrics_now_ns() ^ (uint64_t)(uintptr_t)&seed;
	return seed;
}

/* A table of plan's clients.track entries, the previous one's counts
 * carried over; NULL when the size stays (or out of memory: the previous
 * one stays). Called by the worker, the table's only writer. */
static struct client_usage *usage_for(const struct metrics_worker *m, const struct plan *plan)
{
	unsigned cap = plan->clients.track;
	struct client_usage *u;

	if (m->usage && client_usage_cap(m->usage) == cap)
		return NULL;
	u = client_usage_new(cap, random_seed());
	if (u && m->usage)
		client_usage_adopt(u, m->usage);
	return u;
}

void metrics_bind_plan(struct metrics_worker *m, const struct plan *plan)
{
	struct bound next = { 0 }, prev;
	struct client_usage *usage = plan ? usage_for(m, plan) : NULL, *old = NULL;

	if (plan) {
		next.plan = plan;
		next.phase = plan_current_phase(plan);
		next.nroutes = plan_route_count(plan);
		next.decisions = calloc((size_t)(next.nroutes + 1) * OUTCOMES, sizeof(counter));
		next.split = calloc((size_t)next.nroutes * SPLIT_SIDES, sizeof(counter));
		if (!next.decisions || !next.split) {
			free(next.decisions);
			free(next.split);
			next = (struct bound){ 0 };
		}
	}
	pthread_mutex_lock(&lock);
	prev = m->bound;
	if (prev.decisions) {
		fold(&totals, &prev, &totals_overflow);
		fold_split(&split_totals, &prev, &totals_overflow);
	}
	m->bound = next;
	if (usage) {
		old = m->usage;
		m->usage = usage;
	}
	pthread_mutex_unlock(&lock);
	free(prev.decisions);
	free(prev.split);
	client_usage_free(old);
}

void metrics_free_all(void)
{
	pthread_mutex_lock(&lock);
	while (workers) {
		struct metrics_worker *m = workers;
		workers = m->next;
		free(m->bound.decisions);
		free(m->bound.split);
		client_usage_free(m->usage);
		free(m);
	}
	table_free(&totals);
	table_free(&split_totals);
	totals_overflow = 0;
	pthread_mutex_unlock(&lock);
}

/* ---- facts from the main thread ---- */

void metrics_set_version(const char *version, const char *revision)
{
	pthread_mutex_lock(&lock);
	facts.version = version;
	facts.revision = revision;
	pthread_mutex_unlock(&lock);
}

/* Called with lock held. */
static void note_phases(const struct plan *plan)
{
	int cur = plan_current_phase(plan), want = plan_desired_phase(plan);

	snprintf(facts.hash, sizeof(facts.hash), "%s", plan_hash(plan));
	facts.phase = plan_phase_number(plan, cur);
	facts.desired = plan_phase_number(plan, want);
	snprintf(facts.phase_name, sizeof(facts.phase_name), "%s", plan_phase_name(plan, cur));
	snprintf(facts.desired_name, sizeof(facts.desired_name), "%s", plan_phase_name(plan, want));
	facts.generation++;
}

void metrics_phase_step(const struct plan *plan)
{
	pthread_mutex_lock(&lock);
	note_phases(plan);
	pthread_mutex_unlock(&lock);
}

void metrics_phase_waiting(const char *gate, const char *why)
{
	pthread_mutex_lock(&lock);
	snprintf(facts.waiting, sizeof(facts.waiting), "%s", gate ? gate : "");
	snprintf(facts.waiting_why, sizeof(facts.waiting_why), "%s", why ? why : "");
	pthread_mutex_unlock(&lock);
}

char *metrics_status_json(size_t *len)
{
	struct json_out j = { 0 };

	pthread_mutex_lock(&lock);
	json_out_open(&j, '{');
	json_out_key(&j, "desired");
	json_out_uint(&j, facts.desired);
	json_out_key(&j, "desired_name");
	json_out_str(&j, facts.desired_name);
	json_out_key(&j, "effective");
	json_out_uint(&j, facts.phase);
	json_out_key(&j, "effective_name");
	json_out_str(&j, facts.phase_name);
	json_out_key(&j, "waiting");
	json_out_str(&j, facts.waiting[0] ? facts.waiting : NULL);
	json_out_key(&j, "waiting_why");
	json_out_str(&j, facts.waiting[0] ? facts.waiting_why : NULL);
	json_out_key(&j, "plan");
	json_out_str(&j, facts.hash);
	json_out_key(&j, "generation");
	json_out_uint(&j, facts.generation);
	json_out_key(&j, "last_reload_ok");
	json_out_bool(&j, facts.last_ok);
	json_out_close(&j, '}');
	pthread_mutex_unlock(&lock);
	return json_out_done_line(&j, len);
}

void metrics_plan_applied(const struct plan *plan, bool reload, double unix_time)
{
	pthread_mutex_lock(&lock);
	note_phases(plan);
	if (reload)
		facts.accepted++;
	facts.last_ok = true;
	facts.last_time = unix_time;
	pthread_mutex_unlock(&lock);
}

void metrics_plan_rejected(double unix_time)
{
	pthread_mutex_lock(&lock);
	facts.rejected++;
	facts.last_ok = false;
	facts.last_time = unix_time;
	pthread_mutex_unlock(&lock);
}

void metrics_set_listening(void)
{
	pthread_mutex_lock(&lock);
	facts.listening = true;
	pthread_mutex_unlock(&lock);
}

bool metrics_ready(void)
{
	pthread_mutex_lock(&lock);
	bool ready = facts.generation > 0 && facts.listening;
	pthread_mutex_unlock(&lock);
	return ready;
}

void metrics_version_line(char *buf, size_t size)
{
	pthread_mutex_lock(&lock);
	if (strcmp(facts.revision, facts.version) == 0)
		snprintf(buf, size, "cutover-spoa %s\n", facts.version);
	else
		snprintf(buf, size, "cutover-spoa %s (%s)\n", facts.version, facts.revision);
	pthread_mutex_unlock(&lock);
}

/* ---- who calls deprecated routes ---- */

/* Every worker's table read and merged (client_usage_merge), at most the
 * largest table's size of rows. Called with lock held. */
static bool collect_usage(struct usage_row **rows, size_t *n, struct usage_view *v,
			  double *quiet)
{
	size_t room = 0, keep = 0;

	*v = (struct usage_view){ 0 };
	*n = 0;
	for (struct metrics_worker *m = workers; m; m = m->next) {
		if (m->usage) {
			room += client_usage_cap(m->usage);
			keep = client_usage_cap(m->usage) > keep ? client_usage_cap(m->usage) : keep;
		}
	}
	*rows = malloc((room ? room : 1) * sizeof(**rows));
	if (!*rows)
		return false;
	for (struct metrics_worker *m = workers; m; m = m->next) {
		struct usage_view w;
		if (!m->usage)
			continue;
		*n += client_usage_read(m->usage, *rows + *n, &w);
		v->total += w.total;
		v->other += w.other;
		v->other_last_ms = w.other_last_ms > v->other_last_ms ? w.other_last_ms
								      : v->other_last_ms;
		v->last_mono_ns = w.last_mono_ns > v->last_mono_ns ? w.last_mono_ns
								    : v->last_mono_ns;
	}
	*n = client_usage_merge(*rows, *n, keep, v);
	uint64_t since = v->last_mono_ns ? v->last_mono_ns : started_ns, now = metrics_now_ns();
	*quiet = now > since ? (double)(now - since) / 1e9 : 0.0;
	return true;
}

bool metrics_usage(struct usage_row **rows, size_t *n, struct usage_view *view, double *quiet)
{
	pthread_mutex_lock(&lock);
	bool ok = collect_usage(rows, n, view, quiet);
	pthread_mutex_unlock(&lock);
	return ok;
}

/* ---- the page ---- */

/* A label value with \, " and newline escaped as Prometheus requires. */
static void out_label(struct text_buf *p, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			text_buf_printf(p, "\\%c", *s);
		else if (*s == '\n')
			text_buf_printf(p, "\\n");
		else
			text_buf_printf(p, "%c", *s);
	}
}

static void family(struct text_buf *p, const char *name, const char *type, const char *help)
{
	text_buf_printf(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A client whose key is "other" would clash with the series of the
 * others: it is counted with them on this page. */
static bool is_other(const struct usage_row *r)
{
	return r->len == 5 && memcmp(r->key, "other", 5) == 0;
}

static void out_client(struct text_buf *p, const char *name, const struct usage_row *r)
{
	char label[CLIENT_USAGE_LABEL_MAX];

	client_usage_label(r->key, r->len, label);
	text_buf_printf(p, "%s{client=\"", name);
	out_label(p, label);
	text_buf_printf(p, "\"} ");
}

static void page_usage(struct text_buf *p, const struct usage_row *rows, size_t n,
		       const struct usage_view *v, double quiet)
{
	uint64_t other = v->other;
	int64_t other_last = v->other_last_ms;

	for (size_t i = 0; i < n; i++) {
		if (is_other(&rows[i])) {
			other += rows[i].requests;
			other_last = rows[i].last_ms > other_last ? rows[i].last_ms : other_last;
		}
	}
	family(p, "cutover_deprecated_requests_total", "counter",
	       "Requests decided on a deprecated route, by client (the plan's clients.track "
	       "clients with the most; the rest as client=\"other\").");
	for (size_t i = 0; i < n; i++) {
		if (is_other(&rows[i]))
			continue;
		out_client(p, "cutover_deprecated_requests_total", &rows[i]);
		text_buf_printf(p, "%llu\n", (unsigned long long)rows[i].requests);
	}
	text_buf_printf(p, "cutover_deprecated_requests_total{client=\"other\"} %llu\n",
	    (unsigned long long)other);
	family(p, "cutover_deprecated_last_request_timestamp_seconds", "gauge",
	       "When a client last called a deprecated route, in Unix time.");
	for (size_t i = 0; i < n; i++) {
		if (is_other(&rows[i]))
			continue;
		out_client(p, "cutover_deprecated_last_request_timestamp_seconds", &rows[i]);
		text_buf_printf(p, "%.3f\n", (double)rows[i].last_ms / 1000.0);
	}
	if (other_last)
		text_buf_printf(p, "cutover_deprecated_last_request_timestamp_seconds"
				"{client=\"other\"} %.3f\n", (double)other_last / 1000.0);
	family(p, "cutover_deprecated_quiet_seconds", "gauge",
	       "Seconds since this agent last decided a request on a deprecated route (since "
	       "it started when none).");
	text_buf_printf(p, "cutover_deprecated_quiet_seconds %.3f\n", quiet);
}

static int row_cmp(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int c;

	if (x->phase != y->phase)
		return x->phase < y->phase ? -1 : 1;
	if ((c = strcmp(x->route, y->route)) != 0)
		return c;
	if ((c = strcmp(x->backend, y->backend)) != 0)
		return c;
	return x->status < y->status ? -1 : x->status > y->status;
}

static bool copy_rows(struct table *to, const struct table *from)
{
	for (size_t i = 0; i < from->n; i++) {
		const struct row *r = &from->rows[i];
		if (!table_add(to, r->phase, r->status, r->route, r->backend, r->count))
			return false;
	}
	return true;
}

/* Totals and every worker's live counts, merged by name: decisions in all,
 * split decisions in split. Called with lock held. */
static bool collect(struct table *all, struct table *split, uint64_t *overflow)
{
	all->max = split->max = SIZE_MAX;
	*overflow = totals_overflow;
	if (!copy_rows(all, &totals) || !copy_rows(split, &split_totals))
		return false;
	for (struct metrics_worker *m = workers; m; m = m->next) {
		*overflow += get(&m->unbound);
		if (m->bound.decisions) {
			fold(all, &m->bound, overflow);
			fold_split(split, &m->bound, overflow);
		}
	}
	return true;
}

static void page_decisions(struct text_buf *p, const struct table *all)
{
	family(p, "cutover_decisions_total", "counter",
	       "Routing decisions by phase, route (empty: none matched), backend (empty: "
	       "none) and status the proxy answers with (empty: none).");
	for (size_t i = 0; i < all->n; i++) {
		const struct row *r = &all->rows[i];
		text_buf_printf(p, "cutover_decisions_total{phase=\"%u\",route=\"", r->phase);
		out_label(p, r->route);
		text_buf_printf(p, "\",backend=\"");
		out_label(p, r->backend);
		if (r->status)
			text_buf_printf(p, "\",status=\"%u\"} %llu\n", r->status,
					(unsigned long long)r->count);
		else
			text_buf_printf(p, "\",status=\"\"} %llu\n", (unsigned long long)r->count);
	}
}

/* split: rows of fold_split, the side in the backend field. */
static void page_split(struct text_buf *p, const struct table *split)
{
	family(p, "cutover_split_decisions_total", "counter",
	       "Decisions on routes split between clients (a progressive shift), by phase, "
	       "route and the side the client took (new: the phase's action; old: the one "
	       "the other clients keep).");
	for (size_t i = 0; i < split->n; i++) {
		const struct row *r = &split->rows[i];
		text_buf_printf(p, "cutover_split_decisions_total{phase=\"%u\",route=\"", r->phase);
		out_label(p, r->route);
		text_buf_printf(p, "\",side=\"%s\"} %llu\n", r->backend,
				(unsigned long long)r->count);
	}
}

static void page_overflow(struct text_buf *p, uint64_t overflow)
{
	family(p, "cutover_decisions_overflow_total", "counter",
	       "Decisions counted without labels: the table of label sets was full.");
	text_buf_printf(p, "cutover_decisions_overflow_total %llu\n", (unsigned long long)overflow);
}

static void page_workers(struct text_buf *p)
{
	uint64_t opened = 0, closed = 0, frames[METRICS_FRAME_KINDS] = { 0 },
		 errors[STATUS_SLOTS] = { 0 }, buckets[BUCKETS + 1] = { 0 }, ns = 0;

	for (struct metrics_worker *m = workers; m; m = m->next) {
		opened += get(&m->opened);
		closed += get(&m->closed);
		for (int i = 0; i < METRICS_FRAME_KINDS; i++)
			frames[i] += get(&m->frames[i]);
		for (int i = 0; i < STATUS_SLOTS; i++)
			errors[i] += get(&m->errors[i]);
		for (int i = 0; i <= BUCKETS; i++)
			buckets[i] += get(&m->buckets[i]);
		ns += get(&m->duration_ns);
	}

	family(p, "cutover_decision_duration_seconds", "histogram",
	       "Time the router took per decision.");
	uint64_t cumulative = 0;
	for (int i = 0; i < BUCKETS; i++) {
		cumulative += buckets[i];
		text_buf_printf(p, "cutover_decision_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    (double)bucket_ns[i] / 1e9, (unsigned long long)cumulative);
	}
	cumulative += buckets[BUCKETS];
	text_buf_printf(p, "cutover_decision_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
	       "cutover_decision_duration_seconds_sum %.9f\n"
	       "cutover_decision_duration_seconds_count %llu\n",
	    (unsigned long long)cumulative, (double)ns / 1e9, (unsigned long long)cumulative);

	family(p, "cutover_open_connections", "gauge", "Open HAProxy connections.");
	text_buf_printf(p, "cutover_open_connections %llu\n",
	    (unsigned long long)(opened >= closed ? opened - closed : 0));
	family(p, "cutover_connections_accepted_total", "counter",
	       "HAProxy connections accepted.");
	text_buf_printf(p, "cutover_connections_accepted_total %llu\n", (unsigned long long)opened);

	family(p, "cutover_frames_total", "counter",
	       "SPOP frames by direction (in: from HAProxy, out: to it) and type.");
	for (int i = 0; i < METRICS_FRAME_KINDS; i++)
		text_buf_printf(p, "cutover_frames_total{direction=\"%s\",type=\"%s\"} %llu\n",
		    i < METRICS_FRAME_AGENT_HELLO ? "in" : "out", frame_names[i],
		    (unsigned long long)frames[i]);

	family(p, "cutover_protocol_errors_total", "counter",
	       "Connections ended by a protocol error, by DISCONNECT status.");
	for (int i = 0; i < STATUS_SLOTS; i++)
		if (errors[i])
			text_buf_printf(p, "cutover_protocol_errors_total{status=\"%d\"} %llu\n",
			    i < STATUS_SLOTS - 1 ? i : 99, (unsigned long long)errors[i]);
}

/* Called with lock held. */
static void page_facts(struct text_buf *p)
{
	family(p, "cutover_build_info", "gauge", "The agent's version and source revision; always 1.");
	text_buf_printf(p, "cutover_build_info{version=\"");
	out_label(p, facts.version);
	text_buf_printf(p, "\",revision=\"");
	out_label(p, facts.revision);
	text_buf_printf(p, "\"} 1\n");
	family(p, "cutover_plan_info", "gauge",
	       "The plan in force: SHA-256 of its file and how many plans this process has "
	       "put in force; always 1.");
	text_buf_printf(p, "cutover_plan_info{hash=\"%s\",generation=\"%llu\"} 1\n", facts.hash,
	    (unsigned long long)facts.generation);
	family(p, "cutover_phase_desired", "gauge", "Phase the plan file asks for.");
	text_buf_printf(p, "cutover_phase_desired %u\n", facts.desired);
	family(p, "cutover_phase_effective", "gauge", "Phase decisions are made in.");
	text_buf_printf(p, "cutover_phase_effective %u\n", facts.phase);
	family(p, "cutover_phase_waiting", "gauge",
	       "1 for the gate the next phase step waits on (none: the live phase is the "
	       "desired one, or the step is being checked).");
	if (facts.waiting[0]) {
		text_buf_printf(p, "cutover_phase_waiting{gate=\"");
		out_label(p, facts.waiting);
		text_buf_printf(p, "\"} 1\n");
	}
	family(p, "cutover_plan_reloads_total", "counter",
	       "Plan reloads by result (the first load is not one).");
	text_buf_printf(p, "cutover_plan_reloads_total{result=\"accepted\"} %llu\n"
	       "cutover_plan_reloads_total{result=\"rejected\"} %llu\n",
	    (unsigned long long)facts.accepted, (unsigned long long)facts.rejected);
	family(p, "cutover_plan_last_reload_success", "gauge",
	       "1 if the last load of the plan file succeeded, 0 if it was rejected.");
	text_buf_printf(p, "cutover_plan_last_reload_success %d\n", facts.last_ok ? 1 : 0);
	family(p, "cutover_plan_last_reload_timestamp_seconds", "gauge",
	       "When the plan file was last loaded or rejected, in Unix time.");
	text_buf_printf(p, "cutover_plan_last_reload_timestamp_seconds %.3f\n", facts.last_time);
}

char *metrics_render(size_t *len)
{
	struct text_buf p;
	struct table all = { 0 }, split = { 0 };
	uint64_t overflow;
	struct usage_row *rows = NULL;
	struct usage_view usage;
	size_t nrows = 0;
	double quiet = 0;

	if (!text_buf_init(&p, 16384))
		return NULL;
	pthread_mutex_lock(&lock);
	if (!collect(&all, &split, &overflow) || !collect_usage(&rows, &nrows, &usage, &quiet))
		p.failed = true;
	page_facts(&p);
	page_workers(&p);
	pthread_mutex_unlock(&lock);
	if (rows)
		page_usage(&p, rows, nrows, &usage, quiet);
	free(rows);
	/* rows is NULL while nothing was counted; qsort() must not see it. */
	if (all.n > 1)
		qsort(all.rows, all.n, sizeof(*all.rows), row_cmp);
	if (split.n > 1)
		qsort(split.rows, split.n, sizeof(*split.rows), row_cmp);
	page_decisions(&p, &all);
	page_split(&p, &split);
	page_overflow(&p, overflow);
	table_free(&all);
	table_free(&split);
	return text_buf_finish(&p, len);
}
