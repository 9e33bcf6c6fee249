/* SPDX-License-Identifier: Apache-2.0 */
/* spop_wire: the SPOP codec of spop-load, written from docs/spop.md
 * alone (it shares no code with the agent). Encoders write through a bounded
 * writer; parsers take one complete frame (without its 4-byte length) and
 * return NULL when it is acceptable, else the reason. No I/O, no allocation. */
#ifndef SPOP_WIRE_H
#define SPOP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol constants (docs/spop.md 1.2, 2.2, 3.5). */
enum frame_type {
	FT_HAPROXY_HELLO = 1,
	FT_HAPROXY_DISCONNECT = 2,
	FT_NOTIFY = 3,
	FT_AGENT_HELLO = 101,
	FT_AGENT_DISCONNECT = 102,
	FT_ACK = 103,
};

enum data_type {
	DT_NULL = 0, DT_BOOL, DT_INT32, DT_UINT32, DT_INT64, DT_UINT64,
	DT_IPV4, DT_IPV6, DT_STRING, DT_BINARY,
};

#define FLAG_FIN 0x00000001u
#define SCOPE_PROC 0
#define SCOPE_TXN 2
#define ACTION_SET_VAR 1
#define ACTION_UNSET_VAR 2
#define MIN_FRAME 256u
#define OUR_MAX_FRAME 16380u /* what we offer, HAProxy's default */

/* A cursor that refuses to pass its end. */
struct writer {
	uint8_t *p;
	uint8_t *end;
	bool full; /* set once anything did not fit; the output is then void */
};

struct value {
	enum data_type type;
	uint64_t num;      /* BOOL, integer types */
	const void *bytes; /* IPV4 (4), IPV6 (16), STRING and BINARY */
	size_t len;        /* STRING and BINARY */
};

/* A string value, or NULL when s is NULL. */
struct value str_value(const char *s);

struct arg {
	const char *name;
	struct value value;
};

/* Frames HAProxy sends (docs/spop.md 3.1, 3.3, 3.5). engine_id may be NULL. On
 * overflow the writer is marked full and the output is void. */
void encode_hello(struct writer *w, uint32_t max_frame, const char *caps,
		  const char *engine_id, bool healthcheck);
void encode_notify(struct writer *w, uint64_t sid, uint64_t fid, const char *message,
		   const struct arg *args, unsigned nargs);
void encode_disconnect(struct writer *w, uint32_t status, const char *message);

struct disconnect {
	uint64_t status;
	char message[256];
};

struct agent_hello {
	uint64_t max_frame;
	bool pipelining;
	struct disconnect bye; /* when the agent answered with AGENT-DISCONNECT */
	bool refused;
};

/* Checks an AGENT-HELLO as strictly as HAProxy 3.1+'s health check (or reports
 * the AGENT-DISCONNECT it got instead, with h->refused). */
const char *parse_agent_hello(const uint8_t *frame, size_t len, uint32_t offered,
			      struct agent_hello *h);

/* What one ACK said, as far as the report cares. */
struct ack {
	uint64_t sid, fid;
	bool phase;             /* txn.phase was set (docs/contracts.md: always) */
	bool proc_var;          /* a proc-scope variable was set (never) */
	const uint8_t *backend; /* txn.backend, or NULL */
	size_t backend_len;
	uint64_t status;        /* txn.status, 0 when absent */
};

/* Parses an ACK, or an AGENT-DISCONNECT (then *is_bye and *bye are set). */
const char *parse_ack(const uint8_t *frame, size_t len, struct ack *a,
		      struct disconnect *bye, bool *is_bye);

/* s[0..len) equals the C string lit. */
bool bytes_are(const uint8_t *s, size_t len, const char *lit);

/* Checks the codec against docs/spop.md's varint table and example frames; prints
 * what fails and a summary line; returns the number of failed checks. */
unsigned wire_self_test(void);

#endif
