/* SPDX-License-Identifier: Apache-2.0 */
#include "worker.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "sockets.h"

#define ACCEPTS_PER_EVENT 64
#define ACCEPT_RETRY 0.1    /* seconds between retries while paused */
#define STOP_GRACE 3.0      /* seconds for connections to flush on stop */
#define STOP_POLL 0.02
#define PAUSE_LOG_EVERY 10.0 /* seconds between "not accepting" warnings */

struct worker {
	unsigned id;
	pthread_t thread;
	bool started;
	struct ev_loop *loop;
	int lfd;
	bool paused;
	bool stopping;
	ev_tstamp pause_logged;
	ev_io accept_w;
	ev_timer retry_w;
	ev_async stop_w;
	ev_timer stop_tick;
	ev_tstamp stop_deadline;
	struct worker_state state;
};

struct workers {
	unsigned n;
	struct worker *w;
	struct sockaddr_storage addr;
	bool unlink_on_stop;          /* we created addr's Unix socket file */
};

/* Process-wide connection count against --max-connections. */
static _Atomic unsigned open_connections;
static unsigned max_connections;

static bool reserve_connection(void)
{
	unsigned prev = atomic_fetch_add_explicit(&open_connections, 1, memory_order_relaxed);

	if (prev < max_connections)
		return true;
	atomic_fetch_sub_explicit(&open_connections, 1, memory_order_relaxed);
	return false;
}

static void release_connection(void)
{
	atomic_fetch_sub_explicit(&open_connections, 1, memory_order_relaxed);
}

static struct worker *state_worker(struct worker_state *state)
{
	return (struct worker *)((char *)state - offsetof(struct worker, state));
}

static void pause_accept(struct worker *w, const char *why)
{
	ev_tstamp now = ev_now(w->loop);

	if (now - w->pause_logged >= PAUSE_LOG_EVERY) {
		log_warn("[w%u] not accepting for now: %s", w->id, why);
		w->pause_logged = now;
	}
	w->paused = true;
	ev_io_stop(w->loop, &w->accept_w);
	ev_timer_again(w->loop, &w->retry_w);
}

static void resume_accept(struct worker *w)
{
	if (!w->paused || w->stopping)
		return;
	w->paused = false;
	ev_timer_stop(w->loop, &w->retry_w);
	ev_io_start(w->loop, &w->accept_w);
	log_debug("[w%u] accepting again", w->id);
}

static void on_released(struct worker_state *state)
{
	release_connection();
	resume_accept(state_worker(state));
}

static void on_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)loop;
	(void)revents;
	if (atomic_load_explicit(&open_connections, memory_order_relaxed) < max_connections)
		resume_accept(w);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	struct worker *w = io->data;

	(void)loop;
	(void)revents;
	for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
		if (!reserve_connection()) {
			pause_accept(w, "--max-connections reached");
			return;
		}
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			release_connection();
			if (e == EINTR || e == ECONNABORTED)
				continue;
			if (e == EAGAIN || e == EWOULDBLOCK)
				return;
			if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
				pause_accept(w, strerror(e));
				return;
			}
			log_warn("[w%u] accept: %s", w->id, strerror(e));
			return;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (!conn_accept(&w->state, fd))
			release_connection();
	}
}

static void on_stop_tick(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)revents;
	if (w->state.count == 0 || ev_now(loop) >= w->stop_deadline)
		ev_break(loop, EVBREAK_ALL);
}

static void on_stop(struct ev_loop *loop, ev_async *a, int revents)
{
	struct worker *w = a->data;

	(void)revents;
	w->stopping = true;
	ev_io_stop(loop, &w->accept_w);
	ev_timer_stop(loop, &w->retry_w);
	close(w->lfd);
	w->lfd = -1;
	worker_state_shutdown(&w->state);
	w->stop_deadline = ev_now(loop) + STOP_GRACE;
	ev_timer_set(&w->stop_tick, 0, STOP_POLL);
	ev_timer_start(loop, &w->stop_tick);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	ev_run(w->loop, 0);
	unsigned left = w->state.count;
	metrics_bind_plan(w->state.metrics, NULL);
	worker_state_destroy(&w->state);
	for (unsigned i = 0; i < left; i++)
		release_connection();
	if (left)
		log_warn("[w%u] %u connections did not close in time", w->id, left);
	return NULL;
}

