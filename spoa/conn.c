/* SPDX-License-Identifier: Apache-2.0 */
#include "conn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "decide.h"
#include "log.h"
#include "metrics.h"
#include "runtime.h"

#define HELLO_TIMEOUT 10.0  /* seconds from accept to HAPROXY-HELLO */
#define IDLE_TIMEOUT 300.0  /* seconds without input once READY */
#define LINGER_TIMEOUT 2.0  /* seconds to flush and drain once CLOSING */
#define READS_PER_EVENT 8   /* fairness: reads per readable event */

/* Room for one whole frame of our own maximum, twice: a read can bring a
 * frame and a half, and a flush can lag one frame behind. */
#define FRAME_ROOM (FRAME_LEN_SIZE + FRAME_AGENT_MAX_SIZE)
#define IN_CAP (2 * FRAME_ROOM)
#define OUT_CAP (2 * FRAME_ROOM)
/* Always left free in the output for an AGENT-DISCONNECT. */
#define DISCONNECT_ROOM (FRAME_LEN_SIZE + FRAME_MIN_MAX_SIZE)

enum conn_state { CONN_WAIT_HELLO, CONN_READY, CONN_CLOSING, CONN_CLOSED };

struct conn {
	struct worker_state *ws;
	struct conn *next, **prev; /* in ws->live, then ws->dead */
	uint64_t id;
	int fd;
	enum conn_state state;
	bool shut_wr;         /* CLOSING: output flushed and half-closed */
	uint32_t max_frame;   /* negotiated; ours until the HELLO */
	ev_tstamp last_input; /* for the idle timeout */
	ev_io rio, wio;
	ev_timer timer;
	uint64_t notifies;
	size_t in_len;
	size_t out_off, out_len;
	uint8_t in[IN_CAP];
	uint8_t out[OUT_CAP];
};

#define CONN_FMT "[w%u c%" PRIu64 "] "
#define CONN_ARGS(c) (c)->ws->worker_id, (c)->id

static void flush(struct conn *c);

static void list_insert(struct conn **head, struct conn *c)
{
	c->next = *head;
	c->prev = head;
	if (*head)
		(*head)->prev = &c->next;
	*head = c;
}

static void list_remove(struct conn *c)
{
	*c->prev = c->next;
	if (c->next)
		c->next->prev = c->prev;
}

/* Swaps the worker's plan reference when runtime published a new plan. One
 * atomic load when nothing changed. */
static void refresh_plan(struct worker_state *ws)
{
	uint64_t g = runtime_generation();

	if (g == ws->plan_generation)
		return;
	const struct plan *next = runtime_acquire();
	metrics_bind_plan(ws->metrics, next); /* before the old plan may go */
	decider_init(&ws->decider, next);
	runtime_release(ws->plan);
	ws->plan = next;
	ws->plan_generation = g;
}

/* Ends the connection now: no more I/O; freed by the reaper. */
static void close_now(struct conn *c, const char *why)
{
	struct worker_state *ws = c->ws;

	ev_io_stop(ws->loop, &c->rio);
	ev_io_stop(ws->loop, &c->wio);
	ev_timer_stop(ws->loop, &c->timer);
	close(c->fd);
	c->fd = -1;
	c->state = CONN_CLOSED;
	list_remove(c);
	list_insert(&ws->dead, c);
	ws->count--;
	metrics_conn_closed(ws->metrics);
	log_debug(CONN_FMT "closed: %s (%" PRIu64 " notifies)", CONN_ARGS(c), why, c->notifies);
	ev_prepare_start(ws->loop, &ws->reaper);
}

static void reap(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct worker_state *ws = w->data;

	(void)revents;
	ev_prepare_stop(loop, w);
	while (ws->dead) {
		struct conn *c = ws->dead;
		list_remove(c);
		free(c);
		if (ws->released)
			ws->released(ws);
	}
}

static size_t out_room(const struct conn *c)
{
	return OUT_CAP - c->out_len;
}

/* True when the output cannot take one more reply of max_frame plus a
 * disconnect: frames wait in the input until it drains. */
