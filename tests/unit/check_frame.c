/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for frame.c: the example frames of docs/spop.md byte for byte, every
 * truncation point, and corrupted frames. Inputs end at a guard page. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "frame.h"
#include "guard.h"

struct example {
	const char *name;
	const uint8_t *bytes;
	size_t len;
};

#define BYTES(s) (const uint8_t *)(s), sizeof(s) - 1

/* docs/spop.md 3.1: HAProxy's option spop-check HELLO (82 bytes). */
static const char hc_hello[] =
	"\x00\x00\x00\x4e\x01\x00\x00\x00\x01\x00\x00"
	"\x12" "supported-versions" "\x08\x03" "2.0"
	"\x0e" "max-frame-size" "\x03\xfc\xf0\x06"
	"\x0c" "capabilities" "\x08\x00"
	"\x0b" "healthcheck" "\x11";

/* A 2.6 HELLO with default options and an engine-id (not from docs/spop.md: the
 * same keys in HAProxy's order). */
static const char ha_hello[] =
	"\x00\x00\x00\x81\x01\x00\x00\x00\x01\x00\x00"
	"\x12" "supported-versions" "\x08\x03" "2.0"
	"\x0e" "max-frame-size" "\x03\xfc\xf0\x06"
	"\x0c" "capabilities" "\x08\x10" "pipelining,async"
	"\x09" "engine-id" "\x08\x24" "7b4e1f6a-4b6c-4a44-9c1e-0c8f9a7d2e11";

/* docs/spop.md 3.2: AGENT-HELLO, version 2.0, 16380, pipelining (68 bytes). */
static const char agent_hello[] =
	"\x00\x00\x00\x40\x65\x00\x00\x00\x01\x00\x00"
	"\x07" "version" "\x08\x03" "2.0"
	"\x0e" "max-frame-size" "\x03\xfc\xf0\x06"
	"\x0c" "capabilities" "\x08\x0a" "pipelining";

/* docs/spop.md 3.3: NOTIFY, message route(method GET, path /foo, src 192.0.2.10). */
static const char notify[] =
	"\x00\x00\x00\x2e\x03\x00\x00\x00\x01\x05\x01"
	"\x05" "route" "\x03"
	"\x06" "method" "\x08\x03" "GET"
	"\x04" "path" "\x08\x04" "/foo"
	"\x03" "src" "\x06\xc0\x00\x02\x0a";

/* docs/spop.md 3.4: ACK setting txn backend=be_app and path=/bar. */
static const char ack[] =
	"\x00\x00\x00\x28\x67\x00\x00\x00\x01\x05\x01"
	"\x01\x03\x02\x07" "backend" "\x08\x06" "be_app"
	"\x01\x03\x02\x04" "path" "\x08\x04" "/bar";

static const char empty_ack[] = "\x00\x00\x00\x07\x67\x00\x00\x00\x01\x05\x01";

/* docs/spop.md 3.5: AGENT-DISCONNECT {0, "normal"}. */
static const char agent_disconnect[] =
	"\x00\x00\x00\x25\x66\x00\x00\x00\x01\x00\x00"
	"\x0b" "status-code" "\x03\x00"
	"\x07" "message" "\x08\x06" "normal";

/* The same KV-list from HAProxy (type 2), as on a reload. */
static const char ha_disconnect[] =
	"\x00\x00\x00\x25\x02\x00\x00\x00\x01\x00\x00"
	"\x0b" "status-code" "\x03\x00"
	"\x07" "message" "\x08\x06" "normal";

static const struct example examples[] = {
	{ "healthcheck hello", BYTES(hc_hello) },
	{ "haproxy hello", BYTES(ha_hello) },
	{ "agent hello", BYTES(agent_hello) },
	{ "notify", BYTES(notify) },
	{ "ack", BYTES(ack) },
	{ "empty ack", BYTES(empty_ack) },
	{ "agent disconnect", BYTES(agent_disconnect) },
	{ "haproxy disconnect", BYTES(ha_disconnect) },
};
#define NEXAMPLES (sizeof(examples) / sizeof(examples[0]))

/* Splits a whole frame that ends at the guard page; asserts it is valid. */
static struct frame split_whole(const uint8_t *bytes, size_t len)
{
	const uint8_t *in = guard_copy(bytes, len);
	struct frame f;
	unsigned status = 1234;

