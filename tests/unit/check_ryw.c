/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for read-your-writes in the agent (ryw.c through decide.c):
 * NOTIFY bytes in, the ACK's variables out, on the fixture plan
 * tests/unit/plans/valid-ryw.yaml (phase 1 all OLD; 2 reads NEW with a
 * read_your_writes block after `write` (old_w), back to old_r for 2m; 3
 * writes NEW, the block inherited; 4 the block dropped), and
 * valid-ryw-split.yaml (the block on the new side of a split route). Runs
 * from the source root. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "check_decide_wire.h"
#include "decide.h"
#include "plan.h"
#include "plan_types.h"
#include "ryw.h"

#define PLAN_FILE "tests/unit/plans/valid-ryw.yaml"

static struct plan *plan;
static struct decider decider;
static uint8_t notify_buf[4096];
static uint8_t out_buf[FRAME_LEN_SIZE + FRAME_AGENT_MAX_SIZE];
static struct wire_ack ack;

static void setup(void)
{
	char err[1024];

	plan = plan_load(PLAN_FILE, err, sizeof(err));
	ck_assert_msg(plan != NULL, "%s", err);
}

static void teardown(void)
{
	plan_free(plan);
}

/* Decides method path from client (NULL: no client argument, no src) in
 * the phase numbered phase; ack holds the ACK's variables. */
static struct answer ask(unsigned phase, const char *method, const char *path,
			 const char *client)
{
	struct wire_notify w = { notify_buf, notify_buf + sizeof(notify_buf), false };
	struct answer a;
	unsigned status = 0;
	char number[16];

	snprintf(number, sizeof(number), "%u", phase);
	plan->current = plan_phase_lookup(plan, number);
	ck_assert_int_ge(plan->current, 0);
	decider_init(&decider, plan);
	wire_message(&w, "cutover", 2 + (client != NULL));
	wire_arg_string(&w, "method", method, strlen(method));
	wire_arg_string(&w, "path", path, strlen(path));
	if (client)
		wire_arg_string(&w, "client", client, strlen(client));
	ck_assert(!w.failed);
	struct frame f = { .type = FRAME_NOTIFY, .flags = FRAME_FLAG_FIN, .stream_id = 1,
			   .frame_id = 1, .payload = notify_buf,
			   .payload_len = (size_t)(w.p - notify_buf) };
	ssize_t n = decide_notify(&decider, &f, FRAME_AGENT_MAX_SIZE, out_buf, sizeof(out_buf),
				  &a, &status);
	ck_assert_int_gt(n, 0);
	ck_assert(wire_read_ack(out_buf, (size_t)n, FRAME_AGENT_MAX_SIZE, &ack));
	return a;
}

static const char *str(const char *name)
{
	static char buf[256];
	const struct spop_data *v = wire_var(&ack, FRAME_SCOPE_TXN, name);

	if (!v)
		return NULL;
	ck_assert_int_eq(v->type, SPOP_T_STRING);
	snprintf(buf, sizeof(buf), "%.*s", (int)v->u.bytes.len, (const char *)v->u.bytes.ptr);
	return buf;
}

static int64_t num(const char *name)
{
	const struct spop_data *v = wire_var(&ack, FRAME_SCOPE_TXN, name);

	if (!v)
		return -1;
	ck_assert_int_eq(v->type, SPOP_T_INT64);
	return (int64_t)v->u.integer;
}

static void expect_none(void)
{
	ck_assert_ptr_null(str("client"));
	ck_assert_int_eq(num("mark"), -1);
	ck_assert_ptr_null(str("ryw_backend"));
	ck_assert_ptr_null(str("ryw_path"));
	ck_assert_int_eq(num("ryw_for"), -1);
	ck_assert_int_eq(num("ryw_after"), -1);
}

START_TEST(backend_ids)
{
	ck_assert_uint_ne(ryw_backend_id("old_w"), ryw_backend_id("new_w"));
	ck_assert_uint_eq(ryw_backend_id("old_w"), ryw_backend_id("old_w"));
	ck_assert_uint_gt(ryw_backend_id(""), 0);
	ck_assert_uint_le(ryw_backend_id("old_w"), 0x7fffffffu);
}
END_TEST

