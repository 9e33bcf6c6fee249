/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for the router (router.c) against the sample plan: every cell
 * of docs/contracts.md's routing table, in every phase, for every path family, for
 * reads and writes; then hostile paths, specificity, methods, hosts, and
 * the rewrite's refusals. The expected table below is written from
 * docs/contracts.md, not from the plan. The plan is tests/unit/plans/sample.yaml, a
 * copy of conf/cutover.yaml of our own, so editing the live plan (its phase)
 * changes nothing here. Runs from the source root. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "router.h"

#define SAMPLE "tests/unit/plans/sample.yaml"
#define SCRATCH 8192

static struct plan *sample;

static void load_sample(void)
{
	char err[1024];

	sample = plan_load(SAMPLE, err, sizeof(err));
	ck_assert_msg(sample != NULL, "%s", err);
}

static void free_sample(void)
{
	plan_free(sample);
	sample = NULL;
}

/* ---- docs/contracts.md's table ---- */

enum family { SQUIDS_QUERY, SQUIDS_COMMAND, SEAFOODS_QUERY, SEAFOODS_COMMAND,
	      OTHER_QUERY, OTHER_COMMAND, OUTSIDE, NFAMILIES };

static const char *const family_prefix[NFAMILIES] = {
	"/query/api/squids", "/command/api/squids", "/query/api/seafoods",
	"/command/api/seafoods", "/query/api/orders", "/command/api/orders", "/health",
};

static const char *const family_route[NFAMILIES] = {
	"squids-query", "squids-command", "seafoods-query", "seafoods-command",
	"query", "command", NULL,
};

/* What a request of family f must get in phase p (1-12), per docs/contracts.md. */
struct expect {
	const char *backend;
	unsigned status;
	bool rewrite;    /* squids -> seafoods in path (backend) or link (410) */
	bool deprecated;
};

static struct expect expected(enum family f, unsigned p)
{
	switch (f) {
	case SQUIDS_QUERY:
		if (p <= 3) return (struct expect){ "old_query", 0, false, false };
		if (p <= 7) return (struct expect){ "new_query", 0, true, false };
		if (p <= 9) return (struct expect){ "new_query", 0, true, true };
		return (struct expect){ NULL, 410, true, false };
	case SQUIDS_COMMAND:
		if (p <= 5) return (struct expect){ "old_command", 0, false, false };
		if (p <= 7) return (struct expect){ "new_command", 0, true, false };
		if (p <= 9) return (struct expect){ "new_command", 0, true, true };
		return (struct expect){ NULL, 410, true, false };
	case SEAFOODS_QUERY:
		if (p <= 7) return (struct expect){ NULL, 404, false, false };
		return (struct expect){ "new_query", 0, false, false };
	case SEAFOODS_COMMAND:
		if (p <= 7) return (struct expect){ NULL, 404, false, false };
		return (struct expect){ "new_command", 0, false, false };
	case OTHER_QUERY:
		return (struct expect){ p <= 3 ? "old_query" : "new_query", 0, false, false };
	case OTHER_COMMAND:
		return (struct expect){ p <= 5 ? "old_command" : "new_command", 0, false, false };
	default:
		return (struct expect){ NULL, 0, false, false };
	}
}

static const char *const reads[] = { "GET", "HEAD" };
static const char *const writes[] = { "POST", "PUT", "PATCH", "DELETE" };
static const char *const suffixes[] = { "", "/", "/42", "/42/reviews", "/a-b_c.d~e" };
#define NSUFFIXES (int)(sizeof(suffixes) / sizeof(suffixes[0]))

static struct route_request request(const char *method, const char *path)
{
	return (struct route_request){ .method = method, .method_len = method ? strlen(method) : 0,
				       .path = path, .path_len = strlen(path) };
}

/* "/query/api/squids/42" -> "/query/api/seafoods/42" */
static void squids_to_seafoods(const char *path, char *out, size_t cap)
{
	const char *at = strstr(path, "squids");

	ck_assert_ptr_nonnull(at);
	snprintf(out, cap, "%.*sseafoods%s", (int)(at - path), path, at + strlen("squids"));
}

