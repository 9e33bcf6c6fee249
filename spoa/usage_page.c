/* SPDX-License-Identifier: Apache-2.0 */
#include "usage_page.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_out.h"
#include "text_buf.h"

void usage_time_text(int64_t ms, char *out, size_t cap)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	if (ms < 0 || !gmtime_r(&s, &tm)) {
		snprintf(out, cap, "-");
		return;
	}
	snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* The most recent first, then the most requests. */
static int by_recency(const void *a, const void *b)
{
	const struct usage_row *x = a, *y = b;

	if (x->last_ms != y->last_ms)
		return x->last_ms > y->last_ms ? -1 : 1;
	return (x->requests < y->requests) - (x->requests > y->requests);
}

static void sort_rows(struct usage_row *rows, size_t n)
{
	if (n > 1)
		qsort(rows, n, sizeof(*rows), by_recency);
}

static void json_time(struct json_out *j, int64_t ms)
{
	char t[USAGE_TIME_MAX];

	if (ms <= 0) {
		json_out_str(j, NULL);
		return;
	}
	usage_time_text(ms, t, sizeof(t));
	json_out_str(j, t);
}

char *usage_page_json(struct usage_row *rows, size_t n, const struct usage_view *v,
		      double quiet, size_t *len)
{
	struct json_out j = { 0 };
	char label[CLIENT_USAGE_LABEL_MAX];

	sort_rows(rows, n);
	json_out_open(&j, '{');
	json_out_key(&j, "quiet_seconds");
	json_out_num(&j, quiet);
	json_out_key(&j, "requests");
	json_out_uint(&j, v->total);
	json_out_key(&j, "clients");
	json_out_open(&j, '[');
	for (size_t i = 0; i < n; i++) {
		client_usage_label(rows[i].key, rows[i].len, label);
		json_out_open(&j, '{');
		json_out_key(&j, "client");
		json_out_str(&j, label);
		json_out_key(&j, "requests");
		json_out_uint(&j, rows[i].requests);
		json_out_key(&j, "last_request");
		json_time(&j, rows[i].last_ms);
		json_out_close(&j, '}');
	}
	json_out_close(&j, ']');
	json_out_key(&j, "other");
	json_out_open(&j, '{');
	json_out_key(&j, "requests");
	json_out_uint(&j, v->other);
	json_out_key(&j, "last_request");
	json_time(&j, v->other_last_ms);
	json_out_close(&j, '}');
	json_out_close(&j, '}');
	return json_out_done_line(&j, len);
}

char *usage_page_text(struct usage_row *rows, size_t n, const struct usage_view *v,
		      double quiet, size_t *len)
{
	struct text_buf t;
	char label[CLIENT_USAGE_LABEL_MAX], when[USAGE_TIME_MAX];
	int width = (int)strlen("(other)");

	if (!text_buf_init(&t, 4096))
		return NULL;
	sort_rows(rows, n);
	for (size_t i = 0; i < n; i++) {
		client_usage_label(rows[i].key, rows[i].len, label);
		width = (int)strlen(label) > width ? (int)strlen(label) : width;
	}
	text_buf_printf(&t, "%-*s  %10s  %s\n", width, "CLIENT", "REQUESTS",
			"LAST REQUEST (UTC)");
	for (size_t i = 0; i < n; i++) {
		client_usage_label(rows[i].key, rows[i].len, label);
		usage_time_text(rows[i].last_ms, when, sizeof(when));
		text_buf_printf(&t, "%-*s  %10" PRIu64 "  %s\n", width, label,
				rows[i].requests, when);
	}
	if (v->other_last_ms > 0)
		usage_time_text(v->other_last_ms, when, sizeof(when));
	else
		snprintf(when, sizeof(when), "-");
	text_buf_printf(&t, "%-*s  %10" PRIu64 "  %s\n", width, "(other)", v->other, when);
	text_buf_printf(&t, "%" PRIu64 " requests on deprecated routes; quiet for %.1f s\n",
			v->total, quiet);
	return text_buf_finish(&t, len);
}
