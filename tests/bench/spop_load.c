/* SPDX-License-Identifier: Apache-2.0 */
/* spop-load: a SPOP load generator for scripts/bench.
 *
 * It plays HAProxy's part: M connections, each sends a HAPROXY-HELLO offering
 * pipelining, then keeps K NOTIFY frames in flight (message `cutover` with the
 * args of docs/contracts.md), checks that every ACK echoes the ids of a NOTIFY it
 * sent, and reports decisions per second, time per frame (NOTIFY written to
 * ACK read) and errors. Every run is bounded by --duration and --requests.
 *
 * It is written from docs/spop.md alone and shares no code with the
 * agent, so an encoding bug on one side cannot hide behind the same bug on the
 * other. The codec is spop_wire.c; `spop-load --self-test` checks it against
 * docs/spop.md's examples.
 *
 * Output: one line of key=value pairs on stdout (end of main). Exit 0 when
 * at least one decision was made and nothing went wrong, 1 on any error, 2 on
 * bad usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "spop_wire.h"

/* ---- latency histogram: log-linear, about 1.6 % resolution, in ns ---- */

#define SUB_BITS 6
#define SUB_COUNT (1u << SUB_BITS)
#define HIST_BUCKETS ((64 - SUB_BITS + 1) * SUB_COUNT)

static unsigned hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < SUB_COUNT)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - SUB_BITS;
	return (shift + 1) * SUB_COUNT + (unsigned)(v >> shift) - SUB_COUNT;
}

/* Middle of a bucket: the value reported for every sample in it. */
static double hist_value(unsigned idx)
{
	unsigned shift;
	uint64_t low;

	if (idx < SUB_COUNT)
		return idx;
	shift = idx / SUB_COUNT - 1;
	low = (uint64_t)(SUB_COUNT + idx % SUB_COUNT) << shift;
	return (double)low + (double)((uint64_t)1 << shift) / 2.0;
}

/* ---- the requests a run sends ---- */

struct request {
	char *method;
	char *path;
	char *host;   /* NULL: sent as NULL, like an absent Host header */
	size_t room;  /* upper bound of its NOTIFY frame */
};

/* The sample plan's traffic (docs/contracts.md): both sides, both names, other
 * query/command paths, and paths outside both. */
static const char *const builtin_mix[][3] = {
	{ "GET", "/query/api/squids/42", "api.example.test" },
	{ "GET", "/query/api/squids", "api.example.test" },
	{ "POST", "/command/api/squids", "api.example.test" },
	{ "PUT", "/command/api/squids/42", "api.example.test" },
	{ "DELETE", "/command/api/squids/7", "api.example.test" },
	{ "GET", "/query/api/seafoods/42", "api.example.test" },
	{ "POST", "/command/api/seafoods", "api.example.test" },
	{ "HEAD", "/query/api/orders/9", NULL },
	{ "PATCH", "/command/api/orders/9", "api.example.test" },
	{ "GET", "/healthz", "api.example.test" },
};

struct mix {
	struct request *req;
	unsigned count;
};

static char *dup_or_null(const char *s)
{
	char *d;

	if (s == NULL || strcmp(s, "-") == 0)
		return NULL;
	d = strdup(s);
	if (d == NULL) {
		perror("strdup");
		exit(1);
	}
	return d;
}

static void mix_add(struct mix *m, const char *method, const char *path, const char *host)
{
	struct request *r = realloc(m->req, (m->count + 1) * sizeof *r);

	if (r == NULL) {
		perror("realloc");
		exit(1);
	}
	m->req = r;
	r[m->count] = (struct request){ dup_or_null(method), dup_or_null(path),
					dup_or_null(host), 256 };
	r = &m->req[m->count];
	r->room += strlen(r->method) + strlen(r->path) + (r->host ? strlen(r->host) : 0);
	m->count++;
}

/* A paths file holds one request a line: METHOD PATH [HOST [CLIENT]], with
 * "-" for an absent value; blank lines and lines starting with # are skipped.
 * CLIENT is the X-Api-Client header wrk sends (HAProxy logs it); the agent
 * is not sent it, so it is read and left. */
