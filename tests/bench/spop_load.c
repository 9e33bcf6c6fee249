/* spop-load: a SPOP load generator for scripts/bench.
 *
 * It plays HAProxy's part: M connections, each sends a HAPROXY-HELLO offering
 * pipelining, then keeps K NOTIFY frames in flight (message `cutover` with the
 * args of design.md), checks that every ACK echoes the ids of a NOTIFY it
 * sent, and reports decisions per second, time per frame (NOTIFY written to
 * ACK read) and errors. Every run is bounded by --duration and --requests.
 *
 * It is written from ../shared/docs/spop.md alone and shares no code with the
 * agent, so an encoding bug on one side cannot hide behind the same bug on the
 * other. `spop-load --self-test` checks its codec against spop.md's examples.
 *
 * Output: one line of key=value pairs on stdout (see print_report). Exit 0 when
 * at least one decision was made and nothing went wrong, 1 on any error, 2 on
 * bad usage. */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- protocol constants (spop.md 1.2, 2.2, 3.5) ---- */

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

/* ---- varint (spop.md 2.1: HAProxy's encoding, not LEB128) ---- */

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
 * first, -1 when the value does not fit 64 bits. */
static int varint_decode(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
	const uint8_t *q = p;
	uint64_t v, b, add;
	unsigned shift = 4;

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

struct writer {
	uint8_t *p;
	uint8_t *end;
	bool full; /* set once anything did not fit; the output is then void */
};

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

/* Untyped string (spop.md 2.3): keys, message, argument and variable names. */
static void put_name(struct writer *w, const char *s)
{
	size_t n = strlen(s);

	put_varint(w, n);
	put_bytes(w, s, n);
}

struct value {
	enum data_type type;
	uint64_t num;      /* BOOL, integer types */
	const void *bytes; /* IPV4 (4), IPV6 (16), STRING and BINARY */
	size_t len;        /* STRING and BINARY */
};

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

static struct value str_value(const char *s)
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

/* HAPROXY-HELLO as HAProxy sends it (spop.md 3.1). engine_id may be NULL. */
static void encode_hello(struct writer *w, uint32_t max_frame, const char *caps,
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

static void encode_disconnect(struct writer *w, uint32_t status, const char *message)
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

struct arg {
	const char *name;
	struct value value;
};

/* NOTIFY carrying one message (spop.md 3.3). */
static void encode_notify(struct writer *w, uint64_t sid, uint64_t fid, const char *message,
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

static bool bytes_are(const uint8_t *s, size_t len, const char *lit)
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

struct disconnect {
	uint64_t status;
	char message[256];
};

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

struct agent_hello {
	uint64_t max_frame;
	bool pipelining;
	struct disconnect bye; /* when the agent answered with AGENT-DISCONNECT */
	bool refused;
};

/* Checks an AGENT-HELLO against spop.md 3.2 (as strictly as HAProxy 3.1+'s
 * health check). Returns NULL when valid, else the reason. */
static const char *parse_agent_hello(const uint8_t *frame, size_t len, uint32_t offered,
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

/* What one ACK said, as far as the report cares. */
struct ack {
	uint64_t sid, fid;
	bool phase;            /* txn phase and proc phase: both always sent */
	bool proc_phase;
	const uint8_t *backend; /* txn backend, or NULL */
	size_t backend_len;
	uint64_t status;       /* txn status, 0 when absent */
};

/* Parses an ACK (or reports an AGENT-DISCONNECT through *bye). Returns NULL
 * when well formed, else the reason. */
static const char *parse_ack(const uint8_t *frame, size_t len, struct ack *a,
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
		if (scope == SCOPE_PROC && bytes_are(name, nlen, "phase") && v.type == DT_INT64) {
			a->proc_phase = true;
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

/* ---- latency histogram: log-linear, about 1.6 % resolution, in ns ---- */

#define SUB_BITS 6
#define SUB_COUNT (1u << SUB_BITS)
#define HIST_BUCKETS ((64 - SUB_BITS + 1) * SUB_COUNT)

static unsigned hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < SUB_COUNT)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	shift = msb - SUB_BITS;
	return (shift + 1) * SUB_COUNT + (unsigned)(v >> shift) - SUB_COUNT;
}

/* Middle of a bucket: the value reported for every sample in it. */
static double hist_value(unsigned idx)
{
	unsigned shift;
	uint64_t low;

	if (idx < SUB_COUNT)
		return idx;
	shift = idx / SUB_COUNT - 1;
	low = (uint64_t)(SUB_COUNT + idx % SUB_COUNT) << shift;
	return (double)low + (double)((uint64_t)1 << shift) / 2.0;
}

/* ---- the requests a run sends ---- */

struct request {
	char *method;
	char *path;
	char *host;   /* NULL: sent as NULL, like an absent Host header */
	char *client; /* NULL: no X-Api-Client header */
	size_t room;  /* upper bound of its NOTIFY frame */
};

/* The sample plan's traffic (design.md): both sides, both names, other
 * query/command paths, and paths outside both. */
static const char *const builtin_mix[][4] = {
	{ "GET", "/query/api/squids/42", "api.example.test", "mobile-app" },
	{ "GET", "/query/api/squids", "api.example.test", NULL },
	{ "POST", "/command/api/squids", "api.example.test", "mobile-app" },
	{ "PUT", "/command/api/squids/42", "api.example.test", NULL },
	{ "DELETE", "/command/api/squids/7", "api.example.test", NULL },
	{ "GET", "/query/api/seafoods/42", "api.example.test", "web" },
	{ "POST", "/command/api/seafoods", "api.example.test", NULL },
	{ "HEAD", "/query/api/orders/9", NULL, NULL },
	{ "PATCH", "/command/api/orders/9", "api.example.test", "web" },
	{ "GET", "/healthz", "api.example.test", NULL },
};

struct mix {
	struct request *req;
	unsigned count;
};

static char *dup_or_null(const char *s)
{
	char *d;

	if (s == NULL || strcmp(s, "-") == 0)
		return NULL;
	d = strdup(s);
	if (d == NULL) {
		perror("strdup");
		exit(1);
	}
	return d;
}

static void mix_add(struct mix *m, const char *method, const char *path, const char *host,
		    const char *client)
{
	struct request *r = realloc(m->req, (m->count + 1) * sizeof *r);

	if (r == NULL) {
		perror("realloc");
		exit(1);
	}
	m->req = r;
	r[m->count] = (struct request){ dup_or_null(method), dup_or_null(path),
					dup_or_null(host), dup_or_null(client), 256 };
	r = &m->req[m->count];
	r->room += strlen(r->method) + strlen(r->path) + (r->host ? strlen(r->host) : 0) +
		   (r->client ? strlen(r->client) : 0);
	m->count++;
}

/* A paths file holds one request a line: METHOD PATH [HOST [CLIENT]], with
 * "-" for an absent value; blank lines and lines starting with # are skipped. */
static bool mix_load(struct mix *m, const char *file)
{
	FILE *f = fopen(file, "r");
	char line[4096];
	unsigned lineno = 0;

	if (f == NULL) {
		fprintf(stderr, "spop-load: %s: %s\n", file, strerror(errno));
		return false;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		char *field[5] = { 0 }, *save = NULL, *tok;
		unsigned n = 0;

		lineno++;
		for (tok = strtok_r(line, " \t\r\n", &save); tok != NULL && n < 5;
		     tok = strtok_r(NULL, " \t\r\n", &save))
			field[n++] = tok;
		if (n == 0 || field[0][0] == '#')
			continue;
		if (n < 2 || n > 4 || strcmp(field[0], "-") == 0 || field[1][0] != '/') {
			fprintf(stderr, "spop-load: %s:%u: expected METHOD /PATH [HOST [CLIENT]]\n",
				file, lineno);
			fclose(f);
			return false;
		}
		mix_add(m, field[0], field[1], field[2], field[3]);
	}
	fclose(f);
	if (m->count == 0) {
		fprintf(stderr, "spop-load: %s: no requests\n", file);
		return false;
	}
	return true;
}

/* ---- options ---- */

struct options {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	unsigned connections;
	unsigned inflight;
	double duration;
	uint64_t requests;
	unsigned threads;
	pid_t agent_pid;
	struct mix mix;
};

#define MAX_DURATION 600.0
#define CONNECT_TIMEOUT 10.0
#define DRAIN_TIMEOUT 2.0

/* ---- per-thread state ---- */

struct slot {
	uint64_t sid;
	uint64_t fid;
	uint64_t sent_ns;
	bool busy;
};

enum conn_state { CS_CONNECTING, CS_HELLO, CS_READY, CS_CLOSING, CS_CLOSED };

struct worker;

struct conn {
	struct worker *w;
	ev_io io;
	int events;
	int fd;
	enum conn_state state;
	uint32_t max_frame;
	uint8_t *in;
	size_t in_len, in_cap;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	struct slot *slots;
	unsigned busy;
};

struct tally {
	char name[40];
	uint64_t count;
};

#define TALLY_MAX 24

struct stats {
	uint64_t decisions;
	uint64_t err_connect;    /* connect or HELLO failed */
	uint64_t err_protocol;   /* a frame we could not accept */
	uint64_t err_disconnect; /* agent sent AGENT-DISCONNECT mid-run */
	uint64_t err_eof;        /* agent closed mid-run */
	uint64_t err_lost;       /* NOTIFYs never answered */
	uint64_t err_contract;   /* ACK without txn/proc phase (design.md) */
	uint64_t hist[HIST_BUCKETS];
	struct tally answers[TALLY_MAX]; /* "backend:x", "status:404" or "none" */
	unsigned nanswers;
};

enum phase { PH_CONNECT, PH_LOAD, PH_DRAIN, PH_DISCONNECT };

struct worker {
	unsigned index;
	const struct options *opt;
	struct ev_loop *loop;
	ev_timer timer;
	struct conn *conns;
	unsigned nconns;
	unsigned settled; /* connections READY or failed (connect phase) */
	unsigned open;    /* connections not CLOSED */
	enum phase phase;
	uint64_t budget, sent, inflight;
	uint64_t next_sid;
	unsigned mix_pos;
	uint64_t now_ns;
	uint64_t load_start_ns, load_end_ns;
	struct stats st;
	pthread_t thread;
};

static pthread_barrier_t barrier;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL) {
		perror("malloc");
		exit(1);
	}
	return p;
}

static void tally(struct stats *st, const char *name, size_t len, uint64_t count)
{
	unsigned i;

	if (len >= sizeof st->answers[0].name)
		len = sizeof st->answers[0].name - 1;
	for (i = 0; i < st->nanswers; i++)
		if (strlen(st->answers[i].name) == len && memcmp(st->answers[i].name, name, len) == 0)
			break;
	if (i == st->nanswers) {
		if (i == TALLY_MAX)
			return;
		memcpy(st->answers[i].name, name, len);
		st->answers[i].name[len] = '\0';
		st->nanswers++;
	}
	st->answers[i].count += count;
}

/* ---- connection I/O ---- */

static void conn_set_events(struct conn *c, int events)
{
	if (c->events == events)
		return;
	ev_io_stop(c->w->loop, &c->io);
	ev_io_set(&c->io, c->fd, events);
	ev_io_start(c->w->loop, &c->io);
	c->events = events;
}

static void conn_close(struct conn *c)
{
	struct worker *w = c->w;

	if (c->state == CS_CLOSED)
		return;
	if (w->phase == PH_CONNECT && c->state != CS_READY)
		w->settled++;
	if (c->busy > 0) {
		w->st.err_lost += c->busy;
		w->inflight -= c->busy;
		c->busy = 0;
	}
	ev_io_stop(w->loop, &c->io);
	close(c->fd);
	c->fd = -1;
	c->state = CS_CLOSED;
	w->open--;
}

/* Room for n more bytes at the end of the output buffer. */
static struct writer conn_writer(struct conn *c, size_t n)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_cap - c->out_len < n) {
		size_t cap = c->out_cap * 2 + n;
		uint8_t *p = realloc(c->out, cap);

		if (p == NULL) {
			perror("realloc");
			exit(1);
		}
		c->out = p;
		c->out_cap = cap;
	}
	return (struct writer){ c->out + c->out_len, c->out + c->out_cap, false };
}

