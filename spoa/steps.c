/* SPDX-License-Identifier: Apache-2.0 */
/* steps: which phase comes next and which doors a move crosses. */
#include "steps.h"

#include "plan.h"

int steps_next(int effective, int desired)
{
	return desired > effective ? effective + 1 : desired < effective ? effective - 1 : effective;
}

int steps_door_refusal(const struct plan *plan, int effective, int desired, bool *overridden)
{
	*overridden = false;
	/* Going back from effective to desired leaves phases desired+1 ..
	 * effective: each one-way phase among them is a door crossed. */
	for (int i = effective; i > desired; i--) {
		if (!plan_phase_one_way(plan, i))
			continue;
		if (plan_override_back_across(plan) != i)
			return i;
		*overridden = true;
	}
	return -1;
}
