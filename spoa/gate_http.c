/* SPDX-License-Identifier: Apache-2.0 */
/* gate_http: connect, write the request, read to the end, all from libev
 * watchers; any failure ends the request through the same callback. */
#include "gate_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct gate_http {
	struct ev_loop *loop;
	int fd;
	ev_io io;
	ev_timer timer;
	ev_idle fail_soon;       /* reports a failure found in gate_http_get */
	gate_http_done *done;
	void *arg;
	char error[128];
	char req[1200];
	size_t req_len, sent;
	char resp[GATE_HTTP_MAX];
	size_t resp_len;
};

static void finish(struct gate_http *g, const char *error)
{
	gate_http_done *done = g->done;
	void *arg = g->arg;
	char copy[sizeof(g->error)];

	if (error)
		snprintf(copy, sizeof(copy), "%s", error);
	ev_io_stop(g->loop, &g->io);
	ev_timer_stop(g->loop, &g->timer);
	ev_idle_stop(g->loop, &g->fail_soon);
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
	done(arg, error ? NULL : g->resp, error ? 0 : g->resp_len, error ? copy : NULL);
	free(g);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct gate_http *g = w->data;
	char msg[128];
	ssize_t n;

	(void)loop;
	if (revents & EV_WRITE) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		if (g->sent == 0 && getsockopt(g->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
		    soerr != 0) {
			snprintf(msg, sizeof(msg), "connect: %s", strerror(soerr));
			finish(g, msg);
			return;
		}
		n = send(g->fd, g->req + g->sent, g->req_len - g->sent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			snprintf(msg, sizeof(msg), "send: %s", strerror(errno));
			finish(g, msg);
			return;
		}
		g->sent += (size_t)n;
		if (g->sent == g->req_len) {
			ev_io_stop(g->loop, &g->io);
			ev_io_set(&g->io, g->fd, EV_READ);
			ev_io_start(g->loop, &g->io);
		}
		return;
	}
	n = recv(g->fd, g->resp + g->resp_len, sizeof(g->resp) - g->resp_len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		snprintf(msg, sizeof(msg), "recv: %s", strerror(errno));
		finish(g, msg);
		return;
	}
	if (n == 0) {
		finish(g, g->resp_len ? NULL : "closed without an answer");
		return;
	}
	g->resp_len += (size_t)n;
	if (g->resp_len == sizeof(g->resp))
		finish(g, NULL); /* judged on its first GATE_HTTP_MAX bytes */
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	finish(w->data, "timed out");
}

static void on_fail_soon(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct gate_http *g = w->data;

	(void)loop;
	(void)revents;
	finish(g, g->error);
}

/* Starts the connection; false with g->error set on failure. */
static bool start(struct gate_http *g, const char *host, unsigned port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;

	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		len = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		len = sizeof(*v6);
	} else {
		snprintf(g->error, sizeof(g->error), "bad address %s", host);
		return false;
	}
	g->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (g->fd < 0 || (connect(g->fd, (struct sockaddr *)&ss, len) != 0 &&
			  errno != EINPROGRESS)) {
		snprintf(g->error, sizeof(g->error), "connect: %s", strerror(errno));
		return false;
	}
	return true;
}

struct gate_http *gate_http_get(struct ev_loop *loop, const char *host, unsigned port,
				const char *path, double timeout, gate_http_done *done,
				void *arg)
{
	struct gate_http *g = calloc(1, sizeof(*g));
	int n;

	if (!g)
		return NULL;
	g->loop = loop;
	g->fd = -1;
	g->done = done;
	g->arg = arg;
	n = snprintf(g->req, sizeof(g->req),
		     "GET %s HTTP/1.0\r\nHost: %s%s%s:%u\r\nUser-Agent: cutover-spoa gate\r\n"
		     "Accept: application/json\r\nConnection: close\r\n\r\n",
		     path, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
	g->req_len = n > 0 && (size_t)n < sizeof(g->req) ? (size_t)n : 0;
	ev_io_init(&g->io, on_io, -1, EV_WRITE);
	g->io.data = g;
	ev_timer_init(&g->timer, on_timeout, timeout, 0.);
	g->timer.data = g;
	ev_idle_init(&g->fail_soon, on_fail_soon);
	g->fail_soon.data = g;
	if (g->req_len == 0) {
		snprintf(g->error, sizeof(g->error), "request too long");
		ev_idle_start(loop, &g->fail_soon);
	} else if (!start(g, host, port)) {
		ev_idle_start(loop, &g->fail_soon);
	} else {
		ev_io_set(&g->io, g->fd, EV_WRITE);
		ev_io_start(loop, &g->io);
		ev_timer_start(loop, &g->timer);
	}
	return g;
}

void gate_http_cancel(struct gate_http *g)
{
	if (!g)
		return;
	ev_io_stop(g->loop, &g->io);
	ev_timer_stop(g->loop, &g->timer);
	ev_idle_stop(g->loop, &g->fail_soon);
	if (g->fd >= 0)
		close(g->fd);
	free(g);
}