/* Writes what is queued; waits for EV_WRITE when the socket is full. */
static void conn_flush(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			conn_set_events(c, EV_READ | EV_WRITE);
			return;
		}
		if (n <= 0) {
			if (c->state != CS_CLOSING)
				c->w->st.err_eof++;
			conn_close(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	conn_set_events(c, EV_READ);
}

static void write_id(char *buf, uint64_t sid, unsigned thread)
{
	/* Shaped like HAProxy's unique-id "%{+X}o %ci:%cp_%fi:%fp_%Ts_%rt:%pid". */
	static const char hex[] = "0123456789ABCDEF";
	static const char tmpl[] = "7F000001:0000_7F000001:1F90_6942A1B0_00000000:0000";

	memcpy(buf, tmpl, sizeof tmpl);
	for (int i = 0; i < 8; i++)
		buf[44 - i] = hex[(sid >> (4 * i)) & 0xF];
	for (int i = 0; i < 4; i++)
		buf[12 - i] = hex[(thread >> (4 * i)) & 0xF];
}

/* Queues one NOTIFY in a free slot. */
static void send_notify(struct conn *c, struct slot *s)
{
	struct worker *w = c->w;
	const struct request *rq = &w->opt->mix.req[w->mix_pos];
	char id[64];
	uint8_t src[4] = { 192, 0, 2, 0 };
	struct arg args[6];
	struct writer wr = conn_writer(c, rq->room);
	uint8_t *start = wr.p;

	if (++w->mix_pos == w->opt->mix.count)
		w->mix_pos = 0;
	s->sid = w->next_sid++;
	s->fid = 1 + s->sid % 3; /* 2.6 counts frames per stream; any value must echo */
	src[3] = (uint8_t)(1 + s->sid % 250);
	write_id(id, s->sid, w->index);
	args[0] = (struct arg){ "method", str_value(rq->method) };
	args[1] = (struct arg){ "path", str_value(rq->path) };
	args[2] = (struct arg){ "host", str_value(rq->host) };
	args[3] = (struct arg){ "src", { .type = DT_IPV4, .bytes = src } };
	args[4] = (struct arg){ "client", str_value(rq->client) };
	args[5] = (struct arg){ "id", str_value(id) };
	encode_notify(&wr, s->sid, s->fid, "cutover", args, 6);
	if (wr.full || (size_t)(wr.p - start) - 4 > c->max_frame) {
		fprintf(stderr, "spop-load: request %s %s does not fit a frame\n", rq->method, rq->path);
		exit(1);
	}
	c->out_len += (size_t)(wr.p - start);
	s->sent_ns = w->now_ns;
	s->busy = true;
	c->busy++;
	w->inflight++;
	w->sent++;
}

static bool may_send(const struct worker *w)
{
	return w->phase == PH_LOAD && w->sent < w->budget;
}

/* Fills every free slot of a ready connection. */
static void conn_fill(struct conn *c)
{
	for (unsigned i = 0; i < c->w->opt->inflight && may_send(c->w); i++)
		if (!c->slots[i].busy)
			send_notify(c, &c->slots[i]);
}

/* Stops sending; what is in flight has DRAIN_TIMEOUT to be answered. */
static void start_drain(struct worker *w)
{
	w->phase = PH_DRAIN;
	ev_timer_stop(w->loop, &w->timer);
	ev_timer_set(&w->timer, DRAIN_TIMEOUT, 0);
	ev_timer_start(w->loop, &w->timer);
}

/* Is the current phase over? (Sending stops once the budget is spent.) */
static bool worker_done(struct worker *w)
{
	if (w->phase == PH_LOAD && w->sent >= w->budget)
		start_drain(w);
	switch (w->phase) {
	case PH_CONNECT:
		return w->settled == w->nconns;
	case PH_LOAD:
	case PH_DRAIN:
		return w->inflight == 0 || w->open == 0;
	case PH_DISCONNECT:
		return w->open == 0;
	}
	return true;
}

static void worker_check_done(struct worker *w)
{
	if (worker_done(w))
		ev_break(w->loop, EVBREAK_ONE);
}

static void protocol_error(struct conn *c, const char *why)
{
	fprintf(stderr, "spop-load: thread %u conn %d: %s\n", c->w->index, c->fd, why);
	if (c->state == CS_HELLO)
		c->w->st.err_connect++;
	else
		c->w->st.err_protocol++;
	conn_close(c);
}

static void on_hello(struct conn *c, const uint8_t *frame, size_t len)
{
	struct agent_hello h;
	const char *why = parse_agent_hello(frame, len, OUR_MAX_FRAME, &h);

	if (why == NULL && c->w->opt->inflight > 1 && !h.pipelining)
		why = "agent did not grant pipelining (use --inflight 1)";
	if (why != NULL) {
		if (h.refused)
			fprintf(stderr, "spop-load: AGENT-DISCONNECT status %llu \"%s\"\n",
				(unsigned long long)h.bye.status, h.bye.message);
		protocol_error(c, why);
		return;
	}
	c->max_frame = (uint32_t)h.max_frame;
	c->state = CS_READY;
	c->w->settled++;
}

static void on_ack(struct conn *c, const uint8_t *frame, size_t len)
{
	struct worker *w = c->w;
	struct ack a;
	struct disconnect bye;
	bool is_bye;
	const char *why = parse_ack(frame, len, &a, &bye, &is_bye);
	unsigned i;
	char label[48];

	if (why != NULL) {
		protocol_error(c, why);
		return;
	}
	if (is_bye) {
		if (c->state != CS_CLOSING) {
			fprintf(stderr, "spop-load: AGENT-DISCONNECT mid-run: status %llu \"%s\"\n",
				(unsigned long long)bye.status, bye.message);
			w->st.err_disconnect++;
		}
		conn_close(c);
		return;
	}
	if (c->state == CS_CLOSING)
		return; /* nothing is in flight once we said goodbye */
	for (i = 0; i < w->opt->inflight; i++)
		if (c->slots[i].busy && c->slots[i].sid == a.sid && c->slots[i].fid == a.fid)
			break;
	if (i == w->opt->inflight) {
		protocol_error(c, "ACK ids match no NOTIFY in flight on this connection");
		return;
	}
	c->slots[i].busy = false;
	c->busy--;
	w->inflight--;
	w->st.decisions++;
	w->st.hist[hist_index(w->now_ns - c->slots[i].sent_ns)]++;
	w->load_end_ns = w->now_ns;
	if (!a.phase || !a.proc_phase)
		w->st.err_contract++;
	if (a.status != 0) {
		snprintf(label, sizeof label, "status:%llu", (unsigned long long)a.status);
		tally(&w->st, label, strlen(label), 1);
	} else if (a.backend != NULL) {
		snprintf(label, sizeof label, "backend:%.*s", (int)(a.backend_len < 32 ? a.backend_len : 32),
			 (const char *)a.backend);
		tally(&w->st, label, strlen(label), 1);
	} else {
		tally(&w->st, "none", 4, 1);
	}
	if (may_send(w))
		send_notify(c, &c->slots[i]);
}

/* Takes every complete frame out of the input buffer. */
static void conn_frames(struct conn *c)
{
	size_t off = 0;

	while (c->state != CS_CLOSED && c->in_len - off >= 4) {
		uint32_t len;

		memcpy(&len, c->in + off, 4);
		len = ntohl(len);
		if (len == 0 || len > c->max_frame) {
			protocol_error(c, len == 0 ? "zero-length frame" : "frame over max-frame-size");
			return;
		}
		if (c->in_len - off - 4 < len)
			break;
		if (c->state == CS_HELLO)
			on_hello(c, c->in + off + 4, len);
		else
			on_ack(c, c->in + off + 4, len);
		off += 4 + (size_t)len;
	}
	if (c->state == CS_CLOSED)
		return;
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
}

static void conn_connected(struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof err;
	char engine[40];
	struct writer wr;
	uint8_t *start;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
		fprintf(stderr, "spop-load: connect: %s\n", strerror(err ? err : errno));
		c->w->st.err_connect++;
		conn_close(c);
		return;
	}
	snprintf(engine, sizeof engine, "spop-load-%u-%d", c->w->index, c->fd);
	wr = conn_writer(c, 512);
	start = wr.p;
	encode_hello(&wr, OUR_MAX_FRAME, "pipelining", engine, false);
	c->out_len += (size_t)(wr.p - start);
	c->state = CS_HELLO;
	conn_flush(c);
}

