/* SPDX-License-Identifier: Apache-2.0 */
/* Check tests for decide.c: NOTIFY bytes in, ACK bytes out, against the
 * fixture plans of tests/unit/decide/ (never conf/cutover.yaml). Every ACK is
 * decoded back with the frame and spop decoders and its variables compared
 * one by one: each must be there when the contract says so, and absent
 * otherwise. Runs from the source root. */
#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_decide_wire.h"
#include "decide.h"
#include "guard.h"
#include "plan.h"
#include "shift.h"

#define PLAN_FILE "tests/unit/decide/plan.yaml"
#define NO_DEFAULT_FILE "tests/unit/decide/no-default.yaml"
#define CURRENT 2 /* the fixture's current phase number */
#define BIG (64 * 1024 + 1024)

static struct plan *plan, *no_default;
static struct decider decider, decider_no_default; /* bound to each */
static uint8_t notify_buf[BIG + 512];
static uint8_t out_buf[FRAME_LEN_SIZE + FRAME_AGENT_MAX_SIZE];

static struct plan *load(const char *file)
{
	char err[1024];
	struct plan *p = plan_load(file, err, sizeof(err));

	ck_assert_msg(p != NULL, "%s", err);
	return p;
}

static void setup(void)
{
	plan = load(PLAN_FILE);
	no_default = load(NO_DEFAULT_FILE);
	decider_init(&decider, plan);
	decider_init(&decider_no_default, no_default);
}

static void teardown(void)
{
	plan_free(plan);
	plan_free(no_default);
}

/* A NOTIFY frame (stream 7, frame 3) with one `cutover` message; a NULL
 * argument is left out. */
static struct frame notify(const char *method, const char *path, size_t path_len,
			   const char *host)
{
	struct wire_notify w = { notify_buf, notify_buf + sizeof(notify_buf), false };

	wire_message(&w, "cutover", (method != NULL) + (path != NULL) + (host != NULL));
	if (method)
		wire_arg_string(&w, "method", method, strlen(method));
	if (path)
		wire_arg_string(&w, "path", path, path_len);
	if (host)
		wire_arg_string(&w, "host", host, strlen(host));
	ck_assert(!w.failed);
	return (struct frame){ .type = FRAME_NOTIFY, .flags = FRAME_FLAG_FIN, .stream_id = 7,
			       .frame_id = 3, .payload = notify_buf,
			       .payload_len = (size_t)(w.p - notify_buf) };
}

static ssize_t decide(const struct plan *p, const struct frame *f, uint32_t max_frame,
		      struct answer *a, struct wire_ack *ack)
{
	unsigned status = 0;
	ssize_t n = decide_notify(p == plan ? &decider : &decider_no_default, f, max_frame,
				  out_buf, sizeof(out_buf), a, &status);

	ck_assert_msg(n > 0, "decide_notify returned %zd", n);
	ck_assert_msg(wire_read_ack(out_buf, (size_t)n, max_frame, ack),
		      "not one well-formed ACK within %u bytes", max_frame);
	ck_assert_uint_eq(ack->stream_id, 7);
	ck_assert_uint_eq(ack->frame_id, 3);
	return n;
}

static void expect_string(const struct wire_ack *ack, const char *name, const char *want,
			  size_t want_len)
{
	const struct spop_data *v = wire_var(ack, FRAME_SCOPE_TXN, name);

	if (want == NULL) {
		ck_assert_msg(v == NULL, "txn.%s set, must be absent", name);
		return;
	}
	ck_assert_msg(v != NULL, "txn.%s absent, want \"%s\"", name, want);
	ck_assert_int_eq(v->type, SPOP_T_STRING);
	ck_assert_msg(v->u.bytes.len == want_len && memcmp(v->u.bytes.ptr, want, want_len) == 0,
		      "txn.%s is \"%.*s\", want \"%s\"", name, (int)v->u.bytes.len,
		      (const char *)v->u.bytes.ptr, want);
}

static void expect_int(const struct wire_ack *ack, unsigned scope, const char *name,
		       int64_t want)
{
	const struct spop_data *v = wire_var(ack, scope, name);

	if (want == 0) {
		ck_assert_msg(v == NULL, "%s set, must be absent", name);
		return;
	}
	ck_assert_msg(v != NULL, "%s absent, want %lld", name, (long long)want);
	ck_assert_int_eq(v->type, SPOP_T_INT64);
	ck_assert_int_eq((int64_t)v->u.integer, want);
}

