/* SPDX-License-Identifier: Apache-2.0 */
/* gate_http: one GET for an HTTP gate, non-blocking on the main loop.
 *
 * Connects to a numeric address, sends "GET path HTTP/1.0", reads the
 * answer until the peer closes or GATE_HTTP_MAX bytes came (then the rest
 * is not read: a longer answer is judged on its start) and calls back
 * once: with the raw response, or with why there is none (refused, timed
 * out). The whole exchange is bounded by the timeout. */
#ifndef CUTOVER_GATE_HTTP_H
#define CUTOVER_GATE_HTTP_H

#include <stddef.h>

#include <ev.h>

#define GATE_HTTP_MAX 16384

struct gate_http;

/* response is NULL when error says why. Called from the loop, never from
 * gate_http_get itself; the request is freed after the callback returns. */
typedef void gate_http_done(void *arg, const char *response, size_t len, const char *error);

/* NULL only on allocation failure. host is an IPv4 or IPv6 literal. */
struct gate_http *gate_http_get(struct ev_loop *loop, const char *host, unsigned port,
				const char *path, double timeout, gate_http_done *done,
				void *arg);

/* Drops the request without calling back. */
void gate_http_cancel(struct gate_http *g);

#endif
