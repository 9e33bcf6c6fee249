/* SPDX-License-Identifier: Apache-2.0 */
/* spop_wire: the SPOP codec of spop-load (see spop_wire.h). */
#include "spop_wire.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/* ---- varint (docs/spop.md 2.1: HAProxy's encoding, not LEB128) ---- */

/* Writes v into buf (room for 10 bytes); returns the number of bytes. */
static size_t varint_encode(uint64_t v, uint8_t *buf)
{
	size_t n = 0;

	if (v < 240) {
		buf[0] = (uint8_t)v;
		return 1;
	}
	buf[n++] = (uint8_t)(0xF0 | (v & 0x0F));
	v = (v - 240) >> 4;
	while (v >= 128) {
		buf[n++] = (uint8_t)((v & 0x7F) | 0x80);
		v = (v - 128) >> 7;
	}
	buf[n++] = (uint8_t)v;
	return n;
}

/* Reads a varint from [p, end). Returns the bytes used, 0 when the input ends
 * first, -1 when the value does not fit 64 bits; *out is 0 unless it succeeds. */
static int varint_decode(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
	const uint8_t *q = p;
	uint64_t v, b, add;
	unsigned shift = 4;

	*out = 0;
	if (q >= end)
		return 0;
	v = *q++;
	if (v < 240) {
		*out = v;
		return 1;
	}
	for (;;) {
		if (q >= end)
			return 0;
		if (shift > 63)
			return -1;
		b = *q++;
		add = b << shift;
		if ((add >> shift) != b || v + add < v)
			return -1;
		v += add;
		if (b < 128)
			break;
		shift += 7;
	}
	*out = v;
	return (int)(q - p);
}

/* ---- encoder: a cursor that refuses to pass its end ---- */

static void put_bytes(struct writer *w, const void *s, size_t n)
{
	if (w->full || (size_t)(w->end - w->p) < n) {
		w->full = true;
		return;
	}
	memcpy(w->p, s, n);
	w->p += n;
}

static void put_byte(struct writer *w, uint8_t b)
{
	put_bytes(w, &b, 1);
}

static void put_varint(struct writer *w, uint64_t v)
{
	uint8_t buf[10];

	put_bytes(w, buf, varint_encode(v, buf));
}

/* Untyped string (docs/spop.md 2.3): keys, message, argument and variable names. */
static void put_name(struct writer *w, const char *s)
{
	size_t n = strlen(s);

	put_varint(w, n);
	put_bytes(w, s, n);
}

static void put_value(struct writer *w, const struct value *v)
{
	switch (v->type) {
	case DT_BOOL:
		put_byte(w, (uint8_t)(DT_BOOL | (v->num ? 0x10 : 0)));
		return;
	case DT_INT32: case DT_UINT32: case DT_INT64: case DT_UINT64:
		put_byte(w, (uint8_t)v->type);
		put_varint(w, v->num);
		return;
	case DT_IPV4:
		put_byte(w, DT_IPV4);
		put_bytes(w, v->bytes, 4);
		return;
	case DT_IPV6:
		put_byte(w, DT_IPV6);
		put_bytes(w, v->bytes, 16);
		return;
	case DT_STRING: case DT_BINARY:
		put_byte(w, (uint8_t)v->type);
		put_varint(w, v->len);
		put_bytes(w, v->bytes, v->len);
		return;
	case DT_NULL:
	default:
		put_byte(w, DT_NULL);
		return;
	}
}

struct value str_value(const char *s)
{
	if (s == NULL)
		return (struct value){ .type = DT_NULL };
	return (struct value){ .type = DT_STRING, .bytes = s, .len = strlen(s) };
}

/* Starts a frame: 4 length bytes (patched by frame_end), type, FIN, ids. */
static uint8_t *frame_begin(struct writer *w, enum frame_type type, uint64_t sid, uint64_t fid)
{
	uint8_t *start = w->p;
	static const uint8_t fin[4] = { 0, 0, 0, FLAG_FIN };

	put_bytes(w, "\0\0\0\0", 4);
	put_byte(w, (uint8_t)type);
	put_bytes(w, fin, 4);
	put_varint(w, sid);
	put_varint(w, fid);
	return start;
}

