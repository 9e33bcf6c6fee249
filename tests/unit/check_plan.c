/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for the plan loader (plan.c) and the --check / --explain modes
 * built on it (explain.c): the sample plan, valid plans, the table of invalid
 * plans in tests/unit/plans/ (each file's first line is
 * "# error: LINE:COLUMN: reason", the exact message it must give), size
 * limits, and truncated input. Runs from the source root. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "plan.h"

#define PLANS_DIR "tests/unit/plans"
#define SAMPLE "tests/unit/plans/sample.yaml"
#define MIN_INVALID_CASES 90
#define MAX_CASES 256

static char *invalid_files[MAX_CASES];
static int ninvalid;
static char *valid_files[MAX_CASES];
static int nvalid;

static char *read_all(const char *file, size_t *len)
{
	FILE *f = fopen(file, "rb");
	char *buf;

	ck_assert_msg(f != NULL, "cannot open %s", file);
	buf = malloc(2 << 20);
	ck_assert_ptr_nonnull(buf);
	*len = fread(buf, 1, (2 << 20) - 1, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits tests/unit/plans/ into invalid cases ("# error:") and valid ones. */
static void list_cases(void)
{
	DIR *d = opendir(PLANS_DIR);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[512], first[16] = "";
		size_t n = strlen(e->d_name);
		FILE *f;

		if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", PLANS_DIR, e->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		if (!fgets(first, sizeof(first), f))
			first[0] = '\0';
		fclose(f);
		if (strncmp(first, "# error: ", 9) == 0 && ninvalid < MAX_CASES)
			invalid_files[ninvalid++] = strdup(path);
		else if (strncmp(first, "# valid", 7) == 0 && nvalid < MAX_CASES)
			valid_files[nvalid++] = strdup(path);
	}
	closedir(d);
	qsort(invalid_files, (size_t)ninvalid, sizeof(char *), by_name);
	qsort(valid_files, (size_t)nvalid, sizeof(char *), by_name);
}

START_TEST(invalid_table_is_complete)
{
	ck_assert_int_ge(ninvalid, MIN_INVALID_CASES);
	ck_assert_int_ge(nvalid, 2);
}
END_TEST

START_TEST(invalid_plan)
{
	const char *file = invalid_files[_i];
	char expected[1024], err[1024];
	size_t len;
	char *text = read_all(file, &len);
	char *eol = strchr(text, '\n');
	struct plan *p;

	ck_assert_ptr_nonnull(eol);
	*eol = '\0';
	snprintf(expected, sizeof(expected), "%s:%s", file, text + strlen("# error: "));
	free(text);
	p = plan_load(file, err, sizeof(err));
	ck_assert_msg(p == NULL, "%s loaded but must fail with: %s", file, expected);
	ck_assert_str_eq(err, expected);
}
END_TEST

/* What a FILE* stream received, as a string (freed by the caller). */
struct capture {
	FILE *f;
	char *text;
	size_t len;
};

static void capture_open(struct capture *c)
{
	c->f = open_memstream(&c->text, &c->len);
	ck_assert_ptr_nonnull(c->f);
}

static char *capture_close(struct capture *c)
{
	fclose(c->f);
	return c->text;
}

/* --check: exit 1, the loader's message on stderr, nothing on stdout. */
START_TEST(invalid_plan_check)
{
	const char *file = invalid_files[_i];
	char expected[1024], first[1024];
	struct capture out, err;
	FILE *f = fopen(file, "rb");
	int rc;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(first, sizeof(first), f));
	fclose(f);
	first[strcspn(first, "\n")] = '\0';
	snprintf(expected, sizeof(expected), "%s:%s\n", file, first + strlen("# error: "));
	capture_open(&out);
	capture_open(&err);
	rc = explain_check(file, out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(e, expected);
	ck_assert_str_eq(o, "");
	free(o);
	free(e);
}
END_TEST

START_TEST(check_summary)
{
	struct capture out, err;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_check(SAMPLE, out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(e, "");
	ck_assert_str_eq(o, "tests/unit/plans/sample.yaml: plan is valid\n"
			    "  phases:   12, from 1 current-state to 12 migration-complete\n"
			    "  routes:   6: squids-query, squids-command, seafoods-query, "
			    "seafoods-command, query, command\n"
			    "  backends: 4: old_query, old_command, new_query, new_command\n"
			    "  default:  none (HAProxy's default backend)\n"
			    "  current:  phase 1 current-state\n"
			    "  doors:    none\n"
			    "  gates:    none\n");
	free(o);
	free(e);
}
END_TEST

/* --check shows the one-way doors, every gate in words, and the override. */
START_TEST(check_guards)
{
	struct capture out, err;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_check("tests/unit/plans/valid-gates.yaml", out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(e, "");
	ck_assert_ptr_nonnull(strstr(o, "  current:  phase 1 one\n"
		"  doors:    phase 3 three (one way: no going back before it)\n"
		"  gates:    entering phase 2 two:\n"
		"              GET http://127.0.0.1:9003/replication answers 200 with "
		"replication.lag_seconds <= 1 (timeout 0.5s, every 0.2s)\n"
		"              at least 2.5s in the phase before\n"
		"              GET http://[::1]:8081/healthz answers 204 (timeout 2s, every 1s)\n"
		"  override: back across phase 3 three allowed: restore drill\n"));
	free(o);
	free(e);
}
END_TEST

/* --explain --all-phases says what guards entering each guarded phase. */
START_TEST(explain_guards)
{
	struct capture out, err;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_request("tests/unit/plans/valid-gates.yaml", "GET", "/r/x", NULL, 1, out.f,
			     err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(e, "");
	ck_assert_str_eq(o, "GET /r/x\n"
		"* phase  1 one                      route r -> backend a\n"
		"  phase  2 two                      route r -> backend a\n"
		"             guards: GET http://127.0.0.1:9003/replication answers 200 "
		"with replication.lag_seconds <= 1 (timeout 0.5s, every 0.2s); at least 2.5s in "
		"the phase before; GET http://[::1]:8081/healthz answers 204 (timeout 2s, every 1s)\n"
		"  phase  3 three                    route r -> backend a\n"
		"             guards: one-way: once entered, no going back before it\n");
	free(o);
	free(e);
}
END_TEST

/* The loader keeps what the gates say, parsed: address, port, path, bounds. */
START_TEST(gates_loaded)
{
	char err[512];
	struct plan *p = plan_load("tests/unit/plans/valid-gates.yaml", err, sizeof(err));
	const struct plan_gate *g;

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(plan_phase_gate_count(p, 0), 0);
	ck_assert_int_eq(plan_phase_gate_count(p, 1), 3);
	ck_assert(!plan_phase_one_way(p, 1));
	ck_assert(plan_phase_one_way(p, 2));
	ck_assert_int_eq(plan_override_back_across(p), 2);
	ck_assert_str_eq(plan_override_reason(p), "restore drill");
	g = plan_phase_gate(p, 1, 0);
	ck_assert_int_eq(g->kind, PLAN_GATE_HTTP);
	ck_assert_str_eq(g->host, "127.0.0.1");
	ck_assert_uint_eq(g->port, 9003);
	ck_assert_str_eq(g->path, "/replication");
	ck_assert_str_eq(g->json, "replication.lag_seconds");
	ck_assert(g->has_max && !g->has_min);
	ck_assert(g->max == 1 && g->timeout == 0.5 && g->interval == 0.2);
	g = plan_phase_gate(p, 1, 1);
	ck_assert_int_eq(g->kind, PLAN_GATE_MIN_TIME);
	ck_assert(g->seconds == 2.5);
	ck_assert_str_eq(g->label, "min_time_in_previous 2.5s");
	g = plan_phase_gate(p, 1, 2);
	ck_assert_str_eq(g->host, "::1");
	ck_assert_uint_eq(g->expect_status, 204);
	ck_assert_str_eq(g->label, "query-app");
	ck_assert_int_eq(plan_desired_phase(p), 0);
	plan_set_phase(p, 2);
	ck_assert_int_eq(plan_current_phase(p), 2);
	ck_assert_int_eq(plan_desired_phase(p), 0);
	plan_free(p);
}
END_TEST

/* --explain --all-phases: docs/contracts.md's row for /query/api/squids, one line
 * per phase, the current one starred. */
START_TEST(explain_all_phases)
{
	static const char *const want[] = {
		"GET /query/api/squids/42",
		"* phase  1 current-state            route squids-query -> backend old_query",
		"  phase  2 data-replication         route squids-query -> backend old_query",
		"  phase  3 deploy-new-query         route squids-query -> backend old_query",
		"  phase  4 switch-query-routing     route squids-query -> backend new_query, "
		"path /query/api/seafoods/42",
		"             read your writes: for 5s after its client's last write, if to "
		"old_command, backend old_query",
		"  phase  5 deploy-new-command       route squids-query -> backend new_query, "
		"path /query/api/seafoods/42",
		"             read your writes: for 5s after its client's last write, if to "
		"old_command, backend old_query",
		"  phase  6 switch-command-routing   route squids-query -> backend new_query, "
		"path /query/api/seafoods/42",
		"             read your writes: for 5s after its client's last write, if to "
		"old_command, backend old_query",
		"  phase  7 stop-replication         route squids-query -> backend new_query, "
		"path /query/api/seafoods/42",
		"  phase  8 add-new-api-routing      route squids-query -> backend new_query, "
		"path /query/api/seafoods/42, deprecated (Deprecation @1796083200, Sunset Tue, "
		"30 Jun 2099 00:00:00 GMT, policy https://example.com/api/deprecation)",
		"  phase  9 clients-change-api       route squids-query -> backend new_query, "
		"path /query/api/seafoods/42, deprecated (Deprecation @1796083200, Sunset Tue, "
		"30 Jun 2099 00:00:00 GMT, policy https://example.com/api/deprecation)",
		"  phase 10 remove-old-routing       route squids-query -> status 410 (gone), "
		"link /query/api/seafoods/42",
		"  phase 11 remove-old-api-endpoint  route squids-query -> status 410 (gone), "
		"link /query/api/seafoods/42",
		"  phase 12 migration-complete       route squids-query -> status 410 (gone), "
		"link /query/api/seafoods/42",
	};
	struct capture out, err;
	char *line, *save = NULL;
	size_t n = 0;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_request(SAMPLE, "GET", "/query/api/squids/42", NULL, 1, out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(e, "");
	for (line = strtok_r(o, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		ck_assert_uint_lt(n, sizeof(want) / sizeof(want[0]));
		ck_assert_str_eq(line, want[n]);
		n++;
	}
	ck_assert_uint_eq(n, sizeof(want) / sizeof(want[0]));
	free(o);
	free(e);
}
END_TEST

START_TEST(explain_one_phase)
{
	struct capture out, err;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_request(SAMPLE, "PUT", "/command/api/squids/7", "switch-command-routing", 0,
			     out.f, err.f);
	rc += explain_request(SAMPLE, "GET", "/elsewhere", "3", 0, out.f, err.f);
	rc += explain_request(SAMPLE, "GET", "/query/api/seafoods/1", NULL, 0, out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(e, "");
	ck_assert_str_eq(o, "PUT /command/api/squids/7\n"
			    "  phase  6 switch-command-routing   route squids-command -> "
			    "backend new_command, path /command/api/seafoods/7\n"
			    "             read your writes: marks its client's write to new_command\n"
			    "GET /elsewhere\n"
			    "  phase  3 deploy-new-query         no route -> HAProxy's default backend\n"
			    "GET /query/api/seafoods/1\n"
			    "* phase  1 current-state            route seafoods-query -> "
			    "status 404 (not routed)\n");
	free(o);
	free(e);
}
END_TEST

/* A route's deprecation block as loaded: epochs (from `date -u`), the
 * header values made at load, the policy or NULL. */
START_TEST(deprecation_loaded)
{
	char err[512];
	struct plan *p = plan_load("tests/unit/plans/valid-deprecation.yaml", err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	const struct plan_deprecation *r = plan_route_deprecation(p, 0);
	const struct plan_deprecation *s = plan_route_deprecation(p, 1);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(r->date, 1835481599);
	ck_assert_int_eq(r->sunset, 1835481599);
	ck_assert_str_eq(r->date_sf, "@1835481599");
	ck_assert_str_eq(r->sunset_imf, "Tue, 29 Feb 2028 23:59:59 GMT");
	ck_assert_ptr_null(r->policy);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(s->date, 951782400);
	ck_assert_int_eq(s->sunset, 253402300799LL);
	ck_assert_str_eq(s->sunset_imf, "Fri, 31 Dec 9999 23:59:59 GMT");
	ck_assert_str_eq(s->policy, "https://example.com/api/deprecation?v=1&x=%20#s");
	plan_free(p);
	p = plan_load(SAMPLE, err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_str_eq(plan_route_name(p, 4), "query");
	ck_assert_ptr_null(plan_route_deprecation(p, 4)); /* no block: none */
	plan_free(p);
}
END_TEST

/* Past its sunset a deprecated route is the agent's 410 with the rewrite as
 * its link, and --explain says so; the phase before is not deprecated. */
START_TEST(explain_past_sunset)
{
	struct capture out, err;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_request("tests/unit/plans/valid-deprecation-past.yaml", "GET", "/r/x", NULL,
			     1, out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(e, "");
	ck_assert_str_eq(o, "GET /r/x\n"
			    "  phase  1 start                    route r -> backend old\n"
			    "* phase  2 deprecate                route r -> status 410 (gone), "
			    "link /v2/r/x, deprecated (Deprecation @1577836800, Sunset Wed, 30 Jun "
			    "2021 12:00:00 GMT, policy https://example.com/p: past the sunset, gone)\n");
	free(o);
	free(e);
}
END_TEST

START_TEST(explain_unknown_phase)
{
	struct capture out, err;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_request(SAMPLE, "GET", "/", "13", 0, out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(o, "");
	ck_assert_str_eq(e, "tests/unit/plans/sample.yaml: phase '13' is not in the plan "
			    "(phases 1 to 12)\n");
	free(o);
	free(e);
}
END_TEST

START_TEST(valid_plan)
{
	char err[1024] = "unset";
	struct plan *p = plan_load(valid_files[_i], err, sizeof(err));

	ck_assert_msg(p != NULL, "%s: %s", valid_files[_i], err);
	ck_assert_str_eq(err, "");
	plan_free(p);
}
END_TEST

START_TEST(sample_plan_shape)
{
	static const char *names[] = {
		"current-state", "data-replication", "deploy-new-query",
		"switch-query-routing", "deploy-new-command", "switch-command-routing",
		"stop-replication", "add-new-api-routing", "clients-change-api",
		"remove-old-routing", "remove-old-api-endpoint", "migration-complete",
	};
	static const char *backends[] = { "old_query", "old_command", "new_query",
					  "new_command" };
	char err[1024];
	struct plan *p = plan_load(SAMPLE, err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(plan_phase_count(p), 12);
	for (int i = 0; i < 12; i++) {
		ck_assert_uint_eq(plan_phase_number(p, i), (unsigned)i + 1);
		ck_assert_str_eq(plan_phase_name(p, i), names[i]);
		ck_assert_ptr_nonnull(plan_phase_description(p, i));
		ck_assert_int_eq(plan_phase_lookup(p, names[i]), i);
	}
	ck_assert_int_eq(plan_current_phase(p), 0);
	ck_assert_int_eq(plan_backend_count(p), 4);
	for (int i = 0; i < 4; i++)
		ck_assert_str_eq(plan_backend_name(p, i), backends[i]);
	ck_assert_ptr_null(plan_default_backend(p));
	ck_assert_int_eq(plan_route_count(p), 6);
	ck_assert_str_eq(plan_route_name(p, 0), "squids-query");
	ck_assert_str_eq(plan_route_path(p, 0), "/query/api/squids{rest...}");
	plan_free(p);
}
END_TEST

START_TEST(phase_lookup)
{
	char err[1024];
	struct plan *p = plan_load(SAMPLE, err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(plan_phase_lookup(p, "7"), 6);
	ck_assert_int_eq(plan_phase_lookup(p, "007"), 6);
	ck_assert_int_eq(plan_phase_lookup(p, "12"), 11);
	ck_assert_int_eq(plan_phase_lookup(p, "0"), -1);
	ck_assert_int_eq(plan_phase_lookup(p, "13"), -1);
	ck_assert_int_eq(plan_phase_lookup(p, "99999999999999999999"), -1);
	ck_assert_int_eq(plan_phase_lookup(p, ""), -1);
	ck_assert_int_eq(plan_phase_lookup(p, "Current-State"), -1);
	ck_assert_int_eq(plan_phase_lookup(p, "stop-replication"), 6);
	plan_free(p);
}
END_TEST

/* The sample with its `phase:` line replaced, from memory. */
static struct plan *sample_at(const char *phase, char *err, size_t errlen)
{
	size_t len;
	char *text = read_all(SAMPLE, &len);
	char *line = strstr(text, "\nphase: 1\n");
	char *buf = malloc(len + 64);
	struct plan *p;
	int head;

	ck_assert_ptr_nonnull(line);
	ck_assert_ptr_nonnull(buf);
	head = (int)(line - text);
	len = (size_t)snprintf(buf, len + 64, "%.*s\nphase: %s\n%s", head, text, phase,
			       line + strlen("\nphase: 1\n"));
	p = plan_load_buffer("mem.yaml", buf, len, err, errlen);
	free(text);
	free(buf);
	return p;
}

START_TEST(current_phase_by_number_and_name)
{
	char err[1024];
	struct plan *p = sample_at("8", err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(plan_current_phase(p), 7);
	plan_free(p);
	p = sample_at("remove-old-routing", err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(plan_current_phase(p), 9);
	plan_free(p);
	p = sample_at("\"12\"", err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(plan_current_phase(p), 11);
	plan_free(p);
	p = sample_at("13", err, sizeof(err));
	ck_assert_ptr_null(p);
	ck_assert_str_eq(err, "mem.yaml:10:8: phase '13' is not in the plan (phases 1 to 12)");
}
END_TEST

START_TEST(missing_file)
{
	char err[1024];

	ck_assert_ptr_null(plan_load("tests/unit/plans/no-such-plan.yaml", err, sizeof(err)));
	ck_assert_str_eq(err, "tests/unit/plans/no-such-plan.yaml: cannot open: "
			      "No such file or directory");
}
END_TEST

START_TEST(small_error_buffer)
{
	char err[8];

	memset(err, 'x', sizeof(err));
	ck_assert_ptr_null(plan_load_buffer("mem.yaml", "- a\n", 4, err, sizeof(err)));
	ck_assert_str_eq(err, "mem.yam");
}
END_TEST

START_TEST(file_too_large)
{
	size_t len = ((size_t)1 << 20) + 1;
	char *data = malloc(len);
	char err[256];

	ck_assert_ptr_nonnull(data);
	memset(data, '#', len);
	ck_assert_ptr_null(plan_load_buffer("big.yaml", data, len, err, sizeof(err)));
	ck_assert_str_eq(err, "big.yaml:1:1: the plan is larger than 1048576 bytes");
	free(data);
}
END_TEST

/* A plan of n backends, routes and phases built in memory. */
static char *generated(int nbackends, int nroutes, int nphases, size_t *len)
{
	size_t cap = 64 + (size_t)nbackends * 16 + (size_t)nroutes * 96 +
		     (size_t)nphases * 64;
	char *buf = malloc(cap);
	size_t n = 0;

	ck_assert_ptr_nonnull(buf);
	n += (size_t)snprintf(buf + n, cap - n, "phase: 1\nbackends:\n");
	for (int i = 0; i < nbackends; i++)
		n += (size_t)snprintf(buf + n, cap - n, "  - b%d\n", i);
	n += (size_t)snprintf(buf + n, cap - n, "routes:\n");
	for (int i = 0; i < nroutes; i++)
		n += (size_t)snprintf(buf + n, cap - n, "  - {name: r%d, path: \"/s%d/{rest...}\"}\n",
				      i, i);
	n += (size_t)snprintf(buf + n, cap - n, "phases:\n  - number: 1\n    name: p1\n"
						"    routes:\n");
	for (int i = 0; i < nroutes; i++)
		n += (size_t)snprintf(buf + n, cap - n, "      r%d: b%d\n", i, i % nbackends);
	for (int i = 2; i <= nphases; i++)
		n += (size_t)snprintf(buf + n, cap - n, "  - {number: %d, name: p%d}\n", i, i);
	ck_assert_uint_lt(n, cap);
	*len = n;
	return buf;
}

START_TEST(limits)
{
	char err[256];
	size_t len;
	char *text = generated(4, 1000, 12, &len);
	struct plan *p = plan_load_buffer("gen.yaml", text, len, err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(plan_route_count(p), 1000);
	plan_free(p);
	free(text);

	text = generated(257, 1, 1, &len);
	ck_assert_ptr_null(plan_load_buffer("gen.yaml", text, len, err, sizeof(err)));
	ck_assert_str_eq(err, "gen.yaml:3:3: 'backends' has more than 256 entries");
	free(text);

	text = generated(1, 4097, 1, &len);
	ck_assert_ptr_null(plan_load_buffer("gen.yaml", text, len, err, sizeof(err)));
	ck_assert_str_eq(err, "gen.yaml:5:3: 'routes' has more than 4096 entries");
	free(text);

	text = generated(1, 1, 257, &len);
	ck_assert_ptr_null(plan_load_buffer("gen.yaml", text, len, err, sizeof(err)));
	ck_assert_str_eq(err, "gen.yaml:7:3: 'phases' has more than 256 entries");
	free(text);
}
END_TEST

START_TEST(description_too_long)
{
	char err[256];
	size_t cap = 8192, n;
	char *buf = malloc(cap);

	ck_assert_ptr_nonnull(buf);
	n = (size_t)snprintf(buf, cap, "phase: 1\nbackends: [a]\nroutes: [{name: r, path: /r}]\n"
				      "phases:\n  - {number: 1, name: one, routes: {r: a},"
				      " description: %04097d}\n", 0);
	ck_assert_ptr_null(plan_load_buffer("d.yaml", buf, n, err, sizeof(err)));
	ck_assert_str_eq(err, "d.yaml:5:57: 'description' is longer than 4096 bytes");
	free(buf);
}
END_TEST

/* Every prefix of the sample either loads or fails with file:line:column. */
START_TEST(truncated_sample)
{
	size_t len;
	char *text = read_all(SAMPLE, &len);
	int loaded = 0;

	for (size_t cut = 0; cut < len; cut++) {
		char err[1024];
		unsigned line, column;
		struct plan *p = plan_load_buffer("cut.yaml", text, cut, err, sizeof(err));

		if (p) {
			loaded++;
			plan_free(p);
			continue;
		}
		ck_assert_msg(sscanf(err, "cut.yaml:%u:%u: ", &line, &column) == 2 && line >= 1 &&
				      column >= 1,
			      "prefix %zu: bad message '%s'", cut, err);
	}
	ck_assert_int_gt(loaded, 0); /* the last phases are optional text */
	free(text);
}
END_TEST

static Suite *plan_suite(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = tcase_create("files");

	tcase_add_test(tc, invalid_table_is_complete);
	tcase_add_loop_test(tc, invalid_plan, 0, ninvalid);
	tcase_add_loop_test(tc, invalid_plan_check, 0, ninvalid);
	tcase_add_loop_test(tc, valid_plan, 0, nvalid);
	tcase_add_test(tc, sample_plan_shape);
	tcase_add_test(tc, phase_lookup);
	tcase_add_test(tc, current_phase_by_number_and_name);
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, small_error_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("explain");
	tcase_add_test(tc, check_summary);
	tcase_add_test(tc, check_guards);
	tcase_add_test(tc, explain_guards);
	tcase_add_test(tc, gates_loaded);
	tcase_add_test(tc, explain_all_phases);
	tcase_add_test(tc, explain_one_phase);
	tcase_add_test(tc, explain_unknown_phase);
	tcase_add_test(tc, deprecation_loaded);
	tcase_add_test(tc, explain_past_sunset);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, file_too_large);
	tcase_add_test(tc, limits);
	tcase_add_test(tc, description_too_long);
	tcase_add_test(tc, truncated_sample);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	list_cases();
	sr = srunner_create(plan_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	for (int i = 0; i < ninvalid; i++)
		free(invalid_files[i]);
	for (int i = 0; i < nvalid; i++)
		free(valid_files[i]);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