	ck_assert_int_eq(frame_split(in, len, FRAME_AGENT_MAX_SIZE, &f, &status), (ssize_t)len);
	ck_assert_uint_eq(status, 1234); /* untouched on success */
	return f;
}

START_TEST(split_examples)
{
	const struct example *e = &examples[_i];
	struct frame f = split_whole(e->bytes, e->len);

	ck_assert_uint_eq(f.type, e->bytes[4]);
	ck_assert_uint_eq(f.flags, FRAME_FLAG_FIN);
	ck_assert_uint_eq(f.payload_len, e->len - 11); /* 4 + type + flags + 1-byte ids */
}
END_TEST

START_TEST(split_every_truncation_incomplete)
{
	const struct example *e = &examples[_i];

	for (size_t n = 0; n < e->len; n++) {
		const uint8_t *in = guard_copy(e->bytes, n);
		struct frame f;
		unsigned status = 0;
		ck_assert_msg(frame_split(in, n, FRAME_AGENT_MAX_SIZE, &f, &status) ==
				      SPOP_INCOMPLETE,
			      "%s cut at %zu", e->name, n);
	}
}
END_TEST

/* Two frames back to back: the first is split off alone. */
START_TEST(split_pipelined)
{
	uint8_t two[2 * sizeof(notify)];
	memcpy(two, notify, sizeof(notify) - 1);
	memcpy(two + sizeof(notify) - 1, empty_ack, sizeof(empty_ack) - 1);
	size_t len = sizeof(notify) - 1 + sizeof(empty_ack) - 1;
	const uint8_t *in = guard_copy(two, len);
	struct frame f;
	unsigned status;

	ck_assert_int_eq(frame_split(in, len, 16380, &f, &status), sizeof(notify) - 1);
	ck_assert_uint_eq(f.type, FRAME_NOTIFY);
	ck_assert_int_eq(frame_split(in + sizeof(notify) - 1, sizeof(empty_ack) - 1, 16380, &f,
				     &status),
			 sizeof(empty_ack) - 1);
	ck_assert_uint_eq(f.type, FRAME_ACK);
}
END_TEST

START_TEST(split_ids_large)
{
	/* stream-id 2^32-1 and frame-id 2288, as varints. */
	static const char b[] = "\x00\x00\x00\x0d\x03\x00\x00\x00\x01"
				"\xff\xf0\xfe\xfe\x7e" "\xf0\x80\x00";
	struct frame f = split_whole(BYTES(b));

	ck_assert_uint_eq(f.stream_id, 4294967295u);
	ck_assert_uint_eq(f.frame_id, 2288);
	ck_assert_uint_eq(f.payload_len, 0);
}
END_TEST

static void expect_split_invalid(const char *b, size_t len, uint32_t max, unsigned want)
{
	const uint8_t *in = guard_copy(b, len);
	struct frame f;
	unsigned status = 1234;

	ck_assert_int_eq(frame_split(in, len, max, &f, &status), SPOP_INVALID);
	ck_assert_uint_eq(status, want);
}

START_TEST(split_corrupted)
{
	/* Zero length. */
	expect_split_invalid("\x00\x00\x00\x00", 4, 16380, FRAME_ST_INVALID);
	/* Over max-frame-size: known from the length alone. */
	expect_split_invalid("\x00\x00\x01\x01", 4, 256, FRAME_ST_TOO_BIG);
	expect_split_invalid("\xff\xff\xff\xff", 4, 16380, FRAME_ST_TOO_BIG);
	/* Exactly max-frame-size is fine (incomplete here). */
	const uint8_t *in = guard_copy("\x00\x00\x01\x00", 4);
	struct frame f;
	unsigned status;
	ck_assert_int_eq(frame_split(in, 4, 256, &f, &status), SPOP_INCOMPLETE);
	/* Frames too short for their header. */
	expect_split_invalid("\x00\x00\x00\x01\x03", 5, 16380, FRAME_ST_INVALID);
	expect_split_invalid("\x00\x00\x00\x05\x03\x00\x00\x00\x01", 9, 16380, FRAME_ST_INVALID);
	expect_split_invalid("\x00\x00\x00\x06\x03\x00\x00\x00\x01\x05", 10, 16380,
			     FRAME_ST_INVALID);
	/* Stream-id varint cut by the frame end. */
	expect_split_invalid("\x00\x00\x00\x07\x03\x00\x00\x00\x01\x01\xf0", 11, 16380,
			     FRAME_ST_INVALID);
	/* Stream-id varint that never ends. */
	expect_split_invalid("\x00\x00\x00\x10\x03\x00\x00\x00\x01"
			     "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
			     20, 16380, FRAME_ST_INVALID);
}
END_TEST