/* What the ACK of one request must hold. NULL / 0 / false: absent. */
struct want {
	const char *backend, *path, *route;
	unsigned status;
	bool deprecated;
	const char *link;
};

/* The fixture's deprecation blocks as the headers carry them (epochs from
 * `date -u -d 2026-12-01 +%s` and the like, not from httpdate.c): sent with
 * every deprecated decision that routes (status 0), nothing otherwise: the
 * proxy's own answers carry no deprecation headers. Returns how many. */
static unsigned expect_deprecation(const struct wire_ack *ack, const struct want *w)
{
	const char *date = NULL, *sunset = NULL, *policy = NULL;
	bool routed = w->deprecated && w->status == 0;

	if (routed && strcmp(w->route, "squids-query") == 0) {
		date = "@1796083200";
		sunset = "Wed, 30 Jun 2027 00:00:00 GMT";
		policy = "https://example.com/api/deprecation";
	} else if (routed) { /* legacy: no policy */
		ck_assert_str_eq(w->route, "legacy");
		date = "@1582977600";
		sunset = "Tue, 01 Jan 2030 00:00:00 GMT";
	}
	expect_string(ack, "deprecation", date, date ? strlen(date) : 0);
	expect_string(ack, "sunset", sunset, sunset ? strlen(sunset) : 0);
	expect_string(ack, "policy", policy, policy ? strlen(policy) : 0);
	return (date != NULL) + (sunset != NULL) + (policy != NULL);
}

static void expect_vars(const struct wire_ack *ack, const struct want *w)
{
	unsigned n = 1; /* txn.phase, always; no proc-scope variable ever */

	expect_string(ack, "backend", w->backend, w->backend ? strlen(w->backend) : 0);
	expect_string(ack, "path", w->path, w->path ? strlen(w->path) : 0);
	expect_string(ack, "route", w->route, w->route ? strlen(w->route) : 0);
	expect_string(ack, "link", w->link, w->link ? strlen(w->link) : 0);
	expect_int(ack, FRAME_SCOPE_TXN, "phase", CURRENT);
	expect_int(ack, FRAME_SCOPE_TXN, "status", w->status);
	for (unsigned i = 0; i < ack->nvars; i++)
		ck_assert_msg(ack->var[i].scope != FRAME_SCOPE_PROC, "a proc-scope variable");
	const struct spop_data *dep = wire_var(ack, FRAME_SCOPE_TXN, "deprecated");
	if (w->deprecated) {
		ck_assert_msg(dep && dep->type == SPOP_T_BOOL && dep->u.boolean,
			      "txn.deprecated not true");
	} else {
		ck_assert_msg(dep == NULL, "txn.deprecated set, must be absent");
	}
	n += (w->backend != NULL) + (w->path != NULL) + (w->route != NULL) + (w->link != NULL) +
	     (w->status != 0) + w->deprecated + expect_deprecation(ack, w);
	ck_assert_uint_eq(ack->nvars, n);
}

static int route_index(const char *name)
{
	for (int i = 0; i < plan_route_count(plan); i++)
		if (strcmp(plan_route_name(plan, i), name) == 0)
			return i;
	return -1;
}

static int backend_index(const char *name)
{
	for (int i = 0; name && i < plan_backend_count(plan); i++)
		if (strcmp(plan_backend_name(plan, i), name) == 0)
			return i;
	return -1;
}

static void expect_view(const char *got, size_t got_len, const char *want)
{
	if (want == NULL) {
		ck_assert(got == NULL);
		return;
	}
	ck_assert(got != NULL);
	ck_assert_uint_eq(got_len, strlen(want));
	ck_assert(memcmp(got, want, got_len) == 0);
}

/* What the caller counts: indices, never names; and the decision as sent,
 * its path or link the bytes written in the ACK. */
static void expect_indices(const struct answer *a, const struct want *w)
{
	ck_assert(a->asked);
	ck_assert_int_eq(a->d.phase_index, 1);
	ck_assert_int_eq(a->d.route_index, w->route ? route_index(w->route) : -1);
	ck_assert_int_eq(a->d.backend_index, backend_index(w->backend));
	ck_assert_uint_eq(a->d.status, w->status);
	expect_view(a->d.path, a->d.path_len, w->path);
	expect_view(a->d.link, a->d.link_len, w->link);
}

/* ---- every action kind ---- */

