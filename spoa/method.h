/* SPDX-License-Identifier: Apache-2.0 */
/* method: HTTP methods as bits, for a route's `methods:` and a request's
 * method. Pure. */
#ifndef CUTOVER_METHOD_H
#define CUTOVER_METHOD_H

#include <stddef.h>

/* HTTP methods as bits; METHOD_OTHER stands for every other token. */
enum {
	METHOD_GET = 1u << 0,
	METHOD_HEAD = 1u << 1,
	METHOD_POST = 1u << 2,
	METHOD_PUT = 1u << 3,
	METHOD_PATCH = 1u << 4,
	METHOD_DELETE = 1u << 5,
	METHOD_OPTIONS = 1u << 6,
	METHOD_TRACE = 1u << 7,
	METHOD_CONNECT = 1u << 8,
	METHOD_OTHER = 1u << 9,
	METHODS_ALL = (1u << 10) - 1,
	METHODS_READS = METHOD_GET | METHOD_HEAD,
	METHODS_WRITES = METHOD_POST | METHOD_PUT | METHOD_PATCH | METHOD_DELETE,
};

/* The bit of method[0..len): exact, case-sensitive token match. */
unsigned method_bit(const char *method, size_t len);

#endif