START_TEST(hello_healthcheck)
{
	struct frame f = split_whole(BYTES(hc_hello));
	struct hello h;
	unsigned status;

	ck_assert_uint_eq(f.type, FRAME_HAPROXY_HELLO);
	ck_assert_int_eq(frame_parse_hello(&f, &h, &status), SPOP_OK);
	ck_assert_uint_eq(h.max_frame_size, 16380);
	ck_assert(h.healthcheck);
	ck_assert(!h.pipelining);
	ck_assert_uint_eq(h.engine_id.len, 0);
}
END_TEST

START_TEST(hello_haproxy_26)
{
	struct frame f = split_whole(BYTES(ha_hello));
	struct hello h;
	unsigned status;

	ck_assert_int_eq(frame_parse_hello(&f, &h, &status), SPOP_OK);
	ck_assert_uint_eq(h.max_frame_size, 16380);
	ck_assert(!h.healthcheck);
	ck_assert(h.pipelining);
	ck_assert(spop_bytes_eq(h.engine_id, "7b4e1f6a-4b6c-4a44-9c1e-0c8f9a7d2e11"));
}
END_TEST

/* Wraps payload in a frame (FIN, 1-byte ids) into out; returns its size. */
static size_t wrap(uint8_t *out, uint8_t type, uint8_t sid, uint8_t fid, const char *payload,
		   size_t len)
{
	spop_put_u32(out, (uint32_t)(len + 7));
	out[4] = type;
	spop_put_u32(out + 5, FRAME_FLAG_FIN);
	out[9] = sid;
	out[10] = fid;
	memcpy(out + 11, payload, len);
	return len + 11;
}

static int parse_hello_payload(const char *payload, size_t len, uint8_t sid, struct hello *h,
			       unsigned *status)
{
	uint8_t buf[512];
	size_t n = wrap(buf, FRAME_HAPROXY_HELLO, sid, 0, payload, len);
	struct frame f = split_whole(buf, n);
	return frame_parse_hello(&f, h, status);
}

#define KV_VERSIONS(v) "\x12" "supported-versions" "\x08" v
#define KV_SIZE(s) "\x0e" "max-frame-size" s
#define KV_CAPS(c) "\x0c" "capabilities" "\x08" c

struct hello_case {
	const char *what;
	const char *payload;
	size_t len;
	uint8_t sid;
	int want;
	unsigned status;
	uint32_t size;
	bool pipelining;
};

#define HC(what, p, sid, want, st, size, pipe) { what, p, sizeof(p) - 1, sid, want, st, size, pipe }

