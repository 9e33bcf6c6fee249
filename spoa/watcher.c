/* SPDX-License-Identifier: Apache-2.0 */
/* watcher: reloads the plan file when it changes, keeping the last good plan.
 *
 * A change is any difference in the file's signature: device, inode, size,
 * modification and change times (so a chmod that makes it readable counts)
 * and the path it resolves to. That covers in-place writes, rename-over,
 * symlink swaps (the ConfigMap ..data link moves, so the resolved path and
 * inode change) and delete-then-recreate. Two triggers
 * look at it: ev_stat (inotify where libev has it) for a quick answer, and a
 * periodic timer that catches whatever ev_stat misses, such as a swap
 * through an intermediate symlink.
 *
 * A file modified within the last SETTLE seconds is loaded only once it has
 * been quiet that long, so a plan written in place in several writes is
 * read whole. A file is loaded once per signature: a rejected file that does
 * not change is not loaded, nor logged, again. SIGHUP forces a load. */
#include "watcher.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "plan.h"
#include "runtime.h"
#include "stepper.h"

#define POLL_INTERVAL 0.25 /* seconds between signature checks */
#define SETTLE 0.1         /* seconds a file must be unmodified to be read */

/* What identifies one version of the file. */
struct signature {
	int err; /* 0, or the errno that made the file unreadable */
	dev_t dev;
	ino_t ino;
	uid_t uid; /* the owner, for the journal */
	off_t size;
	struct timespec mtim;
	struct timespec ctim;
	char real[PATH_MAX]; /* the path with every symlink resolved */
};

struct watcher {
	struct ev_loop *loop;
	const char *path;
	struct stepper *stepper;
	ev_stat stat_w;
	ev_timer poll_w;
	ev_timer settle_w;
	bool force;            /* a forced load waits for the file to settle */
	struct signature seen; /* the last version loaded or rejected */
};

static void signature_read(const char *path, struct signature *sig)
{
	struct stat st;

	memset(sig, 0, sizeof(*sig));
	if (stat(path, &st) != 0 || realpath(path, sig->real) == NULL) {
		sig->err = errno != 0 ? errno : ENOENT;
		sig->real[0] = '\0';
		return;
	}
	sig->dev = st.st_dev;
	sig->ino = st.st_ino;
	sig->uid = st.st_uid;
	sig->size = st.st_size;
	sig->mtim = st.st_mtim;
	sig->ctim = st.st_ctim;
}

static bool signature_equal(const struct signature *a, const struct signature *b)
{
	if (a->err != 0 || b->err != 0)
		return a->err == b->err;
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtim.tv_sec == b->mtim.tv_sec &&
	       a->mtim.tv_nsec == b->mtim.tv_nsec &&
	       a->ctim.tv_sec == b->ctim.tv_sec &&
	       a->ctim.tv_nsec == b->ctim.tv_nsec &&
	       strcmp(a->real, b->real) == 0;
}

/* Seconds until the file has been unmodified for SETTLE, or 0 when it has
 * (a modification time in the future counts as settled). */
static double settle_left(const struct signature *sig)
{
	struct timespec now;
	double age;

	clock_gettime(CLOCK_REALTIME, &now);
	age = (double)(now.tv_sec - sig->mtim.tv_sec) +
	      (double)(now.tv_nsec - sig->mtim.tv_nsec) / 1e9;
	if (age < 0 || age >= SETTLE)
		return 0;
	return SETTLE - age;
}

/* Logs why the file was not applied (reason starts with the file name),
 * naming the plan that keeps serving. */
static void reject_plan(struct watcher *w, const char *reason)
{
	const struct plan *cur = runtime_acquire();
	int phase = plan_current_phase(cur);

	log_event(LOGL_ERROR, "plan_rejected", LOG_STR("reason", reason),
		  LOG_UINT("generation", runtime_generation()),
		  LOG_UINT("phase", plan_phase_number(cur, phase)),
		  LOG_STR("phase_name", plan_phase_name(cur, phase)));
	runtime_release(cur);
	metrics_plan_rejected(ev_time());
	stepper_rejected(w->stepper, reason);
}

/* Loads the file if its signature moved since the last version handled (or
 * always, when forced), once it has settled. */
static void check(struct watcher *w)
{
	struct signature now;
	char err[512];
	struct plan *next;
	double wait;
	char *data;
	size_t len;

	if (ev_is_active(&w->settle_w))
		return; /* a load is already scheduled */
	signature_read(w->path, &now);
	if (!w->force && signature_equal(&now, &w->seen))
		return;
	if (now.err == 0 && (wait = settle_left(&now)) > 0) {
		ev_timer_set(&w->settle_w, wait, 0.);
		ev_timer_start(w->loop, &w->settle_w);
		return;
	}
	w->force = false;
	w->seen = now;
	if (now.err != 0) {
		snprintf(err, sizeof(err), "%s: %s", w->path, strerror(now.err));
		reject_plan(w, err);
		return;
	}
	data = plan_read_file(w->path, &len, err, sizeof(err));
	next = data ? plan_load_buffer(w->path, data, len, err, sizeof(err)) : NULL;
	if (next == NULL) {
		reject_plan(w, err);
		free(data);
		return;
	}
	/* Written again while it was read? seen predates the read, so the next
	 * check sees the difference and loads the newer version. */
	stepper_offer(w->stepper, next, data, len,
		      &(struct plan_file_facts){ .uid = now.uid, .mtime = now.mtim });
	free(data);
}

static void on_stat(struct ev_loop *loop, ev_stat *ev, int revents)
{
	(void)loop;
	(void)revents;
	check(ev->data);
}

static void on_timer(struct ev_loop *loop, ev_timer *ev, int revents)
{
	(void)loop;
	(void)revents;
	check(ev->data);
}

struct watcher *watcher_start(struct ev_loop *loop, const char *path, struct stepper *stepper)
{
	struct watcher *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->loop = loop;
	w->path = path;
	w->stepper = stepper;
	signature_read(path, &w->seen);
	ev_stat_init(&w->stat_w, on_stat, path, 0.);
	w->stat_w.data = w;
	ev_timer_init(&w->poll_w, on_timer, POLL_INTERVAL, POLL_INTERVAL);
	w->poll_w.data = w;
	ev_timer_init(&w->settle_w, on_timer, SETTLE, 0.);
	w->settle_w.data = w;
	ev_stat_start(loop, &w->stat_w);
	ev_timer_start(loop, &w->poll_w);
	log_info("watching plan file %s", path);
	return w;
}

void watcher_reload(struct watcher *w)
{
	log_debug("forced reload file=%s", w->path);
	w->force = true;
	check(w);
}

void watcher_stop(struct watcher *w)
{
	if (w == NULL)
		return;
	ev_stat_stop(w->loop, &w->stat_w);
	ev_timer_stop(w->loop, &w->poll_w);
	ev_timer_stop(w->loop, &w->settle_w);
	free(w);
}
