/* SPDX-License-Identifier: Apache-2.0 */
/* frame: SPOP frames on top of spop.h. Splits frames off a byte stream,
 * parses HAPROXY-HELLO, NOTIFY and HAPROXY-DISCONNECT into plain structs
 * (views into the caller's buffer), and builds AGENT-HELLO, ACK and
 * AGENT-DISCONNECT into a caller buffer. Pure: no allocation, I/O or logging. */
#ifndef CUTOVER_FRAME_H
#define CUTOVER_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "spop.h"

enum frame_type {
	FRAME_UNSET = 0,
	FRAME_HAPROXY_HELLO = 1,
	FRAME_HAPROXY_DISCONNECT = 2,
	FRAME_NOTIFY = 3,
	FRAME_AGENT_HELLO = 101,
	FRAME_AGENT_DISCONNECT = 102,
	FRAME_ACK = 103,
};

#define FRAME_FLAG_FIN 0x00000001u
#define FRAME_FLAG_ABORT 0x00000002u

#define FRAME_LEN_SIZE 4         /* the length prefix, not counted by it */
#define FRAME_MIN_MAX_SIZE 256   /* lowest max-frame-size either side may use */
#define FRAME_AGENT_MAX_SIZE 16380 /* ours: HAProxy's default tune.bufsize - 4 */

/* DISCONNECT status codes, both directions. */
enum frame_status {
	FRAME_ST_NORMAL = 0,
	FRAME_ST_IO = 1,
	FRAME_ST_TIMEOUT = 2,
	FRAME_ST_TOO_BIG = 3,
	FRAME_ST_INVALID = 4,
	FRAME_ST_NO_VERSION = 5,
	FRAME_ST_NO_FRAME_SIZE = 6,
	FRAME_ST_NO_CAPABILITIES = 7,
	FRAME_ST_BAD_VERSION = 8,
	FRAME_ST_BAD_FRAME_SIZE = 9,
	FRAME_ST_NO_FRAGMENTATION = 10,
	FRAME_ST_INTERLACED = 11,
	FRAME_ST_FRAME_ID_NOT_FOUND = 12,
	FRAME_ST_RESOURCE = 13,
	FRAME_ST_UNKNOWN = 99,
};

/* The text sent with a status ("normal", "frame is too big", ...). */
const char *frame_status_text(unsigned status);

/* One frame, split off the stream; payload points into the caller's buffer. */
struct frame {
	uint8_t type;
	uint32_t flags;
	uint64_t stream_id;
	uint64_t frame_id;
	const uint8_t *payload;
	size_t payload_len;
};

/* Splits the first frame off buf[0..len). Returns the bytes it spans
 * (length prefix included) when it is whole, SPOP_INCOMPLETE when more bytes
 * are needed, or SPOP_INVALID with *status set: FRAME_ST_TOO_BIG when its
 * length exceeds max_size (known from the 4 length bytes alone),
 * FRAME_ST_INVALID for a zero length or a broken header. */
ssize_t frame_split(const uint8_t *buf, size_t len, uint32_t max_size, struct frame *f,
		    unsigned *status);

struct hello {
	uint32_t max_frame_size; /* HAProxy's */
	bool pipelining;         /* offered by HAProxy */
	bool healthcheck;
	struct spop_bytes engine_id; /* empty when absent */
};

/* Parses a HAPROXY-HELLO. Returns SPOP_OK, or SPOP_INVALID with *status:
 * 4 malformed, non-zero ids, or a known key of the wrong type; 5 no
 * supported-versions; 6 no max-frame-size; 8 no "2.0" among the versions;
 * 9 HAProxy's max-frame-size below 256. FIN is the caller's to check. */
int frame_parse_hello(const struct frame *f, struct hello *out, unsigned *status);

struct disconnect {
	unsigned status;         /* FRAME_ST_UNKNOWN when absent */
	struct spop_bytes message; /* empty when absent */
};

/* Parses a HAPROXY-DISCONNECT. Returns SPOP_OK or SPOP_INVALID (status 4). */
int frame_parse_disconnect(const struct frame *f, struct disconnect *out, unsigned *status);

