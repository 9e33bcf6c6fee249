/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for spop.c: varints (the table of docs/spop.md), typed data, KV items.
 * Inputs end at a guard page, so any over-read faults. */
#include <check.h>
#include <stdlib.h>

#include "guard.h"
#include "spop.h"

struct varint_case {
	uint64_t value;
	size_t len;
	uint8_t bytes[SPOP_VARINT_MAX];
};

/* docs/spop.md section 2.1, worked examples. */
static const struct varint_case varints[] = {
	{ 0, 1, { 0x00 } },
	{ 1, 1, { 0x01 } },
	{ 127, 1, { 0x7F } },
	{ 128, 1, { 0x80 } },
	{ 239, 1, { 0xEF } },
	{ 240, 2, { 0xF0, 0x00 } },
	{ 255, 2, { 0xFF, 0x00 } },
	{ 256, 2, { 0xF0, 0x01 } },
	{ 300, 2, { 0xFC, 0x03 } },
	{ 2287, 2, { 0xFF, 0x7F } },
	{ 2288, 3, { 0xF0, 0x80, 0x00 } },
	{ 4660, 3, { 0xF4, 0x94, 0x01 } },
	{ 16380, 3, { 0xFC, 0xF0, 0x06 } },
	{ 65535, 3, { 0xFF, 0xF0, 0x1E } },
	{ 264431, 3, { 0xFF, 0xFF, 0x7F } },
	{ 264432, 4, { 0xF0, 0x80, 0x80, 0x00 } },
	{ 33818863, 4, { 0xFF, 0xFF, 0xFF, 0x7F } },
	{ 33818864, 5, { 0xF0, 0x80, 0x80, 0x80, 0x00 } },
	{ 4294967295u, 5, { 0xFF, 0xF0, 0xFE, 0xFE, 0x7E } },
	{ UINT64_MAX, 10, { 0xFF, 0xF0, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0x0E } },
};
#define NVARINTS (sizeof(varints) / sizeof(varints[0]))

START_TEST(varint_encode_table)
{
	const struct varint_case *c = &varints[_i];
	uint8_t *buf = guard_buffer(c->len);
	uint8_t *p = buf;

	ck_assert_int_eq(spop_varint_size(c->value), c->len);
	ck_assert_int_eq(spop_varint_encode(&p, buf + c->len, c->value), SPOP_OK);
	ck_assert_ptr_eq(p, buf + c->len);
	ck_assert_mem_eq(buf, c->bytes, c->len);
}
END_TEST

START_TEST(varint_encode_nospace)
{
	const struct varint_case *c = &varints[_i];

	for (size_t cap = 0; cap < c->len; cap++) {
		uint8_t *buf = guard_buffer(cap);
		uint8_t *p = buf;
		ck_assert_int_eq(spop_varint_encode(&p, buf + cap, c->value), SPOP_NOSPACE);
		ck_assert_ptr_eq(p, buf);
	}
}
END_TEST

START_TEST(varint_decode_table)
{
	const struct varint_case *c = &varints[_i];
	const uint8_t *in = guard_copy(c->bytes, c->len), *p = in;
	uint64_t v = 12345;

	ck_assert_int_eq(spop_varint_decode(&p, in + c->len, &v), SPOP_OK);
	ck_assert_ptr_eq(p, in + c->len);
	ck_assert_uint_eq(v, c->value);
}
END_TEST

START_TEST(varint_decode_truncated)
{
	const struct varint_case *c = &varints[_i];

	for (size_t n = 0; n < c->len; n++) {
		const uint8_t *in = guard_copy(c->bytes, n), *p = in;
		uint64_t v;
		ck_assert_int_eq(spop_varint_decode(&p, in + n, &v), SPOP_INCOMPLETE);
		ck_assert_ptr_eq(p, in);
	}
}
END_TEST

/* Every boundary value and its neighbours survive a round trip. */
START_TEST(varint_roundtrip_boundaries)
{
	static const uint64_t bounds[] = { 240, 2288, 264432, 33818864, 4328786160ull,
					   UINT64_MAX / 2, UINT64_MAX - 1 };
	for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		for (uint64_t v = bounds[i] - 1; v <= bounds[i] + 1 && v >= bounds[i] - 1; v++) {
			uint8_t buf[SPOP_VARINT_MAX], *w = buf;
			ck_assert_int_eq(spop_varint_encode(&w, buf + sizeof(buf), v), SPOP_OK);
			const uint8_t *r = buf;
			uint64_t got;
			ck_assert_int_eq(spop_varint_decode(&r, w, &got), SPOP_OK);
			ck_assert_ptr_eq(r, w);
			ck_assert_uint_eq(got, v);
		}
	}
}
END_TEST