static void conn_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct conn *c = io->data;
	struct worker *w = c->w;

	(void)loop;
	w->now_ns = mono_ns();
	if (c->state == CS_CONNECTING) {
		conn_connected(c);
		worker_check_done(w);
		return;
	}
	if (revents & EV_READ) {
		ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			if (c->state == CS_HELLO) {
				fprintf(stderr, "spop-load: agent closed during HELLO\n");
				w->st.err_connect++;
			} else if (c->state != CS_CLOSING) {
				w->st.err_eof++;
			}
			conn_close(c);
		} else if (n > 0) {
			c->in_len += (size_t)n;
			conn_frames(c);
		}
	}
	if (c->state != CS_CLOSED)
		conn_flush(c);
	worker_check_done(w);
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;

	(void)revents;
	switch (w->phase) {
	case PH_LOAD:
		start_drain(w);
		worker_check_done(w);
		return;
	case PH_CONNECT:
		for (unsigned i = 0; i < w->nconns; i++)
			if (w->conns[i].state == CS_CONNECTING || w->conns[i].state == CS_HELLO) {
				fprintf(stderr, "spop-load: connect/HELLO timed out\n");
				w->st.err_connect++;
				conn_close(&w->conns[i]);
			}
		break;
	case PH_DRAIN:
	case PH_DISCONNECT:
		for (unsigned i = 0; i < w->nconns; i++)
			conn_close(&w->conns[i]); /* unanswered NOTIFYs count as lost */
		break;
	}
	ev_break(loop, EVBREAK_ONE);
}

