/* SPDX-License-Identifier: Apache-2.0 */
/* plan: the load step (the loader builds and validates, the router
 * compiles the routes) and what the rest of the agent may read of a plan. */
#include "plan.h"

#include "client_key.h"

#include "plan_loader.h"
#include "plan_types.h"
#include "router.h"
#include "ryw.h"
#include "shift.h"
#include "sha256.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct plan *plan_load_buffer(const char *name, const char *data, size_t len,
			      char *err, size_t errlen)
{
	struct plan *p = plan_loader_build(name, data, len, router_compile, err, errlen);

	if (p && !ryw_index_backends(p)) {
		snprintf(err, errlen, "%s: out of memory", name);
		plan_free(p);
		return NULL;
	}
	if (p)
		sha256_hex(data, len, p->hash);
	return p;
}

char *plan_read_file(const char *file, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(file, "rb");
	char *data;

	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
		return NULL;
	}
	/* One byte more than the limit tells "too large" from "exactly full". */
	data = malloc(PLAN_MAX_FILE_SIZE + 1);
	if (!data) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", file);
		return NULL;
	}
	*len = fread(data, 1, PLAN_MAX_FILE_SIZE + 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
		fclose(f);
		free(data);
		return NULL;
	}
	fclose(f);
	return data;
}

struct plan *plan_load(const char *file, char *err, size_t errlen)
{
	size_t len;
	char *data = plan_read_file(file, &len, err, errlen);
	struct plan *p;

	if (!data)
		return NULL;
	p = plan_load_buffer(file, data, len, err, errlen);
	free(data);
	return p;
}

void plan_free(struct plan *plan)
{
	if (!plan)
		return;
	arena_release(&plan->arena);
	free(plan);
}

int plan_current_phase(const struct plan *plan)
{
	return plan->current;
}

int plan_desired_phase(const struct plan *plan)
{
	return plan->desired;
}

void plan_set_phase(struct plan *plan, int index)
{
	plan->current = index;
}

bool plan_phase_one_way(const struct plan *plan, int index)
{
	return plan->phases[index].one_way;
}

int plan_phase_gate_count(const struct plan *plan, int index)
{
	return plan->phases[index].ngates;
}

const struct plan_gate *plan_phase_gate(const struct plan *plan, int index, int gate)
{
	return &plan->phases[index].gates[gate];
}

int plan_override_back_across(const struct plan *plan)
{
	return plan->override_back_across;
}

const char *plan_override_reason(const struct plan *plan)
{
	return plan->override_reason;
}

const struct plan_deprecation *plan_route_deprecation(const struct plan *plan, int index)
{
	return plan->routes[index].deprecation;
}

static int action_text(const struct plan *plan, const struct action *a, char *buf, size_t len)
{
	if (a->kind == ACTION_BACKEND)
		return snprintf(buf, len, "backend %s%s%s%s", plan->backends[a->backend],
				a->tpl ? ", rewrite " : "", a->tpl ? a->tpl->text : "",
				a->deprecated ? ", deprecated" : "");
	return snprintf(buf, len, "status %u%s%s", a->status, a->tpl ? ", link " : "",
			a->tpl ? a->tpl->text : "");
}

void plan_route_action_text(const struct plan *plan, int phase, int route, char *buf,
			    size_t len)
{
	const struct action *a = plan->phases[phase].action[route];
	int n = action_text(plan, a, buf, len);

	if (!a->percent || n < 0 || (size_t)n >= len)
		return;
	n += snprintf(buf + n, len - (size_t)n, ", for %u%% of clients; the others: ", a->percent);
	if ((size_t)n < len)
		action_text(plan, a->base, buf + n, len - (size_t)n);
}

unsigned plan_route_percent(const struct plan *plan, int phase, int route)
{
	return plan->phases[phase].action[route]->percent;
}

int plan_phase_count(const struct plan *plan)
{
	return plan->nphases;
}

unsigned plan_phase_number(const struct plan *plan, int index)
{
	return plan->phases[index].number;
}

const char *plan_phase_name(const struct plan *plan, int index)
{
	return plan->phases[index].name;
}

const char *plan_phase_description(const struct plan *plan, int index)
{
	return plan->phases[index].description;
}

int plan_route_count(const struct plan *plan)
{
	return plan->nroutes;
}

const char *plan_route_name(const struct plan *plan, int index)
{
	return plan->routes[index].name;
}

const char *plan_route_path(const struct plan *plan, int index)
{
	return plan->routes[index].path;
}

int plan_backend_count(const struct plan *plan)
{
	return plan->nbackends;
}

const char *plan_backend_name(const struct plan *plan, int index)
{
	return plan->backends[index];
}

const char *plan_default_backend(const struct plan *plan)
{
	return plan->default_backend >= 0 ? plan->backends[plan->default_backend] : NULL;
}

const char *plan_hash(const struct plan *plan)
{
	return plan->hash;
}

int plan_route_backend(const struct plan *plan, int phase, int route, unsigned *status)
{
	return plan_route_side_backend(plan, phase, route, false, status);
}

int plan_route_side_backend(const struct plan *plan, int phase, int route, bool old,
			    unsigned *status)
{
	const struct action *a = plan->phases[phase].action[route];

	if (old && a->percent)
		a = a->base;

	*status = a->kind == ACTION_STATUS ? a->status : 0;
	return a->kind == ACTION_BACKEND ? a->backend : -1;
}

int plan_default_backend_index(const struct plan *plan)
{
	return plan->default_backend;
}

bool plan_clients_key_is_src(const struct plan *plan)
{
	return plan->clients.key == CLIENT_KEY_SRC;
}

int plan_client_bucket(const struct plan *plan, const struct route_request *req)
{
	char key[CLIENT_KEY_MAX + 1];
	size_t len = client_key(&plan->clients, req, key, sizeof(key));

	return len ? (int)shift_bucket(plan->clients.salt, key, len) : -1;
}