static void check_cell(const struct plan *p, int phase_index, bool use_current,
		       enum family f, const char *method, const char *suffix)
{
	char path[256], want[256], scratch[SCRATCH];
	unsigned number = plan_phase_number(p, phase_index);
	struct expect e = expected(f, number);
	struct route_request req;
	struct decision d;

	snprintf(path, sizeof(path), "%s%s", family_prefix[f], suffix);
	req = request(method, path);
	if (use_current)
		router_decide(p, &req, &d, scratch, sizeof(scratch));
	else
		router_decide_in(p, phase_index, &req, &d, scratch, sizeof(scratch));

	ck_assert_uint_eq(d.phase, number);
	ck_assert_int_eq(d.phase_index, phase_index);
	ck_assert_str_eq(d.phase_name, plan_phase_name(p, phase_index));
	if (family_route[f]) {
		ck_assert_msg(d.route && strcmp(d.route, family_route[f]) == 0,
			      "phase %u %s %s: route %s, want %s", number, method, path,
			      d.route ? d.route : "(none)", family_route[f]);
		ck_assert_int_ge(d.route_index, 0);
	} else {
		ck_assert_ptr_null(d.route);
		ck_assert_int_eq(d.route_index, -1);
	}
	ck_assert_msg(e.backend ? d.backend && strcmp(d.backend, e.backend) == 0 : !d.backend,
		      "phase %u %s %s: backend %s, want %s", number, method, path,
		      d.backend ? d.backend : "(none)", e.backend ? e.backend : "(none)");
	ck_assert_msg(d.status == e.status, "phase %u %s %s: status %u, want %u", number,
		      method, path, d.status, e.status);
	ck_assert_msg(d.deprecated == e.deprecated, "phase %u %s %s: deprecated %d", number,
		      method, path, d.deprecated);
	squids_to_seafoods(f <= SQUIDS_COMMAND ? path : "squids", want, sizeof(want));
	if (e.rewrite && e.status == 0) {
		ck_assert_ptr_nonnull(d.path);
		ck_assert_uint_eq(d.path_len, strlen(want));
		ck_assert_mem_eq(d.path, want, d.path_len);
		ck_assert_ptr_null(d.link);
	} else if (e.rewrite) {
		ck_assert_ptr_nonnull(d.link);
		ck_assert_uint_eq(d.link_len, strlen(want));
		ck_assert_mem_eq(d.link, want, d.link_len);
		ck_assert_ptr_null(d.path);
	} else {
		ck_assert_ptr_null(d.path);
		ck_assert_ptr_null(d.link);
	}
}

/* _i walks phases x families; each cell is checked for every read and
 * write method and several path shapes. */
START_TEST(design_table)
{
	int phase_index = _i / NFAMILIES;
	enum family f = (enum family)(_i % NFAMILIES);

	ck_assert_int_eq(plan_phase_count(sample), 12);
	for (int s = 0; s < NSUFFIXES; s++) {
		for (size_t m = 0; m < sizeof(reads) / sizeof(reads[0]); m++)
			check_cell(sample, phase_index, false, f, reads[m], suffixes[s]);
		for (size_t m = 0; m < sizeof(writes) / sizeof(writes[0]); m++)
			check_cell(sample, phase_index, false, f, writes[m], suffixes[s]);
	}
}
END_TEST

/* The same table through router_decide, with the plan's `phase:` line set
 * to each phase in turn, by number and by name. */
static struct plan *sample_at(const char *phase)
{
	FILE *fp = fopen(SAMPLE, "rb");
	static char text[64 * 1024], buf[64 * 1024 + 128];
	char err[1024];
	size_t len;
	char *line;
	int n;
	struct plan *p;

