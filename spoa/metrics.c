#include "metrics.h"

#include <errno.h>
#include <ev.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "plan.h"
#include "runtime.h"
#include "watcher.h"

/* Distinct {phase,route,backend} per worker. Open addressing: a 1,000-route
 * plan fills it to about 1/8, so a lookup is one or two probes. */
#define DECISION_SLOTS 8192
#define LABEL_MAX 64        /* longer route/backend names are cut */
#define STATUS_SLOTS 15     /* statuses 0..13, then 99 for anything else */
#define HTTP_REQUEST_MAX 4096
#define HTTP_CLIENTS_MAX 16
#define HTTP_TIMEOUT 5.0

typedef _Atomic uint64_t counter;

/* One label set. Written once by the owning worker, then published by
 * storing used with release order; readers load used with acquire. */
struct decision_slot {
	_Atomic unsigned used;
	unsigned phase;
	char route[LABEL_MAX];
	char backend[LABEL_MAX];
	counter count;
};

struct metrics_worker {
	struct metrics_worker *next;
	counter frames[METRICS_FRAME_KINDS];
	counter errors[STATUS_SLOTS];
	counter opened, closed;
	counter decisions_unlabelled; /* the slot table was full */
	struct decision_slot slots[DECISION_SLOTS];
};

/* Registered from the main thread before workers start; read by it only. */
static struct metrics_worker *workers;

static const char *const frame_names[METRICS_FRAME_KINDS] = {
	[METRICS_FRAME_HAPROXY_HELLO] = "haproxy_hello",
	[METRICS_FRAME_NOTIFY] = "notify",
	[METRICS_FRAME_HAPROXY_DISCONNECT] = "haproxy_disconnect",
	[METRICS_FRAME_UNKNOWN] = "unknown",
	[METRICS_FRAME_AGENT_HELLO] = "agent_hello",
	[METRICS_FRAME_ACK] = "ack",
	[METRICS_FRAME_AGENT_DISCONNECT] = "agent_disconnect",
};

