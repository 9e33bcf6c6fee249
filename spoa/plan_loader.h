/* plan_loader: builds a plan from YAML and validates it; the first step of
 * plan_load() (plan.h), which then has the router compile the routes. */
#ifndef CUTOVER_PLAN_LOADER_H
#define CUTOVER_PLAN_LOADER_H

#include <stddef.h>

struct plan;

/* A validated plan from data[0..len), routes not compiled (plan->root is
 * NULL). NULL on any error, with "name:line:column: reason" in err. The
 * result is freed with plan_free(). */
struct plan *plan_loader_build(const char *name, const char *data, size_t len,
			       char *err, size_t errlen);

#endif