static bool mix_load(struct mix *m, const char *file)
{
	FILE *f = fopen(file, "r");
	char line[4096];
	unsigned lineno = 0;

	if (f == NULL) {
		fprintf(stderr, "spop-load: %s: %s\n", file, strerror(errno));
		return false;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		char *field[5] = { 0 }, *save = NULL, *tok;
		unsigned n = 0;

		lineno++;
		for (tok = strtok_r(line, " \t\r\n", &save); tok != NULL && n < 5;
		     tok = strtok_r(NULL, " \t\r\n", &save))
			field[n++] = tok;
		if (n == 0 || field[0][0] == '#')
			continue;
		if (n < 2 || n > 4 || strcmp(field[0], "-") == 0 || field[1][0] != '/') {
			fprintf(stderr, "spop-load: %s:%u: expected METHOD /PATH [HOST [CLIENT]]\n",
				file, lineno);
			fclose(f);
			return false;
		}
		mix_add(m, field[0], field[1], field[2]);
	}
	fclose(f);
	if (m->count == 0) {
		fprintf(stderr, "spop-load: %s: no requests\n", file);
		return false;
	}
	return true;
}

/* ---- options ---- */

struct options {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	unsigned connections;
	unsigned inflight;
	double duration;
	uint64_t requests;
	unsigned threads;
	pid_t agent_pid;
	struct mix mix;
};

#define MAX_DURATION 600.0
#define CONNECT_TIMEOUT 10.0
#define DRAIN_TIMEOUT 2.0

/* ---- per-thread state ---- */

struct slot {
	uint64_t sid;
	uint64_t fid;
	uint64_t sent_ns;
	bool busy;
};

enum conn_state { CS_CONNECTING, CS_HELLO, CS_READY, CS_CLOSING, CS_CLOSED };

struct worker;

struct conn {
	struct worker *w;
	ev_io io;
	int events;
	int fd;
	enum conn_state state;
	uint32_t max_frame;
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	struct slot *slots;
	unsigned busy;
};

struct tally {
	char name[40];
	uint64_t count;
};

#define TALLY_MAX 24

struct stats {
	uint64_t decisions;
	uint64_t err_connect;    /* connect or HELLO failed */
	uint64_t err_protocol;   /* a frame we could not accept */
	uint64_t err_disconnect; /* agent sent AGENT-DISCONNECT mid-run */
	uint64_t err_eof;        /* agent closed mid-run */
	uint64_t err_lost;       /* NOTIFYs never answered */
	uint64_t err_contract;   /* ACK without txn phase, or with a proc var (docs/contracts.md) */
	uint64_t hist[HIST_BUCKETS];
	struct tally answers[TALLY_MAX]; /* "backend:x", "status:404" or "none" */
	unsigned nanswers;
};

enum phase { PH_CONNECT, PH_LOAD, PH_DRAIN, PH_DISCONNECT };

struct worker {
	unsigned index;
	const struct options *opt;
	struct ev_loop *loop;
	ev_timer timer;
	struct conn *conns;
	unsigned nconns;
	unsigned settled; /* connections READY or failed (connect phase) */
	unsigned open;    /* connections not CLOSED */
	enum phase phase;
	uint64_t budget, sent, inflight;
	uint64_t next_sid;
	unsigned mix_pos;
	uint64_t now_ns;
	uint64_t load_start_ns, load_end_ns;
	struct stats st;
	pthread_t thread;
};

static pthread_barrier_t barrier;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL) {
		perror("malloc");
		exit(1);
	}
	return p;
}

static void tally(struct stats *st, const char *name, size_t len, uint64_t count)
{
	unsigned i;

	if (len >= sizeof st->answers[0].name)
		len = sizeof st->answers[0].name - 1;
	for (i = 0; i < st->nanswers; i++)
		if (strlen(st->answers[i].name) == len && memcmp(st->answers[i].name, name, len) == 0)
			break;
	if (i == st->nanswers) {
		if (i == TALLY_MAX)
			return;
		memcpy(st->answers[i].name, name, len);
		st->answers[i].name[len] = '\0';
		st->nanswers++;
	}
	st->answers[i].count += count;
}

