/* SPDX-License-Identifier: Apache-2.0 */
#include "frame.h"

#include <string.h>

static const char *const status_texts[] = {
	[FRAME_ST_NORMAL] = "normal",
	[FRAME_ST_IO] = "I/O error",
	[FRAME_ST_TIMEOUT] = "a timeout occurred",
	[FRAME_ST_TOO_BIG] = "frame is too big",
	[FRAME_ST_INVALID] = "invalid frame received",
	[FRAME_ST_NO_VERSION] = "version value not found",
	[FRAME_ST_NO_FRAME_SIZE] = "max-frame-size value not found",
	[FRAME_ST_NO_CAPABILITIES] = "capabilities value not found",
	[FRAME_ST_BAD_VERSION] = "unsupported version",
	[FRAME_ST_BAD_FRAME_SIZE] = "max-frame-size too big or too small",
	[FRAME_ST_NO_FRAGMENTATION] = "payload fragmentation is not supported",
	[FRAME_ST_INTERLACED] = "invalid interlaced frames",
	[FRAME_ST_FRAME_ID_NOT_FOUND] = "frame-id not found",
	[FRAME_ST_RESOURCE] = "resource allocation error",
};

const char *frame_status_text(unsigned status)
{
	if (status < sizeof(status_texts) / sizeof(status_texts[0]) && status_texts[status])
		return status_texts[status];
	return "unknown error";
}

ssize_t frame_split(const uint8_t *buf, size_t len, uint32_t max_size, struct frame *f,
		    unsigned *status)
{
	if (len < FRAME_LEN_SIZE)
		return SPOP_INCOMPLETE;
	uint32_t flen = spop_get_u32(buf);
	if (flen == 0) {
		*status = FRAME_ST_INVALID;
		return SPOP_INVALID;
	}
	if (flen > max_size) {
		*status = FRAME_ST_TOO_BIG;
		return SPOP_INVALID;
	}
	if (len - FRAME_LEN_SIZE < flen)
		return SPOP_INCOMPLETE;

	/* The frame is whole: from here, running out of bytes is a broken frame. */
	const uint8_t *p = buf + FRAME_LEN_SIZE, *end = p + flen;
	if (end - p < 5)
		goto broken;
	f->type = p[0];
	f->flags = spop_get_u32(p + 1);
	p += 5;
	if (spop_varint_decode(&p, end, &f->stream_id) != SPOP_OK ||
	    spop_varint_decode(&p, end, &f->frame_id) != SPOP_OK)
		goto broken;
	f->payload = p;
	f->payload_len = (size_t)(end - p);
	return (ssize_t)(FRAME_LEN_SIZE + flen);
broken:
	*status = FRAME_ST_INVALID;
	return SPOP_INVALID;
}

/* True when the comma-separated list holds token (spaces around items
 * ignored). */
static bool list_has(struct spop_bytes list, const char *token)
{
	size_t tlen = strlen(token);
	const uint8_t *p = list.ptr, *end = list.ptr + list.len;

	while (p < end) {
		const uint8_t *comma = memchr(p, ',', (size_t)(end - p));
		const uint8_t *item_end = comma ? comma : end;
		const uint8_t *a = p, *b = item_end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if ((size_t)(b - a) == tlen && memcmp(a, token, tlen) == 0)
			return true;
		p = comma ? comma + 1 : end;
	}
	return false;
}

static bool is_integer(enum spop_type t)
{
	return t == SPOP_T_INT32 || t == SPOP_T_UINT32 || t == SPOP_T_INT64 || t == SPOP_T_UINT64;
}

