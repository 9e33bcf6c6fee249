/* fallback_writer: fallback_write_dir with the agent's logging. */
#include "fallback_writer.h"

#include "fallback.h"
#include "fallback_file.h"
#include "log.h"
#include "plan.h"

static const char *fallback_dir;

void fallback_writer_set_dir(const char *dir)
{
	fallback_dir = dir;
}

void fallback_writer_publish(const struct plan *plan)
{
	char err[1024];
	int cur = plan_current_phase(plan);

	if (!fallback_dir)
		return;
	if (!fallback_write_dir(plan, fallback_dir, err, sizeof(err))) {
		log_error("fallback map not written: %s; HAProxy keeps the previous one", err);
		return;
	}
	log_info("fallback map written: %s/%s, phase %u (%s)", fallback_dir, FALLBACK_MAP_FILE,
		 plan_phase_number(plan, cur), plan_phase_name(plan, cur));
}
