/* SPDX-License-Identifier: Apache-2.0 */
/* fallback_file: the fallback map written into a directory atomically, so
 * HAProxy, starting or restarting at any moment, reads either the previous
 * map or the new one, whole. No libev. */
#ifndef CUTOVER_FALLBACK_FILE_H
#define CUTOVER_FALLBACK_FILE_H

#include <stdbool.h>
#include <stddef.h>

struct plan;

/* Writes dir/FALLBACK_MAP_FILE for plan's current phase: a temporary file in
 * dir, flushed to disk, then renamed over the old one. On failure returns
 * false with "path: reason" in err and leaves the old file untouched. */
bool fallback_write_dir(const struct plan *plan, const char *dir, char *err, size_t errlen);

#endif