int frame_parse_hello(const struct frame *f, struct hello *out, unsigned *status)
{
	const uint8_t *p = f->payload, *end = f->payload + f->payload_len;
	bool have_version = false, version_ok = false, have_size = false;
	uint64_t size = 0;

	memset(out, 0, sizeof(*out));
	*status = FRAME_ST_INVALID;
	if (f->stream_id != 0 || f->frame_id != 0)
		return SPOP_INVALID;
	while (p < end) {
		struct spop_bytes key;
		struct spop_data v;
		if (spop_kv_decode(&p, end, &key, &v) != SPOP_OK)
			return SPOP_INVALID;
		if (spop_bytes_eq(key, "supported-versions")) {
			if (v.type != SPOP_T_STRING)
				return SPOP_INVALID;
			have_version = true;
			version_ok = list_has(v.u.bytes, "2.0");
		} else if (spop_bytes_eq(key, "max-frame-size")) {
			if (!is_integer(v.type))
				return SPOP_INVALID;
			have_size = true;
			size = v.u.integer;
		} else if (spop_bytes_eq(key, "capabilities")) {
			if (v.type != SPOP_T_STRING)
				return SPOP_INVALID;
			out->pipelining = list_has(v.u.bytes, "pipelining");
		} else if (spop_bytes_eq(key, "healthcheck")) {
			if (v.type != SPOP_T_BOOL)
				return SPOP_INVALID;
			out->healthcheck = v.u.boolean;
		} else if (spop_bytes_eq(key, "engine-id")) {
			if (v.type != SPOP_T_STRING)
				return SPOP_INVALID;
			out->engine_id = v.u.bytes;
		}
		/* Unknown keys: their value was skipped by the decode. */
	}
	if (!have_version) {
		*status = FRAME_ST_NO_VERSION;
		return SPOP_INVALID;
	}
	if (!version_ok) {
		*status = FRAME_ST_BAD_VERSION;
		return SPOP_INVALID;
	}
	if (!have_size) {
		*status = FRAME_ST_NO_FRAME_SIZE;
		return SPOP_INVALID;
	}
	if (size < FRAME_MIN_MAX_SIZE) {
		*status = FRAME_ST_BAD_FRAME_SIZE;
		return SPOP_INVALID;
	}
	out->max_frame_size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
	return SPOP_OK;
}

int frame_parse_disconnect(const struct frame *f, struct disconnect *out, unsigned *status)
{
	const uint8_t *p = f->payload, *end = f->payload + f->payload_len;

	out->status = FRAME_ST_UNKNOWN;
	out->message.ptr = NULL;
	out->message.len = 0;
	*status = FRAME_ST_INVALID;
	if (f->stream_id != 0 || f->frame_id != 0)
		return SPOP_INVALID;
	while (p < end) {
		struct spop_bytes key;
		struct spop_data v;
		if (spop_kv_decode(&p, end, &key, &v) != SPOP_OK)
			return SPOP_INVALID;
		if (spop_bytes_eq(key, "status-code") && is_integer(v.type))
			out->status = v.u.integer > FRAME_ST_UNKNOWN ? FRAME_ST_UNKNOWN
								     : (unsigned)v.u.integer;
		else if (spop_bytes_eq(key, "message") && v.type == SPOP_T_STRING)
			out->message = v.u.bytes;
	}
	return SPOP_OK;
}

/* Skips one message (name, nb-args, arguments) starting at *p. */
static int message_skip(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *q = *p;
	struct spop_bytes name;

	if (spop_bytes_decode(&q, end, &name) != SPOP_OK || q >= end)
		return SPOP_INVALID;
	unsigned nargs = *q++;
	for (unsigned i = 0; i < nargs; i++) {
		if (spop_bytes_decode(&q, end, &name) != SPOP_OK ||
		    spop_data_skip(&q, end) != SPOP_OK)
			return SPOP_INVALID;
	}
	*p = q;
	return SPOP_OK;
}

int frame_parse_notify(const struct frame *f, struct notify *out, unsigned *status)
{
	const uint8_t *p = f->payload, *end = f->payload + f->payload_len;

	while (p < end) {
		if (message_skip(&p, end) != SPOP_OK) {
			*status = FRAME_ST_INVALID;
			return SPOP_INVALID;
		}
	}
	out->p = f->payload;
	out->end = end;
	out->args_left = 0;
	return SPOP_OK;
}

