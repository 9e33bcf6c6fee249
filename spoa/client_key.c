/* SPDX-License-Identifier: Apache-2.0 */
#include "client_key.h"

#include "plan_types.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

static size_t address_text(const struct route_request *req, char *buf, size_t cap)
{
	int family = req->src_family == 4 ? AF_INET : AF_INET6;

	if (req->src_family == 0 || inet_ntop(family, req->src, buf, (socklen_t)cap) == NULL) {
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
