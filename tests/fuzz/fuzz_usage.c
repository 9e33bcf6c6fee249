/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: who calls deprecated routes. The input is read two
 * ways. As an agent's /clients.json answer, given to usage_list_add (what
 * `cutover-spoa --clients` reads from the network) and listed: no crash,
 * and an answer refused leaves the list as it was. As client keys, one per
 * line, counted in a client_usage table of 8: after every key the rows add
 * up to the total, no row is above it, no key is listed twice, and a merge
 * keeps every request. */
#include <stdlib.h>
#include <string.h>

#include "client_usage.h"
#include "usage_list.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)
#define CAP 8

static void as_answer(const uint8_t *data, size_t size)
{
	struct usage_list l = { 0 };
	char why[128];
	size_t len;

	if (!usage_list_add(&l, (const char *)data, size, why, sizeof(why)))
		CHECK(l.n == 0 && l.agents == 0);
	char *text = usage_list_text(&l, &len);
	CHECK(text != NULL && strlen(text) == len);
	free(text);
	usage_list_free(&l);
}

static void as_keys(const uint8_t *data, size_t size)
{
	struct client_usage *u = client_usage_new(CAP, size);
	struct usage_row rows[CAP];
	struct usage_view v;
	uint64_t sent = 0;
	const char *p = (const char *)data, *end = p + size;

	CHECK(u != NULL);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		client_usage_count(u, p, n, (int64_t)sent, sent + 1);
		sent++;
		p += n + 1;
		size_t nrows = client_usage_read(u, rows, &v);
		uint64_t sum = 0;
		CHECK(nrows <= CAP && v.total == sent);
		for (size_t i = 0; i < nrows; i++) {
			sum += rows[i].requests;
			CHECK(rows[i].requests >= 1 && rows[i].len >= 1 && rows[i].len <= CLIENT_KEY_MAX);
			for (size_t j = 0; j < i; j++)
				CHECK(rows[j].len != rows[i].len ||
				      memcmp(rows[j].key, rows[i].key, rows[i].len) != 0);
		}
		CHECK(sum + v.other == sent);
		size_t kept = client_usage_merge(rows, nrows, 3, &v);
		sum = 0;
		for (size_t i = 0; i < kept; i++)
			sum += rows[i].requests;
		CHECK(kept <= 3 && sum + v.other == sent);
	}
	client_usage_free(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_answer(data, size);
	as_keys(data, size);
	return 0;
}
