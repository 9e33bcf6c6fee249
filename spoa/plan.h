/* plan: the migration plan, loaded from YAML into an immutable, validated,
 * compiled object. Loading is two steps, one way: plan_loader.h builds and
 * validates, router.h compiles the routes. Pure: no libev, no logging
 * (errors go to the caller's buffer as "file:line:column: reason"). A loaded
 * plan is never modified, so any number of threads may read it at once. The
 * schema is docs/plan.md. */
#ifndef CUTOVER_PLAN_H
#define CUTOVER_PLAN_H

#include <stddef.h>

struct plan;

/* Loads, validates and compiles file. Returns NULL on any error, with
 * "file:line:column: reason" in err (always NUL-terminated); an error that
 * has no position (the file cannot be read) is "file: reason". */
struct plan *plan_load(const char *file, char *err, size_t errlen);

/* The same from memory; name stands for the file in messages. */
struct plan *plan_load_buffer(const char *name, const char *data, size_t len,
			      char *err, size_t errlen);

void plan_free(struct plan *plan);

/* The phase in force (the top-level `phase:` key). */
int plan_current_phase(const struct plan *plan); /* index */

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

int plan_backend_count(const struct plan *plan);
const char *plan_backend_name(const struct plan *plan, int index);
/* Backend for requests that match no route, or NULL. */
const char *plan_default_backend(const struct plan *plan);
/* Its index, or -1. */
int plan_default_backend_index(const struct plan *plan);

/* What route does in the phase at index phase: the backend's index, or -1
 * with the status the proxy answers (404, 410) in *status (0 otherwise). */
int plan_route_backend(const struct plan *plan, int phase, int route, unsigned *status);

/* SHA-256 of the plan file's bytes, 64 lowercase hex digits: the plan's
 * identity across agents and restarts. */
const char *plan_hash(const struct plan *plan);

#endif
