/* SPDX-License-Identifier: Apache-2.0 */
/* plan: the migration plan, loaded from YAML into an immutable, validated,
 * compiled object. Loading is two steps, one way: plan_loader.h builds and
 * validates, router.h compiles the routes. Pure: no libev, no logging
 * (errors go to the caller's buffer as "file:line:column: reason"). A loaded
 * plan is never modified, so any number of threads may read it at once. The
 * schema is docs/plan.md. */
#ifndef CUTOVER_PLAN_H
#define CUTOVER_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "httpdate.h"

struct plan;
struct route_request;

/* A route's `deprecation:` block (docs/plan.md, Deprecation): when the route
 * was deprecated, when it goes, and where its policy is; the header values
 * HAProxy sends are made once, at load. */
#define PLAN_MAX_POLICY 256

struct plan_deprecation {
	int64_t date, sunset;        /* seconds since the epoch; sunset >= date */
	const char *policy;          /* absolute http(s) URL; NULL when absent */
	char date_sf[HTTPDATE_SF_SIZE];    /* "@1796083200" (Deprecation) */
	char sunset_imf[HTTPDATE_IMF_SIZE]; /* "Wed, 30 Jun 2027 00:00:00 GMT" (Sunset) */
};

/* A condition checked before traffic enters a phase (docs/plan.md, Gates). */
#define PLAN_MAX_GATES 16 /* per phase */

enum plan_gate_kind { PLAN_GATE_HTTP, PLAN_GATE_MIN_TIME };

struct plan_gate {
	enum plan_gate_kind kind;
	const char *label;           /* for logs, metrics and the journal */
	/* PLAN_GATE_HTTP: GET http://host:port/path must answer expect_status,
	 * and, with json, the number at that dotted path be within [min, max]. */
	const char *url;             /* as written */
	char host[48];               /* numeric IPv4 or IPv6 address */
	unsigned port;
	const char *path;            /* starts with '/' */
	unsigned expect_status;
	const char *json;            /* NULL: the status alone decides */
	bool has_min, has_max;
	double min, max;
	/* PLAN_GATE_MIN_TIME: seconds the live phase has been the one left. */
	double seconds;
	double timeout, interval;    /* seconds per attempt, between attempts */
	unsigned line, column;       /* where the gate is defined */
};

/* Loads, validates and compiles file. Returns NULL on any error, with
 * "file:line:column: reason" in err (always NUL-terminated); an error that
 * has no position (the file cannot be read) is "file: reason". */
struct plan *plan_load(const char *file, char *err, size_t errlen);

/* The file's bytes, malloc'd (at most the size limit, plus one byte to
 * tell a file too large), or NULL with "file: reason" in err. */
char *plan_read_file(const char *file, size_t *len, char *err, size_t errlen);

/* The same from memory; name stands for the file in messages. */
struct plan *plan_load_buffer(const char *name, const char *data, size_t len,
			      char *err, size_t errlen);

void plan_free(struct plan *plan);

/* The phase decisions are made in: the file's `phase:` until the agent
 * sets another one with plan_set_phase(). */
int plan_current_phase(const struct plan *plan); /* index */
/* The phase the file asks for (its top-level `phase:` key). */
int plan_desired_phase(const struct plan *plan); /* index */
/* Makes index the phase decisions are made in. Only on a plan nobody reads
 * yet (before runtime_publish): a published plan is immutable. */
void plan_set_phase(struct plan *plan, int index);

/* One-way door: once live traffic entered this phase (or a later one), no
 * plan may take it back before it unless the plan's override names it. */
bool plan_phase_one_way(const struct plan *plan, int index);
int plan_phase_gate_count(const struct plan *plan, int index);
const struct plan_gate *plan_phase_gate(const struct plan *plan, int index, int gate);
/* The one-way phase the plan's top-level override lets traffic go back
 * across (index), or -1; and the reason it gives. */
int plan_override_back_across(const struct plan *plan);
const char *plan_override_reason(const struct plan *plan);

int plan_phase_count(const struct plan *plan);
unsigned plan_phase_number(const struct plan *plan, int index);
const char *plan_phase_name(const struct plan *plan, int index);
/* What operators do in the phase, or NULL when the plan does not say. */
const char *plan_phase_description(const struct plan *plan, int index);
/* Index of the phase given as a number or a name, or -1. */
int plan_phase_lookup(const struct plan *plan, const char *number_or_name);

int plan_route_count(const struct plan *plan);
const char *plan_route_name(const struct plan *plan, int index);
/* The route's path pattern as written in the plan. */
const char *plan_route_path(const struct plan *plan, int index);
/* The route's deprecation block; NULL when it has none. */
const struct plan_deprecation *plan_route_deprecation(const struct plan *plan, int index);

int plan_backend_count(const struct plan *plan);
const char *plan_backend_name(const struct plan *plan, int index);
/* Backend for requests that match no route, or NULL. */
const char *plan_default_backend(const struct plan *plan);
/* Its index, or -1. */
int plan_default_backend_index(const struct plan *plan);

/* What route does in the phase at index phase: the backend's index, or -1
 * with the status the proxy answers (404, 410) in *status (0 otherwise). */
int plan_route_backend(const struct plan *plan, int phase, int route, unsigned *status);
/* The same for a side of a split route: old, the action its other clients
 * keep (for an unsplit route, both sides are its one action). */
int plan_route_side_backend(const struct plan *plan, int phase, int route, bool old,
			    unsigned *status);
/* The share of clients (1..99) route sends to its phase's action while the
 * others keep the one before (docs/plan.md, "Progressive shift"); 0: no
 * split, every client takes the action. */
unsigned plan_route_percent(const struct plan *plan, int phase, int route);

/* What route does in phase, in words ("backend new_query, rewrite
 * /v2{rest}", "status 410, link /v2{rest}"; a split one adds ", for 10% of
 * clients; the others: backend old_query"), for the journal. */
void plan_route_action_text(const struct plan *plan, int phase, int route, char *buf,
			    size_t len);

/* The plan's clients are keyed by source address (key: src). */
bool plan_clients_key_is_src(const struct plan *plan);
/* The bucket of req's client (shift.h) under the plan's clients block, or
 * -1 when the request has no client key. */
int plan_client_bucket(const struct plan *plan, const struct route_request *req);

/* SHA-256 of the plan file's bytes, 64 lowercase hex digits: the plan's
 * identity across agents and restarts. */
const char *plan_hash(const struct plan *plan);

#endif
