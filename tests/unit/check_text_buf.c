/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for text_buf.c: text that outgrows its first room, and a
 * failed text that ends as NULL. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "text_buf.h"

START_TEST(grows_past_its_first_room)
{
	struct text_buf t;
	size_t len = 0;

	ck_assert(text_buf_init(&t, 4));
	for (int i = 0; i < 1000; i++)
		text_buf_printf(&t, "%03d,", i);
	text_buf_printf(&t, "%s", "");
	char *s = text_buf_finish(&t, &len);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(len, 4000);
	ck_assert_uint_eq(strlen(s), 4000);
	ck_assert(strncmp(s, "000,001,002,", 12) == 0);
	ck_assert_str_eq(s + 3992, "998,999,");
	free(s);
}
END_TEST

START_TEST(one_long_piece)
{
	struct text_buf t;
	size_t len = 0;
	char big[10000];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert(text_buf_init(&t, 16));
	text_buf_printf(&t, "<%s>", big);
	char *s = text_buf_finish(&t, &len);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(len, sizeof(big) + 1);
	ck_assert_int_eq(s[0], '<');
	ck_assert_int_eq(s[len - 1], '>');
	free(s);
}
END_TEST

START_TEST(failed_text_is_null)
{
	struct text_buf t;
	size_t len = 7;

	ck_assert(text_buf_init(&t, 64));
	text_buf_printf(&t, "kept until the failure");
	t.failed = true; /* as a failed allocation leaves it */
	text_buf_printf(&t, "ignored");
	ck_assert_ptr_null(text_buf_finish(&t, &len));
	ck_assert_uint_eq(len, 7);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("text_buf");
	TCase *tc = tcase_create("text");

	tcase_add_test(tc, grows_past_its_first_room);
	tcase_add_test(tc, one_long_piece);
	tcase_add_test(tc, failed_text_is_null);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