static const struct {
	const char *method, *path, *host;
	struct want want;
} table[] = {
	/* backend + rewrite + deprecated, tail capture */
	{ "GET", "/query/api/squids/42", NULL,
	  { "new_query", "/query/api/seafoods/42", "squids-query", 0, true, NULL } },
	{ "HEAD", "/query/api/squids", NULL,
	  { "new_query", "/query/api/seafoods", "squids-query", 0, true, NULL } },
	/* the squids route takes reads only: a POST falls to `query` */
	{ "POST", "/query/api/squids/42", NULL,
	  { "new_query", NULL, "query", 0, false, NULL } },
	/* backend + rewrite, mid-path capture */
	{ "PUT", "/command/api/items/9/parts", NULL,
	  { "new_command", "/command/api/v2/items/9/parts", "items", 0, false, NULL } },
	/* deprecated, no rewrite */
	{ "GET", "/legacy/x", NULL, { "old_query", NULL, "legacy", 0, true, NULL } },
	/* plain backend */
	{ "GET", "/query/orders", NULL, { "new_query", NULL, "query", 0, false, NULL } },
	/* 404 (inherited from phase 1) */
	{ "GET", "/query/api/seafoods/1", NULL,
	  { NULL, NULL, "seafoods-query", 404, false, NULL } },
	/* 410 + link */
	{ "DELETE", "/command/api/squids/5/legs", NULL,
	  { NULL, NULL, "squids-command", 410, false, "/command/api/seafoods/5/legs" } },
	/* 400: captures that would put a dot segment or unsafe bytes in a rewrite/link */
	{ "GET", "/query/api/squids/../admin", NULL,
	  { NULL, NULL, "squids-query", 400, true, NULL } },
	{ "GET", "/query/api/squids/%2e%2E/admin", NULL,
	  { NULL, NULL, "squids-query", 400, true, NULL } },
	{ "PUT", "/command/api/items/%2e/parts", NULL, { NULL, NULL, "items", 400, false, NULL } },
	{ "POST", "/command/api/squids/a b", NULL,
	  { NULL, NULL, "squids-command", 400, false, NULL } },
	/* host-bound route, in phase 1's action */
	{ "GET", "/admin/users", "admin.example.test",
	  { "old_command", NULL, "admin", 0, false, NULL } },
	{ "GET", "/admin/users", "ADMIN.example.test:8443",
	  { "old_command", NULL, "admin", 0, false, NULL } },
	/* default backend: no route matches */
	{ "GET", "/admin/users", "other.example.test", { "old_query", NULL, NULL, 0, false, NULL } },
	{ "GET", "/health", NULL, { "old_query", NULL, NULL, 0, false, NULL } },
	{ "GET", "health", NULL, { "old_query", NULL, NULL, 0, false, NULL } },
};
#define NTABLE (int)(sizeof(table) / sizeof(table[0]))

START_TEST(every_action_kind)
{
	struct answer a;
	struct wire_ack ack;
	const char *path = table[_i].path;
	struct frame f = notify(table[_i].method, path, strlen(path), table[_i].host);

	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &table[_i].want);
	expect_indices(&a, &table[_i].want);
	ck_assert(!a.over_size);
	ck_assert(a.req.path_len == strlen(path) && memcmp(a.req.path, path, a.req.path_len) == 0);
}
END_TEST

/* ---- after the sunset ---- */

#define SQUIDS_SUNSET 1814313600 /* 2027-06-30T00:00:00Z */
#define LEGACY_SUNSET 1893456000 /* 2030-01-01T00:00:00Z */

/* At the sunset's second and after, a deprecated route is answered 410 with
 * its rewrite as the link, deprecation kept; a second before, it is routed.
 * Going back and forth over the sunset through the same slots proves the
 * slot cache holds no answer of the other side. */
START_TEST(gone_at_sunset)
{
	static const struct {
		int64_t now;
		struct want want;
	} steps[] = {
		{ SQUIDS_SUNSET - 1,
		  { "new_query", "/query/api/seafoods/42", "squids-query", 0, true, NULL } },
		{ SQUIDS_SUNSET,
		  { NULL, NULL, "squids-query", 410, true, "/query/api/seafoods/42" } },
		{ SQUIDS_SUNSET - 1,
		  { "new_query", "/query/api/seafoods/42", "squids-query", 0, true, NULL } },
		{ LEGACY_SUNSET + 86400,
		  { NULL, NULL, "squids-query", 410, true, "/query/api/seafoods/42" } },
	};
	struct answer a;
	struct wire_ack ack;
	struct frame f;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		decider.now = steps[i].now;
		f = notify("GET", "/query/api/squids/42", 20, NULL);
		decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
		expect_vars(&ack, &steps[i].want);
		expect_indices(&a, &steps[i].want);
		ck_assert(a.d.deprecated);
	}
	/* a deprecated route without a rewrite: 410 with no link */
	decider.now = LEGACY_SUNSET - 1;
	f = notify("GET", "/legacy/x", 9, NULL);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ "old_query", NULL, "legacy", 0, true, NULL });
	decider.now = LEGACY_SUNSET;
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ NULL, NULL, "legacy", 410, true, NULL });
	/* not deprecated: time changes nothing */
	f = notify("PUT", "/command/api/items/9/parts", 26, NULL);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ "new_command", "/command/api/v2/items/9/parts",
					   "items", 0, false, NULL });
	/* past the sunset, an unsafe rewrite is still refused 400, never a link */
	decider.now = SQUIDS_SUNSET;
	f = notify("GET", "/query/api/squids/../admin", 26, NULL);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ NULL, NULL, "squids-query", 400, true, NULL });
}
END_TEST

