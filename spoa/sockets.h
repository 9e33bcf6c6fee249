/* SPDX-License-Identifier: Apache-2.0 */
/* sockets: listening addresses and sockets, shared by the SPOP listener
 * (worker.c) and the metrics port (status_http.c). */
#ifndef CUTOVER_SOCKETS_H
#define CUTOVER_SOCKETS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* "ADDR:PORT", "[ADDR]:PORT" (IPv6) or, when unix_ok, "unix:/path" into a
 * socket address. False with a reason in err. */
bool sockets_parse(const char *text, bool unix_ok, struct sockaddr_storage *ss, socklen_t *len,
		   char *err, size_t errlen);

/* A non-blocking, close-on-exec listening socket bound to addr, or -1 with
 * "call: reason" in err. For TCP, reuseport sets SO_REUSEPORT so that
 * several sockets may share the address; IPv6 sockets are IPv6 only. A Unix
 * socket file left by a process that is gone is replaced; one a live
 * process listens on is "in use". */
int sockets_listen(const struct sockaddr *addr, socklen_t addrlen, bool reuseport, int backlog,
		   char *err, size_t errlen);

/* For a Unix address, removes its socket file; nothing for TCP. */
void sockets_unlink(const struct sockaddr *addr);

#endif