static const struct hello_case hello_cases[] = {
	HC("minimal", KV_VERSIONS("\x03" "2.0") KV_SIZE("\x03\xfc\xf0\x06"), 0, SPOP_OK, 0,
	   16380, false),
	HC("version list with spaces", KV_VERSIONS("\x09" "1.0 , 2.0") KV_SIZE("\x03\xf0\x01")
	   KV_CAPS("\x0c" " pipelining "), 0, SPOP_OK, 0, 256, true),
	HC("unknown key skipped", "\x03" "foo" "\x09\x02\x00\x00"
	   KV_VERSIONS("\x03" "2.0") KV_SIZE("\x04\xfc\xf0\x06"), 0, SPOP_OK, 0, 16380, false),
	HC("capability prefix is not pipelining",
	   KV_VERSIONS("\x03" "2.0") KV_SIZE("\x03\xfc\xf0\x06") KV_CAPS("\x09" "pipeline,"),
	   0, SPOP_OK, 0, 16380, false),
	HC("huge size clamps", KV_VERSIONS("\x03" "2.0") KV_SIZE("\x05\xff\xf0\xfe\xfe\xfe\x7e"),
	   0, SPOP_OK, 0, UINT32_MAX, false),
	HC("no version", KV_SIZE("\x03\xfc\xf0\x06"), 0, SPOP_INVALID, FRAME_ST_NO_VERSION, 0,
	   false),
	HC("version 1.0", KV_VERSIONS("\x03" "1.0") KV_SIZE("\x03\xfc\xf0\x06"), 0,
	   SPOP_INVALID, FRAME_ST_BAD_VERSION, 0, false),
	HC("version 2.0x", KV_VERSIONS("\x04" "2.0x") KV_SIZE("\x03\xfc\xf0\x06"), 0,
	   SPOP_INVALID, FRAME_ST_BAD_VERSION, 0, false),
	HC("no size", KV_VERSIONS("\x03" "2.0"), 0, SPOP_INVALID, FRAME_ST_NO_FRAME_SIZE, 0,
	   false),
	HC("size 255", KV_VERSIONS("\x03" "2.0") KV_SIZE("\x03\xff\x00"), 0, SPOP_INVALID,
	   FRAME_ST_BAD_FRAME_SIZE, 0, false),
	HC("size as string", KV_VERSIONS("\x03" "2.0") KV_SIZE("\x08\x01" "9"), 0,
	   SPOP_INVALID, FRAME_ST_INVALID, 0, false),
	HC("version as int", "\x12" "supported-versions" "\x04\x02" KV_SIZE("\x03\xfc\xf0\x06"),
	   0, SPOP_INVALID, FRAME_ST_INVALID, 0, false),
	HC("non-zero stream-id", KV_VERSIONS("\x03" "2.0") KV_SIZE("\x03\xfc\xf0\x06"), 1,
	   SPOP_INVALID, FRAME_ST_INVALID, 0, false),
	HC("reserved type", KV_VERSIONS("\x03" "2.0") KV_SIZE("\x03\xfc\xf0\x06")
	   "\x03" "foo" "\x0a", 0, SPOP_INVALID, FRAME_ST_INVALID, 0, false),
	HC("key runs past frame", KV_VERSIONS("\x03" "2.0") KV_SIZE("\x03\xfc\xf0\x06") "\x20" "ab",
	   0, SPOP_INVALID, FRAME_ST_INVALID, 0, false),
	HC("value missing", KV_VERSIONS("\x03" "2.0") KV_SIZE("\x03\xfc\xf0\x06") "\x01" "a",
	   0, SPOP_INVALID, FRAME_ST_INVALID, 0, false),
	HC("string value past frame", KV_VERSIONS("\x09" "2.0"), 0, SPOP_INVALID,
	   FRAME_ST_INVALID, 0, false),
};
#define NHELLO (sizeof(hello_cases) / sizeof(hello_cases[0]))

START_TEST(hello_cases_table)
{
	const struct hello_case *c = &hello_cases[_i];
	struct hello h;
	unsigned status = 1234;

	int r = parse_hello_payload(c->payload, c->len, c->sid, &h, &status);
	ck_assert_msg(r == c->want, "%s: got %d", c->what, r);
	if (r == SPOP_OK) {
		ck_assert_uint_eq(h.max_frame_size, c->size);
		ck_assert_int_eq(h.pipelining, c->pipelining);
	} else {
		ck_assert_msg(status == c->status, "%s: status %u", c->what, status);
	}
}
END_TEST