/* ---- connection I/O ---- */

static void conn_set_events(struct conn *c, int events)
{
	if (c->events == events)
		return;
	ev_io_stop(c->w->loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(c->w->loop, &c->io);
	c->events = events;
}

static void conn_close(struct conn *c)
{
	struct worker *w = c->w;

	if (c->state == CS_CLOSED)
		return;
	if (w->phase == PH_CONNECT && c->state != CS_READY)
		w->settled++;
	if (c->busy > 0) {
		w->st.err_lost += c->busy;
		w->inflight -= c->busy;
		c->busy = 0;
	}
	ev_io_stop(w->loop, &c->io);
	close(c->fd);
	c->fd = -1;
	c->state = CS_CLOSED;
	w->open--;
}

/* Room for n more bytes at the end of the output buffer. */
static struct writer conn_writer(struct conn *c, size_t n)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_cap - c->out_len < n) {
		size_t cap = c->out_cap * 2 + n;
		uint8_t *p = realloc(c->out, cap);

		if (p == NULL) {
			perror("realloc");
			exit(1);
		}
		c->out = p;
		c->out_cap = cap;
	}
	return (struct writer){ c->out + c->out_len, c->out + c->out_cap, false };
}

/* Writes what is queued; waits for EV_WRITE when the socket is full. */
static void conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			conn_set_events(c, EV_READ | EV_WRITE);
			return;
		}
		if (n <= 0) {
			if (c->state != CS_CLOSING)
				c->w->st.err_eof++;
			conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	conn_set_events(c, EV_READ);
}

/* Queues one NOTIFY in a free slot. */
static void send_notify(struct conn *c, struct slot *s)
{
	struct worker *w = c->w;
	const struct request *rq = &w->opt->mix.req[w->mix_pos];
	struct arg args[3];
	struct writer wr = conn_writer(c, rq->room);
	uint8_t *start = wr.p;

	if (++w->mix_pos == w->opt->mix.count)
		w->mix_pos = 0;
	s->sid = w->next_sid++;
	s->fid = 1 + s->sid % 3; /* 2.6 counts frames per stream; any value must echo */
	args[0] = (struct arg){ "method", str_value(rq->method) };
	args[1] = (struct arg){ "path", str_value(rq->path) };
	args[2] = (struct arg){ "host", str_value(rq->host) };
	encode_notify(&wr, s->sid, s->fid, "cutover", args, 3);
	if (wr.full || (size_t)(wr.p - start) - 4 > c->max_frame) {
		fprintf(stderr, "spop-load: request %s %s does not fit a frame\n", rq->method, rq->path);
		exit(1);
	}
	c->out_len += (size_t)(wr.p - start);
	s->sent_ns = w->now_ns;
	s->busy = true;
	c->busy++;
	w->inflight++;
	w->sent++;
}

static bool may_send(const struct worker *w)
{
	return w->phase == PH_LOAD && w->sent < w->budget;
}

/* Fills every free slot of a ready connection. */
static void conn_fill(struct conn *c)
{
	for (unsigned i = 0; i < c->w->opt->inflight && may_send(c->w); i++)
		if (!c->slots[i].busy)
			send_notify(c, &c->slots[i]);
}

/* Stops sending; what is in flight has DRAIN_TIMEOUT to be answered. */
static void start_drain(struct worker *w)
{
	w->phase = PH_DRAIN;
	ev_timer_stop(w->loop, &w->timer);
	ev_timer_set(&w->timer, DRAIN_TIMEOUT, 0);
	ev_timer_start(w->loop, &w->timer);
}

/* Is the current phase over? (Sending stops once the budget is spent.) */
static bool worker_done(struct worker *w)
{
	if (w->phase == PH_LOAD && w->sent >= w->budget)
		start_drain(w);
	switch (w->phase) {
	case PH_CONNECT:
		return w->settled == w->nconns;
	case PH_LOAD:
	case PH_DRAIN:
		return w->inflight == 0 || w->open == 0;
	case PH_DISCONNECT:
		return w->open == 0;
	}
	return true;
}

