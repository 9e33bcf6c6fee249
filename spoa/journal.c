/* SPDX-License-Identifier: Apache-2.0 */
/* journal: write + fsync on an O_APPEND file. */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct journal {
	int fd;
	char *path;
};

struct journal *journal_open(const char *path, char *err, size_t errlen)
{
	struct journal *j = calloc(1, sizeof(*j));

	if (!j || !(j->path = strdup(path))) {
		free(j);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	j->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (j->fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(j->path);
		free(j);
		return NULL;
	}
	return j;
}

bool journal_append(struct journal *j, const char *line, size_t len)
{
	char *rec = malloc(len + 1);
	ssize_t n;

	if (!rec) {
		log_error("journal %s: out of memory, a record is lost", j->path);
		return false;
	}
	memcpy(rec, line, len);
	rec[len] = '\n';
	n = write(j->fd, rec, len + 1);
	free(rec);
	if (n != (ssize_t)(len + 1) || fsync(j->fd) != 0) {
		log_error("journal %s: cannot append: %s", j->path,
			  n < 0 ? strerror(errno) : "short write");
		return false;
	}
	return true;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	close(j->fd);
	free(j->path);
	free(j);
}
