/* SPDX-License-Identifier: Apache-2.0 */
/* stepper: the effective phase, its gates, its journal and its state file.
 *
 * The stepper keeps the bytes of the file version in force and a private
 * plan built from them (the model, never published), which it reads to
 * decide; each publish builds a fresh plan from the same bytes with its
 * phase set to the effective one, since a published plan belongs to
 * runtime. A new file version cancels the step being checked; checking
 * starts again from the first gate of the step the new version asks for. */
#include "stepper.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fallback_writer.h"
#include "gate_http.h"
#include "gate_judge.h"
#include "journal.h"
#include "json_out.h"
#include "log.h"
#include "metrics.h"
#include "plan.h"
#include "runtime.h"
#include "steps.h"

#define WHY_MAX 200

struct version {
	char *data;
	size_t len;
	struct plan *model;
	struct plan_file_facts facts;
};

struct gate_result {
	bool ok;
	char why[WHY_MAX];
};

struct stepper {
	struct ev_loop *loop;
	const char *path;
	char *state_file, *state_tmp; /* NULL: no state directory */
	struct journal *journal;      /* NULL: none */
	struct version cur;
	int effective;                /* index in cur.model */
	double entered;               /* Unix time the effective phase was entered */
	/* The step being checked: target is -1 when there is none. */
	int target;
	int gate;
	bool held;                    /* this step's hold is logged and journaled */
	struct gate_result results[PLAN_MAX_GATES];
	ev_timer retry;
	ev_idle kick;                 /* starts checking from the loop */
	struct gate_http *probe;
};

/* ---- time and text ---- */

