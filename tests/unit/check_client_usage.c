/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for client_usage.c: heavy hitters counted exactly among
 * thousands of one-off keys, totals conserved, the order of eviction, the
 * bound on rows, merging several tables, resizing, labels, and a reader
 * racing the writer. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_usage.h"

static uint64_t rng = 0x243f6a8885a308d3u;

static uint64_t next_random(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void count(struct client_usage *u, const char *key, int64_t ms)
{
	client_usage_count(u, key, strlen(key), ms, (uint64_t)ms * 1000000u);
}

/* {rows, view} of one table, merged with keep rows. */
struct snap {
	struct usage_row rows[10000];
	size_t n;
	struct usage_view view;
};

static struct snap snap;

static void take(struct client_usage *u, size_t keep)
{
	snap.n = client_usage_read(u, snap.rows, &snap.view);
	snap.n = client_usage_merge(snap.rows, snap.n, keep, &snap.view);
}

static uint64_t requests_of(const char *key)
{
	for (size_t i = 0; i < snap.n; i++)
		if (strcmp(snap.rows[i].key, key) == 0)
			return snap.rows[i].requests;
	return 0;
}

static uint64_t rows_sum(void)
{
	uint64_t s = 0;

	for (size_t i = 0; i < snap.n; i++)
		s += snap.rows[i].requests;
	return s;
}

/* 300/200/100 requests of three clients spread at random among 10,000
 * one-off keys, after each client's first two: exact, and everything adds up. */
START_TEST(heavy_hitters_exact_among_random_keys)
{
	struct client_usage *u = client_usage_new(100, 42);
	const char *named[3] = { "acme", "globex", "initech" };
	int left[3] = { 300, 200, 100 }, noise = 10000;
	int64_t t = 1;
	char key[32];

	for (int r = 0; r < 2; r++) {
		for (int c = 0; c < 3; c++) {
			count(u, named[c], t++);
			left[c]--;
		}
	}
	while (noise > 0 || left[0] + left[1] + left[2] > 0) {
		uint64_t pick = next_random() % (uint64_t)(noise + left[0] + left[1] + left[2]);
		if (pick < (uint64_t)noise) {
			snprintf(key, sizeof(key), "rnd-%016llx", (unsigned long long)next_random());
			count(u, key, t++);
			noise--;
			continue;
		}
		pick -= (uint64_t)noise;
		int c = pick < (uint64_t)left[0] ? 0 : pick < (uint64_t)(left[0] + left[1]) ? 1 : 2;
		count(u, named[c], t++);
		left[c]--;
	}
	take(u, 100);
	ck_assert_uint_eq(requests_of("acme"), 300);
	ck_assert_uint_eq(requests_of("globex"), 200);
	ck_assert_uint_eq(requests_of("initech"), 100);
	ck_assert_str_eq(snap.rows[0].key, "acme"); /* most requests first */
	ck_assert_uint_eq(snap.view.total, 10600);
	ck_assert_uint_eq(rows_sum() + snap.view.other, 10600);
	ck_assert_uint_le(snap.n, 100);
	client_usage_free(u);
}
END_TEST

/* 10,000 distinct keys, once each, in a table of 100: 100 rows, the latest
 * keys, and the rest as other; memory fixed at creation. */
START_TEST(bound_respected_for_random_keys)
{
	struct client_usage *u = client_usage_new(100, 7);
	char key[32];

	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "k%016llx-%d", (unsigned long long)next_random(), i);
		count(u, key, i + 1);
	}
	take(u, 1000);
	ck_assert_uint_eq(snap.n, 100);
	ck_assert_uint_eq(snap.view.total, 10000);
	ck_assert_uint_eq(snap.view.other, 9900);
	/* The survivors are the last 100 keys (each evicted the longest idle). */
	for (size_t i = 0; i < snap.n; i++)
		ck_assert_int_gt(snap.rows[i].last_ms, 9900);
	ck_assert_int_eq(snap.view.other_last_ms, 9900);
	client_usage_free(u);
}
END_TEST