static bool out_blocked(const struct conn *c)
{
	return out_room(c) < FRAME_LEN_SIZE + (size_t)c->max_frame + DISCONNECT_ROOM;
}

static void update_interest(struct conn *c)
{
	struct ev_loop *loop = c->ws->loop;
	bool want;

	switch (c->state) {
	case CONN_WAIT_HELLO:
	case CONN_READY:
		want = !out_blocked(c);
		break;
	case CONN_CLOSING:
		want = c->shut_wr; /* drain until the peer closes */
		break;
	default:
		return;
	}
	if (want)
		ev_io_start(loop, &c->rio);
	else
		ev_io_stop(loop, &c->rio);
}

static void arm_timer(struct conn *c, ev_tstamp at)
{
	struct ev_loop *loop = c->ws->loop;
	ev_tstamp after = at - ev_now(loop);

	ev_timer_stop(loop, &c->timer);
	ev_timer_set(&c->timer, after > 0 ? after : 0, 0);
	ev_timer_start(loop, &c->timer);
}

/* Moves to CLOSING once what is queued is the last thing to send; input is
 * dropped. */
static void enter_closing(struct conn *c)
{
	c->state = CONN_CLOSING;
	c->in_len = 0;
	arm_timer(c, ev_now(c->ws->loop) + LINGER_TIMEOUT);
}

/* Queues AGENT-DISCONNECT, then closes. */
static void begin_closing(struct conn *c, unsigned status)
{
	/* out_blocked() always leaves DISCONNECT_ROOM free. */
	ssize_t n = frame_build_agent_disconnect(c->out + c->out_len, out_room(c), status);

	if (n > 0) {
		c->out_len += (size_t)n;
		metrics_frame(c->ws->metrics, METRICS_FRAME_AGENT_DISCONNECT);
	}
	enter_closing(c);
}

static void protocol_error(struct conn *c, unsigned status, const char *what)
{
	log_warn(CONN_FMT "protocol error: %s: %s (status %u)", CONN_ARGS(c), what,
		 frame_status_text(status), status);
	metrics_protocol_error(c->ws->metrics, status);
	begin_closing(c, status);
}

static void handle_hello(struct conn *c, const struct frame *f)
{
	struct hello h;
	unsigned status;

	metrics_frame(c->ws->metrics, METRICS_FRAME_HAPROXY_HELLO);
	if (!(f->flags & FRAME_FLAG_FIN)) {
		protocol_error(c, FRAME_ST_NO_FRAGMENTATION, "HELLO without FIN");
		return;
	}
	if (frame_parse_hello(f, &h, &status) != SPOP_OK) {
		protocol_error(c, status, "bad HAPROXY-HELLO");
		return;
	}
	c->max_frame = frame_negotiate_size(h.max_frame_size, FRAME_AGENT_MAX_SIZE);
	ssize_t n = frame_build_agent_hello(c->out + c->out_len, out_room(c), c->max_frame,
					    h.pipelining);
	if (n < 0) { /* cannot happen: out_blocked() kept a frame's room */
		protocol_error(c, FRAME_ST_RESOURCE, "AGENT-HELLO does not fit");
		return;
	}
	c->out_len += (size_t)n;
	metrics_frame(c->ws->metrics, METRICS_FRAME_AGENT_HELLO);
	log_debug(CONN_FMT "hello: max-frame-size %" PRIu32 "%s%s", CONN_ARGS(c), c->max_frame,
		  h.pipelining ? ", pipelining" : "", h.healthcheck ? ", health check" : "");
	if (h.healthcheck) {
		enter_closing(c); /* reply, then close */
		return;
	}
	c->state = CONN_READY;
	arm_timer(c, c->last_input + IDLE_TIMEOUT);
}

/* Copies len bytes of s into dst (cap > 0) as one printable line: control
 * bytes become '?', and long values are cut. */
