/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for shift.c and the split routes of a plan: a client's bucket
 * (the documented hash, stable, uniform, salted), its side (monotonic in
 * the percent, forced by X-Cutover-Side, old without a key), and the
 * router's split decisions: one side for a client on every split route,
 * the old side the route's action before the split; --explain --client. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explain.h"
#include "plan.h"
#include "plan_types.h"
#include "router.h"
#include "shift.h"

#define KEYS 100000
#define SPLIT "tests/unit/plans/valid-percent.yaml"
#define SPLIT_SRC "tests/unit/plans/valid-percent-src.yaml"

static const struct plan_clients by_header = { .key = CLIENT_KEY_HEADER,
						 .header = "X-Api-Client", .salt = "s" };

static unsigned bucket_of(const char *salt, int i)
{
	char key[32];
	int n = snprintf(key, sizeof(key), "client-%d", i);

	return shift_bucket(salt, key, (size_t)n);
}

/* Values of the formula in shift.h, computed apart from this code (a few
 * lines of Python over the documented steps): agents of any build, and any
 * other tool that follows the documentation, place a client alike. */
START_TEST(bucket_is_the_documented_hash)
{
	ck_assert_uint_eq(shift_bucket("squid-to-seafood-2026", "acme-mobile", 11), 9844);
	ck_assert_uint_eq(shift_bucket("", "acme-mobile", 11), 1010);
	ck_assert_uint_eq(shift_bucket("s", "client-1", 8), 4294);
	ck_assert_uint_eq(shift_bucket("s", "192.0.2.7", 9), 7552);
}
END_TEST

/* Check's assertions cost a write each: loops count and assert once. */
START_TEST(bucket_is_stable_and_in_range)
{
	int bad = 0;

	for (int i = 0; i < KEYS; i++) {
		unsigned b = bucket_of("s", i);

		bad += b >= SHIFT_BUCKETS || b != bucket_of("s", i);
	}
	ck_assert_int_eq(bad, 0);
}
END_TEST

/* 100,000 keys over 100 bins of 100 buckets: each bin within 15% of its
 * 1,000, and the share at every percent within half a point of it. */
START_TEST(buckets_are_uniform)
{
	static unsigned bin[100];
	unsigned below[101] = { 0 };

	memset(bin, 0, sizeof(bin));
	for (int i = 0; i < KEYS; i++) {
		unsigned b = bucket_of("squid-to-seafood-2026", i);

		bin[b / 100]++;
		for (unsigned p = 0; p <= 100; p++)
			below[p] += shift_is_new(b, p);
	}
	for (int k = 0; k < 100; k++) {
		ck_assert_msg(bin[k] > 850 && bin[k] < 1150, "bin %d holds %u of %d", k, bin[k], KEYS);
	}
	for (unsigned p = 0; p <= 100; p++) {
		double share = 100.0 * below[p] / KEYS;

		ck_assert_msg(share > p - 0.5 && share < p + 0.5, "%u%%: %.2f%% on new", p, share);
	}
	ck_assert_uint_eq(below[0], 0);
	ck_assert_uint_eq(below[100], KEYS);
}
END_TEST

/* Raising the percent only moves clients from old to new. */
START_TEST(new_side_grows_with_the_percent)
{
	int back = 0;

	for (int i = 0; i < KEYS; i += 7) {
		unsigned b = bucket_of("s", i);

		for (unsigned p = 1; p <= 100; p++)
			back += shift_is_new(b, p - 1) && !shift_is_new(b, p);
	}
	ck_assert_int_eq(back, 0);
	ck_assert(shift_is_new(999, 10));
	ck_assert(!shift_is_new(1000, 10));
	ck_assert(shift_is_new(0, 1));
	ck_assert(!shift_is_new(0, 0));
	ck_assert(shift_is_new(SHIFT_BUCKETS - 1, 100));
}
END_TEST

/* Another salt places the clients anew: at 50%, about half change side. */
START_TEST(salt_changes_placement)
{
	int moved = 0;

	for (int i = 0; i < 10000; i++)
		moved += shift_is_new(bucket_of("s", i), 50) != shift_is_new(bucket_of("t", i), 50);
	ck_assert_msg(moved > 4500 && moved < 5500, "%d of 10000 moved", moved);
	/* the 0x00 between salt and key: "ab"+"c" is not "a"+"bc" */
	ck_assert_uint_ne(shift_bucket("ab", "c", 1), shift_bucket("a", "bc", 2));
}
END_TEST

static struct route_request request(const char *client, const char *side)
{
	struct route_request r = { .method = "GET", .method_len = 3, .path = "/r", .path_len = 2,
				   .client = client, .client_len = client ? strlen(client) : 0,
				   .side = side, .side_len = side ? strlen(side) : 0 };
	return r;
}

