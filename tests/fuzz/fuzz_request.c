/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the request side of the decision path. The input
 * describes a small plan (routes with literal segments, mid-path and tail
 * captures, method splits, hosts; actions with rewrites, deprecation, 404 and
 * 410 with links) and one request (method, host, raw path bytes) sent as a
 * NOTIFY to decide_notify under a max-frame-size the input picks. Plans the
 * loader refuses (a shadowed route) are skipped. Checked on every decision:
 * the ACK decodes and fits the frame; every rewritten path and link is made
 * of URL path characters only, starts with one '/', and has no '.' or '..'
 * segment, also spelled with %2e; a route that rewrites either gets its
 * rewrite or a status (400, 414) with no backend. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_decide_wire.h"
#include "decide.h"
#include "plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)
#define MAX_ROUTES 4

struct cursor {
	const uint8_t *p, *end;
};

static unsigned take(struct cursor *c)
{
	return c->p < c->end ? *c->p++ : 0;
}

static const char *const literal[] = { "a", "b", "api", "x-1" };
static const char *const method[] = { "GET", "HEAD", "POST", "PUT", "DELETE",
				      "PATCH", "OPTIONS", "get", "", "BREW" };
static const char *const host[] = { NULL, "h.test", "H.TEST:8080", "other.test" };

struct route_shape {
	bool rewrites, links;
};

/* Appends route i's YAML to routes and its action to actions. */
static void route(struct cursor *c, int i, char *routes, size_t rcap, char *actions,
		  size_t acap, struct route_shape *shape)
{
	unsigned nlit = 1 + take(c) % 3, lits = take(c), kind = take(c) % 6, flags = take(c);
	unsigned act = take(c) % 6;
	char path[256] = "", tpl[128] = "/n";
	size_t n;

	for (unsigned k = 0; k < nlit; k++) {
		n = strlen(path);
		snprintf(path + n, sizeof(path) - n, "/%s", literal[(lits >> (2 * k)) & 3]);
	}
	n = strlen(path);
	switch (kind) {
	case 1: snprintf(path + n, sizeof(path) - n, "/{id}"); strcat(tpl, "/{id}"); break;
	case 2: snprintf(path + n, sizeof(path) - n, "/{id}/z"); strcat(tpl, "/{id}/z"); break;
	case 3: snprintf(path + n, sizeof(path) - n, "{rest...}"); strcat(tpl, "{rest}"); break;
	case 4: snprintf(path + n, sizeof(path) - n, "/{rest...}"); strcat(tpl, "/{rest}"); break;
	case 5:
		snprintf(path + n, sizeof(path) - n, "/{id}/{rest...}");
		strcat(tpl, (flags & 0x80) ? "/{rest}/{id}" : "/{id}{rest}");
		break;
	default: break;
	}
	n = strlen(routes);
	/* every route may be deprecated: each has the block a deprecated action needs */
	snprintf(routes + n, rcap - n, "  - name: r%d\n    path: %s\n%s%s"
		 "    deprecation: { date: 2026-12-01, sunset: 2099-12-31 }\n", i, path,
		 (flags & 3) == 1   ? "    methods: [reads]\n"
		 : (flags & 3) == 2 ? "    methods: [writes]\n"
				    : "",
		 (flags & 4) ? "    host: h.test\n" : "");
	n = strlen(actions);
	shape->rewrites = act == 1 || act == 2;
	shape->links = act == 3;
	switch (act) {
	case 1: snprintf(actions + n, acap - n, "      r%d: { backend: b%d, rewrite: \"%s\" }\n", i, i & 1, tpl); break;
	case 2: snprintf(actions + n, acap - n, "      r%d: { backend: b0, rewrite: \"%s\", deprecated: true }\n", i, tpl); break;
	case 3: snprintf(actions + n, acap - n, "      r%d: { status: 410, link: \"%s\" }\n", i, tpl); break;
	case 4: snprintf(actions + n, acap - n, "      r%d: { status: 404 }\n", i); break;
	default: snprintf(actions + n, acap - n, "      r%d: b1\n", i); break;
	}
}

static bool path_char(unsigned char ch)
{
	return isalnum(ch) || (ch && strchr("/-._~!$&'()*+,;=:@%", ch));
}

/* A '.' or '..' segment, the dots possibly written %2e or %2E. */
static bool dot_segment(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t dots = 0, other = 0;
		i++; /* the '/' */
		while (i < len && s[i] != '/') {
			if (s[i] == '.') {
				dots++;
				i++;
			} else if (s[i] == '%' && i + 2 < len && s[i + 1] == '2' &&
				   (s[i + 2] == 'e' || s[i + 2] == 'E')) {
				dots++;
				i += 3;
			} else {
				other++;
				i++;
			}
		}
		if (other == 0 && (dots == 1 || dots == 2))
			return true;
	}
	return false;
}

