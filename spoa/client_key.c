/* SPDX-License-Identifier: Apache-2.0 */
#include "client_key.h"

#include "plan_types.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

/* Dotted decimal, as inet_ntop writes it, without its printf. */
static size_t ipv4_text(const uint8_t *a, char *buf)
{
	char *p = buf;

	for (int i = 0; i < 4; i++) {
		unsigned v = a[i];
		if (v >= 100)
			*p++ = (char)('0' + v / 100);
		if (v >= 10)
			*p++ = (char)('0' + v / 10 % 10);
		*p++ = (char)('0' + v % 10);
		*p++ = i < 3 ? '.' : '\0';
	}
	return (size_t)(p - buf - 1);
}

static size_t address_text(const struct route_request *req, char *buf, size_t cap)
{
	if (req->src_family == 4)
		return ipv4_text(req->src, buf); /* at most 16 bytes, cap is more */
	if (req->src_family == 0 || inet_ntop(AF_INET6, req->src, buf, (socklen_t)cap) == NULL) {
		buf[0] = '\0';
		return 0;
	}
	return strlen(buf);
}

size_t client_key(const struct plan_clients *c, const struct route_request *req, char *buf,
		  size_t cap)
{
	if (cap < CLIENT_KEY_MAX + 1)
		return 0;
	buf[0] = '\0';
	if (c->key == CLIENT_KEY_NONE)
		return 0;
	if (c->key == CLIENT_KEY_HEADER && req->client && req->client_len > 0) {
		size_t n = req->client_len < CLIENT_KEY_MAX ? req->client_len : CLIENT_KEY_MAX;
		memcpy(buf, req->client, n);
		buf[n] = '\0';
		return n;
	}
	return address_text(req, buf, cap);
}
