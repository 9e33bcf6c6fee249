/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for the log line formatter (log_format.c): the fixed keys and
 * their order, bare and quoted logfmt values, every escape in both formats,
 * invalid UTF-8, numbers, and cutting an overlong line. */
#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "log_format.h"

#define TS 1796008801LL /* 2026-11-30T03:20:01Z */

static char line[4096];

/* Formats into line (NUL-terminated for the asserts) with a buffer of cap. */
static const char *fmt(enum log_format f, const char *event, const char *msg,
		       const struct log_field *fields, size_t n, size_t cap)
{
	struct log_record r = { .sec = TS, .msec = 7, .level = "info", .event = event,
				.msg = msg, .fields = fields, .nfields = n };
	size_t len = log_format_line(f, &r, line, cap);

	ck_assert_uint_le(len, cap);
	ck_assert_uint_gt(len, 0);
	ck_assert_int_eq(line[len - 1], '\n');
	ck_assert_ptr_null(memchr(line, '\n', len - 1)); /* one line */
	line[len] = '\0';
	return line;
}

#define STR(k, v) { .key = (k), .type = LOG_FIELD_STR, .str = (v) }
#define UINT(k, v) { .key = (k), .type = LOG_FIELD_UINT, .uint = (v) }
#define INT(k, v) { .key = (k), .type = LOG_FIELD_INT, .sint = (v) }

START_TEST(logfmt_event_keys_in_order)
{
	const struct log_field f[] = { UINT("from", 3), STR("to_name", "new-reads"),
				       STR("plan", "/etc/cutover/plan.yaml"), INT("delta", -2) };

	ck_assert_str_eq(fmt(LOG_FORMAT_LOGFMT, "phase_change", NULL, f, 4, sizeof(line)),
			 "ts=2026-11-30T03:20:01.007Z level=info event=phase_change from=3 "
			 "to_name=new-reads plan=/etc/cutover/plan.yaml delta=-2\n");
}
END_TEST

START_TEST(logfmt_message_is_quoted_when_it_must_be)
{
	ck_assert_str_eq(fmt(LOG_FORMAT_LOGFMT, NULL, "stopped", NULL, 0, sizeof(line)),
			 "ts=2026-11-30T03:20:01.007Z level=info msg=stopped\n");
	ck_assert_str_eq(fmt(LOG_FORMAT_LOGFMT, NULL, "[w1 c2] accepted", NULL, 0, sizeof(line)),
			 "ts=2026-11-30T03:20:01.007Z level=info msg=\"[w1 c2] accepted\"\n");
	ck_assert_str_eq(fmt(LOG_FORMAT_LOGFMT, NULL, "a=b", NULL, 0, sizeof(line)),
			 "ts=2026-11-30T03:20:01.007Z level=info msg=\"a=b\"\n");
	ck_assert_str_eq(fmt(LOG_FORMAT_LOGFMT, NULL, "", NULL, 0, sizeof(line)),
			 "ts=2026-11-30T03:20:01.007Z level=info msg=\"\"\n");
}
END_TEST

START_TEST(logfmt_escapes)
{
	const struct log_field f[] = { STR("v", "say \"hi\"\\\n\r\t\x01\x7f!"), STR("e", NULL) };

	ck_assert_str_eq(fmt(LOG_FORMAT_LOGFMT, "x", NULL, f, 2, sizeof(line)),
			 "ts=2026-11-30T03:20:01.007Z level=info event=x "
			 "v=\"say \\\"hi\\\"\\\\\\n\\r\\t\\u0001\\u007f!\" e=\"\"\n");
}
END_TEST

START_TEST(json_escapes_and_numbers)
{
	const struct log_field f[] = { UINT("n", 18446744073709551615ULL), INT("i", -5),
				       STR("v", "a\"b\\c\nd\x1f") };

	ck_assert_str_eq(fmt(LOG_FORMAT_JSON, "plan_rejected", "m", f, 3, sizeof(line)),
			 "{\"ts\":\"2026-11-30T03:20:01.007Z\",\"level\":\"info\","
			 "\"event\":\"plan_rejected\",\"msg\":\"m\",\"n\":18446744073709551615,"
			 "\"i\":-5,\"v\":\"a\\\"b\\\\c\\nd\\u001f\"}\n");
}
END_TEST

