/* SPDX-License-Identifier: Apache-2.0 */
/* router: routing decisions from a compiled plan.
 *
 * Pure: no I/O, no libev, no allocation when deciding. A plan (see plan.h)
 * carries its compiled router. A decision is made in two steps, so that a
 * rewrite can be written where its caller wants it (the agent: straight
 * into the ACK): router_match picks the route and its action, and leaves
 * the rewrite (path or link) as a template and the request's captures;
 * router_rewrite_len and router_rewrite_write expand it. router_decide does
 * both into a scratch buffer. A decision only ever points into the plan it
 * came from, the request, or where its rewrite was written, so it stays
 * valid for as long as the caller holds those. */
#ifndef CUTOVER_ROUTER_H
#define CUTOVER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "pattern.h"

struct plan;
struct template;

/* One HTTP request as HAProxy describes it. Strings are not NUL-terminated;
 * a NULL pointer means the argument was absent (HAProxy sent NULL). */
struct route_request {
	const char *method;
	size_t method_len;
	const char *path; /* raw path as HAProxy's `path` fetch gives it, no query */
	size_t path_len;
	const char *host; /* may be NULL */
	size_t host_len;
	const char *client; /* the client header's value (argument `client`); may be NULL */
	size_t client_len;
	const char *side; /* X-Cutover-Side's value (argument `side`); may be NULL */
	size_t side_len;
	int src_family;   /* 4, 6, or 0: no source address (argument `src`) */
	unsigned char src[16]; /* network order; 4 bytes for IPv4 */
};

/* The side of a progressive shift a decision took (shift.h). */
enum split_side { SIDE_NONE, SIDE_NEW, SIDE_OLD };

struct decision {
	unsigned phase;          /* number of the phase the decision was made in */
	const char *phase_name;  /* NUL-terminated, owned by the plan */
	int phase_index;         /* 0-based index of that phase in the plan */
	int route_index;         /* 0-based index of the matched route, -1 if none */
	const char *route;       /* matched route's name, NULL when none matched */
	int backend_index;       /* index of backend in the plan, -1 when backend is NULL */
	const char *backend;     /* backend to use; NULL when the proxy answers itself
	                            (status != 0) or nothing matched and the plan has no
	                            default backend */
	unsigned status;         /* 0, or the status HAProxy must answer with (404, 410;
	                            400 or 414 when the rewrite was refused) */
	bool deprecated;         /* the route is deprecated in this phase */
	const char *path;        /* rewritten path, where it was written; NULL when not
	                            rewritten (or not written yet) */
	size_t path_len;
	const char *link;        /* successor path for a 410, where it was written */
	size_t link_len;
	/* A route split between clients in this phase (docs/plan.md, "Progressive
	 * shift"): SIDE_NONE when it is not; else the side taken, the phase's
	 * action (new) or the one the other clients keep (old). */
	enum split_side side;
	unsigned percent;        /* split: the share of clients on the new side */
	int bucket;              /* split: the client's bucket (shift.h), -1: no key */
	bool forced;             /* split: the side came from X-Cutover-Side */
};

/* The rewrite a matched decision still has to write: the action's template
 * and the request's segments it refers to (views into the request). */
struct rewrite {
	const struct template *tpl; /* NULL: nothing to write */
	bool link;                  /* a 410's link; else the backend's new path */
	struct span segment[PATTERN_MAX_SEGMENTS];
	struct span tail;
};

/* Compiles plan->routes into plan->root; the second step of plan_load().
 * On failure returns false with the index of the offending route (-1 for
 * none, e.g. out of memory) and the reason. */
bool router_compile(struct plan *plan, int *bad_route, char *why, size_t whylen);

/* Decides where req goes in the phase at phase_index (-1, or any index out
 * of range: the plan's current phase), its rewrite left in rw (path and
 * link NULL in out). Never fails. */
void router_match(const struct plan *plan, int phase_index, const struct route_request *req,
		  struct decision *out, struct rewrite *rw);

/* Bytes the rewrite expands to. */
size_t router_rewrite_len(const struct rewrite *rw);

/* Writes the rewrite's router_rewrite_len() bytes at dst (no NUL). Returns
 * 0, or 400 when the result would hold a byte HAProxy could reject or
 * misread, a dot segment, or start with "//": then dst holds garbage and
 * the decision must be refused. */
unsigned router_rewrite_write(const struct rewrite *rw, char *dst);

/* What router_rewrite_write would return, without writing: 0 or 400. For a
 * rewrite with no room to be written, so that an unsafe one is still
 * answered 400 whatever the room. */
unsigned router_rewrite_refusal(const struct rewrite *rw);

/* Turns d into the proxy's own answer `status` (400, 414): route, phase and
 * deprecation kept; no backend, path or link. */
void router_refuse(struct decision *d, unsigned status);

/* Decide where req goes under plan's current phase: router_match, then the
 * rewrite written into scratch, NUL-terminated; when it does not fit there
 * the decision is refused with 414 (400 when it is unsafe). Never fails
 * otherwise. */
void router_decide(const struct plan *plan, const struct route_request *req,
		   struct decision *out, char *scratch, size_t scratch_cap);

/* The same, in the phase at phase_index instead of the plan's current one
 * (--explain --phase / --all-phases). */
void router_decide_in(const struct plan *plan, int phase_index,
		      const struct route_request *req, struct decision *out,
		      char *scratch, size_t scratch_cap);

#endif
