/* SPDX-License-Identifier: Apache-2.0 */
#include "text_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

bool text_buf_init(struct text_buf *t, size_t cap)
{
	*t = (struct text_buf){ .buf = malloc(cap), .cap = cap };
	if (!t->buf) {
		t->failed = true;
		return false;
	}
	t->buf[0] = '\0';
	return true;
}

void text_buf_printf(struct text_buf *t, const char *fmt, ...)
{
	/* At most twice: the second try has the room the first one asked for. */
	for (int tries = 0; tries < 2 && !t->failed; tries++) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = 2 * t->cap + (size_t)n + 1;
		char *b = realloc(t->buf, cap);
		if (!b) {
			t->failed = true;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

char *text_buf_finish(struct text_buf *t, size_t *len)
{
	if (t->failed) {
		free(t->buf);
		t->buf = NULL;
		return NULL;
	}
	*len = t->len;
	return t->buf;
}
