/* SPDX-License-Identifier: Apache-2.0 */
/* explain: --check and --explain, in the manner of haproxy -c. Both load the
 * plan exactly as the agent does, so what they print is what it would do. */
#include "explain.h"

#include "fallback.h"
#include "fallback_file.h"
#include "frame.h"
#include "plan.h"
#include "router.h"
#include "ryw.h"
#include "shift.h"
#include "sunset.h"

#include <arpa/inet.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPLAIN_ERR_MAX 1024
#define EXPLAIN_LIST_MAX 8  /* names listed by --check before "..." */
#define PLAN_NAME_BUF 96    /* "cutover_" and a plan name of up to 64 bytes */

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

/* True when the HAProxy configuration text declares a proxy called want in
 * a "backend" or "listen" section (the only sections use_backend reaches). */
static bool declares_backend(const char *cfg, const char *want)
{
	size_t wlen = strlen(want);

	for (const char *line = cfg; line && *line; line = strchr(line, '\n'), line += !!line) {
		const char *p = line + strspn(line, " \t");
		size_t kw = strncmp(p, "backend", 7) == 0 ? 7 : strncmp(p, "listen", 6) == 0 ? 6 : 0;

		if (!kw || (p[kw] != ' ' && p[kw] != '\t'))
			continue;
		p += kw + strspn(p + kw, " \t");
		if (strncmp(p, want, wlen) == 0 && strchr(" \t\r\n#", p[wlen]) && p[wlen])
			return true;
	}
	return false;
}

