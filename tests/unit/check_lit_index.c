/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for lit_index.c: every key is found at its position; keys
 * that differ from one only in their last byte, their length, their bytes
 * past the inline head, or that are a prefix of one, are not; the same
 * holds when every key has the same hash (one probe chain, wrapping round
 * the table's end); builds over the limits fail. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "lit_index.h"

#define NKEYS 1000

static struct arena arena;
static char text[NKEYS][32];
static struct span key[NKEYS];

static uint32_t same_hash(const char *s, size_t len)
{
	(void)s;
	(void)len;
	return UINT32_MAX; /* the table's last entry: every chain wraps */
}

/* Keys of 2 to 12 bytes, the "segment-" ones alike in their first 8. */
static void make_keys(int n)
{
	for (int i = 0; i < n; i++) {
		int len = i % 3 == 0 ? snprintf(text[i], sizeof(text[i]), "r%d", i)
			: i % 3 == 1 ? snprintf(text[i], sizeof(text[i]), "segment-%d", i)
				     : snprintf(text[i], sizeof(text[i]), "%d-squids", i);
		key[i] = (struct span){ text[i], (size_t)len };
	}
}

static int find(const struct lit_index *ix, uint32_t (*hash)(const char *, size_t),
		const char *s, size_t len)
{
	return lit_index_find(ix, hash(s, len), s, len);
}

static void all_found(const struct lit_index *ix, uint32_t (*hash)(const char *, size_t), int n)
{
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(find(ix, hash, key[i].ptr, key[i].len), i);
}

/* Near misses of every key: none is in the set. */
static void near_misses_absent(const struct lit_index *ix,
			       uint32_t (*hash)(const char *, size_t), int n)
{
	char buf[40];

	for (int i = 0; i < n; i++) {
		size_t len = key[i].len;

		memcpy(buf, key[i].ptr, len);
		buf[len - 1] = '~'; /* last byte: past the head for long keys */
		ck_assert_int_eq(find(ix, hash, buf, len), -1);
		buf[len - 1] = key[i].ptr[len - 1];
		buf[0] = '~'; /* first byte: in the head */
		ck_assert_int_eq(find(ix, hash, buf, len), -1);
		buf[0] = key[i].ptr[0];
		buf[len] = '~'; /* one byte longer */
		ck_assert_int_eq(find(ix, hash, buf, len + 1), -1);
		/* a prefix, unless it is itself a key ("r1" of "r10") */
		int got = find(ix, hash, buf, len - 1);
		ck_assert(got == -1 || (key[got].len == len - 1 &&
					memcmp(key[got].ptr, buf, len - 1) == 0));
	}
	ck_assert_int_eq(find(ix, hash, "", 0), -1);
	ck_assert_int_eq(find(ix, hash, "segment-", 8), -1);
}

static void setup(void)
{
	arena = (struct arena){ 0 };
}

static void teardown(void)
{
	arena_release(&arena);
}

START_TEST(thousand_keys)
{
	make_keys(NKEYS);
	const struct lit_index *ix = lit_index_build(&arena, key, NKEYS, lit_index_hash);

	ck_assert_ptr_nonnull(ix);
	all_found(ix, lit_index_hash, NKEYS);
	near_misses_absent(ix, lit_index_hash, NKEYS);
}
END_TEST

START_TEST(every_hash_collides)
{
	make_keys(200);
	const struct lit_index *ix = lit_index_build(&arena, key, 200, same_hash);

	ck_assert_ptr_nonnull(ix);
	all_found(ix, same_hash, 200);
	near_misses_absent(ix, same_hash, 200);
}
END_TEST

START_TEST(keys_are_copied)
{
	make_keys(20);
	const struct lit_index *ix = lit_index_build(&arena, key, 20, lit_index_hash);
	char was[32];
	size_t len = key[19].len;

	ck_assert_ptr_nonnull(ix);
	memcpy(was, text[19], len);
	memset(text, 'x', sizeof(text));
	ck_assert_int_eq(find(ix, lit_index_hash, was, len), 19);
}
END_TEST

START_TEST(one_key_and_empty_key)
{
	struct span one[2] = { { "", 0 }, { "api", 3 } };
	const struct lit_index *ix = lit_index_build(&arena, one, 2, lit_index_hash);

	ck_assert_ptr_nonnull(ix);
	ck_assert_int_eq(find(ix, lit_index_hash, "", 0), 0);
	ck_assert_int_eq(find(ix, lit_index_hash, "api", 3), 1);
	ck_assert_int_eq(find(ix, lit_index_hash, "ap", 2), -1);
}
END_TEST

START_TEST(limits)
{
	static char big[LIT_INDEX_MAX_LEN + 1];
	struct span over = { big, sizeof(big) }, at = { big, sizeof(big) - 1 };

	ck_assert_ptr_null(lit_index_build(&arena, key, 0, lit_index_hash));
	ck_assert_ptr_null(lit_index_build(&arena, &over, 1, lit_index_hash));
	const struct lit_index *ix = lit_index_build(&arena, &at, 1, lit_index_hash);
	ck_assert_ptr_nonnull(ix);
	ck_assert_int_eq(find(ix, lit_index_hash, big, sizeof(big) - 1), 0);
	ck_assert_int_eq(find(ix, lit_index_hash, big, sizeof(big)), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lit_index");
	TCase *tc = tcase_create("lookup");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, thousand_keys);
	tcase_add_test(tc, every_hash_collides);
	tcase_add_test(tc, keys_are_copied);
	tcase_add_test(tc, one_key_and_empty_key);
	tcase_add_test(tc, limits);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