	ck_assert_ptr_nonnull(fp);
	len = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[len] = '\0';
	line = strstr(text, "\nphase: 1\n");
	ck_assert_ptr_nonnull(line);
	n = snprintf(buf, sizeof(buf), "%.*s\nphase: %s\n%s", (int)(line - text), text, phase,
		     line + strlen("\nphase: 1\n"));
	p = plan_load_buffer("mem.yaml", buf, (size_t)n, err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	return p;
}

START_TEST(current_phase_routes)
{
	char number[16];
	struct plan *by_number, *by_name;

	snprintf(number, sizeof(number), "%d", _i + 1);
	by_number = sample_at(number);
	by_name = sample_at(plan_phase_name(sample, _i));
	ck_assert_int_eq(plan_current_phase(by_number), _i);
	ck_assert_int_eq(plan_current_phase(by_name), _i);
	for (int f = 0; f < NFAMILIES; f++) {
		check_cell(by_number, _i, true, (enum family)f, "GET", "/42");
		check_cell(by_name, _i, true, (enum family)f, "DELETE", "/42");
	}
	plan_free(by_number);
	plan_free(by_name);
}
END_TEST

/* ---- hostile and odd paths ---- */

static struct decision decide_raw(int phase_index, const char *method, const char *path,
				  size_t path_len, char *scratch, size_t cap)
{
	struct route_request req = request(method, "");
	struct decision d;

	req.path = path;
	req.path_len = path_len;
	router_decide_in(sample, phase_index, &req, &d, scratch, cap);
	return d;
}

static struct decision decide(int phase_number, const char *method, const char *path)
{
	static char scratch[SCRATCH];

	return decide_raw(phase_number - 1, method, path, strlen(path), scratch, sizeof(scratch));
}

/* A GET of path decided by plan p in its current phase; a rewritten path
 * lives in a static scratch until the next call. */
static struct decision get_on(const struct plan *p, const char *path)
{
	static char scratch[SCRATCH];
	struct route_request req = request("GET", path);
	struct decision d;