static void worker_check_done(struct worker *w)
{
	if (worker_done(w))
		ev_break(w->loop, EVBREAK_ONE);
}

static void protocol_error(struct conn *c, const char *why)
{
	fprintf(stderr, "spop-load: thread %u conn %d: %s\n", c->w->index, c->fd, why);
	if (c->state == CS_HELLO)
		c->w->st.err_connect++;
	else
		c->w->st.err_protocol++;
	conn_close(c);
}

static void on_hello(struct conn *c, const uint8_t *frame, size_t len)
{
	struct agent_hello h;
	const char *why = parse_agent_hello(frame, len, OUR_MAX_FRAME, &h);

	if (why == NULL && c->w->opt->inflight > 1 && !h.pipelining)
		why = "agent did not grant pipelining (use --inflight 1)";
	if (why != NULL) {
		if (h.refused)
			fprintf(stderr, "spop-load: AGENT-DISCONNECT status %llu \"%s\"\n",
				(unsigned long long)h.bye.status, h.bye.message);
		protocol_error(c, why);
		return;
	}
	c->max_frame = (uint32_t)h.max_frame;
	c->state = CS_READY;
	c->w->settled++;
}

static void on_ack(struct conn *c, const uint8_t *frame, size_t len)
{
	struct worker *w = c->w;
	struct ack a;
	struct disconnect bye;
	bool is_bye;
	const char *why = parse_ack(frame, len, &a, &bye, &is_bye);
	unsigned i;
	char label[48];

	if (why != NULL) {
		protocol_error(c, why);
		return;
	}
	if (is_bye) {
		if (c->state != CS_CLOSING) {
			fprintf(stderr, "spop-load: AGENT-DISCONNECT mid-run: status %llu \"%s\"\n",
				(unsigned long long)bye.status, bye.message);
			w->st.err_disconnect++;
		}
		conn_close(c);
		return;
	}
	if (c->state == CS_CLOSING)
		return; /* nothing is in flight once we said goodbye */
	for (i = 0; i < w->opt->inflight; i++)
		if (c->slots[i].busy && c->slots[i].sid == a.sid && c->slots[i].fid == a.fid)
			break;
	if (i == w->opt->inflight) {
		protocol_error(c, "ACK ids match no NOTIFY in flight on this connection");
		return;
	}
	c->slots[i].busy = false;
	c->busy--;
	w->inflight--;
	w->st.decisions++;
	w->st.hist[hist_index(w->now_ns - c->slots[i].sent_ns)]++;
	w->load_end_ns = w->now_ns;
	if (!a.phase || a.proc_var)
		w->st.err_contract++;
	if (a.status != 0) {
		snprintf(label, sizeof label, "status:%llu", (unsigned long long)a.status);
		tally(&w->st, label, strlen(label), 1);
	} else if (a.backend != NULL) {
		snprintf(label, sizeof label, "backend:%.*s", (int)(a.backend_len < 32 ? a.backend_len : 32),
			 (const char *)a.backend);
		tally(&w->st, label, strlen(label), 1);
	} else {
		tally(&w->st, "none", 4, 1);
	}
	if (may_send(w))
		send_notify(c, &c->slots[i]);
}