static const char *printable(char *dst, size_t cap, const char *s, size_t len)
{
	size_t n = 0;

	for (; s && n < len && n + 1 < cap; n++)
		dst[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
	dst[n] = '\0';
	return dst;
}

static void log_decision(const struct conn *c, const struct frame *f, const struct answer *a)
{
	char method[32], path[512];
	const struct decision *d = &a->d;

	log_debug(CONN_FMT "sid=%" PRIu64 " fid=%" PRIu64 " %s %s -> phase %u route %s"
		  " backend %s status %u%s%s",
		  CONN_ARGS(c), f->stream_id, f->frame_id,
		  printable(method, sizeof(method), a->req.method, a->req.method_len),
		  printable(path, sizeof(path), a->req.path, a->req.path_len), d->phase,
		  d->route ? d->route : "-", d->backend ? d->backend : "-", d->status,
		  d->deprecated ? " deprecated" : "", a->ryw ? " ryw" : "");
}

static void handle_notify(struct conn *c, const struct frame *f)
{
	struct worker_state *ws = c->ws;
	struct answer a;
	unsigned status;

	metrics_frame(ws->metrics, METRICS_FRAME_NOTIFY);
	uint64_t t0 = metrics_now_ns();
	ws->decider.now = (int64_t)ev_now(ws->loop); /* the loop turn's wall clock */
	ssize_t len = decide_notify(&ws->decider, f, c->max_frame, c->out + c->out_len,
				    out_room(c), &a, &status);
	if (len == SPOP_INVALID) {
		protocol_error(c, status, "bad NOTIFY");
		return;
	}
	if (len < 0) { /* cannot happen: out_blocked() kept a frame's room */
		protocol_error(c, FRAME_ST_RESOURCE, "no room for the ACK");
		return;
	}
	c->notifies++;
	ws->turn_frames++;
	c->out_len += (size_t)len;
	if (a.asked)
		metrics_decision(ws->metrics, &a.d, metrics_now_ns() - t0);
	if (a.asked && a.d.deprecated)
		metrics_deprecated(ws->metrics, &a.req, ev_now(ws->loop));
	metrics_frame(ws->metrics, METRICS_FRAME_ACK);
	if (!a.asked) {
		log_debug(CONN_FMT "sid=%" PRIu64 " fid=%" PRIu64 " no cutover message",
			  CONN_ARGS(c), f->stream_id, f->frame_id);
		return;
	}
	if (a.over_size)
		log_warn(CONN_FMT "sid=%" PRIu64 " fid=%" PRIu64 " ACK over max-frame-size %" PRIu32
			 ", answering 414",
			 CONN_ARGS(c), f->stream_id, f->frame_id, c->max_frame);
	if (log_enabled(LOGL_DEBUG))
		log_decision(c, f, &a);
}

static void handle_disconnect(struct conn *c, const struct frame *f)
{
	struct disconnect d;
	unsigned status;

	metrics_frame(c->ws->metrics, METRICS_FRAME_HAPROXY_DISCONNECT);
	if (frame_parse_disconnect(f, &d, &status) != SPOP_OK) {
		protocol_error(c, status, "bad HAPROXY-DISCONNECT");
		return;
	}
	log_debug(CONN_FMT "HAProxy disconnects: status %u \"%.*s\"", CONN_ARGS(c), d.status,
		  (int)d.message.len, d.message.ptr ? (const char *)d.message.ptr : "");
	begin_closing(c, FRAME_ST_NORMAL);
}

static void handle_frame(struct conn *c, const struct frame *f)
{
	if (c->state == CONN_WAIT_HELLO) {
		if (f->type == FRAME_HAPROXY_HELLO)
			handle_hello(c, f);
		else
			protocol_error(c, FRAME_ST_INVALID, "frame before HELLO");
		return;
	}
	if (!(f->flags & FRAME_FLAG_FIN)) {
		protocol_error(c, FRAME_ST_NO_FRAGMENTATION, "frame without FIN");
		return;
	}
	switch (f->type) {
	case FRAME_NOTIFY:
		handle_notify(c, f);
		break;
	case FRAME_HAPROXY_DISCONNECT:
		handle_disconnect(c, f);
		break;
	case FRAME_HAPROXY_HELLO:
		protocol_error(c, FRAME_ST_INVALID, "second HELLO");
		break;
	default: /* unknown types are ignored, as HAProxy does */
		metrics_frame(c->ws->metrics, METRICS_FRAME_UNKNOWN);
		log_debug(CONN_FMT "sid=%" PRIu64 " fid=%" PRIu64 " ignored frame type %u",
			  CONN_ARGS(c), f->stream_id, f->frame_id, f->type);
		break;
	}
}

/* Handles every whole frame in the input while the output has room. */
static void process_input(struct conn *c)
{
	size_t off = 0;

	while (c->state == CONN_WAIT_HELLO || c->state == CONN_READY) {
		if (out_blocked(c))
			break;
		struct frame f;
		unsigned status;
		ssize_t r = frame_split(c->in + off, c->in_len - off, c->max_frame, &f, &status);
		if (r == SPOP_INCOMPLETE)
			break;
		if (r < 0) {
			protocol_error(c, status, status == FRAME_ST_TOO_BIG
							  ? "frame over max-frame-size"
							  : "malformed frame");
			break;
		}
		handle_frame(c, &f);
		off += (size_t)r;
	}
	if (c->state == CONN_CLOSING) {
		c->in_len = 0;
	} else if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
}

/* Sends the queued replies; while the socket takes them all and whole frames
 * wait in the input (held back by back-pressure), handles those too. Without
 * this, frames held back on the last read would wait for an event that never
 * comes. */
static void pump(struct conn *c)
{
	for (;;) {
		flush(c);
		if (c->state != CONN_READY || c->out_len || !c->in_len)
			return;
		size_t before = c->in_len;
		process_input(c);
		if (c->in_len == before) /* only part of a frame left */
			return;
	}
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;

	(void)revents;
	refresh_plan(c->ws);
	process_input(c); /* frames held back by back-pressure, if any */
	for (int round = 0; round < READS_PER_EVENT; round++) {
		/* After process_input the input holds less than one frame,
		 * unless the output is full. */
		if (c->state != CONN_CLOSING && out_blocked(c))
			break;
		size_t room = IN_CAP - c->in_len;
		ssize_t n = recv(c->fd, c->in + c->in_len, room, 0);
		if (n == 0) {
			close_now(c, c->in_len ? "peer closed mid-frame" : "peer closed");
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			close_now(c, strerror(errno));
			return;
		}
		if (c->state == CONN_CLOSING) { /* draining after our DISCONNECT */
			c->in_len = 0;
			continue;
		}
		c->last_input = ev_now(loop);
		c->in_len += (size_t)n;
		process_input(c);
		if (c->state != CONN_READY || out_blocked(c) || (size_t)n < room)
			break;
	}
	pump(c);
	if (c->state != CONN_CLOSED)
		update_interest(c);
}

/* Sends what is queued, in as few sends as the socket takes. */
static void flush(struct conn *c)
{
	struct ev_loop *loop = c->ws->loop;

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		close_now(c, n < 0 ? strerror(errno) : "send returned 0");
		return;
	}
	if (c->out_off < c->out_len) {
		if (c->out_off) { /* keep the unsent tail at the front */
			memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		ev_io_start(loop, &c->wio);
		return;
	}
	c->out_off = c->out_len = 0;
	ev_io_stop(loop, &c->wio);
	if (c->state == CONN_CLOSING && !c->shut_wr) {
		/* Half-close and drain, so unread input cannot turn our FIN into
		 * a RST that would destroy the DISCONNECT in flight. */
		shutdown(c->fd, SHUT_WR);
		c->shut_wr = true;
	}
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct conn *c = w->data;

	(void)loop;
	(void)revents;
	pump(c);
	if (c->state != CONN_CLOSED)
		update_interest(c);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct conn *c = w->data;
	ev_tstamp now = ev_now(loop);

	(void)revents;
	switch (c->state) {
	case CONN_WAIT_HELLO:
		log_warn(CONN_FMT "no HELLO within %.0fs", CONN_ARGS(c), HELLO_TIMEOUT);
		metrics_protocol_error(c->ws->metrics, FRAME_ST_TIMEOUT);
		begin_closing(c, FRAME_ST_TIMEOUT);
		break;
	case CONN_READY:
		if (now < c->last_input + IDLE_TIMEOUT) {
			arm_timer(c, c->last_input + IDLE_TIMEOUT);
			return;
		}
		log_debug(CONN_FMT "idle for %.0fs", CONN_ARGS(c), IDLE_TIMEOUT);
		begin_closing(c, FRAME_ST_TIMEOUT);
		break;
	case CONN_CLOSING:
		close_now(c, "linger timeout");
		return;
	default:
		return;
	}
	flush(c);
	if (c->state != CONN_CLOSED)
		update_interest(c);
}

bool conn_accept(struct worker_state *ws, int fd)
{
	struct conn *c = malloc(sizeof(*c));

	if (c == NULL) {
		log_warn("[w%u] out of memory for a connection", ws->worker_id);
		close(fd);
		return false;
	}
	c->ws = ws;
	c->id = ++ws->next_id;
	c->fd = fd;
	c->state = CONN_WAIT_HELLO;
	c->shut_wr = false;
	c->max_frame = FRAME_AGENT_MAX_SIZE;
	c->last_input = ev_now(ws->loop);
	c->notifies = 0;
	c->in_len = c->out_off = c->out_len = 0;
	ev_io_init(&c->rio, on_read, fd, EV_READ);
	ev_io_init(&c->wio, on_write, fd, EV_WRITE);
	ev_init(&c->timer, on_timer);
	c->rio.data = c->wio.data = c->timer.data = c;
	list_insert(&ws->live, c);
	ws->count++;
	metrics_conn_opened(ws->metrics);
	ev_io_start(ws->loop, &c->rio);
	arm_timer(c, c->last_input + HELLO_TIMEOUT);
	log_debug(CONN_FMT "accepted", CONN_ARGS(c));
	return true;
}

/* Before each poll: wait for more only after a turn of small batches. */
static void pace(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct worker_state *ws = w->data;
	bool small = ws->turn_frames > 0 && ws->turn_frames < CONN_BATCH_ENOUGH;

	(void)revents;
	ev_set_io_collect_interval(loop, small ? ws->batch_wait : 0.);
	ws->turn_frames = 0;
}

void worker_state_init(struct worker_state *ws, struct ev_loop *loop, unsigned worker_id,
		       struct metrics_worker *metrics, double batch_wait,
		       void (*released)(struct worker_state *))
{
	ws->loop = loop;
	ws->worker_id = worker_id;
	ws->metrics = metrics;
	ws->plan_generation = runtime_generation();
	ws->plan = runtime_acquire();
	decider_init(&ws->decider, ws->plan);
	ws->live = ws->dead = NULL;
	ws->count = 0;
	ws->next_id = 0;
	ws->released = released;
	ev_prepare_init(&ws->reaper, reap);
	ws->reaper.data = ws;
	ws->batch_wait = batch_wait;
	ws->turn_frames = 0;
	ev_prepare_init(&ws->pacer, pace);
	ws->pacer.data = ws;
	if (batch_wait > 0)
		ev_prepare_start(loop, &ws->pacer);
}

void worker_state_shutdown(struct worker_state *ws)
{
	struct conn *c = ws->live, *next;

	for (; c; c = next) {
		next = c->next; /* flush may close c */
		if (c->state == CONN_WAIT_HELLO || c->state == CONN_READY) {
			process_input(c); /* ACK what was read and held back */
			if (c->state != CONN_CLOSING)
				begin_closing(c, FRAME_ST_NORMAL);
			flush(c);
			if (c->state != CONN_CLOSED)
				update_interest(c);
		}
	}
}

void worker_state_destroy(struct worker_state *ws)
{
	ev_prepare_stop(ws->loop, &ws->pacer);
	while (ws->live) {
		struct conn *c = ws->live;
		list_remove(c);
		close(c->fd);
		free(c);
	}
	while (ws->dead) {
		struct conn *c = ws->dead;
		list_remove(c);
		free(c);
	}
	ws->count = 0;
	runtime_release(ws->plan);
	ws->plan = NULL;
}
