/* SPDX-License-Identifier: Apache-2.0 */
#include "decide.h"

#include "plan.h"
#include "sunset.h"
#include "ryw.h"

#include <limits.h>
#include <string.h>


static void take_string(const struct spop_data *v, const char **s, size_t *len)
{
	if (v->type != SPOP_T_STRING)
		return;
	*s = (const char *)v->u.bytes.ptr;
	*len = v->u.bytes.len;
}

static void take_address(const struct spop_data *v, struct route_request *req)
{
	if (v->type == SPOP_T_IPV4) {
		req->src_family = 4;
		memcpy(req->src, v->u.ipv4, 4);
	} else if (v->type == SPOP_T_IPV6) {
		req->src_family = 6;
		memcpy(req->src, v->u.ipv6, 16);
	}
}

static void take_arg(struct answer *a, struct spop_bytes name, const struct spop_data *v)
{
	if (spop_bytes_eq(name, "method"))
		take_string(v, &a->req.method, &a->req.method_len);
	else if (spop_bytes_eq(name, "path"))
		take_string(v, &a->req.path, &a->req.path_len);
	else if (spop_bytes_eq(name, "host"))
		take_string(v, &a->req.host, &a->req.host_len);
	else if (spop_bytes_eq(name, "client"))
		take_string(v, &a->req.client, &a->req.client_len);
	else if (spop_bytes_eq(name, "side"))
		take_string(v, &a->req.side, &a->req.side_len);
	else if (spop_bytes_eq(name, "src"))
		take_address(v, &a->req);
}

/* One pass over every message: validates the payload as frame_parse_notify
 * does (the same inputs are refused) and reads the first `cutover`. */
static int read_notify(const struct frame *f, struct answer *a)
{
	const uint8_t *p = f->payload, *end = f->payload + f->payload_len;

	while (p < end) {
		struct spop_bytes name;
		if (spop_bytes_decode(&p, end, &name) != SPOP_OK || p >= end)
			return SPOP_INVALID;
		unsigned nargs = *p++;
		bool ours = !a->asked && spop_bytes_eq(name, "cutover");
		a->asked = a->asked || ours;
		for (; nargs > 0; nargs--) {
			struct spop_data v;
			if (spop_bytes_decode(&p, end, &name) != SPOP_OK ||
			    spop_data_decode(&p, end, &v) != SPOP_OK)
				return SPOP_INVALID;
			if (ours)
				take_arg(a, name, &v);
		}
	}
	return SPOP_OK;
}

static void set_cstring(struct ack_builder *b, const char *name, const char *s)
{
	frame_ack_set_string(b, FRAME_SCOPE_TXN, name, s, strlen(s));
}

void decider_init(struct decider *dc, const struct plan *plan)
{
	dc->plan = plan;
	dc->now = 0;
	for (int i = 0; i < DECIDE_SLOTS; i++)
		dc->slot[i].route = INT_MIN;
}

/* One slot per route (and for no route) and, on a split route, one more
 * for its old side, half the table away, so that clients of both sides do
 * not take turns encoding it: plans of fewer than DECIDE_SLOTS routes
 * without splits never share a slot between two routes. */
static unsigned slot_index(const struct decision *d)
{
	unsigned i = (unsigned)(d->route_index + 1) + (d->side == SIDE_OLD ? DECIDE_SLOTS / 2 : 0);

	return i % DECIDE_SLOTS;
}

/* txn.cutover.side on a split route: which side the client is on. */
static void put_side(struct ack_builder *b, const struct decision *d)
{
	if (d->side != SIDE_NONE)
		set_cstring(b, "side", d->side == SIDE_NEW ? "new" : "old");
}

/* The route's deprecation headers' values, made at plan load: only with a
 * decision that routes, as the proxy's own answers (400, 410, 414) carry no
 * such headers, and the 414 answer must fit FRAME_MIN_MAX_SIZE. */
