/* explain: --check and --explain, in the manner of haproxy -c. Both load the
 * plan exactly as the agent does, so what they print is what it would do. */
#include "explain.h"

#include "plan.h"
#include "router.h"

#include <stdbool.h>
#include <string.h>

#define EXPLAIN_ERR_MAX 1024
#define EXPLAIN_SCRATCH (64 * 1024)
#define EXPLAIN_LIST_MAX 8  /* names listed by --check before "..." */

static struct plan *load(const char *file, FILE *err)
{
	char msg[EXPLAIN_ERR_MAX];
	struct plan *p = plan_load(file, msg, sizeof(msg));

	if (!p)
		fprintf(err, "%s\n", msg);
	return p;
}

static void list_names(FILE *out, const struct plan *p, int n,
		       const char *(*name)(const struct plan *, int))
{
	for (int i = 0; i < n && i < EXPLAIN_LIST_MAX; i++)
		fprintf(out, "%s%s", i ? ", " : "", name(p, i));
	if (n > EXPLAIN_LIST_MAX)
		fprintf(out, ", ... (%d more)", n - EXPLAIN_LIST_MAX);
	fputc('\n', out);
}

static void print_gate(FILE *out, const struct plan_gate *g)
{
	if (g->kind == PLAN_GATE_MIN_TIME) {
		fprintf(out, "at least %gs in the phase before", g->seconds);
		return;
	}
	fprintf(out, "GET %s answers %u", g->url, g->expect_status);
	if (g->json)
		fprintf(out, " with %s", g->json);
	if (g->has_min)
		fprintf(out, " >= %g", g->min);
	if (g->has_min && g->has_max)
		fprintf(out, " and");
	if (g->has_max)
		fprintf(out, " <= %g", g->max);
	fprintf(out, " (timeout %gs, every %gs)", g->timeout, g->interval);
}

/* The one-way doors, the gates of each phase and the plan's override. */
static void print_guards(FILE *out, const struct plan *p)
{
	int doors = 0, gated = 0, over = plan_override_back_across(p);

	fprintf(out, "  doors:    ");
	for (int i = 0; i < plan_phase_count(p); i++)
		if (plan_phase_one_way(p, i))
			fprintf(out, "%sphase %u %s", doors++ ? ", " : "", plan_phase_number(p, i),
				plan_phase_name(p, i));
	fprintf(out, "%s\n", doors ? " (one way: no going back before it)" : "none");
	for (int i = 0; i < plan_phase_count(p); i++) {
		for (int g = 0; g < plan_phase_gate_count(p, i); g++) {
			if (g == 0)
				fprintf(out, "  %s entering phase %u %s:\n", gated++ ? "         " : "gates:   ",
					plan_phase_number(p, i), plan_phase_name(p, i));
			fprintf(out, "              ");
			print_gate(out, plan_phase_gate(p, i, g));
			fputc('\n', out);
		}
	}
	if (!gated)
		fprintf(out, "  gates:    none\n");
	if (over >= 0)
		fprintf(out, "  override: back across phase %u %s allowed: %s\n",
			plan_phase_number(p, over), plan_phase_name(p, over),
			plan_override_reason(p));
}

int explain_check(const char *file, FILE *out, FILE *err)
{
	struct plan *p = load(file, err);
	int last, cur;
	const char *deflt;

	if (!p)
		return 1;
	last = plan_phase_count(p) - 1;
	cur = plan_current_phase(p);
	deflt = plan_default_backend(p);
	fprintf(out, "%s: plan is valid\n", file);
	fprintf(out, "  phases:   %d, from %u %s to %u %s\n", last + 1, plan_phase_number(p, 0),
		plan_phase_name(p, 0), plan_phase_number(p, last), plan_phase_name(p, last));
	fprintf(out, "  routes:   %d: ", plan_route_count(p));
	list_names(out, p, plan_route_count(p), plan_route_name);
	fprintf(out, "  backends: %d: ", plan_backend_count(p));
	list_names(out, p, plan_backend_count(p), plan_backend_name);
	fprintf(out, "  default:  %s\n", deflt ? deflt : "none (HAProxy's default backend)");
	fprintf(out, "  current:  phase %u %s\n", plan_phase_number(p, cur), plan_phase_name(p, cur));
	print_guards(out, p);
	plan_free(p);
	return 0;
}

/* The decision in words: what HAProxy will do with the request. */
static void print_decision(FILE *out, const struct plan *p, const struct decision *d)
{
	if (!d->route) {
		const char *deflt = plan_default_backend(p);

		fprintf(out, "no route -> %s%s\n", deflt ? "backend " : "HAProxy's default backend",
			deflt ? deflt : "");
		return;
	}
	fprintf(out, "route %s -> ", d->route);
	if (d->status == 400)
		fprintf(out, "status 400 (rewrite refused: the path holds bytes or "
			"dot segments a rewrite may not carry)");
	else if (d->status == 414)
		fprintf(out, "status 414 (rewritten path too long)");
	else if (d->status == 404)
		fprintf(out, "status 404 (not routed)");
	else if (d->status == 410)
		fprintf(out, "status 410 (gone)");
	else if (d->status)
		fprintf(out, "status %u", d->status);
	else
		fprintf(out, "backend %s", d->backend);
	if (d->path)
		fprintf(out, ", path %.*s", (int)d->path_len, d->path);
	if (d->link)
		fprintf(out, ", link %.*s", (int)d->link_len, d->link);
	if (d->deprecated)
		fprintf(out, ", deprecated");
	fputc('\n', out);
}

/* What guards entering phase i, when anything does: its gates and whether
 * it is a one-way door. */
static void print_entry_guards(FILE *out, const struct plan *p, int i)
{
	const char *sep = "";

	if (!plan_phase_one_way(p, i) && plan_phase_gate_count(p, i) == 0)
		return;
	fprintf(out, "             guards: ");
	for (int g = 0; g < plan_phase_gate_count(p, i); g++) {
		fputs(sep, out);
		print_gate(out, plan_phase_gate(p, i, g));
		sep = "; ";
	}
	if (plan_phase_one_way(p, i))
		fprintf(out, "%sone-way: once entered, no going back before it", sep);
	fputc('\n', out);
}

int explain_request(const char *file, const char *method, const char *path,
		    const char *phase, int all_phases, FILE *out, FILE *err)
{
	static char scratch[EXPLAIN_SCRATCH]; /* the command line runs one thread */
	struct route_request req = {
		.method = method, .method_len = strlen(method),
		.path = path, .path_len = strlen(path),
	};
	struct plan *p = load(file, err);
	int index, first, last;

	if (!p)
		return 1;
	index = phase ? plan_phase_lookup(p, phase) : plan_current_phase(p);
	if (index < 0) {
		fprintf(err, "%s: phase '%s' is not in the plan (phases %u to %u)\n", file, phase,
			plan_phase_number(p, 0), plan_phase_number(p, plan_phase_count(p) - 1));
		plan_free(p);
		return 1;
	}
	fprintf(out, "%s %s\n", method, path);
	first = all_phases ? 0 : index;
	last = all_phases ? plan_phase_count(p) - 1 : index;
	for (int i = first; i <= last; i++) {
		struct decision d;

		router_decide_in(p, i, &req, &d, scratch, sizeof(scratch));
		fprintf(out, "%c phase %2u %-24s ", i == plan_current_phase(p) ? '*' : ' ', d.phase,
			d.phase_name);
		print_decision(out, p, &d);
		print_entry_guards(out, p, i);
	}
	plan_free(p);
	return 0;
}