START_TEST(no_match_no_default)
{
	struct answer a;
	struct wire_ack ack;
	struct frame f = notify("GET", "/health", 7, NULL);

	decide(no_default, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	ck_assert_uint_eq(ack.nvars, 1); /* the phase only */
	ck_assert(wire_var(&ack, FRAME_SCOPE_TXN, "backend") == NULL);
	ck_assert(wire_var(&ack, FRAME_SCOPE_TXN, "route") == NULL);
	ck_assert(wire_var(&ack, FRAME_SCOPE_TXN, "phase") != NULL);
	ck_assert_int_eq(a.d.route_index, -1);
	ck_assert_int_eq(a.d.backend_index, -1);
}
END_TEST

/* ---- arguments ---- */

static struct frame frame_of(struct wire_notify *w)
{
	ck_assert(!w->failed);
	return (struct frame){ .type = FRAME_NOTIFY, .flags = FRAME_FLAG_FIN, .stream_id = 7,
			       .frame_id = 3, .payload = notify_buf,
			       .payload_len = (size_t)(w->p - notify_buf) };
}

START_TEST(missing_arguments)
{
	struct answer a;
	struct wire_ack ack;
	/* no path: nothing can match, default backend */
	struct frame f = notify("GET", NULL, 0, NULL);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ .backend = "old_query" });
	/* no method: the reads-only route is not taken */
	f = notify(NULL, "/query/api/squids/1", 19, NULL);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ .backend = "new_query", .route = "query" });
	/* no host: the host-bound route is not taken */
	f = notify("GET", "/admin", 6, NULL);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ .backend = "old_query" });
	/* empty message */
	f = notify(NULL, NULL, 0, NULL);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	ck_assert(a.asked);
	expect_vars(&ack, &(struct want){ .backend = "old_query" });
}
END_TEST

/* Arguments of another type than STRING count as absent; unknown ones are
 * ignored; names are exact. */
START_TEST(non_string_arguments)
{
	static const struct spop_data null = { .type = SPOP_T_NULL };
	static const struct spop_data number = { .type = SPOP_T_INT64, .u.integer = 5 };
	struct spop_data bin = { .type = SPOP_T_BINARY };
	struct answer a;
	struct wire_ack ack;

	bin.u.bytes.ptr = (const uint8_t *)"admin.example.test";
	bin.u.bytes.len = 18;
	struct wire_notify w = { notify_buf, notify_buf + sizeof(notify_buf), false };
	wire_message(&w, "cutover", 6);
	wire_arg(&w, "method", &number);
	wire_arg_string(&w, "Path", "/query/api/squids/1", 19); /* wrong case: unknown */
	wire_arg_string(&w, "path", "/admin/x", 8);
	wire_arg(&w, "host", &bin);
	wire_arg(&w, "client", &null);
	wire_arg(&w, "", &number);
	struct frame f = frame_of(&w);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	ck_assert_ptr_null(a.req.method);
	ck_assert_ptr_null(a.req.host);
	expect_vars(&ack, &(struct want){ .backend = "old_query" });

	/* a NULL path is no path */
	w = (struct wire_notify){ notify_buf, notify_buf + sizeof(notify_buf), false };
	wire_message(&w, "cutover", 2);
	wire_arg_string(&w, "method", "GET", 3);
	wire_arg(&w, "path", &null);
	f = frame_of(&w);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	ck_assert_ptr_null(a.req.path);
	expect_vars(&ack, &(struct want){ .backend = "old_query" });
}
END_TEST