static void set_deprecation(struct ack_builder *b, const struct plan_deprecation *dep)
{
	set_cstring(b, "deprecation", dep->date_sf);
	set_cstring(b, "sunset", dep->sunset_imf);
	if (dep->policy)
		set_cstring(b, "policy", dep->policy);
}

/* The slot holding d's fixed variables, encoded now if it held another
 * decision's; NULL only if they do not fit, which names of at most
 * PLAN_MAX_NAME (64) bytes and a policy of PLAN_MAX_POLICY cannot cause. */
static const struct decide_slot *slot_for(struct decider *dc, const struct decision *d)
{
	struct decide_slot *s = &dc->slot[slot_index(d)];
	struct ack_builder b;

	if (s->route == d->route_index && s->status == d->status && s->side == d->side)
		return s;
	s->route = INT_MIN;
	frame_actions_begin(&b, s->bytes, sizeof(s->bytes));
	if (d->backend)
		set_cstring(&b, "backend", d->backend);
	ssize_t before = frame_actions_end(&b);
	frame_ack_set_int64(&b, FRAME_SCOPE_TXN, "phase", d->phase);
	if (d->route)
		set_cstring(&b, "route", d->route);
	if (d->status)
		frame_ack_set_int64(&b, FRAME_SCOPE_TXN, "status", d->status);
	if (d->deprecated)
		frame_ack_set_bool(&b, FRAME_SCOPE_TXN, "deprecated", true);
	put_side(&b, d);
	if (d->deprecated && d->status == 0)
		set_deprecation(&b, plan_route_deprecation(dc->plan, d->route_index));
	ssize_t all = frame_actions_end(&b);
	if (before < 0 || all < 0)
		return NULL;
	s->route = d->route_index;
	s->status = d->status;
	s->side = d->side;
	s->before_len = (uint8_t)before;
	s->after_len = (uint16_t)(all - before);
	return s;
}

/* The rewrite as txn path or link, expanded in place in the ACK; d's path
 * or link then points at it. Returns 0, or 400 when the router refuses it,
 * room or not. No room for a safe one: the builder fails and 0 is returned
 * (the answer is then cut to the 414). */
static unsigned put_rewrite(struct ack_builder *b, const struct rewrite *rw, struct decision *d)
{
	size_t len = router_rewrite_len(rw);
	char *dst = frame_ack_string_room(b, FRAME_SCOPE_TXN, rw->link ? "link" : "path", len);

	if (dst == NULL)
		return router_rewrite_refusal(rw);
	if (router_rewrite_write(rw, dst) != 0)
		return 400;
	if (rw->link) {
		d->link = dst;
		d->link_len = len;
	} else {
		d->path = dst;
		d->path_len = len;
	}
	return 0;
}

/* Read-your-writes' per-request variables, after the decision's (never in
 * a slot: they depend on the client and the method, not only on the
 * route): txn client, mark, ryw_path, ryw_backend, ryw_for, ryw_after. A
 * refused ryw rewrite was dropped by ryw_for_request. */
static void put_ryw(struct ack_builder *b, const struct ryw_answer *y)
{
	frame_ack_set_string(b, FRAME_SCOPE_TXN, "client", y->client, y->client_len);
	if (y->mark)
		frame_ack_set_int64(b, FRAME_SCOPE_TXN, "mark", y->mark);
	if (!y->backend)
		return;
	if (y->rw.tpl) {
		size_t len = router_rewrite_len(&y->rw);
		char *dst = frame_ack_string_room(b, FRAME_SCOPE_TXN, "ryw_path", len);
		if (dst)
			(void)router_rewrite_write(&y->rw, dst); /* 0: checked before */
	}
	set_cstring(b, "ryw_backend", y->backend);
	frame_ack_set_int64(b, FRAME_SCOPE_TXN, "ryw_for", y->seconds);
	frame_ack_set_int64(b, FRAME_SCOPE_TXN, "ryw_after", y->after);
}

