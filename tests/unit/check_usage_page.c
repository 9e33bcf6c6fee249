/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for usage_page.c and usage_list.c: the agent's /clients.json
 * and /clients, read back as `cutover-spoa --clients` reads them, merged
 * over two agents; answers of another shape refused. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "gate_judge.h"
#include "usage_list.h"
#include "usage_page.h"

static struct usage_row row(const char *key, uint64_t requests, int64_t last_ms)
{
	struct usage_row r = { .len = strlen(key), .requests = requests, .last_ms = last_ms };

	memcpy(r.key, key, r.len + 1);
	return r;
}

/* 2026-12-02T16:40:00.000Z and later */
#define T0 1796229600000LL

START_TEST(json_lists_most_recent_first_quiet_first)
{
	struct usage_row rows[3] = { row("acme", 300, T0 + 5), row("we\"ird\\", 2, T0 + 9),
				     row("old", 7, T0) };
	struct usage_view v = { .total = 319, .other = 10, .other_last_ms = T0 + 1 };
	size_t len;
	char *j = usage_page_json(rows, 3, &v, 12.5, &len);

	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(j, "{\"quiet_seconds\":12.5,\"requests\":319,\"clients\":["
			    "{\"client\":\"we\\\"ird\\\\\",\"requests\":2,"
			    "\"last_request\":\"2026-12-02T16:40:00.009Z\"},"
			    "{\"client\":\"acme\",\"requests\":300,"
			    "\"last_request\":\"2026-12-02T16:40:00.005Z\"},"
			    "{\"client\":\"old\",\"requests\":7,"
			    "\"last_request\":\"2026-12-02T16:40:00.000Z\"}],"
			    "\"other\":{\"requests\":10,\"last_request\":\"2026-12-02T16:40:00.001Z\"}}\n");
	ck_assert_uint_eq(len, strlen(j));
	double q;
	ck_assert(gate_json_number(j, len, "quiet_seconds", &q));
	ck_assert(q == 12.5);
	free(j);
}
END_TEST

START_TEST(text_has_columns_and_the_others)
{
	struct usage_row rows[1] = { row("acme", 300, T0) };
	struct usage_view v = { .total = 300 };
	size_t len;
	char *t = usage_page_text(rows, 1, &v, 3.25, &len);

	ck_assert_str_eq(t, "CLIENT     REQUESTS  LAST REQUEST (UTC)\n"
			    "acme            300  2026-12-02T16:40:00.000Z\n"
			    "(other)           0  -\n"
			    "300 requests on deprecated routes; quiet for 3.2 s\n");
	free(t);
}
END_TEST

/* Two agents' pages merged: a client on both summed, the latest time kept,
 * the quiet time the least of them. */
START_TEST(list_merges_agents)
{
	struct usage_row a[2] = { row("acme", 300, T0 + 5), row("only-a", 1, T0 + 1) };
	struct usage_row b[2] = { row("acme", 20, T0 + 8), row("only-b", 4, T0 + 2) };
	struct usage_view va = { .total = 311, .other = 10, .other_last_ms = T0 + 3 };
	struct usage_view vb = { .total = 26, .other = 2, .other_last_ms = T0 + 4 };
	struct usage_list l = { 0 };
	char why[128];
	size_t len;
	char *ja = usage_page_json(a, 2, &va, 50, &len);

	ck_assert(usage_list_add(&l, ja, len, why, sizeof(why)));
	char *jb = usage_page_json(b, 2, &vb, 7.5, &len);
	ck_assert(usage_list_add(&l, jb, len, why, sizeof(why)));
	char *t = usage_list_text(&l, &len);
	ck_assert_str_eq(t, "CLIENT     REQUESTS  LAST REQUEST (UTC)        AGENTS\n"
			    "acme            320  2026-12-02T16:40:00.008Z  2\n"
			    "only-b            4  2026-12-02T16:40:00.002Z  1\n"
			    "only-a            1  2026-12-02T16:40:00.001Z  1\n"
			    "(other)          12  2026-12-02T16:40:00.004Z\n"
			    "3 clients listed, 337 requests on deprecated routes in all, from 2 "
			    "agents; quiet for 7.5 s\n");
	free(ja);
	free(jb);
	free(t);
	usage_list_free(&l);
}
END_TEST

START_TEST(list_refuses_other_shapes)
{
	static const char *const bad[] = {
		"", "[]", "{\"clients\":[]}",                         /* no quiet_seconds */
		"{\"quiet_seconds\":1}",                              /* no clients */
		"{\"quiet_seconds\":1,\"clients\":[{\"requests\":3}]}", /* a client without a name */
		"{\"quiet_seconds\":1,\"clients\":[{\"client\":\"a\",\"requests\":-1}]}",
		"{\"quiet_seconds\":1,\"clients\":[]} trailing",
		"{\"quiet_seconds\":1,\"clients\":[{\"client\":\"\\u00e9\"}]}", /* not ASCII */
		"{\"status\":\"ok\"}",
	};
	struct usage_list l = { 0 };
	char why[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!usage_list_add(&l, bad[i], strlen(bad[i]), why, sizeof(why)), "%s",
			      bad[i]);
	ck_assert_uint_eq(l.agents, 0);
	ck_assert_uint_eq(l.n, 0);
	/* Unknown members and another order are fine. */
	static const char ok[] = " {\"clients\":[{\"x\":[1,{\"y\":null}],\"client\":\"a\\/b\","
				 "\"requests\":2,\"last_request\":null}],\"new\":true,"
				 "\"quiet_seconds\":4} ";
	ck_assert(usage_list_add(&l, ok, strlen(ok), why, sizeof(why)));
	ck_assert_uint_eq(l.n, 1);
	ck_assert_str_eq(l.c[0].client, "a/b");
	ck_assert_uint_eq(l.c[0].requests, 2);
	usage_list_free(&l);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("usage_page");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, json_lists_most_recent_first_quiet_first);
	tcase_add_test(tc, text_has_columns_and_the_others);
	tcase_add_test(tc, list_merges_agents);
	tcase_add_test(tc, list_refuses_other_shapes);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
