/* SPDX-License-Identifier: Apache-2.0 */
/* client_usage: who still calls deprecated routes, in bounded memory. Pure:
 * no I/O, no libev; allocation only in client_usage_new.
 *
 * A table counts requests per client key for at most `cap` keys (the plan's
 * clients.track); every request also counts in the table's total, so the
 * clients outside the table ("other") are total minus the table's counts,
 * exactly. A key not in a full table takes the place of the entry with the
 * fewest requests, the one idle longest among equals; the evicted entry's
 * requests stay in the total and so count as other from then on. A key
 * therefore counts every one of its requests as long as it stays in, and
 * it stays in while at least one other entry has fewer requests than it,
 * or as many and a later one: a client that sends more than once is never
 * evicted by clients that send once.
 *
 * One writer (a worker thread), any number of readers under the caller's
 * lock against client_usage_free and client_usage_adopt: the writer takes
 * no lock. Each entry is a tiny seqlock (relaxed atomics, one fence); a
 * reader that finds one being written retries it, and after a few tries
 * leaves it out, its requests then counted as other for that read. The
 * writer bumps the total before an entry, so a reader that reads the
 * entries first and the total last never finds more in the entries than in
 * the total: what it reads adds up to the total it read. */
#ifndef CUTOVER_CLIENT_USAGE_H
#define CUTOVER_CLIENT_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client_key.h"

struct client_usage;

/* One client as a reader sees it. */
struct usage_row {
	char key[CLIENT_KEY_MAX + 1]; /* raw bytes, NUL-terminated (may hold NUL) */
	size_t len;
	uint64_t requests;
	int64_t last_ms;              /* Unix time of its last request, milliseconds */
};

/* What a read or a merge adds up to. */
struct usage_view {
	uint64_t total;           /* every request counted */
	uint64_t other;           /* the ones not in the rows */
	int64_t other_last_ms;    /* last request counted as other (evicted or no key); 0: none */
	uint64_t last_mono_ns;    /* monotonic time of the last request; 0: none */
};

/* A table for cap keys (0: every request counts as other); seed varies the
 * hash of keys (pass a random one: clients choose their keys). NULL when out
 * of memory. */
struct client_usage *client_usage_new(unsigned cap, uint64_t seed);
void client_usage_free(struct client_usage *u);
unsigned client_usage_cap(const struct client_usage *u);

/* The writer: one request of client key (len 0: no key, counted as other;
 * longer than CLIENT_KEY_MAX: cut there) at unix_ms, monotonic mono_ns. */
void client_usage_count(struct client_usage *u, const char *key, size_t len, int64_t unix_ms,
			uint64_t mono_ns);

/* The writer, when the table must change size: dst (new, empty) takes src's
 * total and times and its entries with the most requests (the most recent
 * among equals), as many as fit; the others count as other. */
void client_usage_adopt(struct client_usage *dst, const struct client_usage *src);

/* A reader: src's entries into rows (room for client_usage_cap(src) rows),
 * their number returned; view gets src's total and times, and other (the
 * total less the rows). */
size_t client_usage_read(const struct client_usage *src, struct usage_row *rows,
			 struct usage_view *view);

/* Several reads made one: rows (n of them, from any tables) of one key are
 * summed; the keep rows with the most requests (the most recent among
 * equals, then by key) stay, first to last in that order, the rest go into
 * view's other and other_last_ms. Returns how many stay. */
size_t client_usage_merge(struct usage_row *rows, size_t n, size_t keep, struct usage_view *view);

/* A key as a label or listing shows it: printable ASCII, each byte outside
 * 0x20-0x7e and '%' itself written %XX, so that distinct keys stay
 * distinct. out needs CLIENT_USAGE_LABEL_MAX bytes; NUL-terminated. */
#define CLIENT_USAGE_LABEL_MAX (3 * CLIENT_KEY_MAX + 1)
void client_usage_label(const char *key, size_t len, char *out);

#endif