static void run_phase(struct worker *w, enum phase phase, double timeout)
{
	w->phase = phase;
	ev_timer_set(&w->timer, timeout, 0);
	ev_timer_start(w->loop, &w->timer);
	if (!worker_done(w)) /* ev_run forgets an ev_break made before it */
		ev_run(w->loop, 0);
	ev_timer_stop(w->loop, &w->timer);
}

static bool conn_open(struct conn *c)
{
	const struct options *o = c->w->opt;
	int one = 1;

	c->fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		perror("spop-load: socket");
		return false;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (const struct sockaddr *)&o->addr, o->addr_len) < 0 && errno != EINPROGRESS) {
		perror("spop-load: connect");
		close(c->fd);
		return false;
	}
	c->state = CS_CONNECTING;
	c->max_frame = OUR_MAX_FRAME;
	c->in_cap = OUR_MAX_FRAME + 4 + 4096;
	c->in = xmalloc(c->in_cap);
	c->out_cap = (size_t)o->inflight * 256 + 1024;
	c->out = xmalloc(c->out_cap);
	c->slots = calloc(o->inflight, sizeof *c->slots);
	if (c->slots == NULL) {
		perror("calloc");
		exit(1);
	}
	ev_io_init(&c->io, conn_cb, c->fd, EV_WRITE);
	c->io.data = c;
	c->events = EV_WRITE;
	ev_io_start(c->w->loop, &c->io);
	c->w->open++;
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct options *o = w->opt;

	w->loop = ev_loop_new(EVFLAG_AUTO);
	if (w->loop == NULL) {
		fprintf(stderr, "spop-load: ev_loop_new failed\n");
		exit(1);
	}
	ev_timer_init(&w->timer, timer_cb, 0, 0);
	w->timer.data = w;
	for (unsigned i = 0; i < w->nconns; i++) {
		w->conns[i].w = w;
		w->conns[i].state = CS_CLOSED;
		if (!conn_open(&w->conns[i])) {
			w->st.err_connect++;
			w->settled++;
		}
	}
	run_phase(w, PH_CONNECT, CONNECT_TIMEOUT);

	pthread_barrier_wait(&barrier); /* every thread connected: load starts */
	w->now_ns = w->load_start_ns = w->load_end_ns = mono_ns();
	w->phase = PH_LOAD;
	for (unsigned i = 0; i < w->nconns; i++)
		if (w->conns[i].state == CS_READY) {
			conn_fill(&w->conns[i]);
			conn_flush(&w->conns[i]);
		}
	run_phase(w, PH_LOAD, o->duration);

	pthread_barrier_wait(&barrier); /* load over: main samples the agent */
	pthread_barrier_wait(&barrier); /* ... with every connection still open */
	w->now_ns = mono_ns();
	for (unsigned i = 0; i < w->nconns; i++) {
		struct conn *c = &w->conns[i];
		struct writer wr;
		uint8_t *start;

		if (c->state != CS_READY)
			continue;
		wr = conn_writer(c, 256);
		start = wr.p;
		encode_disconnect(&wr, 0, "normal");
		c->out_len += (size_t)(wr.p - start);
		c->state = CS_CLOSING;
		conn_flush(c);
	}
	run_phase(w, PH_DISCONNECT, DRAIN_TIMEOUT);
	for (unsigned i = 0; i < w->nconns; i++) {
		free(w->conns[i].in);
		free(w->conns[i].out);
		free(w->conns[i].slots);
	}
	ev_loop_destroy(w->loop);
	return NULL;
}

