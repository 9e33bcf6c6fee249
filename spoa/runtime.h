/* SPDX-License-Identifier: Apache-2.0 */
/* runtime: the plan in force, shared by every thread.
 *
 * The watcher (main thread) publishes; worker threads take their own
 * reference and use it without locks. A worker polls runtime_generation()
 * (one atomic load) before handling a batch of frames and swaps its
 * reference when the generation moved. A plan is freed when its last
 * reference is released, so frames in flight finish on the plan they
 * started with. */
#ifndef CUTOVER_RUNTIME_H
#define CUTOVER_RUNTIME_H

#include <stdint.h>

struct plan;

/* Installs the first plan (ownership moves to runtime). Call once, before
 * any worker starts. */
void runtime_init(struct plan *first);

/* Makes next the plan in force (ownership moves to runtime); the previous
 * one lives on until its readers release it. */
void runtime_publish(struct plan *next);

/* Increases on every publish. Lock-free. */
uint64_t runtime_generation(void);

/* A new reference to the plan in force; never NULL after runtime_init. */
const struct plan *runtime_acquire(void);

/* Drops a reference taken with runtime_acquire. */
void runtime_release(const struct plan *plan);

/* Drops runtime's own reference; call after every worker has released. */
void runtime_shutdown(void);

#endif