START_TEST(forced_side)
{
	const char *news[] = { "new", "NEW", "New" }, *olds[] = { "old", "OLD" };
	const char *ignored[] = { "", "news", "ne", "maybe", "new ", "0" };
	struct shift_place at;

	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(shift_forced_side(news[i], strlen(news[i])), SIDE_NEW);
	for (size_t i = 0; i < 2; i++)
		ck_assert_int_eq(shift_forced_side(olds[i], strlen(olds[i])), SIDE_OLD);
	for (size_t i = 0; i < 6; i++)
		ck_assert_int_eq(shift_forced_side(ignored[i], strlen(ignored[i])), SIDE_NONE);
	ck_assert_int_eq(shift_forced_side(NULL, 0), SIDE_NONE);

	/* client-1 is in bucket 4294 under salt "s": old at 10%, new at 50% */
	struct route_request r = request("client-1", NULL);
	shift_place(&by_header, &r, 10, &at);
	ck_assert(at.side == SIDE_OLD && at.bucket == 4294 && !at.forced);
	r = request("client-1", "new");
	shift_place(&by_header, &r, 10, &at);
	ck_assert(at.side == SIDE_NEW && at.bucket == 4294 && at.forced);
	r = request("client-1", "old");
	shift_place(&by_header, &r, 50, &at);
	ck_assert(at.side == SIDE_OLD && at.forced);
	r = request("client-1", "sideways");
	shift_place(&by_header, &r, 50, &at);
	ck_assert(at.side == SIDE_NEW && !at.forced);
}
END_TEST

START_TEST(no_key_takes_the_old_side)
{
	struct shift_place at;
	struct route_request r = request(NULL, NULL);

	shift_place(&by_header, &r, 99, &at);
	ck_assert(at.side == SIDE_OLD && at.bucket == -1 && !at.forced);
	r = request(NULL, "new");
	shift_place(&by_header, &r, 1, &at);
	ck_assert(at.side == SIDE_NEW && at.bucket == -1 && at.forced);
	/* the address is the key when there is no header */
	r = request(NULL, NULL);
	r.src_family = 4;
	memcpy(r.src, (unsigned char[]){ 192, 0, 2, 7 }, 4);
	shift_place(&by_header, &r, 99, &at);
	ck_assert_int_eq(at.bucket, 7552);
}
END_TEST

static struct plan *load(const char *file, int phase)
{
	char err[512];
	struct plan *p = plan_load(file, err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	plan_set_phase(p, phase);
	return p;
}

static void decide(const struct plan *p, const char *path, const char *client, const char *side,
		   struct decision *d)
{
	static char scratch[256];
	struct route_request r = request(client, side);