static void check_built_path(const struct spop_data *v)
{
	if (v == NULL)
		return;
	CHECK(v->type == SPOP_T_STRING);
	const uint8_t *s = v->u.bytes.ptr;
	size_t len = v->u.bytes.len;
	CHECK(len >= 2 && s[0] == '/' && s[1] != '/');
	for (size_t i = 0; i < len; i++)
		CHECK(path_char(s[i]));
	CHECK(!dot_segment(s, len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cursor c = { data, data + size };
	static char routes[4096], actions[2048], yaml[8192];
	struct route_shape shape[MAX_ROUTES];
	int nroutes = 1 + (int)(take(&c) % MAX_ROUTES);

	routes[0] = actions[0] = '\0';
	for (int i = 0; i < nroutes; i++)
		route(&c, i, routes, sizeof(routes), actions, sizeof(actions), &shape[i]);
	int len = snprintf(yaml, sizeof(yaml),
			   "phase: 1\nbackends: [b0, b1]\nroutes:\n%sphases:\n"
			   "  - number: 1\n    name: p\n    routes:\n%s", routes, actions);
	CHECK(len > 0 && (size_t)len < sizeof(yaml));
	char err[512];
	struct plan *plan = plan_load_buffer("fuzz.yaml", yaml, (size_t)len, err, sizeof(err));
	if (plan == NULL) {
		if (getenv("FUZZ_REQUEST_VERBOSE")) /* for writing seeds */
			fprintf(stderr, "%s\n%s\n", yaml, err);
		return 0;
	}
	if (getenv("FUZZ_REQUEST_VERBOSE"))
		fprintf(stderr, "%s", yaml);

	uint32_t max_frame = FRAME_MIN_MAX_SIZE + (take(&c) << 8 | take(&c)) %
						  (FRAME_AGENT_MAX_SIZE - FRAME_MIN_MAX_SIZE + 1);
	unsigned m = take(&c), h = take(&c) % 4;
	static uint8_t payload[FRAME_AGENT_MAX_SIZE + 256];
	struct wire_notify w = { payload, payload + sizeof(payload), false };
	size_t path_len = (size_t)(c.end - c.p);
	wire_message(&w, "cutover", 1 + (m < 10) + (host[h] != NULL));
	if (m < 10)
		wire_arg_string(&w, "method", method[m], strlen(method[m]));
	wire_arg_string(&w, "path", (const char *)c.p, path_len);
	if (host[h])
		wire_arg_string(&w, "host", host[h], strlen(host[h]));
	CHECK(!w.failed);
	struct frame f = { .type = FRAME_NOTIFY, .flags = FRAME_FLAG_FIN, .stream_id = 1,
			   .frame_id = 1, .payload = payload,
			   .payload_len = (size_t)(w.p - payload) };
	static struct decider decider;
	decider_init(&decider, plan);
	size_t room = FRAME_LEN_SIZE + max_frame;
	uint8_t *out = malloc(room);
	struct answer a;
	unsigned status;
	CHECK(out != NULL);
	ssize_t n = decide_notify(&decider, &f, max_frame, out, room, &a, &status);
	CHECK(n > 0 && a.asked);
	struct wire_ack ack;
	CHECK(wire_read_ack(out, (size_t)n, max_frame, &ack));
	if (getenv("FUZZ_REQUEST_VERBOSE"))
		fprintf(stderr, "-> route %d status %u backend %d\n", a.d.route_index, a.d.status,
			a.d.backend_index);
	const struct spop_data *path = wire_var(&ack, FRAME_SCOPE_TXN, "path");
	const struct spop_data *link = wire_var(&ack, FRAME_SCOPE_TXN, "link");
	check_built_path(path);
	check_built_path(link);
	if (a.d.route_index >= 0) {
		const struct route_shape *s = &shape[a.d.route_index];
		if (s->rewrites)
			CHECK(path ? a.d.status == 0 && a.d.backend_index >= 0
				   : (a.d.status == 400 || a.d.status == 414) && a.d.backend_index < 0);
		if (s->links)
			CHECK(link ? a.d.status == 410 : a.d.status == 400 || a.d.status == 414);
		CHECK(s->rewrites || path == NULL);
		CHECK(s->links || link == NULL);
	} else {
		CHECK(path == NULL && link == NULL);
	}
	free(out);
	plan_free(plan);
	return 0;
}
