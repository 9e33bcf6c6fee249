/* SPDX-License-Identifier: Apache-2.0 */
/* metrics: the agent's counters and their Prometheus text.
 *
 * Each worker owns one struct metrics_worker and is its only writer:
 * counters are bumped with relaxed atomic load+store (no lock, no locked
 * instruction) and read by the page with relaxed loads. Decisions are
 * counted in an array indexed by route and outcome for the plan the worker
 * holds (a plan has one current phase, so the phase is implied), and those
 * on a route split between clients also by route and side; when the
 * worker moves to another plan, the array is folded into totals keyed by
 * names, so a decision costs no hash and no string compare. The totals hold
 * at most METRICS_TOTALS_MAX label sets; decisions past that are counted in
 * cutover_decisions_overflow_total.
 *
 * Deprecated-route requests are counted per client in a table of the
 * worker's own (client_usage.h), written without a lock and read under the
 * page's lock; it lives as long as the worker and is resized (its counts
 * carried over) when a plan changes clients.track.
 *
 * Facts about the process (build, plan loaded, reloads, listening) are
 * pushed in by the main thread; metrics calls nothing above it. */
#ifndef CUTOVER_METRICS_H
#define CUTOVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct metrics_worker;
struct plan;
struct decision;
struct route_request;
struct usage_row;
struct usage_view;

#define METRICS_TOTALS_MAX 16384

enum metrics_frame {
	/* received */
	METRICS_FRAME_HAPROXY_HELLO,
	METRICS_FRAME_NOTIFY,
	METRICS_FRAME_HAPROXY_DISCONNECT,
	METRICS_FRAME_UNKNOWN,
	/* sent */
	METRICS_FRAME_AGENT_HELLO,
	METRICS_FRAME_ACK,
	METRICS_FRAME_AGENT_DISCONNECT,
	METRICS_FRAME_KINDS,
};

/* A worker's counters, registered for the page. Call from the main thread
 * before the worker starts. Returns NULL on allocation failure. */
struct metrics_worker *metrics_worker_new(void);

/* Decisions from now on are made with plan (NULL: none). The worker calls
 * it with its new plan before it releases the previous one; the previous
 * plan's counts move to the totals. Takes a lock: once per plan swap. On
 * allocation failure the worker's decisions count as overflow until the
 * next bind. */
void metrics_bind_plan(struct metrics_worker *m, const struct plan *plan);

/* Writers: the owning worker thread only. */
void metrics_frame(struct metrics_worker *m, enum metrics_frame kind);
void metrics_protocol_error(struct metrics_worker *m, unsigned status);
void metrics_conn_opened(struct metrics_worker *m);
void metrics_conn_closed(struct metrics_worker *m);
/* d was made in the bound plan's current phase; nanoseconds is the time it
 * took, for the histogram. */
void metrics_decision(struct metrics_worker *m, const struct decision *d, uint64_t nanoseconds);

/* A decision on a deprecated route, for req, at unix_time (seconds):
 * counted for its client (client_key.h) under the bound plan's `clients`
 * block, in the worker's client_usage table (client_usage.h; its size is
 * the plan's clients.track, set by metrics_bind_plan). */
void metrics_deprecated(struct metrics_worker *m, const struct route_request *req,
			double unix_time);

/* A monotonic clock in nanoseconds, for timing a decision. */
uint64_t metrics_now_ns(void);

/* Facts pushed by the main thread. version ("0.1.0") and revision (git
 * describe, or the version again) must outlive metrics. */
void metrics_set_version(const char *version, const char *revision);
/* A plan went into force (the first, or an accepted reload when reload). */
void metrics_plan_applied(const struct plan *plan, bool reload, double unix_time);
/* The live phase stepped: plan is the plan in force, at its new phase
 * (not a reload of the file). */
void metrics_phase_step(const struct plan *plan);
/* The next step waits on gate (its label) because of why; NULL: on nothing. */
void metrics_phase_waiting(const char *gate, const char *why);
/* /status: desired and effective phases, what the next step waits on, the
 * plan's hash, as one JSON object and a newline, malloc'd; NULL on
 * allocation failure. */
char *metrics_status_json(size_t *len);
/* A reload was rejected; the plan in force stays. */
void metrics_plan_rejected(double unix_time);
/* The SPOP listener is up. */
void metrics_set_listening(void);

/* A plan loaded and the SPOP listener up. */
bool metrics_ready(void);
/* "cutover-spoa VERSION[ (REVISION)]\n": what --version and /version print. */
void metrics_version_line(char *buf, size_t size);

/* Who called deprecated routes: every worker's table read and merged into
 * at most the plan's clients.track rows (*rows malloc'd, the caller frees
 * it; most requests first), their sums in view, and *quiet the seconds
 * since the last such request, or since the agent started when none came.
 * False when out of memory. */
bool metrics_usage(struct usage_row **rows, size_t *n, struct usage_view *view, double *quiet);

/* The whole page as Prometheus text (version 0.0.4), malloc'd; NULL on
 * allocation failure. */
char *metrics_render(size_t *len);

/* Frees every registered worker's counters and the totals; after all
 * workers ended. */
void metrics_free_all(void);

#endif
