/* watcher: reloads the plan file when it changes, keeping the last good plan.
 *
 * Runs on the main thread's loop. Notices in-place writes, rename-over,
 * symlink swaps (Kubernetes ConfigMap ..data) and delete-then-recreate, and
 * applies a valid new plan within one second through runtime_publish(). A
 * plan that fails to load is logged as file:line:column: reason and changes
 * nothing. Every phase change is logged once: from, to, when, which file.
 * Each accepted or rejected reload is reported to metrics.h. */
#ifndef CUTOVER_WATCHER_H
#define CUTOVER_WATCHER_H

#include <ev.h>

struct watcher;

/* path must outlive the watcher. Returns NULL only on allocation failure. */
struct watcher *watcher_start(struct ev_loop *loop, const char *path);

/* Re-reads the file now (SIGHUP). */
void watcher_reload(struct watcher *w);

void watcher_stop(struct watcher *w);

#endif
