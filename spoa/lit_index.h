/* SPDX-License-Identifier: Apache-2.0 */
/* lit_index: finds a string among a fixed set of distinct strings, by hash.
 *
 * Built once, in an arena, from the set; read-only and allocation-free
 * afterwards. Open addressing with linear probing, at most half full, so
 * that a miss ends at an empty entry soon. Each entry holds the key's hash,
 * length and position inline: a probe reads one entry and compares bytes
 * only when hash and length both match; a key's first 8 bytes are in its
 * entry, the rest in one pool owned by the index, so that a lookup of a
 * short key reads the table alone and no lookup reads the caller's memory.
 * The hash is the caller's, the same at build and at lookup (lit_index_hash,
 * or any other: a constant one makes every key collide). */
#ifndef CUTOVER_LIT_INDEX_H
#define CUTOVER_LIT_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "pattern.h"

#define LIT_INDEX_MAX_KEYS 65534   /* keys in one index */
#define LIT_INDEX_MAX_LEN 65535    /* bytes in one key */

struct lit_index;

/* A 32-bit hash of s[0..len), well mixed in its low bits. */
uint32_t lit_index_hash(const char *s, size_t len);

/* An index of key[0..n): n in 1..LIT_INDEX_MAX_KEYS distinct keys of at
 * most LIT_INDEX_MAX_LEN bytes each, hashed with hash. NULL when out of
 * memory or over those limits. */
const struct lit_index *lit_index_build(struct arena *a, const struct span *key, int n,
					uint32_t (*hash)(const char *s, size_t len));

/* The position in key[] of the key equal to s[0..len), or -1; h is s's
 * hash under the build's hash function. */
int lit_index_find(const struct lit_index *ix, uint32_t h, const char *s, size_t len);

#endif