START_TEST(no_cutover_message)
{
	struct answer a;
	struct wire_ack ack;

	/* an empty NOTIFY, then one with another message only */
	for (int k = 0; k < 2; k++) {
		struct wire_notify w = { notify_buf, notify_buf + sizeof(notify_buf), false };
		if (k == 1) {
			wire_message(&w, "cutover-other", 1);
			wire_arg_string(&w, "path", "/query/api/squids/1", 19);
		}
		struct frame f = frame_of(&w);
		decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
		ck_assert(!a.asked);
		ck_assert_uint_eq(ack.nvars, 0);
	}
}
END_TEST

START_TEST(several_messages)
{
	struct answer a;
	struct wire_ack ack;
	struct wire_notify w = { notify_buf, notify_buf + sizeof(notify_buf), false };

	wire_message(&w, "log", 1);
	wire_arg_string(&w, "path", "/legacy", 7);
	wire_message(&w, "cutover", 2);
	wire_arg_string(&w, "method", "GET", 3);
	wire_arg_string(&w, "path", "/query/api/squids/7", 19);
	wire_message(&w, "cutover", 2); /* the first one counts */
	wire_arg_string(&w, "method", "GET", 3);
	wire_arg_string(&w, "path", "/legacy", 7);
	wire_message(&w, "after", 0);
	struct frame f = frame_of(&w);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ "new_query", "/query/api/seafoods/7", "squids-query", 0,
					  true, NULL });
}
END_TEST

/* Every cut of a valid payload is refused exactly when frame_parse_notify
 * refuses it, with status 4 and nothing written. */
START_TEST(malformed_like_frame_parse_notify)
{
	struct wire_notify w = { notify_buf, notify_buf + sizeof(notify_buf), false };

	wire_message(&w, "cutover", 3);
	wire_arg_string(&w, "method", "GET", 3);
	wire_arg_string(&w, "path", "/query/api/squids/7", 19);
	wire_arg_string(&w, "host", "a.example", 9);
	wire_message(&w, "other", 1);
	wire_arg_string(&w, "x", "y", 1);
	struct frame whole = frame_of(&w);
	int refused = 0;
	for (size_t len = 0; len < whole.payload_len; len++) {
		struct frame f = whole;
		f.payload = guard_copy(whole.payload, len);
		f.payload_len = len;
		struct notify n;
		unsigned st_frame = 0, st = 0;
		struct answer a;
		int want = frame_parse_notify(&f, &n, &st_frame);
		memset(out_buf, 0xAA, 16);
		ssize_t got = decide_notify(&decider, &f, FRAME_AGENT_MAX_SIZE, out_buf,
					    sizeof(out_buf), &a, &st);
		if (want == SPOP_OK) {
			ck_assert_msg(got > 0, "cut at %zu: %zd", len, got);
		} else {
			refused++;
			ck_assert_msg(got == SPOP_INVALID, "cut at %zu accepted", len);
			ck_assert_uint_eq(st, FRAME_ST_INVALID);
			ck_assert_uint_eq(out_buf[0], 0xAA);
		}
	}
	ck_assert_int_gt(refused, 10);
}
END_TEST

/* ---- sizes ---- */

/* The path under /query/api/squids of len bytes ('p's after the prefix). */
static const char *long_path(size_t len)
{
	static char path[BIG];

	ck_assert(len <= sizeof(path) && len >= 18);
	memcpy(path, "/query/api/squids/", 18);
	memset(path + 18, 'p', len - 18);
	return path;
}

/* Size of the whole ACK of a GET of path under a frame of our maximum. */
static size_t whole_ack_size(const char *path, size_t len)
{
	struct answer a;
	struct wire_ack ack;
	struct frame f = notify("GET", path, len, NULL);

	return (size_t)decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
}

/* At max-frame-size limits near 256 and near ours: the largest ACK that
 * fits is sent whole; one byte less of room gives the 414. */
START_TEST(over_size_boundary)
{
	static const size_t path_len[] = { 180, 16000 };
	const size_t path_over = (size_t)_i; /* 0: exact fit, 1: one byte over */
	for (size_t k = 0; k < 2; k++) {
		const char *path = long_path(path_len[k]);
		size_t n = whole_ack_size(path, path_len[k]);
		uint32_t max_frame = (uint32_t)(n - FRAME_LEN_SIZE - path_over);
		ck_assert_uint_ge(max_frame, FRAME_MIN_MAX_SIZE);
		ck_assert_uint_le(max_frame, FRAME_AGENT_MAX_SIZE);
		struct answer a;
		struct wire_ack ack;
		struct frame f = notify("GET", path, path_len[k], NULL);
		size_t got = (size_t)decide(plan, &f, max_frame, &a, &ack);
		char rewritten[BIG];
		memcpy(rewritten, "/query/api/seafoods/", 20);
		memcpy(rewritten + 20, path + 18, path_len[k] - 18);
		rewritten[path_len[k] + 2] = '\0';
		if (!path_over) {
			ck_assert_uint_eq(got, n);
			ck_assert(!a.over_size);
			expect_vars(&ack, &(struct want){ "new_query", rewritten, "squids-query", 0,
							  true, NULL });
		} else {
			ck_assert(a.over_size);
			expect_vars(&ack, &(struct want){ NULL, NULL, "squids-query", 414, true,
							  NULL });
			ck_assert_int_eq(a.d.backend_index, -1);
			ck_assert_uint_eq(a.d.status, 414);
		}
	}
}
END_TEST

