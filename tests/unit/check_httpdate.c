/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for httpdate.c: plan dates to epochs and header values. Known
 * epochs come from `date -u -d ... +%s`; the sweep compares with the C
 * library's gmtime_r and strftime, which share no code with httpdate.c. */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpdate.h"

static int64_t parse_ok(const char *s)
{
	char why[128];
	int64_t e = -1;

	ck_assert_msg(httpdate_parse(s, strlen(s), &e, why, sizeof(why)), "%s: %s", s, why);
	return e;
}

static void parse_bad(const char *s, const char *reason)
{
	char why[128] = "";
	int64_t e = 12345;

	ck_assert_msg(!httpdate_parse(s, strlen(s), &e, why, sizeof(why)), "%s accepted", s);
	ck_assert_msg(strstr(why, reason) != NULL, "%s: '%s', want '%s'", s, why, reason);
	ck_assert_int_eq(e, 12345); /* untouched */
}

START_TEST(known_epochs)
{
	ck_assert_int_eq(parse_ok("1970-01-01"), 0);
	ck_assert_int_eq(parse_ok("1970-01-01T00:00:01Z"), 1);
	ck_assert_int_eq(parse_ok("2023-07-01"), 1688169600); /* RFC 9745's example */
	ck_assert_int_eq(parse_ok("2026-12-01"), 1796083200);
	ck_assert_int_eq(parse_ok("2027-06-30T00:00:00Z"), 1814313600);
	ck_assert_int_eq(parse_ok("2027-06-30"), 1814313600);
	ck_assert_int_eq(parse_ok("2026-12-01T08:30:00Z"), 1796113800);
	ck_assert_int_eq(parse_ok("2038-01-19T03:14:08Z"), 2147483648LL); /* past int32 */
	ck_assert_int_eq(parse_ok("9999-12-31T23:59:59Z"), 253402300799LL);
}
END_TEST

START_TEST(leap_years)
{
	ck_assert_int_eq(parse_ok("2000-02-29"), 951782400);  /* divisible by 400 */
	ck_assert_int_eq(parse_ok("2028-02-29"), 1835395200); /* by 4 */
	ck_assert_int_eq(parse_ok("2028-03-01") - parse_ok("2028-02-28"), 2 * 86400);
	ck_assert_int_eq(parse_ok("2027-03-01") - parse_ok("2027-02-28"), 86400);
	ck_assert_int_eq(parse_ok("2400-02-29") + 86400, parse_ok("2400-03-01"));
	parse_bad("2027-02-29", "no such day");
	parse_bad("2100-02-29", "no such day"); /* by 100, not by 400 */
	parse_bad("2027-02-30", "no such day");
}
END_TEST

START_TEST(bad_dates)
{
	static const char *form[] = {
		"", "2027", "2027-6-30", "2027-06-3", "27-06-30", "2027/06/30", "2027-06-30T",
		"2027-06-30T00:00:00", "2027-06-30T00:00Z", "2027-06-30 00:00:00Z",
		"2027-06-30t00:00:00z", "2027-06-30T00:00:00+00:00", "2027-06-30T00:00:00.5Z",
		"2027-06-30Z", "+2027-06-30", "2027-0a-30", "20270630", "2027-06-30T0:00:00Z ",
	};
	for (size_t i = 0; i < sizeof(form) / sizeof(form[0]); i++)
		parse_bad(form[i], "YYYY-MM-DD");
	parse_bad("2027-00-10", "no such day");
	parse_bad("2027-13-10", "no such day");
	parse_bad("2027-04-31", "no such day");
	parse_bad("2027-04-00", "no such day");
	parse_bad("2027-06-30T24:00:00Z", "no such time");
	parse_bad("2027-06-30T23:60:00Z", "no such time");
	parse_bad("2016-12-31T23:59:60Z", "no such time"); /* no leap second */
	parse_bad("1969-12-31T23:59:59Z", "1970 or later");
	parse_bad("0000-01-01", "1970 or later");
	/* a length that is right with a NUL inside is not a date */
	char why[64];
	int64_t e;
	ck_assert(!httpdate_parse("2027-06-3\0", 10, &e, why, sizeof(why)));
}
END_TEST

START_TEST(shown_forms)
{
	char sf[HTTPDATE_SF_SIZE], imf[HTTPDATE_IMF_SIZE];

	httpdate_sf(1688169600, sf);
	ck_assert_str_eq(sf, "@1688169600");
	httpdate_sf(0, sf);
	ck_assert_str_eq(sf, "@0");
	httpdate_sf(253402300799LL, sf);
	ck_assert_str_eq(sf, "@253402300799");
	httpdate_imf(1814313600, imf);
	ck_assert_str_eq(imf, "Wed, 30 Jun 2027 00:00:00 GMT");
	httpdate_imf(0, imf);
	ck_assert_str_eq(imf, "Thu, 01 Jan 1970 00:00:00 GMT");
	httpdate_imf(784111777, imf); /* RFC 9110's example */
	ck_assert_str_eq(imf, "Sun, 06 Nov 1994 08:49:37 GMT");
	httpdate_imf(253402300799LL, imf);
	ck_assert_str_eq(imf, "Fri, 31 Dec 9999 23:59:59 GMT");
	httpdate_imf(951782400 + 86399, imf);
	ck_assert_str_eq(imf, "Tue, 29 Feb 2000 23:59:59 GMT");
}
END_TEST

/* Every day from 1970 to 9999, at a time of day that moves: the date and
 * time are gmtime_r's of the epoch, the IMF-fixdate strftime's. (Plain ifs
 * in the loop: each ck_assert costs a write to Check's pipe.) */
START_TEST(every_day_against_libc)
{
	char text[80], imf[HTTPDATE_IMF_SIZE], want[64], why[128];
	long days = 0;

	for (;; days++) {
		time_t t = (time_t)days * 86400 + days % 24 * 3600 + days * 7 % 60 * 60 + days * 13 % 60;
		struct tm n;
		int64_t e = -1, midnight = -1;

		if (gmtime_r(&t, &n) == NULL)
			ck_abort_msg("gmtime_r(%lld)", (long long)t);
		if (n.tm_year + 1900 > 9999)
			break;
		snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02dZ", n.tm_year + 1900,
			 n.tm_mon + 1, n.tm_mday, n.tm_hour, n.tm_min, n.tm_sec);
		if (!httpdate_parse(text, 20, &e, why, sizeof(why)) || e != (int64_t)t)
			ck_abort_msg("%s: %lld, want %lld", text, (long long)e, (long long)t);
		httpdate_imf(e, imf);
		strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &n);
		if (strcmp(imf, want) != 0)
			ck_abort_msg("%s: %s, want %s", text, imf, want);
		if (!httpdate_parse(text, 10, &midnight, why, sizeof(why)) ||
		    midnight != (int64_t)days * 86400)
			ck_abort_msg("%.10s: %lld, want %lld", text, (long long)midnight,
				     (long long)days * 86400);
	}
	ck_assert_int_eq(days, 2932897); /* days from 1970-01-01 to 9999-12-31, both in */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("httpdate");
	TCase *tc = tcase_create("dates");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, known_epochs);
	tcase_add_test(tc, leap_years);
	tcase_add_test(tc, bad_dates);
	tcase_add_test(tc, shown_forms);
	tcase_add_test(tc, every_day_against_libc);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