static void frame_end(struct writer *w, uint8_t *start)
{
	uint32_t len;

	if (w->full)
		return;
	len = htonl((uint32_t)(w->p - start - 4));
	memcpy(start, &len, 4);
}

/* HAPROXY-HELLO as HAProxy sends it (docs/spop.md 3.1). engine_id may be NULL. */
void encode_hello(struct writer *w, uint32_t max_frame, const char *caps,
		  const char *engine_id, bool healthcheck)
{
	uint8_t *start = frame_begin(w, FT_HAPROXY_HELLO, 0, 0);
	struct value v;

	put_name(w, "supported-versions");
	v = str_value("2.0");
	put_value(w, &v);
	put_name(w, "max-frame-size");
	v = (struct value){ .type = DT_UINT32, .num = max_frame };
	put_value(w, &v);
	put_name(w, "capabilities");
	v = str_value(caps);
	put_value(w, &v);
	if (engine_id != NULL) {
		put_name(w, "engine-id");
		v = str_value(engine_id);
		put_value(w, &v);
	}
	if (healthcheck) {
		put_name(w, "healthcheck");
		v = (struct value){ .type = DT_BOOL, .num = 1 };
		put_value(w, &v);
	}
	frame_end(w, start);
}

void encode_disconnect(struct writer *w, uint32_t status, const char *message)
{
	uint8_t *start = frame_begin(w, FT_HAPROXY_DISCONNECT, 0, 0);
	struct value v = { .type = DT_UINT32, .num = status };

	put_name(w, "status-code");
	put_value(w, &v);
	put_name(w, "message");
	v = str_value(message);
	put_value(w, &v);
	frame_end(w, start);
}

/* NOTIFY carrying one message (docs/spop.md 3.3). */
void encode_notify(struct writer *w, uint64_t sid, uint64_t fid, const char *message,
		   const struct arg *args, unsigned nargs)
{
	uint8_t *start = frame_begin(w, FT_NOTIFY, sid, fid);

	put_name(w, message);
	put_byte(w, (uint8_t)nargs);
	for (unsigned i = 0; i < nargs; i++) {
		put_name(w, args[i].name);
		put_value(w, &args[i].value);
	}
	frame_end(w, start);
}

/* ---- decoder: everything below works on one complete frame ---- */

struct reader {
	const uint8_t *p;
	const uint8_t *end;
};

static bool get_byte(struct reader *r, uint8_t *b)
{
	if (r->p >= r->end)
		return false;
	*b = *r->p++;
	return true;
}

static bool get_varint(struct reader *r, uint64_t *v)
{
	int n = varint_decode(r->p, r->end, v);

	if (n <= 0)
		return false;
	r->p += n;
	return true;
}

/* Length-prefixed bytes; the length is checked against what is left. */
static bool get_bytes(struct reader *r, const uint8_t **s, size_t *len)
{
	uint64_t n;

	if (!get_varint(r, &n) || n > (uint64_t)(r->end - r->p))
		return false;
	*s = r->p;
	*len = (size_t)n;
	r->p += n;
	return true;
}

static bool get_value(struct reader *r, struct value *v)
{
	uint8_t b;
	const uint8_t *s;

	if (!get_byte(r, &b))
		return false;
	*v = (struct value){ .type = (enum data_type)(b & 0x0F) };
	switch (v->type) {
	case DT_NULL:
		return true;
	case DT_BOOL:
		v->num = (b & 0x10) != 0;
		return true;
	case DT_INT32: case DT_UINT32: case DT_INT64: case DT_UINT64:
		return get_varint(r, &v->num);
	case DT_IPV4: case DT_IPV6:
		v->len = v->type == DT_IPV4 ? 4 : 16;
		if ((size_t)(r->end - r->p) < v->len)
			return false;
		v->bytes = r->p;
		r->p += v->len;
		return true;
	case DT_STRING: case DT_BINARY:
		if (!get_bytes(r, &s, &v->len))
			return false;
		v->bytes = s;
		return true;
	default:
		return false; /* reserved types cannot be skipped */
	}
}