/* An unsafe rewrite is refused (400) whether or not the frame has room for
 * it: the answer does not depend on max-frame-size. */
START_TEST(unsafe_rewrite_without_room)
{
	static char path[BIG];
	const size_t len = 16200;
	static const uint32_t max_frame[] = { FRAME_MIN_MAX_SIZE, FRAME_AGENT_MAX_SIZE };

	memcpy(path, long_path(len), len);
	memcpy(path + len - 3, "/..", 3);
	for (size_t k = 0; k < 2; k++) {
		struct answer a;
		struct wire_ack ack;
		struct frame f = notify("GET", path, len, NULL);
		decide(plan, &f, max_frame[k], &a, &ack);
		ck_assert(!a.over_size);
		expect_vars(&ack, &(struct want){ NULL, NULL, "squids-query", 400, true, NULL });
		ck_assert_int_eq(a.d.backend_index, -1);
	}
}
END_TEST

/* The same for a 410's link. */
START_TEST(over_size_link)
{
	static char path[2048];
	memcpy(path, "/command/api/squids/", 20);
	memset(path + 20, 'q', 1000);
	struct answer a;
	struct wire_ack ack;
	struct frame f = notify("GET", path, 1020, NULL);
	size_t n = (size_t)decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	ck_assert(wire_var(&ack, FRAME_SCOPE_TXN, "link") != NULL);
	decide(plan, &f, (uint32_t)(n - FRAME_LEN_SIZE - 1), &a, &ack);
	expect_vars(&ack, &(struct want){ NULL, NULL, "squids-command", 414, false, NULL });
}
END_TEST

/* The caller's output room must be a whole frame: one byte less is refused
 * with nothing written, whatever the ACK's size; exactly that much is enough
 * for the largest ACK, which then ends on the buffer's last byte. */
START_TEST(output_room_boundary)
{
	const char *path = long_path(1000);
	size_t n = whole_ack_size(path, 1000);
	uint32_t max_frame = (uint32_t)(n - FRAME_LEN_SIZE); /* the ACK fills a frame */
	struct frame f = notify("GET", path, 1000, NULL);
	struct answer a;
	unsigned st;
	size_t room = FRAME_LEN_SIZE + max_frame;
	uint8_t *out = guard_end() - room; /* one byte further faults */

	memset(out, 0xAA, room);
	ck_assert_int_eq(decide_notify(&decider, &f, max_frame, out + 1, room - 1, &a, &st),
			 SPOP_NOSPACE);
	for (size_t i = 0; i < room; i++)
		ck_assert_uint_eq(out[i], 0xAA);
	/* a short ACK is refused too: room never decides the answer */
	struct frame small = notify("GET", "/legacy", 7, NULL);
	ck_assert_int_eq(decide_notify(&decider, &small, max_frame, out + 1, room - 1, &a, &st),
			 SPOP_NOSPACE);
	f = notify("GET", path, 1000, NULL); /* small took the NOTIFY buffer */
	ssize_t got = decide_notify(&decider, &f, max_frame, out, room, &a, &st);
	ck_assert_int_eq(got, (ssize_t)room);
	ck_assert(!a.over_size);
	struct wire_ack ack;
	ck_assert(wire_read_ack(out, room, max_frame, &ack));
	ck_assert(wire_var(&ack, FRAME_SCOPE_TXN, "path") != NULL);
}
END_TEST

/* A 64 KiB path: rewritten, it fits neither the scratch nor a frame (414);
 * not rewritten, it routes normally. */
START_TEST(path_64k)
{
	const size_t len = 64 * 1024;
	const char *path = long_path(len);
	struct answer a;
	struct wire_ack ack;
	struct frame f = notify("GET", path, len, NULL);

	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ NULL, NULL, "squids-query", 414, true, NULL });
	f = notify("POST", path, len, NULL);
	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ "new_query", NULL, "query", 0, false, NULL });
	ck_assert_uint_eq(a.req.path_len, len);
}
END_TEST