/* ---- the agent's CPU and memory, from /proc ---- */

/* utime + stime of every thread of pid, in seconds; negative when unreadable. */
static double proc_cpu_seconds(pid_t pid)
{
	char path[64], buf[2048], *p;
	unsigned long long utime, stime;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
				&utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* A "VmRSS:"-style line of /proc/pid/status, in KiB; -1 when absent. */
static long proc_status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	long kib = -1;
	size_t kl = strlen(key);
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, key, kl) == 0) {
			kib = strtol(line + kl, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

static double self_cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* ---- report ---- */

static double percentile_us(const uint64_t *hist, uint64_t total, double q)
{
	uint64_t want = (uint64_t)(q * (double)total), seen = 0;

	if (total == 0)
		return 0;
	if (want >= total)
		want = total - 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += hist[i];
		if (seen > want)
			return hist_value(i) / 1000.0;
	}
	return 0;
}

static void merge(struct stats *to, const struct stats *from)
{
	to->decisions += from->decisions;
	to->err_connect += from->err_connect;
	to->err_protocol += from->err_protocol;
	to->err_disconnect += from->err_disconnect;
	to->err_eof += from->err_eof;
	to->err_lost += from->err_lost;
	to->err_contract += from->err_contract;
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		to->hist[i] += from->hist[i];
	for (unsigned i = 0; i < from->nanswers; i++)
		tally(to, from->answers[i].name, strlen(from->answers[i].name), from->answers[i].count);
}

/* ---- self-test: the codec against spop.md's tables and examples ---- */

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

static int self_test(void)
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
	/* spop.md 3.1: the health-check HELLO, 82 bytes. */
	static const uint8_t hello_check[] = {
		0x00, 0x00, 0x00, 0x4e, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x12, 0x73, 0x75,
		0x70, 0x70, 0x6f, 0x72, 0x74, 0x65, 0x64, 0x2d, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f,
		0x6e, 0x73, 0x08, 0x03, 0x32, 0x2e, 0x30, 0x0e, 0x6d, 0x61, 0x78, 0x2d, 0x66, 0x72,
		0x61, 0x6d, 0x65, 0x2d, 0x73, 0x69, 0x7a, 0x65, 0x03, 0xfc, 0xf0, 0x06, 0x0c, 0x63,
		0x61, 0x70, 0x61, 0x62, 0x69, 0x6c, 0x69, 0x74, 0x69, 0x65, 0x73, 0x08, 0x00, 0x0b,
		0x68, 0x65, 0x61, 0x6c, 0x74, 0x68, 0x63, 0x68, 0x65, 0x63, 0x6b, 0x11,
	};
	/* spop.md 3.2: AGENT-HELLO, 68 bytes. */
	static const uint8_t agent_hello[] = {
		0x00, 0x00, 0x00, 0x40, 0x65, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x07, 0x76, 0x65,
		0x72, 0x73, 0x69, 0x6f, 0x6e, 0x08, 0x03, 0x32, 0x2e, 0x30, 0x0e, 0x6d, 0x61, 0x78,
		0x2d, 0x66, 0x72, 0x61, 0x6d, 0x65, 0x2d, 0x73, 0x69, 0x7a, 0x65, 0x03, 0xfc, 0xf0,
		0x06, 0x0c, 0x63, 0x61, 0x70, 0x61, 0x62, 0x69, 0x6c, 0x69, 0x74, 0x69, 0x65, 0x73,
		0x08, 0x0a, 0x70, 0x69, 0x70, 0x65, 0x6c, 0x69, 0x6e, 0x69, 0x6e, 0x67,
	};
	/* spop.md 3.3: NOTIFY of message "route", sid 5, fid 1. */
	static const uint8_t notify[] = {
		0x00, 0x00, 0x00, 0x2e, 0x03, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x05, 0x72, 0x6f,
		0x75, 0x74, 0x65, 0x03, 0x06, 0x6d, 0x65, 0x74, 0x68, 0x6f, 0x64, 0x08, 0x03, 0x47,
		0x45, 0x54, 0x04, 0x70, 0x61, 0x74, 0x68, 0x08, 0x04, 0x2f, 0x66, 0x6f, 0x6f, 0x03,
		0x73, 0x72, 0x63, 0x06, 0xc0, 0x00, 0x02, 0x0a,
	};
	/* spop.md 3.4: ACK setting backend "be_app" and path "/bar". */
	static const uint8_t ack[] = {
		0x00, 0x00, 0x00, 0x28, 0x67, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x01, 0x03, 0x02,
		0x07, 0x62, 0x61, 0x63, 0x6b, 0x65, 0x6e, 0x64, 0x08, 0x06, 0x62, 0x65, 0x5f, 0x61,
		0x70, 0x70, 0x01, 0x03, 0x02, 0x04, 0x70, 0x61, 0x74, 0x68, 0x08, 0x04, 0x2f, 0x62,
		0x61, 0x72,
	};
	static const uint8_t empty_ack[] = { 0x00, 0x00, 0x00, 0x07, 0x67, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01 };
	/* spop.md 3.5: AGENT-DISCONNECT {0, "normal"}. */
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

	for (uint64_t x = 1; x < ((uint64_t)1 << 40); x = x * 3 + 1)
		if (hist_value(hist_index(x)) < (double)x * 0.98 || hist_value(hist_index(x)) > (double)x * 1.02) {
			CHECK("histogram resolution", false);
			break;
		}
#undef CHECK
	printf("self-test: %u/%u passed\n", ok, total);
	return ok == total ? 0 : 1;
}

