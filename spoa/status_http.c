/* SPDX-License-Identifier: Apache-2.0 */
#include "status_http.h"

#include <errno.h>
#include <ev.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "sockets.h"
#include "usage_page.h"

#define REQUEST_MAX 4096
#define CLIENTS_MAX 16
#define CLIENT_TIMEOUT 5.0
#define HEAD_MAX 256

struct client {
	struct status_http *srv;
	struct client *next, **prev;
	int fd;
	ev_io io;
	ev_timer timer;
	size_t req_len;
	char req[REQUEST_MAX];
	char *resp;
	size_t resp_len, sent;
};

struct status_http {
	struct ev_loop *loop;
	int fd;
	ev_io accept_w;
	struct client *clients;
	unsigned nclients;
};

/* libev touches no watcher after its callback returns, and nothing else
 * refers to a client, so a client may end from its own callback. */
static void client_end(struct client *c)
{
	struct status_http *srv = c->srv;

	ev_io_stop(srv->loop, &c->io);
	ev_timer_stop(srv->loop, &c->timer);
	close(c->fd);
	*c->prev = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nclients--;
	free(c->resp);
	free(c);
}

static void client_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;

	(void)loop;
	(void)revents;
	while (c->sent < c->resp_len) {
		ssize_t n = send(c->fd, c->resp + c->sent, c->resp_len - c->sent, MSG_NOSIGNAL);
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

/* Queues the response; body is malloc'd and taken over (NULL: out of
 * memory, answered 500). */
static void respond(struct client *c, int code, const char *reason, const char *type,
		    char *body, size_t len)
{
	if (!body) {
		code = 500;
		reason = "Internal Server Error";
		type = "text/plain";
		len = 0;
	}
	c->resp = malloc(HEAD_MAX + len);
	if (!c->resp) {
		free(body);
		client_end(c);
		return;
	}
	int head = snprintf(c->resp, HEAD_MAX,
			    "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			    "Connection: close\r\n\r\n",
			    code, reason, type, len);
	if (len)
		memcpy(c->resp + head, body, len);
	free(body);
	c->resp_len = (size_t)head + len;
	ev_io_stop(c->srv->loop, &c->io);
	ev_io_init(&c->io, client_write, c->fd, EV_WRITE);
	c->io.data = c;
	ev_io_start(c->srv->loop, &c->io);
}

static void respond_text(struct client *c, int code, const char *reason, const char *text)
{
	respond(c, code, reason, "text/plain", strdup(text), strlen(text));
}

/* Whether the request line's target is path, alone or with a query. */
static bool target_is(const char *req, const char *path)
{
	size_t n = strlen(path);

	return strncmp(req + 4, path, n) == 0 &&
	       (req[4 + n] == ' ' || req[4 + n] == '?' || req[4 + n] == '\r' || req[4 + n] == '\n');
}

/* /clients (text) or /clients.json: who still calls deprecated routes. */
static void clients(struct client *c, bool json)
{
	struct usage_row *rows = NULL;
	struct usage_view v;
	size_t n = 0, len = 0;
	double quiet = 0;
	char *page = NULL;

	if (metrics_usage(&rows, &n, &v, &quiet))
		page = json ? usage_page_json(rows, n, &v, quiet, &len)
			    : usage_page_text(rows, n, &v, quiet, &len);
	free(rows);
	respond(c, 200, "OK", json ? "application/json" : "text/plain; charset=utf-8", page, len);
}

static void route(struct client *c)
{
	if (strncmp(c->req, "GET ", 4) != 0) {
		respond_text(c, 405, "Method Not Allowed", "Method Not Allowed\n");
	} else if (target_is(c->req, "/metrics")) {
		size_t len = 0;
		char *page = metrics_render(&len);
		respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", page, len);
	} else if (target_is(c->req, "/status")) {
		size_t len = 0;
		char *page = metrics_status_json(&len);
		respond(c, 200, "OK", "application/json", page, len);
	} else if (target_is(c->req, "/clients") || target_is(c->req, "/clients.json")) {
		clients(c, target_is(c->req, "/clients.json"));
	} else if (target_is(c->req, "/healthz")) {
		respond_text(c, 200, "OK", "ok\n");
	} else if (target_is(c->req, "/readyz")) {
		if (metrics_ready())
			respond_text(c, 200, "OK", "ready\n");
		else
			respond_text(c, 503, "Service Unavailable", "not ready\n");
	} else if (target_is(c->req, "/version")) {
		char text[256];
		metrics_version_line(text, sizeof(text));
		respond_text(c, 200, "OK", text);
	} else {
		respond_text(c, 404, "Not Found", "Not Found\n");
	}
}

static void client_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct client *c = w->data;

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
	if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
		route(c);
	else if (c->req_len == sizeof(c->req) - 1)
		respond_text(c, 431, "Request Header Fields Too Large",
			     "Request Header Fields Too Large\n");
}

static void client_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)revents;
	client_end(t->data);
}

static void server_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct status_http *srv = w->data;

	(void)revents;
	for (;;) {
		int fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("metrics: accept: %s", strerror(errno));
			return;
		}
		struct client *c;
		if (srv->nclients >= CLIENTS_MAX || (c = malloc(sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->srv = srv;
		c->fd = fd;
		c->req_len = 0;
		c->resp = NULL;
		c->resp_len = c->sent = 0;
		c->next = srv->clients;
		c->prev = &srv->clients;
		if (srv->clients)
			srv->clients->prev = &c->next;
		srv->clients = c;
		srv->nclients++;
		ev_io_init(&c->io, client_read, fd, EV_READ);
		ev_timer_init(&c->timer, client_timeout, CLIENT_TIMEOUT, 0);
		c->io.data = c->timer.data = c;
		ev_io_start(loop, &c->io);
		ev_timer_start(loop, &c->timer);
	}
}

struct status_http *status_http_start(struct ev_loop *loop, const struct sockaddr *addr,
				      socklen_t addrlen, char *err, size_t errlen)
{
	struct status_http *srv = calloc(1, sizeof(*srv));

	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->loop = loop;
	srv->fd = sockets_listen(addr, addrlen, false, CLIENTS_MAX, err, errlen);
	if (srv->fd < 0) {
		free(srv);
		return NULL;
	}
	ev_io_init(&srv->accept_w, server_accept, srv->fd, EV_READ);
	srv->accept_w.data = srv;
	ev_io_start(loop, &srv->accept_w);
	return srv;
}

void status_http_stop(struct status_http *srv)
{
	if (!srv)
		return;
	while (srv->clients)
		client_end(srv->clients);
	ev_io_stop(srv->loop, &srv->accept_w);
	close(srv->fd);
	free(srv);
}