START_TEST(varint_decode_invalid)
{
	/* Eleven bytes that never terminate. */
	static const uint8_t endless[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
					   0xFF, 0xFF, 0xFF, 0xFF, 0x00 };
	/* 2^64-1 plus 2^60: does not fit 64 bits. */
	static const uint8_t overflow[] = { 0xFF, 0xF0, 0xFE, 0xFE, 0xFE,
					    0xFE, 0xFE, 0xFE, 0xFE, 0x0F };
	/* Tenth byte still has its continuation bit. */
	static const uint8_t tenth[] = { 0xF0, 0x80, 0x80, 0x80, 0x80,
					 0x80, 0x80, 0x80, 0x80, 0x80 };
	const uint8_t *cases[] = { endless, overflow, tenth };
	size_t lens[] = { sizeof(endless), sizeof(overflow), sizeof(tenth) };

	for (size_t i = 0; i < 3; i++) {
		const uint8_t *in = guard_copy(cases[i], lens[i]), *p = in;
		uint64_t v;
		ck_assert_int_eq(spop_varint_decode(&p, in + lens[i], &v), SPOP_INVALID);
		ck_assert_ptr_eq(p, in);
	}
}
END_TEST

struct data_case {
	const char *what;
	size_t len;
	uint8_t bytes[24];
};

/* One encoding of every type, docs/spop.md section 2.2. */
static const struct data_case datas[] = {
	{ "null", 1, { 0x00 } },
	{ "false", 1, { 0x01 } },
	{ "true", 1, { 0x11 } },
	{ "int32 300", 3, { 0x02, 0xFC, 0x03 } },
	{ "uint32 16380", 4, { 0x03, 0xFC, 0xF0, 0x06 } },
	{ "int64 -1", 11, { 0x04, 0xFF, 0xF0, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0x0E } },
	{ "uint64 4660", 4, { 0x05, 0xF4, 0x94, 0x01 } },
	{ "ipv4 192.0.2.10", 5, { 0x06, 0xC0, 0x00, 0x02, 0x0A } },
	{ "ipv6 2001:db8::1", 17,
	  { 0x07, 0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01 } },
	{ "string GET", 5, { 0x08, 0x03, 'G', 'E', 'T' } },
	{ "empty string", 2, { 0x08, 0x00 } },
	{ "binary", 5, { 0x09, 0x03, 0x00, 0xFF, 0x00 } },
};
#define NDATAS (sizeof(datas) / sizeof(datas[0]))

START_TEST(data_decode_values)
{
	struct spop_data d;
	const uint8_t *in, *p;

#define DECODE(i)                                                                 \
	in = guard_copy(datas[i].bytes, datas[i].len);                            \
	p = in;                                                                   \
	ck_assert_int_eq(spop_data_decode(&p, in + datas[i].len, &d), SPOP_OK);  \
	ck_assert_ptr_eq(p, in + datas[i].len)

	DECODE(0);
	ck_assert_int_eq(d.type, SPOP_T_NULL);
	DECODE(1);
	ck_assert_int_eq(d.type, SPOP_T_BOOL);
	ck_assert(!d.u.boolean);
	DECODE(2);
	ck_assert_int_eq(d.type, SPOP_T_BOOL);
	ck_assert(d.u.boolean);
	DECODE(3);
	ck_assert_int_eq(d.type, SPOP_T_INT32);
	ck_assert_uint_eq(d.u.integer, 300);
	DECODE(4);
	ck_assert_int_eq(d.type, SPOP_T_UINT32);
	ck_assert_uint_eq(d.u.integer, 16380);
	DECODE(5);
	ck_assert_int_eq(d.type, SPOP_T_INT64);
	ck_assert_int_eq((int64_t)d.u.integer, -1);
	DECODE(6);
	ck_assert_int_eq(d.type, SPOP_T_UINT64);
	ck_assert_uint_eq(d.u.integer, 4660);
	DECODE(7);
	ck_assert_int_eq(d.type, SPOP_T_IPV4);
	ck_assert_mem_eq(d.u.ipv4, "\xC0\x00\x02\x0A", 4);
	DECODE(8);
	ck_assert_int_eq(d.type, SPOP_T_IPV6);
	ck_assert_mem_eq(d.u.ipv6, datas[8].bytes + 1, 16);
	DECODE(9);
	ck_assert_int_eq(d.type, SPOP_T_STRING);
	ck_assert(spop_bytes_eq(d.u.bytes, "GET"));
	ck_assert_ptr_eq(d.u.bytes.ptr, in + 2); /* a view, not a copy */
	DECODE(10);
	ck_assert_int_eq(d.type, SPOP_T_STRING);
	ck_assert_uint_eq(d.u.bytes.len, 0);
	DECODE(11);
	ck_assert_int_eq(d.type, SPOP_T_BINARY);
	ck_assert_uint_eq(d.u.bytes.len, 3);
	ck_assert_mem_eq(d.u.bytes.ptr, "\x00\xFF\x00", 3);
#undef DECODE
}
END_TEST

