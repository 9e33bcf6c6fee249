/* SPDX-License-Identifier: Apache-2.0 */
/* fallback_runtime: hands the fallback map to a running HAProxy through its
 * admin socket (Runtime API, HAProxy 2.4+), so HAProxy uses the new map at
 * once, without a reload:
 *     show map                      find the map loaded from .../cutover.map
 *     prepare map #<id>             a new, empty version
 *     add map @<ver> #<id> <<       the entries, in order, in payloads
 *     commit map @<ver> #<id>       the new version replaces the old, atomically
 * and lists HAProxy's backends (show backend) to name plan backends it lacks.
 * Blocking, each command bounded by a timeout: main thread only. No libev. */
#ifndef CUTOVER_FALLBACK_RUNTIME_H
#define CUTOVER_FALLBACK_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

struct plan;

/* Installs plan's map in the HAProxy whose admin socket is socket_path. On
 * failure returns false with the reason in err; HAProxy keeps its map. */
bool fallback_runtime_push(const struct plan *plan, const char *socket_path, char *err,
			   size_t errlen);

/* Writes to missing (comma-separated) each plan backend with no
 * cutover_<name> in that HAProxy; "" when none lacks. False when HAProxy
 * could not be asked (reason in missing). */
bool fallback_runtime_missing_backends(const struct plan *plan, const char *socket_path,
				       char *missing, size_t cap);

#endif
