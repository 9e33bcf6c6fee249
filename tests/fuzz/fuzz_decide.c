/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: decide_notify, the code conn.c runs for every NOTIFY,
 * over arbitrary payload bytes against the sample-shaped fixture plan
 * (tests/unit/decide/plan.yaml), through one decider kept across inputs
 * as a worker keeps it. The first two input bytes pick the
 * negotiated max-frame-size, the rest is the NOTIFY's payload. The output
 * buffer is exactly one frame's room, so a byte written past it is an ASan
 * finding. Checked on every input:
 * - refused exactly when frame_parse_notify refuses it;
 * - otherwise one ACK that decodes (frame_split, spop decoders) within
 *   max-frame-size, with the NOTIFY's ids, no proc-scope variable;
 * - its variables are the router's decision for the request read, or the
 *   414 answer (route kept; no backend, path or link) when, and only when,
 *   the whole answer would not fit. */
#include <stdlib.h>
#include <string.h>

#include "check_decide_wire.h"
#include "decide.h"
#include "plan.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { if (!(cond)) abort(); } while (0)

static struct plan *plan;
static struct decider decider; /* kept across inputs, as a worker keeps it */
static char scratch[FRAME_AGENT_MAX_SIZE];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc;
	(void)argv;
	plan = plan_load(CUTOVER_DECIDE_PLAN, err, sizeof(err));
	CHECK(plan != NULL);
	decider_init(&decider, plan);
	return 0;
}

static bool string_is(const struct spop_data *v, const char *s, size_t len)
{
	return v && v->type == SPOP_T_STRING && v->u.bytes.len == len &&
	       (len == 0 || memcmp(v->u.bytes.ptr, s, len) == 0);
}

static void check_string(const struct wire_ack *ack, const char *name, const char *s,
			 size_t len)
{
	const struct spop_data *v = wire_var(ack, FRAME_SCOPE_TXN, name);

	CHECK(s ? string_is(v, s, len) : v == NULL);
}

static void check_int(const struct wire_ack *ack, unsigned scope, const char *name, unsigned n)
{
	const struct spop_data *v = wire_var(ack, scope, name);

	CHECK(n ? v && v->type == SPOP_T_INT64 && v->u.integer == n : v == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint32_t max_frame = FRAME_MIN_MAX_SIZE +
			     ((uint32_t)data[0] << 8 | data[1]) %
				     (FRAME_AGENT_MAX_SIZE - FRAME_MIN_MAX_SIZE + 1);
	struct frame f = { .type = FRAME_NOTIFY, .flags = FRAME_FLAG_FIN, .stream_id = size,
			   .frame_id = data[0], .payload = data + 2, .payload_len = size - 2 };
	size_t room = FRAME_LEN_SIZE + max_frame;
	uint8_t *out = malloc(room);
	struct answer a;
	struct notify n;
	unsigned status = 0, frame_status = 0;
	CHECK(out != NULL);

	ssize_t len = decide_notify(&decider, &f, max_frame, out, room, &a, &status);
	if (frame_parse_notify(&f, &n, &frame_status) != SPOP_OK) {
		CHECK(len == SPOP_INVALID && status == FRAME_ST_INVALID);
		free(out);
		return 0;
	}
	CHECK(len > 0);
	struct wire_ack ack;
	CHECK(wire_read_ack(out, (size_t)len, max_frame, &ack));
	CHECK(ack.stream_id == f.stream_id && ack.frame_id == f.frame_id);
	for (unsigned i = 0; i < ack.nvars; i++)
		CHECK(ack.var[i].scope != FRAME_SCOPE_PROC);
	if (!a.asked) {
		CHECK(ack.nvars == 0);
		free(out);
		return 0;
	}

	/* The oracle: the router asked again about the request decide read. */
	struct decision d;
	router_decide(plan, &a.req, &d, scratch, sizeof(scratch));
	CHECK(d.route_index == a.d.route_index && d.phase_index == a.d.phase_index);
	check_int(&ack, FRAME_SCOPE_TXN, "phase", d.phase);
	check_string(&ack, "route", d.route, d.route ? strlen(d.route) : 0);
	const struct spop_data *dep = wire_var(&ack, FRAME_SCOPE_TXN, "deprecated");
	CHECK(d.deprecated ? dep && dep->type == SPOP_T_BOOL && dep->u.boolean : dep == NULL);
	if (a.over_size) {
		CHECK(a.d.status == 414 && a.d.backend_index == -1);
		check_int(&ack, FRAME_SCOPE_TXN, "status", 414);
		check_string(&ack, "backend", NULL, 0);
		check_string(&ack, "path", NULL, 0);
		check_string(&ack, "link", NULL, 0);
		/* cut only when the whole answer did not fit */
		static uint8_t big[FRAME_LEN_SIZE + FRAME_AGENT_MAX_SIZE];
		struct answer whole;
		ssize_t n = decide_notify(&decider, &f, FRAME_AGENT_MAX_SIZE, big, sizeof(big),
					  &whole, &status);
		CHECK(n > 0 && (whole.over_size || (size_t)n > room));
	} else {
		CHECK(a.d.backend_index == d.backend_index && a.d.status == d.status);
		check_int(&ack, FRAME_SCOPE_TXN, "status", d.status);
		check_string(&ack, "backend", d.backend, d.backend ? strlen(d.backend) : 0);
		check_string(&ack, "path", d.path, d.path_len);
		check_string(&ack, "link", d.link, d.link_len);
	}
	free(out);
	return 0;
}
