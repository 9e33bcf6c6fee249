/* SPDX-License-Identifier: Apache-2.0 */
#include "shift.h"

#include "client_key.h"
#include "plan_types.h"

#include <string.h>
#include <strings.h>

#define FNV_OFFSET 14695981039346656037u
#define FNV_PRIME 1099511628211u

static uint64_t fnv1a(uint64_t h, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * FNV_PRIME;
	return h;
}

/* MurmurHash3's finaliser: every input bit reaches every output bit, which
 * FNV-1a alone does poorly for keys that differ only in their last byte. */
static uint64_t fmix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53u;
	h ^= h >> 33;
	return h;
}

unsigned shift_bucket(const char *salt, const char *key, size_t len)
{
	uint64_t h = fnv1a(FNV_OFFSET, salt, strlen(salt));

	h = fnv1a(h, "", 1); /* the 0x00 between salt and key */
	h = fmix64(fnv1a(h, key, len));
	return (unsigned)(((h >> 32) * SHIFT_BUCKETS) >> 32);
}

bool shift_is_new(unsigned bucket, unsigned percent)
{
	return bucket < percent * (SHIFT_BUCKETS / 100);
}

enum split_side shift_forced_side(const char *value, size_t len)
{
	if (value && len == 3 && strncasecmp(value, "new", 3) == 0)
		return SIDE_NEW;
	if (value && len == 3 && strncasecmp(value, "old", 3) == 0)
		return SIDE_OLD;
	return SIDE_NONE;
}

void shift_place(const struct plan_clients *c, const struct route_request *req,
		 unsigned percent, struct shift_place *out)
{
	char key[CLIENT_KEY_MAX + 1];
	size_t len = client_key(c, req, key, sizeof(key));
	enum split_side forced = shift_forced_side(req->side, req->side_len);

	out->bucket = len ? (int)shift_bucket(c->salt, key, len) : -1;
	out->forced = forced != SIDE_NONE;
	if (out->forced)
		out->side = forced;
	else
		out->side = out->bucket >= 0 && shift_is_new((unsigned)out->bucket, percent)
				    ? SIDE_NEW : SIDE_OLD;
}
