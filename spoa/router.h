/* router: routing decisions from a compiled plan.
 *
 * Pure: no I/O, no libev, no allocation in router_decide(). A plan (see
 * plan.h) carries its compiled router; a decision only ever points into the
 * plan it came from or into the caller's scratch buffer, so it stays valid for
 * as long as the caller holds that plan and that buffer. */
#ifndef CUTOVER_ROUTER_H
#define CUTOVER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

struct plan;

/* One HTTP request as HAProxy describes it. Strings are not NUL-terminated;
 * a NULL pointer means the argument was absent (HAProxy sent NULL). */
struct route_request {
	const char *method;
	size_t method_len;
	const char *path; /* raw path as HAProxy's `path` fetch gives it, no query */
	size_t path_len;
	const char *host; /* may be NULL */
	size_t host_len;
};

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
	unsigned status;         /* 0, or the status HAProxy must answer with (404, 410) */
	bool deprecated;         /* the route is deprecated in this phase */
	const char *path;        /* rewritten path, in scratch; NULL when not rewritten */
	size_t path_len;
	const char *link;        /* successor path for a 410, in scratch; NULL otherwise */
	size_t link_len;
};

/* Compiles plan->routes into plan->root; the second step of plan_load().
 * On failure returns false with the index of the offending route (-1 for
 * none, e.g. out of memory) and the reason. */
bool router_compile(struct plan *plan, int *bad_route, char *why, size_t whylen);

/* Decide where req goes under plan's current phase. scratch receives the
 * rewritten path and link; when it is too small the route's decision is kept
 * but status becomes 414 and nothing is rewritten. Never fails otherwise. */
void router_decide(const struct plan *plan, const struct route_request *req,
		   struct decision *out, char *scratch, size_t scratch_cap);

/* The same, in the phase at phase_index instead of the plan's current one
 * (--explain --phase / --all-phases). */
void router_decide_in(const struct plan *plan, int phase_index,
		      const struct route_request *req, struct decision *out,
		      char *scratch, size_t scratch_cap);

#endif