/* ---- main ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: spop-load [--connect ADDR:PORT] [--connections M] [--inflight K]\n"
		"                 [--duration SECONDS] [--requests N] [--threads T]\n"
		"                 [--paths FILE] [--pid AGENT_PID]\n"
		"       spop-load --self-test | --help\n"
		"  --connect      agent address on loopback (127.0.0.1:12345; [::1]:PORT for IPv6)\n"
		"  --connections  SPOP connections, shared out over the threads (10)\n"
		"  --inflight     NOTIFYs kept in flight per connection (20, like HAProxy)\n"
		"  --duration     seconds of load, at most 600 (5)\n"
		"  --requests     NOTIFYs to send in all (10000000)\n"
		"  --threads      load threads, each with its own libev loop (1)\n"
		"  --paths        requests to cycle through: METHOD /PATH [HOST [CLIENT]] per line,\n"
		"                 '-' for an absent value (default: the sample plan's paths)\n"
		"  --pid          the agent: report its CPU per decision and its memory\n"
		"Prints one line of key=value pairs; exits 0 when every NOTIFY was ACKed.\n");
}

static bool parse_addr(const char *s, struct options *o)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	long port;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&o->addr;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&o->addr;
	size_t hl;

	if (colon == NULL || (hl = (size_t)(colon - s)) >= sizeof host)
		return false;
	port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535)
		return false;
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		memcpy(host, s + 1, hl - 2);
		host[hl - 2] = '\0';
	} else {
		memcpy(host, s, hl);
		host[hl] = '\0';
	}
	memset(&o->addr, 0, sizeof o->addr);
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		if ((ntohl(in4->sin_addr.s_addr) >> 24) != 127)
			return false; /* loopback only */
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		o->addr_len = sizeof *in4;
		return true;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 && IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		o->addr_len = sizeof *in6;
		return true;
	}
	return false;
}