/* NOTIFY: a validated list of messages, walked with the iterators below. */
struct notify {
	const uint8_t *p, *end; /* what is not walked yet */
	unsigned args_left;     /* arguments of the current message not walked */
};

struct notify_message {
	struct spop_bytes name;
	unsigned nargs;
};

struct notify_arg {
	struct spop_bytes name; /* empty for an unnamed argument */
	struct spop_data value;
};

/* Checks the whole NOTIFY payload (every message, name and typed value).
 * Returns SPOP_OK, or SPOP_INVALID (status 4). The iterators may only be used
 * on a notify this accepted; they cannot fail, they only end. */
int frame_parse_notify(const struct frame *f, struct notify *out, unsigned *status);
/* The next message; skips the arguments of the previous one not walked. */
bool frame_next_message(struct notify *n, struct notify_message *m);
/* The next argument of the message frame_next_message returned last. */
bool frame_next_arg(struct notify *n, struct notify_arg *a);

/* Builders. Each writes one whole frame (length prefix included) into
 * buf[0..cap) and returns its size, or SPOP_NOSPACE. Flags are exactly FIN.
 * max_size bounds the frame as max-frame-size does (the prefix excluded). */

/* AGENT-HELLO: version "2.0", max-frame-size, capabilities ("pipelining" or
 * ""; the key is always present). */
ssize_t frame_build_agent_hello(uint8_t *buf, size_t cap, uint32_t max_frame_size,
				bool pipelining);

/* AGENT-DISCONNECT with status-code and frame_status_text(status). */
ssize_t frame_build_agent_disconnect(uint8_t *buf, size_t cap, unsigned status);

/* Negotiated max-frame-size: the smaller of HAProxy's and ours. HAProxy's is
 * at least FRAME_MIN_MAX_SIZE once frame_parse_hello accepted it. */
uint32_t frame_negotiate_size(uint32_t haproxy, uint32_t ours);

/* ACK: begin, add set-var actions, end. An action that does not fit marks the
 * builder failed; frame_ack_end then returns SPOP_NOSPACE. */
enum frame_var_scope {
	FRAME_SCOPE_PROC = 0,
	FRAME_SCOPE_SESS = 1,
	FRAME_SCOPE_TXN = 2,
	FRAME_SCOPE_REQ = 3,
	FRAME_SCOPE_RES = 4,
};

struct ack_builder {
	uint8_t *start, *p, *end;
	bool failed;
};

void frame_ack_begin(struct ack_builder *b, uint8_t *buf, size_t cap, uint32_t max_size,
		     uint64_t stream_id, uint64_t frame_id);
void frame_ack_set_var(struct ack_builder *b, enum frame_var_scope scope, const char *name,
		       const struct spop_data *value);
void frame_ack_set_string(struct ack_builder *b, enum frame_var_scope scope, const char *name,
			  const char *s, size_t len);
void frame_ack_set_int64(struct ack_builder *b, enum frame_var_scope scope, const char *name,
			 int64_t v);
void frame_ack_set_bool(struct ack_builder *b, enum frame_var_scope scope, const char *name,
			bool v);
ssize_t frame_ack_end(struct ack_builder *b);

/* A set-var of a STRING of exactly len bytes that the caller writes: returns
 * where those bytes go (the builder has moved past them), or NULL when the
 * action does not fit (the builder has failed). */
char *frame_ack_string_room(struct ack_builder *b, enum frame_var_scope scope, const char *name,
			    size_t len);

/* Pre-encoded actions: a builder over buf[0..cap) that writes actions only,
 * no frame header; frame_actions_end returns their size or SPOP_NOSPACE.
 * frame_ack_put appends such bytes to an ACK as they are. */
void frame_actions_begin(struct ack_builder *b, uint8_t *buf, size_t cap);
ssize_t frame_actions_end(const struct ack_builder *b);
void frame_ack_put(struct ack_builder *b, const uint8_t *actions, size_t len);

#endif