/* Decode then encode gives back the same bytes; skip spans them too. */
START_TEST(data_roundtrip_and_skip)
{
	const struct data_case *c = &datas[_i];
	uint8_t copy[24];
	memcpy(copy, c->bytes, c->len);
	const uint8_t *p = copy;
	struct spop_data d;

	ck_assert_int_eq(spop_data_decode(&p, copy + c->len, &d), SPOP_OK);
	uint8_t *out = guard_buffer(c->len), *w = out;
	ck_assert_int_eq(spop_data_encode(&w, out + c->len, &d), SPOP_OK);
	ck_assert_ptr_eq(w, out + c->len);
	ck_assert_mem_eq(out, c->bytes, c->len);

	const uint8_t *in = guard_copy(c->bytes, c->len);
	p = in;
	ck_assert_int_eq(spop_data_skip(&p, in + c->len), SPOP_OK);
	ck_assert_ptr_eq(p, in + c->len);
}
END_TEST

START_TEST(data_truncated)
{
	const struct data_case *c = &datas[_i];

	for (size_t n = 0; n < c->len; n++) {
		const uint8_t *in = guard_copy(c->bytes, n), *p = in;
		struct spop_data d;
		ck_assert_msg(spop_data_decode(&p, in + n, &d) == SPOP_INCOMPLETE,
			      "%s cut at %zu", c->what, n);
		ck_assert_ptr_eq(p, in);
		ck_assert_int_eq(spop_data_skip(&p, in + n), SPOP_INCOMPLETE);
	}
}
END_TEST

START_TEST(data_encode_nospace)
{
	const struct data_case *c = &datas[_i];
	uint8_t copy[24];
	memcpy(copy, c->bytes, c->len);
	const uint8_t *p = copy;
	struct spop_data d;

	ck_assert_int_eq(spop_data_decode(&p, copy + c->len, &d), SPOP_OK);
	for (size_t cap = 0; cap < c->len; cap++) {
		uint8_t *out = guard_buffer(cap), *w = out;
		ck_assert_int_eq(spop_data_encode(&w, out + cap, &d), SPOP_NOSPACE);
		ck_assert_ptr_eq(w, out);
	}
}
END_TEST

START_TEST(data_reserved_types_invalid)
{
	for (unsigned t = 10; t <= 15; t++) {
		for (unsigned flags = 0; flags <= 0xF0; flags += 0x10) {
			uint8_t b[4] = { (uint8_t)(flags | t), 0x01, 0x02, 0x03 };
			const uint8_t *in = guard_copy(b, sizeof(b)), *p = in;
			struct spop_data d;
			ck_assert_int_eq(spop_data_decode(&p, in + sizeof(b), &d), SPOP_INVALID);
			ck_assert_ptr_eq(p, in);
		}
	}
}
END_TEST