START_TEST(a_write_is_marked_with_its_backend)
{
	struct answer a = ask(2, "POST", "/c/squids", "acme");

	ck_assert(a.ryw);
	ck_assert_str_eq(str("backend"), "old_w");
	ck_assert_str_eq(str("client"), "acme");
	ck_assert_int_eq(num("mark"), ryw_backend_id("old_w"));
	ck_assert_ptr_null(str("ryw_backend"));
	/* Every phase marks: writes before the block's phase count too, and
	 * writes gone to NEW are told apart by their id. */
	ask(1, "DELETE", "/c/squids/3", "acme");
	ck_assert_int_eq(num("mark"), ryw_backend_id("old_w"));
	ask(3, "PUT", "/c/squids/3", "acme");
	ck_assert_int_eq(num("mark"), ryw_backend_id("new_w"));
	ask(4, "PATCH", "/c/squids/3", "acme");
	ck_assert_int_eq(num("mark"), ryw_backend_id("new_w"));
}
END_TEST

START_TEST(a_read_gets_its_window)
{
	struct answer a = ask(2, "GET", "/q/squids/42", "acme");

	ck_assert(a.ryw);
	ck_assert_str_eq(str("backend"), "new_r");
	ck_assert_str_eq(str("client"), "acme");
	ck_assert_int_eq(num("mark"), -1);
	ck_assert_str_eq(str("ryw_backend"), "old_r");
	ck_assert_str_eq(str("ryw_path"), "/q/squids/42");
	ck_assert_int_eq(num("ryw_for"), 120);
	ck_assert_int_eq(num("ryw_after"), ryw_backend_id("old_w"));
	ask(2, "HEAD", "/q/squids/42", "acme");
	ck_assert_str_eq(str("ryw_backend"), "old_r");
}
END_TEST

START_TEST(an_inherited_block_follows_the_old_writes)
{
	ask(3, "GET", "/q/squids/42", "acme");
	ck_assert_str_eq(str("ryw_backend"), "old_r");
	ck_assert_int_eq(num("ryw_after"), ryw_backend_id("old_w"));
	ask(4, "GET", "/q/squids/42", "acme");
	expect_none();
	ask(1, "GET", "/q/squids/42", "acme");
	expect_none();
}
END_TEST

START_TEST(neither_reads_of_writes_nor_writes_of_reads)
{
	ask(2, "GET", "/c/squids/1", "acme"); /* a read through the write route */
	expect_none();
	ask(2, "POST", "/q/squids", "acme"); /* a write through the read route */
	expect_none();
	ask(2, "OPTIONS", "/c/squids", "acme");
	expect_none();
}
END_TEST

START_TEST(no_client_no_variables)
{
	struct answer a = ask(2, "POST", "/c/squids", NULL);

	ck_assert(!a.ryw);
	ck_assert_str_eq(str("backend"), "old_w");
	expect_none();
	ask(2, "GET", "/q/squids/1", NULL);
	ck_assert_str_eq(str("backend"), "new_r");
	expect_none();
}
END_TEST

START_TEST(per_request_variables_are_not_cached)
{
	/* One decider, one route: the second answer must carry its own
	 * client and path, not the first one's. */
	ask(2, "GET", "/q/squids/1", "first");
	struct wire_notify w = { notify_buf, notify_buf + sizeof(notify_buf), false };
	struct answer a;
	unsigned status = 0;

	wire_message(&w, "cutover", 3);
	wire_arg_string(&w, "method", "GET", 3);
	wire_arg_string(&w, "path", "/q/squids/2", 11);
	wire_arg_string(&w, "client", "second", 6);
	struct frame f = { .type = FRAME_NOTIFY, .flags = FRAME_FLAG_FIN, .stream_id = 1,
			   .frame_id = 2, .payload = notify_buf,
			   .payload_len = (size_t)(w.p - notify_buf) };
	ssize_t n = decide_notify(&decider, &f, FRAME_AGENT_MAX_SIZE, out_buf, sizeof(out_buf),
				  &a, &status);
	ck_assert_int_gt(n, 0);
	ck_assert(wire_read_ack(out_buf, (size_t)n, FRAME_AGENT_MAX_SIZE, &ack));
	ck_assert_str_eq(str("client"), "second");
	ck_assert_str_eq(str("ryw_path"), "/q/squids/2");
}
END_TEST