/* Fewest requests go first, the longest idle among equals. */
START_TEST(eviction_order)
{
	struct client_usage *u = client_usage_new(3, 1);

	count(u, "a", 1);
	count(u, "b", 2);
	count(u, "c", 3);
	count(u, "a", 4);      /* a 2, b 1 (idle since 2), c 1 (since 3) */
	count(u, "d", 5);      /* evicts b */
	take(u, 3);
	ck_assert_uint_eq(requests_of("b"), 0);
	ck_assert_uint_eq(requests_of("c"), 1);
	count(u, "c", 6);      /* a 2, c 2 (since 6), d 1 */
	count(u, "e", 7);      /* evicts d, the only one with 1 */
	take(u, 3);
	ck_assert_uint_eq(requests_of("d"), 0);
	count(u, "f", 8);      /* e has 1: evicted, a and c stay */
	take(u, 3);
	ck_assert_uint_eq(requests_of("e"), 0);
	ck_assert_uint_eq(requests_of("a"), 2);
	ck_assert_uint_eq(requests_of("c"), 2);
	ck_assert_uint_eq(requests_of("f"), 1);
	count(u, "g", 9);      /* f evicted; among a and c, a (since 4) would be next */
	count(u, "g", 10);
	count(u, "h", 11);     /* a 2 (4), c 2 (6), g 2 (10): a goes */
	take(u, 3);
	ck_assert_uint_eq(requests_of("a"), 0);
	ck_assert_uint_eq(requests_of("c"), 2);
	ck_assert_uint_eq(requests_of("g"), 2);
	ck_assert_uint_eq(requests_of("h"), 1);
	ck_assert_uint_eq(snap.view.total, 11);
	ck_assert_uint_eq(snap.view.other, 6); /* b 1, d 1, e 1, f 1, a 2 */
	ck_assert_int_eq(snap.view.other_last_ms, 8); /* f, the latest evicted */
	client_usage_free(u);
}
END_TEST

START_TEST(no_key_and_no_room_count_as_other)
{
	struct client_usage *u = client_usage_new(0, 1);
	struct client_usage *v = client_usage_new(5, 1);

	count(u, "acme", 10);
	client_usage_count(v, "", 0, 20, 5);
	count(v, "acme", 30);
	take(u, 5);
	ck_assert_uint_eq(snap.n, 0);
	ck_assert_uint_eq(snap.view.other, 1);
	ck_assert_int_eq(snap.view.other_last_ms, 10);
	take(v, 5);
	ck_assert_uint_eq(snap.n, 1);
	ck_assert_uint_eq(snap.view.other, 1);
	ck_assert_int_eq(snap.view.other_last_ms, 20);
	ck_assert_uint_eq(snap.view.last_mono_ns, 30000000u);
	client_usage_free(u);
	client_usage_free(v);
}
END_TEST

/* Two workers' tables: a key in both is summed; keep folds the rest. */
START_TEST(merge_sums_keys_and_folds_the_rest)
{
	struct client_usage *a = client_usage_new(4, 1), *b = client_usage_new(4, 2);
	struct usage_row rows[8];
	struct usage_view va, vb;

	for (int i = 0; i < 5; i++)
		count(a, "acme", 100 + i);
	count(a, "x", 1);
	count(b, "y", 2);
	count(b, "y", 3);
	count(b, "acme", 299);
	count(b, "acme", 300);
	count(b, "z", 400);
	count(b, "w", 1);
	count(b, "v", 500); /* evicts z in b, idle longer than w: other 1 */
	size_t n = client_usage_read(a, rows, &va);
	n += client_usage_read(b, rows + n, &vb);
	struct usage_view all = { .total = va.total + vb.total, .other = va.other + vb.other,
				  .other_last_ms = vb.other_last_ms };
	ck_assert_uint_eq(all.other, 1);
	ck_assert_int_eq(all.other_last_ms, 400);
	size_t kept = client_usage_merge(rows, n, 2, &all);
	ck_assert_uint_eq(kept, 2);
	ck_assert_str_eq(rows[0].key, "acme");
	ck_assert_uint_eq(rows[0].requests, 7);
	ck_assert_int_eq(rows[0].last_ms, 300);
	ck_assert_str_eq(rows[1].key, "y");
	ck_assert_uint_eq(rows[1].requests, 2);
	/* z evicted, then x (at 1), w (1), v (500) folded: 1 + 3 */
	ck_assert_uint_eq(all.other, 4);
	ck_assert_int_eq(all.other_last_ms, 500);
	ck_assert_uint_eq(all.total, 6 + 7);
	client_usage_free(a);
	client_usage_free(b);
}
END_TEST

/* A new track: the most requested move, the total stays, the order of
 * eviction of those moved is kept. */
START_TEST(adopt_keeps_the_top_and_the_total)
{
	struct client_usage *big = client_usage_new(10, 1), *small = client_usage_new(2, 9);
	char key[8];

	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "c%d", i);
		for (int r = 0; r <= i % 3; r++)
			count(big, key, 10 * i + r);
	}
	client_usage_adopt(small, big);
	take(small, 10);
	ck_assert_uint_eq(snap.n, 2);
	ck_assert_str_eq(snap.rows[0].key, "c8"); /* 3 requests, the most recent */
	ck_assert_str_eq(snap.rows[1].key, "c5");
	ck_assert_uint_eq(snap.view.total, 1 + 2 + 3 + 1 + 2 + 3 + 1 + 2 + 3 + 1);
	ck_assert_uint_eq(snap.view.other, snap.view.total - 6);
	count(small, "new", 1000); /* evicts c5, the older of two with 3 */
	take(small, 10);
	ck_assert_uint_eq(requests_of("c5"), 0);
	ck_assert_uint_eq(requests_of("c8"), 3);
	client_usage_free(big);
	client_usage_free(small);
}
END_TEST

