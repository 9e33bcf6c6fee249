/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for the fallback compiler (fallback.c, fallback_file.c): the
 * map's exact text for a fixture with every kind of entry, the sample plan's
 * order of precedence at one phase, and the atomic write. What HAProxy does
 * with the map is tests/parity's job. Runs from the source root. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_decide_wire.h"
#include "decide.h"
#include "explain.h"
#include "fallback.h"
#include "fallback_file.h"
#include "plan.h"

#define SMALL "tests/unit/fallback/small.yaml"
#define SAMPLE "tests/unit/plans/sample.yaml" /* a copy of the sample plan of our own */

static struct plan *load(const char *file)
{
	char err[1024];
	struct plan *p = plan_load(file, err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	return p;
}

/* The map as a string (caller frees). */
static char *map_text(const struct plan *p, int *entries)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(f);
	*entries = fallback_write_map(p, f);
	fclose(f);
	return text;
}

START_TEST(small_plan_map)
{
	struct plan *p = load(SMALL);
	int n;
	char *text = map_text(p, &n);

	ck_assert_int_eq(n, 7);
	ck_assert_str_eq(text,
		"# cutover fallback map, written by cutover-spoa from " SMALL ": phase 30 (later).\n"
		"# Do not edit: the agent rewrites it for every plan it accepts.\n"
		"# key <method> <host> <path>; value phase|route|backend|status|deprecated|"
		"path-or-link\n"
		/* mid-path capture before the tail of its prefix; reads, then writes */
		"^(?:GET|HEAD)\\x20[^\\x20]*\\x20/api/items/([^/]+)/photos$ "
		"30|item-photos|new||@1796083200|/v2/images/\\1\n"
		"^(?:POST|PUT|PATCH|DELETE)\\x20[^\\x20]*\\x20/api/items/([^/]+)/photos$ "
		"30|item-photos-write||410||/v2/images/\\1/w\n"
		/* the glued tail's group always takes part, so \1 is never unset */
		"^[^\\x20]+\\x20[^\\x20]*\\x20/api/items(|/.*)$ 30|items|new|||/v2/items\\1\n"
		/* regex syntax in a literal is escaped */
		"^[^\\x20]+\\x20[^\\x20]*\\x20/api/items\\(1\\)\\.x$ 30|exact||404||\n"
		/* a host route before the same shape for any host; host lowercased;
		 * an unused capture gets no group */
		"^[^\\x20]+\\x20admin\\.example\\x20/api/(?:.*)$ 30|admin|admin|||\n"
		"^[^\\x20]+\\x20[^\\x20]*\\x20/api/(?:.*)$ 30|any-api|old|||\n"
		/* no route: the default backend */
		"^ 30||old|||\n");
	free(text);
	plan_free(p);
}
END_TEST

/* The sample plan at phase 10: the specific squids/seafoods routes come
 * before their /query/ and /command/ parents (the hand-written fallback got
 * this wrong), and no default backend. */
START_TEST(sample_plan_order)
{
	FILE *f = fopen(SAMPLE, "rb");
	char data[16384], edited[16400], err[1024];
	size_t len;
	char *at;

	ck_assert_ptr_nonnull(f);
	len = fread(data, 1, sizeof(data) - 1, f);
	fclose(f);
	data[len] = '\0';
	at = strstr(data, "\nphase: 1\n");
	ck_assert_ptr_nonnull(at);
	*at = '\0';
	len = (size_t)snprintf(edited, sizeof(edited), "%s\nphase: 10\n%s", data,
			       at + strlen("\nphase: 1\n"));
	struct plan *p = plan_load_buffer(SAMPLE, edited, len, err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);

	int n;
	char *text = map_text(p, &n);
	const char *body = strstr(text, "\n^");

	ck_assert_int_eq(n, 7);
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(body + 1,
		"^[^\\x20]+\\x20[^\\x20]*\\x20/query/api/squids(|/.*)$ "
		"10|squids-query||410||/query/api/seafoods\\1\n"
		"^[^\\x20]+\\x20[^\\x20]*\\x20/query/api/seafoods(?:|/.*)$ "
		"10|seafoods-query|new_query|||\n"
		"^[^\\x20]+\\x20[^\\x20]*\\x20/query/(?:.*)$ 10|query|new_query|||\n"
		"^[^\\x20]+\\x20[^\\x20]*\\x20/command/api/squids(|/.*)$ "
		"10|squids-command||410||/command/api/seafoods\\1\n"
		"^[^\\x20]+\\x20[^\\x20]*\\x20/command/api/seafoods(?:|/.*)$ "
		"10|seafoods-command|new_command|||\n"
		"^[^\\x20]+\\x20[^\\x20]*\\x20/command/(?:.*)$ 10|command|new_command|||\n"
		"^ 10|||||\n");
	free(text);
	plan_free(p);
}
END_TEST