	router_decide(p, &req, &d, scratch, sizeof(scratch));
	return d;
}

static void assert_route(struct decision d, const char *route)
{
	if (!route)
		ck_assert_msg(!d.route, "matched %s, want no route", d.route);
	else
		ck_assert_msg(d.route && strcmp(d.route, route) == 0, "route %s, want %s",
			      d.route ? d.route : "(none)", route);
}

static void assert_path(struct decision d, const char *path)
{
	ck_assert_ptr_nonnull(d.path);
	ck_assert_uint_eq(d.path_len, strlen(path));
	ck_assert_mem_eq(d.path, path, d.path_len);
	ck_assert_uint_eq(d.status, 0);
}

/* A rewrite that would carry this path is refused with 400, never built. */
static void assert_refused(struct decision d, const char *route)
{
	assert_route(d, route);
	ck_assert_uint_eq(d.status, 400);
	ck_assert_ptr_null(d.backend);
	ck_assert_ptr_null(d.path);
	ck_assert_ptr_null(d.link);
}

START_TEST(percent_encoding_is_opaque)
{
	/* not decoded: %73 is not 's', %2F is not a separator */
	assert_route(decide(4, "GET", "/query/api/squid%73/1"), "query");
	ck_assert_ptr_null(decide(4, "GET", "/query/api/squid%73/1").path);
	assert_route(decide(4, "GET", "/query/api/squids%2F1"), "query");
	assert_route(decide(4, "GET", "/query%2Fapi/squids/1"), NULL);
	assert_route(decide(4, "GET", "/%71uery/api/squids/1"), NULL);
	/* carried through a rewrite as written */
	assert_path(decide(4, "GET", "/query/api/squids/a%20b%2Fc"), "/query/api/seafoods/a%20b%2Fc");
	assert_path(decide(4, "GET", "/query/api/squids/%zz"), "/query/api/seafoods/%zz");
	/* an encoded dot segment is still a dot segment */
	assert_refused(decide(4, "GET", "/query/api/squids/%2e%2E/x"), "squids-query");
	assert_refused(decide(4, "GET", "/query/api/squids/.%2e"), "squids-query");
	assert_refused(decide(10, "GET", "/query/api/squids/%2E"), "squids-query");
}
END_TEST

START_TEST(dot_segments)
{
	/* routed as written in phases without rewrite */
	struct decision d = decide(1, "GET", "/query/api/squids/../../command/api/squids/1");

	assert_route(d, "squids-query");
	ck_assert_str_eq(d.backend, "old_query");
	ck_assert_ptr_null(d.path);
	/* never placed into a rewrite or a link */
	assert_refused(decide(4, "GET", "/query/api/squids/../../command/api/squids/1"),
		       "squids-query");
	assert_refused(decide(6, "PUT", "/command/api/squids/1/.."), "squids-command");
	assert_refused(decide(8, "GET", "/query/api/squids/./1"), "squids-query");
	assert_refused(decide(10, "GET", "/query/api/squids/.."), "squids-query");
	/* dots that are not whole segments are ordinary text */
	assert_path(decide(4, "GET", "/query/api/squids/.../x"), "/query/api/seafoods/.../x");
	assert_path(decide(4, "GET", "/query/api/squids/..x/.y"), "/query/api/seafoods/..x/.y");
	/* a dot segment where a literal is expected matches nothing special */
	assert_route(decide(4, "GET", "/query/api/../api/squids/1"), "query");
	assert_route(decide(4, "GET", "/query/./api/squids/1"), "query");
}
END_TEST

START_TEST(double_slashes)
{
	/* not collapsed: "//" is an empty segment no literal matches */
	struct decision d = decide(4, "GET", "/query//api/squids/1");

	assert_route(d, "query");
	ck_assert_str_eq(d.backend, "new_query");
	ck_assert_ptr_null(d.path);
	assert_route(decide(4, "GET", "//query/api/squids/1"), NULL);
	assert_route(decide(4, "GET", "/query/api//squids/1"), "query");
	/* after the squids segment it is captured text */
	assert_path(decide(4, "GET", "/query/api/squids//1"), "/query/api/seafoods//1");
	assert_path(decide(4, "GET", "/query/api/squids/"), "/query/api/seafoods/");
	assert_route(decide(4, "GET", "/query/"), "query");
	assert_route(decide(4, "GET", "/query"), NULL);
	assert_route(decide(4, "GET", "/"), NULL);
}
END_TEST

START_TEST(case_is_significant)
{
	assert_route(decide(4, "GET", "/QUERY/api/squids/1"), NULL);
	assert_route(decide(4, "GET", "/query/api/Squids/1"), "query");
	assert_route(decide(4, "GET", "/query/API/squids/1"), "query");
	/* methods are case-sensitive tokens; the sample's routes take any */
	assert_path(decide(4, "get", "/query/api/squids/1"), "/query/api/seafoods/1");
}
END_TEST

START_TEST(non_ascii)
{
	struct decision d = decide(1, "GET", "/query/api/squids/caf\xc3\xa9");

	assert_route(d, "squids-query");
	ck_assert_str_eq(d.backend, "old_query");
	assert_refused(decide(4, "GET", "/query/api/squids/caf\xc3\xa9"), "squids-query");
	assert_refused(decide(10, "GET", "/query/api/squids/\xff"), "squids-query");
	assert_route(decide(4, "GET", "/query/api/squ\xc3\xaf" "ds/1"), "query");
}
END_TEST

START_TEST(control_bytes_and_space)
{
	static const char *const bad[] = {
		"/query/api/squids/1\r\nX-Injected: 1", "/query/api/squids/1\n",
		"/query/api/squids/1\r", "/query/api/squids/1 HTTP/1.1",
		"/query/api/squids/\t1", "/query/api/squids/1?admin=1",
		"/query/api/squids/1#frag", "/query/api/squids/a\\b",
		"/query/api/squids/\x7f", "/query/api/squids/\x01",
		"/query/api/squids/<script>", "/query/api/squids/a\"b",
	};
	char scratch[SCRATCH];
	static const char nul[] = "/query/api/squids/1\0/x";

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_refused(decide(4, "GET", bad[i]), "squids-query");
		assert_refused(decide(11, "GET", bad[i]), "squids-query");
		/* no rewrite, no refusal: the path goes on as HAProxy gave it */
		ck_assert_str_eq(decide(1, "GET", bad[i]).backend, "old_query");
	}
	assert_refused(decide_raw(3, "GET", nul, sizeof(nul) - 1, scratch, sizeof(scratch)),
		       "squids-query");
}
END_TEST