START_TEST(a_refused_ryw_rewrite_leaves_the_read_to_its_action)
{
	struct answer a = ask(2, "GET", "/q/a|b", "acme");

	ck_assert_uint_eq(a.d.status, 0);
	ck_assert_str_eq(str("backend"), "new_r");
	ck_assert(!a.ryw);
	expect_none();
}
END_TEST

START_TEST(a_long_client_is_cut_to_the_table_key)
{
	char client[200];

	memset(client, 'k', sizeof(client) - 1);
	client[sizeof(client) - 1] = '\0';
	ask(2, "POST", "/c/squids", client);
	ck_assert_ptr_nonnull(str("client"));
	ck_assert_uint_eq(strlen(str("client")), CLIENT_KEY_MAX);
}
END_TEST

START_TEST(a_split_route_gives_the_window_to_its_new_side_only)
{
	char err[1024], client[16];
	struct plan *split = plan_load("tests/unit/plans/valid-ryw-split.yaml", err, sizeof(err));
	int sides[3] = { 0 };

	ck_assert_msg(split != NULL, "%s", err);
	decider_init(&decider, split);
	for (int i = 0; i < 100; i++) {
		struct wire_notify w = { notify_buf, notify_buf + sizeof(notify_buf), false };
		struct answer a;
		unsigned status = 0;

		snprintf(client, sizeof(client), "c%d", i);
		wire_message(&w, "cutover", 3);
		wire_arg_string(&w, "method", "GET", 3);
		wire_arg_string(&w, "path", "/q/1", 4);
		wire_arg_string(&w, "client", client, strlen(client));
		struct frame f = { .type = FRAME_NOTIFY, .flags = FRAME_FLAG_FIN, .stream_id = 1,
				   .frame_id = 1, .payload = notify_buf,
				   .payload_len = (size_t)(w.p - notify_buf) };
		ssize_t n = decide_notify(&decider, &f, FRAME_AGENT_MAX_SIZE, out_buf,
					  sizeof(out_buf), &a, &status);
		ck_assert_int_gt(n, 0);
		ck_assert(wire_read_ack(out_buf, (size_t)n, FRAME_AGENT_MAX_SIZE, &ack));
		sides[a.d.side]++;
		if (a.d.side == SIDE_NEW) {
			ck_assert_str_eq(str("backend"), "new_r");
			ck_assert_str_eq(str("ryw_backend"), "old_r");
		} else {
			ck_assert_int_eq(a.d.side, SIDE_OLD);
			ck_assert_str_eq(str("backend"), "old_r");
			expect_none();
		}
	}
	ck_assert_int_gt(sides[SIDE_NEW], 0);
	ck_assert_int_gt(sides[SIDE_OLD], 0);
	plan_free(split);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ryw");
	TCase *tc = tcase_create("ack");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, backend_ids);
	tcase_add_test(tc, a_write_is_marked_with_its_backend);
	tcase_add_test(tc, a_read_gets_its_window);
	tcase_add_test(tc, an_inherited_block_follows_the_old_writes);
	tcase_add_test(tc, neither_reads_of_writes_nor_writes_of_reads);
	tcase_add_test(tc, no_client_no_variables);
	tcase_add_test(tc, per_request_variables_are_not_cached);
	tcase_add_test(tc, a_refused_ryw_rewrite_leaves_the_read_to_its_action);
	tcase_add_test(tc, a_long_client_is_cut_to_the_table_key);
	tcase_add_test(tc, a_split_route_gives_the_window_to_its_new_side_only);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