static void iso_time(double t, char *buf, size_t len)
{
	time_t sec = (time_t)t;
	struct tm tm;
	char day[32];

	gmtime_r(&sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", day, (int)((t - (double)sec) * 1000));
}

static double ts_seconds(const struct timespec *ts)
{
	return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

static unsigned number(const struct plan *p, int phase)
{
	return plan_phase_number(p, phase);
}

static int phase_by_number(const struct plan *p, unsigned n)
{
	for (int i = 0; i < plan_phase_count(p); i++)
		if (plan_phase_number(p, i) == n)
			return i;
	return -1;
}

/* ---- the journal ---- */

/* Starts a record: time, event, the file version's identity. */
static void record_open(struct json_out *j, const char *event, const struct version *v)
{
	char when[40];

	json_out_open(j, '{');
	iso_time(ev_time(), when, sizeof(when));
	json_out_key(j, "time");
	json_out_str(j, when);
	json_out_key(j, "event");
	json_out_str(j, event);
	if (!v)
		return;
	json_out_key(j, "plan");
	json_out_str(j, plan_hash(v->model));
	iso_time(ts_seconds(&v->facts.mtime), when, sizeof(when));
	json_out_key(j, "file_uid");
	json_out_uint(j, (unsigned long long)v->facts.uid);
	json_out_key(j, "file_mtime");
	json_out_str(j, when);
}

static void record_phase(struct json_out *j, const char *key, const struct plan *p, int phase)
{
	char name[96];

	json_out_key(j, key);
	json_out_uint(j, number(p, phase));
	snprintf(name, sizeof(name), "%s_name", key);
	json_out_key(j, name);
	json_out_str(j, plan_phase_name(p, phase));
}

/* The routes whose action differs between phase a of plan pa and phase b
 * of plan pb, matched by name (inheritance included: actions are the
 * effective ones of each phase). */
static void record_routes(struct json_out *j, const struct plan *pa, int a,
			  const struct plan *pb, int b)
{
	char was[1200], now[1200];

	json_out_key(j, "routes");
	json_out_open(j, '[');
	for (int r = 0; r < plan_route_count(pb); r++) {
		int old = -1;

		for (int i = 0; i < plan_route_count(pa) && old < 0; i++)
			if (strcmp(plan_route_name(pa, i), plan_route_name(pb, r)) == 0)
				old = i;
		plan_route_action_text(pb, b, r, now, sizeof(now));
		if (old >= 0)
			plan_route_action_text(pa, a, old, was, sizeof(was));
		if (old >= 0 && strcmp(was, now) == 0)
			continue;
		json_out_open(j, '{');
		json_out_key(j, "route");
		json_out_str(j, plan_route_name(pb, r));
		json_out_key(j, "from");
		json_out_str(j, old >= 0 ? was : NULL);
		json_out_key(j, "to");
		json_out_str(j, now);
		json_out_close(j, '}');
	}
	for (int i = 0; i < plan_route_count(pa); i++) {
		bool kept = false;

		for (int r = 0; r < plan_route_count(pb) && !kept; r++)
			kept = strcmp(plan_route_name(pa, i), plan_route_name(pb, r)) == 0;
		if (kept)
			continue;
		plan_route_action_text(pa, a, i, was, sizeof(was));
		json_out_open(j, '{');
		json_out_key(j, "route");
		json_out_str(j, plan_route_name(pa, i));
		json_out_key(j, "from");
		json_out_str(j, was);
		json_out_key(j, "to");
		json_out_str(j, NULL);
		json_out_close(j, '}');
	}
	json_out_close(j, ']');
}

static void record_gates(struct json_out *j, const struct stepper *s, int upto)
{
	json_out_key(j, "gates");
	json_out_open(j, '[');
	for (int g = 0; g < upto; g++) {
		json_out_open(j, '{');
		json_out_key(j, "gate");
		json_out_str(j, plan_phase_gate(s->cur.model, s->target, g)->label);
		json_out_key(j, "ok");
		json_out_bool(j, s->results[g].ok);
		json_out_key(j, "detail");
		json_out_str(j, s->results[g].why);
		json_out_close(j, '}');
	}
	json_out_close(j, ']');
}

static void record_close(struct stepper *s, struct json_out *j)
{
	size_t len;
	char *line;

	json_out_close(j, '}');
	line = json_out_done(j, &len);
	if (s->journal && line)
		journal_append(s->journal, line, len);
	else if (s->journal)
		log_error("journal: out of memory, a record is lost");
	free(line);
}

/* ---- the state file ---- */

static void state_save(const struct stepper *s)
{
	struct json_out j = { 0 };
	size_t len;
	char *text;
	int fd;

	if (!s->state_file)
		return;
	json_out_open(&j, '{');
	json_out_key(&j, "phase");
	json_out_uint(&j, number(s->cur.model, s->effective));
	json_out_key(&j, "name");
	json_out_str(&j, plan_phase_name(s->cur.model, s->effective));
	json_out_key(&j, "since");
	json_out_num(&j, s->entered);
	json_out_key(&j, "plan");
	json_out_str(&j, plan_hash(s->cur.model));
	json_out_close(&j, '}');
	text = json_out_done(&j, &len);
	fd = text ? open(s->state_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640) : -1;
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0 ||
	    rename(s->state_tmp, s->state_file) != 0)
		log_error("state %s: cannot save the effective phase: %s", s->state_file,
			  strerror(errno));
	if (fd >= 0)
		close(fd);
	free(text);
}

/* The saved effective phase number and when it was entered; false when
 * there is none. */
static bool state_load(const struct stepper *s, unsigned *phase, double *since)
{
	char text[1024];
	double n;
	ssize_t len;
	int fd;

	if (!s->state_file || (fd = open(s->state_file, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	len = read(fd, text, sizeof(text));
	close(fd);
	if (len <= 0 || !gate_json_number(text, (size_t)len, "phase", &n) || n < 0 ||
	    !gate_json_number(text, (size_t)len, "since", since)) {
		log_warn("state %s: unreadable, ignored", s->state_file);
		return false;
	}
	*phase = (unsigned)n;
	return true;
}

/* ---- publishing ---- */

/* A fresh plan from the version in force, at phase: what runtime gets. */
static struct plan *build_at(const struct stepper *s, int phase)
{
	char err[512];
	struct plan *p = plan_load_buffer(s->path, s->cur.data, s->cur.len, err, sizeof(err));

	if (!p) { /* the same bytes loaded a moment ago */
		log_error("stepper: %s", err);
		abort();
	}
	plan_set_phase(p, phase);
	return p;
}

/* p goes into force: to the workers, then to HAProxy's fallback map, both
 * at p's phase, the effective one. */
static void publish(struct plan *p)
{
	runtime_publish(p);
	fallback_writer_publish(p); /* p lives on: runtime frees it only on the next publish */
}

static void show_waiting(const struct stepper *s)
{
	int g = s->gate;

	if (s->target < 0 || !s->held)
		metrics_phase_waiting(NULL, NULL);
	else
		metrics_phase_waiting(plan_phase_gate(s->cur.model, s->target, g)->label,
				      s->results[g].why);
}

static void cancel_check(struct stepper *s)
{
	gate_http_cancel(s->probe);
	s->probe = NULL;
	ev_timer_stop(s->loop, &s->retry);
	ev_idle_stop(s->loop, &s->kick);
	s->target = -1;
	s->held = false;
	metrics_phase_waiting(NULL, NULL);
}

static void check_gate(struct stepper *s);

static void kick_soon(struct stepper *s)
{
	ev_idle_start(s->loop, &s->kick);
}

static void journal_step(struct stepper *s, int from, int to, int gates)
{
	const struct plan *m = s->cur.model;
	struct json_out j = { 0 };

	record_open(&j, "step", &s->cur);
	record_phase(&j, "from", m, from);
	record_phase(&j, "to", m, to);
	record_phase(&j, "desired", m, plan_desired_phase(m));
	record_gates(&j, s, gates);
	record_routes(&j, m, from, m, to);
	record_close(s, &j);
}

/* Phases after at, towards the desired one, that have no gate are entered
 * at the same instant as at, in one publish; each is a step of its own in
 * the journal. Returns the last of them (at when there is none). */
static int ungated_run(struct stepper *s, int at)
{
	const struct plan *m = s->cur.model;
	int desired = plan_desired_phase(m);

	while (at != desired && plan_phase_gate_count(m, steps_next(at, desired)) == 0) {
		journal_step(s, at, steps_next(at, desired), 0);
		at = steps_next(at, desired);
	}
	return at;
}

/* Traffic enters s->target: every gate passed. */
static void enter(struct stepper *s)
{
	const struct plan *m = s->cur.model;
	int from = s->effective, to = s->target, desired = plan_desired_phase(m);
	struct plan *p;

	journal_step(s, from, to, plan_phase_gate_count(m, to));
	to = ungated_run(s, to);
	p = build_at(s, to);
	metrics_phase_step(p);
	publish(p);
	s->effective = to;
	s->entered = ev_time();
	state_save(s);
	log_event(LOGL_INFO, "phase_change", LOG_UINT("from", number(m, from)),
		  LOG_STR("from_name", plan_phase_name(m, from)), LOG_UINT("to", number(m, to)),
		  LOG_STR("to_name", plan_phase_name(m, to)), LOG_STR("plan", s->path),
		  LOG_UINT("generation", runtime_generation()),
		  LOG_UINT("desired", number(m, desired)),
		  LOG_UINT("gates", (unsigned long long)plan_phase_gate_count(m, s->target)));
	s->target = -1;
	s->held = false;
	metrics_phase_waiting(NULL, NULL);
	kick_soon(s);
}

/* The gate being checked failed: hold the step, retry from the first gate
 * after delay seconds. */
static void hold(struct stepper *s, double delay)
{
	const struct plan *m = s->cur.model;
	const struct plan_gate *g = plan_phase_gate(m, s->target, s->gate);

	if (!s->held) {
		struct json_out j = { 0 };

		s->held = true;
		log_event(LOGL_WARN, "phase_held", LOG_UINT("effective", number(m, s->effective)),
			  LOG_UINT("next", number(m, s->target)),
			  LOG_STR("next_name", plan_phase_name(m, s->target)),
			  LOG_UINT("desired", number(m, plan_desired_phase(m))),
			  LOG_STR("gate", g->label), LOG_STR("why", s->results[s->gate].why));
		record_open(&j, "held", &s->cur);
		record_phase(&j, "from", m, s->effective);
		record_phase(&j, "to", m, s->target);
		record_phase(&j, "desired", m, plan_desired_phase(m));
		record_gates(&j, s, s->gate + 1);
		record_close(s, &j);
	}
	show_waiting(s);
	ev_timer_set(&s->retry, delay, 0.);
	ev_timer_start(s->loop, &s->retry);
}

static void gate_done(struct stepper *s, bool ok, double retry_in)
{
	if (!ok) {
		hold(s, retry_in);
		return;
	}
	s->gate++;
	check_gate(s);
}

static void on_probe(void *arg, const char *resp, size_t len, const char *error)
{
	struct stepper *s = arg;
	const struct plan_gate *g = plan_phase_gate(s->cur.model, s->target, s->gate);
	struct gate_result *r = &s->results[s->gate];

	s->probe = NULL;
	if (error) {
		snprintf(r->why, sizeof(r->why), "%s", error);
		r->ok = false;
	} else {
		r->ok = gate_judge(g, resp, len, r->why, sizeof(r->why));
	}
	gate_done(s, r->ok, g->interval);
}

/* Checks gate s->gate of the step to s->target, or enters when none is left. */
static void check_gate(struct stepper *s)
{
	const struct plan *m = s->cur.model;
	const struct plan_gate *g;
	struct gate_result *r;
	double stayed;

	if (s->gate == plan_phase_gate_count(m, s->target)) {
		enter(s);
		return;
	}
	g = plan_phase_gate(m, s->target, s->gate);
	r = &s->results[s->gate];
	if (g->kind == PLAN_GATE_MIN_TIME) {
		stayed = ev_time() - s->entered;
		r->ok = stayed >= g->seconds;
		snprintf(r->why, sizeof(r->why), "%.1fs of %gs in phase %u", stayed < 0 ? 0 : stayed,
			 g->seconds, number(m, s->effective));
		gate_done(s, r->ok, r->ok ? 0 : g->seconds - stayed + 0.01);
		return;
	}
	s->probe = gate_http_get(s->loop, g->host, g->port, g->path, g->timeout, on_probe, s);
	if (!s->probe) {
		snprintf(r->why, sizeof(r->why), "out of memory");
		r->ok = false;
		gate_done(s, false, g->interval);
	}
}

/* Starts checking the next step, if the effective phase is not the desired. */
static void on_kick(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct stepper *s = w->data;
	int desired = plan_desired_phase(s->cur.model), door;
	bool used;
	char label[96];

	(void)revents;
	ev_idle_stop(loop, w);
	if (s->target >= 0 || s->effective == desired)
		return;
	/* Only a plan served without a choice (at start) can ask for this. */
	door = steps_door_refusal(s->cur.model, s->effective, desired, &used);
	if (door >= 0) {
		snprintf(label, sizeof(label), "one-way phase %u", number(s->cur.model, door));
		metrics_phase_waiting(label, "going back across it needs the plan's override");
		return;
	}
	s->target = steps_next(s->effective, desired);
	s->gate = 0;
	s->held = false;
	check_gate(s);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct stepper *s = w->data;

	(void)loop;
	(void)revents;
	s->gate = 0;
	check_gate(s);
}

/* ---- what the watcher hands over ---- */

static bool keep(const struct stepper *s, struct version *v, const char *data, size_t len,
		 const struct plan_file_facts *facts)
{
	char err[512];

	v->data = malloc(len ? len : 1);
	v->model = v->data ? plan_load_buffer(s->path, data, len, err, sizeof(err)) : NULL;
	if (!v->model) {
		free(v->data);
		return false;
	}
	memcpy(v->data, data, len);
	v->len = len;
	v->facts = *facts;
	return true;
}

static void drop(struct version *v)
{
	free(v->data);
	plan_free(v->model);
	memset(v, 0, sizeof(*v));
}

struct stepper *stepper_new(struct ev_loop *loop, const char *path, const char *state_dir,
			    const char *journal, char *err, size_t errlen)
{
	struct stepper *s = calloc(1, sizeof(*s));

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = loop;
	s->path = path;
	s->target = -1;
	ev_timer_init(&s->retry, on_retry, 1., 0.);
	s->retry.data = s;
	ev_idle_init(&s->kick, on_kick);
	s->kick.data = s;
	if (state_dir) {
		struct stat st;
		size_t n = strlen(state_dir) + 32;

		if (stat(state_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "--state-dir %s: not a directory", state_dir);
			free(s);
			return NULL;
		}
		s->state_file = malloc(n);
		s->state_tmp = malloc(n);
		if (!s->state_file || !s->state_tmp) {
			snprintf(err, errlen, "out of memory");
			stepper_free(s);
			return NULL;
		}
		snprintf(s->state_file, n, "%s/effective.json", state_dir);
		snprintf(s->state_tmp, n, "%s/.effective.json.tmp", state_dir);
	}
	if (journal && !(s->journal = journal_open(journal, err, errlen))) {
		stepper_free(s);
		return NULL;
	}
	return s;
}

/* A refused version: logged, journaled, counted; the plan in force stays. */
static void refuse(struct stepper *s, struct version *v, const char *why)
{
	struct json_out j = { 0 };
	const struct plan *m = s->cur.model;

	log_event(LOGL_ERROR, "plan_refused", LOG_STR("reason", why),
		  LOG_UINT("effective", number(m, s->effective)),
		  LOG_STR("effective_name", plan_phase_name(m, s->effective)),
		  LOG_UINT("asked", number(v->model, plan_desired_phase(v->model))),
		  LOG_STR("plan", s->path));
	record_open(&j, "refused", v);
	record_phase(&j, "from", m, s->effective);
	record_phase(&j, "desired", v->model, plan_desired_phase(v->model));
	json_out_key(&j, "reason");
	json_out_str(&j, why);
	record_close(s, &j);
	metrics_plan_rejected(ev_time());
}

/* Whether v may go into force with the live phase (number live) at its
 * index *e; why not in why. door_passed is the number of the last one-way
 * phase at or before the live one in the plan in force, or -1. */
static bool allowed(const struct version *v, unsigned live, long door_passed, int *e,
		    bool *overridden, char *why, size_t whylen)
{
	const struct plan *p = v->model;
	int door;

	*e = phase_by_number(p, live);
	if (*e < 0 && door_passed >= 0) {
		snprintf(why, whylen, "the live phase %u is not in the new plan, and live traffic "
			 "is past one-way phase %ld", live, door_passed);
		return false;
	}
	if (*e < 0) { /* another migration: taken at its own phase */
		*e = plan_desired_phase(p);
		*overridden = false;
		return true;
	}
	door = steps_door_refusal(p, *e, plan_desired_phase(p), overridden);
	if (door >= 0) {
		snprintf(why, whylen, "phase %u %s is one-way and live traffic is at phase %u: "
			 "going back to phase %u needs override: { allow_back_across: %u, "
			 "reason: ... }", number(p, door), plan_phase_name(p, door), live,
			 number(p, plan_desired_phase(p)), number(p, door));
		return false;
	}
	return true;
}

static void note_override(struct stepper *s, const struct version *v, int e)
{
	struct json_out j = { 0 };
	const struct plan *p = v->model;
	int door = plan_override_back_across(p);

	log_event(LOGL_WARN, "door_override", LOG_UINT("door", number(p, door)),
		  LOG_STR("door_name", plan_phase_name(p, door)),
		  LOG_STR("reason", plan_override_reason(p)), LOG_UINT("effective", number(p, e)),
		  LOG_UINT("desired", number(p, plan_desired_phase(p))));
	record_open(&j, "override", v);
	record_phase(&j, "from", p, e);
	record_phase(&j, "desired", p, plan_desired_phase(p));
	json_out_key(&j, "door");
	json_out_uint(&j, number(p, door));
	json_out_key(&j, "reason");
	json_out_str(&j, plan_override_reason(p));
	record_close(s, &j);
}

void stepper_first(struct stepper *s, struct plan *first, const char *data, size_t len,
		   const struct plan_file_facts *facts)
{
	unsigned saved;
	double since;
	bool used;
	char why[512];
	int e;
	struct json_out j = { 0 };

	if (!keep(s, &s->cur, data, len, facts)) {
		log_error("stepper: out of memory");
		abort();
	}
	s->effective = plan_desired_phase(s->cur.model);
	s->entered = ev_time();
	if (state_load(s, &saved, &since)) {
		if (phase_by_number(s->cur.model, saved) < 0) {
			log_warn("state %s: saved phase %u is not in the plan; starting at the "
				 "plan's phase", s->state_file, saved);
		} else if (allowed(&s->cur, saved, -1, &e, &used, why, sizeof(why))) {
			s->effective = e;
			s->entered = since;
			if (used)
				note_override(s, &s->cur, e);
		} else {
			/* Nothing else to serve: this plan, held at the saved phase. */
			s->effective = e;
			s->entered = since;
			refuse(s, &s->cur, why);
		}
	}
	plan_set_phase(first, s->effective);
	log_event(LOGL_INFO, "phase_start", LOG_UINT("effective", number(first, s->effective)),
		  LOG_STR("effective_name", plan_phase_name(first, s->effective)),
		  LOG_UINT("desired", number(first, plan_desired_phase(first))),
		  LOG_STR("plan", s->path));
	record_open(&j, "start", &s->cur);
	record_phase(&j, "effective", first, s->effective);
	record_phase(&j, "desired", first, plan_desired_phase(first));
	record_close(s, &j);
	state_save(s);
	kick_soon(s);
}

/* The last one-way phase live traffic has entered, by number, or -1. */
static long door_passed(const struct stepper *s)
{
	for (int i = s->effective; i >= 0; i--)
		if (plan_phase_one_way(s->cur.model, i))
			return (long)number(s->cur.model, i);
	return -1;
}

void stepper_offer(struct stepper *s, struct plan *next, const char *data, size_t len,
		   const struct plan_file_facts *facts)
{
	struct version v = { 0 }, old;
	unsigned live = number(s->cur.model, s->effective);
	char why[512];
	bool used;
	int e, from = s->effective;
	struct json_out j = { 0 };

	if (!keep(s, &v, data, len, facts)) {
		plan_free(next);
		log_error("stepper: out of memory: the new plan is ignored");
		return;
	}
	if (!allowed(&v, live, door_passed(s), &e, &used, why, sizeof(why))) {
		refuse(s, &v, why);
		drop(&v);
		plan_free(next);
		return;
	}
	cancel_check(s);
	if (used)
		note_override(s, &v, e);
	old = s->cur;
	s->cur = v;
	s->effective = e;
	record_open(&j, "edit", &s->cur);
	record_phase(&j, "effective", v.model, e);
	record_phase(&j, "desired", v.model, plan_desired_phase(v.model));
	record_routes(&j, old.model, from, v.model, e);
	record_close(s, &j);
	s->effective = ungated_run(s, e);
	plan_set_phase(next, s->effective);
	metrics_plan_applied(next, true, ev_time());
	publish(next);
	if (s->effective != e) {
		s->entered = ev_time();
		state_save(s);
		log_event(LOGL_INFO, "phase_change", LOG_UINT("from", live),
			  LOG_STR("from_name", plan_phase_name(v.model, e)),
			  LOG_UINT("to", number(v.model, s->effective)),
			  LOG_STR("to_name", plan_phase_name(v.model, s->effective)),
			  LOG_STR("plan", s->path), LOG_UINT("generation", runtime_generation()),
			  LOG_UINT("desired", number(v.model, plan_desired_phase(v.model))),
			  LOG_UINT("gates", 0));
	} else {
		log_event(LOGL_INFO, "plan_reloaded", LOG_UINT("phase", live),
			  LOG_STR("phase_name", plan_phase_name(v.model, e)),
			  LOG_STR("plan", s->path), LOG_UINT("generation", runtime_generation()),
			  LOG_UINT("desired", number(v.model, plan_desired_phase(v.model))),
			  LOG_STR("desired_name",
				  plan_phase_name(v.model, plan_desired_phase(v.model))));
	}
	drop(&old);
	kick_soon(s);
}

void stepper_rejected(struct stepper *s, const char *reason)
{
	struct json_out j = { 0 };

	record_open(&j, "rejected", NULL);
	record_phase(&j, "effective", s->cur.model, s->effective);
	json_out_key(&j, "reason");
	json_out_str(&j, reason);
	record_close(s, &j);
}

void stepper_free(struct stepper *s)
{
	if (!s)
		return;
	if (s->cur.model)
		cancel_check(s);
	journal_close(s->journal);
	drop(&s->cur);
	free(s->state_file);
	free(s->state_tmp);
	free(s);
}