static bool parse_count(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 || v > max)
		return false;
	*out = v;
	return true;
}

static void raise_fd_limit(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need) {
		rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "connections", required_argument, NULL, 'm' },
		{ "inflight", required_argument, NULL, 'k' },
		{ "duration", required_argument, NULL, 'd' },
		{ "requests", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "paths", required_argument, NULL, 'p' },
		{ "pid", required_argument, NULL, 'P' },
		{ "self-test", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct options o = { .connections = 10, .inflight = 20, .duration = 5.0,
			     .requests = 10000000, .threads = 1 };
	unsigned long long n;
	const char *paths = NULL;
	struct worker *workers;
	struct stats total = { 0 };
	double cpu0 = -1, cpu1 = -1, self0, self1, rate = 0;
	uint64_t t0, t1, errors;
	long rss = -1, hwm = -1;
	int opt;
	char *end;

	parse_addr("127.0.0.1:12345", &o);
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			if (!parse_addr(optarg, &o)) {
				fprintf(stderr, "spop-load: --connect: want a loopback ADDR:PORT\n");
				return 2;
			}
			break;
		case 'm':
			if (!parse_count(optarg, 100000, &n))
				goto bad;
			o.connections = (unsigned)n;
			break;
		case 'k':
			if (!parse_count(optarg, 4096, &n))
				goto bad;
			o.inflight = (unsigned)n;
			break;
		case 'd':
			o.duration = strtod(optarg, &end);
			if (*end != '\0' || !(o.duration > 0) || o.duration > MAX_DURATION)
				goto bad;
			break;
		case 'n':
			if (!parse_count(optarg, 1ull << 40, &n))
				goto bad;
			o.requests = n;
			break;
		case 't':
			if (!parse_count(optarg, 64, &n))
				goto bad;
			o.threads = (unsigned)n;
			break;
		case 'p':
			paths = optarg;
			break;
		case 'P':
			if (!parse_count(optarg, 1u << 30, &n))
				goto bad;
			o.agent_pid = (pid_t)n;
			break;
		case 'S':
			return self_test();
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto bad;
		}
	}
	if (optind != argc)
		goto bad;
	if (o.threads > o.connections)
		o.threads = o.connections;
	if (paths != NULL && !mix_load(&o.mix, paths))
		return 2;
	if (paths == NULL)
		for (size_t i = 0; i < sizeof builtin_mix / sizeof builtin_mix[0]; i++)
			mix_add(&o.mix, builtin_mix[i][0], builtin_mix[i][1], builtin_mix[i][2],
				builtin_mix[i][3]);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(o.connections + 64);

	workers = calloc(o.threads, sizeof *workers);
	if (workers == NULL) {
		perror("calloc");
		return 1;
	}
	pthread_barrier_init(&barrier, NULL, o.threads + 1);
	for (unsigned i = 0; i < o.threads; i++) {
		struct worker *w = &workers[i];

		w->index = i;
		w->opt = &o;
		w->nconns = o.connections / o.threads + (i < o.connections % o.threads);
		w->conns = calloc(w->nconns, sizeof *w->conns);
		w->budget = o.requests / o.threads + (i < o.requests % o.threads);
		w->next_sid = (uint64_t)i << 28; /* 0 first: 2.6 may send stream-id 0 */
		w->mix_pos = i % o.mix.count;
		if (w->conns == NULL) {
			perror("calloc");
			return 1;
		}
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			perror("pthread_create");
			return 1;
		}
	}

	pthread_barrier_wait(&barrier); /* connected */
	t0 = mono_ns();
	self0 = self_cpu_seconds();
	if (o.agent_pid > 0)
		cpu0 = proc_cpu_seconds(o.agent_pid);
	pthread_barrier_wait(&barrier); /* load over, connections still open */
	t1 = mono_ns();
	self1 = self_cpu_seconds();
	if (o.agent_pid > 0) {
		cpu1 = proc_cpu_seconds(o.agent_pid);
		rss = proc_status_kib(o.agent_pid, "VmRSS:");
		hwm = proc_status_kib(o.agent_pid, "VmHWM:");
	}
	pthread_barrier_wait(&barrier); /* workers may disconnect */
	for (unsigned i = 0; i < o.threads; i++) {
		pthread_join(workers[i].thread, NULL);
		merge(&total, &workers[i].st);
		if (workers[i].load_end_ns > workers[i].load_start_ns)
			rate += (double)workers[i].st.decisions /
				((double)(workers[i].load_end_ns - workers[i].load_start_ns) / 1e9);
	}

	errors = total.err_connect + total.err_protocol + total.err_disconnect + total.err_eof +
		 total.err_lost + total.err_contract;
	printf("connections=%u inflight=%u threads=%u seconds=%.3f decisions=%llu rate=%.0f"
	       " p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f errors=%llu"
	       " err_connect=%llu err_protocol=%llu err_disconnect=%llu err_eof=%llu"
	       " err_lost=%llu err_contract=%llu load_cpu_pct=%.0f",
	       o.connections, o.inflight, o.threads, (double)(t1 - t0) / 1e9,
	       (unsigned long long)total.decisions, rate,
	       percentile_us(total.hist, total.decisions, 0.50),
	       percentile_us(total.hist, total.decisions, 0.99),
	       percentile_us(total.hist, total.decisions, 0.999),
	       percentile_us(total.hist, total.decisions, 1.0),
	       (unsigned long long)errors, (unsigned long long)total.err_connect,
	       (unsigned long long)total.err_protocol, (unsigned long long)total.err_disconnect,
	       (unsigned long long)total.err_eof, (unsigned long long)total.err_lost,
	       (unsigned long long)total.err_contract,
	       100.0 * (self1 - self0) / ((double)(t1 - t0) / 1e9));
	if (o.agent_pid > 0)
		printf(" agent_cpu_s=%.3f agent_cpu_us_per_decision=%.3f agent_rss_kib=%ld agent_hwm_kib=%ld",
		       cpu1 - cpu0, total.decisions && cpu0 >= 0 && cpu1 >= 0
					    ? (cpu1 - cpu0) * 1e6 / (double)total.decisions : 0.0,
		       rss, hwm);
	for (unsigned i = 0; i < total.nanswers; i++)
		printf(" answer.%s=%llu", total.answers[i].name, (unsigned long long)total.answers[i].count);
	printf("\n");
	for (unsigned i = 0; i < o.threads; i++)
		free(workers[i].conns);
	free(workers);
	for (unsigned i = 0; i < o.mix.count; i++) {
		free(o.mix.req[i].method);
		free(o.mix.req[i].path);
		free(o.mix.req[i].host);
		free(o.mix.req[i].client);
	}
	free(o.mix.req);
	pthread_barrier_destroy(&barrier);
	return errors == 0 && total.decisions > 0 ? 0 : 1;
bad:
	usage(stderr);
	return 2;
}
