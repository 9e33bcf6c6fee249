/* SPDX-License-Identifier: Apache-2.0 */
/* shift: which side of a progressive shift a client is on (docs/plan.md,
 * "Progressive shift"). Pure: no I/O, no allocation.
 *
 * A client's bucket is a number in [0, SHIFT_BUCKETS) fixed by the plan's
 * salt and the client's key alone (client_key.h), never by the route, so a
 * client is on the same side of every split route, and the same on every
 * agent and after every restart:
 *
 *     h = FNV-1a 64 over salt bytes, one 0x00 byte, key bytes
 *     h = the MurmurHash3 fmix64 finaliser of h
 *     bucket = ((h >> 32) * SHIFT_BUCKETS) >> 32
 *
 * The client takes the new side of a route split at percent P when bucket
 * < P * SHIFT_BUCKETS / 100, so raising P only ever moves clients from old
 * to new. A request without a key takes the old side. X-Cutover-Side
 * (argument `side`) "new" or "old", in any case, forces the side; any other
 * value is ignored. */
#ifndef CUTOVER_SHIFT_H
#define CUTOVER_SHIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "router.h"

#define SHIFT_BUCKETS 10000

struct plan_clients;

/* Where a request is on a split route. */
struct shift_place {
	enum split_side side; /* SIDE_NEW or SIDE_OLD */
	int bucket;           /* the client's bucket; -1: the request has no key */
	bool forced;          /* side comes from X-Cutover-Side */
};

/* The client's bucket for its key (len bytes) under salt (NUL-terminated). */
unsigned shift_bucket(const char *salt, const char *key, size_t len);

/* True when bucket is on the new side of a route split at percent (0..100). */
bool shift_is_new(unsigned bucket, unsigned percent);

/* The side X-Cutover-Side's value asks for (len bytes; NULL: absent), or
 * SIDE_NONE for any other value. */
enum split_side shift_forced_side(const char *value, size_t len);

/* Places req's client on a route split at percent, under the plan's
 * clients block c. */
void shift_place(const struct plan_clients *c, const struct route_request *req,
		 unsigned percent, struct shift_place *out);

#endif