START_TEST(long_keys_cut_and_kept_apart)
{
	struct client_usage *u = client_usage_new(4, 3);
	char a[100], b[100];

	memset(a, 'a', 99);
	a[99] = '\0';
	memcpy(b, a, sizeof(b));
	b[70] = 'b'; /* differs past the 64 bytes kept: the same client */
	count(u, a, 1);
	count(u, b, 2);
	client_usage_count(u, "x\0y", 3, 3, 3);
	client_usage_count(u, "x\0z", 3, 4, 4);
	take(u, 4);
	ck_assert_uint_eq(snap.n, 3);
	ck_assert_uint_eq(snap.rows[0].len, CLIENT_KEY_MAX);
	ck_assert_uint_eq(snap.rows[0].requests, 2);
	client_usage_free(u);
}
END_TEST

START_TEST(labels_are_printable_and_distinct)
{
	char out[CLIENT_USAGE_LABEL_MAX];

	client_usage_label("acme \"mobile\"\\", 14, out);
	ck_assert_str_eq(out, "acme \"mobile\"\\");
	client_usage_label("a\nb\x01%\xff", 6, out);
	ck_assert_str_eq(out, "a%0Ab%01%25%FF");
	char all[CLIENT_KEY_MAX];
	memset(all, 0x80, sizeof(all));
	client_usage_label(all, sizeof(all), out);
	ck_assert_uint_eq(strlen(out), CLIENT_USAGE_LABEL_MAX - 1);
}
END_TEST

/* ---- a reader racing the writer ---- */

#define RACE_REQUESTS 400000

static struct client_usage *race;
static atomic_bool race_done;

static void *race_writer(void *arg)
{
	char key[32];

	(void)arg;
	for (int i = 0; i < RACE_REQUESTS; i++) {
		if (i % 4 == 0)
			snprintf(key, sizeof(key), "steady-%d", i % 3);
		else
			snprintf(key, sizeof(key), "once-%d", i); /* keeps evicting */
		client_usage_count(race, key, strlen(key), i, (uint64_t)i + 1);
	}
	atomic_store(&race_done, true);
	return NULL;
}

/* Every read adds up to the total it read; a steady client never goes
 * back; torn entries would break one or the other. */
START_TEST(reader_racing_the_writer_sees_consistent_counts)
{
	static struct usage_row rows[64];
	pthread_t t;
	uint64_t last_total = 0, steady[3] = { 0 };
	long reads = 0;

	race = client_usage_new(64, 5);
	atomic_store(&race_done, false);
	ck_assert_int_eq(pthread_create(&t, NULL, race_writer, NULL), 0);
	while (!atomic_load(&race_done) || reads == 0) {
		struct usage_view v;
		size_t n = client_usage_read(race, rows, &v);
		uint64_t sum = 0;
		for (size_t i = 0; i < n; i++) {
			sum += rows[i].requests;
			int k;
			if (sscanf(rows[i].key, "steady-%d", &k) == 1) {
				ck_assert_uint_ge(rows[i].requests, steady[k]);
				steady[k] = rows[i].requests;
			} else {
				ck_assert_uint_eq(strncmp(rows[i].key, "once-", 5), 0);
				ck_assert_uint_eq(rows[i].requests, 1);
			}
		}
		ck_assert_uint_le(sum, v.total);
		ck_assert_uint_eq(sum + v.other, v.total);
		ck_assert_uint_ge(v.total, last_total);
		last_total = v.total;
		reads++;
	}
	pthread_join(t, NULL);
	struct usage_view v;
	size_t n = client_usage_read(race, rows, &v);
	ck_assert_uint_eq(v.total, RACE_REQUESTS);
	uint64_t steady_sum = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(rows[i].key, "steady-", 7) == 0)
			steady_sum += rows[i].requests;
	ck_assert_uint_eq(steady_sum, RACE_REQUESTS / 4);
	client_usage_free(race);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("client_usage");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, heavy_hitters_exact_among_random_keys);
	tcase_add_test(tc, bound_respected_for_random_keys);
	tcase_add_test(tc, eviction_order);
	tcase_add_test(tc, no_key_and_no_room_count_as_other);
	tcase_add_test(tc, merge_sums_keys_and_folds_the_rest);
	tcase_add_test(tc, adopt_keeps_the_top_and_the_total);
	tcase_add_test(tc, long_keys_cut_and_kept_apart);
	tcase_add_test(tc, labels_are_printable_and_distinct);
	tcase_add_test(tc, reader_racing_the_writer_sees_consistent_counts);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