/* With no room to write a rewrite, an unsafe one is still refused (400)
 * exactly when it is refused with room; a safe one is cut to 414. In phase
 * 4 the request's tail goes into a path, in phase 10 into a 410's link. */
START_TEST(refusal_without_room)
{
	static const char *const tails[] = {
		"", "/1", "/..", "/.", "/./x", "/../x", "/%2e%2E/x", "/%2e", "/%2E.", "/...",
		"/%2", "/%2e%", "/.%2", "/a.", "/.a", "//x", "/x/", "/x//..", "/1\r\n",
		"/caf\xc3\xa9", "/a b", "/%2e%2e", "/x/%2e%2e", "/x/.%2e/y",
	};
	static const int phase_index[] = { 3, 9 };
	char big[SCRATCH], none[1];

	for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
		char path[64];
		snprintf(path, sizeof(path), "/query/api/squids%s", tails[i]);
		for (size_t k = 0; k < 2; k++) {
			struct decision with = decide_raw(phase_index[k], "GET", path, strlen(path),
							  big, sizeof(big));
			struct decision without = decide_raw(phase_index[k], "GET", path,
							     strlen(path), none, sizeof(none));
			ck_assert_msg(with.status == 400 ? without.status == 400
							 : without.status == 414,
				      "%s in phase index %d: %u with room, %u without", path,
				      phase_index[k], with.status, without.status);
			ck_assert_ptr_null(without.backend);
			ck_assert_ptr_null(without.path);
			ck_assert_ptr_null(without.link);
		}
	}
}
END_TEST

START_TEST(long_paths)
{
	size_t len = 64 * 1024;
	char *path = malloc(len + 1), *big = malloc(2 * len);
	const char *prefix = "/query/api/squids/";
	struct decision d;
	char small[SCRATCH];

	ck_assert_ptr_nonnull(path);
	ck_assert_ptr_nonnull(big);
	memcpy(path, prefix, strlen(prefix));
	memset(path + strlen(prefix), 'a', len - strlen(prefix));
	path[len] = '\0';

	d = decide_raw(0, "GET", path, len, small, sizeof(small));
	assert_route(d, "squids-query");
	ck_assert_str_eq(d.backend, "old_query");
	/* too long for the scratch: 414, nothing rewritten */
	d = decide_raw(3, "GET", path, len, small, sizeof(small));
	assert_route(d, "squids-query");
	ck_assert_uint_eq(d.status, 414);
	ck_assert_ptr_null(d.path);
	ck_assert_ptr_null(d.backend);
	d = decide_raw(9, "GET", path, len, small, sizeof(small));
	ck_assert_uint_eq(d.status, 414);
	ck_assert_ptr_null(d.link);
	/* fits a large scratch */
	d = decide_raw(3, "GET", path, len, big, 2 * len);
	ck_assert_ptr_nonnull(d.path);
	ck_assert_uint_eq(d.path_len, len + 2);
	ck_assert_mem_eq(d.path, "/query/api/seafoods/aaa", 23);
	/* 32 Ki segments */
	for (size_t i = 0; i < len; i += 2)
		memcpy(path + i, "/q", 2);
	assert_route(decide_raw(3, "GET", path, len, small, sizeof(small)), NULL);
	memcpy(path, "/query", 6);
	assert_route(decide_raw(3, "GET", path, len, small, sizeof(small)), "query");
	free(path);
	free(big);
}
END_TEST

START_TEST(scratch_boundary)
{
	const char *want = "/query/api/seafoods/42";
	char scratch[64];
	size_t need = strlen(want) + 1;
	struct decision d;

	memset(scratch, 'x', sizeof(scratch));
	d = decide_raw(3, "GET", "/query/api/squids/42", 20, scratch, need);
	assert_path(d, want);
	ck_assert_int_eq(scratch[need - 1], '\0');
	ck_assert_int_eq(scratch[need], 'x');
	d = decide_raw(3, "GET", "/query/api/squids/42", 20, scratch, need - 1);
	ck_assert_uint_eq(d.status, 414);
	ck_assert_ptr_null(d.path);
	d = decide_raw(3, "GET", "/query/api/squids/42", 20, scratch, 0);
	ck_assert_uint_eq(d.status, 414);
}
END_TEST