	r.path = path;
	r.path_len = strlen(path);
	router_decide(p, &r, d, scratch, sizeof(scratch));
}

/* valid-percent.yaml: r on a, then b for 10% (two phases), 50%, then all. */
START_TEST(router_takes_the_side)
{
	struct plan *p = load(SPLIT, 1);
	struct decision d;
	char text[256];
	int news = 0;

	ck_assert_uint_eq(plan_route_percent(p, 0, 0), 0);
	ck_assert_uint_eq(plan_route_percent(p, 1, 0), 10);
	ck_assert_uint_eq(plan_route_percent(p, 2, 0), 10); /* inherited */
	ck_assert_uint_eq(plan_route_percent(p, 3, 0), 50);
	ck_assert_uint_eq(plan_route_percent(p, 4, 0), 0);  /* ended by the full action */
	plan_route_action_text(p, 3, 0, text, sizeof(text));
	ck_assert_str_eq(text, "backend b, for 50% of clients; the others: backend a");

	decide(p, "/r", "client-1", NULL, &d); /* bucket 4294 */
	ck_assert(d.side == SIDE_OLD && d.percent == 10 && d.bucket == 4294 && !d.forced);
	ck_assert_str_eq(d.backend, "a");
	decide(p, "/r", "client-1", "new", &d);
	ck_assert(d.side == SIDE_NEW && d.forced);
	ck_assert_str_eq(d.backend, "b");
	decide(p, "/r", NULL, NULL, &d);
	ck_assert(d.side == SIDE_OLD && d.bucket == -1);
	ck_assert_str_eq(d.backend, "a");
	int wrong = 0;
	for (int i = 0; i < 2000; i++) {
		char key[32];

		snprintf(key, sizeof(key), "client-%d", i);
		decide(p, "/r", key, NULL, &d);
		wrong += strcmp(d.backend, d.side == SIDE_NEW ? "b" : "a") != 0;
		news += d.side == SIDE_NEW;
	}
	ck_assert_int_eq(wrong, 0);
	ck_assert_msg(news > 140 && news < 260, "%d of 2000 on new at 10%%", news);
	plan_free(p);

	p = load(SPLIT, 4);
	decide(p, "/r", "client-1", "old", &d);
	ck_assert(d.side == SIDE_NONE && d.percent == 0 && d.bucket == -1 && !d.forced);
	ck_assert_str_eq(d.backend, "b");
	plan_free(p);
}
END_TEST

/* Two split routes in one phase, different shares: a client on new on the
 * smaller is on new on the larger, and equal shares put it on one side. */
START_TEST(one_side_on_every_split_route)
{
	static const char plan[] =
		"phase: two\n"
		"clients: { key: X-Api-Client, salt: s }\n"
		"backends: [a, b]\n"
		"routes:\n"
		"  - { name: reads, path: /reads }\n"
		"  - { name: writes, path: /writes }\n"
		"  - { name: more, path: /more }\n"
		"phases:\n"
		"  - number: 1\n"
		"    name: one\n"
		"    routes: { reads: a, writes: a, more: a }\n"
		"  - number: 2\n"
		"    name: two\n"
		"    routes:\n"
		"      reads: { backend: b, percent: 30 }\n"
		"      writes: { backend: b, percent: 30 }\n"
		"      more: { backend: b, percent: 60 }\n";
	char err[512];
	struct plan *p = plan_load_buffer("split.yaml", plan, sizeof(plan) - 1, err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	int apart = 0, back = 0;

	for (int i = 0; i < 3000; i++) {
		char key[32];
		struct decision r, w, m;

		snprintf(key, sizeof(key), "client-%d", i);
		decide(p, "/reads", key, NULL, &r);
		decide(p, "/writes", key, NULL, &w);
		decide(p, "/more", key, NULL, &m);
		apart += r.side != w.side || r.bucket != w.bucket;
		back += r.side == SIDE_NEW && m.side != SIDE_NEW;
	}
	ck_assert_int_eq(apart, 0);
	ck_assert_int_eq(back, 0);
	plan_free(p);
}
END_TEST

/* --explain's text and JSON for o, and its exit status. */
static int explain(const char *file, const struct explain_request_opts *o, char **text,
		   char **errs)
{
	size_t n, m;
	FILE *out = open_memstream(text, &n), *err = open_memstream(errs, &m);
	int rc = explain_request_with(file, "GET", "/r", o, out, err);

	fclose(out);
	fclose(err);
	return rc;
}

START_TEST(explain_shows_the_client_side)
{
	char *t, *e;
	struct explain_request_opts o = { .all_phases = 1 };

	ck_assert_int_eq(explain(SPLIT, &o, &t, &e), 0);
	ck_assert_msg(strstr(t, "phase  2 ten                      route r -> 10% of clients "
			     "(new): backend b; the others (old): backend a\n") != NULL, "%s", t);
	ck_assert_msg(strstr(t, "route r -> 50% of clients (new): backend b; the others (old): "
			     "backend a\n") != NULL, "%s", t);
	free(t);
	free(e);

	o.client = "client-1"; /* bucket 4294 */
	ck_assert_int_eq(explain(SPLIT, &o, &t, &e), 0);
	ck_assert_msg(strstr(t, "GET /r client client-1: bucket 4294 of 10000\n") == t, "%s", t);
	ck_assert_msg(strstr(t, "ten                      route r -> backend a; side old: bucket "
			     "4294 >= 1000 (10% split)\n") != NULL, "%s", t);
	ck_assert_msg(strstr(t, "fifty                    route r -> backend b; side new: bucket "
			     "4294 < 5000 (50% split)\n") != NULL, "%s", t);
	ck_assert_msg(strstr(t, "all                      route r -> backend b\n") != NULL, "%s", t);
	free(t);
	free(e);

	o = (struct explain_request_opts){ .phase = "ten", .client = "client-1", .side = "new",
					   .json = true };
	ck_assert_int_eq(explain(SPLIT, &o, &t, &e), 0);
	ck_assert_msg(strstr(t, "\"backend\": \"b\", \"status\": null, \"path\": null, "
			     "\"link\": null, \"deprecated\": false, \"deprecation\": null, "
			     "\"sunset\": null, \"policy\": null, \"past_sunset\": false, "
			     "\"percent\": 10, \"side\": "
			     "\"new\", \"bucket\": 4294, \"forced\": true}") != NULL, "%s", t);
	free(t);
	free(e);
}
END_TEST

START_TEST(explain_client_by_address)
{
	char *t, *e;
	struct explain_request_opts o = { .phase = "fifty", .client = "192.0.2.7" };

	ck_assert_int_eq(explain(SPLIT_SRC, &o, &t, &e), 0); /* bucket 7552 */
	ck_assert_msg(strstr(t, "route r -> backend a; side old: bucket 7552 >= 5000") != NULL,
		      "%s", t);
	free(t);
	free(e);
	o.client = "client-1";
	ck_assert_int_eq(explain(SPLIT_SRC, &o, &t, &e), 1);
	ck_assert_str_eq(e, SPLIT_SRC ": clients are keyed by source address (key: src): "
			 "--client 'client-1' is not an IPv4 or IPv6 address\n");
	free(t);
	free(e);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("shift");
	TCase *t = tcase_create("shift");

	tcase_set_timeout(t, 30);
	tcase_add_test(t, bucket_is_the_documented_hash);
	tcase_add_test(t, bucket_is_stable_and_in_range);
	tcase_add_test(t, buckets_are_uniform);
	tcase_add_test(t, new_side_grows_with_the_percent);
	tcase_add_test(t, salt_changes_placement);
	tcase_add_test(t, forced_side);
	tcase_add_test(t, no_key_takes_the_old_side);
	tcase_add_test(t, router_takes_the_side);
	tcase_add_test(t, one_side_on_every_split_route);
	tcase_add_test(t, explain_shows_the_client_side);
	tcase_add_test(t, explain_client_by_address);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