/* Single writer: a plain load and store, no locked instruction. */
static inline void bump(counter *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static inline uint64_t get(counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

struct metrics_worker *metrics_worker_new(void)
{
	struct metrics_worker *m = calloc(1, sizeof(*m));

	if (m) {
		m->next = workers;
		workers = m;
	}
	return m;
}

void metrics_free_all(void)
{
	while (workers) {
		struct metrics_worker *m = workers;
		workers = m->next;
		free(m);
	}
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

static uint32_t hash_labels(unsigned phase, const char *route, const char *backend)
{
	uint32_t h = 2166136261u ^ phase;

	for (const char *s = route; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (const char *s = backend; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static bool label_eq(const char *slot, const char *name)
{
	return strncmp(slot, name, LABEL_MAX - 1) == 0;
}

void metrics_decision(struct metrics_worker *m, unsigned phase, const char *route,
		      const char *backend)
{
	if (!route)
		route = "";
	if (!backend)
		backend = "";
	uint32_t h = hash_labels(phase, route, backend);
	for (unsigned i = 0; i < DECISION_SLOTS; i++) {
		struct decision_slot *s = &m->slots[(h + i) % DECISION_SLOTS];
		if (atomic_load_explicit(&s->used, memory_order_relaxed)) {
			if (s->phase == phase && label_eq(s->route, route) &&
			    label_eq(s->backend, backend)) {
				bump(&s->count);
				return;
			}
			continue;
		}
		s->phase = phase;
		snprintf(s->route, sizeof(s->route), "%s", route);
		snprintf(s->backend, sizeof(s->backend), "%s", backend);
		atomic_store_explicit(&s->count, 1, memory_order_relaxed);
		atomic_store_explicit(&s->used, 1, memory_order_release);
		return;
	}
	bump(&m->decisions_unlabelled);
}

/* ---- the page ---- */

struct page {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void page_printf(struct page *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void page_printf(struct page *p, const char *fmt, ...)
{
	for (;;) {
		if (p->failed)
			return;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			p->failed = true;
			return;
		}
		if ((size_t)n < p->cap - p->len) {
			p->len += (size_t)n;
			return;
		}
		size_t cap = p->cap * 2 + (size_t)n;
		char *b = realloc(p->buf, cap);
		if (!b) {
			p->failed = true;
			return;
		}
		p->buf = b;
		p->cap = cap;
	}
}

/* A label value with \, " and newline escaped as Prometheus requires. */
static void page_label(struct page *p, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			page_printf(p, "\\%c", *s);
		else if (*s == '\n')
			page_printf(p, "\\n");
		else
			page_printf(p, "%c", *s);
	}
}

struct decision_row {
	unsigned phase;
	const char *route, *backend;
	uint64_t count;
};

static int row_cmp(const void *a, const void *b)
{
	const struct decision_row *x = a, *y = b;

	if (x->phase != y->phase)
		return x->phase < y->phase ? -1 : 1;
	int c = strcmp(x->route, y->route);
	return c ? c : strcmp(x->backend, y->backend);
}

static void page_decisions(struct page *p)
{
	size_t n = 0, cap = 0;
	struct decision_row *rows = NULL;
	uint64_t unlabelled = 0;

	for (struct metrics_worker *m = workers; m; m = m->next) {
		unlabelled += get(&m->decisions_unlabelled);
		for (unsigned i = 0; i < DECISION_SLOTS; i++) {
			struct decision_slot *s = &m->slots[i];
			if (!atomic_load_explicit(&s->used, memory_order_acquire))
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 64;
				struct decision_row *r = realloc(rows, cap * sizeof(*rows));
				if (!r) {
					p->failed = true;
					free(rows);
					return;
				}
				rows = r;
			}
			rows[n++] = (struct decision_row){ s->phase, s->route, s->backend,
							   get(&s->count) };
		}
	}
	/* rows is NULL while no decision was made; qsort() must not see it. */
	if (n > 1)
		qsort(rows, n, sizeof(*rows), row_cmp);
	page_printf(p, "# HELP cutover_decisions_total Routing decisions by phase, route and "
		       "backend (empty: none).\n# TYPE cutover_decisions_total counter\n");
	for (size_t i = 0; i < n;) {
		uint64_t sum = 0;
		size_t j = i;
		for (; j < n && row_cmp(&rows[i], &rows[j]) == 0; j++)
			sum += rows[j].count;
		page_printf(p, "cutover_decisions_total{phase=\"%u\",route=\"", rows[i].phase);
		page_label(p, rows[i].route);
		page_printf(p, "\",backend=\"");
		page_label(p, rows[i].backend);
		page_printf(p, "\"} %llu\n", (unsigned long long)sum);
		i = j;
	}
	if (unlabelled)
		page_printf(p, "cutover_decisions_total{phase=\"\",route=\"\",backend=\"\"} %llu\n",
			    (unsigned long long)unlabelled);
	free(rows);
}

static void page_build(struct page *p)
{
	uint64_t opened = 0, closed = 0, frames[METRICS_FRAME_KINDS] = { 0 },
		 errors[STATUS_SLOTS] = { 0 };

	for (struct metrics_worker *m = workers; m; m = m->next) {
		opened += get(&m->opened);
		closed += get(&m->closed);
		for (int i = 0; i < METRICS_FRAME_KINDS; i++)
			frames[i] += get(&m->frames[i]);
		for (int i = 0; i < STATUS_SLOTS; i++)
			errors[i] += get(&m->errors[i]);
	}
	page_decisions(p);

	const struct plan *plan = runtime_acquire();
	unsigned phase = plan_phase_number(plan, plan_current_phase(plan));
	runtime_release(plan);
	page_printf(p, "# HELP cutover_phase Phase of the plan in force.\n"
		       "# TYPE cutover_phase gauge\ncutover_phase %u\n", phase);

	page_printf(p, "# HELP cutover_plan_reloads_total Plan reloads by result.\n"
		       "# TYPE cutover_plan_reloads_total counter\n"
		       "cutover_plan_reloads_total{result=\"accepted\"} %llu\n"
		       "cutover_plan_reloads_total{result=\"rejected\"} %llu\n",
		    (unsigned long long)watcher_reloads_accepted(),
		    (unsigned long long)watcher_reloads_rejected());

	page_printf(p, "# HELP cutover_connections Open HAProxy connections.\n"
		       "# TYPE cutover_connections gauge\ncutover_connections %llu\n"
		       "# HELP cutover_connections_total Accepted HAProxy connections.\n"
		       "# TYPE cutover_connections_total counter\ncutover_connections_total %llu\n",
		    (unsigned long long)(opened >= closed ? opened - closed : 0),
		    (unsigned long long)opened);

	page_printf(p, "# HELP cutover_frames_total SPOP frames received and sent, by type.\n"
		       "# TYPE cutover_frames_total counter\n");
	for (int i = 0; i < METRICS_FRAME_KINDS; i++)
		page_printf(p, "cutover_frames_total{type=\"%s\"} %llu\n", frame_names[i],
			    (unsigned long long)frames[i]);

	page_printf(p, "# HELP cutover_protocol_errors_total Connections ended by a protocol "
		       "error, by DISCONNECT status.\n"
		       "# TYPE cutover_protocol_errors_total counter\n");
	for (int i = 0; i < STATUS_SLOTS; i++)
		if (errors[i])
			page_printf(p, "cutover_protocol_errors_total{status=\"%d\"} %llu\n",
				    i < STATUS_SLOTS - 1 ? i : 99, (unsigned long long)errors[i]);
}

/* ---- the HTTP/1.0 responder ---- */

struct http_client {
	struct metrics_server *srv;
	struct http_client *next, **prev;
	int fd;
	ev_io io;
	ev_timer timer;
	size_t req_len;
	char req[HTTP_REQUEST_MAX];
	struct page resp;
	size_t sent;
};

struct metrics_server {
	struct ev_loop *loop;
	int fd;
	ev_io accept_w;
	struct http_client *clients;
	unsigned nclients;
};

/* libev touches no watcher after its callback returns, and nothing else
 * refers to a client, so a client may end from its own callback. */
static void client_end(struct http_client *c)
{
	struct metrics_server *srv = c->srv;

	ev_io_stop(srv->loop, &c->io);
	ev_timer_stop(srv->loop, &c->timer);
	close(c->fd);
	*c->prev = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nclients--;
	free(c->resp.buf);
	free(c);
}

static void client_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_client *c = w->data;

	(void)loop;
	(void)revents;
	while (c->sent < c->resp.len) {
		ssize_t n = send(c->fd, c->resp.buf + c->sent, c->resp.len - c->sent, MSG_NOSIGNAL);
		if (n > 0)
			c->sent += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		else
			break;
	}
	client_end(c);
}

static void respond(struct http_client *c, int code, const char *reason, bool with_page)
{
	struct page body = { 0 };

	body.cap = 4096;
	body.buf = malloc(body.cap);
	body.failed = body.buf == NULL;
	if (with_page)
		page_build(&body);
	else
		page_printf(&body, "%s\n", reason);
	if (body.failed) {
		code = 500;
		reason = "Internal Server Error";
		body.len = 0;
	}
	c->resp = (struct page){ .buf = malloc(256), .cap = 256 };
	c->resp.failed = c->resp.buf == NULL;
	page_printf(&c->resp, "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			      "Connection: close\r\n\r\n",
		    code, reason,
		    with_page ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain",
		    body.len);
	if (body.len && !body.failed)
		page_printf(&c->resp, "%.*s", (int)body.len, body.buf);
	free(body.buf);
	if (c->resp.failed) {
		client_end(c);
		return;
	}
	ev_io_stop(c->srv->loop, &c->io);
	ev_io_init(&c->io, client_write, c->fd, EV_WRITE);
	c->io.data = c;
	ev_io_start(c->srv->loop, &c->io);
}

static void client_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_client *c = w->data;

	(void)loop;
	(void)revents;
	ssize_t n = recv(c->fd, c->req + c->req_len, sizeof(c->req) - 1 - c->req_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		client_end(c);
		return;
	}
	c->req_len += (size_t)n;
	c->req[c->req_len] = '\0';
	if (!strstr(c->req, "\r\n\r\n") && !strstr(c->req, "\n\n")) {
		if (c->req_len == sizeof(c->req) - 1)
			respond(c, 431, "Request Header Fields Too Large", false);
		return;
	}
	if (strncmp(c->req, "GET ", 4) != 0)
		respond(c, 405, "Method Not Allowed", false);
	else if (strncmp(c->req + 4, "/metrics", 8) == 0 &&
		 (c->req[12] == ' ' || c->req[12] == '?' || c->req[12] == '\r' ||
		  c->req[12] == '\n'))
		respond(c, 200, "OK", true);
	else
		respond(c, 404, "Not Found", false);
}

static void client_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	client_end(t->data);
}

static void server_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct metrics_server *srv = w->data;

	(void)revents;
	for (;;) {
		int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("metrics: accept: %s", strerror(errno));
			return;
		}
		struct http_client *c;
		if (srv->nclients >= HTTP_CLIENTS_MAX || (c = malloc(sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->srv = srv;
		c->fd = fd;
		c->req_len = 0;
		c->resp = (struct page){ 0 };
		c->sent = 0;
		c->next = srv->clients;
		c->prev = &srv->clients;
		if (srv->clients)
			srv->clients->prev = &c->next;
		srv->clients = c;
		srv->nclients++;
		ev_io_init(&c->io, client_read, fd, EV_READ);
		ev_timer_init(&c->timer, client_timeout, HTTP_TIMEOUT, 0);
		c->io.data = c->timer.data = c;
		ev_io_start(loop, &c->io);
		ev_timer_start(loop, &c->timer);
	}
}

struct metrics_server *metrics_server_start(struct ev_loop *loop, const struct sockaddr *addr,
					    socklen_t addrlen, char *err, size_t errlen)
{
	struct metrics_server *srv = calloc(1, sizeof(*srv));
	int one = 1;

	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->loop = loop;
	srv->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->fd < 0 || setsockopt(srv->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(srv->fd, addr, addrlen) != 0 || listen(srv->fd, 16) != 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		if (srv->fd >= 0)
			close(srv->fd);
		free(srv);
		return NULL;
	}
	ev_io_init(&srv->accept_w, server_accept, srv->fd, EV_READ);
	srv->accept_w.data = srv;
	ev_io_start(loop, &srv->accept_w);
	return srv;
}

void metrics_server_stop(struct metrics_server *srv)
{
	if (!srv)
		return;
	while (srv->clients)
		client_end(srv->clients);
	ev_io_stop(srv->loop, &srv->accept_w);
	close(srv->fd);
	free(srv);
}
