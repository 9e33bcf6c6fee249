/* SPDX-License-Identifier: Apache-2.0 */
/* text_buf: a text built with printf that grows as it needs; for pages and
 * listings made off the decision path (/metrics, /clients, --clients). Pure:
 * no I/O. A failed allocation or format marks it failed, after which every
 * call does nothing and text_buf_finish returns NULL. */
#ifndef CUTOVER_TEXT_BUF_H
#define CUTOVER_TEXT_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct text_buf {
	char *buf; /* NUL terminated while not failed */
	size_t len, cap;
	bool failed;
};

/* Starts an empty text of cap bytes' room; false when out of memory. */
bool text_buf_init(struct text_buf *t, size_t cap);

__attribute__((format(printf, 2, 3)))
void text_buf_printf(struct text_buf *t, const char *fmt, ...);

/* The text (the caller frees it) and its length; NULL, with the buffer
 * freed, when anything failed. */
char *text_buf_finish(struct text_buf *t, size_t *len);

#endif
