/* SPDX-License-Identifier: Apache-2.0 */
/* runtime: the plan in force, shared by every thread.
 *
 * Each published plan lives in a snapshot that counts its references: one
 * for runtime itself while the snapshot is current, one per acquire. The
 * per-frame path only reads the generation (one atomic load); acquire and
 * release take a mutex, and workers call them only when the generation
 * moved, so the lock is off the hot path. A snapshot that is no longer
 * current is freed, with its plan, when its last reference is released. */
#include "runtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "log.h"
#include "plan.h"

struct snapshot {
	struct plan *plan;
	unsigned long refs;    /* guarded by lock */
	struct snapshot *next; /* every snapshot still alive, current first */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *live;        /* guarded by lock; live == current */
static _Atomic uint64_t generation;  /* 0 before runtime_init */

/* A snapshot of plan holding runtime's reference. Allocation failure here
 * leaves no way to serve the plan, so it is fatal. */
static struct snapshot *snapshot_new(struct plan *plan)
{
	struct snapshot *s = malloc(sizeof(*s));

	if (s == NULL) {
		log_error("runtime: out of memory installing a plan");
		abort();
	}
	s->plan = plan;
	s->refs = 1;
	s->next = NULL;
	return s;
}

/* Drops one reference of *link's snapshot; unlinks and frees it at zero.
 * Called with lock held. */
static void unref(struct snapshot **link)
{
	struct snapshot *s = *link;

	if (--s->refs > 0)
		return;
	*link = s->next;
	plan_free(s->plan);
	free(s);
}

void runtime_init(struct plan *first)
{
	struct snapshot *s = snapshot_new(first);

	pthread_mutex_lock(&lock);
	s->next = live;
	live = s;
	pthread_mutex_unlock(&lock);
	atomic_store_explicit(&generation, 1, memory_order_release);
}

void runtime_publish(struct plan *next)
{
	struct snapshot *s = snapshot_new(next);

	pthread_mutex_lock(&lock);
	s->next = live;
	live = s;
	/* The previous current is now second: drop runtime's reference to it;
	 * readers that still hold it keep it alive. */
	if (s->next != NULL)
		unref(&s->next);
	pthread_mutex_unlock(&lock);
	/* Bumped after the swap, so a worker that sees the new generation and
	 * acquires gets the new plan. */
	atomic_fetch_add_explicit(&generation, 1, memory_order_release);
}

uint64_t runtime_generation(void)
{
	return atomic_load_explicit(&generation, memory_order_acquire);
}

const struct plan *runtime_acquire(void)
{
	struct plan *plan;

	pthread_mutex_lock(&lock);
	live->refs++;
	plan = live->plan;
	pthread_mutex_unlock(&lock);
	return plan;
}

void runtime_release(const struct plan *plan)
{
	struct snapshot **link;

	if (plan == NULL)
		return;
	pthread_mutex_lock(&lock);
	for (link = &live; *link != NULL; link = &(*link)->next) {
		if ((*link)->plan == plan) {
			unref(link);
			break;
		}
	}
	pthread_mutex_unlock(&lock);
}

void runtime_shutdown(void)
{
	pthread_mutex_lock(&lock);
	if (live != NULL)
		unref(&live);
	if (live != NULL)
		log_warn("runtime: a plan is still referenced at shutdown");
	pthread_mutex_unlock(&lock);
}