START_TEST(notify_example)
{
	struct frame f = split_whole(BYTES(notify));
	struct notify n;
	struct notify_message m;
	struct notify_arg a;
	unsigned status;

	ck_assert_uint_eq(f.type, FRAME_NOTIFY);
	ck_assert_uint_eq(f.stream_id, 5);
	ck_assert_uint_eq(f.frame_id, 1);
	ck_assert_int_eq(frame_parse_notify(&f, &n, &status), SPOP_OK);
	ck_assert(frame_next_message(&n, &m));
	ck_assert(spop_bytes_eq(m.name, "route"));
	ck_assert_uint_eq(m.nargs, 3);
	ck_assert(frame_next_arg(&n, &a));
	ck_assert(spop_bytes_eq(a.name, "method"));
	ck_assert_int_eq(a.value.type, SPOP_T_STRING);
	ck_assert(spop_bytes_eq(a.value.u.bytes, "GET"));
	ck_assert(frame_next_arg(&n, &a));
	ck_assert(spop_bytes_eq(a.name, "path"));
	ck_assert(spop_bytes_eq(a.value.u.bytes, "/foo"));
	ck_assert(frame_next_arg(&n, &a));
	ck_assert(spop_bytes_eq(a.name, "src"));
	ck_assert_int_eq(a.value.type, SPOP_T_IPV4);
	ck_assert_mem_eq(a.value.u.ipv4, "\xc0\x00\x02\x0a", 4);
	ck_assert(!frame_next_arg(&n, &a));
	ck_assert(!frame_next_message(&n, &m));
}
END_TEST

/* Two messages, the first with NULL and unnamed args; an empty NOTIFY. */
START_TEST(notify_messages_and_empty)
{
	static const char payload[] = "\x03" "one" "\x02" "\x04" "host" "\x00" "\x00" "\x11"
				      "\x07" "cutover" "\x00";
	uint8_t buf[128];
	size_t len = wrap(buf, FRAME_NOTIFY, 0, 0, payload, sizeof(payload) - 1);
	struct frame f = split_whole(buf, len);
	struct notify n;
	struct notify_message m;
	struct notify_arg a;
	unsigned status;

	ck_assert_int_eq(frame_parse_notify(&f, &n, &status), SPOP_OK);
	ck_assert(frame_next_message(&n, &m));
	ck_assert(spop_bytes_eq(m.name, "one"));
	ck_assert(frame_next_arg(&n, &a));
	ck_assert(spop_bytes_eq(a.name, "host"));
	ck_assert_int_eq(a.value.type, SPOP_T_NULL);
	ck_assert(frame_next_arg(&n, &a));
	ck_assert_uint_eq(a.name.len, 0);
	ck_assert_int_eq(a.value.type, SPOP_T_BOOL);
	ck_assert(a.value.u.boolean);
	ck_assert(!frame_next_arg(&n, &a));
	ck_assert(frame_next_message(&n, &m));
	ck_assert(spop_bytes_eq(m.name, "cutover"));
	ck_assert_uint_eq(m.nargs, 0);
	ck_assert(!frame_next_arg(&n, &a));
	ck_assert(!frame_next_message(&n, &m));

	/* Messages walked without their arguments. */
	ck_assert_int_eq(frame_parse_notify(&f, &n, &status), SPOP_OK);
	ck_assert(frame_next_message(&n, &m));
	ck_assert(spop_bytes_eq(m.name, "one"));
	ck_assert(frame_next_message(&n, &m));
	ck_assert(spop_bytes_eq(m.name, "cutover"));
	ck_assert(!frame_next_message(&n, &m));

	len = wrap(buf, FRAME_NOTIFY, 7, 1, "", 0);
	f = split_whole(buf, len);
	ck_assert_int_eq(frame_parse_notify(&f, &n, &status), SPOP_OK);
	ck_assert(!frame_next_message(&n, &m));
}
END_TEST

/* Every cut of the NOTIFY payload inside a frame whose length is adjusted to
 * match: the frame is whole, so the cut message is invalid (or, at message
 * boundaries, simply shorter). */
START_TEST(notify_payload_cut_invalid)
{
	const char *payload = notify + 11;
	size_t plen = sizeof(notify) - 1 - 11;

	for (size_t n = 1; n < plen; n++) {
		uint8_t buf[128];
		size_t len = wrap(buf, FRAME_NOTIFY, 5, 1, payload, n);
		struct frame f = split_whole(buf, len);
		struct notify nt;
		unsigned status = 1234;
		ck_assert_msg(frame_parse_notify(&f, &nt, &status) == SPOP_INVALID, "cut at %zu", n);
		ck_assert_uint_eq(status, FRAME_ST_INVALID);
	}
}
END_TEST