/* Takes every complete frame out of the input buffer. */
static void conn_frames(struct conn *c)
{
	size_t off = 0;

	while (c->state != CS_CLOSED && c->in_len - off >= 4) {
		uint32_t len;

		memcpy(&len, c->in + off, 4);
		len = ntohl(len);
		if (len == 0 || len > c->max_frame) {
			protocol_error(c, len == 0 ? "zero-length frame" : "frame over max-frame-size");
			return;
		}
		if (c->in_len - off - 4 < len)
			break;
		if (c->state == CS_HELLO)
			on_hello(c, c->in + off + 4, len);
		else
			on_ack(c, c->in + off + 4, len);
		off += 4 + (size_t)len;
	}
	if (c->state == CS_CLOSED)
		return;
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

static void conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;
	char engine[40];
	struct writer wr;
	uint8_t *start;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		fprintf(stderr, "spop-load: connect: %s\n", strerror(err ? err : errno));
		c->w->st.err_connect++;
		conn_close(c);
		return;
	}
	snprintf(engine, sizeof engine, "spop-load-%u-%d", c->w->index, c->fd);
	wr = conn_writer(c, 512);
	start = wr.p;
	encode_hello(&wr, OUR_MAX_FRAME, "pipelining", engine, false);
	c->out_len += (size_t)(wr.p - start);
	c->state = CS_HELLO;
	conn_flush(c);
}

static void conn_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = io->data;
	struct worker *w = c->w;

	(void)loop;
	w->now_ns = mono_ns();
	if (c->state == CS_CONNECTING) {
		conn_connected(c);
		worker_check_done(w);
		return;
	}
	if (revents & EV_READ) {
		ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			if (c->state == CS_HELLO) {
				fprintf(stderr, "spop-load: agent closed during HELLO\n");
				w->st.err_connect++;
			} else if (c->state != CS_CLOSING) {
				w->st.err_eof++;
			}
			conn_close(c);
		} else if (n > 0) {
			c->in_len += (size_t)n;
			conn_frames(c);
		}
	}
	if (c->state != CS_CLOSED)
		conn_flush(c);
	worker_check_done(w);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)revents;
	switch (w->phase) {
	case PH_LOAD:
		start_drain(w);
		worker_check_done(w);
		return;
	case PH_CONNECT:
		for (unsigned i = 0; i < w->nconns; i++)
			if (w->conns[i].state == CS_CONNECTING || w->conns[i].state == CS_HELLO) {
				fprintf(stderr, "spop-load: connect/HELLO timed out\n");
				w->st.err_connect++;
				conn_close(&w->conns[i]);
			}
		break;
	case PH_DRAIN:
	case PH_DISCONNECT:
		for (unsigned i = 0; i < w->nconns; i++)
			conn_close(&w->conns[i]); /* unanswered NOTIFYs count as lost */
		break;
	}
	ev_break(loop, EVBREAK_ONE);
}

static void run_phase(struct worker *w, enum phase phase, double timeout)
{
	w->phase = phase;
	ev_timer_set(&w->timer, timeout, 0);
	ev_timer_start(w->loop, &w->timer);
	if (!worker_done(w)) /* ev_run forgets an ev_break made before it */
		ev_run(w->loop, 0);
	ev_timer_stop(w->loop, &w->timer);
}

