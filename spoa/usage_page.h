/* SPDX-License-Identifier: Apache-2.0 */
/* usage_page: the agent's /clients and /clients.json, from the merged rows
 * of client_usage (metrics_usage). Pure: no I/O.
 *
 * Both list the clients most recent first, each with its requests on
 * deprecated routes and the time of its last one (UTC, milliseconds), then
 * the others together. /clients.json is one object whose first member is
 * quiet_seconds (an HTTP gate reads the first 16 KiB of an answer):
 *   {"quiet_seconds":12.5,"requests":610,
 *    "clients":[{"client":"acme","requests":300,"last_request":"2026-12-02T16:40:00.123Z"},...],
 *    "other":{"requests":10,"last_request":"..."}}
 * A key is shown as client_usage_label writes it. */
#ifndef CUTOVER_USAGE_PAGE_H
#define CUTOVER_USAGE_PAGE_H

#include <stddef.h>

#include "client_usage.h"

/* rows are reordered (most recent first). malloc'd, NUL-terminated; NULL
 * when out of memory. */
char *usage_page_json(struct usage_row *rows, size_t n, const struct usage_view *v,
		      double quiet, size_t *len);
char *usage_page_text(struct usage_row *rows, size_t n, const struct usage_view *v,
		      double quiet, size_t *len);

/* Unix milliseconds as 2026-12-02T16:40:00.123Z (out: 25 bytes at least). */
#define USAGE_TIME_MAX 32
void usage_time_text(int64_t ms, char *out, size_t cap);

#endif