START_TEST(utf8_kept_and_invalid_bytes_replaced)
{
	/* é (2 bytes), € (3), 😀 (4); then a lone continuation byte, a cut
	 * sequence, an overlong '/' (2 and 3 bytes), a surrogate. */
	const struct log_field f[] = { STR("ok", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"),
				       STR("bad", "\x80|\xe2\x82|\xc0\xaf|\xed\xa0\x80|\xe0\x80\xaf") };
	const char *want_bad = "\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
			       "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd";
	char want[256];

	snprintf(want, sizeof(want),
		 "ts=2026-11-30T03:20:01.007Z level=info event=x ok=\"\xc3\xa9\xe2\x82\xac"
		 "\xf0\x9f\x98\x80\" bad=\"%s\"\n", want_bad);
	ck_assert_str_eq(fmt(LOG_FORMAT_LOGFMT, "x", NULL, f, 2, sizeof(line)), want);
	snprintf(want, sizeof(want),
		 "{\"ts\":\"2026-11-30T03:20:01.007Z\",\"level\":\"info\",\"event\":\"x\","
		 "\"ok\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"bad\":\"%s\"}\n", want_bad);
	ck_assert_str_eq(fmt(LOG_FORMAT_JSON, "x", NULL, f, 2, sizeof(line)), want);
}
END_TEST

/* Every cap from the minimum up: the line ends properly, escapes are whole,
 * and a cut line says so. */
START_TEST(overlong_line_is_cut_cleanly)
{
	char big[600];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (size_t i = 0; i < sizeof(big) - 1; i += 7)
		big[i] = '"';
	const struct log_field f[] = { STR("a", big), UINT("b", 1) };

	for (int j = 0; j < 2; j++) {
		enum log_format format = j ? LOG_FORMAT_JSON : LOG_FORMAT_LOGFMT;
		const char *tail = j ? ",\"truncated\":true}\n" : " truncated=true\n";
		char full[2048];
		bool fitted = false;

		snprintf(full, sizeof(full), "%s", fmt(format, "e", NULL, f, 2, sizeof(line)));
		for (size_t cap = LOG_LINE_MIN; cap <= strlen(full) + 32; cap++) {
			const char *s = fmt(format, "e", NULL, f, 2, cap);
			size_t len = strlen(s);

			if (strcmp(s, full) == 0) {
				fitted = true;
				continue;
			}
			ck_assert_msg(!fitted, "cap %zu: cut after fitting: %s", cap, s);
			ck_assert_msg(len >= strlen(tail) && strcmp(s + len - strlen(tail), tail) == 0,
				      "cap %zu: %s", cap, s);
			/* a cut value ends with a quote after an even number of
			 * backslashes: no escape was split */
			const char *q = strstr(s, j ? "\"a\":\"" : "a=\"");
			if (q) {
				const char *end = s + len - strlen(tail) - 1;
				size_t bs = 0;
				ck_assert_msg(*end == '"', "cap %zu: %s", cap, s);
				while (end - bs - 1 > q && end[-(ptrdiff_t)bs - 1] == '\\')
					bs++;
				ck_assert_msg(bs % 2 == 0, "cap %zu: split escape: %s", cap, s);
			}
		}
		ck_assert_msg(fitted, "never fitted whole: %s", full);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("log_format");
	TCase *tc = tcase_create("format");

	tcase_add_test(tc, logfmt_event_keys_in_order);
	tcase_add_test(tc, logfmt_message_is_quoted_when_it_must_be);
	tcase_add_test(tc, logfmt_escapes);
	tcase_add_test(tc, json_escapes_and_numbers);
	tcase_add_test(tc, utf8_kept_and_invalid_bytes_replaced);
	tcase_add_test(tc, overlong_line_is_cut_cleanly);
	suite_add_tcase(s, tc);

	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
