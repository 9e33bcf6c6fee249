/* SPDX-License-Identifier: Apache-2.0 */
/* steps: the rules of moving the live phase, pure (no I/O, no clock).
 *
 * The plan file says where the operator wants to be (the desired phase);
 * the agent moves the live (effective) phase there one phase at a time,
 * each step once the gates of the phase it enters pass. Moving back across
 * a one-way phase is refused whole unless the plan's override names it. */
#ifndef CUTOVER_STEPS_H
#define CUTOVER_STEPS_H

#include <stdbool.h>

struct plan;

/* The phase the next step enters (an index): one towards desired, or
 * effective itself when there is nothing to do. */
int steps_next(int effective, int desired);

/* The one-way phase that forbids going from effective back to desired in
 * plan (an index), or -1 when the move is allowed. A door the plan's
 * override names does not forbid it; *overridden then says that the
 * override was used. The door nearest effective is reported first. */
int steps_door_refusal(const struct plan *plan, int effective, int desired, bool *overridden);

#endif