START_TEST(absent_and_empty)
{
	struct route_request req = { 0 };
	struct decision d;
	char scratch[SCRATCH];

	router_decide(sample, &req, &d, scratch, sizeof(scratch));
	ck_assert_ptr_null(d.route);
	ck_assert_ptr_null(d.backend);
	ck_assert_uint_eq(d.phase, 1);
	/* no method: only routes that take every method can match */
	req.path = "/query/api/squids/1";
	req.path_len = strlen(req.path);
	router_decide(sample, &req, &d, scratch, sizeof(scratch));
	assert_route(d, "squids-query");
	assert_route(decide(4, "GET", ""), NULL);
	assert_route(decide(4, "GET", "*"), NULL);
	assert_route(decide(4, "GET", "query/api/squids/1"), NULL);
	assert_route(decide(4, "GET", "http://x/query/api/squids/1"), NULL);
	/* an out-of-range phase index means the current phase */
	d = decide_raw(99, "GET", "/query/api/squids/1", 19, scratch, sizeof(scratch));
	ck_assert_uint_eq(d.phase, 1);
	ck_assert_str_eq(d.backend, "old_query");
}
END_TEST

/* ---- a plan with methods, hosts, captures and a default backend ---- */

static struct plan *other;

static void load_other(void)
{
	char err[1024];

	other = plan_load("tests/unit/plans/valid-methods-hosts.yaml", err, sizeof(err));
	ck_assert_msg(other != NULL, "%s", err);
}

static void free_other(void)
{
	plan_free(other);
	other = NULL;
}

static struct decision ask(const char *method, const char *path, const char *host)
{
	static char scratch[SCRATCH];
	struct route_request req = request(method, path);
	struct decision d;

	req.host = host;
	req.host_len = host ? strlen(host) : 0;
	router_decide(other, &req, &d, scratch, sizeof(scratch));
	return d;
}

START_TEST(methods_select_routes)
{
	struct decision d = ask("GET", "/api/items/7", NULL);

	ck_assert_str_eq(d.phase_name, "move-writes");
	assert_route(d, "item-read");
	ck_assert_str_eq(d.backend, "new");
	assert_path(d, "/v2/items/7");
	ck_assert(!d.deprecated);
	d = ask("HEAD", "/api/items/7", NULL);
	assert_route(d, "item-read");
	d = ask("PATCH", "/api/items/7", NULL);
	assert_route(d, "item-write");
	assert_path(d, "/v2/items/7");
	ck_assert(d.deprecated);
	/* OPTIONS and lower-case tokens fit neither: the next most specific */
	assert_route(ask("OPTIONS", "/api/items/7", NULL), "api");
	assert_route(ask("get", "/api/items/7", NULL), "api");
	assert_route(ask("BREW", "/api/items/7", NULL), "api");
	assert_route(ask(NULL, "/api/items/7", NULL), "api");
}
END_TEST

START_TEST(most_specific_wins)
{
	struct decision d = ask("GET", "/api/items/new", NULL);

	assert_route(d, "item-new");
	ck_assert_uint_eq(d.status, 410);
	ck_assert_ptr_nonnull(d.link);
	ck_assert_mem_eq(d.link, "/v2/items", d.link_len);
	assert_route(ask("GET", "/api/items/7/x", NULL), "api");
	assert_route(ask("GET", "/api/items", NULL), "api");
	assert_route(ask("GET", "/api/items/", NULL), "api");
	assert_route(ask("GET", "/api/", NULL), "api");
	d = ask("GET", "/api", NULL);
	assert_route(d, "api-root");
	ck_assert_uint_eq(d.status, 404);
	ck_assert_ptr_null(d.backend);
	assert_route(ask("GET", "/apix", NULL), NULL);
}
END_TEST