bool bytes_are(const uint8_t *s, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

struct frame_head {
	uint8_t type;
	uint32_t flags;
	uint64_t sid;
	uint64_t fid;
};

static bool get_head(struct reader *r, struct frame_head *h)
{
	uint8_t f[4];

	if (!get_byte(r, &h->type))
		return false;
	for (int i = 0; i < 4; i++)
		if (!get_byte(r, &f[i]))
			return false;
	h->flags = (uint32_t)f[0] << 24 | (uint32_t)f[1] << 16 | (uint32_t)f[2] << 8 | f[3];
	return get_varint(r, &h->sid) && get_varint(r, &h->fid);
}

/* Does a comma-separated list contain `word` (spaces ignored)? */
static bool list_has(const uint8_t *s, size_t len, const char *word)
{
	size_t i = 0, wl = strlen(word);

	while (i < len) {
		size_t j = i, a, b;

		while (j < len && s[j] != ',')
			j++;
		a = i;
		b = j;
		while (a < b && s[a] == ' ')
			a++;
		while (b > a && s[b - 1] == ' ')
			b--;
		if (b - a == wl && memcmp(s + a, word, wl) == 0)
			return true;
		i = j + 1;
	}
	return false;
}

/* KV-list of a DISCONNECT frame; the head is already read. */
static bool parse_disconnect(struct reader *r, struct disconnect *d)
{
	const uint8_t *key;
	size_t klen;
	struct value v;

	d->status = 99;
	d->message[0] = '\0';
	while (r->p < r->end) {
		if (!get_bytes(r, &key, &klen) || !get_value(r, &v))
			return false;
		if (bytes_are(key, klen, "status-code") && v.type >= DT_INT32 && v.type <= DT_UINT64)
			d->status = v.num;
		else if (bytes_are(key, klen, "message") && v.type == DT_STRING)
			snprintf(d->message, sizeof d->message, "%.*s", (int)v.len,
				 (const char *)v.bytes);
	}
	return true;
}

/* Checks an AGENT-HELLO against docs/spop.md 3.2 (as strictly as HAProxy 3.1+'s
 * health check). Returns NULL when valid, else the reason. */
const char *parse_agent_hello(const uint8_t *frame, size_t len, uint32_t offered,
			      struct agent_hello *h)
{
	struct reader r = { frame, frame + len };
	struct frame_head head;
	const uint8_t *key;
	size_t klen;
	struct value v;
	bool version = false, max_frame = false, caps = false;

	memset(h, 0, sizeof *h);
	if (!get_head(&r, &head))
		return "truncated frame head";
	if (head.type == FT_AGENT_DISCONNECT) {
		h->refused = true;
		return parse_disconnect(&r, &h->bye) ? "agent refused the HELLO" : "bad AGENT-DISCONNECT";
	}
	if (head.type != FT_AGENT_HELLO)
		return "first frame is not an AGENT-HELLO";
	if (head.flags != FLAG_FIN)
		return "AGENT-HELLO flags are not exactly FIN";
	if (head.sid != 0 || head.fid != 0)
		return "AGENT-HELLO ids are not 0/0";
	while (r.p < r.end) {
		if (!get_bytes(&r, &key, &klen) || !get_value(&r, &v))
			return "malformed KV item";
		if (bytes_are(key, klen, "version")) {
			if (v.type != DT_STRING || !bytes_are(v.bytes, v.len, "2.0"))
				return "version is not \"2.0\"";
			version = true;
		} else if (bytes_are(key, klen, "max-frame-size")) {
			if (v.type < DT_INT32 || v.type > DT_UINT64)
				return "max-frame-size is not an integer";
			if (v.num < MIN_FRAME || v.num > offered)
				return "max-frame-size out of [256, offered]";
			h->max_frame = v.num;
			max_frame = true;
		} else if (bytes_are(key, klen, "capabilities")) {
			if (v.type != DT_STRING)
				return "capabilities is not a string";
			if (list_has(v.bytes, v.len, "async") || list_has(v.bytes, v.len, "fragmentation"))
				return "agent announced a capability HAProxy did not offer";
			h->pipelining = list_has(v.bytes, v.len, "pipelining");
			caps = true;
		}
	}
	if (!version)
		return "version missing";
	if (!max_frame)
		return "max-frame-size missing";
	if (!caps)
		return "capabilities missing";
	return NULL;
}

/* Parses an ACK (or reports an AGENT-DISCONNECT through *bye). Returns NULL
 * when well formed, else the reason. */
const char *parse_ack(const uint8_t *frame, size_t len, struct ack *a,
		      struct disconnect *bye, bool *is_bye)
{
	struct reader r = { frame, frame + len };
	struct frame_head head;
	uint8_t type, nargs, scope;
	const uint8_t *name;
	size_t nlen;
	struct value v;

	memset(a, 0, sizeof *a);
	*is_bye = false;
	if (!get_head(&r, &head))
		return "truncated frame head";
	if (head.type == FT_AGENT_DISCONNECT) {
		*is_bye = true;
		return parse_disconnect(&r, bye) ? NULL : "bad AGENT-DISCONNECT";
	}
	if (head.type != FT_ACK)
		return "frame is not an ACK";
	if (head.flags != FLAG_FIN)
		return "ACK flags are not exactly FIN";
	a->sid = head.sid;
	a->fid = head.fid;
	while (r.p < r.end) {
		if (!get_byte(&r, &type) || !get_byte(&r, &nargs))
			return "truncated action";
		if (type == ACTION_SET_VAR && nargs == 3) {
			if (!get_byte(&r, &scope) || !get_bytes(&r, &name, &nlen) || !get_value(&r, &v))
				return "malformed set-var";
		} else if (type == ACTION_UNSET_VAR && nargs == 2) {
			if (!get_byte(&r, &scope) || !get_bytes(&r, &name, &nlen))
				return "malformed unset-var";
			continue;
		} else {
			return "unknown action or wrong nb-args";
		}
		if (scope == SCOPE_PROC) {
			a->proc_var = true;
		} else if (scope != SCOPE_TXN) {
			continue;
		} else if (bytes_are(name, nlen, "phase") && v.type == DT_INT64) {
			a->phase = true;
		} else if (bytes_are(name, nlen, "backend") && v.type == DT_STRING) {
			a->backend = v.bytes;
			a->backend_len = v.len;
		} else if (bytes_are(name, nlen, "status") && v.type >= DT_INT32 && v.type <= DT_UINT64) {
			a->status = v.num;
		}
	}
	return NULL;
}

/* ---- self-test: the codec against docs/spop.md's tables and examples ---- */

static bool expect_bytes(const char *what, const uint8_t *got, size_t glen, const uint8_t *want,
			 size_t wlen)
{
	if (glen == wlen && memcmp(got, want, wlen) == 0)
		return true;
	fprintf(stderr, "self-test: %s: got", what);
	for (size_t i = 0; i < glen; i++)
		fprintf(stderr, " %02x", got[i]);
	fprintf(stderr, "\n");
	return false;
}

unsigned wire_self_test(void)
{
	static const struct {
		uint64_t v;
		uint8_t len;
		uint8_t bytes[10];
	} table[] = {
		{ 0, 1, { 0x00 } }, { 1, 1, { 0x01 } }, { 127, 1, { 0x7F } }, { 128, 1, { 0x80 } },
		{ 239, 1, { 0xEF } }, { 240, 2, { 0xF0, 0x00 } }, { 255, 2, { 0xFF, 0x00 } },
		{ 256, 2, { 0xF0, 0x01 } }, { 300, 2, { 0xFC, 0x03 } }, { 2287, 2, { 0xFF, 0x7F } },
		{ 2288, 3, { 0xF0, 0x80, 0x00 } }, { 4660, 3, { 0xF4, 0x94, 0x01 } },
		{ 16380, 3, { 0xFC, 0xF0, 0x06 } }, { 65535, 3, { 0xFF, 0xF0, 0x1E } },
		{ 264431, 3, { 0xFF, 0xFF, 0x7F } }, { 264432, 4, { 0xF0, 0x80, 0x80, 0x00 } },
		{ 33818863, 4, { 0xFF, 0xFF, 0xFF, 0x7F } },
		{ 33818864, 5, { 0xF0, 0x80, 0x80, 0x80, 0x00 } },
		{ 4294967295u, 5, { 0xFF, 0xF0, 0xFE, 0xFE, 0x7E } },
		{ UINT64_MAX, 10, { 0xFF, 0xF0, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0xFE, 0x0E } },
	};
	/* docs/spop.md 3.1: the health-check HELLO, 82 bytes. */
	static const uint8_t hello_check[] = {
		0x00, 0x00, 0x00, 0x4e, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x12, 0x73, 0x75,
		0x70, 0x70, 0x6f, 0x72, 0x74, 0x65, 0x64, 0x2d, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f,
		0x6e, 0x73, 0x08, 0x03, 0x32, 0x2e, 0x30, 0x0e, 0x6d, 0x61, 0x78, 0x2d, 0x66, 0x72,
		0x61, 0x6d, 0x65, 0x2d, 0x73, 0x69, 0x7a, 0x65, 0x03, 0xfc, 0xf0, 0x06, 0x0c, 0x63,
		0x61, 0x70, 0x61, 0x62, 0x69, 0x6c, 0x69, 0x74, 0x69, 0x65, 0x73, 0x08, 0x00, 0x0b,
		0x68, 0x65, 0x61, 0x6c, 0x74, 0x68, 0x63, 0x68, 0x65, 0x63, 0x6b, 0x11,
	};
	/* docs/spop.md 3.2: AGENT-HELLO, 68 bytes. */
	static const uint8_t agent_hello[] = {
		0x00, 0x00, 0x00, 0x40, 0x65, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x07, 0x76, 0x65,
		0x72, 0x73, 0x69, 0x6f, 0x6e, 0x08, 0x03, 0x32, 0x2e, 0x30, 0x0e, 0x6d, 0x61, 0x78,
		0x2d, 0x66, 0x72, 0x61, 0x6d, 0x65, 0x2d, 0x73, 0x69, 0x7a, 0x65, 0x03, 0xfc, 0xf0,
		0x06, 0x0c, 0x63, 0x61, 0x70, 0x61, 0x62, 0x69, 0x6c, 0x69, 0x74, 0x69, 0x65, 0x73,
		0x08, 0x0a, 0x70, 0x69, 0x70, 0x65, 0x6c, 0x69, 0x6e, 0x69, 0x6e, 0x67,
	};
	/* docs/spop.md 3.3: NOTIFY of message "route", sid 5, fid 1. */
	static const uint8_t notify[] = {
		0x00, 0x00, 0x00, 0x2e, 0x03, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x05, 0x72, 0x6f,
		0x75, 0x74, 0x65, 0x03, 0x06, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64, 0x08, 0x03, 0x47,
		0x45, 0x54, 0x04, 0x70, 0x61, 0x74, 0x68, 0x08, 0x04, 0x2f, 0x66, 0x6f, 0x6f, 0x03,
		0x73, 0x72, 0x63, 0x06, 0xc0, 0x00, 0x02, 0x0a,
	};
	/* docs/spop.md 3.4: ACK setting backend "be_app" and path "/bar". */
	static const uint8_t ack[] = {
		0x00, 0x00, 0x00, 0x28, 0x67, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x03, 0x02,
		0x07, 0x62, 0x61, 0x63, 0x6b, 0x65, 0x6e, 0x64, 0x08, 0x06, 0x62, 0x65, 0x5f, 0x61,
		0x70, 0x70, 0x01, 0x03, 0x02, 0x04, 0x70, 0x61, 0x74, 0x68, 0x08, 0x04, 0x2f, 0x62,
		0x61, 0x72,
	};
	static const uint8_t empty_ack[] = { 0x00, 0x00, 0x00, 0x07, 0x67, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01 };
	/* docs/spop.md 3.5: AGENT-DISCONNECT {0, "normal"}. */
	static const uint8_t bye[] = {
		0x00, 0x00, 0x00, 0x25, 0x66, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x0b, 0x73, 0x74,
		0x61, 0x74, 0x75, 0x73, 0x2d, 0x63, 0x6f, 0x64, 0x65, 0x03, 0x00, 0x07, 0x6d, 0x65,
		0x73, 0x73, 0x61, 0x67, 0x65, 0x08, 0x06, 0x6e, 0x6f, 0x72, 0x6d, 0x61, 0x6c,
	};
	uint8_t buf[256], *start;
	unsigned ok = 0, total = 0;
	uint64_t v;
	struct writer w;
	struct agent_hello h;
	struct ack a;
	struct disconnect d;
	bool is_bye;
	const uint8_t src[4] = { 192, 0, 2, 10 };
	const struct arg args[3] = {
		{ "method", str_value("GET") },
		{ "path", str_value("/foo") },
		{ "src", { .type = DT_IPV4, .bytes = src } },
	};

#define CHECK(what, cond) \
	do { total++; if (cond) ok++; else fprintf(stderr, "self-test: FAILED %s\n", what); } while (0)

	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
		size_t n = varint_encode(table[i].v, buf);
		char what[64];

		snprintf(what, sizeof what, "varint %llu encode", (unsigned long long)table[i].v);
		CHECK(what, expect_bytes(what, buf, n, table[i].bytes, table[i].len));
		snprintf(what, sizeof what, "varint %llu decode", (unsigned long long)table[i].v);
		CHECK(what, varint_decode(table[i].bytes, table[i].bytes + table[i].len, &v) == table[i].len &&
				    v == table[i].v);
		for (uint8_t cut = 0; cut < table[i].len; cut++) {
			snprintf(what, sizeof what, "varint %llu cut at %u is incomplete",
				 (unsigned long long)table[i].v, cut);
			CHECK(what, varint_decode(table[i].bytes, table[i].bytes + cut, &v) == 0);
		}
	}
	{
		static const uint8_t too_long[] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F };
		CHECK("varint over 64 bits is invalid", varint_decode(too_long, too_long + sizeof too_long, &v) < 0);
	}

	w = (struct writer){ buf, buf + sizeof buf, false };
	encode_hello(&w, 16380, "", NULL, true);
	CHECK("health-check HELLO", expect_bytes("health-check HELLO", buf, (size_t)(w.p - buf),
						 hello_check, sizeof hello_check));
	w = (struct writer){ buf, buf + 10, false };
	encode_hello(&w, 16380, "", NULL, true);
	CHECK("HELLO into a short buffer is refused", w.full && w.p <= buf + 10);

	w = (struct writer){ buf, buf + sizeof buf, false };
	start = w.p;
	encode_notify(&w, 5, 1, "route", args, 3);
	CHECK("NOTIFY", expect_bytes("NOTIFY", start, (size_t)(w.p - start), notify, sizeof notify));

	CHECK("AGENT-HELLO accepted",
	      parse_agent_hello(agent_hello + 4, sizeof agent_hello - 4, 16380, &h) == NULL &&
		      h.max_frame == 16380 && h.pipelining);
	CHECK("AGENT-HELLO over the offered max-frame-size refused",
	      parse_agent_hello(agent_hello + 4, sizeof agent_hello - 4, 4096, &h) != NULL);
	for (size_t cut = 5; cut < sizeof agent_hello - 4; cut++) {
		char what[64];

		snprintf(what, sizeof what, "AGENT-HELLO cut at %zu refused", cut);
		CHECK(what, parse_agent_hello(agent_hello + 4, cut, 16380, &h) != NULL);
	}

	CHECK("ACK parsed", parse_ack(ack + 4, sizeof ack - 4, &a, &d, &is_bye) == NULL && !is_bye &&
				    a.sid == 5 && a.fid == 1 && a.backend != NULL &&
				    bytes_are(a.backend, a.backend_len, "be_app") && !a.phase);
	CHECK("empty ACK parsed", parse_ack(empty_ack + 4, sizeof empty_ack - 4, &a, &d, &is_bye) == NULL &&
					  a.sid == 5 && a.fid == 1 && a.backend == NULL);
	CHECK("ACK cut mid-action refused", parse_ack(ack + 4, sizeof ack - 5, &a, &d, &is_bye) != NULL);
	CHECK("AGENT-DISCONNECT parsed", parse_ack(bye + 4, sizeof bye - 4, &a, &d, &is_bye) == NULL &&
						 is_bye && d.status == 0 && strcmp(d.message, "normal") == 0);

	w = (struct writer){ buf, buf + sizeof buf, false };
	encode_disconnect(&w, 0, "normal");
	CHECK("HAPROXY-DISCONNECT has the AGENT-DISCONNECT layout but type 2",
	      (size_t)(w.p - buf) == sizeof bye && buf[4] == FT_HAPROXY_DISCONNECT &&
		      memcmp(buf + 5, bye + 5, sizeof bye - 5) == 0 && memcmp(buf, bye, 4) == 0);

#undef CHECK
	printf("self-test: codec %u/%u passed\n", ok, total);
	return total - ok;
}