START_TEST(notify_corrupted)
{
	static const struct {
		const char *what;
		const uint8_t *payload;
		size_t len;
	} cases[] = {
		{ "nb-args beyond payload", BYTES("\x01" "m" "\x02" "\x01" "a" "\x00") },
		{ "reserved arg type", BYTES("\x01" "m" "\x01" "\x01" "a" "\x0b") },
		{ "name beyond payload", BYTES("\x09" "m") },
		{ "missing nb-args", BYTES("\x01" "m") },
		{ "bad varint length", BYTES("\x01" "m" "\x01" "\x01" "a" "\x08"
					     "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff") },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t buf[128];
		size_t len = wrap(buf, FRAME_NOTIFY, 1, 1, (const char *)cases[i].payload,
				  cases[i].len);
		struct frame f = split_whole(buf, len);
		struct notify n;
		unsigned status = 1234;
		ck_assert_msg(frame_parse_notify(&f, &n, &status) == SPOP_INVALID, "%s",
			      cases[i].what);
		ck_assert_uint_eq(status, FRAME_ST_INVALID);
	}
}
END_TEST

START_TEST(disconnect_parse)
{
	struct frame f = split_whole(BYTES(ha_disconnect));
	struct disconnect d;
	unsigned status;

	ck_assert_uint_eq(f.type, FRAME_HAPROXY_DISCONNECT);
	ck_assert_int_eq(frame_parse_disconnect(&f, &d, &status), SPOP_OK);
	ck_assert_uint_eq(d.status, 0);
	ck_assert(spop_bytes_eq(d.message, "normal"));

	uint8_t buf[64];
	size_t len = wrap(buf, FRAME_HAPROXY_DISCONNECT, 0, 0, "\x0b" "status-code", 12);
	f = split_whole(buf, len);
	ck_assert_int_eq(frame_parse_disconnect(&f, &d, &status), SPOP_INVALID);
	ck_assert_uint_eq(status, FRAME_ST_INVALID);
}
END_TEST

START_TEST(build_agent_hello)
{
	size_t want = sizeof(agent_hello) - 1;
	uint8_t *out = guard_buffer(want);

	ck_assert_int_eq(frame_build_agent_hello(out, want, 16380, true), (ssize_t)want);
	ck_assert_mem_eq(out, agent_hello, want);
	for (size_t cap = 0; cap < want; cap++) {
		out = guard_buffer(cap);
		ck_assert_int_eq(frame_build_agent_hello(out, cap, 16380, true), SPOP_NOSPACE);
	}
}
END_TEST

/* Without pipelining the capabilities key is still there, empty. */
START_TEST(build_agent_hello_no_caps)
{
	static const char want[] = "\x00\x00\x00\x35\x65\x00\x00\x00\x01\x00\x00"
				   "\x07" "version" "\x08\x03" "2.0"
				   "\x0e" "max-frame-size" "\x03\xf0\x01"
				   "\x0c" "capabilities" "\x08\x00";
	uint8_t *out = guard_buffer(256);

	ck_assert_int_eq(frame_build_agent_hello(out, 256, 256, false), sizeof(want) - 1);
	ck_assert_mem_eq(out, want, sizeof(want) - 1);
}
END_TEST

START_TEST(build_ack_example)
{
	size_t want = sizeof(ack) - 1;
	struct ack_builder b;
	uint8_t *out = guard_buffer(want);

	frame_ack_begin(&b, out, want, 16380, 5, 1);
	frame_ack_set_string(&b, FRAME_SCOPE_TXN, "backend", "be_app", 6);
	frame_ack_set_string(&b, FRAME_SCOPE_TXN, "path", "/bar", 4);
	ck_assert_int_eq(frame_ack_end(&b), (ssize_t)want);
	ck_assert_mem_eq(out, ack, want);

	for (size_t cap = 0; cap < want; cap++) {
		out = guard_buffer(cap);
		frame_ack_begin(&b, out, cap, 16380, 5, 1);
		frame_ack_set_string(&b, FRAME_SCOPE_TXN, "backend", "be_app", 6);
		frame_ack_set_string(&b, FRAME_SCOPE_TXN, "path", "/bar", 4);
		ck_assert_int_eq(frame_ack_end(&b), SPOP_NOSPACE);
	}
	/* max-frame-size binds too: 39 bytes of frame do not fit 40. */
	out = guard_buffer(want);
	frame_ack_begin(&b, out, want, (uint32_t)want - 5, 5, 1);
	frame_ack_set_string(&b, FRAME_SCOPE_TXN, "backend", "be_app", 6);
	frame_ack_set_string(&b, FRAME_SCOPE_TXN, "path", "/bar", 4);
	ck_assert_int_eq(frame_ack_end(&b), SPOP_NOSPACE);
}
END_TEST

