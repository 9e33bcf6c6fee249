/* SPDX-License-Identifier: Apache-2.0 */
/* decide: the SPOE contract of message `cutover`, from one NOTIFY's bytes to
 * its ACK's bytes. Pure: no libev, no I/O, no allocation.
 *
 * The NOTIFY is decoded once. Message `cutover` gives the request: its
 * arguments `method`, `path`, `host`, `client` (the plan's client header)
 * and `side` (X-Cutover-Side), STRING, and `src` (IPV4 or IPV6); any other
 * type counts as absent; other arguments and other messages are ignored (the first
 * `cutover` message counts). The ACK sets, for a decision:
 *   txn.cutover.backend  STRING  backend to use (absent: none)
 *   txn.cutover.path     STRING  rewritten path (absent: not rewritten)
 *   txn.cutover.phase    INT64   number of the phase decided in
 *   txn.cutover.route    STRING  matched route (absent: no route matched)
 *   txn.cutover.status   INT64   status the proxy answers with itself
 *   txn.cutover.deprecated BOOL  true when the route is deprecated
 *   txn.cutover.side     STRING  on a route split between clients only:
 *                                "new" or "old", the side this client took
 *   txn.cutover.deprecation STRING deprecated and routed (no status): the
 *                                date, RFC 9745 "@<epoch>"
 *   txn.cutover.sunset   STRING  likewise: the sunset, an IMF-fixdate
 *   txn.cutover.policy   STRING  likewise: the policy URL (absent: none)
 *   txn.cutover.link     STRING  successor path of a 410
 * and, per request, for read-your-writes (ryw.h; not in the slots below):
 *   txn.cutover.client   STRING  the client key (client_key.h), when
 *                                either of the others is set
 *   txn.cutover.mark     INT64   a write to mark for the client: the id
 *                                of its backend (ryw_backend_id)
 *   txn.cutover.ryw_backend STRING a read's backend inside the window
 *   txn.cutover.ryw_path STRING  its rewritten path (absent: not rewritten)
 *   txn.cutover.ryw_for  INT64   the window, seconds after the mark
 *   txn.cutover.ryw_after INT64  the backend id the mark must carry
 * and nothing else: no proc-scope variable (HAProxy takes a process-wide
 * lock for each; the fallback reads its phase from the map files). The ACK
 * of a NOTIFY without a `cutover` message sets nothing. (HAProxy prefixes
 * the variable names with the SPOE scope, `cutover`; the ACK carries them
 * bare.)
 *
 * Over-size: when that ACK would exceed the negotiated max-frame-size, the
 * route's decision is kept but status becomes 414 and the backend, path and
 * link are left out, so HAProxy answers 414 instead of routing unrewritten.
 * The read-your-writes variables go first: an ACK with no room for them
 * is the decision alone (a read then goes to its action, a write is not
 * marked). A read-your-writes rewrite the router would refuse leaves the
 * read to its action.
 * A rewrite the router refuses is answered 400 whatever the room.
 *
 * Time: at or after a deprecated route's sunset (the decider's `now`), the
 * decision is sunset.h's 410 with the rewrite as its link. */
#ifndef CUTOVER_DECIDE_H
#define CUTOVER_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "router.h"
#include "spop.h"

struct plan;

/* A decider is one plan as the decision path uses it: the plan and the ACK
 * bytes of each route's action already encoded, so that a request only
 * writes its ids and its rewritten path or link, expanded straight into the
 * ACK. The encoded actions are filled at a route's first decision and kept
 * for the plan's life: one slot per route index and side (modulo
 * DECIDE_SLOTS), reused only by a decision with the same route, side and
 * status. In one plan's current phase those fix the rest: the route fixes
 * the phase and the name; with the side of a split route (SIDE_NONE on
 * others) it fixes the action and its deprecation; the status says whether
 * the action's backend is kept (0) or dropped (the action's 404/410, a
 * refused 400, a 414). No allocation; it belongs to one thread. */
#define DECIDE_SLOTS 1024
/* two names of PLAN_MAX_NAME and five small values; the deprecation's two
 * dates and a policy of PLAN_MAX_POLICY */
#define DECIDE_SLOT_BYTES 600

struct decide_slot {
	int route; /* route index, -1 for no route; INT_MIN: empty */
	unsigned status;
	enum split_side side;
	uint8_t before_len; /* txn.backend, before txn.path */
	uint16_t after_len; /* txn.phase, route, status, deprecated, side,
			       deprecation, sunset, policy, before txn.link */
	uint8_t bytes[DECIDE_SLOT_BYTES];
};

struct decider {
	const struct plan *plan;
	int64_t now; /* the decision time, seconds since the epoch: the caller's
			clock (the worker's loop time), set before deciding */
	struct decide_slot slot[DECIDE_SLOTS];
};

/* Binds d to plan, forgetting what it encoded for the previous one (now is
 * set to 0). Call on every plan change, before the old plan is released. */
void decider_init(struct decider *d, const struct plan *plan);

struct answer {
	bool asked;               /* the NOTIFY held a `cutover` message */
	bool over_size;           /* the ACK was cut down to the 414 answer */
	bool ryw;                 /* the ACK holds read-your-writes variables */
	struct route_request req; /* its arguments: views into the NOTIFY */
	struct decision d;        /* when asked: the decision as sent (414 if over_size);
	                             path and link point into the ACK written at out */
};

/* Decodes NOTIFY f, decides under the decider's plan's current phase, and
 * writes the ACK frame, length prefix included, at out.
 * out_cap must be at least FRAME_LEN_SIZE + max_frame: the caller keeps a
 * whole frame's room, so that output room never changes an answer.
 * Returns the ACK's size; SPOP_INVALID with *status FRAME_ST_INVALID when
 * the NOTIFY is malformed (nothing written); SPOP_NOSPACE when out_cap is
 * below that room (nothing written). */
ssize_t decide_notify(struct decider *d, const struct frame *f, uint32_t max_frame,
		      uint8_t *out, size_t out_cap, struct answer *a, unsigned *status);

#endif