static bool conn_open(struct conn *c)
{
	const struct options *o = c->w->opt;
	int one = 1;

	c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		perror("spop-load: socket");
		return false;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addr_len) < 0 && errno != EINPROGRESS) {
		perror("spop-load: connect");
		close(c->fd);
		return false;
	}
	c->state = CS_CONNECTING;
	c->max_frame = OUR_MAX_FRAME;
	c->in_cap = OUR_MAX_FRAME + 4 + 4096;
	c->in = xmalloc(c->in_cap);
	c->out_cap = (size_t)o->inflight * 256 + 1024;
	c->out = xmalloc(c->out_cap);
	c->slots = calloc(o->inflight, sizeof *c->slots);
	if (c->slots == NULL) {
		perror("calloc");
		exit(1);
	}
	ev_io_init(&c->io, conn_cb, c->fd, EV_WRITE);
	c->io.data = c;
	c->events = EV_WRITE;
	ev_io_start(c->w->loop, &c->io);
	c->w->open++;
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct options *o = w->opt;

	w->loop = ev_loop_new(EVFLAG_AUTO);
	if (w->loop == NULL) {
		fprintf(stderr, "spop-load: ev_loop_new failed\n");
		exit(1);
	}
	ev_timer_init(&w->timer, timer_cb, 0, 0);
	w->timer.data = w;
	for (unsigned i = 0; i < w->nconns; i++) {
		w->conns[i].w = w;
		w->conns[i].state = CS_CLOSED;
		if (!conn_open(&w->conns[i])) {
			w->st.err_connect++;
			w->settled++;
		}
	}
	run_phase(w, PH_CONNECT, CONNECT_TIMEOUT);

	pthread_barrier_wait(&barrier); /* every thread connected: load starts */
	w->now_ns = w->load_start_ns = w->load_end_ns = mono_ns();
	w->phase = PH_LOAD;
	for (unsigned i = 0; i < w->nconns; i++)
		if (w->conns[i].state == CS_READY) {
			conn_fill(&w->conns[i]);
			conn_flush(&w->conns[i]);
		}
	run_phase(w, PH_LOAD, o->duration);

	pthread_barrier_wait(&barrier); /* load over: main samples the agent */
	pthread_barrier_wait(&barrier); /* ... with every connection still open */
	w->now_ns = mono_ns();
	for (unsigned i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		struct writer wr;
		uint8_t *start;

		if (c->state != CS_READY)
			continue;
		wr = conn_writer(c, 256);
		start = wr.p;
		encode_disconnect(&wr, 0, "normal");
		c->out_len += (size_t)(wr.p - start);
		c->state = CS_CLOSING;
		conn_flush(c);
	}
	run_phase(w, PH_DISCONNECT, DRAIN_TIMEOUT);
	for (unsigned i = 0; i < w->nconns; i++) {
		free(w->conns[i].in);
		free(w->conns[i].out);
		free(w->conns[i].slots);
	}
	ev_loop_destroy(w->loop);
	return NULL;
}

/* ---- the agent's CPU and memory, from /proc ---- */

/* utime + stime of every thread of pid, in seconds; negative when unreadable. */
static double proc_cpu_seconds(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long long utime, stime;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* A "VmRSS:"-style line of /proc/pid/status, in KiB; -1 when absent. */
static long proc_status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	long kib = -1;
	size_t kl = strlen(key);
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, key, kl) == 0) {
			kib = strtol(line + kl, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

static double self_cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ---- report ---- */

static double percentile_us(const uint64_t *hist, uint64_t total, double q)
{
	uint64_t want = (uint64_t)(q * (double)total), seen = 0;

	if (total == 0)
		return 0;
	if (want >= total)
		want = total - 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen > want)
			return hist_value(i) / 1000.0;
	}
	return 0;
}

static void merge(struct stats *to, const struct stats *from)
{
	to->decisions += from->decisions;
	to->err_connect += from->err_connect;
	to->err_protocol += from->err_protocol;
	to->err_disconnect += from->err_disconnect;
	to->err_eof += from->err_eof;
	to->err_lost += from->err_lost;
	to->err_contract += from->err_contract;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		to->hist[i] += from->hist[i];
	for (unsigned i = 0; i < from->nanswers; i++)
		tally(to, from->answers[i].name, strlen(from->answers[i].name), from->answers[i].count);
}

/* The codec against docs/spop.md, and the histogram's resolution. */
static int self_test(void)
{
	unsigned failed = wire_self_test();

	for (uint64_t x = 1; x < ((uint64_t)1 << 40); x = x * 3 + 1)
		if (hist_value(hist_index(x)) < (double)x * 0.98 || hist_value(hist_index(x)) > (double)x * 1.02) {
			fprintf(stderr, "self-test: FAILED histogram resolution at %llu\n", (unsigned long long)x);
			failed++;
			break;
		}
	printf("self-test: %s\n", failed ? "FAILED" : "passed");
	return failed ? 1 : 0;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: spop-load [--connect ADDR:PORT] [--connections M] [--inflight K]\n"
		"                 [--duration SECONDS] [--requests N] [--threads T]\n"
		"                 [--paths FILE] [--pid AGENT_PID]\n"
		"       spop-load --self-test | --help\n"
		"  --connect      agent address on loopback (127.0.0.1:12345; [::1]:PORT for IPv6)\n"
		"  --connections  SPOP connections, shared out over the threads (10)\n"
		"  --inflight     NOTIFYs kept in flight per connection (20, like HAProxy)\n"
		"  --duration     seconds of load, at most 600 (5)\n"
		"  --requests     NOTIFYs to send in all (10000000)\n"
		"  --threads      load threads, each with its own libev loop (1)\n"
		"  --paths        requests to cycle through: METHOD /PATH [HOST [CLIENT]] per line,\n"
		"                 '-' for an absent value (default: the sample plan's paths)\n"
		"  --pid          the agent: report its CPU per decision and its memory\n"
		"Prints one line of key=value pairs; exits 0 when every NOTIFY was ACKed.\n");
}

