/* SPDX-License-Identifier: Apache-2.0 */
/* stepper: moves the live (effective) phase towards the phase the plan
 * file asks for (desired), one phase at a time, on the main loop.
 *
 * Every plan that goes into force goes through here: the watcher offers
 * each valid version of the file; the stepper refuses a version that would
 * take live traffic back across a one-way phase (steps.h), and otherwise
 * publishes it at the effective phase, so workers, metrics and everything
 * downstream of runtime_publish() see the effective phase while the file
 * says the desired one. A step enters the next phase only once all of its
 * gates pass in one sweep (HTTP gates through gate_http.h, bounded by their
 * timeouts); a failed gate holds the step and is retried after its
 * interval. Steps, refusals and holds are logged, journaled (journal.h) and
 * shown through metrics.h (/metrics, /status). With a state directory the
 * effective phase and when it was entered survive a restart. */
#ifndef CUTOVER_STEPPER_H
#define CUTOVER_STEPPER_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <ev.h>

struct plan;
struct stepper;

/* Where a version of the plan file came from, for the journal. */
struct plan_file_facts {
	uid_t uid;
	struct timespec mtime;
};

/* path is the plan file; state_dir and journal may be NULL (none). NULL
 * with why in err when the journal or the state directory is unusable. */
struct stepper *stepper_new(struct ev_loop *loop, const char *path, const char *state_dir,
			    const char *journal, char *err, size_t errlen);

/* The plan loaded at start from data[0..len): sets its phase to the
 * effective one (the state file's, else the file's own) before the caller
 * hands it to runtime_init(); the stepper keeps data. Steps start once the
 * loop runs. */
void stepper_first(struct stepper *s, struct plan *first, const char *data, size_t len,
		   const struct plan_file_facts *facts);

/* A new valid version of the file (ownership of next moves here). */
void stepper_offer(struct stepper *s, struct plan *next, const char *data, size_t len,
		   const struct plan_file_facts *facts);

/* A version of the file that did not load; reason is the loader's error. */
void stepper_rejected(struct stepper *s, const char *reason);

void stepper_free(struct stepper *s);

#endif
