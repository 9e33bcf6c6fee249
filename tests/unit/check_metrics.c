/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for metrics.c: decisions counted per plan and folded into
 * name-keyed totals on a swap, the totals' cap and the overflow series, the
 * histogram's buckets, and the facts pushed by the main thread, all read
 * back from the rendered page. Each test runs in its own process (Check's
 * fork mode), so metrics' process-wide state starts empty. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "plan.h"
#include "router.h"

#define PLAN_AT(phase)                                                     \
	"phase: " phase "\n"                                                 \
	"backends: [a, b]\n"                                                 \
	"default_backend: b\n"                                               \
	"routes:\n"                                                          \
	"  - name: grow\n    path: /g/{rest...}\n"                           \
	"  - name: nf\n    path: /nf\n"                                      \
	"phases:\n"                                                          \
	"  - number: 1\n    name: one\n    routes:\n"                        \
	"      grow: { backend: a, rewrite: \"/x/{rest}\" }\n"               \
	"      nf: { status: 404 }\n"                                        \
	"  - number: 7\n    name: seven\n    routes:\n"                      \
	"      grow: b\n"

static struct plan *load(const char *text)
{
	char err[512];
	struct plan *p = plan_load_buffer("t.yaml", text, strlen(text), err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	return p;
}

static void decide(struct metrics_worker *m, const struct plan *p, const char *path,
		   uint64_t ns)
{
	static char scratch[256];
	struct route_request req = { .method = "GET", .method_len = 3, .path = path,
				     .path_len = strlen(path) };
	struct decision d;

	router_decide(p, &req, &d, scratch, sizeof(scratch));
	metrics_decision(m, &d, ns);
}

static char *page(void)
{
	size_t len;
	char *text = metrics_render(&len);

	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(strlen(text), len);
	return text;
}

/* The page has this exact line. */
static void has(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *at = text; (at = strstr(at, line)) != NULL; at += n)
		if ((at == text || at[-1] == '\n') && at[n] == '\n')
			return;
	ck_abort_msg("no line \"%s\" in:\n%.2000s", line, text);
}

static void lacks(const char *text, const char *part)
{
	ck_assert_msg(strstr(text, part) == NULL, "\"%s\" should not be in:\n%.2000s", part,
		      text);
}

START_TEST(decisions_by_route_backend_and_status)
{
	struct plan *p = load(PLAN_AT("1"));
	struct metrics_worker *m = metrics_worker_new();
	char long_path[300];

	memset(long_path, 'x', sizeof(long_path) - 1);
	memcpy(long_path, "/g/", 3);
	long_path[sizeof(long_path) - 1] = '\0';
	metrics_bind_plan(m, p);
	decide(m, p, "/g/1", 1);
	decide(m, p, "/g/2", 1);
	decide(m, p, "/g/%2e%2e", 1);   /* rewrite refused: 400 */
	decide(m, p, long_path, 1);     /* rewrite over the scratch: 414 */
	decide(m, p, "/nf", 1);
	decide(m, p, "/elsewhere", 1);  /* default backend */
	char *t = page();
	has(t, "cutover_decisions_total{phase=\"1\",route=\"grow\",backend=\"a\",status=\"\"} 2");
	has(t, "cutover_decisions_total{phase=\"1\",route=\"grow\",backend=\"\",status=\"400\"} 1");
	has(t, "cutover_decisions_total{phase=\"1\",route=\"grow\",backend=\"\",status=\"414\"} 1");
	has(t, "cutover_decisions_total{phase=\"1\",route=\"nf\",backend=\"\",status=\"404\"} 1");
	has(t, "cutover_decisions_total{phase=\"1\",route=\"\",backend=\"b\",status=\"\"} 1");
	has(t, "cutover_decisions_overflow_total 0");
	free(t);
	metrics_bind_plan(m, NULL);
	plan_free(p);
}
END_TEST

