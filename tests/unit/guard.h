/* SPDX-License-Identifier: Apache-2.0 */
/* guard: test inputs and outputs that end exactly at an inaccessible page, so
 * a one-byte over-read or over-write faults even without ASan. */
#ifndef CUTOVER_TEST_GUARD_H
#define CUTOVER_TEST_GUARD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARD_AREA (64 * 1024) /* largest buffer a test may ask for */

static uint8_t *guard_area_end; /* first byte of the PROT_NONE page */

static inline uint8_t *guard_end(void)
{
	if (!guard_area_end) {
		size_t page = (size_t)sysconf(_SC_PAGESIZE);
		size_t rw = (GUARD_AREA + page - 1) / page * page;
		uint8_t *base = mmap(NULL, rw + page, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (base == MAP_FAILED || mprotect(base + rw, page, PROT_NONE) != 0)
			abort();
		guard_area_end = base + rw;
	}
	return guard_area_end;
}

/* A copy of data[0..len) whose last byte sits just before the guard page. */
static inline const uint8_t *guard_copy(const void *data, size_t len)
{
	if (len > GUARD_AREA)
		abort();
	uint8_t *p = guard_end() - len;
	if (len)
		memcpy(p, data, len);
	return p;
}

/* A writable buffer of cap bytes ending at the guard page (contents poisoned). */
static inline uint8_t *guard_buffer(size_t cap)
{
	if (cap > GUARD_AREA)
		abort();
	uint8_t *p = guard_end() - cap;
	memset(p, 0xA5, cap);
	return p;
}

#endif