/* Validated by frame_parse_notify: no decode below can fail. */
bool frame_next_arg(struct notify *n, struct notify_arg *a)
{
	if (n->args_left == 0)
		return false;
	n->args_left--;
	spop_bytes_decode(&n->p, n->end, &a->name);
	spop_data_decode(&n->p, n->end, &a->value);
	return true;
}

bool frame_next_message(struct notify *n, struct notify_message *m)
{
	struct notify_arg skipped;

	while (frame_next_arg(n, &skipped))
		;
	if (n->p >= n->end)
		return false;
	spop_bytes_decode(&n->p, n->end, &m->name);
	m->nargs = *n->p++;
	n->args_left = m->nargs;
	return true;
}

/* Writes the length placeholder and the metadata; returns the cursor after
 * them, or NULL when they do not fit. */
static uint8_t *frame_begin(uint8_t *buf, uint8_t *end, uint8_t type, uint64_t sid,
			    uint64_t fid)
{
	uint8_t *p = buf;

	if (end - p < FRAME_LEN_SIZE + 5)
		return NULL;
	p += FRAME_LEN_SIZE;
	*p++ = type;
	spop_put_u32(p, FRAME_FLAG_FIN);
	p += 4;
	if (spop_varint_encode(&p, end, sid) != SPOP_OK ||
	    spop_varint_encode(&p, end, fid) != SPOP_OK)
		return NULL;
	return p;
}

static ssize_t frame_finish(uint8_t *buf, const uint8_t *p)
{
	size_t total = (size_t)(p - buf);

	spop_put_u32(buf, (uint32_t)(total - FRAME_LEN_SIZE));
	return (ssize_t)total;
}

static int kv_string(uint8_t **p, uint8_t *end, const char *key, const char *s)
{
	struct spop_data v = { .type = SPOP_T_STRING };

	v.u.bytes.ptr = (const uint8_t *)s;
	v.u.bytes.len = strlen(s);
	return spop_kv_encode(p, end, key, &v);
}

static int kv_uint32(uint8_t **p, uint8_t *end, const char *key, uint32_t n)
{
	struct spop_data v = { .type = SPOP_T_UINT32, .u.integer = n };

	return spop_kv_encode(p, end, key, &v);
}

/* A frame may not exceed max-frame-size, nor the caller's buffer. */
static uint8_t *bounded_end(uint8_t *buf, size_t cap, uint32_t max_size)
{
	size_t limit = (size_t)max_size + FRAME_LEN_SIZE;

	return buf + (cap < limit ? cap : limit);
}

ssize_t frame_build_agent_hello(uint8_t *buf, size_t cap, uint32_t max_frame_size,
				bool pipelining)
{
	uint8_t *end = bounded_end(buf, cap, max_frame_size);
	uint8_t *p = frame_begin(buf, end, FRAME_AGENT_HELLO, 0, 0);

	if (!p || kv_string(&p, end, "version", "2.0") != SPOP_OK ||
	    kv_uint32(&p, end, "max-frame-size", max_frame_size) != SPOP_OK ||
	    kv_string(&p, end, "capabilities", pipelining ? "pipelining" : "") != SPOP_OK)
		return SPOP_NOSPACE;
	return frame_finish(buf, p);
}

ssize_t frame_build_agent_disconnect(uint8_t *buf, size_t cap, unsigned status)
{
	/* Always fits the smallest frame size HAProxy can negotiate. */
	uint8_t *end = bounded_end(buf, cap, FRAME_MIN_MAX_SIZE);
	uint8_t *p = frame_begin(buf, end, FRAME_AGENT_DISCONNECT, 0, 0);

	if (!p || kv_uint32(&p, end, "status-code", status) != SPOP_OK ||
	    kv_string(&p, end, "message", frame_status_text(status)) != SPOP_OK)
		return SPOP_NOSPACE;
	return frame_finish(buf, p);
}

