/* metrics: per-worker counters and the Prometheus page.
 *
 * Each worker owns one struct metrics_worker and is its only writer: counters
 * are bumped with relaxed atomic load+store (no lock, no locked instruction)
 * and read from the main thread with relaxed loads. The page is served on
 * GET /metrics by a tiny HTTP/1.0 responder on the main thread's loop. */
#ifndef CUTOVER_METRICS_H
#define CUTOVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct ev_loop;
struct metrics_worker;
struct metrics_server;

enum metrics_frame {
	METRICS_FRAME_HAPROXY_HELLO,
	METRICS_FRAME_NOTIFY,
	METRICS_FRAME_HAPROXY_DISCONNECT,
	METRICS_FRAME_UNKNOWN,
	METRICS_FRAME_AGENT_HELLO,
	METRICS_FRAME_ACK,
	METRICS_FRAME_AGENT_DISCONNECT,
	METRICS_FRAME_KINDS,
};

/* A worker's counters, registered for the page. Call from the main thread
 * before the worker starts. Returns NULL on allocation failure. */
struct metrics_worker *metrics_worker_new(void);

/* Writers: the owning worker thread only. */
void metrics_frame(struct metrics_worker *m, enum metrics_frame kind);
void metrics_protocol_error(struct metrics_worker *m, unsigned status);
void metrics_conn_opened(struct metrics_worker *m);
void metrics_conn_closed(struct metrics_worker *m);
/* route and backend may be NULL (no route matched, no backend). */
void metrics_decision(struct metrics_worker *m, unsigned phase, const char *route,
		      const char *backend);

/* Listens on addr and serves the page from loop. On failure returns NULL
 * with a reason in err. */
struct metrics_server *metrics_server_start(struct ev_loop *loop, const struct sockaddr *addr,
					    socklen_t addrlen, char *err, size_t errlen);
void metrics_server_stop(struct metrics_server *s);

/* Frees every registered worker's counters; after all workers ended. */
void metrics_free_all(void);

#endif
