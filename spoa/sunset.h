/* SPDX-License-Identifier: Apache-2.0 */
/* sunset: what a deprecated route becomes once its sunset has passed.
 * Pure: the time is the caller's (the agent's loop clock, --explain's
 * --now); no I/O, no clock.
 *
 * From its `deprecation: sunset:` on (docs/plan.md, Deprecation), a route
 * that the phase still routes as deprecated is gone: the proxy answers 410
 * itself, its link the successor the action names (its rewrite), instead of
 * sending the request to the backend. */
#ifndef CUTOVER_SUNSET_H
#define CUTOVER_SUNSET_H

#include <stdbool.h>
#include <stdint.h>

#include "router.h"

struct plan;

/* True when d is a routed (status 0), deprecated decision of plan made at
 * now (seconds since the epoch) at or after its route's sunset. */
bool sunset_passed(const struct plan *plan, const struct decision *d, int64_t now);

/* Turns such a decision into the 410: no backend; the rewrite becomes the
 * link, still to be written when rw is given (router_match's), already
 * written when d->path is set (router_decide's). Route, phase and
 * deprecation are kept. */
void sunset_gone(struct decision *d, struct rewrite *rw);

#endif