/* ryw_decide, a read whose ryw rewrite the router would refuse left to
 * its action (no ryw_* variables). NULL when nothing applies. */
static const struct ryw_answer *ryw_for_request(const struct plan *plan, const struct answer *a,
						const struct rewrite *rw, struct ryw_answer *y)
{
	if (!ryw_decide(plan, &a->req, &a->d, rw, y))
		return NULL;
	if (y->backend && y->rw.tpl && router_rewrite_refusal(&y->rw) != 0)
		y->backend = NULL;
	return y->mark || y->backend ? y : NULL;
}

/* The ACK: txn backend, path, phase, route, status, deprecated, side,
 * deprecation, sunset, policy, link (none
 * when d is NULL; no path or link when rw is NULL or has none), then y's
 * (none when NULL). *refused: the router refused the rewrite (the ACK is
 * then to be made again). */
static ssize_t encode_ack(struct decider *dc, const struct frame *f, uint32_t max_frame,
			  uint8_t *out, size_t cap, struct decision *d, const struct rewrite *rw,
			  const struct ryw_answer *y, unsigned *refused)
{
	struct ack_builder b;
	bool rewrite = rw && rw->tpl;

	*refused = 0;
	frame_ack_begin(&b, out, cap, max_frame, f->stream_id, f->frame_id);
	if (d) {
		const struct decide_slot *s = slot_for(dc, d);
		if (s == NULL)
			return SPOP_NOSPACE;
		frame_ack_put(&b, s->bytes, s->before_len);
		if (rewrite && !rw->link)
			*refused = put_rewrite(&b, rw, d);
		frame_ack_put(&b, s->bytes + s->before_len, s->after_len);
		if (rewrite && rw->link)
			*refused = put_rewrite(&b, rw, d);
		if (y)
			put_ryw(&b, y);
	}
	return frame_ack_end(&b);
}

ssize_t decide_notify(struct decider *dc, const struct frame *f, uint32_t max_frame,
		      uint8_t *out, size_t out_cap, struct answer *a, unsigned *status)
{
	struct rewrite rw;
	struct ryw_answer ryw;
	unsigned refused;

	*a = (struct answer){ 0 };
	if (out_cap < FRAME_LEN_SIZE + (size_t)max_frame)
		return SPOP_NOSPACE;
	if (read_notify(f, a) != SPOP_OK) {
		*status = FRAME_ST_INVALID;
		return SPOP_INVALID;
	}
	if (!a->asked)
		return encode_ack(dc, f, max_frame, out, out_cap, NULL, NULL, NULL, &refused);

	router_match(dc->plan, -1, &a->req, &a->d, &rw);
	if (sunset_passed(dc->plan, &a->d, dc->now))
		sunset_gone(&a->d, &rw);
	const struct ryw_answer *y = ryw_for_request(dc->plan, a, &rw, &ryw);
	ssize_t n = encode_ack(dc, f, max_frame, out, out_cap, &a->d, &rw, y, &refused);
	if (n < 0 && y && !refused) {
		/* No room for read-your-writes: the decision alone, as without it. */
		y = NULL;
		n = encode_ack(dc, f, max_frame, out, out_cap, &a->d, &rw, NULL, &refused);
	}
	a->ryw = y != NULL;
	if (n >= 0 && !refused)
		return n;
	a->ryw = false;
	if (refused) {
		/* Fits as the 414 answer does: it holds no more. */
		router_refuse(&a->d, refused);
		return encode_ack(dc, f, max_frame, out, out_cap, &a->d, NULL, NULL, &refused);
	}
	a->over_size = true;
	router_refuse(&a->d, 414);
	/* Fits FRAME_MIN_MAX_SIZE: a route name is at most PLAN_MAX_NAME (64) bytes. */
	return encode_ack(dc, f, max_frame, out, out_cap, &a->d, NULL, NULL, &refused);
}