START_TEST(hosts)
{
	assert_route(ask("GET", "/api/x", "admin.example.com"), "admin-api");
	assert_route(ask("GET", "/api/x", "ADMIN.Example.COM"), "admin-api");
	assert_route(ask("GET", "/api/x", "admin.example.com:8443"), "admin-api");
	assert_route(ask("GET", "/api/x", "admin.example.com."), "api");
	assert_route(ask("GET", "/api/x", "www.example.com"), "api");
	assert_route(ask("GET", "/api/x", "admin.example.co"), "api");
	assert_route(ask("GET", "/api/x", NULL), "api");
	/* a more specific path beats a host match */
	assert_route(ask("GET", "/api/items/1", "admin.example.com"), "item-read");
}
END_TEST

START_TEST(default_backend)
{
	struct decision d = ask("GET", "/elsewhere", NULL);

	ck_assert_ptr_null(d.route);
	ck_assert_int_eq(d.route_index, -1);
	ck_assert_str_eq(d.backend, "web");
	ck_assert_uint_eq(d.status, 0);
	ck_assert_uint_eq(d.phase, 30);
}
END_TEST

/* Literal first, then capture: a failed literal branch falls back. */
START_TEST(backtracking)
{
	static const char text[] =
		"phase: 1\nbackends: [a, b, c]\nroutes:\n"
		"  - {name: lit, path: /x/lit/end}\n"
		"  - {name: cap, path: \"/x/{id}/other\"}\n"
		"  - {name: deep, path: \"/x/{id}/{sub}/{rest...}\"}\n"
		"phases:\n  - number: 1\n    name: one\n    routes:\n"
		"      lit: a\n"
		"      cap: {backend: b, rewrite: \"/y/{id}\"}\n"
		"      deep: {backend: c, rewrite: \"/z/{sub}/{id}/{rest}\"}\n";
	char err[1024];
	struct plan *p = plan_load_buffer("bt.yaml", text, sizeof(text) - 1, err, sizeof(err));
	struct decision d;

	ck_assert_msg(p != NULL, "%s", err);
	d = get_on(p, "/x/lit/other");
	assert_route(d, "cap");
	assert_path(d, "/y/lit");
	d = get_on(p, "/x/lit/end");
	assert_route(d, "lit");
	d = get_on(p, "/x/1/2/3/4");
	assert_route(d, "deep");
	assert_path(d, "/z/2/1/3/4");
	d = get_on(p, "/x/1/2/");
	assert_path(d, "/z/2/1/");
	d = get_on(p, "/x/1/2");
	assert_route(d, NULL);
	plan_free(p);
}
END_TEST