START_TEST(swap_folds_into_totals_by_name)
{
	struct plan *p1 = load(PLAN_AT("1")), *p7 = load(PLAN_AT("7")), *again = load(PLAN_AT("1"));
	struct metrics_worker *w1 = metrics_worker_new(), *w2 = metrics_worker_new();

	metrics_bind_plan(w1, p1);
	metrics_bind_plan(w2, p1);
	decide(w1, p1, "/g/1", 1);
	decide(w2, p1, "/g/1", 1);
	metrics_bind_plan(w1, p7); /* w2 stays on p1: its counts stay live */
	decide(w1, p7, "/g/1", 1);
	decide(w1, p7, "/g/1", 1);
	decide(w1, p7, "/g/1", 1);
	metrics_bind_plan(w1, again); /* the same names as p1: they add up */
	decide(w1, again, "/g/1", 1);
	char *t = page();
	has(t, "cutover_decisions_total{phase=\"1\",route=\"grow\",backend=\"a\",status=\"\"} 3");
	has(t, "cutover_decisions_total{phase=\"7\",route=\"grow\",backend=\"b\",status=\"\"} 3");
	free(t);
	metrics_bind_plan(w2, NULL);
	metrics_bind_plan(w1, NULL);
	t = page();
	has(t, "cutover_decisions_total{phase=\"1\",route=\"grow\",backend=\"a\",status=\"\"} 3");
	has(t, "cutover_decisions_total{phase=\"7\",route=\"grow\",backend=\"b\",status=\"\"} 3");
	free(t);
	plan_free(p1);
	plan_free(p7);
	plan_free(again);
}
END_TEST

/* A route split 30/70 between clients: decisions by side, with the old
 * side's backend in cutover_decisions_total, live and after a swap; an
 * unsplit route has no split series. Sides come from the router. */
START_TEST(split_decisions_by_side)
{
	static const char yaml[] =
		"phase: 2\nclients: { key: X-Api-Client, salt: s }\nbackends: [a, b]\n"
		"routes:\n  - { name: r, path: /r }\n  - { name: u, path: /u }\n"
		"phases:\n  - { number: 1, name: one, routes: { r: a, u: a } }\n"
		"  - { number: 2, name: two, routes: { r: { backend: b, percent: 30 } } }\n";
	static char scratch[256];
	struct plan *p = load(yaml);
	struct metrics_worker *m = metrics_worker_new();
	unsigned sides[3] = { 0 };
	char line[160];

	metrics_bind_plan(m, p);
	for (int i = 0; i < 500; i++) {
		char key[16];
		struct route_request req = { .method = "GET", .method_len = 3,
					     .path = i < 400 ? "/r" : "/u", .path_len = 2,
					     .client = key };
		struct decision d;

		req.client_len = (size_t)snprintf(key, sizeof(key), "client-%d", i);
		router_decide(p, &req, &d, scratch, sizeof(scratch));
		metrics_decision(m, &d, 1);
		sides[d.side]++;
	}
	ck_assert_uint_eq(sides[SIDE_NONE], 100);
	ck_assert_uint_eq(sides[SIDE_NEW] + sides[SIDE_OLD], 400);
	ck_assert_msg(sides[SIDE_NEW] > 90 && sides[SIDE_NEW] < 150, "%u on new", sides[SIDE_NEW]);
	for (int swapped = 0; swapped < 2; swapped++) {
		char *t = page();
		snprintf(line, sizeof(line),
			 "cutover_split_decisions_total{phase=\"2\",route=\"r\",side=\"new\"} %u",
			 sides[SIDE_NEW]);
		has(t, line);
		snprintf(line, sizeof(line),
			 "cutover_split_decisions_total{phase=\"2\",route=\"r\",side=\"old\"} %u",
			 sides[SIDE_OLD]);
		has(t, line);
		snprintf(line, sizeof(line),
			 "cutover_decisions_total{phase=\"2\",route=\"r\",backend=\"b\",status=\"\"} %u",
			 sides[SIDE_NEW]);
		has(t, line);
		snprintf(line, sizeof(line),
			 "cutover_decisions_total{phase=\"2\",route=\"r\",backend=\"a\",status=\"\"} %u",
			 sides[SIDE_OLD]);
		has(t, line);
		lacks(t, "route=\"u\",side=");
		free(t);
		metrics_bind_plan(m, NULL); /* the second round reads the totals */
	}
	plan_free(p);
}
END_TEST

