/* SPDX-License-Identifier: Apache-2.0 */
/* conn: one HAProxy connection speaking SPOP, on its worker's libev loop.
 *
 * States: WAIT_HELLO (only HAPROXY-HELLO is legal), READY (NOTIFY and
 * HAPROXY-DISCONNECT), CLOSING (AGENT-DISCONNECT or the health-check reply is
 * queued: flush, half-close, drain, close). Each read handles every whole
 * frame it brought in and writes their replies with one send. A protocol
 * error sends AGENT-DISCONNECT with its SPOP status and closes that
 * connection only. Connections are freed from a prepare watcher, never
 * inside their own callbacks.
 *
 * A worker_state is the part of a worker that conn uses: its loop, its plan
 * reference with its decider, and its counters. Everything in it belongs to
 * the worker's thread; nothing here is shared with another thread except
 * through runtime.h and metrics.h. */
#ifndef CUTOVER_CONN_H
#define CUTOVER_CONN_H

#include <ev.h>
#include <stdint.h>

#include "decide.h"

struct conn;
struct plan;
struct metrics_worker;

struct worker_state {
	struct ev_loop *loop;
	unsigned worker_id;
	struct metrics_worker *metrics;
	const struct plan *plan;  /* this worker's reference (runtime_acquire) */
	uint64_t plan_generation; /* runtime_generation() when plan was taken */
	struct conn *live;        /* open connections */
	struct conn *dead;        /* closed, freed by reaper */
	unsigned count;           /* open connections */
	uint64_t next_id;
	ev_prepare reaper;
	ev_prepare pacer;         /* sets this turn's batch wait */
	double batch_wait;        /* seconds; 0: none */
	unsigned turn_frames;     /* NOTIFYs handled since the last turn began */
	/* Called (on the worker's thread) after a connection was freed. */
	void (*released)(struct worker_state *ws);
	struct decider decider;  /* bound to plan */
};

/* Takes a plan reference; plan_generation and plan are set from runtime.
 * batch_wait (seconds): a turn of the loop that follows one which handled
 * some NOTIFYs but fewer than CONN_BATCH_ENOUGH waits that long before
 * polling (libev's I/O collect interval), so that small batches gather; a
 * loop that was idle, or whose batches are large already (HAProxy 2.6 sends
 * many NOTIFYs per write, 3.1 and later one), polls at once. */
#define CONN_BATCH_ENOUGH 8
void worker_state_init(struct worker_state *ws, struct ev_loop *loop, unsigned worker_id,
		       struct metrics_worker *metrics, double batch_wait,
		       void (*released)(struct worker_state *));

/* Frees every connection at once and drops the plan reference. Only once
 * the loop no longer runs. */
void worker_state_destroy(struct worker_state *ws);

/* Adopts an accepted, non-blocking socket. On allocation failure the socket
 * is closed and false returned. */
bool conn_accept(struct worker_state *ws, int fd);

/* Graceful stop: every connection gets AGENT-DISCONNECT status 0 (after
 * what it already queued) and closes once flushed. */
void worker_state_shutdown(struct worker_state *ws);

#endif
