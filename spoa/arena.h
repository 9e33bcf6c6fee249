/* SPDX-License-Identifier: Apache-2.0 */
/* arena: a bump allocator that frees everything at once. A loaded plan and
 * its YAML tree each live in one arena, so no error path can leak. */
#ifndef CUTOVER_ARENA_H
#define CUTOVER_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
	struct arena_block *blocks;
	size_t total; /* bytes obtained from malloc so far */
};

/* No arena grows beyond this: a plan's worst case stays far below it. */
#define ARENA_LIMIT ((size_t)256 << 20)

/* Zeroed, 16-byte aligned memory, or NULL when out of memory or over limit. */
void *arena_alloc(struct arena *a, size_t size);

/* n elements of size bytes each, checked for overflow. */
void *arena_array(struct arena *a, size_t n, size_t size);

/* A NUL-terminated copy of s[0..len). */
char *arena_strndup(struct arena *a, const char *s, size_t len);

/* Frees every block; the arena can be used again afterwards. */
void arena_release(struct arena *a);

#endif
