/* SPDX-License-Identifier: Apache-2.0 */
#include "clients_cmd.h"

#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "usage_list.h"

#define ANSWER_MAX ((size_t)16 << 20)
#define TIMEOUT_S 5

/* HOST:PORT or [IPV6]:PORT split into host and port; false when malformed. */
static bool split(const char *addr, char *host, size_t cap, const char **port)
{
	const char *colon = strrchr(addr, ':');
	const char *h = addr;
	size_t n;

	if (!colon || !colon[1])
		return false;
	n = (size_t)(colon - addr);
	if (addr[0] == '[') {
		if (n < 2 || addr[n - 1] != ']')
			return false;
		h = addr + 1;
		n -= 2;
	}
	if (n == 0 || n >= cap)
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = colon + 1;
	return true;
}

static int connect_to(const char *addr, char *why, size_t whylen)
{
	char host[256];
	const char *port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai, *a;
	struct timeval tv = { .tv_sec = TIMEOUT_S };
	int fd = -1, e;

	if (!split(addr, host, sizeof(host), &port)) {
		snprintf(why, whylen, "not HOST:PORT");
		return -1;
	}
	if ((e = getaddrinfo(host, port, &hints, &ai)) != 0) {
		snprintf(why, whylen, "%s", gai_strerror(e));
		return -1;
	}
	snprintf(why, whylen, "no address");
	for (a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
			snprintf(why, whylen, "connect: %s", strerror(errno));
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	return fd;
}

/* The body of a 200 answer to GET /clients.json, malloc'd; NULL with why. */
static char *fetch(const char *addr, size_t *len, char *why, size_t whylen)
{
	char req[512];
	size_t have = 0, cap = 65536;
	char *buf;
	int fd = connect_to(addr, why, whylen);

	if (fd < 0)
		return NULL;
	int n = snprintf(req, sizeof(req), "GET /clients.json HTTP/1.0\r\nHost: %s\r\n"
			 "User-Agent: cutover-spoa --clients\r\nConnection: close\r\n\r\n", addr);
	if (n <= 0 || (size_t)n >= sizeof(req) || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		snprintf(why, whylen, "send: %s", strerror(errno));
		close(fd);
		return NULL;
	}
	buf = malloc(cap + 1);
	for (;;) {
		if (!buf) {
			snprintf(why, whylen, "out of memory");
			break;
		}
		ssize_t r = recv(fd, buf + have, cap - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(why, whylen, "recv: %s", strerror(errno));
			break;
		}
		if (r == 0) {
			close(fd);
			buf[have] = '\0';
			char *body = strstr(buf, "\r\n\r\n");
			if (strncmp(buf, "HTTP/1.", 7) != 0 || have < 12 || strncmp(buf + 8, " 200", 4) ||
			    !body) {
				snprintf(why, whylen, "answered %.40s", strtok(buf, "\r\n") ? buf : "nothing");
				free(buf);
				return NULL;
			}
			body += 4;
			*len = have - (size_t)(body - buf);
			memmove(buf, body, *len + 1);
			return buf;
		}
		have += (size_t)r;
		if (have == cap) {
			char *b = cap * 2 <= ANSWER_MAX ? realloc(buf, cap * 2 + 1) : NULL;
			if (!b) {
				snprintf(why, whylen, "answer larger than %zu bytes", cap);
				break;
			}
			buf = b;
			cap *= 2;
		}
	}
	free(buf);
	close(fd);
	return NULL;
}

int clients_command(char *const *addrs, int n, FILE *out, FILE *err)
{
	struct usage_list l = { 0 };
	char why[256];
	int rc = 0;

	for (int i = 0; i < n; i++) {
		size_t len;
		char *body = fetch(addrs[i], &len, why, sizeof(why));
		if (!body || !usage_list_add(&l, body, len, why, sizeof(why))) {
			fprintf(err, "cutover-spoa: --clients: %s: %s\n", addrs[i], why);
			rc = 2;
		}
		free(body);
	}
	size_t len;
	char *text = usage_list_text(&l, &len);
	if (!text) {
		fprintf(err, "cutover-spoa: --clients: out of memory\n");
		usage_list_free(&l);
		return 2;
	}
	fwrite(text, 1, len, out);
	free(text);
	if (rc == 0 && l.requests > 0)
		rc = 1;
	usage_list_free(&l);
	return rc;
}