START_TEST(write_error_reported)
{
	struct plan *p = load(SMALL);
	FILE *f = fopen("/dev/full", "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fallback_write_map(p, f), -1);
	fclose(f);
	plan_free(p);
}
END_TEST

/* The directory holds exactly the map afterwards, readable by all, with the
 * same text as fallback_write_map; writing again replaces it. */
START_TEST(write_dir_atomic)
{
	char dir[] = "/tmp/check_fallback.XXXXXX", path[256], err[512];
	struct plan *p = load(SMALL);
	struct stat st;
	int n;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (int round = 0; round < 2; round++)
		ck_assert_msg(fallback_write_dir(p, dir, err, sizeof(err)), "%s", err);
	snprintf(path, sizeof(path), "%s/%s", dir, FALLBACK_MAP_FILE);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0644);

	DIR *d = opendir(dir);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d)))
		files += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	ck_assert_int_eq(files, 1);

	char *want = map_text(p, &n), got[8192];
	FILE *f = fopen(path, "rb");
	size_t len = fread(got, 1, sizeof(got) - 1, f);
	fclose(f);
	got[len] = '\0';
	ck_assert_str_eq(got, want);
	free(want);
	unlink(path);
	rmdir(dir);
	plan_free(p);
}
END_TEST

START_TEST(write_dir_missing)
{
	struct plan *p = load(SMALL);
	char err[512];

	ck_assert(!fallback_write_dir(p, "/nonexistent/cutover", err, sizeof(err)));
	ck_assert_str_eq(err, "/nonexistent/cutover: cannot create a file there: "
			      "No such file or directory");
	plan_free(p);
}
END_TEST

