/* SPDX-License-Identifier: Apache-2.0 */
/* check_decide_wire: what check_decide and fuzz_decide need to play HAProxy's
 * side: a NOTIFY payload writer and an ACK reader, both on the project's
 * spop.h and frame.h codecs. The reader refuses anything but one whole ACK
 * frame of set-var actions within max_frame. */
#ifndef CUTOVER_CHECK_DECIDE_WIRE_H
#define CUTOVER_CHECK_DECIDE_WIRE_H

#include <stdbool.h>
#include <string.h>

#include "frame.h"
#include "spop.h"

#define WIRE_MAX_VARS 16

struct wire_var {
	unsigned scope;
	struct spop_bytes name;
	struct spop_data value;
};

struct wire_ack {
	uint64_t stream_id, frame_id;
	unsigned nvars;
	struct wire_var var[WIRE_MAX_VARS];
};

/* Reads buf[0..len) as exactly one ACK frame of at most max_frame bytes. */
static inline bool wire_read_ack(const uint8_t *buf, size_t len, uint32_t max_frame,
				 struct wire_ack *out)
{
	struct frame f;
	unsigned status;

	if (frame_split(buf, len, max_frame, &f, &status) != (ssize_t)len)
		return false;
	if (f.type != FRAME_ACK || f.flags != FRAME_FLAG_FIN)
		return false;
	out->stream_id = f.stream_id;
	out->frame_id = f.frame_id;
	out->nvars = 0;
	const uint8_t *p = f.payload, *end = f.payload + f.payload_len;
	while (p < end) {
		if (out->nvars == WIRE_MAX_VARS || end - p < 3 || p[0] != 1 || p[1] != 3 || p[2] > 4)
			return false;
		struct wire_var *v = &out->var[out->nvars++];
		v->scope = p[2];
		p += 3;
		if (spop_bytes_decode(&p, end, &v->name) != SPOP_OK ||
		    spop_data_decode(&p, end, &v->value) != SPOP_OK)
			return false;
	}
	return true;
}

/* The variable scope/name of ack, or NULL. */
static inline const struct spop_data *wire_var(const struct wire_ack *ack, unsigned scope,
					       const char *name)
{
	for (unsigned i = 0; i < ack->nvars; i++)
		if (ack->var[i].scope == scope && spop_bytes_eq(ack->var[i].name, name))
			return &ack->var[i].value;
	return NULL;
}

/* NOTIFY payload writer: messages, each with its arguments. */
struct wire_notify {
	uint8_t *p, *end;
	bool failed;
};

static inline void wire_message(struct wire_notify *w, const char *name, unsigned nargs)
{
	if (w->failed || spop_bytes_encode(&w->p, w->end, name, strlen(name)) != SPOP_OK ||
	    w->p >= w->end) {
		w->failed = true;
		return;
	}
	*w->p++ = (uint8_t)nargs;
}

static inline void wire_arg(struct wire_notify *w, const char *name, const struct spop_data *v)
{
	if (w->failed || spop_bytes_encode(&w->p, w->end, name, strlen(name)) != SPOP_OK ||
	    spop_data_encode(&w->p, w->end, v) != SPOP_OK)
		w->failed = true;
}

static inline void wire_arg_string(struct wire_notify *w, const char *name, const char *s,
				   size_t len)
{
	struct spop_data v = { .type = SPOP_T_STRING };

	v.u.bytes.ptr = (const uint8_t *)s;
	v.u.bytes.len = len;
	wire_arg(w, name, &v);
}

#endif