/* A plan of n routes /r<i> -> a, in a phase numbered number. */
static struct plan *wide(int n, unsigned number)
{
	size_t cap = (size_t)n * 64 + 256, len = 0;
	char *text = malloc(cap);

	ck_assert_ptr_nonnull(text);
	len += (size_t)snprintf(text + len, cap - len, "phase: %u\nbackends: [a]\nroutes:\n", number);
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "  - {name: r%d, path: /r%d}\n", i, i);
	len += (size_t)snprintf(text + len, cap - len,
				"phases:\n  - number: %u\n    name: p\n    routes:\n", number);
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len, "      r%d: a\n", i);
	struct plan *p = load(text);
	free(text);
	return p;
}

static size_t count_lines(const char *text, const char *prefix)
{
	size_t n = 0, plen = strlen(prefix);

	for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
		n += strncmp(line, prefix, plen) == 0;
		if (!strchr(line, '\n'))
			break;
	}
	return n;
}

START_TEST(totals_are_capped_and_the_rest_is_overflow)
{
	const int routes = 1000;
	const unsigned plans = METRICS_TOTALS_MAX / 1000 + 2;
	struct metrics_worker *m = metrics_worker_new();
	struct plan *held = NULL;
	char path[32];

	for (unsigned k = 1; k <= plans; k++) {
		struct plan *p = wide(routes, k);
		metrics_bind_plan(m, p);
		plan_free(held);
		held = p;
		for (int i = 0; i < routes; i++) {
			snprintf(path, sizeof(path), "/r%d", i);
			decide(m, p, path, 1);
		}
	}
	char *t = page();
	char want[64];
	snprintf(want, sizeof(want), "cutover_decisions_overflow_total %u",
		 (plans - 1) * routes - METRICS_TOTALS_MAX);
	has(t, want);
	ck_assert_uint_eq(count_lines(t, "cutover_decisions_total{"),
			  (size_t)METRICS_TOTALS_MAX + (size_t)routes);
	free(t);
	metrics_bind_plan(m, NULL);
	plan_free(held);
}
END_TEST

START_TEST(unbound_decisions_are_overflow)
{
	struct plan *p = load(PLAN_AT("1"));
	struct metrics_worker *m = metrics_worker_new();

	decide(m, p, "/g/1", 1);
	char *t = page();
	has(t, "cutover_decisions_overflow_total 1");
	lacks(t, "cutover_decisions_total{");
	has(t, "cutover_decision_duration_seconds_count 1");
	free(t);
	plan_free(p);
}
END_TEST

START_TEST(histogram_buckets)
{
	struct plan *p = load(PLAN_AT("1"));
	struct metrics_worker *m = metrics_worker_new();

	metrics_bind_plan(m, p);
	decide(m, p, "/g/1", 250);      /* on the first bound: inside it */
	decide(m, p, "/g/1", 251);
	decide(m, p, "/g/1", 1000000);  /* 1 ms, the last finite bound */
	decide(m, p, "/g/1", 3000000);  /* only +Inf */
	char *t = page();
	has(t, "cutover_decision_duration_seconds_bucket{le=\"2.5e-07\"} 1");
	has(t, "cutover_decision_duration_seconds_bucket{le=\"5e-07\"} 2");
	has(t, "cutover_decision_duration_seconds_bucket{le=\"0.0001\"} 2");
	has(t, "cutover_decision_duration_seconds_bucket{le=\"0.001\"} 3");
	has(t, "cutover_decision_duration_seconds_bucket{le=\"+Inf\"} 4");
	has(t, "cutover_decision_duration_seconds_count 4");
	has(t, "cutover_decision_duration_seconds_sum 0.004000501");
	free(t);
	metrics_bind_plan(m, NULL);
	plan_free(p);
}
END_TEST