/* The encoded actions a decider keeps per route are reused only for the
 * same outcome: one route answered in turn normally, refused (400), cut to
 * 414, and normally again, then the whole table twice over in one decider,
 * forwards and backwards, gives every ACK its own variables. */
START_TEST(kept_actions_follow_the_outcome)
{
	const char *path = long_path(1000);
	size_t n = whole_ack_size(path, 1000);
	struct answer a;
	struct wire_ack ack;
	const struct want ok = { "new_query", "/query/api/seafoods/7", "squids-query", 0, true,
				 NULL };
	const struct want refused = { NULL, NULL, "squids-query", 400, true, NULL };
	const struct want cut = { NULL, NULL, "squids-query", 414, true, NULL };

	for (int round = 0; round < 2; round++) {
		struct frame f = notify("GET", "/query/api/squids/7", 19, NULL);
		decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
		expect_vars(&ack, &ok);
		f = notify("GET", "/query/api/squids/..", 20, NULL);
		decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
		expect_vars(&ack, &refused);
		f = notify("GET", path, 1000, NULL);
		decide(plan, &f, (uint32_t)(n - FRAME_LEN_SIZE - 1), &a, &ack);
		expect_vars(&ack, &cut);
	}
	for (int k = 0; k < 4 * NTABLE; k++) {
		int i = k < 2 * NTABLE ? k % NTABLE : NTABLE - 1 - k % NTABLE;
		struct frame f = notify(table[i].method, table[i].path, strlen(table[i].path),
					table[i].host);
		decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
		expect_vars(&ack, &table[i].want);
	}
}
END_TEST

/* A decider bound to another plan forgets the first plan's encodings. */
START_TEST(rebinding_forgets)
{
	struct answer a;
	struct wire_ack ack;
	struct frame f = notify("GET", "/query/x", 8, NULL);

	decide(plan, &f, FRAME_AGENT_MAX_SIZE, &a, &ack);
	expect_vars(&ack, &(struct want){ .backend = "new_query", .route = "query" });
	decider_init(&decider, no_default); /* route 0 of no_default: "query", old_query */
	ssize_t len = decide_notify(&decider, &f, FRAME_AGENT_MAX_SIZE, out_buf, sizeof(out_buf),
				    &a, &(unsigned){ 0 });
	ck_assert(len > 0 && wire_read_ack(out_buf, (size_t)len, FRAME_AGENT_MAX_SIZE, &ack));
	ck_assert(wire_var(&ack, FRAME_SCOPE_TXN, "backend") != NULL);
	ck_assert_uint_eq(wire_var(&ack, FRAME_SCOPE_TXN, "backend")->u.bytes.len, 9);
	ck_assert(memcmp(wire_var(&ack, FRAME_SCOPE_TXN, "backend")->u.bytes.ptr, "old_query",
			 9) == 0);
	ck_assert_int_eq((int64_t)wire_var(&ack, FRAME_SCOPE_TXN, "phase")->u.integer, 1);
}
END_TEST

/* Routes whose indices share a slot (1,100 routes) still get their own
 * variables, alternately. */
START_TEST(shared_slots)
{
	enum { N = DECIDE_SLOTS + 76 };
	static char yaml[N * 64 + 256];
	size_t len = (size_t)snprintf(yaml, sizeof(yaml),
				      "phase: 1\nbackends: [b0, b1, b2]\nroutes:\n");
	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(yaml + len, sizeof(yaml) - len,
					"  - name: r%d\n    path: /p/r%d\n", i, i);
	len += (size_t)snprintf(yaml + len, sizeof(yaml) - len,
				"phases:\n  - number: 1\n    name: one\n    routes:\n");
	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(yaml + len, sizeof(yaml) - len, "      r%d: b%d\n", i, i % 3);
	ck_assert_uint_lt(len, sizeof(yaml));
	char err[512];
	struct plan *big = plan_load_buffer("shared-slots.yaml", yaml, len, err, sizeof(err));
	ck_assert_msg(big != NULL, "%s", err);
	decider_init(&decider, big);
	for (int k = 0; k < 6; k++) {
		int r = k % 2 ? 5 : 5 + DECIDE_SLOTS;
		char path[32], route[16], backend[4];
		int n = snprintf(path, sizeof(path), "/p/r%d", r);
		snprintf(route, sizeof(route), "r%d", r);
		snprintf(backend, sizeof(backend), "b%d", r % 3);
		struct frame f = notify("GET", path, (size_t)n, NULL);
		struct answer a;
		unsigned st;
		struct wire_ack ack;
		ssize_t got = decide_notify(&decider, &f, FRAME_AGENT_MAX_SIZE, out_buf,
					    sizeof(out_buf), &a, &st);
		ck_assert(got > 0 && wire_read_ack(out_buf, (size_t)got, FRAME_AGENT_MAX_SIZE, &ack));
		expect_string(&ack, "route", route, strlen(route));
		expect_string(&ack, "backend", backend, 2);
		ck_assert_int_eq(a.d.route_index, r);
	}
	plan_free(big);
}
END_TEST

