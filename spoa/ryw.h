/* SPDX-License-Identifier: Apache-2.0 */
/* ryw: what read-your-writes adds to one decision (docs/plan.md, "Read
 * your writes"; docs/contracts.md for the ACK variables). Pure: no I/O, no
 * allocation.
 *
 * The agent holds no client state: HAProxy keeps each client's last
 * marked write in its stick table (haproxy/haproxy.cfg, table ryw_writes):
 * its time and where it went, and compares them itself. The agent only
 * says, per request:
 *   - a write (POST, PUT, PATCH, DELETE) routed to a backend through a
 *     route that a read_your_writes block of the plan (any phase) names in
 *     `after`: mark this client, with the id of that backend;
 *   - a read (GET, HEAD) routed to a backend through a route whose action
 *     has a read_your_writes block: where it goes instead, for how long
 *     after the client's mark, and the backend id the mark must carry
 *     (the block's written_to).
 * Either needs a client key (client_key.h); a request without one gets
 * neither. A backend's id is ryw_backend_id() of its name, so that marks
 * keep their meaning across plan edits and agents. */
#ifndef CUTOVER_RYW_H
#define CUTOVER_RYW_H

#include <stdbool.h>
#include <stddef.h>

#include "client_key.h"
#include "router.h"

struct plan;

struct ryw_answer {
	char client[CLIENT_KEY_MAX + 1]; /* the key, NUL-terminated */
	size_t client_len;
	unsigned mark;            /* a write: its backend's id; 0: not marked */
	const char *backend;      /* a read: where it goes inside the window; else NULL */
	unsigned seconds;         /* the window */
	unsigned after;           /* the id the client's last mark must carry */
	struct rewrite rw;        /* its rewrite (tpl NULL: the path unchanged), with the
	                             captures of the decision's match */
};

/* A backend's id in marks: 1 to 2^31-1, from its name (FNV-1a). */
unsigned ryw_backend_id(const char *name);

/* Fills plan->ryw_ids when the plan marks writes, so that no decision hashes
 * a name; false when out of memory. plan_load calls it. */
bool ryw_index_backends(struct plan *plan);

/* For decision d of req under plan (d made by router_match, match its
 * rewrite): fills out and returns true when read-your-writes applies
 * (mark, or backend set); false otherwise (out then means nothing). */
bool ryw_decide(const struct plan *plan, const struct route_request *req,
		const struct decision *d, const struct rewrite *match, struct ryw_answer *out);

/* For --explain: what read-your-writes does with decision d of a request
 * with this method, in words, at buf (NUL-terminated; "" when nothing).
 * Returns buf. */
const char *ryw_describe(const struct plan *plan, const struct decision *d, const char *method,
			 char *buf, size_t cap);

#endif
