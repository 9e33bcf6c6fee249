/* SPDX-License-Identifier: Apache-2.0 */
#include "ryw.h"

#include "method.h"
#include "plan_types.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

unsigned ryw_backend_id(const char *name)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *c = (const unsigned char *)name; *c; c++)
		h = (h ^ *c) * 16777619u;
	return (unsigned)(h % 0x7fffffffu) + 1;
}

bool ryw_index_backends(struct plan *plan)
{
	unsigned *ids;

	if (!plan->ryw_marks)
		return true;
	ids = arena_array(&plan->arena, (size_t)plan->nbackends, sizeof(*ids));
	if (!ids)
		return false;
	for (int b = 0; b < plan->nbackends; b++)
		ids[b] = ryw_backend_id(plan->backends[b]);
	plan->ryw_ids = ids;
	return true;
}

/* The action d took: the phase's, or on the old side of a split the base
 * the other clients keep. */
static const struct action *taken(const struct plan *plan, const struct decision *d)
{
	const struct action *a = plan->phases[d->phase_index].action[d->route_index];

	return d->side == SIDE_OLD ? a->base : a;
}

bool ryw_decide(const struct plan *plan, const struct route_request *req,
		const struct decision *d, const struct rewrite *match, struct ryw_answer *out)
{
	const struct read_your_writes *y;
	unsigned method;

	if (d->route_index < 0 || d->status != 0 || !d->backend)
		return false;
	y = taken(plan, d)->ryw;
	method = req->method ? method_bit(req->method, req->method_len) : 0;
	out->mark = plan->ryw_marks && plan->ryw_marks[d->route_index] &&
			    (method & METHODS_WRITES) ? plan->ryw_ids[d->backend_index] : 0;
	out->backend = NULL;
	if (y && (method & METHODS_READS)) {
		out->backend = plan->backends[y->backend];
		out->seconds = y->seconds;
		out->after = plan->ryw_ids[y->written_to];
		out->rw = *match;
		out->rw.tpl = y->tpl;
		out->rw.link = false;
	}
	if (!out->mark && !out->backend)
		return false;
	out->client_len = client_key(&plan->clients, req, out->client, sizeof(out->client));
	return out->client_len > 0;
}

const char *ryw_describe(const struct plan *plan, const struct decision *d, const char *method,
			 char *buf, size_t cap)
{
	unsigned m = method_bit(method, strlen(method));
	const struct read_your_writes *y;

	buf[0] = '\0';
	if (d->route_index < 0 || d->status != 0 || !d->backend)
		return buf;
	y = taken(plan, d)->ryw;
	if (plan->ryw_marks && plan->ryw_marks[d->route_index] && (m & METHODS_WRITES))
		snprintf(buf, cap, "read your writes: marks its client's write to %s", d->backend);
	else if (y && (m & METHODS_READS))
		snprintf(buf, cap, "read your writes: for %us after its client's last write, "
			 "if to %s, backend %s%s%s", y->seconds, plan->backends[y->written_to],
			 plan->backends[y->backend], y->tpl ? ", path from " : "",
			 y->tpl ? y->tpl->text : "");
	return buf;
}