uint32_t frame_negotiate_size(uint32_t haproxy, uint32_t ours)
{
	return haproxy < ours ? haproxy : ours;
}

void frame_ack_begin(struct ack_builder *b, uint8_t *buf, size_t cap, uint32_t max_size,
		     uint64_t stream_id, uint64_t frame_id)
{
	b->start = buf;
	b->end = bounded_end(buf, cap, max_size);
	b->p = frame_begin(buf, b->end, FRAME_ACK, stream_id, frame_id);
	b->failed = b->p == NULL;
}

void frame_ack_set_var(struct ack_builder *b, enum frame_var_scope scope, const char *name,
		       const struct spop_data *value)
{
	if (b->failed)
		return;
	uint8_t *p = b->p;
	if (b->end - p < 3) {
		b->failed = true;
		return;
	}
	*p++ = 1; /* set-var */
	*p++ = 3; /* nb-args: scope, name, value */
	*p++ = (uint8_t)scope;
	if (spop_bytes_encode(&p, b->end, name, strlen(name)) != SPOP_OK ||
	    spop_data_encode(&p, b->end, value) != SPOP_OK) {
		b->failed = true;
		return;
	}
	b->p = p;
}

void frame_ack_set_string(struct ack_builder *b, enum frame_var_scope scope, const char *name,
			  const char *s, size_t len)
{
	struct spop_data v = { .type = SPOP_T_STRING };

	v.u.bytes.ptr = (const uint8_t *)s;
	v.u.bytes.len = len;
	frame_ack_set_var(b, scope, name, &v);
}

void frame_ack_set_int64(struct ack_builder *b, enum frame_var_scope scope, const char *name,
			 int64_t n)
{
	struct spop_data v = { .type = SPOP_T_INT64, .u.integer = (uint64_t)n };

	frame_ack_set_var(b, scope, name, &v);
}

void frame_ack_set_bool(struct ack_builder *b, enum frame_var_scope scope, const char *name,
			bool t)
{
	struct spop_data v = { .type = SPOP_T_BOOL, .u.boolean = t };

	frame_ack_set_var(b, scope, name, &v);
}

char *frame_ack_string_room(struct ack_builder *b, enum frame_var_scope scope, const char *name,
			    size_t len)
{
	if (b->failed)
		return NULL;
	uint8_t *p = b->p;
	if (b->end - p < 4) {
		b->failed = true;
		return NULL;
	}
	*p++ = 1; /* set-var */
	*p++ = 3; /* nb-args: scope, name, value */
	*p++ = (uint8_t)scope;
	if (spop_bytes_encode(&p, b->end, name, strlen(name)) != SPOP_OK || p == b->end) {
		b->failed = true;
		return NULL;
	}
	*p++ = SPOP_T_STRING;
	if (spop_varint_encode(&p, b->end, len) != SPOP_OK || (size_t)(b->end - p) < len) {
		b->failed = true;
		return NULL;
	}
	b->p = p + len;
	return (char *)p;
}

ssize_t frame_ack_end(struct ack_builder *b)
{
	if (b->failed)
		return SPOP_NOSPACE;
	return frame_finish(b->start, b->p);
}

void frame_actions_begin(struct ack_builder *b, uint8_t *buf, size_t cap)
{
	b->start = b->p = buf;
	b->end = buf + cap;
	b->failed = false;
}

ssize_t frame_actions_end(const struct ack_builder *b)
{
	return b->failed ? SPOP_NOSPACE : (ssize_t)(b->p - b->start);
}

void frame_ack_put(struct ack_builder *b, const uint8_t *actions, size_t len)
{
	if (b->failed)
		return;
	if ((size_t)(b->end - b->p) < len) {
		b->failed = true;
		return;
	}
	memcpy(b->p, actions, len);
	b->p += len;
}