/* The type is the low nibble: flag bits on a STRING do not change it. */
START_TEST(data_type_is_low_nibble)
{
	static const uint8_t b[] = { 0x88, 0x01, 'x' };
	const uint8_t *in = guard_copy(b, sizeof(b)), *p = in;
	struct spop_data d;

	ck_assert_int_eq(spop_data_decode(&p, in + sizeof(b), &d), SPOP_OK);
	ck_assert_int_eq(d.type, SPOP_T_STRING);
	ck_assert(spop_bytes_eq(d.u.bytes, "x"));
}
END_TEST

/* A length far beyond the input is incomplete, without pointer wrap-around. */
START_TEST(bytes_huge_length)
{
	static const uint8_t b[] = { 0x08, 0xFF, 0xF0, 0xFE, 0xFE, 0xFE, 0xFE,
				     0xFE, 0xFE, 0xFE, 0x0E, 'a' };
	const uint8_t *in = guard_copy(b, sizeof(b)), *p = in;
	struct spop_data d;

	ck_assert_int_eq(spop_data_decode(&p, in + sizeof(b), &d), SPOP_INCOMPLETE);
	ck_assert_ptr_eq(p, in);
}
END_TEST

START_TEST(kv_decode_and_encode)
{
	/* "max-frame-size" UINT32 16380, as in HAProxy's HELLO. */
	static const uint8_t b[] = { 0x0e, 'm', 'a', 'x', '-', 'f', 'r', 'a', 'm', 'e', '-',
				     's', 'i', 'z', 'e', 0x03, 0xfc, 0xf0, 0x06 };
	const uint8_t *in = guard_copy(b, sizeof(b)), *p = in;
	struct spop_bytes key;
	struct spop_data v;

	ck_assert_int_eq(spop_kv_decode(&p, in + sizeof(b), &key, &v), SPOP_OK);
	ck_assert_ptr_eq(p, in + sizeof(b));
	ck_assert(spop_bytes_eq(key, "max-frame-size"));
	ck_assert(!spop_bytes_eq(key, "max-frame-siz"));
	ck_assert(!spop_bytes_eq(key, "max-frame-size-"));
	ck_assert_int_eq(v.type, SPOP_T_UINT32);
	ck_assert_uint_eq(v.u.integer, 16380);

	for (size_t n = 0; n < sizeof(b); n++) {
		const uint8_t *t = guard_copy(b, n), *q = t;
		ck_assert_int_eq(spop_kv_decode(&q, t + n, &key, &v), SPOP_INCOMPLETE);
		ck_assert_ptr_eq(q, t);
	}

	struct spop_data u = { .type = SPOP_T_UINT32, .u.integer = 16380 };
	uint8_t *out = guard_buffer(sizeof(b)), *w = out;
	ck_assert_int_eq(spop_kv_encode(&w, out + sizeof(b), "max-frame-size", &u), SPOP_OK);
	ck_assert_mem_eq(out, b, sizeof(b));
	for (size_t cap = 0; cap < sizeof(b); cap++) {
		out = guard_buffer(cap);
		w = out;
		ck_assert_int_eq(spop_kv_encode(&w, out + cap, "max-frame-size", &u),
				 SPOP_NOSPACE);
		ck_assert_ptr_eq(w, out);
	}
}
END_TEST

static Suite *spop_suite(void)
{
	Suite *s = suite_create("spop");
	TCase *tc = tcase_create("varint");
	tcase_add_loop_test(tc, varint_encode_table, 0, NVARINTS);
	tcase_add_loop_test(tc, varint_encode_nospace, 0, NVARINTS);
	tcase_add_loop_test(tc, varint_decode_table, 0, NVARINTS);
	tcase_add_loop_test(tc, varint_decode_truncated, 0, NVARINTS);
	tcase_add_test(tc, varint_roundtrip_boundaries);
	tcase_add_test(tc, varint_decode_invalid);
	suite_add_tcase(s, tc);

	tc = tcase_create("data");
	tcase_add_test(tc, data_decode_values);
	tcase_add_loop_test(tc, data_roundtrip_and_skip, 0, NDATAS);
	tcase_add_loop_test(tc, data_truncated, 0, NDATAS);
	tcase_add_loop_test(tc, data_encode_nospace, 0, NDATAS);
	tcase_add_test(tc, data_reserved_types_invalid);
	tcase_add_test(tc, data_type_is_low_nibble);
	tcase_add_test(tc, bytes_huge_length);
	tcase_add_test(tc, kv_decode_and_encode);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(spop_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