/* A split route (10% of clients on b): every ACK names the side its client
 * is on, by the documented bucket, with that side's backend, whatever side
 * the decision before it took (the slot cache keys on the side); forcing
 * works both ways; an unsplit route sets no side. */
START_TEST(split_side_in_the_ack)
{
	static const char yaml[] =
		"phase: 2\nclients: { key: X-Api-Client, salt: s }\nbackends: [a, b]\n"
		"routes:\n  - { name: r, path: /r }\n  - { name: u, path: /u }\n"
		"phases:\n  - { number: 1, name: one, routes: { r: a, u: a } }\n"
		"  - { number: 2, name: two, routes: { r: { backend: b, percent: 10 } } }\n";
	char err[512];
	struct plan *p = plan_load_buffer("split.yaml", yaml, sizeof(yaml) - 1, err, sizeof(err));
	int news = 0;

	ck_assert_msg(p != NULL, "%s", err);
	decider_init(&decider, p);
	for (int i = 0; i < 400; i++) {
		char key[16];
		const char *force = i % 4 == 3 ? (i % 8 == 3 ? "new" : "old") : NULL;
		int n = snprintf(key, sizeof(key), "client-%d", i);
		bool is_new = force ? force[0] == 'n' : shift_bucket("s", key, (size_t)n) < 1000;
		struct wire_notify w = { notify_buf, notify_buf + sizeof(notify_buf), false };

		wire_message(&w, "cutover", 3 + (force != NULL));
		wire_arg_string(&w, "method", "GET", 3);
		wire_arg_string(&w, "path", i % 5 ? "/r" : "/u", 2);
		wire_arg_string(&w, "client", key, (size_t)n);
		if (force)
			wire_arg_string(&w, "side", force, 3);
		struct frame f = frame_of(&w);
		struct answer a;
		struct wire_ack ack;
		unsigned st;
		ssize_t got = decide_notify(&decider, &f, FRAME_AGENT_MAX_SIZE, out_buf,
					    sizeof(out_buf), &a, &st);
		ck_assert(got > 0 && wire_read_ack(out_buf, (size_t)got, FRAME_AGENT_MAX_SIZE, &ack));
		if (i % 5 == 0) {
			expect_string(&ack, "side", NULL, 0);
			expect_string(&ack, "backend", "a", 1);
			continue;
		}
		expect_string(&ack, "side", is_new ? "new" : "old", 3);
		expect_string(&ack, "backend", is_new ? "b" : "a", 1);
		news += is_new && !force;
	}
	ck_assert_msg(news > 5 && news < 60, "%d unforced clients on new at 10%%", news);
	plan_free(p);
}
END_TEST

static Suite *decide_suite(void)
{
	Suite *s = suite_create("decide");
	TCase *tc = tcase_create("actions");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, every_action_kind, 0, NTABLE);
	tcase_add_test(tc, no_match_no_default);
	tcase_add_test(tc, gone_at_sunset);
	tcase_add_test(tc, kept_actions_follow_the_outcome);
	tcase_add_test(tc, rebinding_forgets);
	tcase_add_test(tc, shared_slots);
	tcase_add_test(tc, split_side_in_the_ack);
	suite_add_tcase(s, tc);

	tc = tcase_create("notify");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, missing_arguments);
	tcase_add_test(tc, non_string_arguments);
	tcase_add_test(tc, no_cutover_message);
	tcase_add_test(tc, several_messages);
	tcase_add_test(tc, malformed_like_frame_parse_notify);
	suite_add_tcase(s, tc);

	tc = tcase_create("sizes");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, over_size_boundary, 0, 2);
	tcase_add_test(tc, over_size_link);
	tcase_add_test(tc, unsafe_rewrite_without_room);
	tcase_add_test(tc, output_room_boundary);
	tcase_add_test(tc, path_64k);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(decide_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