static bool parse_addr(const char *s, struct options *o)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	long port;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&o->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&o->addr;
	size_t hl;

	if (colon == NULL || (hl = (size_t)(colon - s)) >= sizeof host)
		return false;
	port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535)
		return false;
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		memcpy(host, s + 1, hl - 2);
		host[hl - 2] = '\0';
	} else {
		memcpy(host, s, hl);
		host[hl] = '\0';
	}
	memset(&o->addr, 0, sizeof o->addr);
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		if ((ntohl(in4->sin_addr.s_addr) >> 24) != 127)
			return false; /* loopback only */
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		o->addr_len = sizeof *in4;
		return true;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 && IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		o->addr_len = sizeof *in6;
		return true;
	}
	return false;
}

static bool parse_count(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 || v > max)
		return false;
	*out = v;
	return true;
}

static void raise_fd_limit(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "connections", required_argument, NULL, 'm' },
		{ "inflight", required_argument, NULL, 'k' },
		{ "duration", required_argument, NULL, 'd' },
		{ "requests", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "paths", required_argument, NULL, 'p' },
		{ "pid", required_argument, NULL, 'P' },
		{ "self-test", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct options o = { .connections = 10, .inflight = 20, .duration = 5.0,
			     .requests = 10000000, .threads = 1 };
	unsigned long long n;
	const char *paths = NULL;
	struct worker *workers;
	struct stats total = { 0 };
	double cpu0 = -1, cpu1 = -1, self0, self1, rate = 0;
	uint64_t t0, t1, errors;
	long rss = -1, hwm = -1;
	int opt;
	char *end;

	parse_addr("127.0.0.1:12345", &o);
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (!parse_addr(optarg, &o)) {
				fprintf(stderr, "spop-load: --connect: want a loopback ADDR:PORT\n");
				return 2;
			}
			break;
		case 'm':
			if (!parse_count(optarg, 100000, &n))
				goto bad;
			o.connections = (unsigned)n;
			break;
		case 'k':
			if (!parse_count(optarg, 4096, &n))
				goto bad;
			o.inflight = (unsigned)n;
			break;
		case 'd':
			o.duration = strtod(optarg, &end);
			if (*end != '\0' || !(o.duration > 0) || o.duration > MAX_DURATION)
				goto bad;
			break;
		case 'n':
			if (!parse_count(optarg, 1ull << 40, &n))
				goto bad;
			o.requests = n;
			break;
		case 't':
			if (!parse_count(optarg, 64, &n))
				goto bad;
			o.threads = (unsigned)n;
			break;
		case 'p':
			paths = optarg;
			break;
		case 'P':
			if (!parse_count(optarg, 1u << 30, &n))
				goto bad;
			o.agent_pid = (pid_t)n;
			break;
		case 'S':
			return self_test();
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	if (o.threads > o.connections)
		o.threads = o.connections;
	if (paths != NULL && !mix_load(&o.mix, paths))
		return 2;
	if (paths == NULL)
		for (size_t i = 0; i < sizeof builtin_mix / sizeof builtin_mix[0]; i++)
			mix_add(&o.mix, builtin_mix[i][0], builtin_mix[i][1], builtin_mix[i][2]);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(o.connections + 64);

	workers = calloc(o.threads, sizeof *workers);
	if (workers == NULL) {
		perror("calloc");
		return 1;
	}
	pthread_barrier_init(&barrier, NULL, o.threads + 1);
	for (unsigned i = 0; i < o.threads; i++) {
		struct worker *w = &workers[i];

		w->index = i;
		w->opt = &o;
		w->nconns = o.connections / o.threads + (i < o.connections % o.threads);
		w->conns = calloc(w->nconns, sizeof *w->conns);
		w->budget = o.requests / o.threads + (i < o.requests % o.threads);
		w->next_sid = (uint64_t)i << 28; /* 0 first: 2.6 may send stream-id 0 */
		w->mix_pos = i % o.mix.count;
		if (w->conns == NULL) {
			perror("calloc");
			return 1;
		}
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			perror("pthread_create");
			return 1;
		}
	}

	pthread_barrier_wait(&barrier); /* connected */
	t0 = mono_ns();
	self0 = self_cpu_seconds();
	if (o.agent_pid > 0)
		cpu0 = proc_cpu_seconds(o.agent_pid);
	pthread_barrier_wait(&barrier); /* load over, connections still open */
	t1 = mono_ns();
	self1 = self_cpu_seconds();
	if (o.agent_pid > 0) {
		cpu1 = proc_cpu_seconds(o.agent_pid);
		rss = proc_status_kib(o.agent_pid, "VmRSS:");
		hwm = proc_status_kib(o.agent_pid, "VmHWM:");
	}
	pthread_barrier_wait(&barrier); /* workers may disconnect */
	for (unsigned i = 0; i < o.threads; i++) {
		pthread_join(workers[i].thread, NULL);
		merge(&total, &workers[i].st);
		if (workers[i].load_end_ns > workers[i].load_start_ns)
			rate += (double)workers[i].st.decisions /
				((double)(workers[i].load_end_ns - workers[i].load_start_ns) / 1e9);
	}

	errors = total.err_connect + total.err_protocol + total.err_disconnect + total.err_eof +
		 total.err_lost + total.err_contract;
	printf("connections=%u inflight=%u threads=%u seconds=%.3f decisions=%llu rate=%.0f"
	       " p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%llu"
	       " err_connect=%llu err_protocol=%llu err_disconnect=%llu err_eof=%llu"
	       " err_lost=%llu err_contract=%llu load_cpu_pct=%.0f",
	       o.connections, o.inflight, o.threads, (double)(t1 - t0) / 1e9,
	       (unsigned long long)total.decisions, rate,
	       percentile_us(total.hist, total.decisions, 0.50),
	       percentile_us(total.hist, total.decisions, 0.99),
	       percentile_us(total.hist, total.decisions, 0.999),
	       percentile_us(total.hist, total.decisions, 1.0),
	       (unsigned long long)errors, (unsigned long long)total.err_connect,
	       (unsigned long long)total.err_protocol, (unsigned long long)total.err_disconnect,
	       (unsigned long long)total.err_eof, (unsigned long long)total.err_lost,
	       (unsigned long long)total.err_contract,
	       100.0 * (self1 - self0) / ((double)(t1 - t0) / 1e9));
	if (o.agent_pid > 0)
		printf(" agent_cpu_s=%.3f agent_cpu_us_per_decision=%.3f agent_rss_kib=%ld agent_hwm_kib=%ld",
		       cpu1 - cpu0, total.decisions && cpu0 >= 0 && cpu1 >= 0
					    ? (cpu1 - cpu0) * 1e6 / (double)total.decisions : 0.0,
		       rss, hwm);
	for (unsigned i = 0; i < total.nanswers; i++)
		printf(" answer.%s=%llu", total.answers[i].name, (unsigned long long)total.answers[i].count);
	printf("\n");
	for (unsigned i = 0; i < o.threads; i++)
		free(workers[i].conns);
	free(workers);
	for (unsigned i = 0; i < o.mix.count; i++) {
		free(o.mix.req[i].method);
		free(o.mix.req[i].path);
		free(o.mix.req[i].host);
	}
	free(o.mix.req);
	pthread_barrier_destroy(&barrier);
	return errors == 0 && total.decisions > 0 ? 0 : 1;
bad:
	usage(stderr);
	return 2;
}
