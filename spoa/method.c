/* SPDX-License-Identifier: Apache-2.0 */
#include "method.h"

#include <string.h>

unsigned method_bit(const char *m, size_t len)
{
#define IS(name) (len == sizeof(name) - 1 && memcmp(m, name, len) == 0)
	if (!m)
		return METHOD_OTHER;
	switch (len) {
	case 3: return IS("GET") ? METHOD_GET : IS("PUT") ? METHOD_PUT : METHOD_OTHER;
	case 4: return IS("HEAD") ? METHOD_HEAD : IS("POST") ? METHOD_POST : METHOD_OTHER;
	case 5: return IS("PATCH") ? METHOD_PATCH : IS("TRACE") ? METHOD_TRACE : METHOD_OTHER;
	case 6: return IS("DELETE") ? METHOD_DELETE : METHOD_OTHER;
	case 7: return IS("OPTIONS") ? METHOD_OPTIONS : IS("CONNECT") ? METHOD_CONNECT
								    : METHOD_OTHER;
	default: return METHOD_OTHER;
	}
#undef IS
}
