/* SPDX-License-Identifier: Apache-2.0 */
/* fallback_writer: fallback_write_dir and fallback_runtime_push, logged. */
#include "fallback_writer.h"

#include "fallback.h"
#include "fallback_file.h"
#include "fallback_runtime.h"
#include "log.h"
#include "plan.h"

#include <errno.h>
#include <unistd.h>

static const char *fallback_dir;
static const char *haproxy_socket;

void fallback_writer_configure(const char *dir, const char *socket_path)
{
	fallback_dir = dir;
	haproxy_socket = socket_path;
}

static bool push(const struct plan *plan, unsigned phase)
{
	char err[1024];

	if (access(haproxy_socket, F_OK) != 0 && errno == ENOENT) {
		/* HAProxy not started yet (or gone): nothing to update */
		log_info("no HAProxy admin socket at %s yet: HAProxy reads the map file when it "
			 "starts", haproxy_socket);
		return true;
	}
	if (!fallback_runtime_push(plan, haproxy_socket, err, sizeof(err))) {
		log_error("fallback map not installed in HAProxy: %s; HAProxy keeps its map", err);
		return false;
	}
	log_info("fallback map installed in HAProxy (%s), phase %u", haproxy_socket, phase);
	if (!fallback_runtime_missing_backends(plan, haproxy_socket, err, sizeof(err)))
		log_error("cannot list HAProxy's backends: %s", err);
	else if (err[0])
		log_warn("HAProxy has no backend cutover_<name> for plan backends: %s; requests "
			 "sent there get 503", err);
	return true;
}

bool fallback_writer_publish(const struct plan *plan)
{
	char err[1024];
	int cur = plan_current_phase(plan);
	unsigned phase = plan_phase_number(plan, cur);
	bool ok = true;

	if (fallback_dir && !(ok = fallback_write_dir(plan, fallback_dir, err, sizeof(err))))
		log_error("fallback map not written: %s; the previous one stays", err);
	else if (fallback_dir)
		log_info("fallback map written: %s/%s, phase %u (%s)", fallback_dir,
			 FALLBACK_MAP_FILE, phase, plan_phase_name(plan, cur));
	if (haproxy_socket && !push(plan, phase))
		ok = false;
	return ok;
}

int fallback_writer_once(const char *dir, const char *socket_path, const char *file)
{
	char err[1024];
	struct plan *plan = plan_load(file, err, sizeof(err));
	bool ok;

	if (!plan) {
		log_error("%s", err);
		return 1;
	}
	fallback_writer_configure(dir, socket_path);
	ok = fallback_writer_publish(plan);
	plan_free(plan);
	return ok ? 0 : 1;
}
