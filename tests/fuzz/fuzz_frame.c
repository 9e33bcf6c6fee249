/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the frame decoders over arbitrary bytes, driven the way
 * conn.c drives them. Frames are split off the input one after the other; a
 * HELLO negotiates the size the next frames are held to; every accepted
 * NOTIFY is walked and its arguments are re-encoded into an ACK, which must
 * split and decode back to the same values. Crashes, over-reads and broken
 * round trips are findings. */
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static bool data_eq(const struct spop_data *a, const struct spop_data *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case SPOP_T_NULL:
		return true;
	case SPOP_T_BOOL:
		return a->u.boolean == b->u.boolean;
	case SPOP_T_IPV4:
		return memcmp(a->u.ipv4, b->u.ipv4, 4) == 0;
	case SPOP_T_IPV6:
		return memcmp(a->u.ipv6, b->u.ipv6, 16) == 0;
	case SPOP_T_STRING:
	case SPOP_T_BINARY:
		return a->u.bytes.len == b->u.bytes.len &&
		       (a->u.bytes.len == 0 ||
			memcmp(a->u.bytes.ptr, b->u.bytes.ptr, a->u.bytes.len) == 0);
	default:
		return a->u.integer == b->u.integer;
	}
}

/* Re-encodes one argument as a set-var in an ACK and reads it back. */
static void roundtrip_arg(const struct notify_arg *a, uint32_t max_frame)
{
	static uint8_t out[FRAME_LEN_SIZE + FRAME_AGENT_MAX_SIZE];
	struct ack_builder b;

	frame_ack_begin(&b, out, sizeof(out), max_frame, 1, 1);
	frame_ack_set_var(&b, FRAME_SCOPE_TXN, "v", &a->value);
	ssize_t n = frame_ack_end(&b);
	if (n < 0)
		return; /* a value too big for the frame is refused, not cut */
	struct frame f;
	unsigned status;
	CHECK(frame_split(out, (size_t)n, max_frame, &f, &status) == n);
	CHECK(f.type == FRAME_ACK && f.flags == FRAME_FLAG_FIN);
	const uint8_t *p = f.payload + 3, *end = f.payload + f.payload_len;
	struct spop_bytes name;
	struct spop_data back;
	CHECK(spop_bytes_decode(&p, end, &name) == SPOP_OK && spop_bytes_eq(name, "v"));
	CHECK(spop_data_decode(&p, end, &back) == SPOP_OK && p == end);
	CHECK(data_eq(&a->value, &back));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t max_frame = FRAME_AGENT_MAX_SIZE;
	uint8_t reply[FRAME_LEN_SIZE + FRAME_MIN_MAX_SIZE];

	while (size > 0) {
		struct frame f;
		unsigned status = 0;
		ssize_t r = frame_split(data, size, max_frame, &f, &status);
		if (r == SPOP_INCOMPLETE)
			break;
		if (r < 0) {
			CHECK(status == FRAME_ST_INVALID || status == FRAME_ST_TOO_BIG);
			CHECK(frame_build_agent_disconnect(reply, sizeof(reply), status) > 0);
			break;
		}
		CHECK((size_t)r <= size && f.payload + f.payload_len == data + r);

		struct hello h;
		struct disconnect d;
		struct notify n;
		if (frame_parse_hello(&f, &h, &status) == SPOP_OK) {
			CHECK(h.max_frame_size >= FRAME_MIN_MAX_SIZE);
			max_frame = frame_negotiate_size(h.max_frame_size, FRAME_AGENT_MAX_SIZE);
			CHECK(frame_build_agent_hello(reply, sizeof(reply), max_frame,
						      h.pipelining) > 0);
		} else {
			CHECK(status >= FRAME_ST_INVALID && status <= FRAME_ST_BAD_FRAME_SIZE);
		}
		if (frame_parse_disconnect(&f, &d, &status) != SPOP_OK)
			CHECK(status == FRAME_ST_INVALID);
		if (frame_parse_notify(&f, &n, &status) == SPOP_OK) {
			struct notify_message m;
			struct notify_arg a;
			while (frame_next_message(&n, &m))
				while (frame_next_arg(&n, &a))
					roundtrip_arg(&a, max_frame);
		} else {
			CHECK(status == FRAME_ST_INVALID);
		}
		data += r;
		size -= (size_t)r;
	}
	return 0;
}
