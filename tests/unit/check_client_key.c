/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for client_key.c: the key of a request's client under each
 * kind of `clients` block, and the plan loader's reading of that block. */
#include <arpa/inet.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "client_key.h"
#include "plan.h"
#include "plan_types.h"

static const struct plan_clients by_header = { .key = CLIENT_KEY_HEADER,
						 .header = "X-Api-Client", .salt = "" };
static const struct plan_clients by_src = { .key = CLIENT_KEY_SRC, .salt = "" };
static const struct plan_clients none = { .key = CLIENT_KEY_NONE, .salt = "" };

static struct route_request v4(const char *client)
{
	struct route_request r = { .client = client, .client_len = client ? strlen(client) : 0,
				   .src_family = 4, .src = { 192, 0, 2, 7 } };
	return r;
}

START_TEST(header_value_is_the_key)
{
	char k[CLIENT_KEY_MAX + 1];
	struct route_request r = v4("acme-mobile");

	ck_assert_uint_eq(client_key(&by_header, &r, k, sizeof(k)), 11);
	ck_assert_str_eq(k, "acme-mobile");
}
END_TEST

START_TEST(absent_or_empty_header_falls_back_to_the_address)
{
	char k[CLIENT_KEY_MAX + 1];
	struct route_request r = v4(NULL);

	ck_assert_uint_eq(client_key(&by_header, &r, k, sizeof(k)), 9);
	ck_assert_str_eq(k, "192.0.2.7");
	r = v4("");
	ck_assert_uint_eq(client_key(&by_header, &r, k, sizeof(k)), 9);
	ck_assert_str_eq(k, "192.0.2.7");
}
END_TEST

START_TEST(src_ignores_the_header)
{
	char k[CLIENT_KEY_MAX + 1];
	struct route_request r = v4("acme-mobile");

	ck_assert_uint_eq(client_key(&by_src, &r, k, sizeof(k)), 9);
	ck_assert_str_eq(k, "192.0.2.7");
}
END_TEST

START_TEST(ipv6_as_text)
{
	char k[CLIENT_KEY_MAX + 1];
	struct route_request r = { .src_family = 6, .src = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 } };

	ck_assert_uint_eq(client_key(&by_src, &r, k, sizeof(k)), 11);
	ck_assert_str_eq(k, "2001:db8::1");
}
END_TEST

/* Every byte value in every position, written as inet_ntop writes it. */
START_TEST(ipv4_as_inet_ntop_writes_it)
{
	char k[CLIENT_KEY_MAX + 1], want[INET_ADDRSTRLEN];

	for (unsigned v = 0; v < 256; v++) {
		for (int pos = 0; pos < 4; pos++) {
			struct route_request r = { .src_family = 4, .src = { 10, 200, 3, 99 } };
			r.src[pos] = (uint8_t)v;
			ck_assert_ptr_nonnull(inet_ntop(AF_INET, r.src, want, sizeof(want)));
			ck_assert_uint_eq(client_key(&by_src, &r, k, sizeof(k)), strlen(want));
			ck_assert_str_eq(k, want);
		}
	}
}
END_TEST

START_TEST(long_value_cut_at_the_maximum)
{
	char k[CLIENT_KEY_MAX + 1], value[200];
	memset(value, 'a', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	struct route_request r = v4(value);

	ck_assert_uint_eq(client_key(&by_header, &r, k, sizeof(k)), CLIENT_KEY_MAX);
	ck_assert_uint_eq(strlen(k), CLIENT_KEY_MAX);
}
END_TEST

START_TEST(nothing_known)
{
	char k[CLIENT_KEY_MAX + 1] = "x";
	struct route_request r = v4("acme");
	struct route_request bare = { 0 };

	ck_assert_uint_eq(client_key(&none, &r, k, sizeof(k)), 0);
	ck_assert_str_eq(k, "");
	ck_assert_uint_eq(client_key(&by_header, &bare, k, sizeof(k)), 0);
	ck_assert_str_eq(k, "");
	ck_assert_uint_eq(client_key(&by_header, &r, k, CLIENT_KEY_MAX), 0); /* cap too small */
}
END_TEST

START_TEST(loader_reads_the_block)
{
	char err[512];
	struct plan *p = plan_load("tests/unit/plans/valid-clients.yaml", err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(p->clients.key, CLIENT_KEY_HEADER);
	ck_assert_str_eq(p->clients.header, "X-Api-Client");
	ck_assert_str_eq(p->clients.salt, "2026-squid");
	ck_assert_uint_eq(p->clients.track, 500);
	plan_free(p);
	p = plan_load("tests/unit/plans/valid-single-phase.yaml", err, sizeof(err));
	ck_assert_msg(p != NULL, "%s", err);
	ck_assert_int_eq(p->clients.key, CLIENT_KEY_NONE);
	ck_assert_uint_eq(p->clients.track, PLAN_DEFAULT_TRACKED_CLIENTS);
	plan_free(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_key");
	TCase *tc = tcase_create("key");

	tcase_add_test(tc, header_value_is_the_key);
	tcase_add_test(tc, absent_or_empty_header_falls_back_to_the_address);
	tcase_add_test(tc, src_ignores_the_header);
	tcase_add_test(tc, ipv4_as_inet_ntop_writes_it);
	tcase_add_test(tc, ipv6_as_text);
	tcase_add_test(tc, long_value_cut_at_the_maximum);
	tcase_add_test(tc, nothing_known);
	tcase_add_test(tc, loader_reads_the_block);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
