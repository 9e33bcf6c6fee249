/* SPDX-License-Identifier: Apache-2.0 */
#include "spop.h"

#include <string.h>

int spop_varint_decode(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
	const uint8_t *q = *p;

	if (q >= end)
		return SPOP_INCOMPLETE;
	uint64_t value = *q++;
	if (value < 240) {
		*p = q;
		*out = value;
		return SPOP_OK;
	}
	/* Continuation bytes are added whole (no mask): the encoder's
	 * subtractions of 240 and 128 come back through the arithmetic. */
	for (unsigned shift = 4, n = 1; n < SPOP_VARINT_MAX; shift += 7, n++) {
		if (q >= end)
			return SPOP_INCOMPLETE;
		uint64_t b = *q++;
		uint64_t add = b << shift;
		if (add >> shift != b || value + add < value)
			return SPOP_INVALID; /* beyond 64 bits */
		value += add;
		if (b < 128) {
			*p = q;
			*out = value;
			return SPOP_OK;
		}
	}
	return SPOP_INVALID; /* longer than any 64-bit value needs */
}

size_t spop_varint_size(uint64_t v)
{
	if (v < 240)
		return 1;
	size_t n = 2;
	for (v = (v - 240) >> 4; v >= 128; v = (v - 128) >> 7)
		n++;
	return n;
}

int spop_varint_encode(uint8_t **p, uint8_t *end, uint64_t v)
{
	uint8_t *q = *p;

	if ((size_t)(end - q) < spop_varint_size(v))
		return SPOP_NOSPACE;
	if (v < 240) {
		*q++ = (uint8_t)v;
	} else {
		*q++ = (uint8_t)(0xF0 | (v & 0x0F));
		for (v = (v - 240) >> 4; v >= 128; v = (v - 128) >> 7)
			*q++ = (uint8_t)(v | 0x80);
		*q++ = (uint8_t)v;
	}
	*p = q;
	return SPOP_OK;
}

int spop_bytes_decode(const uint8_t **p, const uint8_t *end, struct spop_bytes *out)
{
	const uint8_t *q = *p;
	uint64_t len;
	int r = spop_varint_decode(&q, end, &len);

	if (r != SPOP_OK)
		return r;
	/* Compare with what is left, never form q + len: it may wrap. */
	if (len > (uint64_t)(end - q))
		return SPOP_INCOMPLETE;
	out->ptr = q;
	out->len = (size_t)len;
	*p = q + len;
	return SPOP_OK;
}

int spop_bytes_encode(uint8_t **p, uint8_t *end, const void *s, size_t len)
{
	uint8_t *q = *p;
	int r = spop_varint_encode(&q, end, len);

	if (r != SPOP_OK)
		return r;
	if (len > (size_t)(end - q))
		return SPOP_NOSPACE;
	if (len)
		memcpy(q, s, len);
	*p = q + len;
	return SPOP_OK;
}

static int fixed_decode(const uint8_t **p, const uint8_t *end, uint8_t *out, size_t n)
{
	if ((size_t)(end - *p) < n)
		return SPOP_INCOMPLETE;
	memcpy(out, *p, n);
	*p += n;
	return SPOP_OK;
}

int spop_data_decode(const uint8_t **p, const uint8_t *end, struct spop_data *out)
{
	const uint8_t *q = *p;
	int r;

	if (q >= end)
		return SPOP_INCOMPLETE;
	uint8_t tb = *q++;
	switch (tb & SPOP_TYPE_MASK) {
	case SPOP_T_NULL:
		r = SPOP_OK;
		break;
	case SPOP_T_BOOL:
		out->u.boolean = (tb & SPOP_BOOL_TRUE) != 0;
		r = SPOP_OK;
		break;
	case SPOP_T_INT32:
	case SPOP_T_UINT32:
	case SPOP_T_INT64:
	case SPOP_T_UINT64:
		r = spop_varint_decode(&q, end, &out->u.integer);
		break;
	case SPOP_T_IPV4:
		r = fixed_decode(&q, end, out->u.ipv4, sizeof(out->u.ipv4));
		break;
	case SPOP_T_IPV6:
		r = fixed_decode(&q, end, out->u.ipv6, sizeof(out->u.ipv6));
		break;
	case SPOP_T_STRING:
	case SPOP_T_BINARY:
		r = spop_bytes_decode(&q, end, &out->u.bytes);
		break;
	default:
		return SPOP_INVALID;
	}
	if (r != SPOP_OK)
		return r;
	out->type = (enum spop_type)(tb & SPOP_TYPE_MASK);
	*p = q;
	return SPOP_OK;
}

int spop_data_skip(const uint8_t **p, const uint8_t *end)
{
	struct spop_data ignored;

	return spop_data_decode(p, end, &ignored);
}

static int fixed_encode(uint8_t **p, uint8_t *end, const uint8_t *src, size_t n)
{
	if ((size_t)(end - *p) < n)
		return SPOP_NOSPACE;
	memcpy(*p, src, n);
	*p += n;
	return SPOP_OK;
}

int spop_data_encode(uint8_t **p, uint8_t *end, const struct spop_data *d)
{
	uint8_t *q = *p;
	int r;

	if (q >= end)
		return SPOP_NOSPACE;
	uint8_t tb = (uint8_t)d->type;
	if (d->type == SPOP_T_BOOL && d->u.boolean)
		tb |= SPOP_BOOL_TRUE;
	*q++ = tb;
	switch (d->type) {
	case SPOP_T_NULL:
	case SPOP_T_BOOL:
		r = SPOP_OK;
		break;
	case SPOP_T_INT32:
	case SPOP_T_UINT32:
	case SPOP_T_INT64:
	case SPOP_T_UINT64:
		r = spop_varint_encode(&q, end, d->u.integer);
		break;
	case SPOP_T_IPV4:
		r = fixed_encode(&q, end, d->u.ipv4, sizeof(d->u.ipv4));
		break;
	case SPOP_T_IPV6:
		r = fixed_encode(&q, end, d->u.ipv6, sizeof(d->u.ipv6));
		break;
	case SPOP_T_STRING:
	case SPOP_T_BINARY:
		r = spop_bytes_encode(&q, end, d->u.bytes.ptr, d->u.bytes.len);
		break;
	default:
		return SPOP_INVALID;
	}
	if (r != SPOP_OK)
		return r;
	*p = q;
	return SPOP_OK;
}

int spop_kv_decode(const uint8_t **p, const uint8_t *end, struct spop_bytes *key,
		   struct spop_data *value)
{
	const uint8_t *q = *p;
	int r = spop_bytes_decode(&q, end, key);

	if (r == SPOP_OK)
		r = spop_data_decode(&q, end, value);
	if (r == SPOP_OK)
		*p = q;
	return r;
}

int spop_kv_encode(uint8_t **p, uint8_t *end, const char *key, const struct spop_data *value)
{
	uint8_t *q = *p;
	int r = spop_bytes_encode(&q, end, key, strlen(key));

	if (r == SPOP_OK)
		r = spop_data_encode(&q, end, value);
	if (r == SPOP_OK)
		*p = q;
	return r;
}
