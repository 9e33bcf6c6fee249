/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for the pure rules of moving the live phase (steps.c) and for
 * judging an HTTP gate's answer (gate_judge.c). Runs from the source root. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate_judge.h"
#include "plan.h"
#include "steps.h"

/* Phases 1..6; 3 and 5 are one-way doors; the override, when given, names
 * the phase it lets traffic back across. */
static struct plan *doors_plan(const char *override)
{
	char text[2048], err[512];
	struct plan *p;

	snprintf(text, sizeof(text),
		 "phase: 1\n%s"
		 "backends: [a, b]\n"
		 "routes:\n  - name: r\n    path: /r\n"
		 "phases:\n"
		 "  - { number: 1, name: p1, routes: { r: a } }\n"
		 "  - { number: 2, name: p2 }\n"
		 "  - { number: 3, name: p3, one_way: true, routes: { r: b } }\n"
		 "  - { number: 4, name: p4 }\n"
		 "  - { number: 5, name: p5, one_way: true }\n"
		 "  - { number: 6, name: p6 }\n",
		 override ? override : "");
	p = plan_load_buffer("doors.yaml", text, strlen(text), err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	return p;
}

START_TEST(next_moves_one_phase)
{
	ck_assert_int_eq(steps_next(0, 11), 1);
	ck_assert_int_eq(steps_next(7, 0), 6);
	ck_assert_int_eq(steps_next(4, 4), 4);
}
END_TEST

START_TEST(forward_never_refused)
{
	struct plan *p = doors_plan(NULL);
	bool used;

	for (int from = 0; from < 6; from++)
		for (int to = from; to < 6; to++)
			ck_assert_int_eq(steps_door_refusal(p, from, to, &used), -1);
	plan_free(p);
}
END_TEST

START_TEST(back_across_a_door_refused)
{
	struct plan *p = doors_plan(NULL);
	bool used;

	/* Index 2 is phase 3, index 4 phase 5. */
	ck_assert_int_eq(steps_door_refusal(p, 2, 1, &used), 2);
	ck_assert(!used);
	ck_assert_int_eq(steps_door_refusal(p, 5, 0, &used), 4); /* the nearest door */
	ck_assert_int_eq(steps_door_refusal(p, 3, 2, &used), -1); /* back to the door */
	ck_assert_int_eq(steps_door_refusal(p, 1, 0, &used), -1); /* behind every door */
	ck_assert_int_eq(steps_door_refusal(p, 5, 4, &used), -1);
	plan_free(p);
}
END_TEST

START_TEST(override_opens_only_its_door)
{
	struct plan *p = doors_plan("override: { allow_back_across: p3, reason: drill }\n");
	bool used;

	ck_assert_int_eq(steps_door_refusal(p, 3, 1, &used), -1);
	ck_assert(used);
	ck_assert_int_eq(steps_door_refusal(p, 5, 1, &used), 4);
	ck_assert_int_eq(steps_door_refusal(p, 1, 0, &used), -1);
	ck_assert(!used);
	plan_free(p);
}
END_TEST

START_TEST(json_number_paths)
{
	static const char doc[] = " { \"name\": \"x\\\"}\", \"list\": [1, {\"lag\": 9}, [ ]],"
				  " \"replication\": { \"ok\": true, \"lag_seconds\": 0.25 },"
				  " \"lag\": -3e2 }";
	double v = 0;

	ck_assert(gate_json_number(doc, strlen(doc), "replication.lag_seconds", &v));
	ck_assert(v == 0.25);
	ck_assert(gate_json_number(doc, strlen(doc), "lag", &v)); /* not the one in list */
	ck_assert(v == -300);
	ck_assert(!gate_json_number(doc, strlen(doc), "replication.ok", &v));
	ck_assert(!gate_json_number(doc, strlen(doc), "name", &v));
	ck_assert(!gate_json_number(doc, strlen(doc), "missing", &v));
	ck_assert(!gate_json_number(doc, strlen(doc), "replication.lag_seconds.x", &v));
	ck_assert(!gate_json_number("{\"lag\": inf}", 12, "lag", &v));
	ck_assert(!gate_json_number("{\"lag\": 1", 9, "x", &v));  /* truncated */
	ck_assert(!gate_json_number("{\"lag\": 12", 10, "lag", &v)); /* cut in the number */
	ck_assert(gate_json_number("{\"lag\": 12,\"x\":[", 16, "lag", &v)); /* cut after it */
	ck_assert(v == 12);
	ck_assert(!gate_json_number("[{\"lag\": 1}]", 12, "lag", &v));
	ck_assert(!gate_json_number("", 0, "lag", &v));
}
END_TEST

/* {"a": [[...]], "b": 1} with the list depth deep. */
static size_t nested(char *doc, int depth)
{
	size_t n = (size_t)sprintf(doc, "{\"a\": ");

	for (int i = 0; i < depth; i++)
		doc[n++] = '[';
	for (int i = 0; i < depth; i++)
		doc[n++] = ']';
	return n + (size_t)sprintf(doc + n, ", \"b\": 1}");
}

START_TEST(json_depth_bounded)
{
	char doc[256];
	double v;
	size_t n = nested(doc, 40);

	ck_assert(!gate_json_number(doc, n, "b", &v)); /* refused, not recursed into */
	n = nested(doc, 10);
	ck_assert(gate_json_number(doc, n, "b", &v));
}
END_TEST

static struct plan_gate lag_gate(void)
{
	return (struct plan_gate){ .kind = PLAN_GATE_HTTP, .expect_status = 200,
				   .json = "lag_seconds", .has_max = true, .max = 1 };
}

#define RESP(status, body) \
	"HTTP/1.0 " status "\r\nContent-Type: application/json\r\n\r\n" body

START_TEST(judge_status_and_bound)
{
	struct plan_gate g = lag_gate();
	char why[128];
	const char *ok = RESP("200 OK", "{\"lag_seconds\": 0.5}");
	const char *behind = RESP("200 OK", "{\"lag_seconds\": 4}");
	const char *down = RESP("503 Unavailable", "{\"lag_seconds\": 0}");

	ck_assert(gate_judge(&g, ok, strlen(ok), why, sizeof(why)));
	ck_assert_str_eq(why, "status 200, lag_seconds 0.5 within bounds");
	ck_assert(!gate_judge(&g, behind, strlen(behind), why, sizeof(why)));
	ck_assert_str_eq(why, "status 200, lag_seconds 4 > 1");
	ck_assert(!gate_judge(&g, down, strlen(down), why, sizeof(why)));
	ck_assert_str_eq(why, "status 503, expected 200");
	g.has_min = true;
	g.min = 1;
	ck_assert(!gate_judge(&g, ok, strlen(ok), why, sizeof(why)));
	ck_assert_str_eq(why, "status 200, lag_seconds 0.5 < 1");
	g.json = NULL;
	ck_assert(gate_judge(&g, ok, strlen(ok), why, sizeof(why)));
}
END_TEST

START_TEST(judge_garbage)
{
	struct plan_gate g = lag_gate();
	char why[128];

	ck_assert(!gate_judge(&g, "", 0, why, sizeof(why)));
	ck_assert_str_eq(why, "not an HTTP response");
	ck_assert(!gate_judge(&g, "HTTP/1.1 200 OK\r\n", 17, why, sizeof(why)));
	ck_assert(!gate_judge(&g, "SSH-2.0-x\r\n\r\n", 13, why, sizeof(why)));
	const char *notjson = RESP("200 OK", "lag_seconds=0");
	ck_assert(!gate_judge(&g, notjson, strlen(notjson), why, sizeof(why)));
	ck_assert_str_eq(why, "status 200, no number at lag_seconds");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("steps");
	TCase *tc = tcase_create("steps");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, next_moves_one_phase);
	tcase_add_test(tc, forward_never_refused);
	tcase_add_test(tc, back_across_a_door_refused);
	tcase_add_test(tc, override_opens_only_its_door);
	tcase_add_test(tc, json_number_paths);
	tcase_add_test(tc, json_depth_bounded);
	tcase_add_test(tc, judge_status_and_bound);
	tcase_add_test(tc, judge_garbage);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
