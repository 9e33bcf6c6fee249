/* SPDX-License-Identifier: Apache-2.0 */
#include "sockets.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static bool parse_unix(const char *path, struct sockaddr_storage *ss, socklen_t *len,
		       char *err, size_t errlen)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;

	if (path[0] != '/' || strlen(path) >= sizeof(un->sun_path)) {
		snprintf(err, errlen, "unix:%s: expected an absolute path of at most %zu bytes",
			 path, sizeof(un->sun_path) - 1);
		return false;
	}
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	strcpy(un->sun_path, path);
	*len = (socklen_t)sizeof(*un);
	return true;
}

bool sockets_parse(const char *text, bool unix_ok, struct sockaddr_storage *ss, socklen_t *len,
		   char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(text, ':');

	if (unix_ok && strncmp(text, "unix:", 5) == 0)
		return parse_unix(text + 5, ss, len, err, errlen);
	if (!colon || colon == text || !colon[1]) {
		snprintf(err, errlen, "%s: expected ADDR:PORT", text);
		return false;
	}
	size_t hlen = (size_t)(colon - text);
	const char *h = text;
	if (text[0] == '[') {
		if (hlen < 2 || text[hlen - 1] != ']') {
			snprintf(err, errlen, "%s: expected [ADDR]:PORT", text);
			return false;
		}
		h = text + 1;
		hlen -= 2;
	}
	if (hlen >= sizeof(host)) {
		snprintf(err, errlen, "%s: address too long", text);
		return false;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';

	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || *end || port < 1 || port > 65535) {
		snprintf(err, errlen, "%s: bad port", text);
		return false;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	int e = getaddrinfo(host, colon + 1, &hints, &res);
	if (e != 0) {
		snprintf(err, errlen, "%s: %s", text, gai_strerror(e));
		return false;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return true;
}

/* A socket file nobody accepts on (connect is refused) is left from a
 * process that ended without removing it. */
static void remove_stale(const struct sockaddr *addr, socklen_t addrlen)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
	struct stat st;

	if (lstat(un->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode))
		return;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (connect(fd, addr, addrlen) != 0 && errno == ECONNREFUSED)
		unlink(un->sun_path);
	close(fd);
}

int sockets_listen(const struct sockaddr *addr, socklen_t addrlen, bool reuseport, int backlog,
		   char *err, size_t errlen)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (addr->sa_family == AF_UNIX) {
		remove_stale(addr, addrlen);
	} else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
		   (reuseport &&
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
		   (addr->sa_family == AF_INET6 &&
		    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0)) {
		snprintf(err, errlen, "setsockopt: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (bind(fd, addr, addrlen) != 0) {
		snprintf(err, errlen, "bind: %s", strerror(errno));
		close(fd);
		return -1;
	}
	if (listen(fd, backlog) != 0) {
		snprintf(err, errlen, "listen: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void sockets_unlink(const struct sockaddr *addr)
{
	if (addr->sa_family == AF_UNIX)
		unlink(((const struct sockaddr_un *)addr)->sun_path);
}
