/* SPDX-License-Identifier: Apache-2.0 */
#include "lit_index.h"

#include <string.h>

#define EMPTY UINT16_MAX

/* A key's first bytes, kept in its entry: a key that short is compared
 * without leaving the entry's cache line. */
#define HEAD 8

struct entry {
	uint32_t hash;
	uint16_t len;
	uint16_t pos;  /* position in the build's key[]; EMPTY: a free entry */
	char head[HEAD]; /* the key's first min(len, HEAD) bytes, then zeros */
};

struct lit_index {
	uint32_t mask;          /* entries - 1; entries a power of two >= 2n */
	const struct entry *entry;
	const uint32_t *off;    /* off[pos]: where the bytes of key pos past HEAD are in pool */
	const char *pool;
};

uint32_t lit_index_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a, then a final mix for the low bits */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	h ^= h >> 16;
	h *= 0x7feb352du;
	h ^= h >> 15;
	h *= 0x846ca68bu;
	h ^= h >> 16;
	return h;
}

const struct lit_index *lit_index_build(struct arena *a, const struct span *key, int n,
					uint32_t (*hash)(const char *s, size_t len))
{
	struct lit_index *ix;
	struct entry *entry;
	uint32_t *off;
	char *pool;
	size_t entries = 2, bytes = 0;

	if (n < 1 || n > LIT_INDEX_MAX_KEYS)
		return NULL;
	for (int i = 0; i < n; i++) {
		if (key[i].len > LIT_INDEX_MAX_LEN)
			return NULL;
		bytes += key[i].len > HEAD ? key[i].len - HEAD : 0;
	}
	while (entries < 2 * (size_t)n)
		entries *= 2;
	ix = arena_alloc(a, sizeof(*ix));
	entry = arena_array(a, entries, sizeof(*entry));
	off = arena_array(a, (size_t)n, sizeof(*off));
	pool = arena_alloc(a, bytes ? bytes : 1);
	if (!ix || !entry || !off || !pool)
		return NULL;
	for (size_t i = 0; i < entries; i++)
		entry[i].pos = EMPTY;
	bytes = 0;
	for (int i = 0; i < n; i++) {
		uint32_t h = hash(key[i].ptr, key[i].len);
		size_t at = h & (entries - 1);

		while (entry[at].pos != EMPTY)
			at = (at + 1) & (entries - 1);
		size_t head = key[i].len < HEAD ? key[i].len : HEAD;

		entry[at] = (struct entry){ h, (uint16_t)key[i].len, (uint16_t)i, { 0 } };
		memcpy(entry[at].head, key[i].ptr, head);
		memcpy(pool + bytes, key[i].ptr + head, key[i].len - head);
		off[i] = (uint32_t)bytes;
		bytes += key[i].len - head;
	}
	*ix = (struct lit_index){ (uint32_t)(entries - 1), entry, off, pool };
	return ix;
}

int lit_index_find(const struct lit_index *ix, uint32_t h, const char *s, size_t len)
{
	for (uint32_t at = h & ix->mask;; at = (at + 1) & ix->mask) {
		const struct entry *e = &ix->entry[at];

		if (e->pos == EMPTY)
			return -1;
		if (e->hash != h || e->len != len)
			continue;
		if (len <= HEAD ? memcmp(e->head, s, len) == 0
				: memcmp(e->head, s, HEAD) == 0 &&
				  memcmp(ix->pool + ix->off[e->pos], s + HEAD, len - HEAD) == 0)
			return e->pos;
	}
}
