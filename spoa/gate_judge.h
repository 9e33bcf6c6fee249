/* SPDX-License-Identifier: Apache-2.0 */
/* gate_judge: whether an HTTP gate's answer lets traffic in, pure.
 *
 * The answer is the raw HTTP/1.x response the gate's GET received, up to
 * the connection's end. The gate passes when the status is the one the gate
 * expects and, when it names a JSON field, the body is JSON whose number at
 * that dotted path (objects only: "a.b" is {"a": {"b": N}}) is within the
 * gate's bounds. */
#ifndef CUTOVER_GATE_JUDGE_H
#define CUTOVER_GATE_JUDGE_H

#include <stdbool.h>
#include <stddef.h>

struct plan_gate;

/* true when the gate passes. why receives what was seen, e.g. "status 200,
 * lag_seconds 0.2 <= 1" or "status 503, expected 200" (always set). */
bool gate_judge(const struct plan_gate *gate, const char *response, size_t len, char *why,
		size_t whylen);

/* The number at a dotted path in a JSON text. false when the text is not
 * JSON (within 16 levels), the path is absent or holds no number. */
bool gate_json_number(const char *json, size_t len, const char *path, double *out);

#endif
