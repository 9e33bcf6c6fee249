/* SPDX-License-Identifier: Apache-2.0 */
/* status_http: the metrics port, a tiny HTTP/1.0 responder on the main
 * thread's loop. GET /metrics (Prometheus text, metrics.h), /clients and
 * /clients.json (who still calls deprecated routes, usage_page.h), /healthz
 * (the process answers), /readyz (200 once a plan is loaded and the SPOP
 * listener is up, 503 before), /version. One request per connection, at
 * most 16 connections at once, 5 seconds each. */
#ifndef CUTOVER_STATUS_HTTP_H
#define CUTOVER_STATUS_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

struct ev_loop;
struct status_http;

/* Listens on addr and serves from loop. On failure returns NULL with a
 * reason in err. */
struct status_http *status_http_start(struct ev_loop *loop, const struct sockaddr *addr,
				      socklen_t addrlen, char *err, size_t errlen);
void status_http_stop(struct status_http *s);

#endif
