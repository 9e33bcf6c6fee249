/* SPDX-License-Identifier: Apache-2.0 */
/* watcher: reloads the plan file when it changes, keeping the last good plan.
 *
 * Runs on the main thread's loop. Notices in-place writes, rename-over,
 * symlink swaps (Kubernetes ConfigMap ..data) and delete-then-recreate, and
 * hands a valid new plan to the stepper (stepper.h) within one second,
 * which decides what goes into force. A plan that fails to load is logged
 * as file:line:column: reason, journaled and changes nothing; each rejected
 * reload is reported to metrics.h. */
#ifndef CUTOVER_WATCHER_H
#define CUTOVER_WATCHER_H

#include <ev.h>

struct watcher;
struct stepper;

/* path and stepper must outlive the watcher. Returns NULL only on
 * allocation failure. */
struct watcher *watcher_start(struct ev_loop *loop, const char *path, struct stepper *stepper);

/* Re-reads the file now (SIGHUP). */
void watcher_reload(struct watcher *w);

void watcher_stop(struct watcher *w);

#endif
