/* SPDX-License-Identifier: Apache-2.0 */
/* explain: the --check and --explain command-line modes, haproxy -c style. */
#ifndef CUTOVER_EXPLAIN_H
#define CUTOVER_EXPLAIN_H

#include <stdbool.h>
#include <stdio.h>

/* Validates file; prints a short summary (phases, routes, backends) to out,
 * or file:line:column: reason to err. Returns the process exit status. */
int explain_check(const char *file, FILE *out, FILE *err);

/* explain_check, then: every plan backend must have a "backend
 * cutover_<name>" (or "listen") in the HAProxy configuration haproxy_cfg;
 * each one missing is named on err and makes the status 1. */
int explain_check_haproxy(const char *file, const char *haproxy_cfg, FILE *out, FILE *err);

/* --check --json: the plan's phases (in plan order), routes, backends and
 * current phase as one JSON object, or {"valid": false, "error": ...}.
 * Strings are escaped byte by byte (\u00XX for controls and non-ASCII).
 * Returns the process exit status. */
int explain_check_json(const char *file, FILE *out);

/* Writes the fallback map of file's current phase into dir (see
 * fallback.h); prints what it wrote. Returns the process exit status. */
int explain_write_fallback(const char *file, const char *dir, FILE *out, FILE *err);

/* Prints the decision for one request. phase is a number or name, or NULL
 * for the plan's current phase; all_phases prints one line per phase.
 * Returns the process exit status. */
int explain_request(const char *file, const char *method, const char *path,
		    const char *phase, int all_phases, FILE *out, FILE *err);

/* The same for a request with a Host header (host as sent, ":port"
 * allowed; NULL: no Host header), so host routes can be explained. */
int explain_request_host(const char *file, const char *method, const char *path,
			 const char *host, const char *phase, int all_phases, FILE *out,
			 FILE *err);

/* The same, as JSON when json is set: {"method", "path", "host",
 * "decisions": [{"phase", "phase_name", "current", "route", "backend",
 * "status", "path", "link", "deprecated"}, ...]}, null for what is absent;
 * a decision on a route split between clients adds "percent", "side"
 * ("new", "old"), "bucket" (null: no client key) and "forced". */
int explain_request_as(const char *file, const char *method, const char *path,
		       const char *host, const char *phase, int all_phases, bool json, FILE *out,
		       FILE *err);

/* What --explain takes beside FILE METHOD PATH. */
struct explain_request_opts {
	const char *host;   /* the Host header; NULL: none */
	const char *phase;  /* number or name; NULL: the plan's current phase */
	int all_phases;
	bool json;
	const char *client; /* --client: the client's key (a header value, or an
			       address when the plan says key: src); NULL: none */
	const char *side;   /* --side: X-Cutover-Side's value; NULL: none */
};

/* explain_request_as with a client and a side: on a route split between
 * clients, the decision is that client's side (its bucket printed once);
 * without either, the text shows both sides and the JSON the decision of
 * a request without a key (the old side), as the agent makes it. The JSON
 * then also holds "client" and "side" as given. */
int explain_request_with(const char *file, const char *method, const char *path,
			 const struct explain_request_opts *o, FILE *out, FILE *err);

#endif
