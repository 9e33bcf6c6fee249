/* SPDX-License-Identifier: Apache-2.0 */
/* fallback_file: temp file + fsync + rename. */
#include "fallback_file.h"

#include "fallback.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool fallback_write_dir(const struct plan *plan, const char *dir, char *err, size_t errlen)
{
	char final[4096], tmp[4096];
	FILE *f;
	int fd, saved;

	if ((size_t)snprintf(final, sizeof(final), "%s/%s", dir, FALLBACK_MAP_FILE) >=
		    sizeof(final) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, FALLBACK_MAP_FILE) >=
		    sizeof(tmp)) {
		snprintf(err, errlen, "%s: directory name too long", dir);
		return false;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create a file there: %s", dir, strerror(errno));
		return false;
	}
	f = fdopen(fd, "w");
	if (!f) {
		saved = errno;
		close(fd);
		goto fail;
	}
	/* mkstemp makes it 0600; HAProxy may run as another user */
	errno = 0;
	if (fchmod(fd, 0644) != 0 || fallback_write_map(plan, f) < 0 || fsync(fd) != 0) {
		saved = errno ? errno : EIO;
		fclose(f);
		goto fail;
	}
	if (fclose(f) != 0) {
		saved = errno;
		goto fail;
	}
	if (rename(tmp, final) != 0) {
		saved = errno;
		unlink(tmp);
		snprintf(err, errlen, "%s: %s", final, strerror(saved));
		return false;
	}
	return true;
fail:
	unlink(tmp);
	snprintf(err, errlen, "%s: %s", tmp, strerror(saved));
	return false;
}