/* A stream whose text the test reads back (caller frees). */
struct capture {
	char *text;
	size_t len;
	FILE *f;
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

/* --check --haproxy-config names each plan backend HAProxy lacks. */
START_TEST(check_haproxy_missing_backend)
{
	struct capture out, err;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_check_haproxy(SMALL, "tests/unit/fallback/haproxy-partial.cfg", out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 1);
	ck_assert_str_eq(e, "tests/unit/fallback/haproxy-partial.cfg: no 'backend cutover_admin' "
			    "for plan backend 'admin': HAProxy would answer 503 for every request "
			    "sent there\n");
	ck_assert_ptr_nonnull(strstr(o, "plan is valid"));
	free(o);
	free(e);
}
END_TEST

/* The shipped HAProxy configuration has every backend of the sample plan. */
START_TEST(check_haproxy_sample)
{
	struct capture out, err;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_check_haproxy(SAMPLE, "haproxy/haproxy.cfg", out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_str_eq(e, "");
	ck_assert_int_eq(rc, 0);
	ck_assert_ptr_nonnull(strstr(o, "  haproxy:  haproxy/haproxy.cfg has a backend "
				       "cutover_<name> for each of the 4\n"));
	free(o);
	free(e);
}
END_TEST

/* --explain --host: host routes can be explained; the port is ignored. */
START_TEST(explain_with_host)
{
	struct capture out, err;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_request_host(SMALL, "GET", "/api/x", "ADMIN.example:8080", NULL, 0, out.f,
				  err.f);
	rc += explain_request_host(SMALL, "GET", "/api/x", "other.example", NULL, 0, out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(e, "");
	ck_assert_str_eq(o, "GET /api/x host ADMIN.example:8080\n"
			    "* phase 30 later                    route admin -> backend admin\n"
			    "GET /api/x host other.example\n"
			    "* phase 30 later                    route any-api -> backend old\n");
	free(o);
	free(e);
}
END_TEST

/* --explain --json: one object per phase; absent facts are null; a quote
 * in the path is escaped. */
START_TEST(explain_json)
{
	struct capture out, err;
	int rc;

	capture_open(&out);
	capture_open(&err);
	rc = explain_request_as(SMALL, "GET", "/api/items/7/photos", NULL, NULL, 1, true, out.f,
				err.f);
	rc += explain_request_as(SMALL, "GET", "/api/\"x", "h", "start", 0, true, out.f, err.f);
	char *o = capture_close(&out), *e = capture_close(&err);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(e, "");
	ck_assert_str_eq(o,
		"{\"method\": \"GET\", \"path\": \"/api/items/7/photos\", \"host\": null, "
		"\"decisions\": [\n"
		"  {\"phase\": 10, \"phase_name\": \"start\", \"current\": false, "
		"\"route\": \"item-photos\", \"backend\": \"old\", \"status\": null, "
		"\"path\": null, \"link\": null, \"deprecated\": false, \"deprecation\": null, "
		"\"sunset\": null, \"policy\": null, \"past_sunset\": false},\n"
		"  {\"phase\": 30, \"phase_name\": \"later\", \"current\": true, "
		"\"route\": \"item-photos\", \"backend\": \"new\", \"status\": null, "
		"\"path\": \"/v2/images/7\", \"link\": null, \"deprecated\": true, "
		"\"deprecation\": \"@1796083200\", \"sunset\": \"Thu, 31 Dec 2099 00:00:00 GMT\", "
		"\"policy\": \"https://example.test/deprecation\", \"past_sunset\": false}]}\n"
		"{\"method\": \"GET\", \"path\": \"/api/\\\"x\", \"host\": \"h\", "
		"\"decisions\": [\n"
		"  {\"phase\": 10, \"phase_name\": \"start\", \"current\": false, "
		"\"route\": \"any-api\", \"backend\": \"old\", \"status\": null, "
		"\"path\": null, \"link\": null, \"deprecated\": false, \"deprecation\": null, "
		"\"sunset\": null, \"policy\": null, \"past_sunset\": false}]}\n");
	free(o);
	free(e);
}
END_TEST

/* --check --json: phases in plan order, the current one, or the error. */
START_TEST(check_json)
{
	struct capture out;

	capture_open(&out);
	ck_assert_int_eq(explain_check_json(SMALL, out.f), 0);
	char *o = capture_close(&out);
	ck_assert_str_eq(o,
		"{\"valid\": true, \"file\": \"" SMALL "\", \"current\": {\"index\": 1, "
		"\"number\": 30, \"name\": \"later\"},\n"
		" \"phases\": [\n"
		"  {\"number\": 10, \"name\": \"start\", \"description\": null},\n"
		"  {\"number\": 30, \"name\": \"later\", \"description\": null}],\n"
		" \"routes\": [{\"name\": \"items\", \"path\": \"/api/items{rest...}\"}, "
		"{\"name\": \"item-photos\", \"path\": \"/api/items/{id}/photos\"}, "
		"{\"name\": \"item-photos-write\", \"path\": \"/api/items/{id}/photos\"}, "
		"{\"name\": \"admin\", \"path\": \"/api/{rest...}\"}, "
		"{\"name\": \"any-api\", \"path\": \"/api/{rest...}\"}, "
		"{\"name\": \"exact\", \"path\": \"/api/items(1).x\"}],\n"
		" \"backends\": [\"old\", \"new\", \"admin\"], \"default_backend\": \"old\"}\n");
	free(o);

	capture_open(&out);
	ck_assert_int_eq(explain_check_json("tests/unit/fallback/bad.yaml", out.f), 1);
	o = capture_close(&out);
	ck_assert_str_eq(o, "{\"valid\": false, \"error\": \"tests/unit/fallback/bad.yaml:"
			    "11:10: unknown backend 'b'\"}\n");
	free(o);
}
END_TEST

/* What the agent answers to method path (small.yaml's current phase) in a
 * NOTIFY with ids of the largest size, within its own max-frame-size: true
 * when it answers 414 because the rewrite or link does not fit. */
static bool agent_answers_414(const struct plan *p, const char *method, const char *path)
{
	static struct decider dc;
	static uint8_t payload[FRAME_AGENT_MAX_SIZE + 64], out[FRAME_LEN_SIZE + FRAME_AGENT_MAX_SIZE];
	struct wire_notify w = { payload, payload + sizeof(payload), false };
	struct answer a;
	unsigned status;

	wire_message(&w, "cutover", 2);
	wire_arg_string(&w, "method", method, strlen(method));
	wire_arg_string(&w, "path", path, strlen(path));
	ck_assert(!w.failed);
	struct frame f = { .type = FRAME_NOTIFY, .flags = FRAME_FLAG_FIN, .stream_id = UINT64_MAX,
			   .frame_id = UINT64_MAX, .payload = payload,
			   .payload_len = (size_t)(w.p - payload) };
	decider_init(&dc, p);
	ck_assert_int_gt(decide_notify(&dc, &f, FRAME_AGENT_MAX_SIZE, out, sizeof(out), &a,
				       &status), 0);
	return a.d.status == 414;
}

/* --explain's answer to method path at the current phase, as JSON. */
static char *explain_json_of(const char *method, const char *path)
{
	struct capture out, err;

	capture_open(&out);
	capture_open(&err);
	ck_assert_int_eq(explain_request_as(SMALL, method, path, NULL, NULL, 0, true, out.f,
					    err.f), 0);
	free(capture_close(&err));
	return capture_close(&out);
}

/* --explain decides within the agent's own limits: at the longest path
 * whose rewrite (or 410 link) the agent still sends, --explain shows it;
 * one byte longer, the agent answers 414 and so does --explain. */
START_TEST(explain_uses_the_agents_limits)
{
	static const char *method[] = { "GET", "POST" }; /* rewrite; link */
	static char path[FRAME_AGENT_MAX_SIZE + 1];
	struct plan *p = load(SMALL);
	size_t id = 16000;

	for (;; id++) {
		ck_assert_uint_lt(id + 20, sizeof(path));
		memcpy(path, "/api/items/", 11);
		memset(path + 11, 'x', id);
		memcpy(path + 11 + id, "/photos", 8);
		if (agent_answers_414(p, method[_i], path))
			break;
	}
	char *at = explain_json_of(method[_i], path);
	path[11 + id - 1] = '\0';
	strcat(path, "/photos");
	ck_assert(!agent_answers_414(p, method[_i], path));
	char *below = explain_json_of(method[_i], path);
	ck_assert_msg(strstr(at, "\"status\": 414, \"path\": null, \"link\": null"), "%.200s", at);
	ck_assert_msg(strstr(below, "\"status\": 414") == NULL, "%.200s", below);
	ck_assert_ptr_nonnull(strstr(below, _i ? "\"link\": \"/v2/images/xxx" :
					     "\"path\": \"/v2/images/xxx"));
	free(at);
	free(below);
	plan_free(p);
}
END_TEST

static Suite *fallback_suite(void)
{
	Suite *s = suite_create("fallback");
	TCase *tc = tcase_create("map");

	tcase_add_test(tc, small_plan_map);
	tcase_add_test(tc, sample_plan_order);
	tcase_add_test(tc, write_error_reported);
	tcase_add_test(tc, write_dir_atomic);
	tcase_add_test(tc, write_dir_missing);
	tcase_add_test(tc, check_haproxy_missing_backend);
	tcase_add_test(tc, check_haproxy_sample);
	tcase_add_test(tc, explain_with_host);
	tcase_add_test(tc, explain_json);
	tcase_add_test(tc, check_json);
	tcase_add_loop_test(tc, explain_uses_the_agents_limits, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fallback_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