START_TEST(facts_from_the_main_thread)
{
	struct plan *p1 = load(PLAN_AT("1")), *p7 = load(PLAN_AT("7"));
	char line[160];

	metrics_set_version("9.9-test", "9.9-test-1-gabc");
	ck_assert(!metrics_ready());
	metrics_plan_applied(p1, false, 100.5);
	ck_assert(!metrics_ready());
	metrics_set_listening();
	ck_assert(metrics_ready());
	char *t = page();
	has(t, "cutover_build_info{version=\"9.9-test\",revision=\"9.9-test-1-gabc\"} 1");
	snprintf(line, sizeof(line), "cutover_plan_info{hash=\"%s\",generation=\"1\"} 1",
		 plan_hash(p1));
	has(t, line);
	has(t, "cutover_phase_desired 1");
	has(t, "cutover_phase_effective 1");
	has(t, "cutover_plan_reloads_total{result=\"accepted\"} 0");
	has(t, "cutover_plan_last_reload_success 1");
	has(t, "cutover_plan_last_reload_timestamp_seconds 100.500");
	free(t);

	metrics_plan_rejected(200.25);
	t = page();
	has(t, "cutover_plan_reloads_total{result=\"rejected\"} 1");
	has(t, "cutover_plan_last_reload_success 0");
	has(t, "cutover_plan_last_reload_timestamp_seconds 200.250");
	has(t, line); /* the plan in force did not change */
	free(t);

	metrics_plan_applied(p7, true, 300);
	t = page();
	snprintf(line, sizeof(line), "cutover_plan_info{hash=\"%s\",generation=\"2\"} 1",
		 plan_hash(p7));
	has(t, line);
	has(t, "cutover_phase_effective 7");
	has(t, "cutover_plan_reloads_total{result=\"accepted\"} 1");
	has(t, "cutover_plan_last_reload_success 1");
	free(t);
	ck_assert_str_ne(plan_hash(p1), plan_hash(p7));
	plan_free(p1);
	plan_free(p7);
}
END_TEST

START_TEST(frames_connections_and_errors)
{
	struct metrics_worker *m = metrics_worker_new();

	metrics_frame(m, METRICS_FRAME_NOTIFY);
	metrics_frame(m, METRICS_FRAME_ACK);
	metrics_frame(m, METRICS_FRAME_ACK);
	metrics_conn_opened(m);
	metrics_conn_opened(m);
	metrics_conn_closed(m);
	metrics_protocol_error(m, 3);
	metrics_protocol_error(m, 42);
	char *t = page();
	has(t, "cutover_frames_total{direction=\"in\",type=\"notify\"} 1");
	has(t, "cutover_frames_total{direction=\"out\",type=\"ack\"} 2");
	has(t, "cutover_frames_total{direction=\"in\",type=\"unknown\"} 0");
	has(t, "cutover_frames_total{direction=\"out\",type=\"agent_hello\"} 0");
	has(t, "cutover_open_connections 1");
	has(t, "cutover_connections_accepted_total 2");
	has(t, "cutover_protocol_errors_total{status=\"3\"} 1");
	has(t, "cutover_protocol_errors_total{status=\"99\"} 1");
	lacks(t, "cutover_protocol_errors_total{status=\"4\"}");
	free(t);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, decisions_by_route_backend_and_status);
	tcase_add_test(tc, swap_folds_into_totals_by_name);
	tcase_add_test(tc, split_decisions_by_side);
	tcase_add_test(tc, totals_are_capped_and_the_rest_is_overflow);
	tcase_add_test(tc, unbound_decisions_are_overflow);
	tcase_add_test(tc, histogram_buckets);
	tcase_add_test(tc, facts_from_the_main_thread);
	tcase_add_test(tc, frames_connections_and_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
