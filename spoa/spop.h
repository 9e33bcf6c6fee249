/* SPDX-License-Identifier: Apache-2.0 */
/* spop: pure SPOP 2.0 primitives (HAProxy's varint, typed data, KV lists).
 *
 * Every decoder takes a cursor *p and a bound end, never reads at or past
 * end, and advances *p only on success. Every encoder takes a cursor *p and
 * a bound end, never writes at or past end, and advances *p only on success.
 * No allocation, no I/O, no logging. Decoded strings are views into the
 * caller's buffer. */
#ifndef CUTOVER_SPOP_H
#define CUTOVER_SPOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum spop_result {
	SPOP_OK = 0,
	SPOP_INCOMPLETE = -1, /* the bytes end before the item does */
	SPOP_INVALID = -2,    /* the bytes can never form a valid item */
	SPOP_NOSPACE = -3,    /* an encoder ran out of room */
};

/* Typed data (the low nibble of the type byte; the high nibble holds flags). */
enum spop_type {
	SPOP_T_NULL = 0,
	SPOP_T_BOOL = 1,
	SPOP_T_INT32 = 2,
	SPOP_T_UINT32 = 3,
	SPOP_T_INT64 = 4,
	SPOP_T_UINT64 = 5,
	SPOP_T_IPV4 = 6,
	SPOP_T_IPV6 = 7,
	SPOP_T_STRING = 8,
	SPOP_T_BINARY = 9,
};

#define SPOP_TYPE_MASK 0x0F
#define SPOP_BOOL_TRUE 0x10 /* flag bit of a BOOL type byte */
#define SPOP_VARINT_MAX 10  /* bytes of the longest varint (2^64-1) */

/* A length-prefixed byte string on the wire; a view, not NUL-terminated. */
struct spop_bytes {
	const uint8_t *ptr;
	size_t len;
};

struct spop_data {
	enum spop_type type;
	union {
		bool boolean;
		/* INT32, UINT32, INT64, UINT64: the raw 64-bit pattern, as HAProxy
		 * decodes all four alike. */
		uint64_t integer;
		uint8_t ipv4[4];  /* network order */
		uint8_t ipv6[16];
		struct spop_bytes bytes; /* STRING, BINARY */
	} u;
};

/* Varint: below 240 one byte; otherwise 0xF0|(v&15), then 7-bit groups of
 * (v-240)>>4, each group after subtracting 128 on continuation. */
int spop_varint_decode(const uint8_t **p, const uint8_t *end, uint64_t *out);
int spop_varint_encode(uint8_t **p, uint8_t *end, uint64_t v);
/* Bytes spop_varint_encode writes for v (1..10). */
size_t spop_varint_size(uint64_t v);

/* Untyped string: varint length, then the bytes (KV keys, message and
 * argument names, variable names). */
int spop_bytes_decode(const uint8_t **p, const uint8_t *end, struct spop_bytes *out);
int spop_bytes_encode(uint8_t **p, uint8_t *end, const void *s, size_t len);

/* Typed data. Reserved types (10-15) are SPOP_INVALID: they cannot be
 * skipped safely. A BOOL with any other flag than 0x10 set is accepted; only
 * the 0x10 bit is its value. */
int spop_data_decode(const uint8_t **p, const uint8_t *end, struct spop_data *out);
int spop_data_skip(const uint8_t **p, const uint8_t *end);
int spop_data_encode(uint8_t **p, uint8_t *end, const struct spop_data *d);

/* One KV-list item: an untyped key, then a typed value. */
int spop_kv_decode(const uint8_t **p, const uint8_t *end, struct spop_bytes *key,
		   struct spop_data *value);
int spop_kv_encode(uint8_t **p, uint8_t *end, const char *key, const struct spop_data *value);

/* True when b holds exactly the bytes of the NUL-terminated s. Inline, so
 * the length of a literal is known at compile time. */
static inline bool spop_bytes_eq(struct spop_bytes b, const char *s)
{
	size_t n = strlen(s);

	return b.len == n && (n == 0 || memcmp(b.ptr, s, n) == 0);
}

/* Big-endian 32-bit helpers for the frame length and flags. */
static inline uint32_t spop_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void spop_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#endif
