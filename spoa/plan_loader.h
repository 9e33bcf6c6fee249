/* SPDX-License-Identifier: Apache-2.0 */
/* plan_loader: builds a plan from YAML and validates it, for plan_load()
 * (plan.h). It knows nothing of the router: the caller passes what checks
 * the routes (router_compile), which the loader runs once the routes are
 * read, so errors come in file order whichever step finds them. */
#ifndef CUTOVER_PLAN_LOADER_H
#define CUTOVER_PLAN_LOADER_H

#include <stddef.h>

#include <stdbool.h>

struct plan;

/* Checks (and may compile) plan->routes once they are loaded. On failure
 * returns false with the offending route's index (-1: none) and why. */
typedef bool plan_routes_check(struct plan *plan, int *bad_route, char *why, size_t whylen);

/* A validated plan from data[0..len), check_routes run on its routes. NULL
 * on any error, with "name:line:column: reason" in err (a route's error at
 * that route). The result is freed with plan_free(). */
struct plan *plan_loader_build(const char *name, const char *data, size_t len,
			       plan_routes_check *check_routes, char *err, size_t errlen);

#endif
