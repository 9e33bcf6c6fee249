/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the plan loader over arbitrary bytes. Any plan it
 * accepts is then asked a few decisions in every phase, so the compiled
 * router is exercised too. Leaks, over-reads and UB are findings. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "plan.h"
#include "router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const paths[] = {
	"/", "/query/api/squids/42", "/command/api/squids", "/query/api/seafoods/1/x",
	"/a/b/c/d/e/f", "/r/x", "//x", "/x/../y", "/s0/item/%2e%2e",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], scratch[256];
	struct plan *p = plan_load_buffer("fuzz.yaml", (const char *)data, size, err, sizeof(err));

	if (!p)
		return 0;
	for (int phase = 0; phase < plan_phase_count(p); phase++) {
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
			struct route_request req = { .method = "GET", .method_len = 3,
						     .path = paths[i], .path_len = strlen(paths[i]),
						     .host = "example.com:80", .host_len = 14 };
			struct decision d;

			router_decide_in(p, phase, &req, &d, scratch, sizeof(scratch));
			if (d.path && (d.path_len >= sizeof(scratch) || d.path[0] != '/'))
				__builtin_trap();
		}
	}
	plan_free(p);
	return 0;
}