/* A string written in place is the same bytes as one set whole, a
 * 2-byte length (300) included; one byte less of room fails it. */
START_TEST(build_ack_string_room)
{
	static char path[300];
	static uint8_t whole[400];
	struct ack_builder b;

	memset(path, 'p', sizeof(path));
	path[0] = '/';
	frame_ack_begin(&b, whole, sizeof(whole), 16380, 5, 1);
	frame_ack_set_string(&b, FRAME_SCOPE_TXN, "backend", "be_app", 6);
	frame_ack_set_string(&b, FRAME_SCOPE_TXN, "path", path, sizeof(path));
	ssize_t want = frame_ack_end(&b);
	ck_assert_int_gt(want, (ssize_t)sizeof(path));

	for (size_t cap = 0; cap <= (size_t)want; cap++) {
		uint8_t *out = guard_buffer(cap);
		frame_ack_begin(&b, out, cap, 16380, 5, 1);
		frame_ack_set_string(&b, FRAME_SCOPE_TXN, "backend", "be_app", 6);
		char *room = frame_ack_string_room(&b, FRAME_SCOPE_TXN, "path", sizeof(path));
		if (cap < (size_t)want) {
			ck_assert(room == NULL);
			ck_assert_int_eq(frame_ack_end(&b), SPOP_NOSPACE);
			continue;
		}
		ck_assert(room != NULL);
		memcpy(room, path, sizeof(path));
		ck_assert_int_eq(frame_ack_end(&b), want);
		ck_assert_mem_eq(out, whole, (size_t)want);
	}
}
END_TEST

START_TEST(build_ack_empty_and_typed)
{
	struct ack_builder b;
	uint8_t *out = guard_buffer(11);

	frame_ack_begin(&b, out, 11, 16380, 5, 1);
	ck_assert_int_eq(frame_ack_end(&b), 11);
	ck_assert_mem_eq(out, empty_ack, 11);

	/* proc phase=-1 (10-byte varint), txn deprecated=true; ids 0 and 2^32-1. */
	static const char want[] = "\x00\x00\x00\x2e\x67\x00\x00\x00\x01\x00"
				   "\xff\xf0\xfe\xfe\x7e"
				   "\x01\x03\x00\x05" "phase" "\x04"
				   "\xff\xf0\xfe\xfe\xfe\xfe\xfe\xfe\xfe\x0e"
				   "\x01\x03\x02\x0a" "deprecated" "\x11";
	out = guard_buffer(sizeof(want) - 1);
	frame_ack_begin(&b, out, sizeof(want) - 1, 16380, 0, 4294967295u);
	frame_ack_set_int64(&b, FRAME_SCOPE_PROC, "phase", -1);
	frame_ack_set_bool(&b, FRAME_SCOPE_TXN, "deprecated", true);
	ck_assert_int_eq(frame_ack_end(&b), sizeof(want) - 1);
	ck_assert_mem_eq(out, want, sizeof(want) - 1);
}
END_TEST

START_TEST(build_agent_disconnect)
{
	size_t want = sizeof(agent_disconnect) - 1;
	uint8_t *out = guard_buffer(want);

	ck_assert_int_eq(frame_build_agent_disconnect(out, want, FRAME_ST_NORMAL), (ssize_t)want);
	ck_assert_mem_eq(out, agent_disconnect, want);
	for (size_t cap = 0; cap < want; cap++) {
		out = guard_buffer(cap);
		ck_assert_int_eq(frame_build_agent_disconnect(out, cap, 0), SPOP_NOSPACE);
	}
	/* Every status the agent sends fits the smallest frame. */
	static const unsigned statuses[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 99 };
	for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		uint8_t buf[FRAME_MIN_MAX_SIZE + 4];
		ssize_t n = frame_build_agent_disconnect(buf, sizeof(buf), statuses[i]);
		ck_assert_int_gt(n, 0);
		struct frame f = split_whole(buf, (size_t)n);
		ck_assert_uint_eq(f.type, FRAME_AGENT_DISCONNECT);
		struct disconnect d;
		unsigned st;
		ck_assert_int_eq(frame_parse_disconnect(&f, &d, &st), SPOP_OK);
		ck_assert_uint_eq(d.status, statuses[i]);
		ck_assert(spop_bytes_eq(d.message, frame_status_text(statuses[i])));
	}
}
END_TEST

