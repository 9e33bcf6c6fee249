/* SPDX-License-Identifier: Apache-2.0 */
/* fallback_runtime: the Runtime API conversation (see the header). */
#include "fallback_runtime.h"

#include "fallback.h"
#include "plan.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define COMMAND_TIMEOUT_MS 2000
#define ANSWER_MAX (1u << 20)
/* HAProxy reads a whole command, payload included, into one buffer of
 * tune.bufsize (16384 by default): entries go in payloads below that. */
#define PAYLOAD_MAX 12000

/* Sends one command (non-interactive: HAProxy answers and closes) and
 * returns the answer (caller frees), or NULL with the reason in err. */
static char *ask(const char *socket_path, const char *cmd, size_t len, char *err,
		 size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t used = 0, sent = 0;
	char *answer = NULL;
	int fd;

	if (strlen(socket_path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long", socket_path);
		return NULL;
	}
	strcpy(sa.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		goto io_error;
	while (sent < len) {
		ssize_t n = send(fd, cmd + sent, len - sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto io_error;
		sent += (size_t)n;
	}
	if (!(answer = malloc(ANSWER_MAX + 1)))
		goto io_error;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, COMMAND_TIMEOUT_MS);
		ssize_t n;

		if (r == 0) {
			snprintf(err, errlen, "%s: no answer within %d ms", socket_path,
				 COMMAND_TIMEOUT_MS);
			goto fail;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (n = read(fd, answer + used, ANSWER_MAX - used)) < 0)
			goto io_error;
		if (n == 0 || (used += (size_t)n) == ANSWER_MAX)
			break;
	}
	answer[used] = '\0';
	close(fd);
	return answer;
io_error:
	snprintf(err, errlen, "%s: %s", socket_path, strerror(errno));
fail:
	free(answer);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* An answer with nothing but blank lines means success. */
static bool silent(const char *answer)
{
	return answer[strspn(answer, "\r\n")] == '\0';
}

/* First line of a failed command's answer, as the reason. */
static bool refused(const char *what, char *answer, char *err, size_t errlen)
{
	const char *line = answer + strspn(answer, "\r\n");

	snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(line, "\r\n"), line);
	free(answer);
	return false;
}

/* The id of the map HAProxy loaded from a file named FALLBACK_MAP_FILE, from
 * "show map" lines such as "0 (/run/fallback/cutover.map) pattern loaded...". */
static long find_map(const char *answer)
{
	size_t n = strlen(FALLBACK_MAP_FILE);

	for (const char *line = answer; *line;) {
		size_t len = strcspn(line, "\n");
		char *end;
		long id = strtol(line, &end, 10);
		const char *open = end != line && end[0] == ' ' && end[1] == '(' ? end + 2 : NULL;
		const char *close = open ? memchr(open, ')', (size_t)(line + len - open)) : NULL;

		/* the file name is FALLBACK_MAP_FILE, alone or after a '/' */
		if (close && (size_t)(close - open) >= n && memcmp(close - n, FALLBACK_MAP_FILE, n) == 0 &&
		    ((size_t)(close - open) == n || close[-(long)n - 1] == '/'))
			return id;
		line += len + (line[len] == '\n');
	}
	return -1;
}

/* Sends the entries of map (the file's text) as "add map" payloads. */
static bool add_entries(const char *socket_path, const char *map, unsigned version, long id,
			char *err, size_t errlen)
{
	char *buf = malloc(PAYLOAD_MAX + 16384); /* a payload, and one more line */
	const char *line = map;
	bool ok = true;

	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	while (ok && *line) {
		size_t head = (size_t)snprintf(buf, 256, "add map @%u #%ld <<\n", version, id);
		size_t len = head;

		while (*line) {
			size_t n = strcspn(line, "\n") + 1;

			/* the next payload takes it; fallback.c bounds a line far below */
			if (line[0] != '#' && len > head && len + n + 1 > PAYLOAD_MAX)
				break;
			if (line[0] != '#') {
				memcpy(buf + len, line, n);
				len += n;
			}
			line += n;
		}
		buf[len++] = '\n'; /* an empty line ends the payload */
		char *answer = ask(socket_path, buf, len, err, errlen);
		ok = answer && (silent(answer) || refused("add map", answer, err, errlen));
		if (answer && ok)
			free(answer);
	}
	free(buf);
	return ok;
}

bool fallback_runtime_push(const struct plan *plan, const char *socket_path, char *err,
			   size_t errlen)
{
	char cmd[128], *map = NULL, *answer;
	size_t maplen = 0;
	unsigned version;
	long id;
	FILE *f = open_memstream(&map, &maplen);

	if (!f || fallback_write_map(plan, f) < 0) {
		if (f)
			fclose(f);
		free(map);
		snprintf(err, errlen, "cannot build the map");
		return false;
	}
	fclose(f);
	if (!(answer = ask(socket_path, "show map\n", 9, err, errlen)))
		goto fail;
	id = find_map(answer);
	free(answer);
	if (id < 0) {
		snprintf(err, errlen, "%s: HAProxy has no map loaded from a file named %s",
			 socket_path, FALLBACK_MAP_FILE);
		goto fail;
	}
	snprintf(cmd, sizeof(cmd), "prepare map #%ld\n", id);
	if (!(answer = ask(socket_path, cmd, strlen(cmd), err, errlen)))
		goto fail;
	if (sscanf(answer + strspn(answer, "\r\n"), "New version created: %u", &version) != 1) {
		refused("prepare map", answer, err, errlen);
		goto fail;
	}
	free(answer);
	if (!add_entries(socket_path, map, version, id, err, errlen))
		goto fail;
	snprintf(cmd, sizeof(cmd), "commit map @%u #%ld\n", version, id);
	if (!(answer = ask(socket_path, cmd, strlen(cmd), err, errlen)))
		goto fail;
	if (!silent(answer)) {
		refused("commit map", answer, err, errlen);
		goto fail;
	}
	free(answer);
	free(map);
	return true;
fail:
	free(map);
	return false;
}

bool fallback_runtime_missing_backends(const struct plan *plan, const char *socket_path,
				       char *missing, size_t cap)
{
	char *answer = ask(socket_path, "show backend\n", 13, missing, cap);
	size_t used = 0;

	if (!answer)
		return false;
	missing[0] = '\0';
	for (int i = 0; i < plan_backend_count(plan); i++) {
		const char *name = plan_backend_name(plan, i);
		bool found = false;

		/* one name per line, after a "# name" header */
		for (const char *line = answer; *line && !found;) {
			size_t n = strcspn(line, "\r\n");

			found = n == strlen(name) + 8 && memcmp(line, "cutover_", 8) == 0 &&
				memcmp(line + 8, name, n - 8) == 0;
			line += n;
			line += strspn(line, "\r\n");
		}
		if (!found && used < cap) {
			int k = snprintf(missing + used, cap - used, "%s%s", used ? ", " : "", name);
			if (k > 0)
				used += (size_t)k;
		}
	}
	free(answer);
	return true;
}
