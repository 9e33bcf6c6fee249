/* SPDX-License-Identifier: Apache-2.0 */
/* fallback: the plan's current phase compiled into an HAProxy map, so that
 * HAProxy routes exactly as the agent would when no agent answers.
 *
 * The map is read with map_regm by a fixed block of haproxy/haproxy.cfg (it
 * holds nothing specific to any plan). HAProxy builds one key per request:
 *
 *     <method> SP <host> SP <path>
 *
 * method as sent; host lowercased, without ":port", every byte outside
 * [-.a-z0-9] replaced by '!' (so it holds no space); path as the `path`
 * fetch gives it. Entries are written in the router's order of precedence
 * (most specific pattern first, then routes with a host, then file order),
 * and HAProxy takes the first regex that matches, so the first match is the
 * route the agent picks. The last entry, "^", stands for "no route". Each
 * value packs the whole decision in six fields separated by '|':
 *
 *     phase|route|backend|status|deprecated|path-or-link
 *
 * phase is the number of the plan's current phase (the fallback's memory
 * across HAProxy restarts); route, backend, status (404, 410) and deprecated
 * (the route's deprecation date as the Deprecation header carries it,
 * "@<epoch>") are empty when the agent would not set them; the last field is the
 * rewritten path (with a backend) or the 410's link, built from the request
 * by back-references (\1..\9) to the captures the template uses. It comes
 * last so that a '|' the request's path carries stays in it, where
 * haproxy.cfg's path checks refuse it (400) as the agent does. A route split
 * between clients (a progressive shift) is written with its old side, the
 * action every client had before the split: the map cannot hash a client's
 * key, and the old side is what the plan did before the split began. The
 * map holds no clock and no Sunset or policy: without an agent a deprecated
 * route is routed as its phase says past its sunset too, with its
 * Deprecation and successor Link headers only (docs/plan.md, Deprecation).
 * Pure: writes to the caller's stream, no other I/O. */
#ifndef CUTOVER_FALLBACK_H
#define CUTOVER_FALLBACK_H

#include <stdio.h>

struct plan;

/* File name of the map inside the fallback directory. */
#define FALLBACK_MAP_FILE "cutover.map"

/* Writes the map of plan's current phase to out. Returns the number of
 * entries written (routes + 1), or -1 when out reports a write error. */
int fallback_write_map(const struct plan *plan, FILE *out);

#endif
