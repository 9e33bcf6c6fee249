/* SPDX-License-Identifier: Apache-2.0 */
/* client_key: who a request's client is, as the plan's `clients` block says
 * (docs/plan.md, "Clients"). Pure: no I/O, no allocation.
 *
 * The key is the value of the plan's header (HAProxy sends it as the
 * `client` argument of message `cutover`), or the source address when the
 * plan says `key: src` or the header is absent or empty. An address is
 * written as text: 192.0.2.7, 2001:db8::1. A key is at most CLIENT_KEY_MAX
 * bytes: a longer header value is cut there (two values sharing their first
 * CLIENT_KEY_MAX bytes are one client). HAProxy's stick table of
 * read-your-writes holds keys of that length (haproxy/haproxy.cfg). */
#ifndef CUTOVER_CLIENT_KEY_H
#define CUTOVER_CLIENT_KEY_H

#include <stddef.h>

#include "router.h"

#define CLIENT_KEY_MAX 64

struct plan_clients;

/* Writes the key of req's client at buf (cap >= CLIENT_KEY_MAX + 1, NUL
 * terminated) and returns its length; 0 (buf "") when the plan has no
 * clients block or the request carries neither the header nor an address. */
size_t client_key(const struct plan_clients *c, const struct route_request *req, char *buf,
		  size_t cap);

#endif