static char *read_text(const char *file, FILE *err)
{
	FILE *f = fopen(file, "rb");
	char *text = NULL;
	size_t len = 0;

	if (!f) {
		fprintf(err, "%s: cannot open: %s\n", file, strerror(errno));
		return NULL;
	}
	if (fseek(f, 0, SEEK_END) == 0 && (len = (size_t)ftell(f)) < (64u << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (text = malloc(len + 2)) &&
	    fread(text, 1, len, f) == len) {
		text[len] = '\n'; /* so the last line ends like the others */
		text[len + 1] = '\0';
	} else {
		fprintf(err, "%s: cannot read\n", file);
		free(text);
		text = NULL;
	}
	fclose(f);
	return text;
}

int explain_check_haproxy(const char *file, const char *haproxy_cfg, FILE *out, FILE *err)
{
	int rc = explain_check(file, out, err);
	struct plan *p;
	char *cfg;
	int missing = 0;

	if (rc != 0 || !(p = load(file, err)))
		return rc ? rc : 1;
	if (!(cfg = read_text(haproxy_cfg, err))) {
		plan_free(p);
		return 1;
	}
	for (int i = 0; i < plan_backend_count(p); i++) {
		char want[PLAN_NAME_BUF];

		snprintf(want, sizeof(want), "cutover_%s", plan_backend_name(p, i));
		if (declares_backend(cfg, want))
			continue;
		fprintf(err, "%s: no 'backend %s' for plan backend '%s': HAProxy would answer "
			"503 for every request sent there\n", haproxy_cfg, want, plan_backend_name(p, i));
		missing++;
	}
	if (!missing)
		fprintf(out, "  haproxy:  %s has a backend cutover_<name> for each of the %d\n",
			haproxy_cfg, plan_backend_count(p));
	free(cfg);
	plan_free(p);
	return missing ? 1 : 0;
}

int explain_write_fallback(const char *file, const char *dir, FILE *out, FILE *err)
{
	char msg[EXPLAIN_ERR_MAX];
	struct plan *p = load(file, err);
	int cur;

	if (!p)
		return 1;
	if (!fallback_write_dir(p, dir, msg, sizeof(msg))) {
		fprintf(err, "%s\n", msg);
		plan_free(p);
		return 1;
	}
	cur = plan_current_phase(p);
	fprintf(out, "%s/%s: phase %u %s, %d routes\n", dir, FALLBACK_MAP_FILE,
		plan_phase_number(p, cur), plan_phase_name(p, cur), plan_route_count(p));
	plan_free(p);
	return 0;
}

/* ---- --json: the same facts for programs (scripts/walk and the like) ---- */

/* s as a JSON string, or null. */
static void json_string(FILE *out, const char *s, size_t len)
{
	if (!s) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c); /* bytes, not UTF-8: one escape each */
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void json_cstr(FILE *out, const char *s)
{
	json_string(out, s, s ? strlen(s) : 0);
}

int explain_check_json(const char *file, FILE *out)
{
	char msg[EXPLAIN_ERR_MAX];
	struct plan *p = plan_load(file, msg, sizeof(msg));
	int cur;

	if (!p) {
		fputs("{\"valid\": false, \"error\": ", out);
		json_cstr(out, msg);
		fputs("}\n", out);
		return 1;
	}
	cur = plan_current_phase(p);
	fputs("{\"valid\": true, \"file\": ", out);
	json_cstr(out, file);
	fprintf(out, ", \"current\": {\"index\": %d, \"number\": %u, \"name\": ", cur,
		plan_phase_number(p, cur));
	json_cstr(out, plan_phase_name(p, cur));
	fputs("},\n \"phases\": [", out);
	for (int i = 0; i < plan_phase_count(p); i++) {
		fprintf(out, "%s\n  {\"number\": %u, \"name\": ", i ? "," : "", plan_phase_number(p, i));
		json_cstr(out, plan_phase_name(p, i));
		fputs(", \"description\": ", out);
		json_cstr(out, plan_phase_description(p, i));
		fputc('}', out);
	}
	fputs("],\n \"routes\": [", out);
	for (int i = 0; i < plan_route_count(p); i++) {
		fputs(i ? ", {\"name\": " : "{\"name\": ", out);
		json_cstr(out, plan_route_name(p, i));
		fputs(", \"path\": ", out);
		json_cstr(out, plan_route_path(p, i));
		fputc('}', out);
	}
	fputs("],\n \"backends\": [", out);
	for (int i = 0; i < plan_backend_count(p); i++) {
		fputs(i ? ", " : "", out);
		json_cstr(out, plan_backend_name(p, i));
	}
	fputs("], \"default_backend\": ", out);
	json_cstr(out, plan_default_backend(p));
	fputs("}\n", out);
	plan_free(p);
	return 0;
}

/* The route's deprecation when d is deprecated, else NULL. */
static const struct plan_deprecation *deprecation_of(const struct plan *p,
						     const struct decision *d)
{
	return d->deprecated ? plan_route_deprecation(p, d->route_index) : NULL;
}

/* A deprecated action always routes: as a 410 it is past its sunset. */
static bool past_sunset(const struct decision *d)
{
	return d->deprecated && d->status == 410;
}

static void json_decision(FILE *out, const struct plan *p, const struct decision *d,
			  bool current)
{
	const struct plan_deprecation *dep = deprecation_of(p, d);

	fprintf(out, "{\"phase\": %u, \"phase_name\": ", d->phase);
	json_cstr(out, d->phase_name);
	fprintf(out, ", \"current\": %s, \"route\": ", current ? "true" : "false");
	json_cstr(out, d->route);
	fputs(", \"backend\": ", out);
	json_cstr(out, d->backend);
	if (d->status)
		fprintf(out, ", \"status\": %u", d->status);
	else
		fputs(", \"status\": null", out);
	fputs(", \"path\": ", out);
	json_string(out, d->path, d->path_len);
	fputs(", \"link\": ", out);
	json_string(out, d->link, d->link_len);
	fprintf(out, ", \"deprecated\": %s, \"deprecation\": ", d->deprecated ? "true" : "false");
	json_cstr(out, dep ? dep->date_sf : NULL);
	fputs(", \"sunset\": ", out);
	json_cstr(out, dep ? dep->sunset_imf : NULL);
	fputs(", \"policy\": ", out);
	json_cstr(out, dep ? dep->policy : NULL);
	fprintf(out, ", \"past_sunset\": %s", past_sunset(d) ? "true" : "false");
	if (d->side == SIDE_NONE) {
		fputc('}', out);
		return;
	}
	fprintf(out, ", \"percent\": %u, \"side\": \"%s\", \"bucket\": ", d->percent,
		d->side == SIDE_NEW ? "new" : "old");
	if (d->bucket >= 0)
		fprintf(out, "%d", d->bucket);
	else
		fputs("null", out);
	fprintf(out, ", \"forced\": %s}", d->forced ? "true" : "false");
}

/* What HAProxy does with a routed request, in words. */
static void print_action(FILE *out, const struct plan *p, const struct decision *d)
{
	const struct plan_deprecation *dep = deprecation_of(p, d);

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
	if (dep)
		fprintf(out, " (Deprecation %s, Sunset %s%s%s%s)", dep->date_sf, dep->sunset_imf,
			dep->policy ? ", policy " : "", dep->policy ? dep->policy : "",
			past_sunset(d) ? ": past the sunset, gone" : "");
}

/* A split route's decision: the side this client took, and why. */
static void print_side(FILE *out, const struct decision *d)
{
	const char *side = d->side == SIDE_NEW ? "new" : "old";

	if (d->forced)
		fprintf(out, "; side %s, forced (X-Cutover-Side)", side);
	else if (d->bucket < 0)
		fprintf(out, "; side old: no client key (%u%% split)", d->percent);
	else
		fprintf(out, "; side %s: bucket %d %s %u (%u%% split)", side, d->bucket,
			d->side == SIDE_NEW ? "<" : ">=", d->percent * (SHIFT_BUCKETS / 100),
			d->percent);
}

/* The decision in words: what HAProxy will do with the request. both: the
 * old side of a split route, when the request names no client or side:
 * both sides are shown, d being the new one. */
static void print_decision(FILE *out, const struct plan *p, const struct decision *d,
			   const struct decision *both)
{
	if (!d->route) {
		const char *deflt = plan_default_backend(p);

		fprintf(out, "no route -> %s%s\n", deflt ? "backend " : "HAProxy's default backend",
			deflt ? deflt : "");
		return;
	}
	fprintf(out, "route %s -> ", d->route);
	if (both) {
		fprintf(out, "%u%% of clients (new): ", d->percent);
		print_action(out, p, d);
		fprintf(out, "; the others (old): ");
		print_action(out, p, both);
	} else {
		print_action(out, p, d);
		if (d->side != SIDE_NONE)
			print_side(out, d);
	}
	fputc('\n', out);
}

/* What read-your-writes does with the decision, when anything. */
static void print_ryw(FILE *out, const struct plan *p, const struct decision *d,
		      const char *method)
{
	char text[512];

	if (*ryw_describe(p, d, method, text, sizeof(text)))
		fprintf(out, "             %s\n", text);
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

/* d as the agent sends it: a rewrite or link must fit, with the other
 * variables decide_notify sends (txn backend, path, phase, route, status,
 * deprecated and, when routed, deprecation, sunset and policy; side; link),
 * in an ACK of the agent's max-frame-size
 * (FRAME_AGENT_MAX_SIZE, HAProxy's default as well) with stream and frame
 * ids of the largest size; if it does not, the agent answers 414 without
 * backend, path or link, and so does --explain. So a rewrite --explain
 * shows is one the agent sends. */
static void within_agent_limits(const struct plan *p, struct decision *d)
{
	static uint8_t ack[FRAME_LEN_SIZE + FRAME_AGENT_MAX_SIZE];
	struct ack_builder b;

	if (!d->path && !d->link)
		return; /* names and numbers alone always fit */
	frame_ack_begin(&b, ack, sizeof(ack), FRAME_AGENT_MAX_SIZE, UINT64_MAX, UINT64_MAX);
	if (d->backend)
		frame_ack_set_string(&b, FRAME_SCOPE_TXN, "backend", d->backend, strlen(d->backend));
	if (d->path)
		frame_ack_set_string(&b, FRAME_SCOPE_TXN, "path", d->path, d->path_len);
	frame_ack_set_int64(&b, FRAME_SCOPE_TXN, "phase", d->phase);
	if (d->route)
		frame_ack_set_string(&b, FRAME_SCOPE_TXN, "route", d->route, strlen(d->route));
	if (d->status)
		frame_ack_set_int64(&b, FRAME_SCOPE_TXN, "status", d->status);
	if (d->deprecated)
		frame_ack_set_bool(&b, FRAME_SCOPE_TXN, "deprecated", true);
	if (d->deprecated && !d->status) {
		const struct plan_deprecation *dep = plan_route_deprecation(p, d->route_index);

		frame_ack_set_string(&b, FRAME_SCOPE_TXN, "deprecation", dep->date_sf,
				     strlen(dep->date_sf));
		frame_ack_set_string(&b, FRAME_SCOPE_TXN, "sunset", dep->sunset_imf,
				     strlen(dep->sunset_imf));
		if (dep->policy)
			frame_ack_set_string(&b, FRAME_SCOPE_TXN, "policy", dep->policy,
					     strlen(dep->policy));
	}
	if (d->side != SIDE_NONE)
		frame_ack_set_string(&b, FRAME_SCOPE_TXN, "side", "new", 3);
	if (d->link)
		frame_ack_set_string(&b, FRAME_SCOPE_TXN, "link", d->link, d->link_len);
	if (frame_ack_end(&b) < 0)
		router_refuse(d, 414);
}

/* The agent's decision for req in phase i at now: the router's, past a
 * sunset the 410 (sunset.h), within the agent's limits. */
static void decide_now(const struct plan *p, int i, const struct route_request *req,
		       struct decision *d, char *scratch, size_t cap, int64_t now)
{
	router_decide_in(p, i, req, d, scratch, cap);
	if (sunset_passed(p, d, now))
		sunset_gone(d, NULL);
	within_agent_limits(p, d);
}

int explain_request(const char *file, const char *method, const char *path,
		    const char *phase, int all_phases, FILE *out, FILE *err)
{
	return explain_request_host(file, method, path, NULL, phase, all_phases, out, err);
}

int explain_request_host(const char *file, const char *method, const char *path,
			 const char *host, const char *phase, int all_phases, FILE *out,
			 FILE *err)
{
	return explain_request_as(file, method, path, host, phase, all_phases, false, out, err);
}

int explain_request_as(const char *file, const char *method, const char *path,
		       const char *host, const char *phase, int all_phases, bool json, FILE *out,
		       FILE *err)
{
	struct explain_request_opts o = { .host = host, .phase = phase,
					  .all_phases = all_phases, .json = json };

	return explain_request_with(file, method, path, &o, out, err);
}

/* The request's client: --client KEY as the header's value, or as the
 * source address when the plan keys clients by address. */
static bool put_client(const struct plan *p, const char *file, const char *key,
		       struct route_request *req, FILE *err)
{
	if (!key)
		return true;
	if (!plan_clients_key_is_src(p)) {
		req->client = key;
		req->client_len = strlen(key);
		return true;
	}
	if (inet_pton(AF_INET, key, req->src) == 1)
		req->src_family = 4;
	else if (inet_pton(AF_INET6, key, req->src) == 1)
		req->src_family = 6;
	else
		fprintf(err, "%s: clients are keyed by source address (key: src): --client '%s' "
			"is not an IPv4 or IPv6 address\n", file, key);
	return req->src_family != 0;
}

static void print_header(FILE *out, const struct plan *p, const struct route_request *req,
			 const struct explain_request_opts *o)
{
	int bucket = plan_client_bucket(p, req);

	fprintf(out, "%s %s", req->method, req->path);
	if (o->host)
		fprintf(out, " host %s", o->host);
	if (o->client && bucket >= 0)
		fprintf(out, " client %s: bucket %d of %d", o->client, bucket, SHIFT_BUCKETS);
	else if (o->client)
		fprintf(out, " client %s: no key (the plan has no clients block)", o->client);
	if (o->side)
		fprintf(out, " side %s", o->side);
	fputc('\n', out);
}

int explain_request_with(const char *file, const char *method, const char *path,
			 const struct explain_request_opts *o, FILE *out, FILE *err)
{
	/* the decider's room for rewrites; the command line runs one thread */
	static char scratch[FRAME_AGENT_MAX_SIZE], other[FRAME_AGENT_MAX_SIZE];
	struct route_request req = {
		.method = method, .method_len = strlen(method),
		.path = path, .path_len = strlen(path),
		.host = o->host, .host_len = o->host ? strlen(o->host) : 0,
		.side = o->side, .side_len = o->side ? strlen(o->side) : 0,
	};
	struct plan *p = load(file, err);
	int64_t now = (int64_t)time(NULL); /* a sunset is judged as the agent would now */
	int index, first, last;

	if (!p)
		return 1;
	index = o->phase ? plan_phase_lookup(p, o->phase) : plan_current_phase(p);
	if (index < 0) {
		fprintf(err, "%s: phase '%s' is not in the plan (phases %u to %u)\n", file, o->phase,
			plan_phase_number(p, 0), plan_phase_number(p, plan_phase_count(p) - 1));
		plan_free(p);
		return 1;
	}
	if (!put_client(p, file, o->client, &req, err)) {
		plan_free(p);
		return 1;
	}
	if (o->json) {
		fputs("{\"method\": ", out);
		json_cstr(out, method);
		fputs(", \"path\": ", out);
		json_cstr(out, path);
		fputs(", \"host\": ", out);
		json_cstr(out, o->host);
		if (o->client || o->side) {
			fputs(", \"client\": ", out);
			json_cstr(out, o->client);
			fputs(", \"side\": ", out);
			json_cstr(out, o->side);
		}
		fputs(", \"decisions\": [", out);
	} else {
		print_header(out, p, &req, o);
	}
	first = o->all_phases ? 0 : index;
	last = o->all_phases ? plan_phase_count(p) - 1 : index;
	for (int i = first; i <= last; i++) {
		struct decision d, old;
		bool both;

		decide_now(p, i, &req, &d, scratch, sizeof(scratch), now);
		if (o->json) {
			fputs(i > first ? ",\n  " : "\n  ", out);
			json_decision(out, p, &d, i == plan_current_phase(p));
			continue;
		}
		/* No client and no side on a split route: show both sides. */
		both = d.side != SIDE_NONE && !o->client && !o->side;
		if (both) {
			struct route_request forced = req;

			forced.side = "new";
			forced.side_len = 3;
			decide_now(p, i, &forced, &d, scratch, sizeof(scratch), now);
			forced.side = "old";
			decide_now(p, i, &forced, &old, other, sizeof(other), now);
		}
		fprintf(out, "%c phase %2u %-24s ", i == plan_current_phase(p) ? '*' : ' ', d.phase,
			d.phase_name);
		print_decision(out, p, &d, both ? &old : NULL);
		print_ryw(out, p, &d, method);
		print_entry_guards(out, p, i);
	}
	if (o->json)
		fputs("]}\n", out);
	plan_free(p);
	return 0;
}
