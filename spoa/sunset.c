/* SPDX-License-Identifier: Apache-2.0 */
/* sunset: past a deprecated route's sunset, a 410 (contract in sunset.h). */
#include "sunset.h"

#include "plan_types.h"

bool sunset_passed(const struct plan *plan, const struct decision *d, int64_t now)
{
	const struct plan_deprecation *dep;

	if (!d->deprecated || d->status != 0 || d->route_index < 0)
		return false;
	dep = plan->routes[d->route_index].deprecation;
	return dep && now >= dep->sunset;
}

void sunset_gone(struct decision *d, struct rewrite *rw)
{
	d->status = 410;
	d->backend = NULL;
	d->backend_index = -1;
	if (rw)
		rw->link = true;
	d->link = d->path;
	d->link_len = d->path_len;
	d->path = NULL;
	d->path_len = 0;
}