START_TEST(negotiate_size)
{
	ck_assert_uint_eq(frame_negotiate_size(16380, FRAME_AGENT_MAX_SIZE), 16380);
	ck_assert_uint_eq(frame_negotiate_size(256, FRAME_AGENT_MAX_SIZE), 256);
	ck_assert_uint_eq(frame_negotiate_size(1000, FRAME_AGENT_MAX_SIZE), 1000);
	ck_assert_uint_eq(frame_negotiate_size(65532, FRAME_AGENT_MAX_SIZE), FRAME_AGENT_MAX_SIZE);
}
END_TEST

/* Each byte of each example replaced by a few values: every parser returns a
 * defined result and stays inside the frame (the guard page checks that). */
START_TEST(corrupt_every_byte)
{
	const struct example *e = &examples[_i];
	static const uint8_t values[] = { 0x00, 0x01, 0x0a, 0x7f, 0x80, 0xef, 0xf0, 0xff };
	uint8_t copy[256];

	for (size_t pos = 0; pos < e->len; pos++) {
		for (size_t v = 0; v < sizeof(values); v++) {
			memcpy(copy, e->bytes, e->len);
			copy[pos] = values[v];
			const uint8_t *in = guard_copy(copy, e->len);
			struct frame f;
			unsigned status = 1234;
			ssize_t r = frame_split(in, e->len, FRAME_AGENT_MAX_SIZE, &f, &status);
			ck_assert(r == SPOP_INCOMPLETE || r == SPOP_INVALID || r > 0);
			if (r == SPOP_INVALID)
				ck_assert(status == FRAME_ST_INVALID || status == FRAME_ST_TOO_BIG);
			if (r <= 0)
				continue;
			struct hello h;
			struct disconnect d;
			struct notify n;
			int rh = frame_parse_hello(&f, &h, &status);
			int rd = frame_parse_disconnect(&f, &d, &status);
			int rn = frame_parse_notify(&f, &n, &status);
			ck_assert(rh == SPOP_OK || rh == SPOP_INVALID);
			ck_assert(rd == SPOP_OK || rd == SPOP_INVALID);
			ck_assert(rn == SPOP_OK || rn == SPOP_INVALID);
			if (rn == SPOP_OK) {
				struct notify_message m;
				struct notify_arg a;
				while (frame_next_message(&n, &m))
					while (frame_next_arg(&n, &a))
						;
			}
		}
	}
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("split");
	tcase_add_loop_test(tc, split_examples, 0, NEXAMPLES);
	tcase_add_loop_test(tc, split_every_truncation_incomplete, 0, NEXAMPLES);
	tcase_add_test(tc, split_pipelined);
	tcase_add_test(tc, split_ids_large);
	tcase_add_test(tc, split_corrupted);
	tcase_add_loop_test(tc, corrupt_every_byte, 0, NEXAMPLES);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_test(tc, hello_healthcheck);
	tcase_add_test(tc, hello_haproxy_26);
	tcase_add_loop_test(tc, hello_cases_table, 0, NHELLO);
	tcase_add_test(tc, notify_example);
	tcase_add_test(tc, notify_messages_and_empty);
	tcase_add_test(tc, notify_payload_cut_invalid);
	tcase_add_test(tc, notify_corrupted);
	tcase_add_test(tc, disconnect_parse);
	suite_add_tcase(s, tc);

	tc = tcase_create("build");
	tcase_add_test(tc, build_agent_hello);
	tcase_add_test(tc, build_agent_hello_no_caps);
	tcase_add_test(tc, build_ack_example);
	tcase_add_test(tc, build_ack_string_room);
	tcase_add_test(tc, build_ack_empty_and_typed);
	tcase_add_test(tc, build_agent_disconnect);
	tcase_add_test(tc, negotiate_size);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(frame_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