/* SO_REUSEPORT would let a second agent on the same port share the traffic
 * silently; a plain bind first makes that an "Address already in use". A
 * Unix socket has no SO_REUSEPORT: sockets_listen() tells "in use" itself. */
static bool port_is_free(const struct sockaddr *addr, socklen_t addrlen, char *err,
			 size_t errlen)
{
	if (addr->sa_family == AF_UNIX)
		return true;
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return false;
	}
	bool ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
		  (addr->sa_family != AF_INET6 ||
		   setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0) &&
		  bind(fd, addr, addrlen) == 0;
	if (!ok)
		snprintf(err, errlen, "bind: %s", strerror(errno));
	close(fd);
	return ok;
}

static void worker_free(struct worker *w)
{
	if (w->lfd >= 0)
		close(w->lfd);
	if (w->loop)
		ev_loop_destroy(w->loop);
}

static void workers_free(struct workers *ws)
{
	for (unsigned i = 0; i < ws->n; i++)
		worker_free(&ws->w[i]);
	free(ws->w);
	free(ws);
}

struct workers *workers_start(unsigned n, const struct sockaddr *addr, socklen_t addrlen,
			      unsigned max_conns, unsigned batch_wait_us, char *err, size_t errlen)
{
	struct workers *ws = calloc(1, sizeof(*ws));

	if (ws == NULL || (ws->w = calloc(n, sizeof(*ws->w))) == NULL) {
		free(ws);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!port_is_free(addr, addrlen, err, errlen)) {
		free(ws->w);
		free(ws);
		return NULL;
	}
	max_connections = max_conns;
	ws->n = n;
	memcpy(&ws->addr, addr, addrlen);
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &ws->w[i];
		w->id = i + 1;
		/* TCP: one socket per worker, SO_REUSEPORT. Unix: one socket whose
		 * descriptor every worker accepts on. */
		if (addr->sa_family == AF_UNIX && i > 0)
			w->lfd = ws->w[0].lfd < 0 ? -1 : fcntl(ws->w[0].lfd, F_DUPFD_CLOEXEC, 0);
		else
			w->lfd = sockets_listen(addr, addrlen, true, SOMAXCONN, err, errlen);
		ws->unlink_on_stop |= addr->sa_family == AF_UNIX && w->lfd >= 0;
		w->loop = ev_loop_new(EVFLAG_AUTO);
		w->state.metrics = metrics_worker_new();
		if (w->lfd < 0 || w->loop == NULL || w->state.metrics == NULL) {
			if (w->lfd >= 0)
				snprintf(err, errlen, "cannot create worker %u", w->id);
			workers_stop(ws);
			return NULL;
		}
		ev_io_init(&w->accept_w, on_accept, w->lfd, EV_READ);
		ev_init(&w->retry_w, on_retry);
		w->retry_w.repeat = ACCEPT_RETRY;
		ev_async_init(&w->stop_w, on_stop);
		ev_init(&w->stop_tick, on_stop_tick);
		w->accept_w.data = w->retry_w.data = w->stop_w.data = w->stop_tick.data = w;
		/* Started before the thread exists: a stop sent early is not lost. */
		worker_state_init(&w->state, w->loop, w->id, w->state.metrics, batch_wait_us / 1e6,
				  on_released);
		metrics_bind_plan(w->state.metrics, w->state.plan);
		ev_io_start(w->loop, &w->accept_w);
		ev_async_start(w->loop, &w->stop_w);
	}

	/* Workers never take signals: the main loop handles them all. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < n; i++) {
		int e = pthread_create(&ws->w[i].thread, NULL, worker_main, &ws->w[i]);
		if (e != 0) {
			snprintf(err, errlen, "pthread_create: %s", strerror(e));
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			workers_stop(ws);
			return NULL;
		}
		ws->w[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ws;
}

void workers_stop(struct workers *ws)
{
	for (unsigned i = 0; i < ws->n; i++)
		if (ws->w[i].started)
			ev_async_send(ws->w[i].loop, &ws->w[i].stop_w);
	for (unsigned i = 0; i < ws->n; i++) {
		struct worker *w = &ws->w[i];
		if (w->started)
			pthread_join(w->thread, NULL);
		else if (w->state.plan) { /* never ran: its state still holds the plan */
			metrics_bind_plan(w->state.metrics, NULL);
			worker_state_destroy(&w->state);
		}
	}
	if (ws->unlink_on_stop)
		sockets_unlink((const struct sockaddr *)&ws->addr);
	workers_free(ws);
}