/* 1000 routes: each request still finds its own. */
START_TEST(thousand_routes)
{
	size_t cap = 256 * 1024, n = 0;
	char *text = malloc(cap), err[1024], path[64], want[64];
	struct plan *p;

	ck_assert_ptr_nonnull(text);
	n += (size_t)snprintf(text + n, cap - n, "phase: 2\nbackends: [a, b]\nroutes:\n");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(text + n, cap - n,
				      "  - {name: r%d, path: \"/svc%d/items/{id}\"}\n", i, i);
	n += (size_t)snprintf(text + n, cap - n, "phases:\n  - number: 1\n    name: one\n"
						 "    routes:\n");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(text + n, cap - n, "      r%d: a\n", i);
	n += (size_t)snprintf(text + n, cap - n, "  - number: 2\n    name: two\n    routes:\n");
	for (int i = 0; i < 1000; i += 2)
		n += (size_t)snprintf(text + n, cap - n,
				      "      r%d: {backend: b, rewrite: \"/v%d/{id}\"}\n", i, i);
	ck_assert_uint_lt(n, cap);
	p = plan_load_buffer("many.yaml", text, n, err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	for (int i = 0; i < 1000; i++) {
		struct decision d;

		snprintf(path, sizeof(path), "/svc%d/items/%d", i, i * 7);
		d = get_on(p, path);
		ck_assert_int_eq(d.route_index, i);
		ck_assert_str_eq(d.backend, i % 2 ? "a" : "b");
		if (i % 2 == 0) {
			snprintf(want, sizeof(want), "/v%d/%d", i, i * 7);
			assert_path(d, want);
		}
	}
	plan_free(p);
	free(text);
}
END_TEST

/* One node with 1,000 literal children (looked up by hash): each finds its
 * own route; near misses of a literal (longer, shorter, other case, same
 * length) fall to the capture sibling; a literal whose subtree has no
 * match gives way to the capture, too. */
START_TEST(wide_node)
{
	size_t cap = 256 * 1024, n = 0;
	char *text = malloc(cap), err[1024], path[64], want[16];
	static const char *const to_capture[] = {
		"/w/k1000", "/w/k", "/w/K5", "/w/k5x", "/w/k05", "/w/x999", "/w/k99 ",
	};
	struct decision d;
	struct plan *p;

	ck_assert_ptr_nonnull(text);
	n += (size_t)snprintf(text + n, cap - n, "phase: 1\nbackends: [a, b]\nroutes:\n"
			      "  - {name: deep, path: /w/k7/more}\n"
			      "  - {name: cap, path: \"/w/{id}/x\"}\n"
			      "  - {name: any, path: \"/w/{id}\"}\n");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(text + n, cap - n, "  - {name: r%d, path: /w/k%d}\n", i, i);
	n += (size_t)snprintf(text + n, cap - n, "phases:\n  - number: 1\n    name: one\n"
			      "    routes:\n      deep: b\n      cap: b\n      any: b\n");
	for (int i = 0; i < 1000; i++)
		n += (size_t)snprintf(text + n, cap - n, "      r%d: a\n", i);
	ck_assert_uint_lt(n, cap);
	p = plan_load_buffer("wide.yaml", text, n, err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	for (int i = 0; i < 1000; i++) {
		snprintf(path, sizeof(path), "/w/k%d", i);
		snprintf(want, sizeof(want), "r%d", i);
		d = get_on(p, path);
		assert_route(d, want);
		ck_assert_str_eq(d.backend, "a");
	}
	for (size_t i = 0; i < sizeof(to_capture) / sizeof(to_capture[0]); i++) {
		d = get_on(p, to_capture[i]);
		assert_route(d, "any");
	}
	d = get_on(p, "/w/k5/x");
	assert_route(d, "cap");
	d = get_on(p, "/w/k7/more");
	assert_route(d, "deep");
	d = get_on(p, "/w/k7/mor");
	assert_route(d, NULL);
	plan_free(p);
	free(text);
}
END_TEST

static Suite *router_suite(void)
{
	Suite *s = suite_create("router");
	TCase *tc = tcase_create("design-table");

	tcase_add_unchecked_fixture(tc, load_sample, free_sample);
	tcase_add_loop_test(tc, design_table, 0, 12 * NFAMILIES);
	tcase_add_loop_test(tc, current_phase_routes, 0, 12);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile-paths");
	tcase_add_unchecked_fixture(tc, load_sample, free_sample);
	tcase_add_test(tc, percent_encoding_is_opaque);
	tcase_add_test(tc, dot_segments);
	tcase_add_test(tc, double_slashes);
	tcase_add_test(tc, case_is_significant);
	tcase_add_test(tc, non_ascii);
	tcase_add_test(tc, control_bytes_and_space);
	tcase_add_test(tc, long_paths);
	tcase_add_test(tc, scratch_boundary);
	tcase_add_test(tc, refusal_without_room);
	tcase_add_test(tc, absent_and_empty);
	suite_add_tcase(s, tc);

	tc = tcase_create("matching");
	tcase_add_unchecked_fixture(tc, load_other, free_other);
	tcase_add_test(tc, methods_select_routes);
	tcase_add_test(tc, most_specific_wins);
	tcase_add_test(tc, hosts);
	tcase_add_test(tc, default_backend);
	tcase_add_test(tc, backtracking);
	tcase_add_test(tc, thousand_routes);
	tcase_add_test(tc, wide_node);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(router_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
